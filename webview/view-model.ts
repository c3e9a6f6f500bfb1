/**
 * The panel's pure half: rows of the layer tree from the core's resolution, the edit each
 * control sends, number parsing and formatting, and which run buttons are enabled. No DOM here,
 * so all of it is testable in plain Node.
 */
import { assertNever } from '../src/core/errors.ts';
import type { AuditWarning, Decision, GroupAudit, LayerAudit, ParamAudit, Resolution } from '../src/core/groups.types.ts';
import type { Plan } from '../src/core/plan.ts';
import type { PlanEditRequest, TrainingStatus } from '../src/protocol/webview.ts';

/** Number of distinct series colours in media/webview.css (`.c0` … `.c7`, one palette per theme kind). */
export const PALETTE_SIZE = 8;
/**
 * The colour classes of group `index`: `c0` … `c7`, and from the ninth group on the same colours
 * again with `alt` (outlined swatches, dotted lines, lighter bars), so no two groups of a
 * 16-group plan look alike.
 */
export const colorClass = (index: number): string => {
  const i = Math.max(0, Math.floor(index));
  const cycle = Math.floor(i / PALETTE_SIZE);
  return `c${i % PALETTE_SIZE}${cycle % 2 === 1 ? ' alt' : ''}`;
};

export interface RowBase {
  /** Stable identity across re-renders: `g:<group>` or `l:<layer>`. */
  key: string;
  name: string;
  /** The colour classes of the row's group (see `groupColors`). */
  color: string;
  lrMult: number;
  lrMultRule: Decision;
  /** training.lr × lrMult, or undefined when nothing in the row is optimized. */
  effectiveLr: number | undefined;
  frozen: boolean;
  frozenRule: Decision;
  paramCount: number;
  /** Every optimized weight's decay, e.g. `0.01 / 0` (biases exempt), or `—`. */
  weightDecay: string;
  /** The weights the optimizer updates, whose decays `weightDecayTitle` details. */
  optimizedParams: readonly ParamAudit[];
  /** The decay this row's own plan entry sets (`groups[i].weightDecay`, `layers[name].weightDecay`). */
  ownWeightDecay: number | undefined;
  warnings: string[];
}

export interface LayerRow extends RowBase {
  kind: 'layer';
  className: string;
  depth: number;
  group: string;
  /** BatchNormalization layers only: the mode it trains in and the rule that decided it. */
  batchNorm?: { mode: 'train' | 'inference'; rule: Decision };
  /** The plan index of the layer's group; undefined in the implicit `default` group. */
  groupPlanIndex: number | undefined;
  /** Whether the layer has weights the optimizer updates (so a weight decay means something). */
  hasOptimizedWeights: boolean;
  isNewHead: boolean;
}

export interface GroupRow extends RowBase {
  kind: 'group';
  /** Position bottom → top in the resolution. */
  index: number;
  /** Index in the plan's `groups`; undefined for the implicit `default` group, which no edit can reach. */
  planIndex: number | undefined;
  patterns: string[];
  layers: LayerRow[];
}

export type TreeRow = GroupRow | LayerRow;

export interface TreeModel {
  baseLr: number;
  /** The groups the tree shows (the implicit group only when it holds weights). */
  groups: GroupRow[];
  /** Warnings about the plan as a whole (not about one layer or group). */
  warnings: string[];
  /** Layers the shown groups hold. */
  layerCount: number;
  /** Layers without weights that no pattern matches: the hidden implicit group's. */
  hiddenLayerCount: number;
  /** The plan's groups, in file order: where a layer can be moved. */
  planGroups: Array<{ planIndex: number; name: string }>;
}

/**
 * The implicit "default" group is left out when it holds only layers without weights (input,
 * flatten, pooling, dropout…): nothing in it trains, freezes or decays. The sidebar tree
 * (core/tree-model.ts `buildGroupNodes`) hides it by the same rule.
 */
export function isHiddenGroup(g: GroupAudit): boolean {
  return g.implicit && g.paramCount === 0;
}

/**
 * Each shown group's colour classes, by its place among the shown groups (bottom → top), so a
 * hidden implicit group takes no colour and eight groups get the eight plain colours. The tree,
 * the rate charts and the live curves all colour groups from this.
 */
export function groupColors(resolution: Resolution): Map<string, string> {
  const colors = new Map<string, string>();
  for (const g of resolution.groups) if (!isHiddenGroup(g)) colors.set(g.name, colorClass(colors.size));
  return colors;
}

