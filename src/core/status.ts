/**
 * The one value a training or LR-test run is in, and everything drawn from it: the status bar's
 * text and tooltip, and how worker events move it forward. Pure, so the host's status bar, the
 * panel's run controls and the tests all agree (rust-analyzer's `setServerStatus` pattern).
 */
import { assertNever } from './errors.ts';
import type { LrFinderOutcome } from './lr-finder.ts';
import type { DataEvent, RunReport, TrainEvent } from './progress.ts';

export type JobKind = 'train' | 'findLr';

export type TrainingStatus =
  | { state: 'idle' }
  | { state: 'starting'; job: JobKind; planFile: string; data?: DataProgress }
  | {
      state: 'running';
      job: JobKind;
      planFile: string;
      stage: number;
      stages: number;
      epoch: number;
      epochs: number;
      /** 0 … 1 of the whole run's steps. */
      fraction: number;
      loss?: number;
    }
  | { state: 'succeeded'; job: JobKind; planFile: string; summary: string; reportFile?: string }
  | { state: 'failed'; job: JobKind; planFile: string; message: string }
  | { state: 'cancelled'; job: JobKind; planFile: string };

/** Preparing an image folder before the first step (a `data` event). */
export type DataProgress = Omit<DataEvent, 'kind'>;

export function isActive(status: TrainingStatus): boolean {
  return status.state === 'starting' || status.state === 'running';
}

/** The status after a worker event; events that say nothing about progress leave it as it is. */
export function statusAfterEvent(status: TrainingStatus, event: TrainEvent): TrainingStatus {
  if (status.state !== 'starting' && status.state !== 'running') return status;
  const base = status.state === 'running'
    ? status
    : { state: 'running' as const, job: status.job, planFile: status.planFile, stage: 1, stages: 1, epoch: 1, epochs: 1, fraction: 0 };
  switch (event.kind) {
    case 'stage':
      return { ...base, stage: event.stage, stages: event.stages };
    case 'step':
      return {
        ...base,
        stage: event.stage,
        stages: event.stages,
        epoch: event.epoch,
        epochs: event.epochs,
        fraction: event.totalSteps > 0 ? Math.min(1, event.step / event.totalSteps) : 0,
        loss: Number.isFinite(event.loss) ? event.loss : base.loss,
      };
    case 'data': {
      const { kind: _kind, ...data } = event;
      return status.state === 'starting' ? { ...status, data } : status;
    }
    case 'log':
      // a message (the backend, a skipped image) says nothing about progress: preparing stays preparing
      return status;
    case 'epoch':
    case 'diagnostics':
      return status.state === 'running' ? status : base;
    default:
      return assertNever(event, 'train event');
  }
}

const JOB_LABEL: Record<JobKind, string> = { train: 'training', findLr: 'LR range test' };

/** A loss or metric the way the status bar prints it: three decimals, or scientific when tiny. */
export function formatMetric(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x !== 0 && Math.abs(x) < 0.001) return x.toExponential(2);
  return x.toFixed(3);
}

/** Floor, so 100% only shows once every step is done. */
export function formatPercent(fraction: number): string {
  return `${Math.floor(Math.max(0, Math.min(1, fraction)) * 100)}%`;
}

export interface StatusBarView {
  visible: boolean;
  text: string;
  tooltip: string;
  /** Drawn with the theme's error background. */
  error: boolean;
}

