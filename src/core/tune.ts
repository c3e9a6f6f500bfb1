/**
 * Automatic multipliers (`layerwise tune`, "Suggest Multipliers"): what a suggestion is, the
 * candidates a budgeted search tries, the successive-halving rungs, and the comment-preserving
 * edit that applies a suggestion to the plan. Pure: the engine (src/engine/tune.ts) measures,
 * the CLI, the host and the webview show and apply.
 */
import { findNodeAtLocation, parseTree, type Node } from 'jsonc-parser';
import type { Resolution } from './groups.types.ts';
import { assertNever, LayerwiseError } from './errors.ts';
import type { BatchNormPolicy, DiscriminativeSpec, Plan, ScheduleSpec, ScheduleType, UnfreezeSpec } from './plan.ts';
import { detectLayout, setPlanValue } from './plan-edit.ts';
import type { UnfreezeStage } from './timeline.ts';

export type TuneMethod = 'rgn' | 'search';
export const TUNE_METHODS: readonly TuneMethod[] = ['rgn', 'search'];

export type UnfreezeChoice = 'all' | 'lpft' | 'gradual';
export type { BatchNormPolicy };

export const TUNE_DEFAULTS = {
  /** Auto-RGN's "a few batches". */
  rgnBatches: 5,
  /** Optimizer steps a search may spend: about a minute on the bundled example. */
  budget: 1200,
  /** Successive halving keeps the best 1/η of each rung. */
  eta: 3,
  factors: [1, 1.6, 2.6, 4] as readonly number[],
  unfreezing: ['all', 'lpft', 'gradual'] as readonly UnfreezeChoice[],
  schedules: ['stlr', 'cosine'] as readonly ScheduleType[],
  batchNorm: ['train', 'inference'] as readonly BatchNormPolicy[],
} as const;

/** One group's suggestion. `frozen`: the group stays frozen and nothing about it changes. */
export interface TuneGroup {
  name: string;
  /** The multiplier the plan gives the group now. */
  current: number;
  /** The suggested multiplier (equal to `current` when the group is left alone). */
  lrMult: number;
  frozen?: boolean;
  /** Why: the figure behind the suggestion, in words. */
  why: string;
}

/**
 * The non-multiplier parts of a search winner, as plan values. `unfreeze: null` means "every
 * group trains from the start" (the member is removed); `epochs` is `training.epochs` (the
 * total, which gradual unfreezing divides into stages).
 */
export interface TuneChanges {
  label: string;
  discriminative: DiscriminativeSpec;
  unfreezing: UnfreezeChoice;
  unfreeze: UnfreezeSpec | null;
  epochs: number;
  /** The plan's schedule with the winner's type and only the plan's settings that type takes. */
  schedule: ScheduleSpec;
  batchNorm?: BatchNormPolicy;
}

/** A search candidate's score at one rung. */
export interface TuneTrial {
  label: string;
  rung: number;
  steps: number;
  valLoss: number;
}

export interface TuneResult {
  method: TuneMethod;
  groups: TuneGroup[];
  /** Optimizer steps spent (search); batches whose gradients were measured (rgn, no step taken). */
  steps: number;
  seconds: number;
  /** When the suggestion was made (ISO); the applied comment carries its day. */
  date?: string;
  /** Search only: the winner's schedule, unfreezing, factor and BatchNorm policy; absent when the plan as it is won. */
  changes?: TuneChanges;
  /** Search only: every candidate's score at every rung it reached. */
  trials?: TuneTrial[];
  /** Search only: the budget asked for. */
  budget?: number;
}

// ---- Auto-RGN ----------------------------------------------------------------------------------

/** Three significant digits: the measurement cannot justify more, and the plan stays readable. */
export function roundMult(x: number): number {
  return Number(x.toPrecision(3));
}

/**
 * A group's relative gradient norm from its tensors' squared norms: ‖g‖/‖θ‖ over the group
 * taken as one vector. Auto-RGN (Lee et al. 2022) is per tensor; a group gets one LR, and the
 * per-tensor mean would be ruled by biases (tiny or zero ‖θ‖ at the start, so huge or undefined
 * ratios) — the group's total weighs every weight once. Undefined when every weight is zero.
 */
