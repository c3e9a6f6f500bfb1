/**
 * LayerNormalization over the last axis as one kernel forward and one back (native/layer_norm.c),
 * on wasm when the engine's SIMD module is loaded. tfjs-layers normalises with moments (Mean,
 * Sub, Square, Mean), four Tiles and FusedBatchNorm, and the tape differentiates each op on its
 * own: about seventy kernels per layer and training step (Reshapes and saved copies included),
 * each paying tfjs's per-op overhead. The forward kernel serves inference too (no moving
 * statistics: the same computation), 12× faster than the stock ops there.
 *
 * The forward kernel returns [y, mean, invstd] (one statistic per row); its registered gradient
 * runs the backward kernel once for dx, dgamma and dbeta. `layerNormTrain` is what the layer
 * patch (../fast-layers.ts) calls; it answers undefined where the kernels do not apply, and the
 * layer then runs tfjs's own ops.
 */
import * as tf from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, Tensor, TensorInfo } from '@tensorflow/tfjs';
import { perChannelParamsFit, requiredInput, rowsAndChannels, offset as heapOffset, withWork, type BackendWasm } from './heap.ts';
import { ownKernelRuns, registerOwnKernels, requireNativeFunctions } from './native.ts';

export const LAYER_NORM_TRAIN = 'LayerwiseLayerNormTrain';
export const LAYER_NORM_TRAIN_GRAD = 'LayerwiseLayerNormTrainGrad';

export interface LayerNormTrainAttrs {
  epsilon: number;
}

/** The C functions this file adds to the kernels module (layer_norm.c). */
interface LayerNormTrainExports {
  layer_norm_train(x: number, gamma: number, beta: number, epsilon: number, y: number, mean: number, invstd: number,
    rows: number, channels: number): void;
  layer_norm_train_grad(x: number, dy: number, gamma: number, mean: number, invstd: number, dx: number, dgamma: number,
    dbeta: number, rows: number, channels: number, work: number): void;
}

const FUNCTIONS = ['layer_norm_train', 'layer_norm_train_grad'] as const satisfies ReadonlyArray<keyof LayerNormTrainExports>;

/** Inputs x, gamma and optionally beta (one per channel); outputs [y, mean, invstd], the statistics one per row. */
const layerNormTrainKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const x = requiredInput(inputs, 'x', LAYER_NORM_TRAIN);
  const gamma = requiredInput(inputs, 'gamma', LAYER_NORM_TRAIN);
  const { beta } = inputs;
  const k = requireNativeFunctions<LayerNormTrainExports>(wasm, FUNCTIONS, LAYER_NORM_TRAIN);
  const { epsilon } = attrs as unknown as LayerNormTrainAttrs;
  const { rows, channels } = rowsAndChannels(x);
  const y = wasm.makeOutput(x.shape.slice(), 'float32');
  const mean = wasm.makeOutput([rows], 'float32');
  const invstd = wasm.makeOutput([rows], 'float32');
  // offsets after every allocation: makeOutput may grow the heap, never move a tensor
  const at = (t: TensorInfo | undefined): number => (t === undefined ? 0 : heapOffset(wasm, t));
  k.layer_norm_train(at(x), at(gamma), at(beta), epsilon, at(y), at(mean), at(invstd), rows, channels);
  return [y, mean, invstd];
};

/** Inputs x, dy, mean, invstd, gamma; outputs [dx, dgamma, dbeta]. */
const layerNormTrainGradKernel: KernelFunc = ({ inputs, backend }) => {
  const wasm = backend as BackendWasm;
  const [x, dy, mean, invstd, gamma] = ['x', 'dy', 'mean', 'invstd', 'gamma'].map((n) =>
    requiredInput(inputs, n, LAYER_NORM_TRAIN_GRAD)) as [TensorInfo, TensorInfo, TensorInfo, TensorInfo, TensorInfo];
  const k = requireNativeFunctions<LayerNormTrainExports>(wasm, FUNCTIONS, LAYER_NORM_TRAIN_GRAD);
  const { rows, channels } = rowsAndChannels(x);
  const dx = wasm.makeOutput(x.shape.slice(), 'float32');
  const dgamma = wasm.makeOutput([channels], 'float32');
  const dbeta = wasm.makeOutput([channels], 'float32');
  const at = (t: TensorInfo | undefined): number => (t === undefined ? 0 : heapOffset(wasm, t));
  withWork(wasm, 2 * channels, (work) =>
    k.layer_norm_train_grad(at(x), at(dy), at(gamma), at(mean), at(invstd), at(dx), at(dgamma), at(dbeta), rows, channels, work));
  return [dx, dgamma, dbeta];
};

