/**
 * Frozen-prefix caching. While a stage trains only layers above some depth, every layer below
 * the lowest trainable one computes the same function of the same sample in every epoch: its
 * weights do not move, a frozen BatchNormalization runs in inference mode (forward.ts), and no
 * gradient flows there. So the stage computes those activations once, over the whole training
 * set, and each step runs only the layers above the cut. A new stage (another cut) or other data
 * builds a new cache; nothing is kept between stages.
 *
 * When it applies, and why:
 * - Single-path models only (each layer reads the one before it, one input, one output), where
 *   "the layers below the cut" is well defined; anything with branches or skips trains as before.
 * - Not when a layer below the cut is random in training mode (Dropout, SpatialDropout,
 *   GaussianNoise, GaussianDropout, AlphaDropout with a non-zero rate). Training without a cache
 *   draws fresh noise there every step, and frozen does not mean noise-free in Keras or PyTorch;
 *   running the prefix in inference mode instead would change what the stage trains on. Keeping
 *   the semantics wins over the speed-up.
 * - Not when the cache would exceed a memory budget (default 512 MB of float32 activations).
 * - Not for masking layers (Masking, Embedding with maskZero): the mask would not cross the cut.
 * The prefix runs with `training: false`, which is what ModeControl gives frozen layers anyway,
 * so with or without the cache every step sees the same activations (test/engine/prefix-cache.test.ts
 * checks that whole runs give identical weights).
 */
import * as tf from '@tensorflow/tfjs';
import { batchTensors, type Dataset } from './data.ts';

/** Layer classes that draw random numbers in training mode. */
const STOCHASTIC = new Set(['Dropout', 'SpatialDropout1D', 'SpatialDropout2D', 'GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

export const DEFAULT_CACHE_BUDGET_BYTES = 512 * 1024 * 1024;

export type PrefixPlan =
  | { cache: true; prefix: tf.layers.Layer[]; suffix: tf.layers.Layer[] }
  | { cache: false; reason: string };

/** The model's layers as one chain in order, or why they are not one. */
function chain(model: tf.LayersModel): tf.layers.Layer[] | string {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return 'the model has several inputs or outputs';
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    const nodes = (layer as unknown as { inboundNodes: Array<{ inboundLayers: tf.layers.Layer[] }> }).inboundNodes;
    if (nodes.length !== 1) return `layer ${layer.name} is used more than once`;
    const from = nodes[0]!.inboundLayers;
    if (from.length !== 1) return `layer ${layer.name} reads ${from.length} inputs`;
    const expected = i === 0 ? undefined : layers[i - 1];
    if (i === 0 ? from[0]!.getClassName() !== 'InputLayer' : from[0] !== expected) {
      return `layer ${layer.name} does not read the layer before it`;
    }
  }
  return layers;
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
 * weight that trains this stage), or why not to.
 */
export function planPrefix(model: tf.LayersModel, trainingLayers: ReadonlySet<string>): PrefixPlan {
  const layers = chain(model);
  if (typeof layers === 'string') return { cache: false, reason: `not a single-path model (${layers})` };
  const cut = layers.findIndex((l) => trainingLayers.has(l.name));
  if (cut < 0) return { cache: false, reason: 'no layer trains in this stage' };
  if (cut === 0) return { cache: false, reason: 'the first layer trains' };
  const prefix = layers.slice(0, cut);
  const random = prefix.filter(isStochastic);
  if (random.length > 0) {
    return { cache: false, reason: `a frozen layer is random in training mode (${random.map((l) => l.name).join(', ')})` };
  }
  const masking = layers.filter(masks);
  if (masking.length > 0) return { cache: false, reason: `masking layers (${masking.map((l) => l.name).join(', ')})` };
  return { cache: true, prefix, suffix: layers.slice(cut) };
}

function applyAll(layers: readonly tf.layers.Layer[], x: tf.Tensor, training: boolean): tf.Tensor {
  let h = x;
  for (const layer of layers) h = layer.apply(h, { training }) as tf.Tensor;
  return h;
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
  const last = plan.prefix[plan.prefix.length - 1]!;
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
      const h = tf.tidy(() => applyAll(plan.prefix, x, false));
      activations.set(h.dataSync() as Float32Array, start * sampleSize);
      h.dispose();
    } finally {
      x.dispose();
      y.dispose();
    }
  }
  const suffix = plan.suffix;
  return {
    cached: {
      dataset: { ...train, x: activations, sampleShape, source: `${train.source} (through ${last.name}, cached)` },
      cachedLayers: plan.prefix.map((l) => l.name),
      bytes,
      seconds: (performance.now() - started) / 1000,
      forward: (h) => applyAll(suffix, h, true),
    },
  };
}