export function groupRgn(tensors: ReadonlyArray<{ gradSq: number; weightSq: number }>): number | undefined {
  let g = 0;
  let w = 0;
  for (const t of tensors) {
    g += t.gradSq;
    w += t.weightSq;
  }
  return w > 0 ? Math.sqrt(g) / Math.sqrt(w) : undefined;
}

/** Per-group RGN (mean over batches) → multipliers, the largest group at 1. */
export function rgnSuggestion(
  resolution: Resolution,
  measured: ReadonlyMap<string, number | undefined>,
  batches: number,
): TuneGroup[] {
  const values = [...measured.values()].filter((v): v is number => v !== undefined && Number.isFinite(v));
  const max = Math.max(0, ...values);
  const top = [...measured].find(([, v]) => v === max)?.[0];
  return resolution.groups.map((g) => {
    if (!measured.has(g.name)) {
      return g.frozen
        ? { name: g.name, current: g.lrMult, lrMult: g.lrMult, frozen: true, why: 'frozen: left alone (--include-frozen measures it)' }
        : { name: g.name, current: g.lrMult, lrMult: g.lrMult, why: 'no trainable weights' };
    }
    const v = measured.get(g.name);
    if (v === undefined || !(max > 0)) {
      return { name: g.name, current: g.lrMult, lrMult: g.lrMult, why: v === undefined ? 'every weight is zero: no relative gradient norm' : 'no gradient reached any group' };
    }
    const mult = roundMult(v / max);
    return {
      name: g.name,
      current: g.lrMult,
      lrMult: mult,
      why: `‖g‖/‖θ‖ ${v.toExponential(2)} (mean of ${batches} batch${batches === 1 ? '' : 'es'})${g.name === top ? ', the largest' : ` = ${mult} × ${top}`}`,
    };
  });
}

// ---- search candidates -------------------------------------------------------------------------

export interface SearchCandidate {
  label: string;
  plan: Plan;
  /** Undefined for the plan as it is. */
  changes?: TuneChanges;
}

/** Total epochs of the stages the plan asks for. */
export function totalEpochs(stages: readonly UnfreezeStage[]): number {
  return stages.reduce((s, x) => s + x.epochs, 0);
}

/**
 * The plan as it is, then every combination of discriminative factor × unfreezing × schedule
 * (× the plan-level BatchNorm policy when `withBatchNorm`: a model with BatchNorm layers; a
 * group's or layer's own `batchNorm` still wins over it), each a plan variant. Explicit group multipliers are
 * dropped in the variants so the factor decides them; per-layer overrides and frozen groups stay.
 * LP-FT: the top group alone for a third of the epochs, then every group. Gradual: one epoch per
 * stage, only when the plan's epochs cover every group.
 */
export function searchCandidates(plan: Plan, resolution: Resolution, stages: readonly UnfreezeStage[], withBatchNorm: boolean): SearchCandidate[] {
  const epochs = totalEpochs(stages);
  const trainable = resolution.groups.filter((g) => !g.frozen && g.layers.some((l) => l.params.some((p) => p.trainable && !p.frozen))).map((g) => g.name);
  const top = trainable[trainable.length - 1];
  const unfreezings: Array<{ choice: UnfreezeChoice; spec: UnfreezeSpec | null }> = [];
  for (const choice of TUNE_DEFAULTS.unfreezing) {
    switch (choice) {
      case 'all':
        unfreezings.push({ choice, spec: null });
        break;
      case 'lpft':
        if (top !== undefined && trainable.length >= 2 && epochs >= 2) {
          const probe = Math.max(1, Math.round(epochs / 3));
          unfreezings.push({ choice, spec: { stages: [{ epochs: probe, train: [top] }, { epochs: epochs - probe, train: 'all' }] } });
        }
        break;
      case 'gradual':
        if (trainable.length >= 2 && epochs >= trainable.length) unfreezings.push({ choice, spec: { mode: 'gradual', epochsPerStage: 1 } });
        break;
      default:
        assertNever(choice, 'unfreezing');
    }
  }
  const policies: Array<BatchNormPolicy | undefined> = withBatchNorm ? [...TUNE_DEFAULTS.batchNorm] : [undefined];
  const out: SearchCandidate[] = [{ label: 'the plan as it is', plan }];
  for (const factor of TUNE_DEFAULTS.factors) {
    for (const u of unfreezings) {
      for (const schedule of TUNE_DEFAULTS.schedules) {
        for (const bn of policies) {
          const changes: TuneChanges = {
            label: candidateLabel(factor, u.choice, schedule, bn),
            discriminative: { type: 'ulmfit', factor },
            unfreezing: u.choice,
            unfreeze: u.spec,
            epochs,
            schedule: scheduleOfType(plan.training?.schedule, schedule),
            ...(bn !== undefined && { batchNorm: bn }),
          };
          out.push({ label: changes.label, plan: planWithChanges(plan, changes), changes });
        }
      }
    }
  }
  return out;
}

