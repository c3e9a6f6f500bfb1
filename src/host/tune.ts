/**
 * "Suggest Multipliers": `tune` in its own forked worker (one per plan at a time, cancellable
 * from the notification), the suggestion kept per plan and shown in the plan editor before
 * anything changes; Apply goes through the one edit path (a WorkspaceEdit, so Undo works) and is
 * refused while the plan has unsaved edits the suggestion was not computed from.
 */
import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import { applyTuneResult, type TuneMethod, type TuneResult } from '../core/tune.ts';
import type { SuggestionState } from '../protocol/webview.ts';
import type { PlanEditor } from './edits.ts';
import type { PlanStore } from './plans.ts';
import { readRunSettings } from './session.ts';
import { describeExit, WorkerProcess } from './worker-process.ts';
import { refusedInRestrictedMode } from './trust.ts';

export interface SuggestionChange {
  planKey: string;
  suggestion: SuggestionState;
}

export class TuneSessions implements vscode.Disposable {
  private readonly states = new Map<string, SuggestionState>();
  private readonly workers = new Map<string, WorkerProcess>();
  private readonly changed = new vscode.EventEmitter<SuggestionChange>();
  readonly onDidChange = this.changed.event;

  constructor(
    private readonly workerScript: string,
    private readonly store: PlanStore,
    private readonly editor: PlanEditor,
    private readonly log: vscode.LogOutputChannel,
  ) {}

  stateOf(planKey: string): SuggestionState {
    return this.states.get(planKey) ?? { state: 'none' };
  }

  /** Measures in a worker; refused (resolving false) in untrusted workspaces, for a plan with problems, or while one runs. */
  async suggest(planUri: vscode.Uri, method: TuneMethod): Promise<boolean> {
    if (await refusedInRestrictedMode('Suggest Multipliers', 'it loads and runs the workspace’s model on its data')) return false;
    const entry = await this.store.open(planUri);
    await this.store.reloadNow(entry.key);
    if (this.workers.has(entry.key)) {
      void vscode.window.showInformationMessage(`Layerwise: multipliers for ${entry.label} are already being measured.`);
      return false;
    }
    if (entry.plan === undefined) {
      void vscode.window.showErrorMessage(`Layerwise: ${entry.label} has problems; fix them first.`);
      return false;
    }
    const settings = readRunSettings();
    const id = randomUUID();
    const worker = new WorkerProcess(this.workerScript, this.log, { cwd: entry.workspaceRoot, label: `tune ${entry.label}` });
    this.workers.set(entry.key, worker);
    this.set(entry.key, { state: 'running', method });
    this.log.info(`${entry.label}: suggesting multipliers (${method}, worker pid ${worker.pid ?? '?'})`);
    const planText = entry.text;
    const outcome = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Layerwise: measuring multipliers for ${entry.label} (${method})`, cancellable: true },
      (progress, token) =>
        new Promise<TuneResult | string | undefined>((resolve) => {
          const scope: vscode.Disposable[] = [];
          const done = (r: TuneResult | string | undefined) => {
            for (const d of scope.splice(0)) d.dispose();
            worker.stop();
            resolve(r);
          };
          scope.push(
            { dispose: worker.onMessage((m) => {
              if (!('id' in m) || m.id !== id) return;
              if (m.type === 'tuned') done(m.result);
              else if (m.type === 'failed') done(m.cancelled ? undefined : m.problem.message);
              else if (m.type === 'event' && m.event.kind === 'step') progress.report({ message: `step ${m.event.step} of ${m.event.totalSteps}` });
            }) },
            { dispose: worker.onExit((info) => done(`${describeExit(info)} before the suggestion was ready`)) },
            token.onCancellationRequested(() => {
              worker.send({ type: 'cancel', id });
              done(undefined);
            }),
          );
          worker.ready.then(
            () => worker.send({ type: 'tune', id, planFile: entry.file, workspaceRoot: entry.workspaceRoot, planText, backend: settings.backend, method }),
            () => undefined,
          );
        }),
    );
    this.workers.delete(entry.key);
    if (typeof outcome === 'object') {
      this.set(entry.key, { state: 'ready', result: outcome });
      this.log.info(`${entry.label}: suggested ${outcome.groups.map((g) => `${g.name} ×${g.lrMult}`).join(', ')}`);
      return true;
    }
    this.set(entry.key, { state: 'none' });
    if (typeof outcome === 'string') {
      this.log.error(`${entry.label}: ${outcome}`);
      void vscode.window.showErrorMessage(`Layerwise: ${outcome}`);
    }
    return false;
  }

  /**
   * Writes the suggestion into the plan. Refused while the document is dirty: its unsaved text is
   * not what the suggestion was measured on, and applying would clobber edits the user has not saved.
   */
  async apply(planUri: vscode.Uri): Promise<boolean> {
    const key = planUri.toString();
    const s = this.stateOf(key);
    if (s.state !== 'ready') {
      void vscode.window.showInformationMessage('Layerwise: there is no suggestion to apply; run "Suggest Multipliers" first.');
      return false;
    }
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
    if (doc?.isDirty === true) {
      void vscode.window.showWarningMessage('Layerwise: the plan has unsaved edits; save or revert them first — the suggestion is not applied over changes it was not measured on.');
      return false;
    }
    const entry = await this.store.open(planUri);
    const ok = await this.editor.edit(planUri, `apply the multipliers suggested by ${s.result.method}`, (text) => applyTuneResult(text, s.result, entry.file));
    if (ok) this.set(key, { state: 'none' });
    return ok;
  }

  discard(planUri: vscode.Uri): void {
    this.set(planUri.toString(), { state: 'none' });
  }

  private set(planKey: string, suggestion: SuggestionState): void {
    this.states.set(planKey, suggestion);
    this.changed.fire({ planKey, suggestion });
  }

  dispose(): void {
    for (const w of this.workers.values()) w.stop(true);
    this.workers.clear();
    this.changed.dispose();
  }
}
