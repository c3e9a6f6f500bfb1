/**
 * Every plan file in the workspace, as the editor holds it: its text (unsaved edits included),
 * the parsed plan or its problems (published as diagnostics), and its model's description from
 * the worker. The tree, the panels and the commands all read this one store; any change —
 * typed by hand, made by a click, or on disk — reaches them through `onDidChange`.
 */
import { statSync } from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { modelCacheKey, PLAN_EXCLUDE_GLOB, DEFAULT_PLAN_GLOB, isPlanFileName, sortPlanPaths } from '../core/plan-discovery.ts';
import { resolvePlanPath } from '../core/paths.ts';
import type { Plan } from '../core/plan.ts';
import type { ModelState } from '../core/tree-model.ts';
import { isLayerwiseError } from '../core/errors.ts';
import { planDiagnostics, type PlanDiagnostic } from '../core/plan-problems.ts';
import { collectPlanProblems, lineColumn, parsePlanText, type PlanProblem } from '../core/validate.ts';
import type { ModelDescriber } from './describer.ts';

export interface PlanEntry {
  uri: vscode.Uri;
  /** `uri.toString()`: the plan's identity everywhere (tree ids, panels, sessions). */
  key: string;
  /** Absolute path of the plan file. */
  file: string;
  /** The workspace folder that holds it (or the plan's own folder outside a workspace). */
  workspaceRoot: string;
  /** Workspace-relative path, for the tree and messages. */
  label: string;
  text: string;
  plan: Plan | undefined;
  problems: PlanProblem[];
  /** What the Problems panel shows for the plan (and the Quick Fixes read): core/plan-problems.ts. */
  diagnostics: PlanDiagnostic[];
  model: ModelState;
  /** Why the model or its data cannot be loaded, and the field to blame. */
  modelFailure?: { field?: string; problem: string };
  /** model.json files in the workspace, relative to the plan's folder: offered when `model` is wrong. */
  modelCandidates?: string[];
  trainSamples?: number;
  modelKey?: string;
}

const DEBOUNCE_MS = 200;

export class PlanStore implements vscode.Disposable {
  private readonly entries = new Map<string, PlanEntry>();
  private readonly timers = new Map<string, ReturnType<typeof setTimeout>>();
  private readonly changed = new vscode.EventEmitter<PlanEntry | undefined>();
  private readonly disposables: vscode.Disposable[] = [];
  private watchers: vscode.FileSystemWatcher[] = [];
  private discovery: Promise<void> | undefined;

