/**
 * The LR range test: an exponential sweep of one global scale that keeps the ratios between
 * groups (or of one group's LR with the others fixed), on the plan's first stage. Weights,
 * BatchNorm statistics and everything else are restored afterwards.
 */
import * as tf from '@tensorflow/tfjs';
import { join, relative, dirname } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic-write.ts';
import { LayerwiseError } from '../core/errors.ts';
import { batchNormInferenceLayers } from '../core/groups.ts';
import {
  LossSmoother,
  LR_FINDER_DEFAULTS,
  pickSuggestion,
  shouldStop,
  suggestLrs,
  sweepLr,
  type LrCurvePoint,
  type LrFinderOptions,
  type LrFinderOutcome,
} from '../core/lr-finder.ts';
import { DEFAULTS, type PlanResults } from '../core/plan.ts';
import type { TrainEvent } from '../core/progress.ts';
import { resolveStages } from '../core/timeline.ts';
import { linePlotSvg } from '../core/svg-plot.ts';
import { EpochBatches } from './data.ts';
import { lossSpecFor, ModeControl } from './forward.ts';
import { GroupedOptimizer } from './optimizer.ts';
import { assertNewRunFolder, prepareRun, trainingParams, type BoundParam, type PreparedRun, type RunTarget } from './session.ts';
import { assertOutDirAllowed, defaultOutDir, optimizerSettings, trainStep } from './trainer.ts';

export interface FindLrOptions extends RunTarget {
  options?: Partial<LrFinderOptions>;
  /** 1-based stage whose trainable groups are swept (default 1: where training starts). */
  stage?: number;
  outDir?: string;
  signal?: AbortSignal;
  onEvent?: (e: TrainEvent) => void;
}

export interface FindLrResult {
  outcome: LrFinderOutcome;
  curveFile: string;
  plotFile: string;
  outDir: string;
  results: PlanResults;
}

/** The options with their defaults, checked. */
export function lrFinderOptions(options: Partial<LrFinderOptions> | undefined): LrFinderOptions {
  const o: LrFinderOptions = { ...LR_FINDER_DEFAULTS, ...options };
  if (!(o.startLr > 0 && o.endLr > o.startLr)) {
    throw new LayerwiseError(`startLr must be > 0 and below endLr (got ${o.startLr} → ${o.endLr})`, { field: 'startLr' });
  }
  if (!(Number.isInteger(o.steps) && o.steps >= 5)) throw new LayerwiseError(`steps must be a whole number ≥ 5 (got ${o.steps})`, { field: 'steps' });
  return o;
}

export async function findLr(opts: FindLrOptions): Promise<FindLrResult> {
  const o = lrFinderOptions(opts.options);
  const run = await prepareRun(opts, opts.onEvent);
  try {
    return await findLrPrepared(run, o, opts);
  } finally {
    run.model.dispose();
    await run.data.pool?.close();
  }
}

