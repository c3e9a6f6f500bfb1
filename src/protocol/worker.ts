/**
 * Messages between the extension host (or any parent process) and the training worker.
 * One shared file imported by both sides; every message is plain JSON (no tensors) and is
 * checked at run time with the guards below before it is trusted.
 */
import type { LrFinderOptions, LrFinderOutcome } from '../core/lr-finder.ts';
import type { ModelInfo } from '../core/model-info.ts';
import type { PlanResults } from '../core/plan.ts';
import type { RunReport, TrainEvent } from '../core/progress.ts';
import { TUNE_METHODS, type TuneMethod, type TuneResult } from '../core/tune.ts';
import { isNum, isObj, isStr, type Obj } from './guards.ts';

export type BackendPreference = 'auto' | 'tfjs-node' | 'wasm' | 'cpu';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'tfjs-node', 'wasm', 'cpu'];

export interface JobTarget {
  /** Absolute path of the plan file. */
  planFile: string;
  /** Absolute path of the workspace folder that holds it; no path may resolve outside. */
  workspaceRoot: string;
  /**
   * The plan's text as the editor holds it (may be unsaved). When absent the worker reads the
   * file from disk.
   */
  planText?: string;
  backend: BackendPreference;
}

export interface TrainRequest extends JobTarget {
  type: 'train';
  id: string;
  /** Exact output folder; default: a new folder under the plan's `output`. */
  outDir?: string;
  /** Absolute path of a run folder inside workspaceRoot: continue that run from its checkpoint. */
  resumeFrom?: string;
  /** Minimum milliseconds between two step events (the worker throttles). */
  progressIntervalMs: number;
  /** A PyTorch plan's interpreter (the setting layerwise.pythonPath); wins over the plan's pytorch.python. */
  python?: string;
}

export interface FindLrRequest extends JobTarget {
  type: 'findLr';
  id: string;
  options: Partial<LrFinderOptions>;
  outDir?: string;
  /** As for TrainRequest. */
  python?: string;
}

/** `layerwise tune`: suggested multipliers; nothing is written, the host shows them first. */
export interface TuneRequest extends JobTarget {
  type: 'tune';
  id: string;
  method: TuneMethod;
  budget?: number;
  batches?: number;
  includeFrozen?: boolean;
}

export interface DescribeRequest extends JobTarget {
  type: 'describe';
  id: string;
  /** Also render a strip of augmented training samples (when the plan's data.augment is on). */
  augmentPreview?: boolean;
}

/** A few training images as the model sees them: unaugmented first, then several random draws. */
export interface AugmentPreview {
  width: number;
  height: number;
  samples: Array<{ label: string; file: string; images: string[] }>;
}

/** Describes a bare model.json (no plan yet): what "Create Plan from Model…" groups. */
export interface DescribeModelRequest {
  type: 'describeModel';
  id: string;
  /** Absolute path of the model.json; must lie inside workspaceRoot. */
  modelFile: string;
  workspaceRoot: string;
  backend: BackendPreference;
}

export interface CancelRequest {
  type: 'cancel';
  id: string;
}

export type HostToWorker = TrainRequest | FindLrRequest | TuneRequest | DescribeRequest | DescribeModelRequest | CancelRequest;

export interface ProblemInfo {
  message: string;
  file?: string;
  field?: string;
}

export type WorkerToHost =
  | { type: 'ready'; pid: number }
  /** A cancel was received: the job ends at its next batch (a training run writes a checkpoint first). */
  | { type: 'stopping'; id: string }
  | { type: 'event'; id: string; event: TrainEvent }
  | { type: 'trained'; id: string; report: RunReport; reportFile: string; results: PlanResults }
  | { type: 'lrFound'; id: string; outcome: LrFinderOutcome; curveFile: string; results: PlanResults }
  | { type: 'tuned'; id: string; result: TuneResult }
  /** `trainSamples`: the training set's size, when describing had to read the data anyway. */
  | { type: 'described'; id: string; model: ModelInfo; trainSamples?: number; augmentPreview?: AugmentPreview }
  | { type: 'failed'; id: string; problem: ProblemInfo; cancelled: boolean };

