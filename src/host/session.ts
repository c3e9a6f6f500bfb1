/**
 * Training and LR range tests, each in its own forked worker: one run per plan at a time. A run
 * is a cleanup scope (rust-analyzer's per-server scope): its process, listeners and timers go
 * away together however it ends — finished, failed, stopped or crashed — and the extension keeps
 * working. Progress moves one `TrainingStatus` per plan; the status bar and the panel draw it.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { setPlanValue } from '../core/plan-edit.ts';
import type { LrFinderOutcome } from '../core/lr-finder.ts';
import type { PlanResults } from '../core/plan.ts';
import type { RunReport, TrainEvent } from '../core/progress.ts';
import { lrSummary, statusAfterEvent, trainSummary, type JobKind, type TrainingStatus } from '../core/status.ts';
import type { HostToWebview } from '../protocol/webview.ts';
import { BACKEND_PREFERENCES, type BackendPreference, type HostToWorker, type WorkerToHost } from '../protocol/worker.ts';
import type { PlanEditor } from './edits.ts';
import { mergeResults } from '../core/plan-edit.ts';
import { findInterruptedRuns, type InterruptedRun } from '../core/interrupted-runs.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { DEFAULTS } from '../core/plan.ts';
import { textWithSuggestedLr } from './plan-requests.ts';
import type { PlanEntry, PlanStore } from './plans.ts';
import { describeExit, WorkerProcess, type WorkerExit } from './worker-process.ts';
import { refusedInRestrictedMode } from './trust.ts';

/**
 * How long a stopped run may take to answer the cancel before its process is killed: the worker
 * reads it between batches, and one batch of a large model takes seconds.
 */
export const STOP_ANSWER_MS = 10_000;
/** How long a run that answered may take to end its batch and write its checkpoint. */
export const STOP_SAVE_MS = 120_000;
/** A cap on the events kept for replay (step events are throttled to a few per second). */
const MAX_REPLAY_EVENTS = 20_000;

export interface RunSettings {
  backend: BackendPreference;
  progressRefreshMs: number;
  diagnosticsEvery: number | undefined;
  /** layerwise.pythonPath: the interpreter for PyTorch plans (a machine setting; wins over the plan's pytorch.python). */
  python: string | undefined;
}

export function readRunSettings(): RunSettings {
  const config = vscode.workspace.getConfiguration('layerwise');
  const backend = config.get<string>('backend', 'auto');
  const refresh = config.get<number>('progressRefreshMs', 250);
  const diagnostics = config.get<number | null>('diagnosticsEvery', null);
  const python = config.get<string>('pythonPath', '').trim();
  return {
    python: python === '' ? undefined : python,
    backend: (BACKEND_PREFERENCES as readonly string[]).includes(backend) ? (backend as BackendPreference) : 'auto',
    progressRefreshMs: Number.isFinite(refresh) && refresh >= 50 ? refresh : 250,
    diagnosticsEvery: typeof diagnostics === 'number' && Number.isInteger(diagnostics) && diagnostics >= 0 ? diagnostics : undefined,
  };
}

export interface PlanStatusChange {
  planKey: string;
  status: TrainingStatus;
}

export interface PanelMessage {
  planKey: string;
  message: HostToWebview;
}

interface Run {
  id: string;
  job: JobKind;
  entry: PlanEntry;
  worker: WorkerProcess;
  scope: vscode.Disposable[];
  stopRequested: boolean;
  finished: boolean;
  /** Kills the process when a stop takes too long; replaced when the worker answers the cancel. */
  stopTimer?: ReturnType<typeof setTimeout>;
}

export class TrainingSessions implements vscode.Disposable {
  private readonly runs = new Map<string, Run>();
  private readonly statuses = new Map<string, TrainingStatus>();
  private readonly lastOutcomes = new Map<string, { report?: RunReport; lrFinder?: LrFinderOutcome }>();
  private readonly statusChanged = new vscode.EventEmitter<PlanStatusChange>();
  private readonly posted = new vscode.EventEmitter<PanelMessage>();
  /** The running job's events per plan, replayed to a panel page that (re)loads mid-run. */
  private readonly runEvents = new Map<string, { job: JobKind; events: TrainEvent[] }>();
  /** The plan whose status changed last: the one the status bar shows. */
  private latestKey: string | undefined;

  readonly onDidChangeStatus = this.statusChanged.event;
  /** Messages for the plan's panel (run started, train events, report, LR result). */
  readonly onDidPost = this.posted.event;

