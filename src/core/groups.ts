/**
 * Parameter-group resolution and audit (PLAN-SPEC "Layer patterns", "Precedence"): one pure
 * function from (model, plan) to every parameter's group, multiplier, weight decay and frozen
 * state, each with the rule that decided it, plus warnings for every silent trap we know of.
 * The CLI's `inspect`, the extension's tree, the panel and the optimizer all read its output.
 */
import { LayerwiseError, jsonPath } from './errors.ts';
import type {
  AuditWarning,
  Decision,
  GroupAudit,
  LayerAudit,
  ParamAudit,
  Resolution,
} from './groups.types.ts';
import { isBatchNorm, isNormLayer, layerParamCount, weightSize, type LayerInfo, type ModelInfo, type WeightInfo } from './model-info.ts';
import { compilePattern, type NameMatcher } from './patterns.ts';
import {
  DEFAULT_GROUP,
  DEFAULTS,
  defaultWeightDecay,
  type DiscriminativeSpec,
  type GroupSpec,
  type BatchNormPolicy,
  type LayerOverride,
  type Plan,
} from './plan.ts';

/** A setting with the rule that decided it and, when a plan field set it, that field's path. */
interface Ruled<T> {
  value: T;
  rule: Decision;
  field?: string;
}

interface PlanGroupState {
  spec: GroupSpec;
  planIndex: number;
  matchers: NameMatcher[];
  /** Model layer indices each pattern matched, whether or not an earlier group took them. */
  hits: number[][];
  layers: number[];
}

/**
 * Resolves every layer and weight of `model` against `plan`. Throws a LayerwiseError (naming
 * `file` and the field) for inputs no resolution can be built from: an invalid `re:` pattern,
 * duplicate group names, negative multipliers or decays.
 */
