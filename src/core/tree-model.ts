/**
 * The sidebar's layer tree as plain nodes: plan → groups (bottom → top) → layers → parameters,
 * each with the description, Markdown audit tooltip and freeze checkbox the tree shows. Pure, so
 * the whole tree is tested without VS Code; the host's TreeDataProvider only maps these nodes.
 *
 * Checkbox convention: **checked = trains**, unchecked = frozen. A checkbox answers "does this
 * learn?", which stays true to its label when a layer override disagrees with its group.
 */
import { isLayerwiseError } from './errors.ts';
import { resolveGroups } from './groups.ts';
import type { AuditWarning, Decision, GroupAudit, LayerAudit, ParamAudit, Resolution } from './groups.types.ts';
import type { ModelInfo } from './model-info.ts';
import type { Plan } from './plan.ts';

export type TreeNodeKind = 'plan' | 'group' | 'layer' | 'param' | 'problem' | 'warning' | 'loading';

/** What an action on a node (checkbox, set multiplier, move) refers to. */
export type NodeTarget =
  | { kind: 'plan'; planKey: string }
  /** `planIndex` is undefined for the implicit "default" group, which has no entry to edit. */
  | { kind: 'group'; planKey: string; group: string; planIndex?: number }
  | { kind: 'layer'; planKey: string; layer: string; group: string }
  | { kind: 'param'; planKey: string; param: string; layer: string }
  /** A place in the plan's text (a problem), when known. */
  | { kind: 'location'; planKey: string; offset?: number; length?: number };

export type CheckState = 'checked' | 'unchecked';

export interface TreeNode {
  /** Stable across refreshes, unique in the whole tree. */
  id: string;
  kind: TreeNodeKind;
  label: string;
  description?: string;
  tooltipMarkdown?: string;
  /** Absent: no checkbox. Checked = trains. */
  checkbox?: CheckState;
  /** Drives the `view/item/context` menus (`viewItem == layerwise.layer`, …). */
  contextValue: string;
  /** A codicon id. */
  icon?: string;
  children: TreeNode[];
  expanded?: boolean;
  target: NodeTarget;
}

export type ModelState =
  | { state: 'loading' }
  | { state: 'ready'; model: ModelInfo }
  | { state: 'failed'; message: string };

export interface PlanTreeInput {
  /** The plan's identity (the host uses its URI string). */
  planKey: string;
  /** How the plan is named in the tree: its path relative to the workspace. */
  label: string;
  /** Undefined when the text does not parse or validate. */
  plan: Plan | undefined;
  problems: ReadonlyArray<{ message: string; field: string; offset?: number; length?: number }>;
  model: ModelState;
}

// ---- formatting -----------------------------------------------------------------------------

/** `×0.148`: three significant digits, no trailing zeros. */
export function formatMult(x: number): string {
  return `×${trimNumber(x)}`;
}

export function formatLr(x: number): string {
  if (x === 0) return '0';
  if (Math.abs(x) >= 0.01 && Math.abs(x) < 1000) return trimNumber(x);
  const [mantissa, exponent] = x.toExponential(2).split('e');
  return `${trimNumber(Number(mantissa))}e${Number(exponent)}`;
}

function trimNumber(x: number): string {
  if (x !== 0 && (Math.abs(x) < 1e-4 || Math.abs(x) >= 1e6)) return formatLr(x);
  return String(Number(x.toPrecision(3)));
}