function candidateLabel(factor: number, u: UnfreezeChoice, schedule: ScheduleType, bn: BatchNormPolicy | undefined): string {
  const unfreezing = u === 'all' ? 'all from the start' : u === 'lpft' ? 'head first, then all (LP-FT)' : 'gradual';
  return `factor ${factor}, ${unfreezing}, ${schedule}${bn === undefined ? '' : `, BatchNorm ${bn}`}`;
}

/** Settings each schedule type takes (the schema refuses the others). */
const SCHEDULE_SETTINGS: Record<ScheduleType, ReadonlyArray<keyof ScheduleSpec>> = {
  constant: ['warmup', 'scope'],
  linear: ['warmup', 'scope'],
  cosine: ['warmup', 'scope'],
  stlr: ['cutFrac', 'ratio', 'scope'],
  onecycle: ['pctStart', 'divFactor', 'finalDivFactor', 'scope'],
};

/** A schedule of `type` keeping those of the plan's settings (scope, warm-up, …) that type takes. */
export function scheduleOfType(current: ScheduleSpec | undefined, type: ScheduleType): ScheduleSpec {
  const out: ScheduleSpec = { type };
  for (const key of SCHEDULE_SETTINGS[type]) if (current?.[key] !== undefined) Object.assign(out, { [key]: current[key] });
  return out;
}

/** The plan a candidate trains: `changes` written over a copy, explicit group multipliers dropped. */
export function planWithChanges(plan: Plan, changes: TuneChanges): Plan {
  const copy = structuredClone(plan);
  copy.groups = copy.groups?.map(({ lrMult: _dropped, ...g }) => g);
  copy.discriminative = changes.discriminative;
  if (changes.unfreeze === null) delete copy.unfreeze;
  else copy.unfreeze = changes.unfreeze;
  copy.training = { ...copy.training, epochs: changes.epochs, schedule: changes.schedule };
  if (changes.batchNorm !== undefined) copy.batchNorm = changes.batchNorm;
  delete copy.results;
  return copy;
}

/**
 * Successive halving's rungs: how many candidates each rung trains and the steps each gets.
 * Every rung gets an equal share of the budget, split evenly among its candidates, so the
 * total can never exceed `budget`. Throws when the first rung cannot give each candidate a step.
 */
export function halvingRungs(candidates: number, budget: number, eta: number = TUNE_DEFAULTS.eta): Array<{ candidates: number; steps: number }> {
  if (!(Number.isInteger(budget) && budget > 0)) throw new LayerwiseError(`the budget must be a whole number of steps > 0 (got ${budget})`);
  const counts: number[] = [];
  for (let n = candidates; n > 1; n = Math.ceil(n / eta)) counts.push(n);
  if (counts.length === 0) counts.push(candidates);
  const perRung = Math.floor(budget / counts.length);
  const rungs = counts.map((n) => ({ candidates: n, steps: Math.floor(perRung / n) }));
  const first = rungs[0];
  if (first === undefined || first.steps < 1) {
    const need = counts.length * Math.max(...counts);
    throw new LayerwiseError(`a budget of ${budget} steps cannot train ${candidates} candidates in ${counts.length} rounds; give at least ${need}`);
  }
  return rungs;
}

// ---- applying a suggestion ---------------------------------------------------------------------

/** `// tuned by <method> on <day>`: the line the edit puts above each changed multiplier. */
export function tunedComment(result: Pick<TuneResult, 'method' | 'date'>): string {
  const day = (result.date ?? new Date().toISOString()).slice(0, 10);
  return `// tuned by ${result.method} on ${day}`;
}