  constructor(
    private readonly workerScript: string,
    private readonly store: PlanStore,
    private readonly editor: PlanEditor,
    private readonly log: vscode.LogOutputChannel,
    private readonly hooks: { openPanel(uri: vscode.Uri): void; openReport(file: string): void },
  ) {
    this.storeListener = store.onDidChange((entry) => {
      for (const e of entry === undefined ? store.list() : [entry]) this.dropStaleLrSuggestion(e);
    });
  }

  private readonly storeListener: vscode.Disposable;
  /** The plan's `model` an LR range test's suggestion was measured on, per plan. */
  private readonly lrSuggestionModel = new Map<string, string>();

  /**
   * An LR range test's suggestion holds for the model it swept: once the plan's model cannot be
   * read or the plan names another one, the status bar stops offering it (the status goes idle).
   */
  private dropStaleLrSuggestion(entry: PlanEntry): void {
    const status = this.statusOf(entry.key);
    if (status.state !== 'succeeded' || status.job !== 'findLr' || this.runs.has(entry.key)) return;
    const measuredOn = this.lrSuggestionModel.get(entry.key);
    if (entry.model.state !== 'failed' && entry.plan !== undefined && entry.plan.model === measuredOn) return;
    this.lrSuggestionModel.delete(entry.key);
    this.log.info(`${entry.label}: the LR suggestion is dropped: ${entry.model.state === 'failed' ? 'the model cannot be read' : 'the plan names another model'}`);
    this.setStatus(entry.key, { state: 'idle' });
  }

  statusOf(planKey: string): TrainingStatus {
    return this.statuses.get(planKey) ?? { state: 'idle' };
  }

  /** The status the status bar shows: the last plan that changed. */
  latest(): { planKey: string; status: TrainingStatus } | undefined {
    return this.latestKey === undefined ? undefined : { planKey: this.latestKey, status: this.statusOf(this.latestKey) };
  }

  lastOutcome(planKey: string): { report?: RunReport; lrFinder?: LrFinderOutcome } {
    return this.lastOutcomes.get(planKey) ?? {};
  }

  eventsOf(planKey: string): { job: JobKind; events: readonly TrainEvent[] } | undefined {
    return this.runEvents.get(planKey);
  }

  isRunning(planKey: string): boolean {
    return this.runs.has(planKey);
  }

  anyRunning(): boolean {
    return this.runs.size > 0;
  }

  /** Starts a run. Refuses (with a message, resolving false) in untrusted workspaces, for a plan with problems, or while the plan runs. */
  async start(job: JobKind, planUri: vscode.Uri, opts: { resumeFrom?: string } = {}): Promise<boolean> {
    const what = job === 'train' ? 'Training' : 'The LR range test';
    if (await refusedInRestrictedMode(what, "it loads the workspace's model and data")) return false;
    const entry = await this.store.open(planUri);
    await this.store.reloadNow(entry.key);
    if (this.runs.has(entry.key)) {
      const choice = await vscode.window.showWarningMessage(`Layerwise: ${entry.label} is already running.`, 'Stop It');
      if (choice !== undefined) this.stop(entry.key);
      return false;
    }
    if (entry.plan === undefined) {
      const n = entry.problems.length;
      const choice = await vscode.window.showErrorMessage(
        `Layerwise: ${entry.label} has ${n === 0 ? 'problems' : `${n} problem${n === 1 ? '' : 's'}`}; fix ${n === 1 ? 'it' : 'them'} first.`,
        'Show Problems',
      );
      if (choice !== undefined) void vscode.commands.executeCommand('workbench.actions.view.problems');
      return false;
    }

    const settings = readRunSettings();
    let planText = entry.text;
    // the setting is the default for plans that do not choose; the file itself is not changed
    if (settings.diagnosticsEvery !== undefined && entry.plan.training?.diagnosticsEvery === undefined) {
      planText = setPlanValue(planText, ['training', 'diagnosticsEvery'], settings.diagnosticsEvery);
    }
    const id = randomUUID();
    const worker = new WorkerProcess(this.workerScript, this.log, { cwd: entry.workspaceRoot, label: `${job === 'train' ? 'train' : 'find-lr'} ${entry.label}` });
    const run: Run = { id, job, entry, worker, scope: [], stopRequested: false, finished: false };
    this.runs.set(entry.key, run);
    this.runEvents.set(entry.key, { job, events: [] });
    run.scope.push({ dispose: worker.onMessage((m) => void this.onMessage(run, m)) });
    run.scope.push({ dispose: worker.onExit((info) => this.onExit(run, info)) });

    this.log.info(`${entry.label}: ${job === 'train' ? (opts.resumeFrom === undefined ? 'training' : `training resumed from ${opts.resumeFrom}`) : 'LR range test'} started (worker pid ${worker.pid ?? '?'}, backend ${settings.backend})`);
    this.setStatus(entry.key, { state: 'starting', job, planFile: entry.label });
    this.post(entry.key, { type: 'runStarted', job });
    if (job === 'train' && vscode.workspace.getConfiguration('layerwise').get<boolean>('openPanelOnTrain', true)) this.hooks.openPanel(entry.uri);

    const target = { planFile: entry.file, workspaceRoot: entry.workspaceRoot, planText, backend: settings.backend };
    const request: HostToWorker = job === 'train'
      ? {
          type: 'train',
          id,
          ...target,
          progressIntervalMs: settings.progressRefreshMs,
          ...(opts.resumeFrom !== undefined && { resumeFrom: opts.resumeFrom }),
          ...(settings.python !== undefined ? { python: settings.python } : {}),
        }
      : { type: 'findLr', id, ...target, options: {}, ...(settings.python !== undefined ? { python: settings.python } : {}) };
    worker.ready.then(
      () => {
        if (!run.finished && !worker.send(request)) this.log.error(`${entry.label}: cannot send the job to the worker`);
      },
      () => undefined, // reported by onExit
    );
    return true;
  }