export function buildTreeModel(resolution: Resolution, plan: Plan): TreeModel {
  const byLayer = new Map<string, string[]>();
  const byGroup = new Map<string, string[]>();
  const general: string[] = [];
  const push = (m: Map<string, string[]>, k: string, w: AuditWarning): void => {
    const list = m.get(k);
    if (list) list.push(w.message);
    else m.set(k, [w.message]);
  };
  for (const w of resolution.warnings) {
    if (w.layer !== undefined) push(byLayer, w.layer, w);
    else if (w.group !== undefined) push(byGroup, w.group, w);
    else general.push(w.message);
  }
  const shown = resolution.groups.filter((g) => !isHiddenGroup(g));
  // a warning about a layer without a row (not in the model, or hidden) would otherwise vanish
  const known = new Set(shown.flatMap((g) => g.layers.map((l) => l.name)));
  for (const [layer, messages] of byLayer) if (!known.has(layer)) general.push(...messages);

  let layerCount = 0;
  let hiddenLayerCount = 0;
  const colors = groupColors(resolution);
  const groups: GroupRow[] = [];
  for (const g of resolution.groups) {
    const color = colors.get(g.name);
    if (color === undefined) {
      hiddenLayerCount += g.layers.length;
      general.push(...(byGroup.get(g.name) ?? []));
      continue;
    }
    const layers = g.layers.map((l) => layerRow(l, g, color, plan, resolution.baseLr, byLayer.get(l.name) ?? []));
    layerCount += layers.length;
    groups.push(groupRow(g, color, plan, resolution.baseLr, layers, byGroup.get(g.name) ?? []));
  }
  const planGroups = (plan.groups ?? []).map((g, planIndex) => ({ planIndex, name: g.name }));
  return { baseLr: resolution.baseLr, groups, warnings: general, layerCount, hiddenLayerCount, planGroups };
}

function layerRow(l: LayerAudit, g: GroupAudit, color: string, plan: Plan, baseLr: number, warnings: string[]): LayerRow {
  const optimized = l.params.filter((p) => p.trainable);
  // own keys only: a layer named like an Object.prototype member has no override by accident
  const override = plan.layers !== undefined && Object.hasOwn(plan.layers, l.name) ? plan.layers[l.name] : undefined;
  return {
    kind: 'layer',
    key: `l:${l.name}`,
    name: l.name,
    color,
    className: l.className,
    depth: l.depth,
    group: g.name,
    groupPlanIndex: g.planIndex,
    hasOptimizedWeights: optimized.length > 0,
    isNewHead: l.isNewHead,
    lrMult: l.lrMult,
    lrMultRule: l.lrMultRule,
    effectiveLr: optimized.length > 0 ? baseLr * l.lrMult : undefined,
    frozen: l.frozen,
    frozenRule: l.frozenRule,
    paramCount: l.paramCount,
    weightDecay: decayText(optimized),
    optimizedParams: optimized,
    ownWeightDecay: override?.weightDecay,
    warnings,
    ...(l.batchNorm !== undefined && l.batchNormRule !== undefined ? { batchNorm: { mode: l.batchNorm, rule: l.batchNormRule } } : {}),
  };
}

function groupRow(g: GroupAudit, color: string, plan: Plan, baseLr: number, layers: LayerRow[], warnings: string[]): GroupRow {
  const planDecay = g.planIndex === undefined ? undefined : plan.groups?.[g.planIndex]?.weightDecay;
  const optimized = layers.flatMap((l) => l.optimizedParams);
  return {
    kind: 'group',
    key: `g:${g.name}`,
    name: g.name,
    color,
    index: g.index,
    planIndex: g.planIndex,
    patterns: g.patterns,
    lrMult: g.lrMult,
    lrMultRule: g.lrMultRule,
    effectiveLr: optimized.length > 0 ? baseLr * g.lrMult : undefined,
    frozen: g.frozen,
    frozenRule: g.frozenRule,
    paramCount: g.paramCount,
    weightDecay: planDecay !== undefined ? formatNumber(planDecay) : decayText(optimized),
    optimizedParams: optimized,
    ownWeightDecay: planDecay,
    warnings,
    layers,
  };
}

/** The distinct decays of the weights, largest first: `0.01 / 0`, or `—` with none. */
function decayText(params: readonly ParamAudit[]): string {
  if (params.length === 0) return '—';
  // a layer has a weight or two and a group a few hundred with one or two values: no Set needed
  const values: number[] = [];
  for (const p of params) if (!values.includes(p.weightDecay)) values.push(p.weightDecay);
  return values
    .sort((a, b) => b - a)
    .map(formatNumber)
    .join(' / ');
}

/**
 * Where a row's weight decays come from, one weight a line (the first 12). Worked out for the
 * rows drawn only: a state has a thousand layer rows and the tree draws a few dozen.
 */