export function resolveGroups(model: ModelInfo, plan: Plan, file?: string): Resolution {
  const training = plan.training ?? {};
  const baseLr = training.lr ?? DEFAULTS.lr;
  checkPositive(baseLr, 'training.lr', file);
  const planGroups = plan.groups ?? [];
  const overrides = plan.layers ?? {};
  checkPlanNumbers(plan, file);
  checkGroupNames(planGroups, file);

  const states: PlanGroupState[] = planGroups.map((spec, i) => ({
    spec,
    planIndex: i,
    matchers: spec.layers.map((p, j) => compilePattern(p, { file, field: jsonPath(['groups', i, 'layers', j]) })),
    hits: spec.layers.map(() => []),
    layers: [],
  }));

  // First group (file order) with a matching pattern wins; every pattern's hits are kept so
  // shadowed patterns can be reported.
  const assigned: Array<{ state: PlanGroupState; pattern: string } | undefined> = model.layers.map((layer, li) => {
    let winner: { state: PlanGroupState; pattern: string } | undefined;
    for (const state of states) {
      state.matchers.forEach((matches, j) => {
        if (!matches(layer.name)) return;
        state.hits[j]!.push(li);
        winner ??= { state, pattern: state.spec.layers[j]! };
      });
    }
    winner?.state.layers.push(li);
    return winner;
  });
  const unmatched = model.layers.flatMap((_, li) => (assigned[li] === undefined ? [li] : []));

  const reserved = states.find((s) => s.spec.name === DEFAULT_GROUP);
  if (unmatched.length > 0 && reserved !== undefined) {
    throw new LayerwiseError(
      `the group name "${DEFAULT_GROUP}" is reserved for the layers no group matches (${unmatched.length} here); rename this group or give it a pattern that matches them`,
      { file, field: jsonPath(['groups', reserved.planIndex, 'name']) },
    );
  }

  const discriminative = discriminativeMultipliers(plan.discriminative, planGroups.length, file);
  const optimizerName = training.optimizer ?? DEFAULTS.optimizer;
  const weightDecayDefault = defaultWeightDecay(optimizerName);
  const noDecay = (training.noDecay ?? DEFAULTS.noDecay).map((token, k) => ({
    token,
    matches: compilePattern(token, { file, field: jsonPath(['training', 'noDecay', k]) }),
  }));

  const groupLrMult = (s: PlanGroupState): Ruled<number> =>
    s.spec.lrMult !== undefined
      ? { value: s.spec.lrMult, rule: groupRule(s, 'lrMult'), field: jsonPath(['groups', s.planIndex, 'lrMult']) }
      : spreadOrDefault(discriminative[s.planIndex]);
  const groupFrozen = (s: PlanGroupState): Ruled<boolean> =>
    s.spec.frozen !== undefined
      ? { value: s.spec.frozen, rule: groupRule(s, 'frozen'), field: jsonPath(['groups', s.planIndex, 'frozen']) }
      : { value: false, rule: { source: 'default', detail: 'default (not frozen)' } };

  const implicitLrMult: Ruled<number> = {
    value: 1,
    rule: { source: 'default', detail: `implicit group "${DEFAULT_GROUP}" (1)` },
  };
  const implicitFrozen: Ruled<boolean> = {
    value: false,
    rule: { source: 'default', detail: `implicit group "${DEFAULT_GROUP}" (not frozen)` },
  };

  interface LayerState {
    audit: LayerAudit;
    layer: LayerInfo;
    lrMultField: string | undefined;
  }
  const layerStates: LayerState[] = model.layers.map((layer, li) => {
    const hit = assigned[li];
    const state = hit?.state;
    const override: LayerOverride = Object.hasOwn(overrides, layer.name) ? (overrides[layer.name] ?? {}) : {};
    const lrMult: Ruled<number> =
      override.lrMult !== undefined
        ? { value: override.lrMult, rule: layerRule(layer.name, 'lrMult'), field: jsonPath(['layers', layer.name, 'lrMult']) }
        : state
          ? groupLrMult(state)
          : implicitLrMult;
    const frozen: Ruled<boolean> =
      override.frozen !== undefined
        ? { value: override.frozen, rule: layerRule(layer.name, 'frozen') }
        : state
          ? groupFrozen(state)
          : implicitFrozen;
    const params = layer.weights.map((w): ParamAudit => {
      const decay = weightDecayOf(w, layer, override, state);
      return {
        name: w.name,
        layer: layer.name,
        shape: [...w.shape],
        size: weightSize(w.shape),
        trainable: w.trainable,
        group: state?.spec.name ?? DEFAULT_GROUP,
        lrMult: lrMult.value,
        lrMultRule: lrMult.rule,
        effectiveLr: baseLr * lrMult.value,
        weightDecay: decay.value,
        weightDecayRule: decay.rule,
        // A frozen layer's statistics freeze with it (its BatchNorm runs in inference mode).
        frozen: frozen.value,
        frozenRule: frozen.rule,
      };
    });
    const batchNorm = isBatchNorm(layer) ? batchNormOf(layer.name, override, state, frozen) : undefined;
    const audit: LayerAudit = {
      name: layer.name,
      className: layer.className,
      depth: layer.depth,
      group: state?.spec.name ?? DEFAULT_GROUP,
      ...(hit ? { matchedBy: { groupIndex: hit.state.planIndex, pattern: hit.pattern } } : {}),
      lrMult: lrMult.value,
      lrMultRule: lrMult.rule,
      frozen: frozen.value,
      frozenRule: frozen.rule,
      paramCount: layerParamCount(layer),
      params,
      isNewHead: layer.isNewHead === true,
      ...(batchNorm === undefined ? {} : { batchNorm: batchNorm.value, batchNormRule: batchNorm.rule }),
    };
    return { audit, layer, lrMultField: lrMult.field };
  });

  /** layers[name] → group → plan-level → default; a frozen layer runs in inference mode whatever they say. */
  function batchNormOf(
    name: string,
    override: LayerOverride,
    state: PlanGroupState | undefined,
    frozen: Ruled<boolean>,
  ): Ruled<BatchNormPolicy> {
    if (frozen.value) return { value: 'inference', rule: { source: frozen.rule.source, detail: `frozen (${frozen.rule.detail})` } };
    if (override.batchNorm !== undefined) return { value: override.batchNorm, rule: layerRule(name, 'batchNorm') };
    if (state?.spec.batchNorm !== undefined) return { value: state.spec.batchNorm, rule: groupRule(state, 'batchNorm') };
    if (plan.batchNorm !== undefined) return { value: plan.batchNorm, rule: { source: 'plan', detail: 'batchNorm' } };
    return { value: DEFAULTS.batchNorm, rule: { source: 'default', detail: `default (${DEFAULTS.batchNorm})` } };
  }

  function weightDecayOf(
    w: WeightInfo,
    layer: LayerInfo,
    override: LayerOverride,
    state: PlanGroupState | undefined,
  ): Ruled<number> {
    // Moving statistics are not optimized, so no decay setting can reach them.
    if (!w.trainable) return { value: 0, rule: { source: 'default', detail: 'not trainable (statistic): never decayed' } };
    if (override.weightDecay !== undefined) return { value: override.weightDecay, rule: layerRule(layer.name, 'weightDecay') };
    for (const { token, matches } of noDecay) {
      const why = noDecayReason(token, matches, w, layer);
      if (why !== undefined) return { value: 0, rule: { source: 'noDecay', detail: why } };
    }
    if (state?.spec.weightDecay !== undefined) return { value: state.spec.weightDecay, rule: groupRule(state, 'weightDecay') };
    if (training.weightDecay !== undefined) {
      return { value: training.weightDecay, rule: { source: 'training', detail: 'training.weightDecay' } };
    }
    return { value: weightDecayDefault, rule: { source: 'default', detail: `default (${optimizerName} ${weightDecayDefault})` } };
  }

  const layerAudits = layerStates.map((s) => s.audit);
  const toGroupAudit = (
    name: string,
    index: number,
    layers: LayerAudit[],
    extra: Pick<GroupAudit, 'planIndex' | 'implicit' | 'patterns'>,
    lrMult: Ruled<number>,
    frozen: Ruled<boolean>,
  ): GroupAudit => ({
    name,
    index,
    ...extra,
    lrMult: lrMult.value,
    lrMultRule: lrMult.rule,
    frozen: frozen.value,
    frozenRule: frozen.rule,
    paramCount: layers.reduce((n, l) => n + l.paramCount, 0),
    layers,
  });

  const groups: GroupAudit[] = [];
  if (unmatched.length > 0) {
    groups.push(
      toGroupAudit(
        DEFAULT_GROUP,
        0,
        unmatched.map((li) => layerAudits[li]!),
        { implicit: true, patterns: [] },
        implicitLrMult,
        implicitFrozen,
      ),
    );
  }
  for (const s of states) {
    groups.push(
      toGroupAudit(
        s.spec.name,
        groups.length,
        s.layers.map((li) => layerAudits[li]!),
        { planIndex: s.planIndex, implicit: false, patterns: [...s.spec.layers] },
        groupLrMult(s),
        groupFrozen(s),
      ),
    );
  }

  const warnings: AuditWarning[] = [];
  for (const s of states) patternWarnings(s, assigned, model, warnings);
  const unmatchedWeighted = unmatched.map((li) => model.layers[li]!).filter((l) => l.weights.length > 0);
  if (states.length > 0 && unmatchedWeighted.length > 0) {
    const n = unmatchedWeighted.length;
    warnings.push({
      code: 'unmatchedLayers',
      message: `${n} layer${n === 1 ? '' : 's'} with weights match${n === 1 ? 'es' : ''} no group and train${n === 1 ? 's' : ''} in the implicit group "${DEFAULT_GROUP}" (×1): ${listNames(unmatchedWeighted.map((l) => l.name))}`,
      field: 'groups',
      group: DEFAULT_GROUP,
    });
  }
  const layerNames = new Set(model.layers.map((l) => l.name));
  for (const name of Object.keys(overrides)) {
    if (layerNames.has(name)) continue;
    const near = closestName(name, model.layers.map((l) => l.name));
    warnings.push({
      code: 'unknownLayerOverride',
      message: `layers[${JSON.stringify(name)}] names no layer of the model${near === undefined ? '' : `; did you mean ${JSON.stringify(near)}?`}`,
      field: jsonPath(['layers', name]),
      layer: name,
    });
  }
  zeroLrWarnings(layerStates, warnings);
  for (const { layer } of layerStates) {
    const set = Object.hasOwn(overrides, layer.name) ? overrides[layer.name]?.batchNorm : undefined;
    if (set === undefined || isBatchNorm(layer)) continue;
    warnings.push({
      code: 'batchNormNotBatchNorm',
      message: `layers[${JSON.stringify(layer.name)}].batchNorm has no effect: ${layer.name} is a ${layer.className || 'layer'}, not a BatchNormalization layer`,
      field: jsonPath(['layers', layer.name, 'batchNorm']),
      layer: layer.name,
    });
  }
  const spec = plan.discriminative;
  if (spec?.type === 'geometric' && !sameNumber(spec.high, baseLr)) {
    warnings.push({
      code: 'geometricLrMismatch',
      message: `discriminative geometric spreads multipliers from low/high = ${fmt(spec.low)}/${fmt(spec.high)}, but training.lr is ${fmt(baseLr)}, so the top group trains at ${fmt(baseLr)} and the bottom at ${fmt((baseLr * spec.low) / spec.high)}, not at ${fmt(spec.high)} and ${fmt(spec.low)}; set training.lr to ${fmt(spec.high)}`,
      field: jsonPath(['discriminative', 'high']),
    });
  }
  const allParams = layerAudits.flatMap((l) => l.params);
  const optimized = allParams.filter((p) => p.trainable);
  if (!optimized.some((p) => !p.frozen && p.lrMult > 0)) {
    const message =
      optimized.length === 0
        ? 'the model has no trainable weights: nothing would train'
        : optimized.every((p) => p.frozen)
          ? 'every layer with trainable weights is frozen: nothing would train'
          : 'nothing would train: every layer that is not frozen has lrMult 0';
    warnings.push({ code: 'allFrozen', message });
  }

  return { baseLr, groups, params: allParams, warnings };
}