  /**
   * Asks the run to stop at its next batch (a training run writes a checkpoint first); a second
   * stop, or no answer within STOP_ANSWER_MS, or no end within STOP_SAVE_MS of the answer, kills
   * its process.
   */
  stop(planKey: string): boolean {
    const run = this.runs.get(planKey);
    if (run === undefined || run.finished) return false;
    if (run.stopRequested) {
      this.log.warn(`${run.entry.label}: stopped again; killing the worker`);
      run.worker.stop(true);
      return true;
    }
    run.stopRequested = true;
    this.log.info(`${run.entry.label}: stop requested`);
    run.worker.send({ type: 'cancel', id: run.id });
    this.killAfter(run, STOP_ANSWER_MS, 'did not answer the stop');
    run.scope.push({ dispose: () => clearTimeout(run.stopTimer) });
    return true;
  }

  private killAfter(run: Run, ms: number, why: string): void {
    clearTimeout(run.stopTimer);
    run.stopTimer = setTimeout(() => {
      if (run.finished) return;
      this.log.warn(`${run.entry.label}: the worker ${why} within ${ms / 1000} s; killing it`);
      run.worker.stop(true);
    }, ms);
  }

  private async onMessage(run: Run, m: WorkerToHost): Promise<void> {
    if (run.finished || ('id' in m && m.id !== run.id)) return;
    const key = run.entry.key;
    switch (m.type) {
      case 'ready':
        return;
      case 'stopping':
        this.log.info(`${run.entry.label}: stopping at the end of this batch${run.job === 'train' ? ', after writing a checkpoint' : ''} (Stop again ends it at once)`);
        vscode.window.setStatusBarMessage(`Layerwise: stopping ${run.entry.label}… (Stop again ends it at once)`, 5000);
        this.killAfter(run, STOP_SAVE_MS, 'did not finish stopping');
        return;
      case 'event': {
        const buffer = this.runEvents.get(key)?.events;
        if (buffer !== undefined && buffer.length < MAX_REPLAY_EVENTS) buffer.push(m.event);
        this.logEvent(run, m.event);
        this.setStatus(key, statusAfterEvent(this.statusOf(key), m.event));
        this.post(key, { type: 'trainEvent', event: m.event });
        return;
      }
      case 'described':
      case 'tuned':
        return;
      case 'trained': {
        this.finish(run);
        this.rememberOutcome(key, { report: m.report });
        this.post(key, { type: 'report', report: m.report });
        const summary = trainSummary(m.report);
        this.log.info(`${run.entry.label}: ${summary}; report ${m.reportFile}`);
        if (m.report.stopped === 'cancelled') this.setStatus(key, { state: 'cancelled', job: run.job, planFile: run.entry.label });
        else this.setStatus(key, { state: 'succeeded', job: run.job, planFile: run.entry.label, summary, reportFile: m.reportFile });
        await this.writeResults(run, m.results, m.reportFile);
        if (m.report.stopped !== 'cancelled') {
          const choice = await vscode.window.showInformationMessage(`Layerwise: ${run.entry.label}: ${summary}`, 'Open Report', 'Open Plan Editor');
          if (choice === 'Open Report') this.hooks.openReport(m.reportFile);
          else if (choice === 'Open Plan Editor') this.hooks.openPanel(run.entry.uri);
        }
        return;
      }
      case 'lrFound': {
        this.finish(run);
        this.rememberOutcome(key, { lrFinder: m.outcome });
        if (run.entry.plan !== undefined) this.lrSuggestionModel.set(key, run.entry.plan.model);
        this.post(key, { type: 'lrResult', outcome: m.outcome });
        const summary = lrSummary(m.outcome);
        this.log.info(`${run.entry.label}: ${summary}; curve ${m.curveFile}`);
        this.setStatus(key, { state: 'succeeded', job: run.job, planFile: run.entry.label, summary });
        await this.writeResults(run, m.results);
        const apply = `Set ${m.outcome.apply.field}`;
        const choice = await vscode.window.showInformationMessage(`Layerwise: ${run.entry.label}: ${summary}`, apply, 'Open Curve');
        if (choice === apply) await this.applyLr(run.entry.uri, m.outcome);
        else if (choice === 'Open Curve') this.hooks.openReport(m.curveFile);
        return;
      }
      case 'failed': {
        this.finish(run);
        if (m.cancelled || run.stopRequested) {
          this.log.info(`${run.entry.label}: stopped`);
          this.setStatus(key, { state: 'cancelled', job: run.job, planFile: run.entry.label });
          return;
        }
        this.log.error(`${run.entry.label}: ${m.problem.message}`);
        this.setStatus(key, { state: 'failed', job: run.job, planFile: run.entry.label, message: m.problem.message });
        // a run that failed after a checkpoint (a full disk, say) can continue once the cause is fixed
        const resumable = run.job === 'train' ? this.interruptedRuns(run.entry)[0] : undefined;
        const choice = await vscode.window.showErrorMessage(`Layerwise: ${m.problem.message}`, ...(resumable ? ['Resume'] : []), 'Show Log');
        if (choice === 'Resume' && resumable) await this.start('train', run.entry.uri, { resumeFrom: resumable.folder });
        else if (choice !== undefined) this.log.show(true);
        return;
      }
      default: {
        const never: never = m;
        this.log.warn(`unexpected worker message ${JSON.stringify(never)}`);
      }
    }
  }

