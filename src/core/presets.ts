/**
 * Presets: pure functions from a plan to a new plan (never mutating it) that set how the
 * learning rate is spread over the groups — ULMFiT, layer-wise decay, fastai's slice, or the
 * seed's base/extra/head split. Recipes: what `layerwise init` puts around the groups — which
 * groups train in which stage, at which rate, with which schedule and BatchNorm mode.
 */
import { autoGroups, groupPatterns, modelStructure } from './autogroup.ts';
import { LayerwiseError } from './errors.ts';
import { planGroupMultipliers, resolveGroups } from './groups.ts';
import type { Resolution } from './groups.types.ts';
import type { LayerInfo, ModelInfo } from './model-info.ts';
import { DEFAULTS, type BatchNormPolicy, type DiscriminativeSpec, type GroupSpec, type Plan, type UnfreezeStageSpec } from './plan.ts';

/**
 * Sets `plan.discriminative` and removes every group's explicit `lrMult`, because an explicit
 * multiplier wins over the preset and would leave that group out of the spread. Per-layer
 * overrides (`layers[name].lrMult`) are kept: they are deliberate exceptions.
 */
export function applyDiscriminative(plan: Plan, spec: DiscriminativeSpec): Plan {
  return { ...plan, discriminative: { ...spec }, ...(plan.groups ? { groups: plan.groups.map(withoutLrMult) } : {}) };
}

function withoutLrMult(g: GroupSpec): GroupSpec {
  const { lrMult: _dropped, ...rest } = g;
  return { ...rest, layers: [...g.layers] };
}

/** The seed's multipliers: embeddings below the base "may need even smaller rates". */
export const SEED_MULTIPLIERS = { embeddings: 0.01, base: 0.1, extra: 0.5, head: 1 } as const;
/** The seed's base learning rate for AdamW (BERT fine-tuning). */
export const SEED_LR = 1e-5;

export interface SeedSplitOptions {
  /** Give layers named like embeddings their own bottom group (default true). */
  embeddings?: boolean;
}

/**
 * The seed's three-way split, with its defects fixed: `head` is the new head (or the last
 * weighted layer), `extra` the top third of the body — never empty when there is more than one
 * unit to split (layers named like embeddings count as one) — and `base` the rest, with the
 * embeddings in their own bottom group. The body is split in whole units from
 * `modelStructure`: named blocks, or single layers with the normalisation layer after them.
 * Groups carry explicit multipliers; empty ones are left out. Layers without weights join the
 * group of the weighted layer below them.
 */
export function seedSplitGroups(model: ModelInfo, opts: SeedSplitOptions = {}): GroupSpec[] {
  if (!model.layers.some((l) => l.weights.length > 0)) return [];
  const structure = modelStructure(model);
  const splitEmbeddings = (opts.embeddings ?? true) && structure.embeddings.length > 0;
  const units = splitEmbeddings || structure.embeddings.length === 0
    ? structure.units
    : [{ kind: 'embeddings' as const, layers: structure.embeddings }, ...structure.units];
  const counted = units.length + (splitEmbeddings ? 1 : 0);
  const extraCount = counted >= 2 ? Math.min(units.length, Math.max(1, Math.round(counted / 3))) : 0;
  const base = units.slice(0, units.length - extraCount).flatMap((u) => u.layers);
  const extra = units.slice(units.length - extraCount).flatMap((u) => u.layers);

  const drafts: Array<{ spec: Omit<GroupSpec, 'layers'>; layers: LayerInfo[] }> = [
    { spec: { name: 'embeddings', lrMult: SEED_MULTIPLIERS.embeddings }, layers: splitEmbeddings ? structure.embeddings : [] },
    { spec: { name: 'base', lrMult: SEED_MULTIPLIERS.base }, layers: base },
    { spec: { name: 'extra', lrMult: SEED_MULTIPLIERS.extra }, layers: extra },
    { spec: { name: 'head', lrMult: SEED_MULTIPLIERS.head }, layers: structure.head },
  ].filter((d) => d.layers.length > 0);

  const specs = groupPatterns(
    model,
    drafts.map((d) => ({ name: d.spec.name, layers: d.layers })),
    structure.blocksByLayer,
  );
  return drafts.map((d, g) => ({ ...d.spec, layers: specs[g]!.layers }));
}

export type PresetId = 'ulmfit' | 'layerDecay' | 'geometric' | 'seed' | 'none';

export interface Preset {
  id: PresetId;
  label: string;
  description: string;
  /** A new plan with the preset applied; a plan without groups gets `autoGroups` first. */
  apply(plan: Plan, model: ModelInfo): Plan;
  /** The base LR the preset writes, when it writes one. */
  lr?: number;
}