  /** Fires with the plan that changed, or undefined when the list of plans changed. */
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly describer: ModelDescriber,
    private readonly diagnostics: vscode.DiagnosticCollection,
    private readonly log: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      this.changed,
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length > 0 && this.entries.has(e.document.uri.toString())) this.schedule(e.document.uri);
      }),
      vscode.workspace.onDidOpenTextDocument((doc) => {
        // a plan opened from outside the glob (or before discovery finished) joins the store
        if (doc.uri.scheme === 'file' && isPlanFileName(doc.uri.fsPath) && !this.entries.has(doc.uri.toString())) void this.add(doc.uri);
      }),
      // closing without saving drops the unsaved text: back to what is on disk
      vscode.workspace.onDidCloseTextDocument((doc) => {
        if (this.entries.has(doc.uri.toString())) this.schedule(doc.uri);
      }),
      vscode.workspace.onDidChangeWorkspaceFolders(() => this.rediscover()),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('layerwise.planGlob')) this.rediscover();
      }),
    );
  }

  /** Resolves once the workspace has been searched for plans (started on first use, not at activation). */
  ready(): Promise<void> {
    this.discovery ??= this.discover();
    return this.discovery;
  }

  list(): PlanEntry[] {
    const byLabel = new Map([...this.entries.values()].map((e) => [e.label, e]));
    return sortPlanPaths([...byLabel.keys()]).map((l) => byLabel.get(l)!);
  }

  get(key: string): PlanEntry | undefined {
    return this.entries.get(key);
  }

  /** The entry for a plan file, reading it now if the store does not know it yet. */
  async open(uri: vscode.Uri): Promise<PlanEntry> {
    await this.ready();
    return this.entries.get(uri.toString()) ?? (await this.add(uri));
  }

  /** The Refresh command: search again, re-read every plan, reload every model. */
  refresh(): void {
    this.describer.clear();
    for (const e of this.entries.values()) e.modelKey = undefined;
    this.rediscover();
  }

  private rediscover(): void {
    this.discovery = this.discover();
  }

  private async discover(): Promise<void> {
    for (const w of this.watchers) w.dispose();
    this.watchers = [];
    // planGlob is resource-scoped: each workspace folder is searched with its own setting
    const scopes = vscode.workspace.workspaceFolders ?? [];
    const found: vscode.Uri[] = [];
    for (const folder of scopes) {
      const glob = vscode.workspace.getConfiguration('layerwise', folder.uri).get<string>('planGlob') || DEFAULT_PLAN_GLOB;
      const pattern = new vscode.RelativePattern(folder, glob);
      const watcher = vscode.workspace.createFileSystemWatcher(pattern);
      watcher.onDidCreate((uri) => void this.add(uri));
      watcher.onDidDelete((uri) => this.remove(uri));
      watcher.onDidChange((uri) => {
        // open documents follow the disk through onDidChangeTextDocument already
        if (!vscode.workspace.textDocuments.some((d) => d.uri.toString() === uri.toString())) this.schedule(uri);
      });
      this.watchers.push(watcher);
      try {
        found.push(...(await vscode.workspace.findFiles(pattern, PLAN_EXCLUDE_GLOB)));
      } catch (e) {
        this.log.error(`cannot search ${folder.name} for plans (${glob}): ${String(e)}`);
      }
    }
    const wanted = new Set(found.map((u) => u.toString()));
    for (const key of [...this.entries.keys()]) {
      const open = vscode.workspace.textDocuments.some((d) => d.uri.toString() === key);
      if (!wanted.has(key) && !open) this.remove(vscode.Uri.parse(key), false);
    }
    await Promise.all(found.map((u) => this.add(u, false)));
    void vscode.commands.executeCommand('setContext', 'layerwise.hasPlans', this.entries.size > 0);
    this.changed.fire(undefined);
  }

  private async add(uri: vscode.Uri, notify = true): Promise<PlanEntry> {
    const key = uri.toString();
    const existing = this.entries.get(key);
    if (existing !== undefined) {
      await this.reload(existing);
      return existing;
    }
    const folder = vscode.workspace.getWorkspaceFolder(uri);
    const entry: PlanEntry = {
      uri,
      key,
      file: uri.fsPath,
      workspaceRoot: folder?.uri.fsPath ?? path.dirname(uri.fsPath),
      label: vscode.workspace.asRelativePath(uri, (vscode.workspace.workspaceFolders?.length ?? 0) > 1),
      text: '',
      plan: undefined,
      problems: [],
      diagnostics: [],
      model: { state: 'loading' },
    };
    this.entries.set(key, entry);
    await this.reload(entry, false);
    if (notify) {
      void vscode.commands.executeCommand('setContext', 'layerwise.hasPlans', true);
      this.changed.fire(undefined);
    }
    return entry;
  }

  private remove(uri: vscode.Uri, notify = true): void {
    const key = uri.toString();
    if (!this.entries.delete(key)) return;
    this.diagnostics.delete(uri);
    if (notify) {
      void vscode.commands.executeCommand('setContext', 'layerwise.hasPlans', this.entries.size > 0);
      this.changed.fire(undefined);
    }
  }

  private schedule(uri: vscode.Uri): void {
    const key = uri.toString();
    const t = this.timers.get(key);
    if (t !== undefined) clearTimeout(t);
    this.timers.set(key, setTimeout(() => {
      this.timers.delete(key);
      const entry = this.entries.get(key);
      if (entry !== undefined) void this.reload(entry);
    }, DEBOUNCE_MS));
  }

  /** Re-reads the plan now (skipping the debounce), e.g. right after the host edited it. */
  async reloadNow(key: string): Promise<PlanEntry | undefined> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const t = this.timers.get(key);
    if (t !== undefined) clearTimeout(t);
    this.timers.delete(key);
    await this.reload(entry);
    return entry;
  }

  private async reload(entry: PlanEntry, notify = true): Promise<void> {
    const text = await readText(entry.uri);
    if (text === undefined) {
      this.remove(entry.uri, notify);
      return;
    }
    entry.text = text;
    entry.problems = collectPlanProblems(text, entry.file);
    entry.plan = entry.problems.length === 0 ? parseOrUndefined(text, entry.file) : undefined;
    if (entry.plan !== undefined) this.describe(entry, entry.plan);
    this.publish(entry);
    if (notify) this.changed.fire(entry);
  }

  /** Puts the plan's problems in the Problems panel; again whenever the model's description arrives. */
  private publish(entry: PlanEntry): void {
    const model = entry.model.state === 'ready' ? entry.model.model : undefined;
    entry.diagnostics = planDiagnostics(entry.text, {
      file: entry.file,
      ...(model === undefined ? {} : { model }),
      ...(entry.modelFailure === undefined ? {} : { modelProblem: entry.modelFailure }),
      ...(entry.modelCandidates === undefined ? {} : { modelCandidates: entry.modelCandidates }),
    });
    this.diagnostics.set(entry.uri, entry.diagnostics.map((d) => toDiagnostic(entry.text, d)));
  }

  /** A wrong `model` path: look for the model files the Quick Fix can offer instead. */
  private async findModelCandidates(entry: PlanEntry): Promise<void> {
    const folder = vscode.workspace.getWorkspaceFolder(entry.uri);
    const include = folder === undefined ? '**/model.json' : new vscode.RelativePattern(folder, '**/model.json');
    const found = await vscode.workspace.findFiles(include, PLAN_EXCLUDE_GLOB, 20);
    entry.modelCandidates = found.map((u) => path.relative(path.dirname(entry.file), u.fsPath).split(path.sep).join('/')).sort();
    this.publish(entry);
  }

  private failModel(entry: PlanEntry, e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    entry.model = { state: 'failed', message };
    entry.modelFailure = isLayerwiseError(e) ? { ...(e.field === undefined ? {} : { field: e.field }), problem: e.problem } : { problem: message };
    if ((entry.modelFailure.field ?? 'model') === 'model') void this.findModelCandidates(entry).catch((err: unknown) => this.log.warn(`cannot search for model files: ${String(err)}`));
  }

  private describe(entry: PlanEntry, plan: Plan): void {
    let stamp: string;
    try {
      const modelPath = resolvePlanPath(entry.file, plan.model, 'model', entry.workspaceRoot);
      stamp = fileStamp(modelPath);
    } catch (e) {
      entry.modelKey = undefined;
      this.failModel(entry, e);
      return;
    }
    const key = modelCacheKey(plan, stamp);
    if (key === entry.modelKey) return;
    entry.modelKey = key;
    entry.model = { state: 'loading' };
    entry.modelFailure = undefined;
    entry.trainSamples = undefined;
    this.describer
      .describe(key, { type: 'describe', planFile: entry.file, workspaceRoot: entry.workspaceRoot, planText: entry.text, backend: 'cpu' })
      .then(
        (d) => {
          if (entry.modelKey !== key) return;
          entry.model = { state: 'ready', model: d.model };
          entry.trainSamples = d.trainSamples;
          this.publish(entry);
          this.changed.fire(entry);
        },
        (e: unknown) => {
          if (entry.modelKey !== key) return;
          this.log.warn(`${entry.label}: the model cannot be described: ${e instanceof Error ? e.message : String(e)}`);
          this.failModel(entry, e);
          // try again on the next edit or refresh
          entry.modelKey = undefined;
          this.publish(entry);
          this.changed.fire(entry);
        },
      );
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const w of this.watchers) w.dispose();
    for (const d of this.disposables) d.dispose();
  }
}

