/**
 * Automatic multipliers. `rgn`: Auto-RGN (Lee et al. 2022, "Surgical Fine-Tuning") per group —
 * the relative gradient norm at the plan's starting weights, no optimizer step, weights restored.
 * `search`: successive halving over search candidates (core/tune.ts), each trained from the same
 * starting weights by the trainer's own step and schedule and scored by validation loss, never
 * spending more optimizer steps than the budget.
 */
import * as tf from '@tensorflow/tfjs';
import { LayerwiseError } from '../core/errors.ts';
import { batchNormInferenceLayers, resolveGroups } from '../core/groups.ts';
import { DEFAULTS, type Plan } from '../core/plan.ts';
import type { TrainEvent } from '../core/progress.ts';
import {
  groupRgn,
  halvingRungs,
  rgnSuggestion,
  roundMult,
  searchCandidates,
  TUNE_DEFAULTS,
  type SearchCandidate,
  type TuneMethod,
  type TuneResult,
  type TuneTrial,
} from '../core/tune.ts';
import { buildTimeline, paramLr, resolveStages, scheduleFactorAt, stageAt } from '../core/timeline.ts';
import { validatePlanValue } from '../core/validate.ts';
import { assertNever } from '../core/errors.ts';
import { batchTensors, EpochBatches, type Batch } from './data.ts';
import { computeLoss, forward, lossSpecFor, ModeControl, type LossSpec } from './forward.ts';
import { GroupedOptimizer } from './optimizer.ts';
import { bindParams, prepareRun, trainingParams, type BoundParam, type PreparedRun, type RunTarget } from './session.ts';
import { evaluate, optimizerSettings, trainStep } from './trainer.ts';

export interface TuneOptions extends RunTarget {
  method: TuneMethod;
  /** search: optimizer steps the whole search may spend (default TUNE_DEFAULTS.budget). */
  budget?: number;
  /** rgn: batches whose gradients are averaged (default TUNE_DEFAULTS.rgnBatches). */
  batches?: number;
  /** Data order (default: the plan's data.seed / training.seed). */
  seed?: number;
  /** rgn: measure groups the plan freezes too (their suggestion unfreezes them). */
  includeFrozen?: boolean;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
  /** search: minimum milliseconds between two step events (default 250; 0 = every step). */
  progressIntervalMs?: number;
}

export async function tune(opts: TuneOptions): Promise<TuneResult> {
  const run = await prepareRun(opts, opts.onEvent);
  try {
    return await tunePrepared(run, opts);
  } finally {
    run.model.dispose();
    await run.data.pool?.close();
  }
}

export async function tunePrepared(run: PreparedRun, opts: TuneOptions): Promise<TuneResult> {
  const emit = opts.onEvent ?? (() => undefined);
  emit({ kind: 'log', level: 'info', message: `backend ${run.backend.name}: ${run.backend.reason}` });
  const started = performance.now();
  const date = new Date().toISOString();
  // every weight and statistic as it was: restored after, whatever happens
  const start = run.params.map((p) => ({ v: p.variable, t: tf.keep(p.variable.clone()) }));
  try {
    switch (opts.method) {
      case 'rgn': {
        const r = await measureRgn(run, opts);
        return { method: 'rgn', groups: r.groups, steps: r.batches, seconds: (performance.now() - started) / 1000, date };
      }
      case 'search': {
        const r = await search(run, () => start.forEach((s) => s.v.assign(s.t)), opts);
        return { method: 'search', ...r, seconds: (performance.now() - started) / 1000, date };
      }
      default:
        return assertNever(opts.method, 'tune method');
    }
  } finally {
    for (const s of start) {
      s.v.assign(s.t);
      s.t.dispose();
    }
  }
}

function dataSeed(run: PreparedRun, opts: Pick<TuneOptions, 'seed'>): number {
  return opts.seed ?? run.plan.data?.seed ?? run.plan.training?.seed ?? DEFAULTS.seed;
}

/** The training batches in the trainer's order, epoch after epoch (data.ts `EpochBatches`). */
function trainBatches(run: PreparedRun, seed: number): EpochBatches {
  return new EpochBatches(run.data.train, run.plan.training?.batchSize ?? DEFAULTS.batchSize, run.plan.data?.shuffle ?? DEFAULTS.shuffle, seed);
}

/** The next batch that holds a sample: one whose every file was unreadable is passed over, as the trainer does. */
async function readableBatch(source: EpochBatches, run: PreparedRun): Promise<Batch> {
  for (let empty = 0; ;) {
    const batch = await source.next();
    if (batch.indices.length > 0) return batch;
    if (++empty >= source.perEpoch) {
      throw new LayerwiseError('no training sample could be read: every file was left out as unreadable', { file: run.planFile, field: 'data.train' });
    }
  }
}

// ---- rgn ---------------------------------------------------------------------------------------