export function weightDecayTitle(row: TreeRow): string {
  if (row.kind === 'group' && row.ownWeightDecay !== undefined) return `groups[${row.planIndex}].weightDecay (noDecay and layers[…] still win)`;
  const items = row.optimizedParams;
  if (items.length === 0) return 'no optimized weights';
  const title = items.slice(0, 12).map((p) => `${p.name}: ${formatNumber(p.weightDecay)} (${p.weightDecayRule.detail})`);
  if (items.length > 12) title.push(`… ${items.length - 12} more`);
  return title.join('\n');
}

// ---- numbers ----------------------------------------------------------------------------------

/** Short, exact enough for a table cell: 3 significant digits, exponent form outside [1e-3, 1e4). */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) {
    const [mantissa = '', exponent = ''] = v.toExponential(2).split('e');
    return `${mantissa.replace(/\.?0+$/, '')}e${exponent.replace('+', '')}`;
  }
  return String(Number(v.toPrecision(3)));
}

export function formatParams(n: number): string {
  if (n >= 1e9) return `${trim(n / 1e9)}B`;
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return String(n);
}

const trim = (v: number): string => String(Number(v.toFixed(v >= 100 ? 0 : 1)));

/** A number the user typed: undefined when it is not one (the field shows it as invalid). */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  if (t === '' || !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(t)) return undefined;
  const v = Number(t);
  return Number.isFinite(v) ? v : undefined;
}

export type FieldCheck = (v: number) => string | undefined;
export const nonNegative: FieldCheck = (v) => (v >= 0 ? undefined : 'must be 0 or more');
export const positive: FieldCheck = (v) => (v > 0 ? undefined : 'must be more than 0');
export const positiveInteger: FieldCheck = (v) => (Number.isInteger(v) && v >= 1 ? undefined : 'must be a whole number, 1 or more');
export const warmupCheck: FieldCheck = (v) =>
  v < 0 ? 'must be 0 or more' : v >= 1 && !Number.isInteger(v) ? 'a fraction below 1, or a whole number of steps' : undefined;

/** ×2 / ÷2 steps of a multiplier, kept to 4 significant digits so repeated halving stays readable. */
export function stepMultiplier(current: number, direction: 1 | -1): number {
  const base = current > 0 ? current : 1;
  return Number((direction > 0 ? base * 2 : base / 2).toPrecision(4));
}

// ---- edits ------------------------------------------------------------------------------------

/** The edit a multiplier field sends; null removes the setting (a layer then follows its group). */
export function multiplierEdit(row: TreeRow, value: number | null): PlanEditRequest | undefined {
  if (row.kind === 'layer') return { kind: 'setLayer', layer: row.name, key: 'lrMult', value };
  return row.planIndex === undefined ? undefined : { kind: 'setGroup', groupIndex: row.planIndex, key: 'lrMult', value };
}

/**
 * The edit a "Trains" checkbox sends (`trains` = its new checked state), the same edit the Layers
 * view's checkbox makes (core/tree-model.ts freezeChange): it writes the least that reaches the
 * state — a group that trains loses its `frozen` field; a layer that agrees with its group loses
 * its override.
 */
export function trainsEdit(row: TreeRow, trains: boolean, groupFrozen: boolean): PlanEditRequest | undefined {
  const frozen = !trains;
  if (row.kind === 'layer') return { kind: 'setLayer', layer: row.name, key: 'frozen', value: groupFrozen === frozen ? null : frozen };
  return row.planIndex === undefined ? undefined : { kind: 'setGroup', groupIndex: row.planIndex, key: 'frozen', value: frozen ? true : null };
}

/** The edit a weight-decay field sends; null removes the row's own setting (its group or training.weightDecay decides again). */
export function weightDecayEdit(row: TreeRow, value: number | null): PlanEditRequest | undefined {
  if (row.kind === 'layer') return { kind: 'setLayer', layer: row.name, key: 'weightDecay', value };
  return row.planIndex === undefined ? undefined : { kind: 'setGroup', groupIndex: row.planIndex, key: 'weightDecay', value };
}

/** The edit that puts a layer into the plan's group `toPlanIndex`, or undefined when it is there already. */
export function moveEdit(row: LayerRow, toPlanIndex: number): PlanEditRequest | undefined {
  return row.groupPlanIndex === toPlanIndex ? undefined : { kind: 'moveLayer', layer: row.name, toGroupIndex: toPlanIndex };
}

/** Why a row's controls cannot edit it, or undefined when they can. */
export function notEditableReason(row: TreeRow): string | undefined {
  if (row.kind === 'group' && row.planIndex === undefined) {
    return 'the implicit "default" group holds layers no pattern matches; add a group to the plan to give them a multiplier, or set layers one by one';
  }
  return undefined;
}

