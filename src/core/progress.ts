/**
 * What a run reports while it trains and when it ends. Plain data: the trainer emits these, the
 * worker forwards them to the extension host, the host forwards them to the webview, the CLI
 * draws them as a progress bar. Nothing here holds a tensor.
 */
import type { LastRunResult, Plan, Task } from './plan.ts';

export interface GroupLr {
  group: string;
  /** Current learning rate of the group's parameters (0 while it does not train). */
  lr: number;
  trains: boolean;
}

export interface StageEvent {
  kind: 'stage';
  /** 1-based. */
  stage: number;
  stages: number;
  epochs: number;
  trainGroups: string[];
  lr: number;
}

export interface StepEvent {
  kind: 'step';
  stage: number;
  stages: number;
  /** 1-based epoch within the whole run. */
  epoch: number;
  epochs: number;
  /** 1-based optimizer step within the run. */
  step: number;
  totalSteps: number;
  loss: number;
  groupLrs: GroupLr[];
  etaSeconds: number;
}

export interface EpochMetrics {
  stage: number;
  epoch: number;
  trainLoss: number;
  trainAccuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  seconds: number;
  /** Each group's LR at the last step of the epoch. */
  groupLrs: GroupLr[];
}

export interface EpochEvent extends EpochMetrics {
  kind: 'epoch';
}

export interface LayerDiagnostic {
  layer: string;
  group: string;
  /** ‖g‖ over the layer's trainable weights. */
  gradNorm: number;
  /** ‖Δθ‖ / ‖θ‖ for this optimizer step. */
  updateRatio: number;
}

export interface DiagnosticsEvent {
  kind: 'diagnostics';
  step: number;
  layers: LayerDiagnostic[];
}

export interface LogEvent {
  kind: 'log';
  level: 'info' | 'warn' | 'error';
  message: string;
}

export type TrainEvent = StageEvent | StepEvent | EpochEvent | DiagnosticsEvent | LogEvent;

export type StopReason = LastRunResult['stopped'];

export interface FrozenCheck {
  /** Number of frozen weights (incl. BatchNorm statistics) compared byte for byte. */
  weightsChecked: number;
  unchanged: boolean;
  changed: string[];
}

export interface StageReport {
  stage: number;
  epochs: number;
  trainGroups: string[];
  lr: number;
  steps: number;
}

/** Loss (and accuracy, for classification) on data.test. */
export interface TestMetrics {
  loss: number;
  accuracy?: number;
}

export interface RunReport {
  version: 1;
  planFile: string;
  /** The plan as the run understood it (defaults made explicit where the run used them). */
  plan: Plan;
  task: Task;
  classes?: string[];
  backend: { name: string; reason: string };
  startedAt: string;
  finishedAt: string;
  stopped: StopReason;
  message?: string;
  stages: StageReport[];
  epochs: EpochMetrics[];
  /** Each group's effective LR at the end of every epoch (index = epoch − 1). */
  groupLrByEpoch: Record<string, number[]>;
  best?: { epoch: number; valLoss?: number; valAccuracy?: number };
  frozenCheck: FrozenCheck;
  /** data.test, evaluated once: the final weights, and the best epoch's when best/ holds a copy. */
  test?: { final: TestMetrics; best?: TestMetrics & { epoch: number } };
  timings: { loadSeconds: number; trainSeconds: number; steps: number; stepsPerSecond: number };
  lastDiagnostics?: LayerDiagnostic[];
  outputs: { folder: string; model: string; best?: string };
}