/** The sweep on an already prepared run; the model's weights and statistics are restored after. */
export async function findLrPrepared(run: PreparedRun, o: LrFinderOptions, opts: Omit<FindLrOptions, keyof RunTarget | 'options'>): Promise<FindLrResult> {
  const emit = opts.onEvent ?? (() => undefined);
  emit({ kind: 'log', level: 'info', message: `backend ${run.backend.name}: ${run.backend.reason}` });
  const modes = new ModeControl(run.model, batchNormInferenceLayers(run.resolution));
  const optimizer = new GroupedOptimizer(optimizerSettings(run));
  const outDir = opts.outDir ?? defaultOutDir(run, 'lr-find-');
  assertOutDirAllowed(run, outDir);
  assertNewRunFolder(outDir);
  const saved = run.params.map((p) => ({ v: p.variable, t: tf.keep(p.variable.clone()) }));
  try {
    const stages = resolveStages(run.plan, run.resolution, run.planFile);
    const stageIndex = (opts.stage ?? 1) - 1;
    const stage = stages[stageIndex];
    if (stage === undefined) throw new LayerwiseError(`the plan has ${stages.length} stage(s); there is no stage ${stageIndex + 1}`, { field: 'stage' });
    const trainGroups = new Set(stage.trainGroups);
    const trainable = trainingParams(run.params, trainGroups);
    if (trainable.length === 0) throw new LayerwiseError('nothing trains in that stage, so there is no learning rate to find', { file: run.planFile });
    let sweptGroup: string | undefined;
    if (o.mode === 'group') {
      sweptGroup = o.group;
      const group = run.resolution.groups.find((g) => g.name === sweptGroup);
      if (sweptGroup === undefined || group === undefined) {
        throw new LayerwiseError(`group mode needs the name of a group that trains in stage ${stageIndex + 1} (groups: ${stage.trainGroups.join(', ')})`, { field: 'group' });
      }
      if (!trainGroups.has(sweptGroup)) throw new LayerwiseError(`group "${sweptGroup}" does not train in stage ${stageIndex + 1}`, { field: 'group' });
    }
    const trainingLayers = new Set(trainable.map((p) => p.layerName));
    modes.trainOnly(trainingLayers);
    const lossSpec = lossSpecFor(run.model, run.task);
    const baseLr = stage.lr;
    const batchSize = run.plan.training?.batchSize ?? DEFAULTS.batchSize;
    const seed = run.plan.data?.seed ?? run.plan.training?.seed ?? DEFAULTS.seed;
    const shuffle = run.plan.data?.shuffle ?? DEFAULTS.shuffle;
    const smoother = new LossSmoother(o.beta);
    const points: LrCurvePoint[] = [];
    let stoppedEarly = false;
    const batches = new EpochBatches(run.data.train, batchSize, shuffle, seed);
    for (let i = 0; i < o.steps; i++) {
      if (opts.signal?.aborted) throw new LayerwiseError('the LR range test was cancelled');
      const { ds: batchData, indices } = await batches.next();
      const swept = sweepLr(o, i);
      // global: every group moves together, ratios kept; group: only the swept group's LR moves
      const lrOf = (p: BoundParam): number =>
        sweptGroup === undefined ? swept * p.audit.lrMult : p.audit.group === sweptGroup ? swept * (p.audit.lrMult / groupMult(run, sweptGroup)) : baseLr * p.audit.lrMult;
      const step = trainStep(run, lossSpec, optimizer, trainable, batchData, indices, lrOf, false);
      const { smoothed, best } = smoother.add(step.loss);
      points.push({ lr: swept, loss: step.loss, smoothed });
      const groupLrs = run.resolution.groups.map((g) => {
        const trains = trainGroups.has(g.name);
        const lr = !trains ? 0 : sweptGroup === undefined ? swept * g.lrMult : g.name === sweptGroup ? swept : baseLr * g.lrMult;
        return { group: g.name, lr, trains };
      });
      emit({ kind: 'step', stage: stageIndex + 1, stages: stages.length, epoch: 1, epochs: 1, step: i + 1, totalSteps: o.steps, loss: step.loss, groupLrs, etaSeconds: 0 });
      if (shouldStop(smoothed, best, o.divergeFactor) && i > 0) {
        stoppedEarly = true;
        break;
      }
      await new Promise((r) => setImmediate(r));
    }
    const apply = (suggested: number): LrFinderOutcome['apply'] =>
      sweptGroup === undefined
        ? globalApply(run.plan, stageIndex, suggested)
        : groupApply(run, sweptGroup, Number((suggested / baseLr).toPrecision(3)));
    return finishLrFinder({ points, o, sweptGroup, stoppedEarly, stage: stageIndex + 1, apply, outDir, planFile: run.planFile });
  } finally {
    for (const s of saved) {
      s.v.assign(s.t);
      s.t.dispose();
    }
    modes.restore();
    optimizer.dispose();
  }
}

/**
 * Suggestions, the curve (JSON + SVG) and the plan's results from a finished sweep; shared by the
 * tfjs sweep above and the PyTorch one (src/engine/pytorch-run.ts).
 */
