/**
 * What the Training tab draws: the live events of the current run (or a finished run's report
 * after a reload), reduced to plain point lists. Pure, so the folding of events is testable
 * without a browser.
 */
import { assertNever } from '../src/core/errors.ts';
import type { JobKind } from '../src/protocol/webview.ts';
import { adviseRun, type Advice } from '../src/core/advice.ts';
import type { EpochMetrics, LayerDiagnostic, LogEvent, RunReport, TrainEvent } from '../src/core/progress.ts';

import type { Point } from './charts.ts';

export type { Point };

export interface StageStart {
  stage: number;
  stages: number;
  /** 1-based step and epoch where the stage begins (as step events count them). */
  step: number;
  epoch: number;
  trainGroups: string[];
}

export interface StepProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  stage: number;
  stages: number;
  etaSeconds: number;
}

export class RunData {
  readonly stepLoss: Point[] = [];
  /** [step, epoch] where each epoch's steps begin (as step events count them). */
  private readonly epochStarts: Point[] = [];
  /** Each group's LR per step (x = step), or per epoch when drawn from a report. */
  readonly groupLrs = new Map<string, Point[]>();
  groupLrAxis: 'step' | 'epoch' = 'step';
  readonly stageStarts: StageStart[] = [];
  epochs: EpochMetrics[] = [];
  diagnostics: { step: number | undefined; layers: LayerDiagnostic[] } | undefined;
  /** Every diagnostics event of the live run: what the advice is folded from while it trains. */
  readonly diagnosticsSeries: Array<{ step: number; layers: LayerDiagnostic[] }> = [];
  readonly messages: LogEvent[] = [];
  progress: StepProgress | undefined;
  report: RunReport | undefined;
  private pendingStage: Omit<StageStart, 'step' | 'epoch'> | undefined;

  constructor(readonly job: JobKind | 'report') {}

  static fromReport(report: RunReport): RunData {
    const data = new RunData('report');
    data.setReport(report);
    return data;
  }

  get isEmpty(): boolean {
    return this.stepLoss.length === 0 && this.epochs.length === 0 && this.diagnostics === undefined && this.report === undefined;
  }

  add(event: TrainEvent): void {
    switch (event.kind) {
      case 'stage':
        this.pendingStage = { stage: event.stage, stages: event.stages, trainGroups: event.trainGroups };
        return;
      case 'step': {
        if (this.pendingStage !== undefined) {
          this.stageStarts.push({ ...this.pendingStage, step: event.step, epoch: event.epoch });
          this.pendingStage = undefined;
        }
        this.stepLoss.push([event.step, event.loss]);
        if (this.epochStarts[this.epochStarts.length - 1]?.[1] !== event.epoch) this.epochStarts.push([event.step, event.epoch]);
        for (const g of event.groupLrs) {
          const list = this.groupLrs.get(g.group);
          const p: Point = [event.step, g.trains ? g.lr : 0];
          if (list) list.push(p);
          else this.groupLrs.set(g.group, [p]);
        }
        const { step, totalSteps, epoch, epochs, stage, stages, etaSeconds } = event;
        this.progress = { step, totalSteps, epoch, epochs, stage, stages, etaSeconds };
        return;
      }
      case 'epoch': {
        const { kind: _kind, ...metrics } = event;
        // a repeated epoch (a resent event) replaces the earlier one instead of doubling it
        this.epochs = [...this.epochs.filter((e) => e.epoch !== metrics.epoch), metrics].sort((a, b) => a.epoch - b.epoch);
        return;
      }
      case 'diagnostics':
        this.diagnostics = { step: event.step, layers: event.layers };
        this.diagnosticsSeries.push({ step: event.step, layers: event.layers });
        return;
      case 'data':
        // preparing data: the status bar shows it; the panel's charts start with the first step
        return;
      case 'log':
        this.messages.push(event);
        if (this.messages.length > 50) this.messages.splice(0, this.messages.length - 50);
        return;
      default:
        assertNever(event, 'train event');
    }
  }

  /** The epoch a live step belongs to; undefined before the first step or without live steps. */
  epochAt(step: number): number | undefined {
    const starts = this.epochStarts;
    // the last start at or before the step
    let lo = 0;
    let hi = starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((starts[mid]?.[0] ?? Infinity) <= step) lo = mid + 1;
      else hi = mid;
    }
    return starts[lo - 1]?.[1];
  }

  /** The report's advice once the run ended; while it runs, the same rules over the live figures. */
  advice(groups: ReadonlyArray<{ name: string; lrMult: number }>): Advice[] {
    if (this.report !== undefined) return this.report.advice ?? [];
    return adviseRun({ diagnostics: this.diagnosticsSeries, epochs: this.epochs, groups });
  }

  setReport(report: RunReport): void {
    this.report = report;
    if (report.epochs.length > 0) this.epochs = [...report.epochs];
    if (this.diagnostics === undefined && report.lastDiagnostics !== undefined) {
      this.diagnostics = { step: undefined, layers: report.lastDiagnostics };
    }
    if (this.stepLoss.length === 0) {
      // no live steps (a reload): each group's LR per epoch is what the report keeps
      this.groupLrAxis = 'epoch';
      this.groupLrs.clear();
      for (const [group, lrs] of Object.entries(report.groupLrByEpoch)) {
        this.groupLrs.set(group, lrs.map((lr, i): Point => [i + 1, lr]));
      }
    }
    if (this.stageStarts.length === 0 && report.stages.length > 1) {
      let step = 1;
      let epoch = 1;
      for (const st of report.stages) {
        this.stageStarts.push({ stage: st.stage, stages: report.stages.length, step, epoch, trainGroups: st.trainGroups });
        step += st.steps;
        epoch += st.epochs;
      }
    }
  }
}
