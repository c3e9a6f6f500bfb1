/**
 * What the generated PyTorch runner (src/core/export/runner.ts) prints, one JSON object per line
 * after the `@layerwise ` marker. Python's output is untrusted input: every line is checked by
 * the guards below, field by field, before the engine forwards anything from it.
 */
import type { DiagnosticsEvent, EpochMetrics, FrozenCheck, GroupLr, LayerDiagnostic, StageReport, StepEvent, TrainEvent } from '../core/progress.ts';
import { FINGERPRINT_AREAS, type FingerprintValue, type RunFingerprint } from '../core/run-fingerprint.ts';
import { isNum, isObj, isStr, type Obj } from './guards.ts';

export interface RunnerStarted {
  kind: 'started';
  stepsPerEpoch: number;
  totalSteps: number;
  world: number;
  backend: string;
  torch: string;
  python: string;
  loadSeconds: number;
  trainSamples: number;
}

export interface RunnerEvent {
  kind: 'event';
  event: TrainEvent;
}

export interface RunnerDone {
  kind: 'done';
  stopped: 'completed' | 'earlyStopping' | 'cancelled' | 'nonFinite';
  message: string | null;
  stages: StageReport[];
  epochs: EpochMetrics[];
  best: { epoch: number; valLoss?: number; valAccuracy?: number } | null;
  frozenCheck: FrozenCheck;
  steps: number;
  trainSeconds: number;
  lastDiagnostics: LayerDiagnostic[] | null;
  /** The diagnostics samples the advice reads (core/advice.ts adviceWindow), carried across a resume. */
  adviceSamples: Array<{ step: number; layers: LayerDiagnostic[] }>;
  /** Absolute path of the saved weights ('' when cancelled). */
  model: string;
  /** Absolute path of the best validation epoch's weights in best/ ('' when that epoch is the last, or none). */
  bestModel: string;
  /** sha256 of every rank's weights at the end, rank order. */
  replicas: string[];
}

export interface RunnerError {
  kind: 'error';
  rank: number;
  message: string;
  field: string | null;
  file: string | null;
}

export type RunnerMessage = RunnerStarted | RunnerEvent | RunnerDone | RunnerError;

const STOPPED = new Set(['completed', 'earlyStopping', 'cancelled', 'nonFinite']);
const LEVELS = new Set(['info', 'warn', 'error']);
const isInt = (x: unknown): x is number => isNum(x) && Number.isInteger(x);
const isStrs = (x: unknown): x is string[] => Array.isArray(x) && x.every(isStr);
const optNum = (x: unknown): boolean => x === undefined || isNum(x);
const nullOr = (x: unknown, is: (y: unknown) => boolean): boolean => x === null || is(x);

function isGroupLr(x: unknown): x is GroupLr {
  return isObj(x) && isStr(x['group']) && isNum(x['lr']) && typeof x['trains'] === 'boolean';
}

const isGroupLrs = (x: unknown): x is GroupLr[] => Array.isArray(x) && x.every(isGroupLr);

function isLayerDiagnostic(x: unknown): x is LayerDiagnostic {
  return isObj(x) && isStr(x['layer']) && isStr(x['group']) && isNum(x['gradNorm']) && isNum(x['updateRatio']);
}

const isDiagnostics = (x: unknown): x is LayerDiagnostic[] => Array.isArray(x) && x.every(isLayerDiagnostic);

function isEpochMetrics(x: unknown): x is EpochMetrics {
  return (
    isObj(x) &&
    isInt(x['stage']) &&
    isInt(x['epoch']) &&
    isNum(x['trainLoss']) &&
    optNum(x['trainAccuracy']) &&
    optNum(x['valLoss']) &&
    optNum(x['valAccuracy']) &&
    isNum(x['seconds']) &&
    isGroupLrs(x['groupLrs'])
  );
}

function isStageReport(x: unknown): x is StageReport {
  return isObj(x) && isInt(x['stage']) && isInt(x['epochs']) && isStrs(x['trainGroups']) && isNum(x['lr']) && isInt(x['steps']);
}

function isStepEvent(e: Obj): e is Obj & StepEvent {
  return (
    isInt(e['stage']) &&
    isInt(e['stages']) &&
    isInt(e['epoch']) &&
    isInt(e['epochs']) &&
    isInt(e['step']) &&
    isInt(e['totalSteps']) &&
    isNum(e['loss']) &&
    isGroupLrs(e['groupLrs']) &&
    isNum(e['etaSeconds'])
  );
}

/** A TrainEvent, checked field by field (the worker protocol's guard only checks the kind). */
export function isTrainEvent(x: unknown): x is TrainEvent {
  if (!isObj(x)) return false;
  switch (x['kind']) {
    case 'stage':
      return isInt(x['stage']) && isInt(x['stages']) && isInt(x['epochs']) && isStrs(x['trainGroups']) && isNum(x['lr']);
    case 'step':
      return isStepEvent(x);
    case 'epoch':
      return isEpochMetrics(x);
    case 'diagnostics':
      return isInt(x['step']) && isDiagnostics((x as Partial<DiagnosticsEvent>).layers);
    case 'log':
      return isStr(x['level']) && LEVELS.has(x['level']) && isStr(x['message']);
    default:
      return false;
  }
}