/** `1.2M params`-style counts: exact below a thousand, one decimal above. */
export function formatCount(n: number): string {
  if (n < 1000) return String(n);
  const units: Array<[number, string]> = [[1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [size, unit] of units) {
    if (n >= size) {
      const v = n / size;
      return `${v >= 100 ? Math.round(v) : Number(v.toFixed(1))}${unit}`;
    }
  }
  return String(n);
}

const params = (n: number): string => `${formatCount(n)} param${n === 1 ? '' : 's'}`;

/** Escapes text for Markdown outside code spans. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`);
}

/** A code span that survives backticks inside the text. */
export function code(text: string): string {
  const fence = text.includes('`') ? '`` ' : '`';
  const close = text.includes('`') ? ' ``' : '`';
  return `${fence}${text}${close}`;
}

function rule(d: Decision): string {
  return `${d.source} — ${code(d.detail)}`;
}

function warningLines(warnings: readonly AuditWarning[]): string[] {
  return warnings.length === 0 ? [] : ['', ...warnings.map((w) => `$(warning) ${escapeMarkdown(w.message)}`)];
}

function warningSuffix(n: number): string[] {
  return n === 0 ? [] : [`⚠ ${n}`];
}

function range(values: readonly number[]): string {
  if (values.length === 0) return '—';
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo === hi ? formatLr(lo) : `${formatLr(lo)} – ${formatLr(hi)}`;
}

// ---- building -------------------------------------------------------------------------------

export function buildPlanTree(input: PlanTreeInput): TreeNode {
  const { planKey } = input;
  const node: TreeNode = {
    id: planKey,
    kind: 'plan',
    label: input.label,
    contextValue: 'layerwise.plan',
    icon: 'file-code',
    children: [],
    expanded: true,
    target: { kind: 'plan', planKey },
  };
  const problemNodes = input.problems.map((p, i): TreeNode => ({
    id: `${planKey}#problem:${i}`,
    kind: 'problem',
    label: p.field,
    description: p.message,
    tooltipMarkdown: `**${escapeMarkdown(p.field)}**: ${escapeMarkdown(p.message)}`,
    contextValue: 'layerwise.problem',
    icon: 'error',
    children: [],
    target: { kind: 'location', planKey, offset: p.offset, length: p.length },
  }));
  if (input.plan === undefined || problemNodes.length > 0) {
    const n = input.problems.length;
    return {
      ...node,
      contextValue: 'layerwise.plan.invalid',
      description: n === 0 ? 'cannot be read' : `${n} problem${n === 1 ? '' : 's'}`,
      tooltipMarkdown: `${code(input.label)} has problems; see the Problems panel.`,
      icon: 'error',
      children: problemNodes,
    };
  }
  const plan = input.plan;
  switch (input.model.state) {
    case 'loading':
      return {
        ...node,
        description: 'loading model…',
        children: [{
          id: `${planKey}#loading`,
          kind: 'loading',
          label: 'Loading model…',
          contextValue: 'layerwise.loading',
          icon: 'loading~spin',
          children: [],
          target: { kind: 'plan', planKey },
        }],
      };
    case 'failed':
      return {
        ...node,
        contextValue: 'layerwise.plan.invalid',
        description: 'model cannot be loaded',
        icon: 'error',
        children: [messageNode(planKey, 'model', 'The model cannot be loaded', input.model.message, 'problem')],
      };
    case 'ready':
      break;
  }
  let resolution: Resolution;
  try {
    resolution = resolveGroups(input.model.model, plan, input.label);
  } catch (e) {
    const message = isLayerwiseError(e) ? e.message : e instanceof Error ? e.message : String(e);
    return {
      ...node,
      contextValue: 'layerwise.plan.invalid',
      description: 'groups cannot be resolved',
      icon: 'error',
      children: [messageNode(planKey, 'resolve', 'The groups cannot be resolved', message, 'problem')],
    };
  }
  const total = resolution.params.reduce((n, p) => n + p.size, 0);
  const training = resolution.params.filter((p) => p.trainable && !p.frozen).reduce((n, p) => n + p.size, 0);
  const general = resolution.warnings.filter((w) => w.layer === undefined && w.group === undefined);
  const groups = buildGroupNodes(planKey, resolution);
  return {
    ...node,
    description: [
      `lr ${formatLr(resolution.baseLr)}`,
      `${groups.length} group${groups.length === 1 ? '' : 's'}`,
      `${formatCount(training)}/${params(total)} train`,
      ...warningSuffix(resolution.warnings.length),
    ].join(' · '),
    tooltipMarkdown: [
      `**${escapeMarkdown(input.label)}** — model ${code(input.model.model.source)}`,
      '',
      `- base LR: ${formatLr(resolution.baseLr)} (${code('training.lr')})`,
      `- ${formatCount(training)} of ${params(total)} train`,
      `- groups bottom → top: ${groups.map((g) => code(g.label)).join(' → ')}`,
      ...warningLines(resolution.warnings),
    ].join('\n'),
    children: [
      ...general.map((w, i) => messageNode(planKey, `warning:${i}`, w.message, w.field ?? '', 'warning')),
      ...groups,
    ],
  };
}

function messageNode(planKey: string, key: string, label: string, detail: string, kind: 'problem' | 'warning'): TreeNode {
  return {
    id: `${planKey}#${key}`,
    kind,
    label,
    description: detail,
    tooltipMarkdown: `${escapeMarkdown(label)}${detail === '' ? '' : `\n\n${escapeMarkdown(detail)}`}`,
    contextValue: `layerwise.${kind}`,
    icon: kind === 'problem' ? 'error' : 'warning',
    children: [],
    target: { kind: 'location', planKey },
  };
}

/** The groups of one plan, bottom → top, with their layers and parameters. */
export function buildGroupNodes(planKey: string, resolution: Resolution): TreeNode[] {
  const count = resolution.groups.length;
  // unmatched layers without weights (input, flatten, …) have nothing to train or freeze
  return resolution.groups.filter((g) => !(g.implicit && g.paramCount === 0)).map((g) => groupNode(planKey, resolution, g, count));
}

function groupNode(planKey: string, resolution: Resolution, g: GroupAudit, count: number): TreeNode {
  const warnings = resolution.warnings.filter((w) => w.group === g.name && w.layer === undefined);
  const layerWarnings = resolution.warnings.filter((w) => w.layer !== undefined && g.layers.some((l) => l.name === w.layer));
  const trainableParams = g.layers.flatMap((l) => l.params.filter((p) => p.trainable));
  const place = g.index === 0 ? 'bottom' : g.index === count - 1 ? 'top' : `${g.index + 1} of ${count}`;
  const tooltip = [
    `**${escapeMarkdown(g.name)}** — group ${g.index + 1} of ${count} (${place})${g.implicit ? ', implicit: the layers no pattern matches' : ''}`,
    '',
    `- multiplier: ${formatMult(g.lrMult)} — ${rule(g.lrMultRule)}`,
    `- effective LR: ${formatLr(resolution.baseLr * g.lrMult)} (base ${formatLr(resolution.baseLr)} ${formatMult(g.lrMult)}, before the schedule)`,
    `- weight decay: ${range(trainableParams.map((p) => p.weightDecay))}`,
    `- frozen: ${g.frozen ? 'yes' : 'no'} — ${rule(g.frozenRule)}`,
    ...(g.implicit ? [] : [`- patterns: ${g.patterns.map(code).join(', ')}`]),
    `- ${g.layers.length} layer${g.layers.length === 1 ? '' : 's'}, ${params(g.paramCount)}`,
    ...warningLines([...warnings, ...layerWarnings]),
  ];
  const hasParams = g.paramCount > 0;
  return {
    id: `${planKey}#g:${g.name}`,
    kind: 'group',
    label: g.name,
    description: [formatMult(g.lrMult), params(g.paramCount), ...(g.frozen ? ['frozen'] : []), ...warningSuffix(warnings.length + layerWarnings.length)].join(' · '),
    tooltipMarkdown: tooltip.join('\n'),
    // the implicit group has no plan entry a toggle could write to
    ...(g.implicit || !hasParams ? {} : { checkbox: g.frozen ? ('unchecked' as const) : ('checked' as const) }),
    contextValue: g.implicit ? 'layerwise.group.implicit' : 'layerwise.group',
    icon: g.frozen ? 'lock' : 'layers',
    children: g.layers.map((l) => layerNode(planKey, resolution, l, g)),
    expanded: false,
    target: { kind: 'group', planKey, group: g.name, ...(g.planIndex === undefined ? {} : { planIndex: g.planIndex }) },
  };
}

function layerNode(planKey: string, resolution: Resolution, l: LayerAudit, g: GroupAudit): TreeNode {
  const warnings = resolution.warnings.filter((w) => w.layer === l.name);
  const hasParams = l.params.length > 0;
  const trainable = l.params.filter((p) => p.trainable);
  const tooltip = [
    `**${escapeMarkdown(l.name)}** — ${code(l.className || 'layer')} at depth ${l.depth}${l.isNewHead ? ', new head layer' : ''}`,
    '',
    `- group: ${code(g.name)}${l.matchedBy ? ` (pattern ${code(l.matchedBy.pattern)} of ${code(`groups[${l.matchedBy.groupIndex}]`)})` : ' (no pattern matched)'}`,
    `- multiplier: ${formatMult(l.lrMult)} — ${rule(l.lrMultRule)}`,
    `- effective LR: ${formatLr(resolution.baseLr * l.lrMult)} (before the schedule)`,
    ...(hasParams ? [`- weight decay: ${range(trainable.map((p) => p.weightDecay))}`] : []),
    `- frozen: ${l.frozen ? 'yes' : 'no'} — ${rule(l.frozenRule)}`,
    ...(l.batchNormRule ? [`- BatchNorm mode: ${l.batchNorm === 'inference' ? 'inference (moving statistics fixed)' : 'train (moving statistics updated)'} — ${rule(l.batchNormRule)}`] : []),
    `- ${params(l.paramCount)}`,
    ...warningLines(warnings),
  ];
  return {
    id: `${planKey}#l:${l.name}`,
    kind: 'layer',
    label: l.name,
    description: hasParams
      ? [formatMult(l.lrMult), params(l.paramCount), ...(l.frozen ? ['frozen'] : []), l.className, ...warningSuffix(warnings.length)].filter((s) => s !== '').join(' · ')
      : ['no params', l.className].filter((s) => s !== '').join(' · '),
    tooltipMarkdown: tooltip.join('\n'),
    ...(hasParams ? { checkbox: l.frozen ? ('unchecked' as const) : ('checked' as const) } : {}),
    contextValue: hasParams ? 'layerwise.layer' : 'layerwise.layer.empty',
    icon: !hasParams ? 'symbol-operator' : l.frozen ? 'lock' : 'symbol-field',
    children: l.params.map((p) => paramNode(planKey, p)),
    expanded: false,
    target: { kind: 'layer', planKey, layer: l.name, group: g.name },
  };
}

function paramNode(planKey: string, p: ParamAudit): TreeNode {
  const short = p.name.startsWith(`${p.layer}/`) ? p.name.slice(p.layer.length + 1) : p.name;
  const shape = `[${p.shape.join(', ')}]`;
  const description = p.trainable
    ? [shape, formatCount(p.size), p.frozen ? 'frozen' : `lr ${formatLr(p.effectiveLr)}`, `wd ${formatLr(p.weightDecay)}`]
    : [shape, formatCount(p.size), p.frozen ? 'statistic · frozen' : 'statistic'];
  const tooltip = [
    `**${escapeMarkdown(p.name)}** ${code(shape)} — ${params(p.size)}${p.trainable ? '' : ', a statistic (not optimized)'}`,
    '',
    `- group: ${code(p.group)}`,
    `- multiplier: ${formatMult(p.lrMult)} — ${rule(p.lrMultRule)}`,
    `- effective LR: ${formatLr(p.effectiveLr)} (before the schedule)`,
    `- weight decay: ${formatLr(p.weightDecay)} — ${rule(p.weightDecayRule)}`,
    `- frozen: ${p.frozen ? 'yes' : 'no'} — ${rule(p.frozenRule)}`,
  ];
  return {
    id: `${planKey}#p:${p.name}`,
    kind: 'param',
    label: short,
    description: description.join(' · '),
    tooltipMarkdown: tooltip.join('\n'),
    contextValue: 'layerwise.param',
    icon: p.trainable ? 'symbol-number' : 'graph-line',
    children: [],
    target: { kind: 'param', planKey, param: p.name, layer: p.layer },
  };
}

// ---- actions --------------------------------------------------------------------------------

/** A change to one freeze setting; `null` removes the field (the next rule decides again). */
export type FreezeChange =
  | { kind: 'group'; planIndex: number; frozen: true | null }
  | { kind: 'layer'; layer: string; frozen: boolean | null };

/**
 * The edit a checkbox toggle makes (`trains` = the new checked state). Writes the least that
 * reaches the state: a group's `frozen: false` is the default, so it is removed rather than
 * written; a layer override that would only repeat its group's setting is removed.
 */
export function freezeChange(target: NodeTarget, trains: boolean, resolution: Resolution): FreezeChange | undefined {
  const frozen = !trains;
  switch (target.kind) {
    case 'group':
      if (target.planIndex === undefined) return undefined;
      return { kind: 'group', planIndex: target.planIndex, frozen: frozen ? true : null };
    case 'layer': {
      const layer = resolution.groups.flatMap((g) => g.layers).find((l) => l.name === target.layer);
      const group = resolution.groups.find((g) => g.name === layer?.group);
      if (layer === undefined || group === undefined) return undefined;
      return { kind: 'layer', layer: target.layer, frozen: group.frozen === frozen ? null : frozen };
    }
    case 'plan':
    case 'param':
    case 'location':
      return undefined;
  }
}

/**
 * Reads the multiplier input box: a number ≥ 0, or empty to remove the override so the group
 * (or preset) decides again.
 */
export function parseMultiplierInput(text: string): { value: number | null } | { error: string } {
  const t = text.trim().replace(/^[×x*]\s*/i, '');
  if (t === '') return { value: null };
  if (!/^[+]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t)) return { error: 'Enter a number ≥ 0 (for example 0.1 or 2.5e-2), or leave empty to remove the setting' };
  const value = Number(t);
  if (!Number.isFinite(value)) return { error: 'The multiplier must be a finite number' };
  return { value };
}

/** The groups a layer can be moved to: every plan group but its own, bottom → top. */
export function moveTargets(plan: Plan, currentGroup: string): Array<{ planIndex: number; name: string }> {
  return (plan.groups ?? []).map((g, i) => ({ planIndex: i, name: g.name })).filter((g) => g.name !== currentGroup);
}

/** Finds a node by id (the host resolves checkbox and command arguments with it). */
export function findNode(roots: readonly TreeNode[], id: string): TreeNode | undefined {
  for (const r of roots) {
    if (r.id === id) return r;
    const hit = findNode(r.children, id);
    if (hit !== undefined) return hit;
  }
  return undefined;
}
