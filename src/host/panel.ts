/**
 * The plan editor: a custom text editor (`layerwise.planEditor`, priority "option") over the plan
 * file's TextDocument. The document is the model: every edit from the page is a WorkspaceEdit on
 * it (not saved), so Undo/Redo, the dirty tab, Save, hot exit and reload come from VS Code, and a
 * text edit reaches the page through the store (debounced). The host posts nothing until the
 * page says `ready` (and again after every reload of a hidden page); then it sends the whole
 * `state`, and replays the current run's events so live curves survive the page being hidden.
 * Every message from the page is checked with `isWebviewToHost` and handled by a table the
 * compiler checks for completeness.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { assertNever } from '../core/errors.ts';
import type { LrFinderOutcome } from '../core/lr-finder.ts';
import type { ModelInfo } from '../core/model-info.ts';
import { isInside } from '../core/paths.ts';
import { DEFAULTS } from '../core/plan.ts';
import { PRESETS } from '../core/presets.ts';
import type { RunReport } from '../core/progress.ts';
import {
  isWebviewToHost,
  type Handlers,
  type HostToWebview,
  type ChartExport,
  type PanelCommand,
  type PanelState,
  type PlanEditRequest,
  type WebviewToHost,
} from '../protocol/webview.ts';
import type { AugmentPreview } from '../protocol/worker.ts';
import { panelHtml } from '../../webview/page.ts';
import type { PlanEditor } from './edits.ts';
import { textAfterRequest } from './plan-requests.ts';
import type { PlanEntry, PlanStore } from './plans.ts';
import type { TrainingSessions } from './session.ts';
import type { TuneSessions } from './tune.ts';

export const PANEL_VIEW_TYPE = 'layerwise.planEditor';

export interface PanelDeps {
  extensionUri: vscode.Uri;
  store: PlanStore;
  sessions: TrainingSessions;
  tune: TuneSessions;
  editor: PlanEditor;
  log: vscode.LogOutputChannel;
  openReport(planUri: vscode.Uri): Promise<void>;
}

export class PlanPanels implements vscode.Disposable, vscode.CustomTextEditorProvider {
  private readonly panels = new Map<string, PlanPanel>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly deps: PanelDeps) {
    this.disposables.push(
      vscode.window.registerCustomEditorProvider(PANEL_VIEW_TYPE, this, {
        webviewOptions: { enableFindWidget: true },
        supportsMultipleEditorsPerDocument: false,
      }),
    );
  }

  /** VS Code opens (or, after a reload, restores) the plan editor on a plan's document. */
  resolveCustomTextEditor(document: vscode.TextDocument, panel: vscode.WebviewPanel): void {
    const uri = document.uri;
    const key = uri.toString();
    const p = new PlanPanel(panel, uri, this.deps);
    this.panels.set(key, p);
    panel.onDidDispose(() => {
      if (this.panels.get(key) === p) this.panels.delete(key);
      p.dispose();
    });
  }

  /** "Open Plan Editor": the custom editor on the plan, or the open one brought forward. */
  async createOrShow(uri: vscode.Uri, preserveFocus = false): Promise<void> {
    const open = this.panels.get(uri.toString());
    if (open !== undefined) {
      open.panel.reveal(undefined, preserveFocus);
      return;
    }
    await vscode.commands.executeCommand('vscode.openWith', uri, PANEL_VIEW_TYPE, { preserveFocus, preview: false });
  }

  /** The plan of the active plan editor, for commands run from the palette while it has focus. */
  activePlan(): vscode.Uri | undefined {
    for (const p of this.panels.values()) if (p.panel.active) return p.uri;
    return undefined;
  }

  dispose(): void {
    for (const p of this.panels.values()) p.dispose();
    this.panels.clear();
    for (const d of this.disposables) d.dispose();
  }
}