export function finishLrFinder(a: {
  points: LrCurvePoint[];
  o: LrFinderOptions;
  sweptGroup: string | undefined;
  stoppedEarly: boolean;
  stage: number;
  apply: (suggested: number) => LrFinderOutcome['apply'];
  outDir: string;
  planFile: string;
}): FindLrResult {
  const { points, o, sweptGroup, stoppedEarly, outDir } = a;
  const suggestions = suggestLrs(points.filter((p) => Number.isFinite(p.smoothed)), o.steps);
  // three significant digits: the curve cannot justify more, and the plan stays readable
  const suggested = Number(pickSuggestion(suggestions, o.method).toPrecision(3));
  const outcome: LrFinderOutcome = { mode: o.mode, group: sweptGroup, points, suggestions, method: o.method, suggested, apply: a.apply(suggested), stoppedEarly };

  mkdirSync(outDir, { recursive: true });
  const curveFile = join(outDir, 'lr-curve.json');
  const plotFile = join(outDir, 'lr-curve.svg');
  writeFileAtomic(curveFile, JSON.stringify({ options: o, stage: a.stage, ...outcome }, null, 2) + '\n');
  const markers = (['valley', 'steep', 'minimum'] as const)
    .filter((m) => suggestions[m] !== undefined)
    .map((m, i) => ({ x: suggestions[m] as number, label: `${m} ${(suggestions[m] as number).toExponential(2)}${m === o.method ? ' ◀' : ''}`, color: ['#d62728', '#2ca02c', '#9467bd'][i] ?? '#000' }));
  const what = sweptGroup === undefined ? 'base LR (group ratios kept)' : `LR of group "${sweptGroup}"`;
  writeFileAtomic(
    plotFile,
    linePlotSvg(
      [
        { label: 'loss', x: points.map((p) => p.lr), y: points.map((p) => p.loss), color: '#c7c7c7' },
        { label: 'smoothed loss', x: points.map((p) => p.lr), y: points.map((p) => p.smoothed), color: '#1f77b4' },
      ],
      markers,
      { title: `LR range test — ${what}`, xLabel: what, yLabel: 'training loss' },
    ),
  );
  const planDir = dirname(a.planFile);
  const results: PlanResults = {
    lrFinder: {
      date: new Date().toISOString(),
      suggestedLr: suggested,
      method: o.method,
      mode: o.mode,
      group: sweptGroup,
      curve: relative(planDir, curveFile),
      plot: relative(planDir, plotFile),
    },
  };
  return { outcome, curveFile, plotFile, outDir, results };
}

export function groupMult(run: { resolution: { groups: Array<{ name: string; lrMult: number }> } }, name: string): number {
  const g = run.resolution.groups.find((x) => x.name === name);
  return g && g.lrMult > 0 ? g.lrMult : 1;
}

/**
 * Where a global sweep's suggestion goes: the swept stage's own `lr` when it has one (LP-FT's
 * head stage), else `training.lr`, the base LR of every stage without one.
 */
function globalApply(plan: PreparedRun['plan'], stageIndex: number, value: number): LrFinderOutcome['apply'] {
  const stages = plan.unfreeze !== undefined && 'stages' in plan.unfreeze ? plan.unfreeze.stages : undefined;
  if (stages?.[stageIndex]?.lr !== undefined) {
    return { field: `unfreeze.stages[${stageIndex}].lr`, path: ['unfreeze', 'stages', stageIndex, 'lr'], value };
  }
  return { field: 'training.lr', path: ['training', 'lr'], value };
}

export function groupApply(run: { plan: { groups?: Array<{ name: string }> } }, group: string, mult: number): LrFinderOutcome['apply'] {
  const i = run.plan.groups?.findIndex((g) => g.name === group) ?? -1;
  if (i < 0) throw new LayerwiseError(`group "${group}" is the implicit default group; give its layers a group in the plan to tune its multiplier`, { field: 'group' });
  return { field: `groups[${i}].lrMult`, path: ['groups', i, 'lrMult'], value: mult };
}