type RuledKey = 'lrMult' | 'frozen' | 'weightDecay' | 'batchNorm';

/** Layers whose BatchNorm runs in inference mode whenever it runs (policy "inference", or frozen). */
export function batchNormInferenceLayers(resolution: Resolution): Set<string> {
  return new Set(resolution.groups.flatMap((g) => g.layers.filter((l) => l.batchNorm === 'inference').map((l) => l.name)));
}

function groupRule(s: { spec: GroupSpec; planIndex: number }, key: RuledKey): Decision {
  return { source: 'group', detail: `groups[${s.planIndex}] ${JSON.stringify(s.spec.name)}.${key}` };
}

function layerRule(name: string, key: RuledKey): Decision {
  return { source: 'layers', detail: `layers[${JSON.stringify(name)}].${key}` };
}

/**
 * Why `token` of `training.noDecay` exempts weight `w`, or undefined. "bias" covers biases and
 * every 1-D weight, "norm" every weight of a normalisation layer; other tokens are patterns on
 * the full weight name.
 */
function noDecayReason(token: string, matches: NameMatcher, w: WeightInfo, layer: LayerInfo): string | undefined {
  const quoted = JSON.stringify(token);
  if (token === 'bias') {
    if (w.shortName === 'bias') return `noDecay ${quoted}`;
    if (w.shape.length === 1) return `noDecay ${quoted} (1-D weight)`;
    return undefined;
  }
  if (token === 'norm') return isNormLayer(layer) ? `noDecay ${quoted} (${layer.className || 'normalisation'} layer)` : undefined;
  return matches(w.name) ? `noDecay ${quoted}` : undefined;
}

