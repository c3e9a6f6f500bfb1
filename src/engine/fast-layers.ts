/**
 * Faster `call`s for three tfjs-layers classes, patched on the class prototypes so that every
 * model gets them: one loaded for a run, one built by a bench or a test, a new head. Outside
 * training BatchNormalization and Conv2D run tfjs-layers' own code unchanged.
 *
 * - BatchNormalization (training mode, channels last): one kernel forward and one back instead
 *   of moments + FusedBatchNorm and the tape's per-op gradients (kernels/batch-norm-train.ts),
 *   with tfjs-layers' semantics otherwise: the same epsilon, the biased batch variance, the same
 *   moving-average formula in the same order. Other axes and ranks keep the original call; so do
 *   backends and tensors the kernels do not cover (cpu, tfjs-node, not float32), except a layer
 *   with `scale` or `center` off, which stock tfjs cannot differentiate on any backend (the
 *   missing weight reaches the tape as an absent input): that one trains through plain ops
 *   (normalizeComposed).
 * - LayerNormalization over the last axis (training and inference alike: it has no moving
 *   statistics, so both compute the same thing): one kernel forward and one back
 *   (kernels/layer-norm-train.ts) instead of moments, four Tiles and FusedBatchNorm with their
 *   per-op gradients. A [32, 32, 64] layer on wasm: forward + backward ~0.17 instead of ~0.87 ms,
 *   inference alone 35 instead of 410 µs. Other axes, ranks outside 2–4 and tensors the kernels
 *   do not cover run the original call, except, while gradients are recorded, a layer with
 *   `scale` or `center` off (as above: plain ops where the kernels do not run).
 * - Conv2D (while gradients are recorded): tf.conv2d + bias add + activation instead of
 *   tf.fused.conv2d, whose custom gradient computes the input gradient eagerly. The stock conv2d
 *   gradient is lazy per input and the tape prunes inputs no trained variable feeds, so a
 *   model's first convolution no longer back-propagates into its data (1.6 ms of a 41 ms CNN
 *   step on wasm; the bias add it costs, 0.5 ms). DepthwiseConv2D and SeparableConv2D already
 *   use unfused ops, whose gradients are lazy.
 *
 * - the 'gelu' activation (erf form; a Dense layer applies it after its product): one kernel
 *   forward and one back (kernels/gelu.ts) instead of five ops and their tape gradients, Erf and
 *   Exp among them. Where the kernels do not run (cpu, tfjs-node, not float32) tfjs's own ops do.
 *
 * - ReLU with maxValue 6: one relu6 instead of relu + clipByValue (reluCall); and on the output
 *   of a training BatchNormalization, while gradients are recorded, one op with the batch norm
 *   whose gradient masks inside the BatchNorm gradient instead of making a masked copy first
 *   (kernels/batch-norm-train.ts batchNormRelu6).
 *
 * ModeControl (forward.ts) binds a BatchNormalization layer's `call` when it is constructed:
 * install these patches first (selectBackend does, before any model exists) so that its
 * inference-mode override wraps the patched call, and frozen layers keep their statistics.
 */
import * as tf from '@tensorflow/tfjs';
import { batchNormRelu6, batchNormTrain, batchNormTrainApplies, type BatchNormTraining } from './kernels/batch-norm-train.ts';
import { gelu } from './kernels/gelu.ts';
import { layerNormTrain, layerNormTrainApplies } from './kernels/layer-norm-train.ts';

type Kwargs = Record<string, unknown>;
type CallFn = (this: tf.layers.Layer, inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs) => tf.Tensor | tf.Tensor[];

/** The BatchNormalization fields the patch reads (tfjs-layers keeps them public on the instance). */
interface BatchNormFields {
  axis: number;
  momentum: number;
  epsilon: number;
  gamma?: tf.LayerVariable | null;
  beta?: tf.LayerVariable | null;
  movingMean: tf.LayerVariable;
  movingVariance: tf.LayerVariable;
}

/** The LayerNormalization fields the patch reads; `axis` is a list of non-negative axes once the layer is built. */
interface LayerNormFields {
  axis: number | number[];
  epsilon: number;
  gamma?: tf.LayerVariable | null;
  beta?: tf.LayerVariable | null;
}

/** The Conv fields the patch reads. */
interface ConvFields {
  rank: number;
  kernel: tf.LayerVariable;
  bias: tf.LayerVariable | null;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number | number[];
  activation: { apply(x: tf.Tensor): tf.Tensor } | null;
}

let enabled = true;
let fuseBatchNormRelu6 = true;
const originals = new Map<string, CallFn>();

/**
 * Training BatchNormalization outputs (recorded while gradients are recorded) and what made
 * them, for a ReLU6 that reads one (reluCall). Weak: an entry goes with its tensor.
 */
const batchNormOutputs = new WeakMap<tf.Tensor, BatchNormTraining>();

