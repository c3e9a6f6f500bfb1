/**
 * Frozen-prefix caching. While a stage trains only layers above some depth, every layer below
 * the lowest trainable one computes the same function of the same sample in every epoch: its
 * weights do not move, a frozen BatchNormalization runs in inference mode (forward.ts), and no
 * gradient flows there. So the stage computes those activations once, over the whole training
 * set, and each step runs only the layers above the cut. A new stage (another cut) or other data
 * builds a new cache; nothing is kept between stages.
 *
 * When it applies, and why:
 * - The cut is the deepest layer whose output every path from the input to the output passes
 *   through, with nothing that trains at or below it (core/layer-graph.ts): in a single-path
 *   model the layer under the lowest trainable one; in a residual network (MobileNetV2) the add
 *   or pooling below the lowest trainable block. When no single tensor carries everything above
 *   (a skip from below the trainable layers to above them), the stage trains without a cache.
 * - One input and one output, no layer used twice and none with several outputs: what the
 *   stage's dataset and forward pass can express.
 * - Not when a layer below the cut is random in training mode (Dropout, SpatialDropout,
 *   GaussianNoise, GaussianDropout, AlphaDropout with a non-zero rate). Training without a cache
 *   draws fresh noise there every step, and frozen does not mean noise-free in Keras or PyTorch;
 *   running the prefix in inference mode instead would change what the stage trains on. Keeping
 *   the semantics wins over the speed-up.
 * - Not when the cache would exceed a memory budget (default 512 MB of float32 activations).
 * - Not for masking layers (Masking, Embedding with maskZero): the mask would not cross the cut.
 * - A BatchNorm layer whose gamma/beta train this stage is never below the cut, even with
 *   `batchNorm: "inference"`: deterministic is not enough, its output changes every step.
 * The prefix runs with `training: false`, which is what ModeControl gives frozen layers anyway,
 * so with or without the cache every step sees the same activations (test/engine/prefix-cache.test.ts
 * checks that whole runs give identical weights).
 */
import * as tf from '@tensorflow/tfjs';
import { frozenCut, type GraphNode } from '../core/layer-graph.ts';
import { batchTensors, type Dataset } from './data.ts';

/** Layer classes that draw random numbers in training mode. */
const STOCHASTIC = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

export const DEFAULT_CACHE_BUDGET_BYTES = 512 * 1024 * 1024;

export type PrefixPlan =
  | { cache: true; prefix: tf.layers.Layer[]; suffix: tf.layers.Layer[]; cut: tf.layers.Layer }
  | { cache: false; reason: string };

interface Inbound {
  inboundLayers: tf.layers.Layer[];
  callArgs?: Record<string, unknown>;
}

const inboundOf = (layer: tf.layers.Layer): Inbound[] => (layer as unknown as { inboundNodes: Inbound[] }).inboundNodes;

/** The model's layer graph (every layer reachable from its output), or why it cannot be cut. */
function layerGraph(model: tf.LayersModel): { nodes: GraphNode[]; layers: Map<string, tf.layers.Layer>; output: string } | string {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return 'the model has several inputs or outputs';
  const layers = new Map<string, tf.layers.Layer>();
  const nodes: GraphNode[] = [];
  const outputLayer = model.outputs[0]!.sourceLayer as tf.layers.Layer;
  const stack = [outputLayer];
  while (stack.length > 0) {
    const layer = stack.pop()!;
    if (layers.has(layer.name)) continue;
    layers.set(layer.name, layer);
    const inbound = inboundOf(layer);
    if (inbound.length !== 1) return `layer ${layer.name} is used more than once`;
    const from = inbound[0]!.inboundLayers;
    if (Array.isArray(layer.output) && layer.output.length !== 1) return `layer ${layer.name} has several outputs`;
    nodes.push({ name: layer.name, inputs: layer.getClassName() === 'InputLayer' ? [] : from.map((l) => l.name) });
    stack.push(...from);
  }
  return { nodes, layers, output: outputLayer.name };
}

function isStochastic(layer: tf.layers.Layer): boolean {
  if (!STOCHASTIC.has(layer.getClassName())) return false;
  const config = layer.getConfig() as { rate?: unknown; stddev?: unknown };
  const amount = typeof config.rate === 'number' ? config.rate : typeof config.stddev === 'number' ? config.stddev : 1;
  return amount > 0;
}

function masks(layer: tf.layers.Layer): boolean {
  const config = layer.getConfig() as { maskZero?: unknown };
  return layer.getClassName() === 'Masking' || config.maskZero === true;
}

/**
 * Where to cut for a stage that trains the layers named in `trainingLayers` (layers with a
 * weight that trains this stage), or why not to. A BatchNorm layer whose gamma/beta train is in
 * `trainingLayers` and so never below the cut, whatever its batchNorm mode; frozen and
 * not-yet-training ones below it run in inference mode with or without the cache (forward.ts).
 */
