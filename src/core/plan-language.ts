/**
 * Language help on plan files, pure: what the cursor is on (a pattern, a stage's group name, a
 * `layers` key), the completions there with how many layers each candidate matches, the hover on
 * a pattern (the layers it matches and their effective LR, from the one resolver), and where the
 * CodeLens sits. The host's providers (host/language.ts) only translate offsets and items.
 */
import { findNodeAtLocation, getLocation, parseTree, type Node } from 'jsonc-parser';
import { resolveGroups } from './groups.ts';
import type { Resolution } from './groups.types.ts';
import type { ModelInfo } from './model-info.ts';
import { compilePattern, escapeGlob } from './patterns.ts';
import type { Plan } from './plan.ts';

/** What a position in a plan's text is, for completion and hover. */
export type PlanSpot =
  /** Inside a string of `groups[i].layers`: a layer pattern. */
  | { kind: 'pattern'; groupIndex: number; patternIndex: number; value: string; offset: number; length: number }
  /** Inside a string of `unfreeze.stages[i].train`: a group name. */
  | { kind: 'groupName'; value: string; offset: number; length: number }
  /** A property key of `layers`: a layer name. */
  | { kind: 'layerKey'; value: string; offset: number; length: number };

/** The spot at `offset`, or undefined where Layerwise has nothing to add to the JSON service. */
export function spotAt(text: string, offset: number): PlanSpot | undefined {
  const location = getLocation(text, offset);
  const node = location.previousNode;
  const path = location.path;
  // only inside a string (or right after its opening quote): the JSON service handles the rest
  // getLocation reports a property key as a 'property' node spanning the quoted key
  const inString = node !== undefined && (node.type === 'string' || node.type === 'property') && offset > node.offset && offset < node.offset + node.length + (closed(text, node) ? 0 : 1);
  if (!inString) return undefined;
  const value = String(node.value ?? '');
  const range = { offset: node.offset, length: node.length };
  if (path.length === 4 && path[0] === 'groups' && typeof path[1] === 'number' && path[2] === 'layers' && typeof path[3] === 'number') {
    return { kind: 'pattern', groupIndex: path[1], patternIndex: path[3], value, ...range };
  }
  if (path.length === 5 && path[0] === 'unfreeze' && path[1] === 'stages' && path[3] === 'train' && typeof path[4] === 'number') {
    return { kind: 'groupName', value, ...range };
  }
  if (path.length === 2 && path[0] === 'layers' && location.isAtPropertyKey) return { kind: 'layerKey', value, ...range };
  return undefined;
}

function closed(text: string, node: Node): boolean {
  return node.length >= 2 && text[node.offset + node.length - 1] === '"';
}

export interface PlanCompletion {
  /** What is inserted (without quotes). */
  value: string;
  kind: 'layer' | 'pattern' | 'group';
  /** `3 layers: block1_conv1, block1_conv2, …` */
  detail: string;
  /** Sort key: the candidates matching the most layers of a family first, then model order. */
  sortText: string;
}

/**
 * Completions at a spot. Patterns: every layer name and every `prefix_*` family the names share
 * (`block1_*`), each with how many layers it matches; group names: the plan's groups; layer
 * keys: the model's layers.
 */
export function completionsAt(spot: PlanSpot, groupNames: readonly string[], model: ModelInfo | undefined): PlanCompletion[] {
  switch (spot.kind) {
    case 'groupName':
      return groupNames.map((name, i) => ({ value: name, kind: 'group', detail: `group ${i + 1} of ${groupNames.length}, bottom → top`, sortText: pad(i) }));
    case 'layerKey':
      return (model?.layers ?? []).map((l, i) => ({ value: l.name, kind: 'layer', detail: `${l.className}, depth ${l.depth}`, sortText: pad(i) }));
    case 'pattern': {
      if (model === undefined) return [];
      const names = model.layers.map((l) => l.name);
      const families = new Map<string, number>();
      model.layers.forEach((l, i) => {
        for (const prefix of familyPrefixes(l.name)) if (!families.has(prefix)) families.set(prefix, i);
      });
      const out: PlanCompletion[] = [];
      for (const [prefix, first] of families) {
        const pattern = `${prefix}*`;
        const hits = matches(pattern, names);
        if (hits.length < 2) continue;
        out.push({ value: pattern, kind: 'pattern', detail: describeHits(hits), sortText: `0${pad(first)}${pattern}` });
      }
      model.layers.forEach((l, i) => out.push({ value: escapeGlob(l.name), kind: 'layer', detail: `1 layer: ${l.className}`, sortText: `1${pad(i)}` }));
      return out;
    }
  }
}