// ---- runtime guards -------------------------------------------------------------------------

const optStr = (x: unknown): boolean => x === undefined || isStr(x);

function isJobTarget(m: Obj): boolean {
  return (
    isStr(m['planFile']) &&
    isStr(m['workspaceRoot']) &&
    optStr(m['planText']) &&
    isStr(m['backend']) &&
    (BACKEND_PREFERENCES as readonly string[]).includes(m['backend'])
  );
}

export function isHostToWorker(x: unknown): x is HostToWorker {
  if (!isObj(x) || !isStr(x['id'])) return false;
  switch (x['type']) {
    case 'train':
      return isJobTarget(x) && optStr(x['outDir']) && optStr(x['resumeFrom']) && isNum(x['progressIntervalMs']) && optStr(x['python']);
    case 'findLr':
      return isJobTarget(x) && optStr(x['outDir']) && isObj(x['options']) && optStr(x['python']);
    case 'tune':
      return (
        isJobTarget(x) &&
        (TUNE_METHODS as readonly unknown[]).includes(x['method']) &&
        (x['budget'] === undefined || isNum(x['budget'])) &&
        (x['batches'] === undefined || isNum(x['batches'])) &&
        (x['includeFrozen'] === undefined || typeof x['includeFrozen'] === 'boolean')
      );
    case 'describe':
      return isJobTarget(x) && (x['augmentPreview'] === undefined || typeof x['augmentPreview'] === 'boolean');
    case 'describeModel':
      return isStr(x['modelFile']) && isStr(x['workspaceRoot']) && isStr(x['backend']) && (BACKEND_PREFERENCES as readonly string[]).includes(x['backend']);
    case 'cancel':
      return true;
    default:
      return false;
  }
}

const TRAIN_EVENT_KINDS = new Set(['stage', 'step', 'epoch', 'diagnostics', 'log', 'data']);

export function isWorkerToHost(x: unknown): x is WorkerToHost {
  if (!isObj(x)) return false;
  switch (x['type']) {
    case 'ready':
      return isNum(x['pid']);
    case 'stopping':
      return isStr(x['id']);
    case 'event':
      return isStr(x['id']) && isObj(x['event']) && TRAIN_EVENT_KINDS.has(String(x['event']['kind']));
    case 'trained':
      return isStr(x['id']) && isObj(x['report']) && isStr(x['reportFile']) && isObj(x['results']);
    case 'lrFound':
      return isStr(x['id']) && isObj(x['outcome']) && isStr(x['curveFile']) && isObj(x['results']);
    case 'tuned':
      return isStr(x['id']) && isTuneResult(x['result']);
    case 'described':
      return isStr(x['id']) && isObj(x['model']) && Array.isArray(x['model']['layers']) &&
        (x['augmentPreview'] === undefined || (isObj(x['augmentPreview']) && Array.isArray(x['augmentPreview']['samples'])));
    case 'failed':
      return isStr(x['id']) && isObj(x['problem']) && isStr(x['problem']['message']) && typeof x['cancelled'] === 'boolean';
    default:
      return false;
  }
}

/** A tune result as the host and the panel rely on it: a method, rows with numbers, the steps. */
export function isTuneResult(x: unknown): x is TuneResult {
  return (
    isObj(x) &&
    (TUNE_METHODS as readonly unknown[]).includes(x['method']) &&
    isNum(x['steps']) &&
    Array.isArray(x['groups']) &&
    x['groups'].every((g) => isObj(g) && isStr(g['name']) && isNum(g['current']) && isNum(g['lrMult']) && isStr(g['why'])) &&
    (x['changes'] === undefined || isObj(x['changes']))
  );
}
