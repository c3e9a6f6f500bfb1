/**
 * Automatic grouping: reads a model's block structure from its layer names (the only structure
 * a converted model keeps) and proposes a few groups, bottom → top, for a preset to spread
 * multipliers over. (The plan `layerwise init` writes is built in init-plan.ts.)
 */
import { LayerwiseError } from './errors.ts';
import { isNormLayer, layerParamCount, type LayerInfo, type ModelInfo } from './model-info.ts';
import { compilePattern, escapeGlob, isWildcardPattern } from './patterns.ts';
import { DEFAULT_GROUP, type GroupSpec } from './plan.ts';

export const HEAD_GROUP = 'head';
export const EMBEDDINGS_GROUP = 'embeddings';
export const DEFAULT_MAX_GROUPS = 4;

const EMBED_RE = /embed/i;

/**
 * The model's head among its weighted layers: the layers a plan's `head` added, else the last
 * weighted layer (with any normalisation layers right after it, which belong to it).
 */
export function headLayers(model: ModelInfo): LayerInfo[] {
  const weighted = model.layers.filter(hasWeights);
  const added = weighted.filter((l) => l.isNewHead === true);
  if (added.length > 0) return added;
  let start = weighted.length - 1;
  while (start > 0 && isNormLayer(weighted[start]!)) start--;
  // a PyTorch head is a module (`classifier.fc1`, `classifier.fc2`): take all of its trailing layers
  const top = model.kind === 'pytorch' ? topModule(weighted[start]?.name) : undefined;
  if (top !== undefined) {
    let first = start;
    while (first > 0 && topModule(weighted[first - 1]!.name) === top) first--;
    // only a small module at the top is a head; a model nested under one name (`bert.…`) is not
    const small = weighted.length - first <= Math.max(3, Math.floor(weighted.length / 10));
    if (small && weighted.slice(0, first).every((l) => topModule(l.name) !== top)) start = first;
  }
  return weighted.slice(Math.max(0, start));
}

/** The first component of a dotted module path, when the path has more than one. */
function topModule(name: string | undefined): string | undefined {
  const dot = name?.indexOf('.') ?? -1;
  return name !== undefined && dot > 0 ? name.slice(0, dot) : undefined;
}

export interface AutoGroupOptions {
  /** At most this many groups, head included (default 4). */
  maxGroups?: number;
}

export interface Block {
  signature: string;
  key: string;
  n: number;
  stem: string;
  family: 'blocks' | 'layers' | 'stages';
}

interface Draft {
  name: string;
  layers: LayerInfo[];
  /** The head and embeddings groups keep their names; others give way. */
  fixed?: boolean;
}

// Words that number a model's blocks in common naming schemes: MobileNet `block_3_…`,
// EfficientNet `block3a_…`, VGG `block1_conv1`, ResNet `conv2_block1_…` and `res2a_…`,
// BERT `encoder/layer_2/…` and `layer.4.`, GPT-2 `h.5.`, ViT `blocks.0.`, MobileNet v1
// `conv_dw_3`, `stage2`.
const BLOCK_RE =
  /(^|[/._-])(blocks?|layers?|stages?|h|encoderblock|encoder_layer|decoder_layer|resblocks?|res|conv_dw|conv_pw|conv)([._/-]*)(\d+)([a-z](?=_))?(?=$|[/._-])/gi;
const LETTER_WORDS = new Set(['block', 'blocks', 'stage', 'stages', 'res']);

/** The block a layer name places the layer in, if its name shows one. */
export function blockOf(name: string): Block | undefined {
  for (const m of name.matchAll(BLOCK_RE)) {
    const [whole, lead = '', word = '', sep = '', digits = '', letter] = m;
    const lower = word.toLowerCase();
    // `conv2d_1` is a Keras default name, not block 2 with sub-block "d".
    if (letter !== undefined && !LETTER_WORDS.has(lower)) continue;
    const canonical = lower === 'conv_pw' ? 'conv_dw' : lower;
    const prefix = name.slice(0, m.index) + lead;
    const signature = `${prefix}${canonical}|${sep}`;
    const n = Number(digits);
    return {
      signature,
      key: `${signature}#${n}`,
      n,
      stem: name.slice(0, m.index + whole.length),
      family: familyOf(canonical),
    };
  }
  return undefined;
}

