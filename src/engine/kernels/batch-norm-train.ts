/**
 * BatchNormalization in training mode as one kernel forward and one back (native/batch_norm.c),
 * on wasm when the engine's SIMD module is loaded. tfjs-layers normalises a training batch with
 * moments (Mean, Sub, Square, Mean) and FusedBatchNorm, and the tape differentiates each op on
 * its own: 22 ms of a 63 ms step of the separable bench model went to those kernels, 7.5 ms to
 * these two (bench/speed.ts --profile).
 *
 * The forward kernel returns [y, mean, variance]; its registered gradient runs the backward
 * kernel once for dx, dscale and doffset (the mean and variance outputs feed only the moving
 * averages, never the loss). `batchNormTrain` is what the layer patch (../fast-layers.ts) calls;
 * it answers undefined where the kernels do not apply, and the layer then runs tfjs's own ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs';
import { perChannelParamsFit, requiredInput, rowsAndChannels, offset as heapOffset, withWork, type BackendWasm } from './heap.ts';
import { ownKernelRuns, registerOwnKernels, requireNativeFunctions } from './native.ts';

export const BATCH_NORM_TRAIN = 'LayerwiseBatchNormTrain';
export const BATCH_NORM_TRAIN_GRAD = 'LayerwiseBatchNormTrainGrad';
export const BATCH_NORM_RELU6_GRAD = 'LayerwiseBatchNormRelu6Grad';

export interface BatchNormTrainAttrs {
  varianceEpsilon: number;
}

/** The C functions this file adds to the kernels module (batch_norm.c). */
interface BatchNormTrainExports {
  batch_norm_train(x: number, scale: number, offset: number, epsilon: number, y: number, mean: number,
    variance: number, rows: number, channels: number, work: number): void;
  batch_norm_train_grad(x: number, dy: number, mean: number, variance: number, scale: number, epsilon: number,
    dx: number, dscale: number, doffset: number, rows: number, channels: number, work: number): void;
  batch_norm_relu6_grad(x: number, dz: number, mean: number, variance: number, scale: number, offset: number, epsilon: number,
    dx: number, dscale: number, doffset: number, rows: number, channels: number, work: number): void;
}

const FUNCTIONS = ['batch_norm_train', 'batch_norm_train_grad'] as const satisfies ReadonlyArray<keyof BatchNormTrainExports>;
const RELU6_FUNCTIONS = ['batch_norm_relu6_grad'] as const satisfies ReadonlyArray<keyof BatchNormTrainExports>;

/** Inputs x, scale (one per channel) and optionally offset; outputs [y, mean, variance]. */
const batchNormTrainKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const x = requiredInput(inputs, 'x', BATCH_NORM_TRAIN);
  const scale = requiredInput(inputs, 'scale', BATCH_NORM_TRAIN);
  const shift = inputs.offset;
  const k = requireNativeFunctions<BatchNormTrainExports>(wasm, FUNCTIONS, BATCH_NORM_TRAIN);
  const { varianceEpsilon } = attrs as unknown as BatchNormTrainAttrs;
  const { rows, channels } = rowsAndChannels(x);
  const y = wasm.makeOutput(x.shape.slice(), 'float32');
  const mean = wasm.makeOutput([channels], 'float32');
  const variance = wasm.makeOutput([channels], 'float32');
  const at = (t: TensorInfo): number => heapOffset(wasm, t);
  withWork(wasm, 2 * channels, (work) =>
    k.batch_norm_train(at(x), at(scale), shift === undefined ? 0 : at(shift), varianceEpsilon, at(y), at(mean), at(variance),
      rows, channels, work));
  return [y, mean, variance];
};