export const DEFAULT_PRESET: PresetId = 'ulmfit';
export const LAYER_DECAY_GAMMA = 0.75;

function withGroups(plan: Plan, model: ModelInfo): Plan {
  return plan.groups !== undefined && plan.groups.length > 0 ? plan : { ...plan, groups: autoGroups(model) };
}

function withoutDiscriminative(plan: Plan): Plan {
  const { discriminative: _dropped, ...rest } = plan;
  return rest;
}

export const PRESETS: readonly Preset[] = [
  {
    id: 'ulmfit',
    label: `ULMFiT (÷${DEFAULTS.ulmfitFactor} per group)`,
    description: `The top group trains at the base LR and each group below it at ${DEFAULTS.ulmfitFactor}× less (Howard & Ruder, 2018).`,
    apply: (plan, model) => applyDiscriminative(withGroups(plan, model), { type: 'ulmfit', factor: DEFAULTS.ulmfitFactor }),
  },
  {
    id: 'layerDecay',
    label: `Layer-wise decay (γ = ${LAYER_DECAY_GAMMA})`,
    description: `Group i of n trains at γ^(n−1−i) × the base LR, as timm's layer_decay and BEiT/ELECTRA fine-tuning do.`,
    apply: (plan, model) => applyDiscriminative(withGroups(plan, model), { type: 'layerDecay', gamma: LAYER_DECAY_GAMMA }),
  },
  {
    id: 'geometric',
    label: 'Geometric spread (fastai slice(lr/100, lr))',
    description: 'Multipliers spread geometrically from 1/100 at the bottom group to 1 at the top, like fastai’s slice(lr/100, lr).',
    apply: (plan, model) => {
      const lr = plan.training?.lr ?? DEFAULTS.lr;
      return applyDiscriminative(withGroups(plan, model), { type: 'geometric', low: lr / 100, high: lr });
    },
  },
  {
    id: 'seed',
    label: 'Base / extra / head (×0.1 / ×0.5 / ×1)',
    lr: SEED_LR,
    description: `The seed's split: base ×${SEED_MULTIPLIERS.base} (embeddings ×${SEED_MULTIPLIERS.embeddings}), the top third of the body ×${SEED_MULTIPLIERS.extra}, the head ×${SEED_MULTIPLIERS.head}; AdamW at base LR ${SEED_LR}. Replaces the plan's groups.`,
    apply: (plan, model) => ({
      ...withoutDiscriminative(plan),
      training: { ...plan.training, lr: SEED_LR, optimizer: 'adamw' },
      groups: seedSplitGroups(model),
    }),
  },
  {
    id: 'none',
    label: 'One learning rate',
    description: 'Every group trains at the base LR (×1); freezing and per-layer overrides stay as they are.',
    apply: (plan) => {
      const rest = withoutDiscriminative(plan);
      return rest.groups ? { ...rest, groups: rest.groups.map(withoutLrMult) } : rest;
    },
  },
];

/** The preset with this id; throws a LayerwiseError naming it and the known ones. */
export function getPreset(id: string): Preset {
  const preset = PRESETS.find((p) => p.id === id);
  if (preset === undefined) {
    throw new LayerwiseError(`unknown preset ${JSON.stringify(id)} (known presets: ${PRESETS.map((p) => p.id).join(', ')})`, {
      field: 'preset',
    });
  }
  return preset;
}

export function applyPreset(plan: Plan, model: ModelInfo, id: string): Plan {
  return getPreset(id).apply(plan, model);
}

// ---------------------------------------------------------------------------------------------
// Recipes

export type RecipeId = 'lp-ft' | 'gradual';

/**
 * What `layerwise init` and "Create Plan from Model…" write unless told otherwise. The study
 * (docs/study/) chose it: gradual unfreezing with ULMFiT's ÷2.6 and BatchNorm in inference mode,
 * with `find-lr --apply` as the second step, was best or tied on every task; LP-FT's fixed learning
 * rates, the first default, fell below chance on the small CNN (docs/study/README.md).
 */
export const DEFAULT_RECIPE: RecipeId = 'gradual';

/**
 * LP-FT (linear probe, then fine-tune; Kumar et al., 2022): the study's best arm trained the
 * head 4 epochs at 3e-3, then every group 4 epochs at 1e-4, BatchNorm in inference mode.
 */
export const LP_FT = { headEpochs: 4, allEpochs: 4, lr: 1e-4, headLrFactor: 30 } as const;

/** BatchNorm mode both recipes write: batch statistics from few-shot batches halved accuracy in the study. */
export const RECIPE_BATCH_NORM: BatchNormPolicy = 'inference';