interface DiscriminativeMult {
  value: number;
  detail: string;
}

/**
 * Each plan group's multiplier before per-layer overrides, in file order: the group's own
 * `lrMult`, else its share of `discriminative`, else 1 — the rule `resolveGroups` applies, without
 * matching any layer (core/presets.ts compares presets with it).
 */
export function planGroupMultipliers(plan: Plan, file?: string): number[] {
  const groups = plan.groups ?? [];
  const spread = discriminativeMultipliers(plan.discriminative, groups.length, file);
  return groups.map((g, i) => g.lrMult ?? spreadOrDefault(spread[i]).value);
}

/** A group without its own `lrMult`: its share of `discriminative`, else 1. */
function spreadOrDefault(d: DiscriminativeMult | undefined): Ruled<number> {
  return d !== undefined
    ? { value: d.value, rule: { source: 'discriminative', detail: d.detail }, field: 'discriminative' }
    : { value: 1, rule: { source: 'default', detail: 'default (1)' } };
}

/** The preset's multiplier for each plan group (bottom → top, file order). */
function discriminativeMultipliers(
  spec: DiscriminativeSpec | undefined,
  n: number,
  file: string | undefined,
): DiscriminativeMult[] {
  if (spec === undefined) return [];
  const out: DiscriminativeMult[] = [];
  switch (spec.type) {
    case 'ulmfit': {
      const factor = spec.factor ?? DEFAULTS.ulmfitFactor;
      checkPositive(factor, 'discriminative.factor', file);
      for (let i = 0; i < n; i++) {
        const e = n - 1 - i;
        out.push({ value: factor ** -e, detail: `discriminative ulmfit: ${fmt(factor)}^${e === 0 ? '0' : `-${e}`}` });
      }
      return out;
    }
    case 'layerDecay': {
      checkPositive(spec.gamma, 'discriminative.gamma', file);
      for (let i = 0; i < n; i++) {
        const e = n - 1 - i;
        out.push({ value: spec.gamma ** e, detail: `discriminative layerDecay: ${fmt(spec.gamma)}^${e}` });
      }
      return out;
    }
    case 'geometric': {
      checkPositive(spec.low, 'discriminative.low', file);
      checkPositive(spec.high, 'discriminative.high', file);
      for (let i = 0; i < n; i++) {
        if (n === 1) {
          out.push({ value: 1, detail: 'discriminative geometric: single group (1)' });
          continue;
        }
        const e = n - 1 - i;
        out.push({
          value: (spec.low / spec.high) ** (e / (n - 1)),
          detail: `discriminative geometric: (${fmt(spec.low)}/${fmt(spec.high)})^(${e}/${n - 1})`,
        });
      }
      return out;
    }
    default: {
      const unknown: { type?: unknown } = spec;
      throw new LayerwiseError(`unknown discriminative type ${JSON.stringify(unknown.type)} (known: ulmfit, layerDecay, geometric)`, {
        file,
        field: 'discriminative.type',
      });
    }
  }
}