async function measureRgn(run: PreparedRun, opts: TuneOptions): Promise<{ groups: TuneResult['groups']; batches: number }> {
  const batches = opts.batches ?? TUNE_DEFAULTS.rgnBatches;
  if (!(Number.isInteger(batches) && batches >= 1)) throw new LayerwiseError(`--batches must be a whole number ≥ 1 (got ${batches})`);
  // every group that may train gets a gradient at once (stages do not matter at the start weights)
  const measured = run.params.filter((p) => p.audit.trainable && (opts.includeFrozen === true || !p.audit.frozen));
  if (measured.length === 0) throw new LayerwiseError('every group is frozen: there is nothing to measure (--include-frozen measures frozen groups)', { file: run.planFile });
  const modes = new ModeControl(run.model, batchNormInferenceLayers(run.resolution));
  modes.trainOnly(new Set(measured.map((p) => p.layerName)));
  try {
    return await rgnBatches(run, opts, measured, batches);
  } finally {
    modes.restore();
  }
}

async function rgnBatches(run: PreparedRun, opts: TuneOptions, measured: readonly BoundParam[], batches: number): Promise<{ groups: TuneResult['groups']; batches: number }> {
  const lossSpec = lossSpecFor(run.model, run.task);
  const sums = new Map<string, number>();
  const defined = new Map<string, number>();
  const source = trainBatches(run, dataSeed(run, opts));
  try {
    for (let b = 0; b < batches; b++) {
      if (opts.signal?.aborted) throw new LayerwiseError('tuning was cancelled');
      const perTensor = tensorNorms(run.model, lossSpec, measured, await readableBatch(source, run));
      const byGroup = new Map<string, Array<{ gradSq: number; weightSq: number }>>();
      measured.forEach((p, i) => {
        const list = byGroup.get(p.audit.group) ?? [];
        list.push(perTensor[i] as { gradSq: number; weightSq: number });
        byGroup.set(p.audit.group, list);
      });
      for (const [group, tensors] of byGroup) {
        const r = groupRgn(tensors);
        if (r === undefined) continue;
        sums.set(group, (sums.get(group) ?? 0) + r);
        defined.set(group, (defined.get(group) ?? 0) + 1);
      }
      opts.onEvent?.({ kind: 'log', level: 'info', message: `rgn: batch ${b + 1}/${batches}` });
      await new Promise((r) => setImmediate(r));
    }
  } finally {
    await source.close();
  }
  const groups = new Set(measured.map((p) => p.audit.group));
  const mean = new Map<string, number | undefined>();
  for (const g of groups) {
    const n = defined.get(g) ?? 0;
    mean.set(g, n === 0 ? undefined : (sums.get(g) ?? 0) / n);
  }
  return { groups: rgnSuggestion(run.resolution, mean, batches), batches };
}

/** ‖g‖² and ‖θ‖² of every measured tensor on one batch, in training mode, without a step. */
function tensorNorms(model: tf.LayersModel, lossSpec: LossSpec, measured: readonly BoundParam[], batch: Batch): Array<{ gradSq: number; weightSq: number }> {
  const { x, y } = batchTensors(batch.ds, batch.indices);
  try {
    const { value, grads } = tf.variableGrads(() => computeLoss(lossSpec, forward(model, x, true), y), measured.map((p) => p.variable));
    value.dispose();
    const flat = tf.tidy(() =>
      tf.stack(measured.map((p) => tf.stack([tf.sum(tf.square(grads[p.variable.name] as tf.Tensor)), tf.sum(tf.square(p.variable))]))).dataSync(),
    );
    tf.dispose(grads);
    return measured.map((_, i) => ({ gradSq: flat[i * 2] ?? 0, weightSq: flat[i * 2 + 1] ?? 0 }));
  } finally {
    x.dispose();
    y.dispose();
  }
}

// ---- search ------------------------------------------------------------------------------------

/** True when the plan schema knows `batchNorm` (a guard kept for plans validated by an older schema). */
export function schemaKnowsBatchNorm(plan: Plan, file: string): boolean {
  try {
    const { results: _results, ...rest } = plan;
    validatePlanValue({ ...rest, batchNorm: 'train' }, file);
    return true;
  } catch {
    return false;
  }
}