export interface RecipeInput {
  /** The plan's groups, bottom → top; the last one holds the head. */
  groups: readonly GroupSpec[];
  /** training.lr already chosen (a preset may set one, as "seed" does). */
  lr?: number;
  /** Total epochs over every stage; default: the recipe's own. */
  epochs?: number;
}

export interface RecipeOutput {
  lr: number;
  schedule: NonNullable<NonNullable<Plan['training']>['schedule']>;
  batchNorm: BatchNormPolicy;
  stages: UnfreezeStageSpec[];
}

export interface Recipe {
  id: RecipeId;
  label: string;
  description: string;
  /** Explicit stages, so the plan runs as written whatever training.epochs says. */
  build(input: RecipeInput): RecipeOutput;
}

function requireEpochs(epochs: number, stages: number, recipe: RecipeId): void {
  if (!Number.isInteger(epochs) || epochs < stages) {
    throw new LayerwiseError(`the ${recipe} recipe has ${stages} stage${stages === 1 ? '' : 's'}: it needs a whole number of epochs ≥ ${stages} (got ${epochs})`, {
      field: 'epochs',
    });
  }
}

export const RECIPES: readonly Recipe[] = [
  {
    id: 'lp-ft',
    label: 'LP-FT: head alone, then everything',
    description: `Stage 1 trains only the top group (the new head) at ${LP_FT.headLrFactor}× the base LR; stage 2 trains every group at the base LR spread by the preset; slanted triangular schedule per stage; BatchNorm statistics fixed (inference mode).`,
    build: ({ groups, lr, epochs }) => {
      const base = lr ?? LP_FT.lr;
      const total = epochs ?? LP_FT.headEpochs + LP_FT.allEpochs;
      requireEpochs(total, 2, 'lp-ft');
      const head = groups[groups.length - 1];
      const headEpochs = epochs === undefined ? LP_FT.headEpochs : Math.floor(total / 2);
      const stages: UnfreezeStageSpec[] = [
        ...(head === undefined || groups.length < 2 ? [] : [{ epochs: headEpochs, train: [head.name], lr: Number((base * LP_FT.headLrFactor).toPrecision(6)) }]),
        { epochs: head === undefined || groups.length < 2 ? total : total - headEpochs, train: 'all' },
      ];
      return { lr: base, schedule: { type: 'stlr' }, batchNorm: RECIPE_BATCH_NORM, stages };
    },
  },
  {
    id: 'gradual',
    label: 'Gradual unfreezing (ULMFiT)',
    description: 'Stage k trains the top k groups, one epoch each, then every group for the remaining epochs (two by default), all at the base LR spread by the preset; slanted triangular schedule per stage; BatchNorm statistics fixed.',
    build: ({ groups, lr, epochs }) => {
      const n = Math.max(1, groups.length);
      const total = epochs ?? n + 1;
      requireEpochs(total, n, 'gradual');
      const stages: UnfreezeStageSpec[] = [];
      for (let k = 1; k < n; k++) stages.push({ epochs: DEFAULTS.epochsPerStage, train: groups.slice(n - k).map((g) => g.name) });
      stages.push({ epochs: total - (n - 1) * DEFAULTS.epochsPerStage, train: 'all' });
      return { lr: lr ?? DEFAULTS.lr, schedule: { type: 'stlr' }, batchNorm: RECIPE_BATCH_NORM, stages };
    },
  },
];

/** The recipe with this id; throws a LayerwiseError naming it and the known ones. */
export function getRecipe(id: string): Recipe {
  const recipe = RECIPES.find((r) => r.id === id);
  if (recipe === undefined) {
    throw new LayerwiseError(`unknown recipe ${JSON.stringify(id)} (known recipes: ${RECIPES.map((r) => r.id).join(', ')})`, { field: 'recipe' });
  }
  return recipe;
}

// ---------------------------------------------------------------------------------------------
// What a preset changes, and which preset the plan follows

/** One setting a preset would change: the plan field, its value now and after (`undefined`: absent). */
export interface PresetChange {
  field: string;
  before: string | undefined;
  after: string | undefined;
  /** A value the user set by hand (a group's multiplier or freeze) that the preset drops or replaces. */
  handSet: boolean;
}

const shown = (v: unknown): string | undefined => (v === undefined ? undefined : JSON.stringify(v));

/**
 * Every setting applying preset `id` to `plan` would change, in plan order: the spread
 * (`discriminative`), the base LR and optimizer (the seed's preset), and per group its
 * multiplier and freeze — matched by name, so a preset that replaces the groups lists what the
 * old ones set by hand and that the new ones do not keep.
 */