/**
 * The plan text with the suggestion applied: explicit `lrMult`s on the plan's groups (each
 * preceded by a `// tuned by …` comment line, replacing an earlier one), and for a search winner
 * its factor, unfreezing, schedule and BatchNorm policy. Everything else stays byte-identical.
 * Groups left frozen, and the implicit default group (no plan entry to write to), are skipped.
 */
export function applyTuneResult(planText: string, result: TuneResult, file?: string): string {
  let text = planText;
  const comment = tunedComment(result);
  for (const g of result.groups) {
    if (g.frozen === true) continue;
    const index = groupIndex(text, g.name);
    if (index === undefined) continue;
    text = setPlanValue(text, ['groups', index, 'lrMult'], g.lrMult, { file });
    if (groupFrozenInText(text, index)) text = setPlanValue(text, ['groups', index, 'frozen'], undefined, { file });
    text = annotate(text, index, comment);
  }
  const c = result.changes;
  if (c !== undefined) {
    text = setMembers(text, ['discriminative'], c.discriminative, file);
    text = setPlanValue(text, ['unfreeze'], c.unfreeze ?? undefined, { file });
    text = setPlanValue(text, ['training', 'epochs'], c.epochs, { file });
    text = setMembers(text, ['training', 'schedule'], c.schedule, file);
    if (c.batchNorm !== undefined) text = setPlanValue(text, ['batchNorm'], c.batchNorm, { file });
  }
  return text;
}

/** Sets an object member by member when it exists (so its layout stays), else whole. */
function setMembers(text: string, path: Array<string | number>, value: object, file?: string): string {
  const r = root(text);
  const node = r && findNodeAtLocation(r, path);
  if (node?.type !== 'object') return setPlanValue(text, path, value, { file });
  let out = text;
  const keys = new Set(Object.keys(value));
  for (const child of node.children ?? []) {
    const key = child.children?.[0]?.value;
    if (typeof key === 'string' && !keys.has(key)) out = setPlanValue(out, [...path, key], undefined, { file });
  }
  for (const [key, v] of Object.entries(value)) out = setPlanValue(out, [...path, key], v, { file });
  return out;
}

function root(text: string): Node | undefined {
  return parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
}

function groupIndex(text: string, name: string): number | undefined {
  const groups = root(text) && findNodeAtLocation(root(text) as Node, ['groups']);
  const i = (groups?.children ?? []).findIndex((g) => {
    const n = findNodeAtLocation(g, ['name']);
    return n?.value === name;
  });
  return i < 0 ? undefined : i;
}

function groupFrozenInText(text: string, index: number): boolean {
  const r = root(text);
  return r !== undefined && findNodeAtLocation(r, ['groups', index, 'frozen']) !== undefined;
}

/**
 * Puts the comment on its own line above the group's `lrMult` when that member starts a line,
 * else above the group itself (a one-line group); an earlier `// tuned by` line there is replaced.
 */
function annotate(text: string, index: number, comment: string): string {
  const r = root(text);
  const lrMult = r && findNodeAtLocation(r, ['groups', index, 'lrMult']);
  const group = r && findNodeAtLocation(r, ['groups', index]);
  const target = [lrMult?.parent, group].find((n): n is Node => n !== undefined && startsLine(text, n.offset));
  if (target === undefined) return text;
  const { eol } = detectLayout(text);
  const start = text.lastIndexOf('\n', target.offset - 1) + 1;
  const indent = text.slice(start, target.offset);
  const prevStart = start === 0 ? -1 : text.lastIndexOf('\n', start - 2) + 1;
  if (prevStart >= 0 && /^[ \t]*\/\/ tuned by /.test(text.slice(prevStart, start))) {
    return text.slice(0, prevStart) + indent + comment + eol + text.slice(start);
  }
  return text.slice(0, start) + indent + comment + eol + text.slice(start);
}

function startsLine(text: string, offset: number): boolean {
  const start = text.lastIndexOf('\n', offset - 1) + 1;
  return /^[ \t]*$/.test(text.slice(start, offset));
}

/** A one-line summary of a search winner's changes, or of "keep the plan". */
export function describeChanges(result: TuneResult): string {
  if (result.method === 'rgn') return '';
  return result.changes === undefined ? 'the plan as it is scored best: no change beyond the multipliers' : `winner: ${result.changes.label}`;
}