function familyOf(word: string): Block['family'] {
  if (/^(layers?|encoder_layer|decoder_layer)$/.test(word)) return 'layers';
  if (/^(stages?|conv|res)$/.test(word)) return 'stages';
  return 'blocks';
}

/** A contiguous run of weighted layers that stays together in every grouping. */
export interface StructureUnit {
  /** `stem`/`top`: below/above the named blocks; `layer`: a layer (with the norm layers after it) when no blocks are named. */
  kind: 'embeddings' | 'stem' | 'block' | 'top' | 'layer';
  /** The block's number in the names. */
  n?: number;
  layers: LayerInfo[];
}

/** What the layer names tell about a model, bottom → top. */
export interface ModelStructure {
  /** Layers named like embeddings at the bottom (may be empty). */
  embeddings: LayerInfo[];
  /** The weighted layers between the embeddings and the head, in units. */
  units: StructureUnit[];
  head: LayerInfo[];
  /** How the names count blocks, when they do. */
  family?: Block['family'];
  /** Every layer (weighted or not) whose name places it in one of the chosen blocks. */
  blocksByLayer: Map<LayerInfo, Block>;
}

export function modelStructure(model: ModelInfo): ModelStructure {
  const head = headLayers(model);
  const headSet = new Set(head);
  const body = model.layers.filter((l) => hasWeights(l) && !headSet.has(l));
  const blocksByLayer = new Map<LayerInfo, Block>();
  const signature = chooseSignature(body);
  if (signature === undefined) return { ...layerUnits(body), head, blocksByLayer };
  for (const l of model.layers) {
    const b = blockOf(l.name);
    if (b?.signature === signature) blocksByLayer.set(l, b);
  }
  const lastBlockDepth = Math.max(...body.filter((l) => blocksByLayer.has(l)).map((l) => l.depth));
  const below: LayerInfo[] = [];
  const blocks: StructureUnit[] = [];
  const top: LayerInfo[] = [];
  const unitByKey = new Map<string, StructureUnit>();
  let current: StructureUnit | undefined;
  for (const l of body) {
    const b = blocksByLayer.get(l);
    if (b !== undefined) {
      let unit = unitByKey.get(b.key);
      if (unit === undefined) {
        unit = { kind: 'block', n: b.n, layers: [] };
        unitByKey.set(b.key, unit);
        blocks.push(unit);
      }
      unit.layers.push(l);
      current = unit;
    } else if (current === undefined) below.push(l);
    else if (l.depth > lastBlockDepth) top.push(l);
    // a layer between blocks without a block name (a projection, a shortcut) joins the block below it
    else current.layers.push(l);
  }
  const embeddings = below.some((l) => EMBED_RE.test(l.name)) ? below : [];
  const units: StructureUnit[] = [
    ...(below.length > 0 && embeddings.length === 0 ? [{ kind: 'stem' as const, layers: below }] : []),
    ...blocks,
    ...(top.length > 0 ? [{ kind: 'top' as const, layers: top }] : []),
  ];
  return { embeddings, units, head, family: blocksByLayer.values().next().value?.family ?? 'blocks', blocksByLayer };
}