export function presetChanges(plan: Plan, model: ModelInfo, id: string): PresetChange[] {
  const next = applyPreset(plan, model, id);
  const out: PresetChange[] = [];
  const add = (field: string, before: unknown, after: unknown, handSet: boolean): void => {
    const b = shown(before);
    const a = shown(after);
    if (b !== a) out.push({ field, before: b, after: a, handSet });
  };
  add('discriminative', plan.discriminative, next.discriminative, false);
  add('training.lr', plan.training?.lr, next.training?.lr, false);
  add('training.optimizer', plan.training?.optimizer, next.training?.optimizer, false);
  const oldGroups = plan.groups ?? [];
  const newGroups = next.groups ?? [];
  const sameNames = oldGroups.length === newGroups.length && oldGroups.every((g, i) => g.name === newGroups[i]?.name && sameList(g.layers, newGroups[i]?.layers));
  if (!sameNames) {
    add('groups', oldGroups.map((g) => g.name), newGroups.map((g) => g.name), false);
  }
  oldGroups.forEach((g, i) => {
    const after = newGroups.find((n) => n.name === g.name);
    const field = `groups[${i}] ${JSON.stringify(g.name)}`;
    if (g.lrMult !== undefined) add(`${field}.lrMult`, g.lrMult, after?.lrMult, true);
    if (g.frozen !== undefined) add(`${field}.frozen`, g.frozen, after?.frozen, true);
  });
  return out;
}

function sameList(a: readonly string[], b: readonly string[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * The presets the plan already follows: those whose application would leave every layer's
 * multiplier and freeze, and the base LR, as they are (the plan's text may differ — a preset
 * would write `discriminative` where the plan has the same multipliers by hand). Several can
 * match (with one group every spread is ×1); a plan that matches none was set by hand.
 * `current` is the plan's resolution when the caller has it (the panel does).
 *
 * A preset that changes only the spread and the groups' own multipliers (every one but the
 * seed's) keeps each layer's group and override, so comparing the multipliers of the groups
 * whose layers follow them is enough: no second resolution of a thousand layers per preset.
 */
export function activePresets(plan: Plan, model: ModelInfo, current?: Resolution): PresetId[] {
  let now: Resolution;
  try {
    now = current ?? resolveGroups(model, plan);
  } catch {
    return [];
  }
  // plan groups with at least one layer that takes the group's multiplier (no layers[…].lrMult)
  const followers = new Set(now.groups.filter((g) => g.planIndex !== undefined && g.layers.some((l) => l.lrMultRule.source !== 'layers')).map((g) => g.planIndex));
  const out: PresetId[] = [];
  for (const p of PRESETS) {
    // another base LR moves every rate: no need to build the preset's groups to know
    if (p.lr !== undefined && p.lr !== now.baseLr) continue;
    try {
      const next = p.apply(plan, model);
      if (onlyMultipliersDiffer(plan, next)) {
        const a = planGroupMultipliers(plan);
        const b = planGroupMultipliers(next);
        if (a.every((m, i) => !followers.has(i) || close(m, b[i] ?? NaN))) out.push(p.id);
      } else if ((next.training?.lr ?? DEFAULTS.lr) === now.baseLr && sameRates(now, resolveGroups(model, next))) out.push(p.id);
    } catch {
      // a preset the plan cannot take (no weighted layers…) is not the one it follows
    }
  }
  return out;
}

const close = (x: number, y: number): boolean => Math.abs(x - y) <= 1e-9 * Math.max(Math.abs(x), Math.abs(y));

/** Do two plans differ in nothing but `discriminative` and their groups' own `lrMult`? */
function onlyMultipliersDiffer(a: Plan, b: Plan): boolean {
  const strip = (p: Plan): string => {
    const { discriminative: _d, groups, ...rest } = p;
    return JSON.stringify({ ...rest, groups: groups?.map(({ lrMult: _m, ...g }) => g) });
  };
  return (a.groups?.length ?? 0) === (b.groups?.length ?? 0) && strip(a) === strip(b);
}

/** What `activePresets` compares: the base LR and each layer's multiplier and freeze. */
interface ResolvedRates {
  baseLr: number;
  groups: ReadonlyArray<{ layers: ReadonlyArray<{ name: string; lrMult: number; frozen: boolean }> }>;
}

function sameRates(a: ResolvedRates, b: ResolvedRates): boolean {
  if (!close(a.baseLr, b.baseLr)) return false;
  const layers = (r: ResolvedRates): Map<string, { lrMult: number; frozen: boolean }> => new Map(r.groups.flatMap((g) => g.layers.map((l) => [l.name, l] as const)));
  const la = layers(a);
  const lb = layers(b);
  if (la.size !== lb.size) return false;
  for (const [name, x] of la) {
    const y = lb.get(name);
    if (y === undefined || x.frozen !== y.frozen || !close(x.lrMult, y.lrMult)) return false;
  }
  return true;
}
