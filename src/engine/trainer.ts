/**
 * The training loop: unfreezing stages, per-parameter learning rates from the one timeline,
 * validation every epoch, early stopping, cancel, a non-finite guard, throttled progress and
 * per-layer diagnostics. No gradient is computed for anything that does not train in a step.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { ADVICE_LIMITS, adviceWindow, adviseRun } from '../core/advice.ts';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { formatProblem, LayerwiseError } from '../core/errors.ts';
import { batchNormInferenceLayers } from '../core/groups.ts';
import type { Resolution } from '../core/groups.types.ts';
import { FIRST_LAYER_TRAINS } from '../core/layer-graph.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { DEFAULTS, defaultWeightDecay, type PlanResults } from '../core/plan.ts';
import type {
  EpochMetrics,
  FrozenCacheReport,
  FrozenCheck,
  LayerDiagnostic,
  RunReport,
  TestMetrics,
  StopReason,
  TrainEvent,
} from '../core/progress.ts';
import { describeFingerprintChanges, runFingerprint, type MeasuredInputs, type RunFingerprint } from '../core/run-fingerprint.ts';
import { buildTimeline, groupLrsAt, paramLr, resolveStages, scheduleFactorAt, type Timeline } from '../core/timeline.ts';
import { BatchFeed, batchTensors, epochOrder, type Dataset } from './data.ts';
import { computeLoss, countCorrect, forward, lossSpecFor, ModeControl, type LossSpec } from './forward.ts';
import { modelJsonPath, saveModel } from './model-io.ts';
import {
  CHECKPOINT_FILE,
  errnoText,
  fileIdentity,
  hasCheckpoint,
  readCheckpoint,
  removeCheckpoint,
  writeCheckpoint,
  type CheckpointManifest,
  type CheckpointPosition,
  type CheckpointTensor,
  type LoadedCheckpoint,
  type LoopProgress,
} from './checkpoint.ts';
import { GroupedOptimizer, type OptimizerSettings, type ParamStateData } from './optimizer.ts';
import { acquireRunLock } from '../core/run-lock.ts';
import { buildFrozenPrefix, planPrefix, type FrozenPrefix } from './prefix-cache.ts';
import { assertNewRunFolder, outputRoot, prepareRun, trainingParams, type BoundParam, type PreparedRun, type RunTarget } from './session.ts';

export interface TrainOptions extends RunTarget {
  /** Exact output folder (created); default: `<plan output>/<plan name>-<timestamp>`. */
  outDir?: string;
  /** A run folder holding a checkpoint: continue that run in that folder (checkpoint.ts). */
  resumeFrom?: string;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** Minimum milliseconds between two step events. */
  progressIntervalMs?: number;
  /** Compute the layers below a stage's lowest trainable layer once per stage (default true; prefix-cache.ts). */
  frozenPrefixCache?: boolean;
}

export interface TrainOutcome {
  report: RunReport;
  reportFile: string;
  outDir: string;
  results: PlanResults;
  resolution: Resolution;
}

export async function train(opts: TrainOptions): Promise<TrainOutcome> {
  const run = await prepareRun(opts, opts.onEvent);
  try {
    const outDir = resolveOutDir(run, opts);
    assertOutDirAllowed(run, outDir);
    if (opts.resumeFrom === undefined) assertNewRunFolder(outDir);
    const resume = opts.resumeFrom === undefined ? undefined : loadResume(run, opts.resumeFrom, opts.onEvent);
    const lock = acquireRunLock(outputRoot(run), run.planFile, outDir);
    try {
      return await trainPrepared(run, { ...opts, outDir }, resume);
    } finally {
      lock.release();
    }
  } finally {
    run.model.dispose();
    await run.data.pool?.close();
  }
}

/** The run's folder: `--out`, a new default one, or the folder a resumed run continues in. */
export function resolveOutDir(run: Pick<PreparedRun, 'plan' | 'planFile' | 'workspaceRoot'>, opts: Pick<TrainOptions, 'outDir' | 'resumeFrom'>): string {
  if (opts.resumeFrom === undefined) return opts.outDir ?? defaultOutDir(run);
  const folder = resolve(opts.resumeFrom);
  if (opts.outDir !== undefined && resolve(opts.outDir) !== folder) {
    throw new LayerwiseError('a resumed run continues in its own folder; leave out --out', { file: folder });
  }
  return folder;
}

/** The checkpoint of `folder`, or a refusal naming what changed since that run started. */
function loadResume(run: PreparedRun, folder: string, onEvent: TrainOptions['onEvent']): LoadedCheckpoint {
  const checkpoint = readCheckpoint(resolve(folder));
  const { manifest } = checkpoint;
  const where = relative(dirname(run.planFile), resolve(folder)) || folder;
  if (resolve(manifest.planFile) !== resolve(run.planFile)) {
    throw new LayerwiseError(`cannot resume ${where}: it is a run of ${manifest.planFile}, not of this plan`, { file: run.planFile });
  }
  const now = fingerprintOf(run);
  const changes = describeFingerprintChanges(manifest.fingerprint, now);
  if (changes.length > 0) {
    throw new LayerwiseError(`cannot resume ${where}: ${changes.join('; ')}`, { file: run.planFile });
  }
  if (checkpoint.fellBack !== undefined) {
    onEvent?.({ kind: 'log', level: 'warn', message: `the newest checkpoint could not be used (${checkpoint.fellBack}); resuming from the previous one` });
  }
  if (manifest.backend !== run.backend.name) {
    onEvent?.({ kind: 'log', level: 'warn', message: `the run started on ${manifest.backend} and continues on ${run.backend.name}: the numbers may differ from an uninterrupted run in the last bits` });
  }
  if (manifest.randomLayers.length > 0) {
    onEvent?.({ kind: 'log', level: 'warn', message: `${manifest.randomLayers.join(', ')} draw unseeded random numbers while training: the resumed run continues correctly but not bit for bit like an uninterrupted one` });
  }
  return checkpoint;
}