  private onExit(run: Run, info: WorkerExit): void {
    if (run.finished) return;
    this.finish(run);
    const key = run.entry.key;
    if (run.stopRequested) {
      this.log.info(`${run.entry.label}: stopped (${describeExit(info)})`);
      this.setStatus(key, { state: 'cancelled', job: run.job, planFile: run.entry.label });
      return;
    }
    const resumable = run.job === 'train' ? this.interruptedRuns(run.entry)[0] : undefined;
    const kept = resumable === undefined ? '' : `; its last checkpoint (step ${resumable.step}) is kept and it can be resumed`;
    const message = `${describeExit(info)} before the ${run.job === 'train' ? 'training' : 'LR range test'} finished; the plan is unchanged${kept} (see the Layerwise log)`;
    this.log.error(`${run.entry.label}: ${message}`);
    this.setStatus(key, { state: 'failed', job: run.job, planFile: run.entry.label, message });
    void vscode.window.showErrorMessage(`Layerwise: ${message}`, ...(resumable ? ['Resume'] : []), 'Show Log').then((c) => {
      if (c === 'Resume' && resumable) void this.start('train', run.entry.uri, { resumeFrom: resumable.folder });
      else if (c !== undefined) this.log.show(true);
    });
  }

  /** Ends the run's scope: the process is closed (it exits on disconnect), listeners and timers go. */
  private finish(run: Run): void {
    run.finished = true;
    if (this.runs.get(run.entry.key) === run) {
      this.runs.delete(run.entry.key);
      this.runEvents.delete(run.entry.key);
    }
    for (const d of run.scope.splice(0)) d.dispose();
    // closing the channel lets the worker flush its last output and exit by itself
    const worker = run.worker;
    worker.stop();
    const timer = setTimeout(() => worker.stop(true), 5000);
    timer.unref?.();
    worker.onExit(() => clearTimeout(timer));
  }

