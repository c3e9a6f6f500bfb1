/**
 * The ways in for a newcomer: the bundled example copied into a folder of their choice, a
 * model's layers browsed before any plan exists, and the walkthrough's commands.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { modelOutline } from '../core/model-outline.ts';
import { setPlanValue } from '../core/plan-edit.ts';
import type { ModelDescriber } from './describer.ts';

const OUTLINE_SCHEME = 'layerwise-model';
const EXAMPLE_FOLDER = 'layerwise-example';

interface OnboardingDeps {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  describer: ModelDescriber;
}

export function registerOnboarding(d: OnboardingDeps): vscode.Disposable[] {
  const outlines = new ModelOutlines();
  const guard = (id: string, fn: (arg: unknown) => Promise<void>) =>
    vscode.commands.registerCommand(id, async (arg: unknown) => {
      try {
        await fn(arg);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        d.log.error(`${id}: ${message}`);
        void vscode.window.showErrorMessage(`Layerwise: ${message}`);
      }
    });
  return [
    outlines,
    vscode.workspace.registerTextDocumentContentProvider(OUTLINE_SCHEME, outlines),
    guard('layerwise.openExample', () => openExample(d)),
    guard('layerwise.inspectModel', (arg) => inspectModel(d, outlines, arg instanceof vscode.Uri ? arg : undefined)),
  ];
}

/** Read-only Markdown documents holding a model's layer outline, one per model file. */
class ModelOutlines implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  set(uri: vscode.Uri, text: string): void {
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? 'This outline is gone: run "Layerwise: Inspect Layers" on the model again.';
  }

  dispose(): void {
    this.changed.dispose();
  }
}

async function inspectModel(d: OnboardingDeps, outlines: ModelOutlines, arg: vscode.Uri | undefined): Promise<void> {
  let modelUri = arg;
  if (modelUri === undefined) {
    const models = await vscode.workspace.findFiles('**/model.json', '**/{node_modules,.git,runs}/**', 200);
    const choice = await vscode.window.showQuickPick(
      models.map((u) => ({ label: vscode.workspace.asRelativePath(u, true), uri: u })),
      { title: 'Layerwise: Inspect Layers', placeHolder: models.length > 0 ? 'The TensorFlow.js model to browse' : 'No model.json in this workspace' },
    );
    modelUri = choice?.uri;
  }
  if (modelUri === undefined) return;
  const folder = vscode.workspace.getWorkspaceFolder(modelUri);
  if (folder === undefined) throw new Error('the model must be inside a folder of this workspace');
  const described = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Layerwise: reading ${vscode.workspace.asRelativePath(modelUri)}…` },
    () => d.describer.request({ type: 'describeModel', modelFile: modelUri.fsPath, workspaceRoot: folder.uri.fsPath, backend: 'cpu' }),
  );
  const rel = vscode.workspace.asRelativePath(modelUri, false);
  const uri = vscode.Uri.from({ scheme: OUTLINE_SCHEME, path: `/${rel}.md` });
  outlines.set(uri, modelOutline(described.model, rel));
  await vscode.commands.executeCommand('markdown.showPreview', uri);
}

/** Copies the bundled example (a small CNN, its data and a plan) into a folder the user picks, then opens it. */
async function openExample(d: OnboardingDeps): Promise<void> {
  const source = vscode.Uri.joinPath(d.context.extensionUri, 'examples', 'fashion');
  const picked = await vscode.window.showOpenDialog({
    title: 'Layerwise: Where should the example go?',
    openLabel: 'Copy the Example Here',
    canSelectFiles: false,
    canSelectFolders: true,
    canSelectMany: false,
    defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
  });
  const parent = picked?.[0];
  if (parent === undefined) return;
  const target = await freeFolder(parent);
  await vscode.workspace.fs.copy(source, target, { overwrite: false });
  // the example as a newcomer should get it: no run folders or results from a run of the package's builder
  await vscode.workspace.fs.delete(vscode.Uri.joinPath(target, 'runs'), { recursive: true, useTrash: false }).then(undefined, () => undefined);
  const planUri = vscode.Uri.joinPath(target, 'layerwise.json');
  const text = new TextDecoder().decode(await vscode.workspace.fs.readFile(planUri));
  const fresh = setPlanValue(text, ['results'], undefined);
  if (fresh !== text) await vscode.workspace.fs.writeFile(planUri, new TextEncoder().encode(fresh));
  d.log.info(`copied the example into ${target.fsPath}`);

  const open = 'Open';
  const newWindow = 'Open in New Window';
  const add = 'Add to Workspace';
  const choices = vscode.workspace.workspaceFolders?.length ? [open, newWindow, add] : [open];
  const choice = await vscode.window.showInformationMessage(
    `Layerwise: the example is in ${target.fsPath}. Open layerwise.json, then Train (or press the ▷ in its title bar).`,
    ...choices,
  );
  if (choice === open || choice === newWindow) {
    await vscode.commands.executeCommand('vscode.openFolder', target, { forceNewWindow: choice === newWindow });
  } else if (choice === add) {
    vscode.workspace.updateWorkspaceFolders(vscode.workspace.workspaceFolders?.length ?? 0, 0, { uri: target });
    await vscode.window.showTextDocument(planUri, { preview: false });
  }
}

/** `parent/layerwise-example`, or `…-2`, `…-3` when taken: never copy over a folder that exists. */
async function freeFolder(parent: vscode.Uri): Promise<vscode.Uri> {
  for (let i = 1; i < 100; i++) {
    const candidate = vscode.Uri.joinPath(parent, i === 1 ? EXAMPLE_FOLDER : `${EXAMPLE_FOLDER}-${i}`);
    const exists = await vscode.workspace.fs.stat(candidate).then(() => true, () => false);
    if (!exists) return candidate;
  }
  throw new Error(`${path.join(parent.fsPath, EXAMPLE_FOLDER)} and 98 numbered variants exist already`);
}