/** Without block names: one unit per layer, a normalisation layer staying with the layer below it. */
function layerUnits(body: readonly LayerInfo[]): Pick<ModelStructure, 'embeddings' | 'units'> {
  let embedEnd = 0;
  while (embedEnd < body.length && (EMBED_RE.test(body[embedEnd]!.name) || isNormLayer(body[embedEnd]!))) embedEnd++;
  const hasEmbeddings = body.slice(0, embedEnd).some((l) => EMBED_RE.test(l.name)) && embedEnd < body.length;
  const embeddings = hasEmbeddings ? body.slice(0, embedEnd) : [];
  const units: StructureUnit[] = [];
  for (const l of body.slice(embeddings.length)) {
    const last = units[units.length - 1];
    if (last !== undefined && isNormLayer(l)) last.layers.push(l);
    else units.push({ kind: 'layer', layers: [l] });
  }
  return { embeddings, units };
}

/**
 * Groups for `model`, bottom → top: the embeddings (when the bottom layers are named so), runs
 * of the blocks the layer names show, merged so there are at most `maxGroups`, and the head.
 * Without block names, contiguous chunks of about equal parameter count. Every layer is in
 * exactly one group (layers without weights go with the weighted layer below them) and no
 * group is empty; patterns are globs like `block_1_*` where the names allow, else exact names.
 */
export function autoGroups(model: ModelInfo, opts: AutoGroupOptions = {}): GroupSpec[] {
  const maxGroups = opts.maxGroups ?? DEFAULT_MAX_GROUPS;
  if (!Number.isInteger(maxGroups) || maxGroups < 1) {
    throw new LayerwiseError(`must be a whole number ≥ 1 (got ${maxGroups})`, { field: 'maxGroups' });
  }
  if (!model.layers.some(hasWeights)) return [];
  if (maxGroups === 1) return [{ name: 'model', layers: ['*'] }];

  const structure = modelStructure(model);
  const drafts: Draft[] = [];
  let slots = maxGroups - 1;
  let units = structure.units;
  if (structure.embeddings.length > 0) {
    if (units.length > 0 && slots >= 2) {
      drafts.push({ name: EMBEDDINGS_GROUP, layers: structure.embeddings, fixed: true });
      slots--;
    } else units = [{ kind: 'embeddings', layers: structure.embeddings }, ...units];
  }
  if (units.length > 0) {
    drafts.push(...(structure.family !== undefined ? blockDrafts(units, slots, structure.family) : paramDrafts(units, slots)));
  }
  drafts.push({ name: HEAD_GROUP, layers: structure.head, fixed: true });
  uniqueNames(drafts);
  return groupPatterns(model, drafts, structure.blocksByLayer);
}

/** The naming scheme that numbers the most weighted body layers, if any numbers ≥ 2 blocks. */
function chooseSignature(body: readonly LayerInfo[]): string | undefined {
  const stats = new Map<string, { layers: number; numbers: Set<number> }>();
  for (const l of body) {
    const b = blockOf(l.name);
    if (b === undefined) continue;
    const s = stats.get(b.signature) ?? { layers: 0, numbers: new Set<number>() };
    s.layers++;
    s.numbers.add(b.n);
    stats.set(b.signature, s);
  }
  let best: string | undefined;
  let bestLayers = 0;
  for (const [signature, s] of stats) {
    if (s.numbers.size >= 2 && s.layers > bestLayers) {
      best = signature;
      bestLayers = s.layers;
    }
  }
  return best;
}

/**
 * Runs of about equally many blocks. What lies below/above the blocks (stem, top) gets a group
 * of its own while there are more groups than blocks — the top first, nearest the head — and
 * otherwise joins the first/last run.
 */