/** Inputs x, dy, mean, variance, scale; outputs [dx, dscale, doffset]. */
const batchNormTrainGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const [x, dy, mean, variance, scale] = ['x', 'dy', 'mean', 'variance', 'scale'].map((n) =>
    requiredInput(inputs, n, BATCH_NORM_TRAIN_GRAD)) as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const k = requireNativeFunctions<BatchNormTrainExports>(wasm, FUNCTIONS, BATCH_NORM_TRAIN_GRAD);
  const { varianceEpsilon } = attrs as unknown as BatchNormTrainAttrs;
  const { rows, channels } = rowsAndChannels(x);
  const dx = wasm.makeOutput(x.shape.slice(), 'float32');
  const dscale = wasm.makeOutput([channels], 'float32');
  const doffset = wasm.makeOutput([channels], 'float32');
  const at = (t: TensorInfo): number => heapOffset(wasm, t);
  withWork(wasm, 3 * channels, (work) =>
    k.batch_norm_train_grad(at(x), at(dy), at(mean), at(variance), at(scale), varianceEpsilon, at(dx), at(dscale), at(doffset),
      rows, channels, work));
  return [dx, dscale, doffset];
};

/** Inputs x, dz, mean, variance, scale and optionally offset; outputs [dx, dscale, doffset]. */
const batchNormRelu6GradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const [x, dz, mean, variance, scale] = ['x', 'dz', 'mean', 'variance', 'scale'].map((n) =>
    requiredInput(inputs, n, BATCH_NORM_RELU6_GRAD)) as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const shift = inputs.offset;
  const k = requireNativeFunctions<BatchNormTrainExports>(wasm, RELU6_FUNCTIONS, BATCH_NORM_RELU6_GRAD);
  const { varianceEpsilon } = attrs as unknown as BatchNormTrainAttrs;
  const { rows, channels } = rowsAndChannels(x);
  const dx = wasm.makeOutput(x.shape.slice(), 'float32');
  const dscale = wasm.makeOutput([channels], 'float32');
  const doffset = wasm.makeOutput([channels], 'float32');
  const at = (t: TensorInfo): number => heapOffset(wasm, t);
  withWork(wasm, 4 * channels, (work) =>
    k.batch_norm_relu6_grad(at(x), at(dz), at(mean), at(variance), at(scale), shift === undefined ? 0 : at(shift), varianceEpsilon,
      at(dx), at(dscale), at(doffset), rows, channels, work));
  return [dx, dscale, doffset];
};

/**
 * One backward kernel for all three gradients, run when the tape reaches the node; the tape
 * then takes the ones it needs (an input that no trained variable feeds is pruned) and disposes
 * the rest with the backward pass.
 */
const batchNormTrainGradient: GradConfig = {
  kernelName: BATCH_NORM_TRAIN,
  inputsToSave: ['x', 'scale'],
  outputsToSave: [false, true, true],
  gradFunc: (dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [dy] = dys as Tensor[];
    const [x, scale, mean, variance] = saved as [Tensor, Tensor, Tensor, Tensor];
    const [dx, dscale, doffset] = tf.engine().runKernel(BATCH_NORM_TRAIN_GRAD, { x, dy: dy!, mean, variance, scale }, attrs) as Tensor[];
    return { x: () => dx!, scale: () => dscale!, offset: () => doffset! };
  },
};

const KERNELS: readonly KernelConfig[] = [
  { kernelName: BATCH_NORM_TRAIN, backendName: 'wasm', kernelFunc: batchNormTrainKernel },
  { kernelName: BATCH_NORM_TRAIN_GRAD, backendName: 'wasm', kernelFunc: batchNormTrainGradKernel },
  { kernelName: BATCH_NORM_RELU6_GRAD, backendName: 'wasm', kernelFunc: batchNormRelu6GradKernel },
];

/** Registers both kernels on wasm and the forward kernel's gradient; safe to call any number of times. */
export function registerBatchNormTrainKernels(): void {
  registerOwnKernels(KERNELS, batchNormTrainGradient);
}

/**
 * Whether `batchNormTrain` runs for these tensors: the wasm backend with the engine's kernels
 * loaded and registered, a non-empty float32 x, gamma and beta absent or one value per channel.
 */
export function batchNormTrainApplies(x: Tensor, gamma: Tensor | undefined, beta: Tensor | undefined): boolean {
  return ownKernelRuns<BatchNormTrainExports>(BATCH_NORM_TRAIN, FUNCTIONS, true) && perChannelParamsFit(x, gamma, beta);
}