/** Why a row's weight decay cannot be set, or undefined when it can. */
export function decayBlockedReason(row: TreeRow): string | undefined {
  if (row.kind === 'layer' && !row.hasOptimizedWeights) return 'this layer has no weights the optimizer updates: nothing to decay';
  return notEditableReason(row);
}

/** Why a layer cannot be moved, or undefined when it can. */
export function moveBlockedReason(row: LayerRow, planGroups: TreeModel['planGroups']): string | undefined {
  if (planGroups.length === 0) return 'the plan has no groups to move the layer to; add one to "groups" first';
  if (planGroups.length === 1 && row.groupPlanIndex === planGroups[0]?.planIndex) return 'the plan has no other group to move the layer to; add one to "groups" first';
  return undefined;
}

/** Does the row's own plan entry set this key (so clearing the field has something to remove)? */
export function setHere(row: TreeRow, rule: Decision): boolean {
  return row.kind === 'layer' ? rule.source === 'layers' : rule.source === 'group';
}

/** The plan field a row's own weight decay lives in, for the "Decided by" column. */
export function ownWeightDecayField(row: TreeRow): string | undefined {
  if (row.ownWeightDecay === undefined) return undefined;
  return row.kind === 'layer' ? `layers[${JSON.stringify(row.name)}].weightDecay` : `groups[${row.planIndex}] ${JSON.stringify(row.name)}.weightDecay`;
}

// ---- run controls -----------------------------------------------------------------------------

export interface RunControls {
  train: boolean;
  findLr: boolean;
  stop: boolean;
  /** Why Train / Find LR are disabled, when they are. */
  reason: string | undefined;
}

export function runControls(status: TrainingStatus, trusted: boolean, runnable: string | undefined): RunControls {
  const busy = status.state === 'starting' || status.state === 'running';
  let reason: string | undefined;
  if (!trusted) reason = 'Training and LR range tests are disabled in Restricted Mode: trust this workspace to run them. Browsing and editing the plan still work.';
  else if (busy) reason = status.job === 'train' ? 'A training run is in progress.' : 'An LR range test is in progress.';
  else reason = runnable;
  const ok = reason === undefined;
  return { train: ok, findLr: ok, stop: busy, reason };
}

export function statusText(status: TrainingStatus): string {
  const what = (job: 'train' | 'findLr'): string => (job === 'train' ? 'Training' : 'LR range test');
  switch (status.state) {
    case 'idle':
      return 'Idle';
    case 'starting':
      return `${what(status.job)}: starting…`;
    case 'running': {
      const parts = [what(status.job)];
      if (status.stages > 1) parts.push(`stage ${status.stage}/${status.stages}`);
      if (status.job === 'train') parts.push(`epoch ${status.epoch}/${status.epochs}`);
      parts.push(`${Math.floor(status.fraction * 100)}%`);
      if (status.loss !== undefined) parts.push(`loss ${formatNumber(status.loss)}`);
      return parts.join(' · ');
    }
    case 'succeeded':
      return `${what(status.job)} finished: ${status.summary}`;
    case 'failed':
      return `${what(status.job)} failed: ${status.message}`;
    case 'cancelled':
      return `${what(status.job)} stopped.`;
    default:
      return assertNever(status, 'training status');
  }
}

// ---- filter -----------------------------------------------------------------------------------

export interface FilteredTree {
  /** The groups with something that matches, each with its matching layers (all of them when the group's name matches). */
  groups: Array<{ group: GroupRow; layers: LayerRow[] }>;
  /** Layers shown because they match (by name, type or group). */
  matches: number;
}

/**
 * The rows a filter shows: a layer matches when its name, its type (class name) or its group's
 * name holds every word of the query, case-insensitively (`block_16 conv` finds
 * block_16_depthwise's Conv2D neighbours); an empty query matches nothing (the caller shows the
 * whole tree instead).
 */
export function filterTree(model: Pick<TreeModel, 'groups'>, query: string): FilteredTree {
  const words = query.toLowerCase().split(/\s+/).filter((w) => w !== '');
  const groups: FilteredTree['groups'] = [];
  let matches = 0;
  if (words.length === 0) return { groups, matches };
  for (const group of model.groups) {
    const groupName = group.name.toLowerCase();
    const layers = group.layers.filter((l) => {
      const text = `${l.name.toLowerCase()} ${l.className.toLowerCase()} ${groupName}`;
      return words.every((w) => text.includes(w));
    });
    if (layers.length > 0 || words.every((w) => groupName.includes(w))) groups.push({ group, layers });
    matches += layers.length;
  }
  return { groups, matches };
}