function patternWarnings(
  s: PlanGroupState,
  assigned: ReadonlyArray<{ state: PlanGroupState } | undefined>,
  model: ModelInfo,
  warnings: AuditWarning[],
): void {
  const groupName = JSON.stringify(s.spec.name);
  s.spec.layers.forEach((pattern, j) => {
    const hits = s.hits[j]!;
    const field = jsonPath(['groups', s.planIndex, 'layers', j]);
    if (hits.length === 0) {
      warnings.push({
        code: 'patternMatchesNothing',
        message: `pattern ${JSON.stringify(pattern)} of group ${groupName} matches no layer`,
        field,
        group: s.spec.name,
      });
      return;
    }
    // A hit can only be taken by this group or an earlier one, so "none here" means shadowed.
    if (hits.some((li) => assigned[li]?.state === s)) return;
    const takers = [...new Set(hits.map((li) => assigned[li]!.state.spec.name))];
    warnings.push({
      code: 'patternShadowed',
      message: `pattern ${JSON.stringify(pattern)} of group ${groupName} matches only layers that an earlier group already takes (${takers.map((t) => JSON.stringify(t)).join(', ')}): ${listNames(hits.map((li) => model.layers[li]!.name))}; a layer belongs to the first group that matches it`,
      field,
      group: s.spec.name,
    });
  });
  if (s.layers.length === 0) {
    warnings.push({
      code: 'emptyGroup',
      message: `group ${groupName} has no layers: ${s.spec.layers.length === 0 ? 'it lists no patterns' : 'none of its patterns takes a layer'}`,
      field: jsonPath(['groups', s.planIndex]),
      group: s.spec.name,
    });
  }
}

/**
 * `lrMult: 0` stops the weights but not the layer: gradients are still computed, and a
 * BatchNorm layer in training mode keeps moving its statistics. One warning per rule that set
 * the zero, so a group of fifty layers gives one line, not fifty.
 */