function blockDrafts(units: readonly StructureUnit[], slots: number, family: Block['family']): Draft[] {
  const blocks = units.filter((u) => u.kind === 'block');
  const stem = units.slice(0, units.indexOf(blocks[0]!));
  const top = units.slice(units.indexOf(blocks[blocks.length - 1]!) + 1);
  const topAlone = top.length > 0 && slots > blocks.length;
  const stemAlone = stem.length > 0 && slots - (topAlone ? 1 : 0) > blocks.length;
  const below = stemAlone ? [] : stem;
  const above = topAlone ? [] : top;
  const runCount = slots - (topAlone ? 1 : 0) - (stemAlone ? 1 : 0);
  const runs = splitEvenly(blocks, Math.max(1, Math.min(runCount, blocks.length)));
  const drafts: Draft[] = runs.map((run, c) => {
    const first = run[0]!;
    const last = run[run.length - 1]!;
    const parts = [run.length === 1 ? `${family.slice(0, -1)} ${first.n}` : `${family} ${first.n}-${last.n}`];
    const layers = run.flatMap((u) => u.layers);
    if (c === 0) {
      parts.unshift(...below.map((u) => u.kind));
      layers.unshift(...below.flatMap((u) => u.layers));
    }
    if (c === runs.length - 1) {
      parts.push(...above.map((u) => u.kind));
      layers.push(...above.flatMap((u) => u.layers));
    }
    return { name: parts.join(' + '), layers };
  });
  const own = (us: StructureUnit[]): Draft => {
    const layers = us.flatMap((u) => u.layers);
    return { name: layers.length === 1 ? layers[0]!.name : us.map((u) => u.kind).join(' + '), layers };
  };
  return [...(stemAlone ? [own(stem)] : []), ...drafts, ...(topAlone ? [own(top)] : [])];
}

/** Without block names: contiguous chunks of about equal parameter count, named by their layers. */
function paramDrafts(units: readonly StructureUnit[], slots: number): Draft[] {
  const k = Math.max(1, Math.min(slots, units.length));
  return splitByParams(units, k, (u) => u.layers.reduce((n, l) => n + layerParamCount(l), 0)).map((chunk) => {
    const layers = chunk.flatMap((u) => u.layers);
    const first = chunk[0]!;
    const last = chunk[chunk.length - 1]!;
    const name = (u: StructureUnit): string => (u.kind === 'embeddings' ? EMBEDDINGS_GROUP : u.layers[0]!.name);
    return { name: chunk.length === 1 ? name(first) : `${name(first)}-${name(last)}`, layers };
  });
}

/** k contiguous chunks of `items`, sizes differing by at most one (the larger ones at the bottom). */
function splitEvenly<T>(items: readonly T[], k: number): T[][] {
  const out: T[][] = [];
  const size = Math.floor(items.length / k);
  const extra = items.length % k;
  let at = 0;
  for (let c = 0; c < k; c++) {
    const n = size + (c < extra ? 1 : 0);
    out.push(items.slice(at, at + n));
    at += n;
  }
  return out;
}

/**
 * k contiguous, non-empty chunks whose sizes are as equal as the items allow: minimises the
 * sum of squared chunk sizes, so one huge layer gets a chunk of its own and the small ones
 * share the rest.
 */
export function splitByParams<T>(items: readonly T[], k: number, size: (item: T) => number): T[][] {
  const n = items.length;
  if (k >= n) return items.map((item) => [item]);
  const prefix = [0];
  for (const item of items) prefix.push(prefix[prefix.length - 1]! + size(item));
  const sum = (i: number, j: number): number => prefix[j]! - prefix[i]!;
  // cost[c][i]: best cost of the first i items in c chunks; cut[c][i]: where its last chunk starts.
  const cost: number[][] = [Array.from({ length: n + 1 }, (_, i) => (i === 0 ? 0 : Infinity))];
  const cut: number[][] = [[]];
  for (let c = 1; c <= k; c++) {
    const row: number[] = Array.from({ length: n + 1 }, () => Infinity);
    const from: number[] = Array.from({ length: n + 1 }, () => 0);
    for (let i = c; i <= n; i++) {
      for (let j = c - 1; j < i; j++) {
        const v = cost[c - 1]![j]! + sum(j, i) ** 2;
        if (v < row[i]!) {
          row[i] = v;
          from[i] = j;
        }
      }
    }
    cost.push(row);
    cut.push(from);
  }
  const chunks: T[][] = [];
  let end = n;
  for (let c = k; c >= 1; c--) {
    const start = cut[c]![end]!;
    chunks.unshift(items.slice(start, end));
    end = start;
  }
  return chunks;
}