/** Switches the patched paths off (tfjs-layers' own calls run) and back on: for tests and benches that compare both. */
export function useFastLayers(on: boolean): void {
  enabled = on;
}

/** Switches the fused BatchNorm → ReLU6 (reluCall) off and back on, for tests and benches that compare both. */
export function useBatchNormRelu6Fusion(on: boolean): void {
  fuseBatchNormRelu6 = on;
}

function singleTensor(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor | undefined {
  if (!Array.isArray(inputs)) return inputs;
  return inputs.length === 1 ? inputs[0] : undefined;
}

/** tfjs-layers' doMovingAverage: variable − (variable − value) · (1 − momentum). */
function movingAverage(variable: tf.LayerVariable, value: tf.Tensor, momentum: number): void {
  tf.tidy(() => {
    const decay = 1 - momentum;
    const orig = variable.read();
    const updateDelta = tf.mul(tf.sub(orig, value), decay);
    variable.write(tf.sub(orig, updateDelta));
  });
}

/**
 * (x − mean) / √(variance + ε) · gamma + beta in plain differentiable ops, for a layer with
 * `scale` or `center` off where the SIMD kernels do not run (cpu, tfjs-node): tfjs-layers hands
 * the missing weight to FusedBatchNorm as an absent input, and the tape then fails on it in the
 * backward pass, so such a layer cannot train there otherwise.
 */
function normalizeComposed(
  x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, gamma: tf.Tensor | undefined, beta: tf.Tensor | undefined, epsilon: number,
): tf.Tensor {
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
  if (gamma !== undefined) y = tf.mul(y, gamma);
  if (beta !== undefined) y = tf.add(y, beta);
  return y;
}

function batchNormalizationCall(original: CallFn): CallFn {
  return function (this: tf.layers.Layer, inputs, kwargs) {
    // tfjs-layers: inference unless `training` is truthy
    if (!enabled || !kwargs['training']) return original.call(this, inputs, kwargs);
    const layer = this as unknown as BatchNormFields;
    const x = singleTensor(inputs);
    // tfjs-layers normalises ranks 2–4 only; other ranks and axes keep its code (and its errors)
    if (x === undefined || x.rank < 2 || x.rank > 4 || (layer.axis >= 0 ? layer.axis : layer.axis + x.rank) !== x.rank - 1) {
      return original.call(this, inputs, kwargs);
    }
    const gamma = layer.gamma?.read();
    const beta = layer.beta?.read();
    if (!batchNormTrainApplies(x, gamma, beta)) {
      if (gamma !== undefined && beta !== undefined) return original.call(this, inputs, kwargs);
      return tf.tidy(() => {
        const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
        const { mean, variance } = tf.moments(x, axes);
        movingAverage(layer.movingMean, mean, layer.momentum);
        movingAverage(layer.movingVariance, variance, layer.momentum);
        return normalizeComposed(x, mean, variance, gamma, beta, layer.epsilon);
      });
    }
    // the statistics outlive this call only while a gradient is recorded: a following ReLU6 then
    // reads them (reluCall), and the recording's scope disposes them with the step
    const recording = fuseBatchNormRelu6 && tf.engine().state.gradientDepth > 0;
    const { y, mean, variance } = tf.tidy((): { y: tf.Tensor; mean?: tf.Tensor; variance?: tf.Tensor } => {
      const r = batchNormTrain(x, gamma, beta, layer.epsilon);
      if (r === undefined) throw new Error(`${this.name}: the training batch-norm kernel refused inputs it accepted`);
      movingAverage(layer.movingMean, r.mean, layer.momentum);
      movingAverage(layer.movingVariance, r.variance, layer.momentum);
      return recording ? r : { y: r.y };
    });
    if (mean !== undefined && variance !== undefined) batchNormOutputs.set(y, { y, x, gamma, beta, mean, variance, epsilon: layer.epsilon });
    return y;
  };
}

function layerNormalizationCall(original: CallFn): CallFn {
  return function (this: tf.layers.Layer, inputs, kwargs) {
    if (!enabled) return original.call(this, inputs, kwargs);
    const layer = this as unknown as LayerNormFields;
    const x = singleTensor(inputs);
    const axes = typeof layer.axis === 'number' ? [layer.axis] : layer.axis;
    // tfjs-layers normalises ranks 2–4 only; other ranks and axes keep its code (and its errors)
    if (x === undefined || x.rank < 2 || x.rank > 4 || axes.length !== 1 || (axes[0]! >= 0 ? axes[0]! : axes[0]! + x.rank) !== x.rank - 1) {
      return original.call(this, inputs, kwargs);
    }
    const gamma = layer.gamma?.read();
    const beta = layer.beta?.read();
    if (!layerNormTrainApplies(x, gamma, beta)) {
      if ((gamma !== undefined && beta !== undefined) || tf.engine().state.gradientDepth === 0) return original.call(this, inputs, kwargs);
      return tf.tidy(() => {
        const { mean, variance } = tf.moments(x, [x.rank - 1], true);
        return normalizeComposed(x, mean, variance, gamma, beta, layer.epsilon);
      });
    }
    const y = layerNormTrain(x, gamma, beta, layer.epsilon);
    if (y === undefined) throw new Error(`${this.name}: the layer-norm kernel refused inputs it accepted`);
    return y;
  };
}

function conv2dCall(original: CallFn): CallFn {
  return function (this: tf.layers.Layer, inputs, kwargs) {
    // with no gradient recorded the fused kernel is the faster one and its gradient never runs;
    // measured on wasm (and cpu, whose fused conv is the same composition): tfjs-node keeps its own
    if (!enabled || tf.engine().state.gradientDepth === 0 || tf.getBackend() === 'tensorflow') {
      return original.call(this, inputs, kwargs);
    }
    const layer = this as unknown as ConvFields;
    const x = singleTensor(inputs);
    if (x === undefined || x.rank !== 4 || layer.rank !== 2 || (layer.padding !== 'same' && layer.padding !== 'valid')) {
      return original.call(this, inputs, kwargs);
    }
    const channelsFirst = layer.dataFormat === 'channelsFirst';
    const dilations = typeof layer.dilationRate === 'number' ? layer.dilationRate : (layer.dilationRate as [number, number]);
    return tf.tidy(() => {
      let y = tf.conv2d(
        (channelsFirst ? tf.transpose(x, [0, 2, 3, 1]) : x) as tf.Tensor4D,
        layer.kernel.read() as tf.Tensor4D,
        layer.strides as [number, number],
        layer.padding as 'same' | 'valid',
        'NHWC',
        dilations,
      ) as tf.Tensor;
      if (layer.bias !== null) y = tf.add(y, layer.bias.read());
      if (channelsFirst) y = tf.transpose(y, [0, 3, 1, 2]);
      // after the transpose back, as tfjs-layers applies a non-fusable activation (softmax's axis)
      return layer.activation === null ? y : layer.activation.apply(y);
    });
  };
}

/**
 * ReLU with maxValue 6 (Keras's ReLU(6.), all through MobileNetV2): tfjs-layers runs relu and
 * then clipByValue, two passes forward and two gradients back; relu6 is one of each with the same
 * values and the same gradient mask (0 < x ≤ 6: relu's step times clip's 0 ≤ relu(x) ≤ 6).
 */
function reluCall(original: CallFn): CallFn {
  return function (this: tf.layers.Layer, inputs, kwargs) {
    const x = singleTensor(inputs);
    if (!enabled || x === undefined || (this as unknown as { maxValue?: number | null }).maxValue !== 6) {
      return original.call(this, inputs, kwargs);
    }
    const bn = fuseBatchNormRelu6 ? batchNormOutputs.get(x) : undefined;
    // a y kept past its step outlives the statistics it was made with: then plain relu6
    const usable = bn !== undefined && [bn.y, bn.x, bn.mean, bn.variance].every((t) => !t.isDisposed);
    return (usable ? batchNormRelu6(bn) : undefined) ?? tf.relu6(x);
  };
}

type ApplyFn = (this: unknown, x: tf.Tensor, alpha?: number) => tf.Tensor;

function geluApply(original: ApplyFn): ApplyFn {
  return function (this: unknown, x, alpha) {
    return (enabled ? gelu(x) : undefined) ?? original.call(this, x, alpha);
  };
}

const PATCHES: ReadonlyArray<{ className: string; method: 'call' | 'apply'; make: (original: CallFn & ApplyFn) => CallFn | ApplyFn }> = [
  { className: 'BatchNormalization', method: 'call', make: batchNormalizationCall },
  { className: 'LayerNormalization', method: 'call', make: layerNormalizationCall },
  { className: 'Conv2D', method: 'call', make: conv2dCall },
  { className: 'gelu', method: 'apply', make: geluApply },
  { className: 'ReLU', method: 'call', make: reluCall },
];

/**
 * Patches the prototypes once (later calls do nothing). Must run before a ModeControl is made
 * for a model; selectBackend calls it.
 */
export function installFastLayers(): void {
  for (const { className, method, make } of PATCHES) {
    if (originals.has(className)) continue;
    // the class from the registry: making an instance would take a layer name from tfjs's counter
    const entry = tf.serialization.SerializationMap.getMap().classNameMap[className];
    const proto = (entry?.[0] as { prototype?: Record<string, unknown> } | undefined)?.prototype;
    const original = proto?.[method];
    if (proto === undefined || typeof original !== 'function') throw new Error(`tfjs-layers has no ${className} class to patch`);
    originals.set(className, original as CallFn);
    proto[method] = make(original as CallFn & ApplyFn);
  }
}
