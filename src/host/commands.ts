/**
 * The commands: palette, view title, tree items, editor title. Each takes its plan from the
 * argument VS Code passes (a tree node or a file URI), else from the active plan editor or
 * text editor, else asks.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { initPlan } from '../core/init-plan.ts';
import { EXPORT_TARGETS, exportPlan, type ExportTarget } from '../core/export/index.ts';
import { resolveGroups } from '../core/groups.ts';
import type { ModelInfo } from '../core/model-info.ts';
import { isPlanFileName, newPlanFileName } from '../core/plan-discovery.ts';
import { PRESETS } from '../core/presets.ts';
import { resolveStages } from '../core/timeline.ts';
import { formatMult, moveTargets, parseMultiplierInput, type TreeNode } from '../core/tree-model.ts';
import type { PlanEditRequest } from '../protocol/webview.ts';
import type { ModelDescriber } from './describer.ts';
import type { PlanEditor } from './edits.ts';
import type { PlanPanels } from './panel.ts';
import { freezeRequest, textAfterRequest } from './plan-requests.ts';
import type { PlanEntry, PlanStore } from './plans.ts';
import type { TrainingSessions } from './session.ts';
import type { LayerTreeProvider } from './tree.ts';

export interface CommandDeps {
  context: vscode.ExtensionContext;
  log: vscode.LogOutputChannel;
  store: PlanStore;
  editor: PlanEditor;
  sessions: TrainingSessions;
  panels: PlanPanels;
  tree: LayerTreeProvider;
  treeView: vscode.TreeView<TreeNode>;
  describer: ModelDescriber;
  openReport(planUri: vscode.Uri): Promise<void>;
}

export function registerCommands(d: CommandDeps): vscode.Disposable[] {
  const { store, sessions, panels, log } = d;
  const plan = (arg: unknown, purpose: string) => pickPlan(d, arg, purpose);

  const reg = (id: string, fn: (...args: unknown[]) => unknown) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        await fn(...args);
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        log.error(`${id}: ${message}`);
        void vscode.window.showErrorMessage(`Layerwise: ${message}`);
      }
    });

  return [
    reg('layerwise.openPlanEditor', async (arg) => {
      const uri = await plan(arg, 'open in the plan editor');
      if (uri !== undefined) panels.createOrShow(uri);
    }),
    reg('layerwise.train', async (arg) => {
      const uri = await plan(arg, 'train');
      if (uri !== undefined) await sessions.start('train', uri);
    }),
    reg('layerwise.findLr', async (arg) => {
      const uri = await plan(arg, 'run an LR range test on');
      if (uri !== undefined) await sessions.start('findLr', uri);
    }),
    reg('layerwise.stopTraining', async (arg) => {
      const running = store.list().filter((e) => sessions.isRunning(e.key));
      const fromArg = planUriOfArg(arg);
      const target = fromArg !== undefined && sessions.isRunning(fromArg.toString())
        ? fromArg.toString()
        : running.length === 1
          ? running[0]!.key
          : (await pickEntry(running, 'Stop which run?'))?.key;
      if (target === undefined) {
        if (running.length === 0) void vscode.window.showInformationMessage('Layerwise: nothing is running.');
        return;
      }
      sessions.stop(target);
    }),
    reg('layerwise.applyPreset', async (arg) => {
      const uri = await plan(arg, 'apply a preset to');
      if (uri === undefined) return;
      const choice = await vscode.window.showQuickPick(
        PRESETS.map((p) => ({ label: p.label, detail: p.description, id: p.id })),
        { title: 'Layerwise: Apply Preset', placeHolder: 'How should the learning rate change from the bottom group to the top?', matchOnDetail: true },
      );
      if (choice === undefined) return;
      await applyRequest(d, uri, { kind: 'applyPreset', preset: choice.id }, `apply the preset "${choice.label}"`);
    }),
    reg('layerwise.openLastReport', async (arg) => {
      const uri = await plan(arg, 'open the last report of');
      if (uri !== undefined) await d.openReport(uri);
    }),
    reg('layerwise.showLog', () => log.show()),
    reg('layerwise.refresh', () => store.refresh()),
    reg('layerwise.inspect', async (arg) => {
      const uri = await plan(arg, 'inspect');
      if (uri === undefined) return;
      const entry = await store.open(uri);
      await vscode.commands.executeCommand('layerwise.layers.focus');
      await d.tree.getChildren();
      const node = d.tree.node(entry.key);
      if (node !== undefined) await revealSoon(d.treeView, node);
    }),
    // from the Explorer's context menu on a model.json, the model comes as the argument
    reg('layerwise.createPlan', (arg) => createPlan(d, arg instanceof vscode.Uri ? arg : undefined)),
    reg('layerwise.exportPlan', async (arg) => {
      const uri = await plan(arg, 'export');
      if (uri !== undefined) await exportPlanCommand(d, uri);
    }),
    reg('layerwise.setMultiplier', async (arg) => {
      const node = nodeOf(d, arg);
      if (node === undefined) return;
      await setMultiplier(d, node);
    }),
    reg('layerwise.moveToGroup', async (arg) => {
      const node = nodeOf(d, arg);
      if (node === undefined || node.target.kind !== 'layer') return;
      const entry = store.get(node.target.planKey);
      if (entry?.plan === undefined) return;
      const targets = moveTargets(entry.plan, node.target.group);
      if (targets.length === 0) {
        void vscode.window.showInformationMessage('Layerwise: the plan has no other group to move the layer to; add one to "groups" first.');
        return;
      }
      const choice = await vscode.window.showQuickPick(
        targets.map((t) => ({ label: t.name, description: `groups[${t.planIndex}]`, planIndex: t.planIndex })),
        { title: `Layerwise: Move ${node.target.layer} to Group`, placeHolder: `Now in "${node.target.group}"` },
      );
      if (choice === undefined) return;
      await applyRequest(d, entry.uri, { kind: 'moveLayer', layer: node.target.layer, toGroupIndex: choice.planIndex }, `move ${node.target.layer} to "${choice.label}"`);
    }),
    reg('layerwise.revealProblem', async (arg) => {
      const node = nodeOf(d, arg);
      if (node === undefined || node.target.kind !== 'location') return;
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.parse(node.target.planKey));
      const start = doc.positionAt(node.target.offset ?? 0);
      const end = doc.positionAt((node.target.offset ?? 0) + (node.target.length ?? 0));
      await vscode.window.showTextDocument(doc, { selection: new vscode.Range(start, end) });
    }),
    d.treeView.onDidChangeCheckboxState(async (e) => {
      for (const [node, state] of e.items) {
        const entry = store.get(node.target.planKey);
        const trains = state === vscode.TreeItemCheckboxState.Checked;
        const request = entry?.plan !== undefined && entry.model.state === 'ready'
          ? freezeRequest(entry.plan, entry.model.model, node.target, trains)
          : undefined;
        if (entry === undefined || request === undefined) {
          // nothing to write: put the checkbox back as the plan has it
          await store.reloadNow(node.target.planKey);
          continue;
        }
        await applyRequest(d, entry.uri, request, `${trains ? 'unfreeze' : 'freeze'} ${node.label}`);
      }
    }),
  ];
}

/**
 * Reveals a node in a view that may have just been opened: until the workbench has drawn the
 * view's first children, `reveal` fails with "node not found", so it is tried a few times.
 */
