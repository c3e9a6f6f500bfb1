/**
 * The training loop: unfreezing stages, per-parameter learning rates from the one timeline,
 * validation every epoch, early stopping, cancel, a non-finite guard, throttled progress and
 * per-layer diagnostics. No gradient is computed for anything that does not train in a step.
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { LayerwiseError } from '../core/errors.ts';
import { batchNormInferenceLayers } from '../core/groups.ts';
import type { Resolution } from '../core/groups.types.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { DEFAULTS, defaultWeightDecay, type PlanResults } from '../core/plan.ts';
import type {
  EpochMetrics,
  FrozenCheck,
  LayerDiagnostic,
  RunReport,
  StageReport,
  TestMetrics,
  StopReason,
  TrainEvent,
} from '../core/progress.ts';
import { buildTimeline, groupLrsAt, paramLr, resolveStages, scheduleFactorAt, type Timeline } from '../core/timeline.ts';
import { batchTensors, epochOrder, type Dataset } from './data.ts';
import { computeLoss, countCorrect, forward, lossSpecFor, ModeControl, type LossSpec } from './forward.ts';
import { saveModel } from './model-io.ts';
import { GroupedOptimizer, type OptimizerSettings } from './optimizer.ts';
import { buildFrozenPrefix, type FrozenPrefix } from './prefix-cache.ts';
import { prepareRun, trainingParams, type BoundParam, type PreparedRun, type RunTarget } from './session.ts';

export interface TrainOptions extends RunTarget {
  /** Exact output folder (created); default: `<plan output>/<plan name>-<timestamp>`. */
  outDir?: string;
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
  const run = await prepareRun(opts);
  try {
    return await trainPrepared(run, opts);
  } finally {
    run.model.dispose();
  }
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
  const root = resolvePlanPath(run.planFile, run.plan.output ?? DEFAULTS.output, 'output', run.workspaceRoot);
  const stamp = new Date().toISOString().replace(/[:.]/g, '-').replace('T', '_').slice(0, 19);
  const planName = basename(run.planFile).replace(/\.json$/, '').replace(/\.layerwise$/, '');
  return join(root, `${prefix}${planName}-${stamp}`);
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