function zeroLrWarnings(
  layers: ReadonlyArray<{ audit: LayerAudit; layer: LayerInfo; lrMultField: string | undefined }>,
  warnings: AuditWarning[],
): void {
  const byRule = new Map<string, { field: string | undefined; group: string; plain: string[]; batchNorm: string[]; fromLayer: boolean }>();
  for (const { audit, layer, lrMultField } of layers) {
    if (audit.lrMult !== 0 || audit.frozen) continue;
    const bn = isBatchNorm(layer);
    if (bn ? layer.weights.length === 0 : !layer.weights.some((w) => w.trainable)) continue;
    const key = audit.lrMultRule.detail;
    let entry = byRule.get(key);
    if (entry === undefined) {
      entry = { field: lrMultField, group: audit.group, plain: [], batchNorm: [], fromLayer: audit.lrMultRule.source === 'layers' };
      byRule.set(key, entry);
    }
    (bn ? entry.batchNorm : entry.plain).push(layer.name);
  }
  for (const [rule, e] of byRule) {
    const where = (names: string[]): Pick<AuditWarning, 'field' | 'layer' | 'group'> => ({
      ...(e.field === undefined ? {} : { field: e.field }),
      ...(names.length === 1 ? { layer: names[0]! } : {}),
      ...(e.fromLayer ? {} : { group: e.group }),
    });
    if (e.plain.length > 0) {
      warnings.push({
        code: 'zeroLrNotFrozen',
        message: `lrMult 0 is not frozen (${rule}): ${listNames(e.plain)} still ${e.plain.length === 1 ? 'costs' : 'cost'} a gradient every step and ${e.plain.length === 1 ? 'is' : 'are'} not covered by the frozen-weights check; use "frozen": true to freeze`,
        ...where(e.plain),
      });
    }
    if (e.batchNorm.length > 0) {
      warnings.push({
        code: 'frozenBatchNormStatistics',
        message: `lrMult 0 is not frozen (${rule}): the moving mean/variance of BatchNormalization ${listNames(e.batchNorm)} still move in training mode (only gamma/beta stand still); use "frozen": true to freeze the statistics too`,
        ...where(e.batchNorm),
      });
    }
  }
}

function checkPlanNumbers(plan: Plan, file: string | undefined): void {
  const nonNegative = (v: number | undefined, path: Array<string | number>): void => {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) {
      throw new LayerwiseError(`must be a finite number ≥ 0 (got ${v})`, { file, field: jsonPath(path) });
    }
  };
  nonNegative(plan.training?.weightDecay, ['training', 'weightDecay']);
  (plan.groups ?? []).forEach((g, i) => {
    nonNegative(g.lrMult, ['groups', i, 'lrMult']);
    nonNegative(g.weightDecay, ['groups', i, 'weightDecay']);
  });
  for (const [name, o] of Object.entries(plan.layers ?? {})) {
    nonNegative(o.lrMult, ['layers', name, 'lrMult']);
    nonNegative(o.weightDecay, ['layers', name, 'weightDecay']);
  }
}

function checkPositive(v: number, field: string, file: string | undefined): void {
  if (!(Number.isFinite(v) && v > 0)) throw new LayerwiseError(`must be a finite number > 0 (got ${v})`, { file, field });
}

function checkGroupNames(groups: readonly GroupSpec[], file: string | undefined): void {
  const seen = new Map<string, number>();
  groups.forEach((g, i) => {
    const first = seen.get(g.name);
    if (first !== undefined) {
      throw new LayerwiseError(`group name ${JSON.stringify(g.name)} is already used by groups[${first}]; group names must be unique`, {
        file,
        field: jsonPath(['groups', i, 'name']),
      });
    }
    seen.set(g.name, i);
  });
}

function listNames(names: readonly string[], max = 8): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, … (${names.length} in all)` : shown;
}

function fmt(x: number): string {
  return String(Number(x.toPrecision(6)));
}

function sameNumber(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/** A layer name one or two edits away (or differing only in case), for "did you mean". */
function closestName(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = c.toLowerCase() === name.toLowerCase() ? 0 : editDistance(name, c, 3);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= 2 ? best : undefined;
}

/** Levenshtein distance, giving up (returning `limit`) once it must exceed `limit - 1`. */
function editDistance(a: string, b: string, limit: number): number {
  if (Math.abs(a.length - b.length) >= limit) return limit;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const v = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      row.push(v);
      rowMin = Math.min(rowMin, v);
    }
    if (rowMin >= limit) return limit;
    prev = row;
  }
  return Math.min(prev[b.length]!, limit);
}
