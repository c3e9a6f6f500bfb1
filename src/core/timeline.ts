/**
 * Unfreezing stages and the learning rate of every group at every optimizer step. One
 * implementation for the trainer, the CLI's preview and the panel's chart (PLAN-SPEC
 * "Gradual unfreezing", "Schedules", "Learning rate of a parameter at optimizer step t").
 */
import { LayerwiseError } from './errors.ts';
import type { GroupAudit, Resolution } from './groups.types.ts';
import { DEFAULT_GROUP, DEFAULTS, type Plan } from './plan.ts';
import type { GroupLr } from './progress.ts';
import { scheduleFactor } from './schedule.ts';

export interface UnfreezeStage {
  /** 0-based. */
  index: number;
  epochs: number;
  /** Names of the groups whose (non-frozen) parameters train in this stage, bottom → top. */
  trainGroups: string[];
  /** Base LR of the stage: the stage's `lr`, else `training.lr`. */
  lr: number;
}

export interface TimelineStage extends UnfreezeStage {
  /** Global index of the stage's first optimizer step. */
  startStep: number;
  steps: number;
  /** Global 0-based index of the stage's first epoch. */
  startEpoch: number;
}

export interface Timeline {
  stages: TimelineStage[];
  stepsPerEpoch: number;
  totalSteps: number;
  totalEpochs: number;
}

/** A group that can train: not frozen by the plan and holding at least one trainable weight. */
const trainable = (g: GroupAudit): boolean => !g.frozen && g.layers.some((l) => l.params.some((p) => p.trainable && !p.frozen));

/** The stages a plan asks for; throws a LayerwiseError naming the field when they can't exist. */
export function resolveStages(plan: Plan, resolution: Resolution, file?: string): UnfreezeStage[] {
  const baseLr = plan.training?.lr ?? DEFAULTS.lr;
  const candidates = resolution.groups.filter(trainable).map((g) => g.name);
  const unfreeze = plan.unfreeze;
  if (unfreeze === undefined) {
    return [{ index: 0, epochs: plan.training?.epochs ?? DEFAULTS.epochs, trainGroups: candidates, lr: baseLr }];
  }
  if ('mode' in unfreeze) {
    const n = candidates.length;
    if (n === 0) return [{ index: 0, epochs: plan.training?.epochs ?? DEFAULTS.epochs, trainGroups: [], lr: baseLr }];
    const perStage = unfreeze.epochsPerStage ?? DEFAULTS.epochsPerStage;
    const total = plan.training?.epochs ?? n * perStage;
    const last = total - (n - 1) * perStage;
    if (last < 1) {
      throw new LayerwiseError(
        `gradual unfreezing of ${n} groups with ${perStage} epoch(s) per stage needs at least ${(n - 1) * perStage + 1} epochs in total (got ${total})`,
        { file, field: 'training.epochs' },
      );
    }
    return candidates.map((_, k) => ({
      index: k,
      epochs: k === n - 1 ? last : perStage,
      trainGroups: candidates.slice(n - 1 - k),
      lr: baseLr,
    }));
  }
  // "default" may always be named: it is the group of whatever no pattern matches, even when that is nothing now
  const known = new Set([...resolution.groups.map((g) => g.name), DEFAULT_GROUP]);
  return unfreeze.stages.map((s, i) => {
    let names: string[];
    if (s.train === 'all') names = candidates;
    else {
      s.train.forEach((name, j) => {
        if (!known.has(name)) {
          throw new LayerwiseError(`unknown group "${name}" (groups: ${[...known].join(', ')})`, {
            file,
            field: `unfreeze.stages[${i}].train[${j}]`,
          });
        }
      });
      const wanted = new Set(s.train);
      // keep the bottom → top order of the plan, and never train a group the plan freezes
      names = candidates.filter((g) => wanted.has(g));
    }
    return { index: i, epochs: s.epochs, trainGroups: names, lr: s.lr ?? baseLr };
  });
}

export function buildTimeline(stages: readonly UnfreezeStage[], stepsPerEpoch: number): Timeline {
  let step = 0;
  let epoch = 0;
  const out: TimelineStage[] = [];
  for (const s of stages) {
    const steps = s.epochs * stepsPerEpoch;
    out.push({ ...s, startStep: step, steps, startEpoch: epoch });
    step += steps;
    epoch += s.epochs;
  }
  return { stages: out, stepsPerEpoch, totalSteps: step, totalEpochs: epoch };
}

export function stageAt(timeline: Timeline, globalStep: number): TimelineStage {
  const stages = timeline.stages;
  for (const s of stages) if (globalStep < s.startStep + s.steps) return s;
  const last = stages[stages.length - 1];
  if (last === undefined) throw new Error('timeline without stages');
  return last;
}

/** s(t) for the optimizer step at `globalStep`, honouring `schedule.scope`. */
export function scheduleFactorAt(plan: Plan, timeline: Timeline, globalStep: number): number {
  const spec = plan.training?.schedule;
  const scope = spec?.scope ?? DEFAULTS.scheduleScope;
  if (scope === 'run') return scheduleFactor(spec, globalStep, timeline.totalSteps);
  const stage = stageAt(timeline, globalStep);
  return scheduleFactor(spec, globalStep - stage.startStep, stage.steps);
}

/** lr_p(t) = stage LR × mult_p × s(t). */
export function paramLr(stage: UnfreezeStage, lrMult: number, factor: number): number {
  return stage.lr * lrMult * factor;
}

/** Each group's LR at a step (0 for groups that do not train in that step's stage). */
export function groupLrsAt(plan: Plan, resolution: Resolution, timeline: Timeline, globalStep: number): GroupLr[] {
  const stage = stageAt(timeline, globalStep);
  const factor = scheduleFactorAt(plan, timeline, globalStep);
  const training = new Set(stage.trainGroups);
  return resolution.groups.map((g) => {
    const trains = training.has(g.name);
    return { group: g.name, lr: trains ? paramLr(stage, g.lrMult, factor) : 0, trains };
  });
}

/** The whole curve for previews: one row per step, one column per group. */
export function lrPreview(
  plan: Plan,
  resolution: Resolution,
  timeline: Timeline,
  maxPoints = 400,
): { steps: number[]; groups: string[]; lrs: number[][]; stageStarts: number[] } {
  const stride = Math.max(1, Math.ceil(timeline.totalSteps / maxPoints));
  const steps: number[] = [];
  const lrs: number[][] = [];
  for (let t = 0; t < timeline.totalSteps; t += stride) {
    steps.push(t);
    lrs.push(groupLrsAt(plan, resolution, timeline, t).map((g) => g.lr));
  }
  return {
    steps,
    groups: resolution.groups.map((g) => g.name),
    lrs,
    stageStarts: timeline.stages.map((s) => s.startStep),
  };
}