/**
 * Batch normalisation of a training batch over every axis of x but the last: y = (x − mean) ·
 * gamma / √(variance + epsilon) + beta with the batch's mean and biased variance (tfjs-layers'
 * normalizeBatchInTraining), and those statistics for the moving averages. Gradients reach x,
 * gamma and beta through the tape. Undefined where `batchNormTrainApplies` says no.
 */
export function batchNormTrain(
  x: Tensor,
  gamma: Tensor | undefined,
  beta: Tensor | undefined,
  epsilon: number,
): { y: Tensor; mean: Tensor; variance: Tensor } | undefined {
  if (!batchNormTrainApplies(x, gamma, beta)) return undefined;
  // the gradient saves the scale, so a layer without one (scale: false) passes ones
  const scale = gamma ?? tf.ones([x.shape[x.rank - 1]!]);
  const inputs: tf.NamedTensorMap = { x, scale };
  if (beta !== undefined) inputs['offset'] = beta;
  const attrs: BatchNormTrainAttrs = { varianceEpsilon: epsilon };
  const [y, mean, variance] = tf.engine().runKernel(BATCH_NORM_TRAIN, inputs, { ...attrs }) as Tensor[];
  return { y: y!, mean: mean!, variance: variance! };
}

/** What batchNormRelu6 needs of a training batch's normalisation: its output, input, weights and statistics. */
export interface BatchNormTraining {
  y: Tensor;
  x: Tensor;
  gamma: Tensor | undefined;
  beta: Tensor | undefined;
  mean: Tensor;
  variance: Tensor;
  epsilon: number;
}

/**
 * ReLU6 of a BatchNormalization layer's training output y (MobileNetV2's BN → ReLU6, 35 times)
 * as one op on the tape whose inputs are the layer's x, gamma and beta: forward it is relu6(y),
 * backward the BatchNorm gradient with the ReLU6 mask applied inside its two passes (y
 * recomputed from x), in one pass less than the ReLU6 gradient followed by the BatchNorm
 * gradient and with the same bits. The gradient reaches x, gamma and beta through the batch
 * statistics as well (they are saved, not tape inputs). A y that other layers also read gets
 * their gradient through the BatchNorm kernel as before and the tape adds the two: the same sum
 * up to rounding (the gradient is linear in dy), no longer the same bits. Undefined where the
 * kernel does not run.
 */
export function batchNormRelu6(bn: BatchNormTraining): Tensor | undefined {
  const { y, x, gamma, beta, mean, variance, epsilon } = bn;
  if (!ownKernelRuns<BatchNormTrainExports>(BATCH_NORM_RELU6_GRAD, RELU6_FUNCTIONS) || !perChannelParamsFit(x, gamma, beta)) return undefined;
  const attrs: BatchNormTrainAttrs = { varianceEpsilon: epsilon };
  const scale = gamma ?? tf.ones([x.shape[x.rank - 1]!]);
  // customGrad: the tape sees one op with inputs x, scale (and offset); y and the statistics are not its inputs
  const op = tf.customGrad((...args: Array<Tensor | tf.GradSaveFunc>) => {
    const save = args.pop() as tf.GradSaveFunc;
    const [xs, scales, offsets] = args as [Tensor, Tensor, Tensor | undefined];
    save(offsets === undefined ? [xs, scales, mean, variance] : [xs, scales, mean, variance, offsets]);
    return {
      value: tf.relu6(y),
      gradFunc: (dz: Tensor, saved: Tensor[]) => {
        const [sx, sscale, smean, svariance, soffset] = saved as [Tensor, Tensor, Tensor, Tensor, Tensor | undefined];
        const inputs: tf.NamedTensorMap = { x: sx, dz, mean: smean, variance: svariance, scale: sscale };
        if (soffset !== undefined) inputs['offset'] = soffset;
        const [dx, dscale, doffset] = tf.engine().runKernel(BATCH_NORM_RELU6_GRAD, inputs, { ...attrs }) as Tensor[];
        if (soffset === undefined) {
          doffset!.dispose();
          return [dx!, dscale!];
        }
        return [dx!, dscale!, doffset!];
      },
    };
  });
  return beta === undefined ? op(x, scale) : op(x, scale, beta);
}