export async function trainPrepared(run: PreparedRun, opts: TrainOptions): Promise<TrainOutcome> {
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
  const startedAt = new Date();
  emit({ kind: 'log', level: 'info', message: `backend ${run.backend.name}: ${run.backend.reason}` });
  const trainStart = performance.now();

  // the bit-exact frozen check: copy every frozen weight and statistic out of the model now
  const frozenBefore = planFrozen(params, resolution).map((p) => ({ name: p.audit.name, bytes: copyBytes(p.variable) }));

  const epochs: EpochMetrics[] = [];
  const groupLrByEpoch: Record<string, number[]> = Object.fromEntries(resolution.groups.map((g) => [g.name, []]));
  const stageReports: StageReport[] = [];
  let stopped: StopReason = 'completed';
  let message: string | undefined;
  let best: RunReport['best'];
  let bestSnapshot: Snapshot | undefined;
  let epochStart: Snapshot | undefined;
  let sinceBest = 0;
  let globalStep = 0;
  let lastEmit = 0;
  let lastDiagnostics: LayerDiagnostic[] | undefined;
  const allVars = params.map((p) => p.variable);
  let trainedBefore = new Set<string>();

  try {
    outer: for (const stage of timeline.stages) {
      const trainGroups = new Set(stage.trainGroups);
      const trainable = trainingParams(params, trainGroups);
      const trainedNow = new Set(trainable.map((p) => p.audit.name));
      // a parameter that trains again after a pause starts fresh; ones that kept training keep their state
      for (const p of trainable) if (!trainedBefore.has(p.audit.name) && optimizer.stepsTaken(p.audit.name) > 0) optimizer.resetState(p.audit.name);
      trainedBefore = trainedNow;
      const trainingLayers = new Set(trainable.map((p) => p.layerName));
      modes.trainOnly(trainingLayers);
      stageReports.push({ stage: stage.index + 1, epochs: stage.epochs, trainGroups: stage.trainGroups, lr: stage.lr, steps: stage.steps });
      emit({ kind: 'stage', stage: stage.index + 1, stages: timeline.stages.length, epochs: stage.epochs, trainGroups: stage.trainGroups, lr: stage.lr });
      const prefix = opts.frozenPrefixCache === false || trainable.length === 0
        ? undefined
        : stagePrefix(run, trainingLayers, train, batchSize, stage.index + 1, emit);
      const stageData = prefix?.dataset ?? train;

      for (let e = 0; e < stage.epochs; e++) {
        const epochIndex = stage.startEpoch + e;
        const epochClock = performance.now();
        disposeSnapshot(epochStart);
        epochStart = takeSnapshot(allVars);
        const order = epochOrder(train.n, shuffle, seed, epochIndex);
        let lossSum = 0;
        let correct = 0;
        for (let b = 0; b < stepsPerEpoch; b++) {
          if (opts.signal?.aborted) {
            stopped = 'cancelled';
            message = 'cancelled by the user';
            break outer;
          }
          const indices = order.slice(b * batchSize, (b + 1) * batchSize);
          const factor = scheduleFactorAt(plan, timeline, globalStep);
          const wantDiagnostics = diagnosticsEvery > 0 && (globalStep + 1) % diagnosticsEvery === 0 && trainable.length > 0;
          const step = trainStep(run, lossSpec, optimizer, trainable, stageData, indices, (p) => paramLr(stage, p.audit.lrMult, factor), wantDiagnostics, prefix);
          if (!Number.isFinite(step.loss)) {
            restoreSnapshot(epochStart);
            stopped = 'nonFinite';
            message = `the loss became ${step.loss} at step ${globalStep + 1} (stage ${stage.index + 1}, epoch ${epochIndex + 1}); the weights from the start of that epoch were kept — lower the learning rate`;
            emit({ kind: 'log', level: 'error', message });
            break outer;
          }
          lossSum += step.loss * indices.length;
          correct += step.correct;
          globalStep += 1;
          if (step.diagnostics) {
            lastDiagnostics = step.diagnostics;
            emit({ kind: 'diagnostics', step: globalStep, layers: step.diagnostics });
          }
          const now = performance.now();
          if (now - lastEmit >= interval || b === stepsPerEpoch - 1) {
            lastEmit = now;
            const elapsed = (now - trainStart) / 1000;
            emit({
              kind: 'step',
              stage: stage.index + 1,
              stages: timeline.stages.length,
              epoch: epochIndex + 1,
              epochs: timeline.totalEpochs,
              step: globalStep,
              totalSteps: timeline.totalSteps,
              loss: step.loss,
              groupLrs: groupLrsAt(plan, resolution, timeline, globalStep - 1),
              etaSeconds: (elapsed / globalStep) * (timeline.totalSteps - globalStep),
            });
          }
          // let the event loop breathe so a cancel message can arrive between batches
          await new Promise((r) => setImmediate(r));
        }
        const groupLrs = groupLrsAt(plan, resolution, timeline, globalStep - 1);
        for (const g of groupLrs) groupLrByEpoch[g.group]?.push(g.lr);
        const metrics: EpochMetrics = {
          stage: stage.index + 1,
          epoch: epochIndex + 1,
          trainLoss: lossSum / train.n,
          seconds: (performance.now() - epochClock) / 1000,
          groupLrs,
        };
        if (run.task === 'classification') metrics.trainAccuracy = correct / train.n;
        if (data.validation) {
          const v = evaluate(run.model, lossSpec, data.validation, batchSize);
          metrics.valLoss = v.loss;
          if (run.task === 'classification') metrics.valAccuracy = v.accuracy;
        }
        epochs.push(metrics);
        emit({ kind: 'epoch', ...metrics });

        if (metrics.valLoss !== undefined) {
          const es = training.earlyStopping;
          const metricName = es?.metric ?? 'valLoss';
          const value = metricName === 'valAccuracy' ? -(metrics.valAccuracy ?? 0) : metrics.valLoss;
          const bestValue = best === undefined ? Infinity : metricName === 'valAccuracy' ? -(best.valAccuracy ?? 0) : (best.valLoss ?? Infinity);
          if (value < bestValue - (es?.minDelta ?? 0)) {
            best = { epoch: epochIndex + 1, valLoss: metrics.valLoss, valAccuracy: metrics.valAccuracy };
            disposeSnapshot(bestSnapshot);
            bestSnapshot = takeSnapshot(allVars);
            sinceBest = 0;
          } else {
            sinceBest += 1;
            if (es && sinceBest >= es.patience) {
              stopped = 'earlyStopping';
              message = `stopped early: ${metricName} did not improve for ${es.patience} epoch(s); best at epoch ${best?.epoch}`;
              emit({ kind: 'log', level: 'info', message });
              break outer;
            }
          }
        }
      }
    }
  } finally {
    modes.restore();
    disposeSnapshot(epochStart);
    optimizer.dispose();
  }

  const trainSeconds = (performance.now() - trainStart) / 1000;
  const frozenCheck = checkFrozen(frozenBefore, params);
  if (!frozenCheck.unchanged) {
    // a broken promise of the tool, not of the user: say it loudly
    emit({ kind: 'log', level: 'error', message: `frozen weights changed: ${frozenCheck.changed.join(', ')}` });
  }

  // outputs: nothing at all when cancelled, so no half-written model can exist
  mkdirSync(outDir, { recursive: true });
  const modelDir = outDir;
  let bestDir: string | undefined;
  let test: RunReport['test'];
  if (stopped !== 'cancelled') {
    await saveModel(run.model, modelDir);
    const final = evaluateTest(run, lossSpec, batchSize);
    if (final !== undefined) test = { final };
    if (bestSnapshot && best && best.epoch !== epochs[epochs.length - 1]?.epoch) {
      const current = takeSnapshot(allVars);
      restoreSnapshot(bestSnapshot);
      bestDir = join(outDir, 'best');
      await saveModel(run.model, bestDir);
      const bestTest = evaluateTest(run, lossSpec, batchSize);
      if (test !== undefined && bestTest !== undefined) test.best = { epoch: best.epoch, ...bestTest };
      restoreSnapshot(current);
      disposeSnapshot(current);
    }
  }
  disposeSnapshot(bestSnapshot);

  const last = epochs[epochs.length - 1];
  const report: RunReport = {
    version: 1,
    planFile: run.planFile,
    plan: resolvedPlan(run),
    task: run.task,
    classes: data.classes,
    backend: { name: run.backend.name, reason: run.backend.reason },
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    stopped,
    message,
    stages: stageReports,
    epochs,
    groupLrByEpoch,
    best,
    frozenCheck,
    test,
    timings: {
      loadSeconds: run.loadSeconds,
      trainSeconds,
      steps: globalStep,
      stepsPerSecond: globalStep / Math.max(trainSeconds, 1e-9),
    },
    lastDiagnostics,
    outputs: {
      folder: outDir,
      model: stopped === 'cancelled' ? '' : join(modelDir, 'model.json'),
      best: bestDir === undefined ? undefined : join(bestDir, 'model.json'),
    },
  };
  const reportFile = join(outDir, 'report.json');
  writeFileAtomic(reportFile, JSON.stringify(report, null, 2) + '\n');

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

/** The plan with the defaults the run used made explicit, for the report. */
function resolvedPlan(run: PreparedRun): RunReport['plan'] {
  const t = run.plan.training ?? {};
  const optimizer = t.optimizer ?? DEFAULTS.optimizer;
  return {
    ...run.plan,
    task: run.task,
    training: {
      ...t,
      epochs: t.epochs,
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

function copyBytes(v: tf.Variable): Uint8Array {
  const d = v.dataSync();
  return new Uint8Array(d.buffer.slice(d.byteOffset, d.byteOffset + d.byteLength));
}

function checkFrozen(before: Array<{ name: string; bytes: Uint8Array }>, params: readonly BoundParam[]): FrozenCheck {
  const byName = new Map(params.map((p) => [p.audit.name, p.variable]));
  const changed: string[] = [];
  for (const b of before) {
    const v = byName.get(b.name);
    const now = v === undefined ? undefined : copyBytes(v);
    if (now === undefined || now.length !== b.bytes.length || !now.every((x, i) => x === b.bytes[i])) changed.push(b.name);
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
 * when the model has layers below the cut that could have been cached.
 */
function stagePrefix(
  run: PreparedRun,
  trainingLayers: ReadonlySet<string>,
  train: Dataset,
  batchSize: number,
  stageNumber: number,
  emit: (e: TrainEvent) => void,
): FrozenPrefix | undefined {
  const outcome = buildFrozenPrefix(run.model, trainingLayers, train, batchSize);
  const { cached } = outcome;
  if (cached !== undefined) {
    const layers = cached.cachedLayers;
    emit({
      kind: 'log',
      level: 'info',
      message: `stage ${stageNumber}: the frozen layers ${layers[0]} … ${layers[layers.length - 1]} (${layers.length}) were computed once ` +
        `for ${train.n} samples in ${cached.seconds.toFixed(2)} s (${(cached.bytes / 2 ** 20).toFixed(1)} MB) and are reused every epoch of the stage`,
    });
    return cached;
  }
  if (outcome.reason !== 'the first layer trains') {
    emit({ kind: 'log', level: 'info', message: `stage ${stageNumber}: frozen layers not cached: ${outcome.reason}` });
  }
  return undefined;
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
export function evaluate(model: tf.LayersModel, lossSpec: LossSpec, ds: Dataset, batchSize: number): { loss: number; accuracy: number } {
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < ds.n; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, ds.n - start) }, (_, i) => start + i);
    const { x, y } = batchTensors(ds, indices);
    const r = inferenceLoss(model, lossSpec, x, y);
    lossSum += r.loss * indices.length;
    correct += r.correct;
    x.dispose();
    y.dispose();
  }
  return { loss: lossSum / ds.n, accuracy: correct / ds.n };
}

/** data.test on the model's current weights, once per run (never used to select anything), or undefined without one. */
function evaluateTest(run: Pick<PreparedRun, 'model' | 'data' | 'task'>, lossSpec: LossSpec, batchSize: number): TestMetrics | undefined {
  const ds = run.data.test;
  if (ds === undefined) return undefined;
  const r = evaluate(run.model, lossSpec, ds, batchSize);
  return run.task === 'classification' ? { loss: r.loss, accuracy: r.accuracy } : { loss: r.loss };
}

/** A run writes only into its own folder, never into the model's folder. */
export function assertOutDirAllowed(run: Pick<PreparedRun, 'plan' | 'planFile' | 'workspaceRoot'>, outDir: string): void {
  const modelDir = dirname(resolvePlanPath(run.planFile, run.plan.model, 'model', run.workspaceRoot));
  const rel = relative(modelDir, outDir);
  if (rel === '' || !(rel.startsWith('..') || isAbsolute(rel))) {
    throw new LayerwiseError(`the output folder ${outDir} is inside the model's folder; a run never writes there`, {
      file: run.planFile,
      field: 'output',
    });
  }
}

export type { Timeline };