/** The names of the plan's groups, read leniently: while the user types, the file rarely validates. */
export function groupNamesIn(text: string): string[] {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const groups = root === undefined ? undefined : findNodeAtLocation(root, ['groups']);
  return (groups?.children ?? []).flatMap((g) => {
    const name = findNodeAtLocation(g, ['name'])?.value;
    return typeof name === 'string' ? [name] : [];
  });
}

/** `block1_conv1` → ['block1_'] ; `features.3.conv` → ['features.', 'features.3.']: the prefixes ending at a separator. */
function familyPrefixes(name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < name.length - 1; i++) if (name[i] === '_' || name[i] === '.' || name[i] === '/') out.push(name.slice(0, i + 1));
  return out;
}

function matches(pattern: string, names: readonly string[]): string[] {
  let matcher: (n: string) => boolean;
  try {
    matcher = compilePattern(pattern);
  } catch {
    return [];
  }
  return names.filter(matcher);
}

function describeHits(hits: readonly string[]): string {
  const shown = hits.slice(0, 4).join(', ');
  return `${hits.length} layer${hits.length === 1 ? '' : 's'}: ${shown}${hits.length > 4 ? ', …' : ''}`;
}

const pad = (i: number): string => String(i).padStart(5, '0');

/** Markdown for the hover on a pattern: the layers it matches, the group each lands in and its effective LR. */
export function patternHover(spot: Extract<PlanSpot, { kind: 'pattern' }>, plan: Plan, model: ModelInfo): string {
  const names = model.layers.map((l) => l.name);
  const hits = matches(spot.value, names);
  const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
  if (hits.length === 0) return `${code(spot.value)} matches no layer of the model.`;
  let resolution: Resolution | undefined;
  try {
    resolution = resolveGroups(model, plan);
  } catch {
    resolution = undefined;
  }
  const groupName = plan.groups?.[spot.groupIndex]?.name ?? '?';
  const rows = hits.slice(0, 30).map((name) => {
    const audit = resolution?.groups.flatMap((g) => g.layers).find((l) => l.name === name);
    if (audit === undefined) return `| ${code(name)} | | |`;
    const lr = audit.params.find((p) => p.trainable)?.effectiveLr;
    const where = audit.group === groupName ? audit.group : `${audit.group} (taken first)`;
    return `| ${code(name)} | ${where} | ${audit.frozen ? 'frozen' : lr === undefined ? '—' : trim(lr)} |`;
  });
  return [
    `${code(spot.value)} matches ${hits.length} layer${hits.length === 1 ? '' : 's'}:`,
    '',
    '| layer | group | effective LR |',
    '|---|---|---|',
    ...rows,
    ...(hits.length > 30 ? ['', `… and ${hits.length - 30} more`] : []),
  ].join('\n');
}

const trim = (x: number): string => String(Number(x.toPrecision(3)));

/** Where the CodeLens goes: the `groups` key, or the top of the file when there is none. */
export function codeLensOffset(text: string): number {
  const root = parseTree(text, [], { allowTrailingComma: true, disallowComments: false });
  const groups = root === undefined ? undefined : findNodeAtLocation(root, ['groups']);
  return groups?.parent?.children?.[0]?.offset ?? root?.offset ?? 0;
}