async function revealSoon(view: vscode.TreeView<TreeNode>, node: TreeNode): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await view.reveal(node, { select: true, focus: true, expand: 2 });
      return;
    } catch (e) {
      if (attempt >= 8) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100 * attempt));
    }
  }
}

async function applyRequest(d: CommandDeps, uri: vscode.Uri, request: PlanEditRequest, what: string): Promise<boolean> {
  const entry = await d.store.open(uri);
  const model = request.kind === 'applyPreset' ? await modelOf(d, entry) : entry.model.state === 'ready' ? entry.model.model : undefined;
  const changed = await d.editor.edit(uri, what, (text) => textAfterRequest(text, request, { file: entry.file, model }));
  // the tree follows the text; re-read now rather than after the debounce
  await d.store.reloadNow(entry.key);
  return changed;
}

/** The plan's model, waiting (with progress) while the worker is still describing it. */
async function modelOf(d: CommandDeps, entry: PlanEntry): Promise<ModelInfo | undefined> {
  if (entry.model.state !== 'loading') return entry.model.state === 'ready' ? entry.model.model : undefined;
  return vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Layerwise: loading the model of ${entry.label}…` }, () =>
    new Promise<ModelInfo | undefined>((resolve) => {
      const sub = d.store.onDidChange((e) => {
        if (e !== undefined && e.key !== entry.key) return;
        const now = d.store.get(entry.key);
        if (now === undefined || now.model.state !== 'loading') {
          sub.dispose();
          resolve(now?.model.state === 'ready' ? now.model.model : undefined);
        }
      });
    }),
  );
}

async function setMultiplier(d: CommandDeps, node: TreeNode): Promise<void> {
  const t = node.target;
  if (t.kind !== 'group' && t.kind !== 'layer') return;
  const entry = d.store.get(t.planKey);
  if (entry?.plan === undefined || entry.model.state !== 'ready') return;
  if (t.kind === 'group' && t.planIndex === undefined) {
    void vscode.window.showInformationMessage(`Layerwise: "${t.group}" is the implicit group of unmatched layers; add a group with patterns for them to set its multiplier.`);
    return;
  }
  let current: number | undefined;
  try {
    const r = resolveGroups(entry.model.model, entry.plan);
    current = t.kind === 'group' ? r.groups.find((g) => g.name === t.group)?.lrMult : r.groups.flatMap((g) => g.layers).find((l) => l.name === t.layer)?.lrMult;
  } catch {
    current = undefined;
  }
  const field = t.kind === 'group' ? `groups[${t.planIndex}].lrMult` : `layers[${JSON.stringify(t.layer)}].lrMult`;
  const input = await vscode.window.showInputBox({
    title: `Layerwise: Learning-Rate Multiplier of ${t.kind === 'group' ? t.group : t.layer}`,
    prompt: `Sets ${field}: its LR = base LR × multiplier. Leave empty to remove the setting${t.kind === 'group' ? ' (the preset decides)' : ' (its group decides)'}.`,
    value: current === undefined ? '' : String(current),
    placeHolder: current === undefined ? 'e.g. 0.1' : `now ${formatMult(current)}`,
    validateInput: (text) => {
      const parsed = parseMultiplierInput(text);
      return 'error' in parsed ? parsed.error : undefined;
    },
  });
  if (input === undefined) return;
  const parsed = parseMultiplierInput(input);
  if ('error' in parsed) return;
  const request: PlanEditRequest = t.kind === 'group'
    ? { kind: 'setGroup', groupIndex: t.planIndex!, key: 'lrMult', value: parsed.value }
    : { kind: 'setLayer', layer: t.layer, key: 'lrMult', value: parsed.value };
  await applyRequest(d, entry.uri, request, `set ${field} to ${parsed.value ?? 'its default'}`);
}

function nodeOf(d: CommandDeps, arg: unknown): TreeNode | undefined {
  if (isTreeNode(arg)) return d.tree.node(arg.id) ?? arg;
  const selected = d.treeView.selection[0];
  return selected;
}

function isTreeNode(x: unknown): x is TreeNode {
  return typeof x === 'object' && x !== null && typeof (x as TreeNode).id === 'string' && typeof (x as TreeNode).target === 'object';
}

function planUriOfArg(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri) return arg;
  if (isTreeNode(arg)) return vscode.Uri.parse(arg.target.planKey);
  if (typeof arg === 'string' && arg !== '') return arg.includes('://') ? vscode.Uri.parse(arg) : vscode.Uri.file(arg);
  return undefined;
}

/** The plan a command is about: its argument, the active plan editor, the active plan file, the only plan, or a pick. */
async function pickPlan(d: CommandDeps, arg: unknown, purpose: string): Promise<vscode.Uri | undefined> {
  const fromArg = planUriOfArg(arg);
  if (fromArg !== undefined) return fromArg;
  const fromPanel = d.panels.activePlan();
  if (fromPanel !== undefined) return fromPanel;
  const doc = vscode.window.activeTextEditor?.document;
  if (doc !== undefined && doc.uri.scheme === 'file' && isPlanFileName(doc.uri.fsPath)) return doc.uri;
  const selected = d.treeView.selection[0];
  if (selected !== undefined) return vscode.Uri.parse(selected.target.planKey);
  await d.store.ready();
  const plans = d.store.list();
  if (plans.length === 1) return plans[0]!.uri;
  if (plans.length === 0) {
    const choice = await vscode.window.showInformationMessage('Layerwise: this workspace has no plan (layerwise.json).', 'Create Plan from Model…');
    if (choice !== undefined) await vscode.commands.executeCommand('layerwise.createPlan');
    return undefined;
  }
  return (await pickEntry(plans, `Which plan to ${purpose}?`))?.uri;
}

async function pickEntry(entries: PlanEntry[], placeHolder: string): Promise<PlanEntry | undefined> {
  if (entries.length === 0) return undefined;
  const choice = await vscode.window.showQuickPick(
    entries.map((e) => ({ label: e.label, description: e.plan?.model ?? '', entry: e })),
    { placeHolder },
  );
  return choice?.entry;
}

// ---- Create Plan from Model… ----------------------------------------------------------------

async function createPlan(d: CommandDeps, fromExplorer: vscode.Uri | undefined): Promise<void> {
  let modelUri = fromExplorer;
  if (modelUri === undefined) modelUri = await pickModel();
  if (modelUri === undefined) return;
  await createPlanFor(d, modelUri);
}

async function pickModel(): Promise<vscode.Uri | undefined> {
  const models = await vscode.workspace.findFiles('**/model.json', '**/{node_modules,.git}/**', 200);
  // run outputs hold fine-tuned copies; offer the original models first
  models.sort((a, b) => Number(isRunOutput(a)) - Number(isRunOutput(b)) || a.fsPath.localeCompare(b.fsPath));
  let modelUri: vscode.Uri | undefined;
  if (models.length === 0) {
    const picked = await vscode.window.showOpenDialog({
      title: 'Layerwise: Choose a TensorFlow.js model.json',
      canSelectMany: false,
      filters: { 'TensorFlow.js model': ['json'] },
      defaultUri: vscode.workspace.workspaceFolders?.[0]?.uri,
    });
    modelUri = picked?.[0];
  } else {
    const choice = await vscode.window.showQuickPick(
      models.map((u) => ({ label: vscode.workspace.asRelativePath(u, true), uri: u })),
      { title: 'Layerwise: Create Plan from Model', placeHolder: 'The TensorFlow.js Layers model to fine-tune' },
    );
    modelUri = choice?.uri;
  }
  return modelUri;
}

async function createPlanFor(d: CommandDeps, modelUri: vscode.Uri): Promise<void> {
  const folder = vscode.workspace.getWorkspaceFolder(modelUri);
  if (folder === undefined) {
    void vscode.window.showErrorMessage('Layerwise: the model must be inside a folder of this workspace (a plan may only name files inside it).');
    return;
  }
  const modelFile = modelUri.fsPath;
  const modelDir = path.dirname(modelFile);
  // the plan sits beside the model's folder: runs must never write into the model's folder
  const planDir = modelDir === folder.uri.fsPath ? modelDir : path.dirname(modelDir);
  const described = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Layerwise: reading ${vscode.workspace.asRelativePath(modelUri)}…` },
    () => d.describer.request({ type: 'describeModel', modelFile, workspaceRoot: folder.uri.fsPath, backend: 'cpu' }),
  );
  const existing = new Set((await readDirNames(planDir)).filter((n) => n.endsWith('.json')));
  const planFile = path.join(planDir, newPlanFileName(existing, path.basename(modelDir)));
  if (existsSync(planFile)) throw new Error(`${planFile} already exists`);
  const rel = path.relative(planDir, modelFile).split(path.sep).join('/');
  const { $schema: _schema, ...plan } = initPlan(described.model, { modelPath: rel });
  const text = [
    '// Layerwise fine-tuning plan. Hover any field for its documentation.',
    '// Groups are ordered bottom → top; a layer belongs to the first group whose pattern matches it.',
    '// Add "data": { "train": "…", "validation": "…" } to train.',
    JSON.stringify(plan, null, 2),
    '',
  ].join('\n');
  const uri = vscode.Uri.file(planFile);
  await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(text));
  d.log.info(`created ${vscode.workspace.asRelativePath(uri)} for ${rel} with ${plan.groups?.length ?? 0} groups`);
  await d.store.open(uri);
  await vscode.window.showTextDocument(uri, { preview: false });
  d.panels.createOrShow(uri, true);
}

