/**
 * Where a stage's frozen prefix can be cut in a layer graph that is not a single path (residual
 * adds, branches, several inputs). The cut is a layer whose output every path from the inputs to
 * the outputs passes through (it dominates the outputs), with no layer that trains at or below
 * it: then everything above it is computed from that one tensor alone, and everything at or below
 * it computes the same function of the sample in every step of the stage. The deepest such layer
 * leaves the least to compute per step. Pure: the engine (prefix-cache.ts) builds the graph from
 * a tfjs model.
 */

export interface GraphNode {
  name: string;
  /** Names of the nodes whose outputs this one reads; empty for a model input. */
  inputs: readonly string[];
}

export type GraphCut =
  | {
      cut: string;
      /** Nodes computed once, bottom first: the cut and everything below it (the inputs left out). */
      prefix: string[];
      /** Nodes computed every step, bottom first: everything between the cut and the outputs. */
      suffix: string[];
    }
  | { cut: undefined; reason: string };

/** The reason when nothing is frozen below the lowest layer that trains: no cache to speak of. */
export const FIRST_LAYER_TRAINS = 'the first layer trains';

/** Nodes in an order where each comes after every node it reads; throws on a cycle or an unknown input. */
export function topologicalOrder(nodes: readonly GraphNode[]): GraphNode[] {
  const byName = new Map(nodes.map((n) => [n.name, n]));
  const state = new Map<string, 'visiting' | 'done'>();
  const out: GraphNode[] = [];
  const visit = (n: GraphNode): void => {
    const s = state.get(n.name);
    if (s === 'done') return;
    if (s === 'visiting') throw new Error(`the layer graph has a cycle through ${n.name}`);
    state.set(n.name, 'visiting');
    for (const i of n.inputs) {
      const from = byName.get(i);
      if (from === undefined) throw new Error(`${n.name} reads ${i}, which is not in the graph`);
      visit(from);
    }
    state.set(n.name, 'done');
    out.push(n);
  };
  // the recursion goes as deep as the longest path: a few hundred layers for the largest models
  for (const n of nodes) visit(n);
  return out;
}

/**
 * The deepest cut for a stage in which the nodes named in `training` train, or why there is none.
 * `outputs` are the model's output nodes.
 */
export function frozenCut(nodes: readonly GraphNode[], outputs: readonly string[], training: ReadonlySet<string>): GraphCut {
  const order = topologicalOrder(nodes);
  const index = new Map(order.map((n, i) => [n.name, i]));
  const needed = ancestorsOf(order, outputs);
  const live = order.filter((n) => needed.has(n.name));
  if (!live.some((n) => training.has(n.name))) return { cut: undefined, reason: 'no layer trains in this stage' };

  // dominators over the live graph, with a virtual source before the inputs and a virtual sink after the outputs
  const SOURCE = '\u0000source';
  const dom = new Map<string, Set<string>>([[SOURCE, new Set([SOURCE])]]);
  for (const n of live) {
    const preds = n.inputs.length === 0 ? [SOURCE] : n.inputs;
    let d: Set<string> | undefined;
    for (const p of preds) {
      const pd = dom.get(p)!;
      d = d === undefined ? new Set(pd) : new Set([...d].filter((x) => pd.has(x)));
    }
    d!.add(n.name);
    dom.set(n.name, d!);
  }
  let sink: Set<string> | undefined;
  for (const o of outputs) {
    const od = dom.get(o)!;
    sink = sink === undefined ? new Set(od) : new Set([...sink].filter((x) => od.has(x)));
  }
  const isInput = (name: string): boolean => order[index.get(name)!]?.inputs.length === 0;
  // the dominators of the outputs form a chain, bottom → top; below a cut nothing may train
  const chain = [...(sink ?? [])].filter((x) => x !== SOURCE).sort((a, b) => index.get(a)! - index.get(b)!);
  let cut: string | undefined;
  for (const c of chain) {
    const below = ancestorsOf(order, [c]);
    if ([...below].some((x) => training.has(x))) break;
    if (!isInput(c)) cut = c;
  }
  if (cut === undefined) {
    const lowest = live.find((n) => training.has(n.name))!;
    return lowest.inputs.every((i) => isInput(i))
      ? { cut: undefined, reason: FIRST_LAYER_TRAINS }
      : { cut: undefined, reason: `no single layer output below ${lowest.name} (the lowest layer that trains) carries everything above it` };
  }
  const below = ancestorsOf(order, [cut]);
  const prefix = live.filter((n) => below.has(n.name) && n.inputs.length > 0).map((n) => n.name);
  const suffix = live.filter((n) => !below.has(n.name)).map((n) => n.name);
  return { cut, prefix, suffix };
}

/** The named nodes and every node they read from, directly or not. */
function ancestorsOf(order: readonly GraphNode[], names: readonly string[]): Set<string> {
  const byName = new Map(order.map((n) => [n.name, n]));
  const seen = new Set<string>();
  const stack = [...names];
  while (stack.length > 0) {
    const name = stack.pop()!;
    if (seen.has(name)) continue;
    seen.add(name);
    for (const i of byName.get(name)?.inputs ?? []) stack.push(i);
  }
  return seen;
}