function titleOf(uri: vscode.Uri): string {
  return `Layerwise: ${vscode.workspace.asRelativePath(uri, false)}`;
}

function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

class PlanPanel {
  /** True between the page's `ready` and its next reload: the only time posting makes sense. */
  private ready = false;
  /** The last description of the plan's model the page was sent, and which `model` path it was of. */
  private lastDescribed: { model: ModelInfo; path: string | undefined; augmentPreview: AugmentPreview | undefined } | undefined;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(readonly panel: vscode.WebviewPanel, readonly uri: vscode.Uri, private readonly deps: PanelDeps) {
    const key = uri.toString();
    panel.webview.options = webviewOptions(deps.extensionUri);
    this.disposables.push(
      panel.webview.onDidReceiveMessage((raw: unknown) => void this.receive(raw)),
      // a hidden page is unloaded; it will say `ready` again when shown
      panel.onDidChangeViewState(() => {
        if (!panel.visible) this.ready = false;
      }),
      deps.store.onDidChange((entry) => {
        if (entry === undefined || entry.key === key) void this.sendState();
      }),
      deps.sessions.onDidPost((m) => {
        if (m.planKey === key) this.post(m.message);
      }),
      deps.tune.onDidChange((m) => {
        if (m.planKey === key) this.post({ type: 'suggestion', suggestion: m.suggestion });
      }),
      // a run that ends may leave (or use up) a checkpoint: the Resume button follows
      deps.sessions.onDidChangeStatus((c) => {
        if (c.planKey === key && (c.status.state === 'cancelled' || c.status.state === 'failed' || c.status.state === 'succeeded')) void this.sendState();
      }),
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.sendState()),
    );
    panel.webview.html = this.html();
  }

  private html(): string {
    const webview = this.panel.webview;
    const asset = (...p: string[]) => webview.asWebviewUri(vscode.Uri.joinPath(this.deps.extensionUri, ...p)).toString();
    return panelHtml({
      cspSource: webview.cspSource,
      nonce: randomBytes(16).toString('base64'),
      scriptUri: asset('dist', 'webview.js'),
      styleUri: asset('media', 'webview.css'),
      title: titleOf(this.uri),
    });
  }

  private post(message: HostToWebview): void {
    if (this.ready) void this.panel.webview.postMessage(message);
  }

  private readonly handlers: Handlers<WebviewToHost> = {
    ready: async () => {
      this.ready = true;
      await this.sendState();
      // live curves of a run in progress survive the page being hidden and shown again
      const replay = this.deps.sessions.eventsOf(this.uri.toString());
      if (replay !== undefined) {
        this.post({ type: 'runStarted', job: replay.job });
        for (const event of replay.events) this.post({ type: 'trainEvent', event });
      }
    },
    edit: async (m) => {
      const entry = await this.deps.store.open(this.uri);
      // not saved: the tab shows the change until Save, and Undo takes it back
      const changed = await this.deps.editor.edit(
        this.uri,
        describeEdit(m.edit),
        (text) => textAfterRequest(text, m.edit, { file: entry.file, model: entry.model.state === 'ready' ? entry.model.model : undefined }),
        'never',
      );
      // a refused edit leaves the page showing what was typed: send the plan as it is
      if (!changed) await this.sendState();
    },
    command: (m) => this.command(m.command),
    // the page keeps its own UI state with setState; nothing for the host to do
    persist: () => undefined,
    saveChart: (m) => saveChart(m.file, defaultExportFolder(this.deps.store, this.uri)),
  };

  private async receive(raw: unknown): Promise<void> {
    if (!isWebviewToHost(raw)) {
      this.deps.log.warn(`plan editor: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
      return;
    }
    const handler = this.handlers[raw.type] as (m: WebviewToHost) => void | Promise<void>;
    try {
      await handler(raw);
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e);
      this.deps.log.error(`plan editor: ${raw.type}: ${message}`);
      void vscode.window.showErrorMessage(`Layerwise: ${message}`);
    }
  }

  private async command(command: PanelCommand): Promise<void> {
    const { sessions } = this.deps;
    switch (command) {
      case 'train':
      case 'findLr':
        await sessions.start(command, this.uri);
        return;
      case 'resume': {
        const run = sessions.interruptedRuns(await this.deps.store.open(this.uri))[0];
        if (run === undefined) {
          void vscode.window.showInformationMessage('Layerwise: there is no stopped or interrupted run of this plan to resume.');
          await this.sendState();
          return;
        }
        await sessions.start('train', this.uri, { resumeFrom: run.folder });
        return;
      }
      case 'stop':
        sessions.stop(this.uri.toString());
        return;
      case 'applyLr': {
        const outcome = sessions.lastOutcome(this.uri.toString()).lrFinder ?? (await this.stateParts()).lastLrFinder;
        await sessions.applyLr(this.uri, outcome);
        return;
      }
      case 'openReport':
        await this.deps.openReport(this.uri);
        return;
      case 'openPlanText':
        await vscode.window.showTextDocument(this.uri, { viewColumn: vscode.ViewColumn.Beside });
        return;
      case 'suggestMultipliers':
        await this.deps.tune.suggest(this.uri, 'rgn');
        return;
      case 'applySuggestion':
        await this.deps.tune.apply(this.uri);
        return;
      case 'discardSuggestion':
        this.deps.tune.discard(this.uri);
        return;
      default:
        assertNever(command, 'panel command');
    }
  }

  private async sendState(): Promise<void> {
    if (!this.ready) return;
    const state = await this.stateParts();
    this.post({ type: 'state', state });
  }

  private async stateParts(): Promise<PanelState> {
    const entry = await this.deps.store.open(this.uri);
    const last = this.deps.sessions.lastOutcome(entry.key);
    const lastReport = last.report ?? readLastReport(entry);
    const lastLrFinder = last.lrFinder ?? readLastLrFinder(entry);
    // while the model is described again (a data.augment edit re-renders the sample strip), the
    // page keeps the last description of the same model file instead of losing its tree meanwhile
    if (entry.model.state === 'ready') this.lastDescribed = { model: entry.model.model, path: entry.plan?.model, augmentPreview: entry.augmentPreview };
    else if (entry.model.state === 'failed' || this.lastDescribed?.path !== entry.plan?.model) this.lastDescribed = undefined;
    const model = this.lastDescribed?.model;
    const augmentPreview = entry.model.state === 'ready' ? entry.augmentPreview : this.lastDescribed?.augmentPreview;
    const modelProblem = entry.model.state === 'failed' ? entry.model.message : undefined;
    const interrupted = this.deps.sessions.interruptedRuns(entry)[0];
    return {
      planFile: entry.file,
      planUri: entry.key,
      ...(entry.plan === undefined ? {} : { plan: entry.plan }),
      problems: entry.problems.map((p) => ({ message: p.message, field: p.field })),
      ...(model === undefined ? {} : { model }),
      ...(modelProblem === undefined ? {} : { modelProblem }),
      ...optionalSteps(entry, lastReport),
      ...(augmentPreview === undefined ? {} : { augmentPreview }),
      trusted: vscode.workspace.isTrusted,
      presets: PRESETS.map((p) => ({ id: p.id, label: p.label, description: p.description })),
      status: this.deps.sessions.statusOf(entry.key),
      ...(lastReport === undefined ? {} : { lastReport }),
      ...(lastLrFinder === undefined ? {} : { lastLrFinder }),
      ...(interrupted === undefined ? {} : { interrupted }),
      suggestion: this.deps.tune.stateOf(entry.key),
    };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }
}

function optionalSteps(entry: PlanEntry, report: RunReport | undefined): { stepsPerEpoch?: number } {
  const batchSize = entry.plan?.training?.batchSize ?? DEFAULTS.batchSize;
  if (entry.trainSamples !== undefined) return { stepsPerEpoch: Math.max(1, Math.ceil(entry.trainSamples / batchSize)) };
  // the last run saw the same data unless it changed since; good enough for a preview
  const stage = report?.stages[0];
  if (stage !== undefined && stage.epochs > 0 && report?.plan.training?.batchSize === batchSize) return { stepsPerEpoch: Math.round(stage.steps / stage.epochs) };
  return {};
}

function describeEdit(e: PlanEditRequest): string {
  const v = (x: unknown) => (x === null ? 'its default' : JSON.stringify(x));
  switch (e.kind) {
    case 'setLayer':
      return `set layers[${JSON.stringify(e.layer)}].${e.key} to ${v(e.value)}`;
    case 'setGroup':
      return `set groups[${e.groupIndex}].${e.key} to ${v(e.value)}`;
    case 'setTraining':
      return `set training.${e.key} to ${v(e.value)}`;
    case 'applyPreset':
      return `apply the preset "${e.preset}"`;
    case 'moveLayer':
      return `move layer ${JSON.stringify(e.layer)} to groups[${e.toGroupIndex}]`;
    case 'setData':
      return `set data.${e.field} to ${v(e.value)}`;
  }
}

/** Where a chart export is proposed: the last run's folder when it exists, else the plan's. */
async function defaultExportFolder(store: PlanStore, uri: vscode.Uri): Promise<string> {
  const entry = await store.open(uri);
  const report = lastReportFile(entry);
  return report !== undefined && existsSync(path.dirname(report)) ? path.dirname(report) : path.dirname(entry.file);
}

/** A chart's CSV, SVG or PNG, written where the user says. */
async function saveChart(file: ChartExport, folder: Promise<string>): Promise<void> {
  const kind = file.format.toUpperCase();
  const target = await vscode.window.showSaveDialog({
    defaultUri: vscode.Uri.file(path.join(await folder, file.fileName)),
    filters: { [kind]: [file.format] },
    title: `Save the chart as ${kind}`,
  });
  if (target === undefined) return;
  await vscode.workspace.fs.writeFile(target, Buffer.from(file.content, file.format === 'png' ? 'base64' : 'utf8'));
  vscode.window.setStatusBarMessage(`Layerwise: saved ${path.basename(target.fsPath)}`, 5000);
}

/** A JSON file the plan's `results` names, read only when it lies inside the workspace. */
function readResultJson(entry: PlanEntry, rel: string | undefined): Record<string, unknown> | undefined {
  if (rel === undefined) return undefined;
  const file = path.resolve(path.dirname(entry.file), rel);
  if (!isInside(entry.workspaceRoot, file)) return undefined;
  try {
    const value: unknown = JSON.parse(readFileSync(file, 'utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function lastReportFile(entry: PlanEntry): string | undefined {
  const folder = entry.plan?.results?.lastRun?.folder;
  if (folder === undefined) return undefined;
  const file = path.resolve(path.dirname(entry.file), folder, 'report.json');
  return isInside(entry.workspaceRoot, file) ? file : undefined;
}

function readLastReport(entry: PlanEntry): RunReport | undefined {
  const file = lastReportFile(entry);
  const json = file === undefined ? undefined : readResultJson(entry, path.relative(path.dirname(entry.file), file));
  return json !== undefined && Array.isArray(json['epochs']) && Array.isArray(json['stages']) ? (json as unknown as RunReport) : undefined;
}

function readLastLrFinder(entry: PlanEntry): LrFinderOutcome | undefined {
  const json = readResultJson(entry, entry.plan?.results?.lrFinder?.curve);
  const apply = json?.['apply'];
  return json !== undefined && Array.isArray(json['points']) && typeof json['suggested'] === 'number' && typeof apply === 'object' && apply !== null
    ? (json as unknown as LrFinderOutcome)
    : undefined;
}