function isBest(x: unknown): boolean {
  return isObj(x) && isInt(x['epoch']) && optNum(x['valLoss']) && optNum(x['valAccuracy']);
}

function isFrozenCheck(x: unknown): x is FrozenCheck {
  return isObj(x) && isInt(x['weightsChecked']) && typeof x['unchanged'] === 'boolean' && isStrs(x['changed']);
}

export function isRunnerMessage(x: unknown): x is RunnerMessage {
  if (!isObj(x)) return false;
  switch (x['kind']) {
    case 'started':
      return (
        isInt(x['stepsPerEpoch']) &&
        isInt(x['totalSteps']) &&
        isInt(x['world']) &&
        isStr(x['backend']) &&
        isStr(x['torch']) &&
        isStr(x['python']) &&
        isNum(x['loadSeconds']) &&
        isInt(x['trainSamples'])
      );
    case 'event':
      return isTrainEvent(x['event']);
    case 'done':
      return (
        isStr(x['stopped']) &&
        STOPPED.has(x['stopped']) &&
        nullOr(x['message'], isStr) &&
        Array.isArray(x['stages']) &&
        x['stages'].every(isStageReport) &&
        Array.isArray(x['epochs']) &&
        x['epochs'].every(isEpochMetrics) &&
        nullOr(x['best'], isBest) &&
        isFrozenCheck(x['frozenCheck']) &&
        isInt(x['steps']) &&
        isNum(x['trainSeconds']) &&
        nullOr(x['lastDiagnostics'], isDiagnostics) &&
        Array.isArray(x['adviceSamples']) &&
        x['adviceSamples'].every((d) => isObj(d) && isInt(d['step']) && isDiagnostics(d['layers'])) &&
        isStr(x['model']) &&
        isStr(x['bestModel']) &&
        isStrs(x['replicas'])
      );
    case 'error':
      return isInt(x['rank']) && isStr(x['message']) && nullOr(x['field'], isStr) && nullOr(x['file'], isStr);
    default:
      return false;
  }
}

/** A checkpoint file by size and sha256, and (for the previous one) the position it holds. */
export interface TorchCheckpointFile {
  file: string;
  bytes: number;
  sha256: string;
}

/**
 * checkpoint.json as the runner writes it beside checkpoint.pt (read back on --resume). Version 2
 * names checkpoint.pt and the checkpoint-previous.pt it kept by size and sha256; version 1 (no
 * identities) is still read.
 */
export interface TorchCheckpointManifest {
  format: 'layerwise-torch-checkpoint';
  version: 1 | 2;
  reason: 'epoch' | 'stopped';
  writtenAt: string;
  planFile: string;
  checkpoint: string;
  fingerprint: RunFingerprint;
  /** 0-based stage and epoch of the next batch, its index in that epoch, and the optimizer steps done. */
  position: TorchCheckpointPosition;
  data?: TorchCheckpointFile;
  previous?: (TorchCheckpointFile & { position: TorchCheckpointPosition }) | null;
}

export interface TorchCheckpointPosition {
  stage: number;
  epoch: number;
  batch: number;
  globalStep: number;
}

const isPosition = (p: unknown): p is TorchCheckpointPosition => isObj(p) && isInt(p['stage']) && isInt(p['epoch']) && isInt(p['batch']) && isInt(p['globalStep']);
const isCheckpointFile = (x: unknown): x is TorchCheckpointFile => isObj(x) && isStr(x['file']) && isInt(x['bytes']) && isStr(x['sha256']) && /^[0-9a-f]{64}$/.test(x['sha256']);

const isFingerprintValue = (x: unknown): x is FingerprintValue => x === null || isStr(x) || typeof x === 'number' || typeof x === 'boolean';

export function isRunFingerprint(x: unknown): x is RunFingerprint {
  return isObj(x) && FINGERPRINT_AREAS.every((area) => {
    const table = x[area];
    return isObj(table) && Object.values(table).every(isFingerprintValue);
  });
}

export function isTorchCheckpointManifest(x: unknown): x is TorchCheckpointManifest {
  if (!isObj(x) || x['format'] !== 'layerwise-torch-checkpoint' || (x['version'] !== 1 && x['version'] !== 2)) return false;
  const previous = x['previous'];
  return (
    (x['reason'] === 'epoch' || x['reason'] === 'stopped') &&
    isStr(x['writtenAt']) &&
    isStr(x['planFile']) &&
    isStr(x['checkpoint']) &&
    isRunFingerprint(x['fingerprint']) &&
    isPosition(x['position']) &&
    (x['version'] === 1 ||
      (isCheckpointFile(x['data']) && (previous === null || (isCheckpointFile(previous) && isObj(previous) && isPosition(previous['position'])))))
  );
}