/** What the run's numbers depend on, as checkpoint.ts records it and a resume compares it. */
export function fingerprintOf(run: PreparedRun): RunFingerprint {
  const stages = resolveStages(run.plan, run.resolution, run.planFile);
  return runFingerprint(run.plan, run.resolution, stages, measureInputs(run));
}

/** Hashes of the model's files on disk and of the data exactly as it was loaded. */
function measureInputs(run: PreparedRun): MeasuredInputs {
  const modelFile = resolvePlanPath(run.planFile, run.plan.model, 'model', run.workspaceRoot);
  const modelFiles: Record<string, string> = {};
  modelFiles[run.plan.model] = fileIdentity(modelFile);
  try {
    const json = JSON.parse(readFileSync(modelFile, 'utf8')) as { weightsManifest?: Array<{ paths?: unknown }> };
    for (const group of json.weightsManifest ?? []) {
      for (const p of Array.isArray(group.paths) ? group.paths : []) {
        if (typeof p === 'string') modelFiles[`weights ${p}`] = fileIdentity(join(dirname(modelFile), p));
      }
    }
  } catch {
    // model.json changed into something unreadable: its own entry already differs
  }
  const hashData = (ds: Dataset): string => {
    const h = createHash('sha256').update(new Uint8Array(ds.x.buffer, ds.x.byteOffset, ds.x.byteLength)).update(new Uint8Array(ds.y.buffer, ds.y.byteOffset, ds.y.byteLength));
    // a streamed CSV holds no features: its file's hash and the rows taken stand for them
    if (ds.stream?.kind === 'csv') h.update(ds.stream.sha256).update(new Uint8Array(ds.stream.ids.buffer, ds.stream.ids.byteOffset, ds.stream.ids.byteLength));
    return h.digest('hex');
  };
  return {
    modelFiles,
    trainData: hashData(run.data.train),
    validationData: run.data.validation && hashData(run.data.validation),
    trainSamples: run.data.train.n,
  };
}

/** Weights and statistics copied out of the model, to compare or to restore. */
type Snapshot = Map<tf.Variable, tf.Tensor>;

function takeSnapshot(vars: Iterable<tf.Variable>): Snapshot {
  const s: Snapshot = new Map();
  for (const v of vars) s.set(v, tf.keep(v.clone()));
  return s;
}

function restoreSnapshot(s: Snapshot): void {
  for (const [v, t] of s) v.assign(t);
}

function disposeSnapshot(s: Snapshot | undefined): void {
  if (s) for (const t of s.values()) t.dispose();
}