const EXPORT_LABELS: Record<ExportTarget, string> = {
  pytorch: 'PyTorch: param_groups, optimizer, schedule and apply_stage (torchrun, Accelerate, DeepSpeed)',
  'hf-trainer': 'Hugging Face Trainer subclass + a callback that applies the unfreezing stages',
  mmengine: 'MMEngine optim_wrapper with paramwise_cfg.custom_keys',
};

/** The plan as code for another engine, opened as an unsaved document: nothing on disk is touched. */
async function exportPlanCommand(d: CommandDeps, uri: vscode.Uri): Promise<void> {
  const entry = await d.store.open(uri);
  await d.store.reloadNow(entry.key);
  const current = d.store.get(entry.key) ?? entry;
  if (current.plan === undefined) {
    void vscode.window.showErrorMessage(`Layerwise: ${current.label} has problems; fix them (see the Problems panel) before exporting.`);
    return;
  }
  const model = await modelOf(d, current);
  if (model === undefined) {
    void vscode.window.showErrorMessage(`Layerwise: the model of ${current.label} could not be read; see the Layers view.`);
    return;
  }
  const choice = await vscode.window.showQuickPick(
    EXPORT_TARGETS.map((t) => ({ label: t, detail: EXPORT_LABELS[t], target: t })),
    { title: `Layerwise: Export ${current.label}`, placeHolder: 'Generate code for which engine?' },
  );
  if (choice === undefined) return;
  const resolution = resolveGroups(model, current.plan, uri.fsPath);
  const stages = resolveStages(current.plan, resolution, uri.fsPath);
  const planName = vscode.workspace.asRelativePath(uri, false);
  const text = exportPlan(choice.target, { plan: current.plan, resolution, stages, model, planName, command: `layerwise export ${planName} --to ${choice.target}` });
  const doc = await vscode.workspace.openTextDocument({ language: 'python', content: text });
  await vscode.window.showTextDocument(doc, { preview: false });
  d.log.info(`exported ${planName} for ${choice.target} (${text.length} characters, unsaved)`);
}

function isRunOutput(u: vscode.Uri): boolean {
  return /[\\/]runs[\\/]/.test(u.fsPath);
}

async function readDirNames(dir: string): Promise<string[]> {
  try {
    return (await vscode.workspace.fs.readDirectory(vscode.Uri.file(dir))).map(([name]) => name);
  } catch {
    return [];
  }
}