export function statusBarView(status: TrainingStatus): StatusBarView {
  switch (status.state) {
    case 'idle':
      return { visible: false, text: '$(beaker) Layerwise', tooltip: 'Layerwise: no run', error: false };
    case 'starting':
      return {
        visible: true,
        text: status.data === undefined ? `$(sync~spin) Layerwise · starting ${JOB_LABEL[status.job]}…` : `$(sync~spin) Layerwise · ${dataProgressText(status.data)}`,
        tooltip: `Layerwise: starting ${JOB_LABEL[status.job]} of ${status.planFile} — click to open the plan editor`,
        error: false,
      };
    case 'running': {
      const parts = ['$(sync~spin) Layerwise'];
      if (status.job === 'findLr') parts.push('LR test');
      else {
        if (status.stages > 1) parts.push(`stage ${status.stage}/${status.stages}`);
        parts.push(`epoch ${status.epoch}/${status.epochs}`);
      }
      parts.push(formatPercent(status.fraction));
      if (status.loss !== undefined) parts.push(`loss ${formatMetric(status.loss)}`);
      return {
        visible: true,
        text: parts.join(' · '),
        tooltip: `Layerwise: ${JOB_LABEL[status.job]} of ${status.planFile} — click to open the plan editor`,
        error: false,
      };
    }
    case 'succeeded':
      return {
        visible: true,
        text: `$(check) Layerwise · ${status.summary}`,
        tooltip: `Layerwise: ${JOB_LABEL[status.job]} of ${status.planFile} finished — ${status.summary}`,
        error: false,
      };
    case 'failed':
      return {
        visible: true,
        text: `$(error) Layerwise · ${status.job === 'train' ? 'training' : 'LR test'} failed`,
        tooltip: `Layerwise: ${JOB_LABEL[status.job]} of ${status.planFile} failed — ${status.message}`,
        error: true,
      };
    case 'cancelled':
      return {
        visible: true,
        text: `$(circle-slash) Layerwise · ${status.job === 'train' ? 'training' : 'LR test'} stopped`,
        tooltip: `Layerwise: ${JOB_LABEL[status.job]} of ${status.planFile} was stopped`,
        error: false,
      };
    default:
      return assertNever(status, 'training status');
  }
}

/** "checking images 1,200/50,000 · 3 skipped": the CLI progress line and the status bar. */
export function dataProgressText(d: DataProgress): string {
  const skipped = d.skipped > 0 ? ` · ${d.skipped.toLocaleString('en-US')} skipped` : '';
  switch (d.phase) {
    case 'counting':
      return `counting images ${d.done.toLocaleString('en-US')}`;
    case 'checking':
      return `checking images ${d.done.toLocaleString('en-US')}/${d.total.toLocaleString('en-US')}${skipped}`;
    case 'reading':
      return `reading CSV rows ${d.done.toLocaleString('en-US')}`;
    case 'ready':
      return `${d.total.toLocaleString('en-US')} images ready${skipped}`;
    default:
      return assertNever(d.phase, 'data phase');
  }
}

/** One line about a finished run, for the status bar and the notification. */
export function trainSummary(report: Pick<RunReport, 'stopped' | 'epochs' | 'best'>): string {
  const last = report.epochs[report.epochs.length - 1];
  const parts: string[] = [];
  switch (report.stopped) {
    case 'completed':
      parts.push(`trained ${report.epochs.length} epoch${report.epochs.length === 1 ? '' : 's'}`);
      break;
    case 'earlyStopping':
      parts.push(`stopped early after ${report.epochs.length} epoch${report.epochs.length === 1 ? '' : 's'}`);
      break;
    case 'cancelled':
      parts.push('stopped');
      break;
    case 'nonFinite':
      parts.push('loss became non-finite');
      break;
    default:
      assertNever(report.stopped, 'stop reason');
  }
  if (last?.valAccuracy !== undefined) parts.push(`val acc ${formatMetric(last.valAccuracy)}`);
  if (last?.valLoss !== undefined) parts.push(`val loss ${formatMetric(last.valLoss)}`);
  else if (last !== undefined) parts.push(`loss ${formatMetric(last.trainLoss)}`);
  return parts.join(' · ');
}

export function lrSummary(outcome: Pick<LrFinderOutcome, 'suggested' | 'method'>): string {
  return `suggested LR ${outcome.suggested.toExponential(2)} (${outcome.method})`;
}