  private async writeResults(run: Run, results: PlanResults, reportFile?: string): Promise<void> {
    if (!(await exists(run.entry.uri))) {
      // deleted or renamed during the run: never recreate it; say where the results are
      const where = reportFile ?? 'the run folder';
      this.log.warn(`${run.entry.label} was deleted or renamed during the run; the results are in ${where}`);
      void vscode.window.showWarningMessage(`Layerwise: ${run.entry.label} was deleted or renamed during the run; the results are in ${where}.`);
      return;
    }
    await this.editor.edit(run.entry.uri, "write the run's results into the plan", (text) => mergeResults(text, results, run.entry.file));
  }

  /** The plan's runs that stopped, crashed or were cut off by a reload and can be resumed, newest first. */
  interruptedRuns(entry: PlanEntry): InterruptedRun[] {
    if (this.runs.has(entry.key)) return [];
    try {
      const root = resolvePlanPath(entry.file, entry.plan?.output ?? DEFAULTS.output, 'output', entry.workspaceRoot);
      return findInterruptedRuns(root, entry.file);
    } catch {
      // an output path the plan cannot use: the plan's diagnostics say so
      return [];
    }
  }

  /** A notification offering to resume the plan's newest interrupted run (at activation). */
  async offerResume(entry: PlanEntry): Promise<void> {
    const run = this.interruptedRuns(entry)[0];
    if (run === undefined) return;
    const how = run.how === 'crashed' ? 'was interrupted (the process ended: a crash, a kill or a window reload)' : 'was stopped';
    const choice = await vscode.window.showInformationMessage(
      `Layerwise: a training run of ${entry.label} ${how} at step ${run.step}; its checkpoint is kept.`,
      'Resume',
      'Not Now',
    );
    if (choice === 'Resume') await this.start('train', entry.uri, { resumeFrom: run.folder });
  }

  /** Sets the field an LR range test's suggestion applies to (`training.lr` or a group's multiplier). */
  async applyLr(planUri: vscode.Uri, outcome?: LrFinderOutcome): Promise<boolean> {
    const o = outcome ?? this.lastOutcome(planUri.toString()).lrFinder;
    if (o === undefined) {
      void vscode.window.showInformationMessage('Layerwise: run "Find Learning Rate" first; there is no suggestion to apply.');
      return false;
    }
    return this.editor.edit(planUri, `set ${o.apply.field} to the suggested ${o.apply.value.toPrecision(3)}`, (text) => textWithSuggestedLr(text, o));
  }

  rememberOutcome(planKey: string, outcome: { report?: RunReport; lrFinder?: LrFinderOutcome }): void {
    this.lastOutcomes.set(planKey, { ...this.lastOutcomes.get(planKey), ...outcome });
  }

  private logEvent(run: Run, e: TrainEvent): void {
    const label = run.entry.label;
    switch (e.kind) {
      case 'stage':
        this.log.info(`${label}: stage ${e.stage}/${e.stages}: ${e.epochs} epoch(s), training ${e.trainGroups.join(', ') || 'nothing'} at lr ${e.lr}`);
        return;
      case 'epoch': {
        const val = e.valLoss === undefined ? '' : ` · val loss ${e.valLoss.toFixed(4)}${e.valAccuracy === undefined ? '' : ` · val acc ${e.valAccuracy.toFixed(4)}`}`;
        this.log.info(`${label}: epoch ${e.epoch}: loss ${e.trainLoss.toFixed(4)}${val} (${e.seconds.toFixed(1)} s)`);
        return;
      }
      case 'log':
        if (e.level === 'error') this.log.error(`${label}: ${e.message}`);
        else if (e.level === 'warn') this.log.warn(`${label}: ${e.message}`);
        else this.log.info(`${label}: ${e.message}`);
        return;
      case 'step':
      case 'diagnostics':
        return;
    }
  }

  private setStatus(planKey: string, status: TrainingStatus): void {
    this.statuses.set(planKey, status);
    this.latestKey = planKey;
    this.statusChanged.fire({ planKey, status });
    this.post(planKey, { type: 'status', status });
  }

  private post(planKey: string, message: HostToWebview): void {
    this.posted.fire({ planKey, message });
  }

  stopAll(): void {
    for (const key of [...this.runs.keys()]) this.stop(key);
  }

  dispose(): void {
    for (const run of [...this.runs.values()]) {
      run.finished = true;
      for (const d of run.scope.splice(0)) d.dispose();
      // the window is closing or reloading: closing the channel makes a training worker write a
      // checkpoint at its current batch and exit (worker.ts), so the run is offered for resume
      run.worker.stop();
    }
    this.runs.clear();
    this.storeListener.dispose();
    this.statusChanged.dispose();
    this.posted.dispose();
  }
}

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}