function parseOrUndefined(text: string, file: string): Plan | undefined {
  try {
    return parsePlanText(text, file);
  } catch {
    return undefined;
  }
}

/** The editor's text when the plan is open (unsaved edits included), else the file on disk. */
async function readText(uri: vscode.Uri): Promise<string | undefined> {
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (doc !== undefined) return doc.getText();
  try {
    return new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
  } catch {
    return undefined;
  }
}

/** Changes whenever the model file is rewritten; a folder stands for its model.json. */
function fileStamp(p: string): string {
  for (const candidate of [p, path.join(p, 'model.json')]) {
    try {
      const s = statSync(candidate);
      if (s.isFile()) return `${s.mtimeMs}:${s.size}`;
    } catch {
      // missing: the worker reports it with the plan's field
    }
  }
  return 'missing';
}

/** The Diagnostic's source; with its code and range it finds its finding (and fixes) in `entry.diagnostics`. */
export const DIAGNOSTIC_SOURCE = 'layerwise';

export function toDiagnostic(text: string, p: PlanDiagnostic): vscode.Diagnostic {
  const start = lineColumn(text, p.offset);
  const end = lineColumn(text, p.offset + p.length);
  const range = new vscode.Range(start.line - 1, start.column - 1, end.line - 1, end.column - 1);
  const severity = p.severity === 'error' ? vscode.DiagnosticSeverity.Error : vscode.DiagnosticSeverity.Warning;
  const d = new vscode.Diagnostic(range, p.message, severity);
  d.source = DIAGNOSTIC_SOURCE;
  d.code = p.code;
  return d;
}