/** Gives body groups named after a layer (`head`, `default`, …) a suffix; the head keeps "head". */
function uniqueNames(drafts: Draft[]): void {
  const seen = new Set<string>([DEFAULT_GROUP, ...drafts.filter((d) => d.fixed === true).map((d) => d.name)]);
  for (const d of drafts) {
    if (d.fixed === true) continue;
    let name = d.name;
    for (let i = 2; seen.has(name); i++) name = `${d.name} (${i})`;
    d.name = name;
    seen.add(name);
  }
}

/**
 * Turns drafts of weighted layers (bottom → top, the head last) into group specs covering every
 * layer: a layer without weights joins its named block's group, else the group of the layer
 * below it (the first group when there is none); a new-head layer always joins the head. Block
 * layers get their block's glob; a glob that would also match a layer of another group gives
 * way to exact names, so each layer matches exactly one group.
 */
export function groupPatterns(
  model: ModelInfo,
  drafts: ReadonlyArray<{ name: string; layers: readonly LayerInfo[] }>,
  blocksByLayer: ReadonlyMap<LayerInfo, Block>,
): GroupSpec[] {
  const intended = new Map<LayerInfo, number>();
  drafts.forEach((d, g) => d.layers.forEach((l) => intended.set(l, g)));
  const groupOfBlock = new Map<string, number>();
  for (const [l, b] of blocksByLayer) {
    const g = intended.get(l);
    if (g !== undefined && !groupOfBlock.has(b.key)) groupOfBlock.set(b.key, g);
  }
  const headIndex = drafts.length - 1;
  let previous: number | undefined;
  const pending: LayerInfo[] = [];
  for (const l of model.layers) {
    let g = intended.get(l);
    if (g === undefined) {
      const block = blocksByLayer.get(l);
      // an unweighted layer named as part of a block (`block_3_relu`) goes with that block
      g = l.isNewHead === true ? headIndex : ((block && groupOfBlock.get(block.key)) ?? previous);
      if (g === undefined) {
        pending.push(l);
        continue;
      }
      intended.set(l, g);
    }
    previous = g;
    for (const p of pending.splice(0)) intended.set(p, g);
  }

  const members: LayerInfo[][] = drafts.map(() => []);
  for (const l of model.layers) members[intended.get(l)!]!.push(l);
  return members.map((layers, g) => ({
    name: drafts[g]!.name,
    layers: globPatterns(layers, blocksByLayer).flatMap(({ pattern, covers }) => {
      if (!isWildcardPattern(pattern)) return [pattern];
      const matches = compilePattern(pattern);
      // every layer must match exactly one group, so a glob reaching into another group gives
      // way to the exact names it stood for
      const strays = model.layers.some((l) => intended.get(l) !== g && matches(l.name));
      return strays ? covers.map((l) => escapeGlob(l.name)) : [pattern];
    }),
  }));
}

/** Patterns for a group's layers: one glob per named block stem, exact names for the rest. */
function globPatterns(
  layers: readonly LayerInfo[],
  blocksByLayer: ReadonlyMap<LayerInfo, Block>,
): Array<{ pattern: string; covers: LayerInfo[] }> {
  const out: Array<{ pattern: string; covers: LayerInfo[] }> = [];
  for (const l of layers) {
    const b = blocksByLayer.get(l);
    const pattern =
      b !== undefined && l.name !== b.stem && !isWildcardPattern(b.stem)
        ? `${b.stem}${l.name[b.stem.length]}*`
        : escapeGlob(l.name);
    const entry = out.find((e) => e.pattern === pattern);
    if (entry) entry.covers.push(l);
    else out.push({ pattern, covers: [l] });
  }
  return out;
}

function hasWeights(l: LayerInfo): boolean {
  return l.weights.length > 0;
}