export function defaultOutDir(run: Pick<PreparedRun, 'plan' | 'planFile' | 'workspaceRoot'>, prefix = ''): string {
  const root = outputRoot(run);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
  const planName = basename(run.planFile).replace(/\.json$/, '').replace(/\.layerwise$/, '');
  const base = join(root, `${prefix}${planName}-${stamp}`);
  // two runs started in the same second each get a folder of their own
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

export function optimizerSettings(run: Pick<PreparedRun, 'plan'>): OptimizerSettings {
  const t = run.plan.training ?? {};
  return {
    type: t.optimizer ?? DEFAULTS.optimizer,
    betas: t.betas ?? DEFAULTS.betas,
    eps: t.eps ?? DEFAULTS.eps,
    momentum: t.momentum ?? DEFAULTS.momentum,
    nesterov: t.nesterov ?? DEFAULTS.nesterov,
  };
}

/**
 * Params that must not change by one bit: every weight and statistic of a layer the plan freezes,
 * and the moving statistics of BatchNorm layers the plan runs in inference mode.
 */
function planFrozen(params: readonly BoundParam[], resolution: Resolution): BoundParam[] {
  const inference = batchNormInferenceLayers(resolution);
  return params.filter((p) => p.audit.frozen || (!p.audit.trainable && inference.has(p.layerName)));
}

/**
 * Everything the loop carries from one batch to the next; a checkpoint is exactly this (plus
 * the model's weights and the optimizer's state), so a resumed loop is the same loop.
 */
interface RunState extends Omit<LoopProgress, 'trainedBefore'> {
  position: CheckpointPosition;
  trainedBefore: Set<string>;
  /** Best-so-far weights, kept for `best/` when early stopping or validation picks an earlier epoch. */
  bestSnapshot?: Snapshot;
  /** Weights at the start of the current epoch: what the non-finite guard restores. */
  epochStart?: Snapshot;
}

function freshState(run: PreparedRun): RunState {
  return {
    startedAt: new Date().toISOString(),
    trainSeconds: 0,
    epochs: [],
    groupLrByEpoch: Object.fromEntries(run.resolution.groups.map((g) => [g.name, []])),
    stageReports: [],
    sinceBest: 0,
    trainedBefore: new Set(),
    frozenBefore: planFrozen(run.params, run.resolution).map((p) => ({ name: p.audit.name, sha256: hashOf(p.variable) })),
    partial: { lossSum: 0, correct: 0, seen: 0, seconds: 0 },
    resumes: [],
    position: { epoch: 0, batch: 0, globalStep: 0 },
  };
}

/** Loads a checkpoint into the model, the optimizer and a RunState. */
function restoreState(run: PreparedRun, optimizer: GroupedOptimizer, checkpoint: LoadedCheckpoint): RunState {
  const { manifest, tensors } = checkpoint;
  const tensorOf = (key: string): tf.Tensor | undefined => {
    const t = tensors.get(key);
    return t === undefined ? undefined : tf.tensor(t.values, t.shape, 'float32');
  };
  const snapshotOf = (prefix: string): Snapshot | undefined => {
    if (!manifest.tensors.some((t) => t.key.startsWith(`${prefix}:`))) return undefined;
    const s: Snapshot = new Map();
    for (const p of run.params) {
      const t = tensorOf(`${prefix}:${p.audit.name}`);
      if (t === undefined) throw new LayerwiseError(`the checkpoint has no ${prefix} copy of ${p.audit.name}`, { file: checkpoint.manifestFile });
      s.set(p.variable, tf.keep(t));
    }
    return s;
  };
  for (const p of run.params) {
    const t = tensorOf(`weight:${p.audit.name}`);
    if (t === undefined || !sameShape(t.shape, p.variable.shape)) {
      t?.dispose();
      throw new LayerwiseError(`the checkpoint does not hold the weight ${p.audit.name} with shape [${p.variable.shape.join(', ')}]`, { file: checkpoint.manifestFile });
    }
    p.variable.assign(t);
    t.dispose();
  }
  const states = new Map<string, ParamStateData>();
  for (const [name, steps] of Object.entries(manifest.optimizerSteps)) {
    const first = tensors.get(`first:${name}`);
    const second = tensors.get(`second:${name}`);
    states.set(name, {
      steps,
      ...(first && { first: { shape: first.shape, values: first.values } }),
      ...(second && { second: { shape: second.shape, values: second.values } }),
    });
  }
  optimizer.importState(states);
  const { trainedBefore, ...progress } = manifest.progress;
  return {
    ...progress,
    resumes: [...progress.resumes, { step: manifest.position.globalStep, at: new Date().toISOString() }],
    trainedBefore: new Set(trainedBefore),
    position: { ...manifest.position },
    bestSnapshot: snapshotOf('best'),
    epochStart: snapshotOf('epochStart'),
  };
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/** Layers whose training pass draws unseeded random numbers (tfjs has no global seed). */
function randomLayers(model: tf.LayersModel): string[] {
  return model.layers
    .filter((l) => {
      const c = l.getConfig() as { rate?: number; stddev?: number };
      return /Dropout|Noise/.test(l.getClassName()) && ((c.rate ?? 0) > 0 || (c.stddev ?? 0) > 0);
    })
    .map((l) => l.name);
}

function saveState(run: PreparedRun, optimizer: GroupedOptimizer, state: RunState, dir: string, reason: CheckpointManifest['reason'], fingerprint: RunFingerprint): void {
  mkdirSync(dir, { recursive: true });
  const tensors: CheckpointTensor[] = [];
  const add = (key: string, t: tf.Tensor) => tensors.push({ key, shape: [...t.shape], values: Float32Array.from(t.dataSync()) });
  for (const p of run.params) add(`weight:${p.audit.name}`, p.variable);
  const optimizerSteps: Record<string, number> = {};
  for (const [name, d] of optimizer.exportState()) {
    optimizerSteps[name] = d.steps;
    if (d.first) tensors.push({ key: `first:${name}`, shape: d.first.shape, values: d.first.values });
    if (d.second) tensors.push({ key: `second:${name}`, shape: d.second.shape, values: d.second.values });
  }
  const byVariable = new Map(run.params.map((p) => [p.variable, p.audit.name]));
  const addSnapshot = (prefix: string, s: Snapshot | undefined) => {
    if (s) for (const [v, t] of s) add(`${prefix}:${byVariable.get(v) ?? v.name}`, t);
  };
  addSnapshot('best', state.bestSnapshot);
  // an epoch-end checkpoint's epoch start is its weights: only a stop mid-epoch needs the copy
  if (state.position.batch > 0) addSnapshot('epochStart', state.epochStart);
  const { position, bestSnapshot: _b, epochStart: _e, trainedBefore, ...progress } = state;
  writeCheckpoint(dir, {
    reason,
    planFile: run.planFile,
    backend: run.backend.name,
    fingerprint,
    position: { ...position },
    progress: { ...progress, trainedBefore: [...trainedBefore] },
    optimizerSteps,
    randomLayers: randomLayers(run.model),
  }, tensors);
}

export async function trainPrepared(run: PreparedRun, opts: TrainOptions, resume?: LoadedCheckpoint): Promise<TrainOutcome> {
  const { plan, resolution, data, params } = run;
  const emit = opts.onEvent ?? (() => undefined);
  const training = plan.training ?? {};
  const batchSize = training.batchSize ?? DEFAULTS.batchSize;
  const train = data.train;
  const stepsPerEpoch = Math.ceil(train.n / batchSize);
  const stages = resolveStages(plan, resolution, run.planFile);
  const timeline = buildTimeline(stages, stepsPerEpoch);
  const seed = plan.data?.seed ?? training.seed ?? DEFAULTS.seed;
  const shuffle = plan.data?.shuffle ?? DEFAULTS.shuffle;
  const diagnosticsEvery = training.diagnosticsEvery ?? DEFAULTS.diagnosticsEvery;
  const interval = opts.progressIntervalMs ?? 250;
  const lossSpec = lossSpecFor(run.model, run.task);
  const optimizer = new GroupedOptimizer(optimizerSettings(run));
  const modes = new ModeControl(run.model, batchNormInferenceLayers(resolution));
  const outDir = opts.outDir ?? defaultOutDir(run);
  assertOutDirAllowed(run, outDir);
  emit({ kind: 'log', level: 'info', message: `backend ${run.backend.name}: ${run.backend.reason}` });
  // the editor shows these on the plan; a run from a terminal must not be silent about them either
  for (const w of resolution.warnings) emit({ kind: 'log', level: 'warn', message: formatProblem(w.message, run.planFile, w.field) });
  if (data.pipeline !== undefined) {
    const p = data.pipeline;
    const how = p.mode === 'stream' ? `streamed from ${p.format === 'csv' ? 'the file' : 'files'} per batch` : 'held in memory';
    const threads = p.mode === 'stream' ? `, ${p.decodeThreads} reading thread(s)` : '';
    emit({ kind: 'log', level: 'info', message: `data: ${how} because ${p.reason}${p.decoder === undefined ? '' : `; decoder ${p.decoder}`}${threads}` });
  }
  const trainStart = performance.now();
  // the fingerprint of the run's start: a resume has already checked the current one equals it
  const fingerprint = resume?.manifest.fingerprint ?? fingerprintOf(run);

  const state = resume === undefined ? freshState(run) : restoreState(run, optimizer, resume);
  if (resume !== undefined) {
    emit({ kind: 'log', level: 'info', message: `resuming ${outDir} at step ${state.position.globalStep} (epoch ${state.position.epoch + 1}, batch ${state.position.batch + 1})` });
  }
  let stopped: StopReason = 'completed';
  let message: string | undefined;
  let lastEmit = 0;
  const allVars = params.map((p) => p.variable);
  const secondsBefore = state.trainSeconds;
  const checkpoint = (reason: CheckpointManifest['reason']) =>
    saveState(run, optimizer, { ...state, trainSeconds: secondsBefore + (performance.now() - trainStart) / 1000 }, outDir, reason, fingerprint);

  try {
    outer: for (const stage of timeline.stages) {
      if (state.position.epoch >= stage.startEpoch + stage.epochs) continue;
      const trainGroups = new Set(stage.trainGroups);
      const trainable = trainingParams(params, trainGroups);
      const trainedNow = new Set(trainable.map((p) => p.audit.name));
      // a resume into the middle of a stage finds the stage's start already done (and in the checkpoint)
      const stageStarted = state.position.epoch > stage.startEpoch || state.position.batch > 0;
      if (!stageStarted) {
        // a parameter that trains again after a pause starts fresh; ones that kept training keep their state
        for (const p of trainable) if (!state.trainedBefore.has(p.audit.name) && optimizer.stepsTaken(p.audit.name) > 0) optimizer.resetState(p.audit.name);
        state.trainedBefore = trainedNow;
        if (!state.stageReports.some((r) => r.stage === stage.index + 1)) state.stageReports.push({ stage: stage.index + 1, epochs: stage.epochs, trainGroups: stage.trainGroups, lr: stage.lr, steps: stage.steps });
      }
      const trainingLayers = new Set(trainable.map((p) => p.layerName));
      modes.trainOnly(trainingLayers);
      emit({ kind: 'stage', stage: stage.index + 1, stages: timeline.stages.length, epochs: stage.epochs, trainGroups: stage.trainGroups, lr: stage.lr });
      const { prefix, report: frozenCache } = opts.frozenPrefixCache === false || trainable.length === 0
        ? { prefix: undefined, report: undefined }
        : stagePrefix(run, trainingLayers, train, batchSize, stage.index + 1, emit);
      const stageReport = state.stageReports.find((r) => r.stage === stage.index + 1);
      if (stageReport !== undefined && frozenCache !== undefined) stageReport.frozenCache = frozenCache;
      const stageData = prefix?.dataset ?? train;

      for (let epochIndex = state.position.epoch; epochIndex < stage.startEpoch + stage.epochs; epochIndex++) {
        const epochClock = performance.now();
        const firstBatch = state.position.batch;
        if (firstBatch === 0) {
          disposeSnapshot(state.epochStart);
          state.epochStart = takeSnapshot(allVars);
          state.partial = { lossSum: 0, correct: 0, seen: 0, seconds: 0 };
        }
        const epochSecondsBefore = state.partial.seconds;
        const order = epochOrder(train.n, shuffle, seed, epochIndex);
        const feed = new BatchFeed(stageData, order, batchSize, { epoch: epochIndex, augment: true });
        for (let b = firstBatch; b < stepsPerEpoch; b++) {
          if (opts.signal?.aborted) {
            stopped = 'cancelled';
            message = 'cancelled by the user';
            state.partial.seconds = epochSecondsBefore + (performance.now() - epochClock) / 1000;
            checkpoint('stopped');
            break outer;
          }
          const { ds: batchData, indices } = await feed.get(b);
          const globalStep = state.position.globalStep;
          // every file of the batch was found unreadable while streaming (onBadImage "skip"): no step
          if (indices.length === 0) {
            state.position = { epoch: epochIndex, batch: b + 1, globalStep };
            continue;
          }
          const factor = scheduleFactorAt(plan, timeline, globalStep);
          const wantDiagnostics = diagnosticsEvery > 0 && (globalStep + 1) % diagnosticsEvery === 0 && trainable.length > 0;
          const step = trainStep(run, lossSpec, optimizer, trainable, batchData, indices, (p) => paramLr(stage, p.audit.lrMult, factor), wantDiagnostics, prefix);
          if (!Number.isFinite(step.loss)) {
            if (state.epochStart) restoreSnapshot(state.epochStart);
            stopped = 'nonFinite';
            message = `the loss became ${step.loss} at step ${globalStep + 1} (stage ${stage.index + 1}, epoch ${epochIndex + 1}); the weights from the start of that epoch were kept — lower the learning rate`;
            emit({ kind: 'log', level: 'error', message });
            break outer;
          }
          state.partial.lossSum += step.loss * indices.length;
          state.partial.correct += step.correct;
          state.partial.seen += indices.length;
          state.position = { epoch: epochIndex, batch: b + 1, globalStep: globalStep + 1 };
          if (step.diagnostics) {
            state.lastDiagnostics = step.diagnostics;
            // only what the advice reads is kept (and checkpointed, so a resume advises as the whole run would)
            const samples = [...(state.adviceSamples ?? []), { step: state.position.globalStep, layers: step.diagnostics }];
            state.adviceSamples = samples.length > 2 * ADVICE_LIMITS.window ? adviceWindow(samples) : samples;
            emit({ kind: 'diagnostics', step: state.position.globalStep, layers: step.diagnostics });
          }
          const now = performance.now();
          if (now - lastEmit >= interval || b === stepsPerEpoch - 1) {
            lastEmit = now;
            const elapsed = (now - trainStart) / 1000;
            const done = state.position.globalStep - (state.resumes[state.resumes.length - 1]?.step ?? 0);
            emit({
              kind: 'step',
              stage: stage.index + 1,
              stages: timeline.stages.length,
              epoch: epochIndex + 1,
              epochs: timeline.totalEpochs,
              step: state.position.globalStep,
              totalSteps: timeline.totalSteps,
              loss: step.loss,
              groupLrs: groupLrsAt(plan, resolution, timeline, state.position.globalStep - 1),
              etaSeconds: (elapsed / Math.max(done, 1)) * (timeline.totalSteps - state.position.globalStep),
            });
          }
          // let the event loop breathe so a cancel message can arrive between batches
          await new Promise((r) => setImmediate(r));
        }
        if (state.partial.seen === 0) {
          // streamed with onBadImage "skip", every file turned out unreadable: as in memory, an error, not an empty "completed" run
          const bad = [...(data.badFiles ?? [])];
          throw new LayerwiseError(
            `no training sample could be read in epoch ${epochIndex + 1}: all ${train.n} were left out as unreadable${bad[0] === undefined ? '' : ` (e.g. ${bad[0]})`}; nothing was trained`,
            { file: run.planFile, field: 'data.train' },
          );
        }
        const groupLrs = groupLrsAt(plan, resolution, timeline, state.position.globalStep - 1);
        for (const g of groupLrs) state.groupLrByEpoch[g.group]?.push(g.lr);
        const metrics: EpochMetrics = {
          stage: stage.index + 1,
          epoch: epochIndex + 1,
          // over the samples that reached a step: fewer than train.n when streaming left unreadable files out
          trainLoss: state.partial.lossSum / Math.max(state.partial.seen, 1),
          seconds: epochSecondsBefore + (performance.now() - epochClock) / 1000,
          groupLrs,
        };
        if (run.task === 'classification') metrics.trainAccuracy = state.partial.correct / Math.max(state.partial.seen, 1);
        if (data.validation) {
          const v = await evaluate(run.model, lossSpec, data.validation, batchSize);
          metrics.valLoss = v.loss;
          if (run.task === 'classification') metrics.valAccuracy = v.accuracy;
        }
        state.epochs.push(metrics);
        state.position = { epoch: epochIndex + 1, batch: 0, globalStep: state.position.globalStep };
        state.partial = { lossSum: 0, correct: 0, seen: 0, seconds: 0 };
        emit({ kind: 'epoch', ...metrics });

        if (metrics.valLoss !== undefined) {
          const es = training.earlyStopping;
          const metricName = es?.metric ?? 'valLoss';
          const best = state.best;
          const value = metricName === 'valAccuracy' ? -(metrics.valAccuracy ?? 0) : metrics.valLoss;
          const bestValue = best === undefined ? Infinity : metricName === 'valAccuracy' ? -(best.valAccuracy ?? 0) : (best.valLoss ?? Infinity);
          if (value < bestValue - (es?.minDelta ?? 0)) {
            state.best = { epoch: epochIndex + 1, valLoss: metrics.valLoss, valAccuracy: metrics.valAccuracy };
            disposeSnapshot(state.bestSnapshot);
            state.bestSnapshot = takeSnapshot(allVars);
            state.sinceBest = 0;
          } else {
            state.sinceBest += 1;
            if (es && state.sinceBest >= es.patience) {
              stopped = 'earlyStopping';
              message = `stopped early: ${metricName} did not improve for ${es.patience} epoch(s); best at epoch ${best?.epoch}`;
              emit({ kind: 'log', level: 'info', message });
              break outer;
            }
          }
        }
        checkpoint('epoch');
      }
    }
  } finally {
    modes.restore();
    disposeSnapshot(state.epochStart);
    optimizer.dispose();
  }

  const trainSeconds = secondsBefore + (performance.now() - trainStart) / 1000;
  const globalStep = state.position.globalStep;
  const { epochs, best, bestSnapshot } = state;
  const frozenCheck = checkFrozen(state.frozenBefore, params);
  if (!frozenCheck.unchanged) {
    // a broken promise of the tool, not of the user: say it loudly
    emit({ kind: 'log', level: 'error', message: `frozen weights changed: ${frozenCheck.changed.join(', ')}` });
  }

  // outputs: no model when cancelled (the checkpoint holds the run), so no half-trained model can be mistaken for a result
  const modelDir = outDir;
  let bestDir: string | undefined;
  let test: RunReport['test'];
  try {
    mkdirSync(outDir, { recursive: true });
    if (stopped !== 'cancelled') {
      await saveModel(run.model, modelDir);
      const final = await evaluateTest(run, lossSpec, batchSize);
      if (final !== undefined) test = { final };
      if (bestSnapshot && best && best.epoch !== epochs[epochs.length - 1]?.epoch) {
        const current = takeSnapshot(allVars);
        restoreSnapshot(bestSnapshot);
        bestDir = join(outDir, 'best');
        await saveModel(run.model, bestDir);
        const bestTest = await evaluateTest(run, lossSpec, batchSize);
        if (test !== undefined && bestTest !== undefined) test.best = { epoch: best.epoch, ...bestTest };
        restoreSnapshot(current);
        disposeSnapshot(current);
      }
    }
  } catch (e) {
    disposeSnapshot(bestSnapshot);
    throw outputError(e, 'the model', outDir);
  }
  disposeSnapshot(bestSnapshot);

  const last = epochs[epochs.length - 1];
  const report: RunReport = {
    version: 1,
    planFile: run.planFile,
    plan: resolvedPlan(run.plan, run.task),
    task: run.task,
    classes: data.classes,
    backend: { name: run.backend.name, reason: run.backend.reason },
    startedAt: state.startedAt,
    finishedAt: new Date().toISOString(),
    stopped,
    message,
    stages: state.stageReports,
    epochs,
    groupLrByEpoch: state.groupLrByEpoch,
    best,
    frozenCheck,
    test,
    timings: {
      loadSeconds: run.loadSeconds,
      trainSeconds,
      steps: globalStep,
      stepsPerSecond: globalStep / Math.max(trainSeconds, 1e-9),
    },
    ...(data.pipeline === undefined ? {} : { data: pipelineReport(data) }),
    lastDiagnostics: state.lastDiagnostics,
    advice: adviseRun({ diagnostics: state.adviceSamples ?? [], epochs, groups: resolution.groups }),
    ...(state.resumes.length > 0 && { resumes: state.resumes }),
    outputs: {
      folder: outDir,
      model: stopped === 'cancelled' ? '' : join(modelDir, 'model.json'),
      best: bestDir === undefined ? undefined : join(bestDir, 'model.json'),
      ...(stopped === 'cancelled' && { checkpoint: join(outDir, CHECKPOINT_FILE) }),
    },
  };
  const reportFile = join(outDir, 'report.json');
  try {
    writeFileAtomic(reportFile, JSON.stringify(report, null, 2) + '\n');
  } catch (e) {
    throw outputError(e, 'the report', outDir);
  }
  // the model and report are on disk: nothing is left to resume, so the checkpoint's space is freed
  if (stopped !== 'cancelled') removeCheckpoint(outDir);

  const results: PlanResults = {
    lastRun: {
      folder: relative(dirname(run.planFile), outDir) || '.',
      date: report.finishedAt,
      backend: run.backend.name,
      epochs: epochs.length,
      stopped,
      best,
      final: last && { trainLoss: last.trainLoss, valLoss: last.valLoss, valAccuracy: last.valAccuracy },
      test: test && {
        loss: test.final.loss,
        accuracy: test.final.accuracy,
        bestLoss: test.best?.loss,
        bestAccuracy: test.best?.accuracy,
      },
    },
  };
  return { report, reportFile, outDir, results, resolution };
}

/** A failed write of the run's outputs, said plainly, with what survives it. */
function outputError(e: unknown, what: string, outDir: string): Error {
  if (typeof (e as NodeJS.ErrnoException).code !== 'string') return e instanceof Error ? e : new Error(String(e));
  const kept = hasCheckpoint(outDir) ? `; the last checkpoint is kept: once that is fixed, resume with "layerwise train <plan> --resume ${outDir}"` : '';
  return new LayerwiseError(`cannot write ${what}: ${errnoText(e)}${kept}`, { file: outDir });
}

/** The plan with the defaults the run used made explicit, for the report. */
export function resolvedPlan(plan: PreparedRun['plan'], task: PreparedRun['task']): RunReport['plan'] {
  const t = plan.training ?? {};
  const optimizer = t.optimizer ?? DEFAULTS.optimizer;
  return {
    ...plan,
    task,
    training: {
      ...t,
      batchSize: t.batchSize ?? DEFAULTS.batchSize,
      lr: t.lr ?? DEFAULTS.lr,
      optimizer,
      betas: t.betas ?? DEFAULTS.betas,
      eps: t.eps ?? DEFAULTS.eps,
      weightDecay: t.weightDecay ?? defaultWeightDecay(optimizer),
      noDecay: t.noDecay ?? [...DEFAULTS.noDecay],
    },
    results: undefined,
  };
}

/** sha256 of a variable's float32 bytes: a byte-for-byte comparison that fits in a checkpoint. */
function hashOf(v: tf.Variable): string {
  const d = v.dataSync();
  return createHash('sha256').update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).digest('hex');
}

function checkFrozen(before: ReadonlyArray<{ name: string; sha256: string }>, params: readonly BoundParam[]): FrozenCheck {
  const byName = new Map(params.map((p) => [p.audit.name, p.variable]));
  const changed: string[] = [];
  for (const b of before) {
    const v = byName.get(b.name);
    if (v === undefined || hashOf(v) !== b.sha256) changed.push(b.name);
  }
  return { weightsChecked: before.length, unchanged: changed.length === 0, changed };
}

interface StepResult {
  loss: number;
  correct: number;
  diagnostics?: LayerDiagnostic[];
}

/**
 * The stage's frozen prefix computed once (prefix-cache.ts), or undefined with the reason logged
 * and reported when the model has layers below the cut that could have been cached.
 */
function stagePrefix(
  run: PreparedRun,
  trainingLayers: ReadonlySet<string>,
  train: Dataset,
  batchSize: number,
  stageNumber: number,
  emit: (e: TrainEvent) => void,
): { prefix: FrozenPrefix | undefined; report: FrozenCacheReport | undefined } {
  const notCached = (reason: string): { prefix: undefined; report: FrozenCacheReport | undefined } => {
    if (reason === FIRST_LAYER_TRAINS) return { prefix: undefined, report: undefined };
    emit({ kind: 'log', level: 'info', message: `stage ${stageNumber}: frozen layers not cached: ${reason}` });
    return { prefix: undefined, report: { cached: false, reason } };
  };
  if (train.stream !== undefined) {
    // a streamed set has no inputs in memory to cache; nothing to say when nothing below is frozen
    const plan = planPrefix(run.model, trainingLayers);
    if (!plan.cache && plan.reason === FIRST_LAYER_TRAINS) return { prefix: undefined, report: undefined };
    return notCached(run.data.pipeline?.augment === true ? 'data.augment is on, so the inputs differ every epoch' : 'the training samples are streamed from files');
  }
  const outcome = buildFrozenPrefix(run.model, trainingLayers, train, batchSize);
  const { cached } = outcome;
  if (cached === undefined) return notCached(outcome.reason);
  const layers = cached.cachedLayers;
  emit({
    kind: 'log',
    level: 'info',
    message: `stage ${stageNumber}: the frozen layers ${layers[0]} … ${layers[layers.length - 1]} (${layers.length}) were computed once ` +
      `for ${train.n} samples in ${cached.seconds.toFixed(2)} s (${(cached.bytes / 2 ** 20).toFixed(1)} MB) and are reused every epoch of the stage`,
  });
  return { prefix: cached, report: { cached: true, layers: layers.length, megabytes: Number((cached.bytes / 2 ** 20).toFixed(1)) } };
}

/** The data section of the report, with every file left out by the end of the run. */
function pipelineReport(data: PreparedRun['data']): NonNullable<RunReport['data']> {
  const bad = [...(data.badFiles ?? [])];
  return { ...data.pipeline!, skipped: bad.length, skippedFiles: bad.slice(0, 10) };
}

/**
 * One optimizer step; gradients only for `trainable`, so nothing below them is back-propagated.
 * With a frozen `prefix`, `ds` holds its cached activations and only the layers above it run.
 */
export function trainStep(
  run: Pick<PreparedRun, 'model' | 'task'>,
  lossSpec: LossSpec,
  optimizer: GroupedOptimizer,
  trainable: readonly BoundParam[],
  ds: Dataset,
  indices: number[],
  lrOf: (p: BoundParam) => number,
  wantDiagnostics: boolean,
  prefix?: Pick<FrozenPrefix, 'forward'>,
): StepResult {
  const { x, y } = batchTensors(ds, indices);
  try {
    if (trainable.length === 0) {
      // nothing trains (everything frozen): still report the loss, change nothing
      return inferenceLoss(run.model, lossSpec, x, y);
    }
    let correct = 0;
    const { value, grads } = tf.variableGrads(() => {
      const o = prefix ? prefix.forward(x) : forward(run.model, x, true);
      if (run.task === 'classification') correct = countCorrect(o, y);
      return computeLoss(lossSpec, o, y);
    }, trainable.map((p) => p.variable));
    const loss = value.dataSync()[0] ?? NaN;
    value.dispose();
    if (!Number.isFinite(loss)) {
      tf.dispose(grads);
      return { loss, correct };
    }
    const before = wantDiagnostics ? trainable.map((p) => tf.keep(p.variable.clone())) : undefined;
    optimizer.step(
      trainable.map((p) => ({
        name: p.audit.name,
        variable: p.variable,
        grad: grads[p.variable.name] as tf.Tensor,
        lr: lrOf(p),
        weightDecay: p.audit.weightDecay,
      })),
    );
    let diagnostics: LayerDiagnostic[] | undefined;
    if (before) {
      diagnostics = layerDiagnostics(trainable, grads, before);
      tf.dispose(before);
    }
    tf.dispose(grads);
    return { loss, correct, diagnostics };
  } finally {
    x.dispose();
    y.dispose();
  }
}

function layerDiagnostics(trainable: readonly BoundParam[], grads: tf.NamedTensorMap, before: tf.Tensor[]): LayerDiagnostic[] {
  const sums = tf.tidy(() => {
    const rows = trainable.map((p, i) => {
      const g = grads[p.variable.name] as tf.Tensor;
      const prev = before[i] as tf.Tensor;
      return tf.stack([tf.sum(tf.square(g)), tf.sum(tf.square(tf.sub(p.variable, prev))), tf.sum(tf.square(prev))]);
    });
    return tf.stack(rows);
  });
  const flat = sums.dataSync();
  sums.dispose();
  const byLayer = new Map<string, { group: string; g: number; d: number; w: number }>();
  trainable.forEach((p, i) => {
    const e = byLayer.get(p.layerName) ?? { group: p.audit.group, g: 0, d: 0, w: 0 };
    e.g += flat[i * 3] ?? 0;
    e.d += flat[i * 3 + 1] ?? 0;
    e.w += flat[i * 3 + 2] ?? 0;
    byLayer.set(p.layerName, e);
  });
  return [...byLayer].map(([layer, e]) => ({
    layer,
    group: e.group,
    gradNorm: Math.sqrt(e.g),
    updateRatio: e.w > 0 ? Math.sqrt(e.d) / Math.sqrt(e.w) : 0,
  }));
}

/** One batch's mean loss and correct count in inference mode; changes no weight and no state. */
function inferenceLoss(model: tf.LayersModel, lossSpec: LossSpec, x: tf.Tensor, y: tf.Tensor): { loss: number; correct: number } {
  const r = tf.tidy(() => {
    const o = forward(model, x, false);
    return { loss: computeLoss(lossSpec, o, y), correct: lossSpec.task === 'classification' ? countCorrect(o, y) : 0 };
  });
  const loss = r.loss.dataSync()[0] ?? NaN;
  r.loss.dispose();
  return { loss, correct: r.correct };
}

/** Mean loss and accuracy on a dataset, in inference mode; changes no weight and no state. */
export async function evaluate(model: tf.LayersModel, lossSpec: LossSpec, ds: Dataset, batchSize: number): Promise<{ loss: number; accuracy: number }> {
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  const feed = new BatchFeed(ds, Array.from({ length: ds.n }, (_, i) => i), batchSize, { epoch: 0, augment: false });
  for (let b = 0; b < feed.batches; b++) {
    const batch = await feed.get(b);
    const indices = batch.indices;
    n += indices.length;
    const { x, y } = batchTensors(batch.ds, indices);
    const r = inferenceLoss(model, lossSpec, x, y);
    lossSum += r.loss * indices.length;
    correct += r.correct;
    x.dispose();
    y.dispose();
  }
  return { loss: lossSum / n, accuracy: correct / n };
}

/** data.test on the model's current weights, once per run (never used to select anything), or undefined without one. */
async function evaluateTest(run: Pick<PreparedRun, 'model' | 'data' | 'task'>, lossSpec: LossSpec, batchSize: number): Promise<TestMetrics | undefined> {
  const ds = run.data.test;
  if (ds === undefined) return undefined;
  const r = await evaluate(run.model, lossSpec, ds, batchSize);
  return run.task === 'classification' ? { loss: r.loss, accuracy: r.accuracy } : { loss: r.loss };
}

/** A run writes only into its own folder, never into the model's folder. */
export function assertOutDirAllowed(run: Pick<PreparedRun, 'plan' | 'planFile' | 'workspaceRoot'>, outDir: string): void {
  // "model" may name the model's folder instead of its model.json
  const modelDir = dirname(modelJsonPath(resolvePlanPath(run.planFile, run.plan.model, 'model', run.workspaceRoot)));
  const rel = relative(modelDir, outDir);
  if (rel === '' || !(rel.startsWith('..') || isAbsolute(rel))) {
    throw new LayerwiseError(`the output folder ${outDir} is inside the model's folder; a run never writes there`, {
      file: run.planFile,
      field: 'output',
    });
  }
}

export type { Timeline };
