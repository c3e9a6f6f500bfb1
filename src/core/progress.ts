/**
 * What a run reports while it trains and when it ends. Plain data: the trainer emits these, the
 * worker forwards them to the extension host, the host forwards them to the webview, the CLI
 * draws them as a progress bar. Nothing here holds a tensor.
 */
import type { Advice } from './advice.ts';
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

/** Preparing the data: an image folder's files listed, then checked, then ready to train; a CSV file's rows read. */
export interface DataEvent {
  kind: 'data';
  phase: 'counting' | 'checking' | 'reading' | 'ready';
  /** Files counted, headers checked, or CSV rows read so far. */
  done: number;
  /** Files to check (0 while counting or reading). */
  total: number;
  /** Images left out so far (data.onBadImage "skip"). */
  skipped: number;
}

export type TrainEvent = StageEvent | StepEvent | EpochEvent | DiagnosticsEvent | LogEvent | DataEvent;

export type StopReason = LastRunResult['stopped'];

export interface FrozenCheck {
  /** Number of frozen weights (incl. BatchNorm statistics) compared byte for byte. */
  weightsChecked: number;
  unchanged: boolean;
  changed: string[];
}

export interface DataPipelineReport {
  format: 'imagefolder' | 'csv';
  mode: 'memory' | 'stream';
  reason: string;
  /** Image folders: the image decoder. */
  decoder?: 'image-rs' | 'sharp' | 'js';
  /** Threads that read the data: image folders' decoding threads (held in memory, they decode it before the first step), a streamed CSV's row reader; 0 when that is the training thread. */
  decodeThreads: number;
  /** Images left out as corrupt or unsupported (data.onBadImage "skip"), with the first few named. */
  skipped: number;
  skippedFiles: string[];
  augment: boolean;
}

export interface StageReport {
  stage: number;
  epochs: number;
  trainGroups: string[];
  lr: number;
  steps: number;
  /**
   * Whether the frozen layers below the lowest trainable one were computed once for the stage
   * (engine/prefix-cache.ts), or why not; absent when the stage's first layer trains.
   */
  frozenCache?: FrozenCacheReport;
}

export type FrozenCacheReport = { cached: true; layers: number; megabytes: number } | { cached: false; reason: string };

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
  /** How the samples reached the model: held in memory or decoded per batch, and why. */
  data?: DataPipelineReport;
  lastDiagnostics?: LayerDiagnostic[];
  /** Warnings from the live figures (core/advice.ts): update ratios far from 1e-3, overfitting. */
  advice?: Advice[];
  /** Where earlier processes of this run stopped and it was resumed (`train --resume`). */
  resumes?: Array<{ step: number; at: string }>;
  /** `checkpoint`: set when the run stopped early and can be resumed from it. */
  outputs: { folder: string; model: string; best?: string; checkpoint?: string };
  /** A PyTorch run (src/engine/pytorch-run.ts): its ranks, and whether they ended with identical weights. */
  distributed?: { nproc: number; backend: string; replicasEqual: boolean; replicas: string[] };
}