/**
 * One backward kernel for all three gradients; the tape takes the ones it needs (an input that
 * no trained variable feeds is pruned) and disposes the rest with the backward pass.
 */
const layerNormTrainGradient: GradConfig = {
  kernelName: LAYER_NORM_TRAIN,
  inputsToSave: ['x', 'gamma'],
  outputsToSave: [false, true, true],
  gradFunc: (dys: Tensor | Tensor[], saved: Tensor[], attrs: NamedAttrMap) => {
    const [dy] = dys as Tensor[];
    const [x, gamma, mean, invstd] = saved as [Tensor, Tensor, Tensor, Tensor];
    const inputs: tf.NamedTensorMap = { x, dy: dy!, mean, invstd, gamma };
    const [dx, dgamma, dbeta] = tf.engine().runKernel(LAYER_NORM_TRAIN_GRAD, inputs, attrs) as Tensor[];
    return { x: () => dx!, gamma: () => dgamma!, beta: () => dbeta! };
  },
};

const KERNELS: readonly KernelConfig[] = [
  { kernelName: LAYER_NORM_TRAIN, backendName: 'wasm', kernelFunc: layerNormTrainKernel },
  { kernelName: LAYER_NORM_TRAIN_GRAD, backendName: 'wasm', kernelFunc: layerNormTrainGradKernel },
];

/** Registers both kernels on wasm and the forward kernel's gradient; safe to call any number of times. */
export function registerLayerNormTrainKernels(): void {
  registerOwnKernels(KERNELS, layerNormTrainGradient);
}

/**
 * Whether `layerNormTrain` runs for these tensors: the wasm backend with the engine's kernels
 * loaded and registered, a non-empty float32 x, gamma and beta absent or one value per channel.
 */
export function layerNormTrainApplies(x: Tensor, gamma: Tensor | undefined, beta: Tensor | undefined): boolean {
  return ownKernelRuns<LayerNormTrainExports>(LAYER_NORM_TRAIN, FUNCTIONS, true) && perChannelParamsFit(x, gamma, beta);
}

/**
 * Layer normalisation over the last axis: per row y = (x − mean) / √(variance + epsilon) · gamma
 * + beta with the row's mean and biased variance (tfjs-layers' LayerNormalization.call).
 * Gradients reach x, gamma and beta through the tape. Undefined where `layerNormTrainApplies`
 * says no.
 */
export function layerNormTrain(x: Tensor, gamma: Tensor | undefined, beta: Tensor | undefined, epsilon: number): Tensor | undefined {
  if (!layerNormTrainApplies(x, gamma, beta)) return undefined;
  // the gradient saves gamma (the tape cannot save an absent input), so a layer without one passes ones
  const ones = gamma === undefined ? tf.ones([x.shape[x.rank - 1]!]) : undefined;
  const inputs: tf.NamedTensorMap = { x, gamma: gamma ?? ones! };
  if (beta !== undefined) inputs['beta'] = beta;
  const attrs: LayerNormTrainAttrs = { epsilon };
  const [y, mean, invstd] = tf.engine().runKernel(LAYER_NORM_TRAIN, inputs, { ...attrs }) as Tensor[];
  // the tape keeps its own copies of what the gradient needs; the caller wants y alone
  tf.dispose([mean!, invstd!, ...(ones === undefined ? [] : [ones])]);
  return y!;
}