async function search(
  run: PreparedRun,
  restoreStart: () => void,
  opts: TuneOptions,
): Promise<Pick<TuneResult, 'groups' | 'steps' | 'changes' | 'trials' | 'budget'>> {
  const validation = run.data.validation;
  if (validation === undefined) {
    throw new LayerwiseError('a search scores each candidate by validation loss: give the plan "data.validation" or "data.validationSplit"', { file: run.planFile, field: 'data' });
  }
  const budget = opts.budget ?? TUNE_DEFAULTS.budget;
  const stages = resolveStages(run.plan, run.resolution, run.planFile);
  const hasBatchNorm = run.info.layers.some((l) => l.className === 'BatchNormalization');
  const candidates = searchCandidates(run.plan, run.resolution, stages, hasBatchNorm && schemaKnowsBatchNorm(run.plan, run.planFile));
  const rungs = halvingRungs(candidates.length, budget);
  const emit = opts.onEvent ?? (() => undefined);
  const interval = opts.progressIntervalMs ?? 250;
  const batchSize = run.plan.training?.batchSize ?? DEFAULTS.batchSize;
  const lossSpec = lossSpecFor(run.model, run.task);
  const seed = dataSeed(run, opts);
  const trials: TuneTrial[] = [];
  let alive = candidates.map((c, index) => ({ c, index }));
  let spent = 0;
  let lastEmit = 0;
  let scored: Array<{ c: SearchCandidate; index: number; loss: number }> = [];
  for (const [r, rung] of rungs.entries()) {
    emit({ kind: 'log', level: 'info', message: `search round ${r + 1}/${rungs.length}: ${alive.length} candidates × ${rung.steps} steps` });
    scored = [];
    for (const { c, index } of alive) {
      if (opts.signal?.aborted) throw new LayerwiseError('tuning was cancelled');
      restoreStart();
      const steps = await trainCandidate(run, c.plan, lossSpec, rung.steps, seed, () => {
        spent += 1;
        const now = performance.now();
        if (now - lastEmit >= interval) {
          lastEmit = now;
          emit({ kind: 'step', stage: r + 1, stages: rungs.length, epoch: 1, epochs: 1, step: spent, totalSteps: budget, loss: NaN, groupLrs: [], etaSeconds: 0 });
        }
      });
      const v = (await evaluate(run.model, lossSpec, validation, batchSize)).loss;
      const loss = Number.isFinite(v) ? v : Infinity;
      trials.push({ label: c.label, rung: r + 1, steps, valLoss: loss });
      scored.push({ c, index, loss });
    }
    // ties go to the earlier candidate (the plan as it is first), so a rerun picks the same
    scored.sort((a, b) => a.loss - b.loss || a.index - b.index);
    const keep = rungs[r + 1]?.candidates ?? 1;
    alive = scored.slice(0, keep).map(({ c, index }) => ({ c, index }));
  }
  restoreStart();
  const winner = scored[0];
  if (winner === undefined) throw new Error('search without candidates');
  const resolution = resolveGroups(run.info, winner.c.plan, run.planFile);
  const groups = run.resolution.groups.map((g) => {
    const w = resolution.groups.find((x) => x.name === g.name);
    const lrMult = roundMult(w?.lrMult ?? g.lrMult);
    const frozen = g.frozen ? { frozen: true } : {};
    const trains = g.layers.some((l) => l.params.some((p) => p.trainable));
    const why = g.frozen ? 'frozen: left alone' : !trains ? 'no trainable weights' : `${winner.c.label}: val loss ${winner.loss.toPrecision(4)}`;
    return { name: g.name, current: g.lrMult, lrMult, ...frozen, why };
  });
  return { groups, steps: spent, budget, trials, ...(winner.c.changes && { changes: winner.c.changes }) };
}

/**
 * Trains one candidate for at most `maxSteps` optimizer steps from the current weights: its
 * whole schedule and unfreezing compressed into those steps (never longer than the real run),
 * with the trainer's step, LR formula and BatchNorm modes. Returns the steps taken.
 */
async function trainCandidate(
  run: PreparedRun,
  plan: Plan,
  lossSpec: LossSpec,
  maxSteps: number,
  seed: number,
  onStep: () => void,
): Promise<number> {
  const resolution = resolveGroups(run.info, plan, run.planFile);
  const params = bindParams(run.model, run.info, resolution);
  const stages = resolveStages(plan, resolution, run.planFile);
  const epochs = Math.max(1, stages.reduce((s, x) => s + x.epochs, 0));
  const batchSize = plan.training?.batchSize ?? DEFAULTS.batchSize;
  const realStepsPerEpoch = Math.ceil(run.data.train.n / batchSize);
  const timeline = buildTimeline(stages, Math.max(1, Math.min(realStepsPerEpoch, Math.floor(maxSteps / epochs))));
  const total = Math.min(maxSteps, timeline.totalSteps);
  const optimizer = new GroupedOptimizer(optimizerSettings({ plan }));
  const modes = new ModeControl(run.model, batchNormInferenceLayers(resolution));
  const source = trainBatches(run, seed);
  let stageIndex = -1;
  let trainable: BoundParam[] = [];
  try {
    for (let t = 0; t < total; t++) {
      const stage = stageAt(timeline, t);
      if (stage.index !== stageIndex) {
        stageIndex = stage.index;
        trainable = trainingParams(params, new Set(stage.trainGroups));
        modes.trainOnly(new Set(trainable.map((p) => p.layerName)));
      }
      const factor = scheduleFactorAt(plan, timeline, t);
      const batch = await readableBatch(source, run);
      const step = trainStep(run, lossSpec, optimizer, trainable, batch.ds, batch.indices, (p) => paramLr(stage, p.audit.lrMult, factor), false);
      onStep();
      if (!Number.isFinite(step.loss)) return t + 1;
      await new Promise((r) => setImmediate(r));
    }
    return total;
  } finally {
    await source.close();
    optimizer.dispose();
    modes.restore();
  }
}