export function planPrefix(model: tf.LayersModel, trainingLayers: ReadonlySet<string>): PrefixPlan {
  const graph = layerGraph(model);
  if (typeof graph === 'string') return { cache: false, reason: `the layer graph cannot be cut (${graph})` };
  const found = frozenCut(graph.nodes, [graph.output], trainingLayers);
  if (found.cut === undefined) return { cache: false, reason: found.reason };
  const prefix = found.prefix.map((n) => graph.layers.get(n)!);
  const random = prefix.filter(isStochastic);
  if (random.length > 0) {
    return { cache: false, reason: `a frozen layer is random in training mode (${random.map((l) => l.name).join(', ')})` };
  }
  const masking = [...graph.layers.values()].filter(masks);
  if (masking.length > 0) return { cache: false, reason: `masking layers (${masking.map((l) => l.name).join(', ')})` };
  return { cache: true, prefix, suffix: found.suffix.map((n) => graph.layers.get(n)!), cut: graph.layers.get(found.cut)! };
}

/**
 * Runs `layers` (bottom first, each reading only layers in the list or `from`) on `x`, the
 * output of `from` (or of the model's input layer), and returns the last one's output.
 */
function runGraph(layers: readonly tf.layers.Layer[], from: tf.layers.Layer | undefined, x: tf.Tensor, training: boolean): tf.Tensor {
  const values = new Map<string, tf.Tensor>();
  if (from !== undefined) values.set(from.name, x);
  let last = x;
  for (const layer of layers) {
    const node = inboundOf(layer)[0]!;
    const args = node.inboundLayers.map((l) => values.get(l.name) ?? (l.getClassName() === 'InputLayer' ? x : undefined));
    if (args.some((a) => a === undefined)) throw new Error(`layer ${layer.name} reads a tensor outside the cached part of the graph`);
    const input = args.length === 1 ? args[0]! : (args as tf.Tensor[]);
    last = layer.apply(input, { ...(node.callArgs ?? {}), training }) as tf.Tensor;
    values.set(layer.name, last);
  }
  return last;
}

/** A stage's frozen prefix, computed once: the dataset of its outputs and the forward pass above it. */
export interface FrozenPrefix {
  /** The training set as the first trained layer sees it (same order, same targets). */
  dataset: Dataset;
  /** Names of the layers computed once, bottom first. */
  cachedLayers: string[];
  bytes: number;
  seconds: number;
  /** The training-mode forward pass of the layers above the cut, from cached activations. */
  forward(activations: tf.Tensor): tf.Tensor;
}

export type PrefixOutcome = { cached: FrozenPrefix } | { cached: undefined; reason: string };

/**
 * Computes the prefix activations of every training sample, in file order, `batchSize` at a
 * time, or says why the stage trains without a cache.
 */
export function buildFrozenPrefix(
  model: tf.LayersModel,
  trainingLayers: ReadonlySet<string>,
  train: Dataset,
  batchSize: number,
  budgetBytes = DEFAULT_CACHE_BUDGET_BYTES,
): PrefixOutcome {
  const plan = planPrefix(model, trainingLayers);
  if (!plan.cache) return { cached: undefined, reason: plan.reason };
  const last = plan.cut;
  const shape = (last.outputShape as Array<number | null>).slice(1);
  if (shape.some((d) => typeof d !== 'number')) return { cached: undefined, reason: `layer ${last.name} has an output of unknown size` };
  const sampleShape = shape as number[];
  const sampleSize = sampleShape.reduce((a, b) => a * b, 1);
  const bytes = train.n * sampleSize * 4;
  if (bytes > budgetBytes) {
    return { cached: undefined, reason: `the activations would take ${(bytes / 2 ** 20).toFixed(0)} MB (budget ${(budgetBytes / 2 ** 20).toFixed(0)} MB)` };
  }
  const started = performance.now();
  const activations = new Float32Array(train.n * sampleSize);
  for (let start = 0; start < train.n; start += batchSize) {
    const indices = Array.from({ length: Math.min(batchSize, train.n - start) }, (_, i) => start + i);
    const { x, y } = batchTensors(train, indices);
    try {
      const h = tf.tidy(() => runGraph(plan.prefix, undefined, x, false));
      activations.set(h.dataSync() as Float32Array, start * sampleSize);
      h.dispose();
    } finally {
      x.dispose();
      y.dispose();
    }
  }
  const { suffix, cut } = plan;
  return {
    cached: {
      dataset: { ...train, x: activations, sampleShape, source: `${train.source} (through ${last.name}, cached)` },
      cachedLayers: plan.prefix.map((l) => l.name),
      bytes,
      seconds: (performance.now() - started) / 1000,
      forward: (h) => runGraph(suffix, cut, h, true),
    },
  };
}
