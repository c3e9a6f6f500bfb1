/**
 * Training kernels for the wasm backend (tfjs 4.22). Stock wasm cannot compute the gradient of
 * a Conv2D, DepthwiseConv2D or SeparableConv2D layer: Conv2DBackpropFilter and both depthwise
 * backprop kernels are missing, and tfjs never falls back to another backend for a missing
 * kernel. The four conv gradients, a per-channel FusedBatchNorm, MaxPoolGrad, matrix products,
 * the broadcast patterns of Add/Sub/Multiply/RealDiv that training makes and a one-pass
 * clip/ReLU gradient run in the engine's own SIMD kernels (native.ts, native/*.c) when
 * dist/kernels/kernels.wasm is built, else as the compositions over XNNPACK in conv-gradients.ts,
 * the transpose + XNNPACK route in matmul.ts, the JS passes and the stock kernels.
 * Stock kernels replaced, each for a measured reason given where it is defined:
 * MaxPoolGrad (wrong for windows whose values are all ≤ 0; max-pool-grad.ts),
 * Conv2DBackpropInput (a scalar loop, 2–9× slower than the XNNPACK composition), Tile (tile.ts),
 * BatchMatMul and _FusedMatMul (matmul.ts), Sum and Mean over leading axes (reduce.ts), and
 * Identity and same-dtype Cast (a copy on every tensor saved for the backward pass). Gradient
 * formulas replaced on every backend: Tile, ClipByValue, Relu6, Relu, FusedBatchNorm, Sum, Mean
 * (gradients.ts). AvgPoolGrad and every other op that training the supported layers runs are
 * registered on stock wasm, agree with cpu (test/engine/kernels.test.ts), and are left alone.
 * bench/speed.ts --profile shows where a step's time goes.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  CastAttrs,
  Conv2DBackpropFilterAttrs,
  Conv2DBackpropInputAttrs,
  DepthwiseConv2dNativeBackpropFilterAttrs,
  DepthwiseConv2dNativeAttrs,
  DepthwiseConv2dNativeBackpropInputAttrs,
  FusedBatchNormAttrs,
  FusedConv2DAttrs,
  KernelBackend,
  MaxPoolGradAttrs,
  SliceAttrs,
  TileAttrs,
  KernelConfig,
  KernelFunc,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs';
import { registerOptimizerStepKernels } from './optimizer-step.ts';
import { registerBatchNormTrainKernels } from './batch-norm-train.ts';
import { registerLayerNormTrainKernels } from './layer-norm-train.ts';
import { registerGeluKernels } from './gelu.ts';
import { composeKernel } from './compose.ts';
import { CLIP_GRADIENT_KERNEL, GRADIENTS, type ClipGradientAttrs } from './gradients.ts';
import { captureStock, heapFloats, runStock, type BackendWasm } from './heap.ts';
import { batchMatMul, fusedMatMul } from './matmul.ts';
import { maxPoolGradient } from './max-pool-grad.ts';
import { mean, sum } from './reduce.ts';
import { tileValues } from './tile.ts';
import {
  nativeAvailable,
  nativeBatchNorm,
  nativeBinary,
  nativeClipGradient,
  nativeMaxPoolGradient,
  nativeSlice,
  type BinaryOp,
  nativeKernelStatus,
  nativeConv2dFilterGradient,
  nativeConv2dInputGradient,
  nativeDepthwiseFilterGradient,
  nativeDepthwiseInputGradient,
  nativeConv2d,
  nativeDepthwiseConv2d,
  nativeIsAddon,
  convWork,
  startThreads,
} from './native.ts';
import { kernelThreads, threadsCanSplit } from './threads.ts';
import {
  conv2dFilterGradient,
  conv2dInputGradient,
  depthwiseFilterGradient,
  depthwiseInputGradient,
} from './conv-gradients.ts';

const BACKEND = 'wasm';

type Shape4D = [number, number, number, number];
/** tfjs' conv gradient attrs carry no dilations (its gradients refuse them); honour any a caller passes. */
type Dilations = { dilations?: number | [number, number] };

function input(inputs: NamedTensorInfoMap, name: string, kernel: string): TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new Error(`${kernel}: missing input "${name}"`);
  if (info.shape.length !== 4) throw new Error(`${kernel}: input "${name}" must be 4-D, got [${info.shape.join(', ')}]`);
  return info;
}

const toNhwc = (shape: readonly number[]): Shape4D => [shape[0]!, shape[2]!, shape[3]!, shape[1]!];
const nchwToNhwc = (t: tf.Tensor4D): tf.Tensor4D => tf.transpose(t, [0, 2, 3, 1]);
const nhwcToNchw = (t: tf.Tensor4D): tf.Tensor4D => tf.transpose(t, [0, 3, 1, 2]);

const conv2dBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.Conv2DBackpropFilter;
  const x = input(inputs, 'x', kernel);
  const dy = input(inputs, 'dy', kernel);
  const a = attrs as unknown as Conv2DBackpropFilterAttrs & Dilations;
  const channelsFirst = a.dataFormat === 'NCHW';
  const xShape = channelsFirst ? toNhwc(x.shape) : (x.shape as Shape4D);
  const info = tf.backend_util.computeConv2DInfo(xShape, a.filterShape, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode);
  if (!channelsFirst && nativeAvailable(backend as BackendWasm)) return nativeConv2dFilterGradient(backend as BackendWasm, x, dy, info);
  return composeKernel(backend as KernelBackend, { x, dy }, (t) => {
    const xs = t.x as tf.Tensor4D;
    const dys = t.dy as tf.Tensor4D;
    return channelsFirst
      ? conv2dFilterGradient(nchwToNhwc(xs), nchwToNhwc(dys), info)
      : conv2dFilterGradient(xs, dys, info);
  });
};

const conv2dBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.Conv2DBackpropInput;
  const dy = input(inputs, 'dy', kernel);
  const filter = input(inputs, 'filter', kernel);
  const a = attrs as unknown as Conv2DBackpropInputAttrs & Dilations;
  const channelsFirst = a.dataFormat === 'NCHW';
  const xShape = channelsFirst ? toNhwc(a.inputShape) : a.inputShape;
  const info = tf.backend_util.computeConv2DInfo(
    xShape,
    filter.shape as Shape4D,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
  );
  if (!channelsFirst && nativeAvailable(backend as BackendWasm)) return nativeConv2dInputGradient(backend as BackendWasm, dy, filter, info);
  return composeKernel(backend as KernelBackend, { dy, filter }, (t) => {
    const dys = t.dy as tf.Tensor4D;
    const filters = t.filter as tf.Tensor4D;
    return channelsFirst
      ? nhwcToNchw(conv2dInputGradient(nchwToNhwc(dys), filters, info))
      : conv2dInputGradient(dys, filters, info);
  });
};

/**
 * Whether the native product beats XNNPACK on one thread: from 512 multiply-adds per output pixel
 * (taps × out channels). Below, im2col and the output pass outweigh the product and XNNPACK's
 * direct kernels win: 28×28×1 → 8 (3×3, the bundled example's first conv) 0.30 vs 0.12 ms,
 * 28×28×3 → 16 0.45 vs 0.34 ms; above, 14×14×8 → 16 0.16 vs 0.21 ms, MobileNetV2's 96×96×3 → 32
 * stride 2 1.5 vs 1.9 ms (batch 16).
 */
function productPays(info: tf.backend_util.Conv2DInfo): boolean {
  return info.filterHeight * info.filterWidth * info.inChannels * info.outChannels >= 512;
}

/**
 * Conv2D and FusedConv2D (NHWC; no activation, ReLU or ReLU6 after the bias): the engine's
 * own product when it is the native one (AVX2: twice XNNPACK's wasm speed) and has enough work per
 * pixel (productPays), or the kernel threads can take part of the batch; XNNPACK otherwise (which runs it on this thread alone, at about
 * the speed of our wasm one).
 */
function conv2dForward(kernelName: string): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const wasm = backend as BackendWasm;
    const x = input(inputs, 'x', kernelName);
    const filter = input(inputs, 'filter', kernelName);
    const a = attrs as unknown as FusedConv2DAttrs;
    const activation = a.activation ?? 'linear';
    const bias = inputs.bias;
    const fits = a.dataFormat !== 'NCHW' && x.dtype === 'float32' && filter.dtype === 'float32' &&
      (activation === 'linear' || activation === 'relu' || activation === 'relu6') &&
      inputs.preluActivationWeights === undefined && (bias === undefined || bias.dtype === 'float32');
    if (fits && nativeAvailable(wasm)) {
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as Shape4D, filter.shape as Shape4D, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode);
      const perChannel = bias === undefined || bias.shape.reduce((p, d) => p * d, 1) === info.outChannels;
      if (perChannel && ((nativeIsAddon(wasm) && productPays(info)) || threadsCanSplit(info.batchSize, convWork(info)))) {
        return nativeConv2d(wasm, x, filter, bias, activation, info);
      }
    }
    return runStock(kernelName, wasm, inputs, attrs);
  };
}

/**
 * DepthwiseConv2dNative (NHWC, float32): the engine's own kernel when it is the native one
 * (AVX2, and split over the kernel threads), XNNPACK's otherwise.
 */
const depthwiseForward: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.DepthwiseConv2dNative;
  const wasm = backend as BackendWasm;
  const x = input(inputs, 'x', kernel);
  const filter = input(inputs, 'filter', kernel);
  const a = attrs as unknown as DepthwiseConv2dNativeAttrs;
  if (a.dataFormat !== 'NCHW' && x.dtype === 'float32' && filter.dtype === 'float32' && nativeIsAddon(wasm)) {
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as Shape4D, filter.shape as Shape4D, a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true);
    return nativeDepthwiseConv2d(wasm, x, filter, info);
  }
  return runStock(kernel, wasm, inputs, attrs);
};

const depthwiseBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.DepthwiseConv2dNativeBackpropFilter;
  const x = input(inputs, 'x', kernel);
  const dy = input(inputs, 'dy', kernel);
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4D,
    a.filterShape,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    true,
  );
  if (nativeAvailable(backend as BackendWasm)) return nativeDepthwiseFilterGradient(backend as BackendWasm, x, dy, info);
  return composeKernel(backend as KernelBackend, { x, dy }, (t) =>
    depthwiseFilterGradient(t.x as tf.Tensor4D, t.dy as tf.Tensor4D, info),
  );
};

const depthwiseBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.DepthwiseConv2dNativeBackpropInput;
  const dy = input(inputs, 'dy', kernel);
  const filter = input(inputs, 'filter', kernel);
  const a = attrs as unknown as DepthwiseConv2dNativeBackpropInputAttrs;
  const info = tf.backend_util.computeConv2DInfo(
    a.inputShape,
    filter.shape as Shape4D,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
    true,
  );
  if (nativeAvailable(backend as BackendWasm)) return nativeDepthwiseInputGradient(backend as BackendWasm, dy, filter, info);
  return composeKernel(backend as KernelBackend, { dy, filter }, (t) =>
    depthwiseInputGradient(t.dy as tf.Tensor4D, t.filter as tf.Tensor4D, info),
  );
};

const maxPoolGrad: KernelFunc = ({ inputs, backend, attrs }) => {
  const kernel = tf.MaxPoolGrad;
  const wasm = backend as BackendWasm;
  const dy = input(inputs, 'dy', kernel);
  const x = input(inputs, 'input', kernel);
  const a = attrs as unknown as MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(x.shape as Shape4D, a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
  // SIMD: 10 → ~1 ms per CNN step; the JS pass is the fallback
  const native = nativeMaxPoolGradient(wasm, x, dy, info);
  if (native !== undefined) return native;
  const out = wasm.makeOutput(x.shape.slice(), 'float32');
  // views after the allocation: makeOutput may grow the heap and detach earlier ones
  maxPoolGradient(heapFloats(wasm, x), heapFloats(wasm, dy), info, heapFloats(wasm, out));
  return out;
};

const tile: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  if (x === undefined) throw new Error('Tile: missing input "x"');
  if (x.dtype === 'string' || x.dtype === 'complex64') throw new Error(`Tile on wasm does not support ${x.dtype}`);
  const { reps } = attrs as unknown as TileAttrs;
  const wasm = backend as BackendWasm;
  const out = wasm.makeOutput(x.shape.map((d, i) => d * reps[i]!), x.dtype);
  tileValues(wasm.typedArrayFromHeap(x) as Float32Array | Int32Array | Uint8Array, x.shape, reps, wasm.typedArrayFromHeap(out) as Float32Array | Int32Array | Uint8Array);
  return out;
};

/**
 * Identity without a copy, as the cpu backend does it. The stock wasm kernel copies the data,
 * and tfjs clones (Identity) every tensor it saves for the backward pass: nine full copies of a
 * 64×28×28×32 activation per step in a small CNN. Tensors are immutable and no wasm kernel
 * writes into its inputs, so sharing the buffer (reference-counted, as Reshape does) is safe.
 */
const identity: KernelFunc = ({ inputs, backend }) => {
  const x = inputs.x;
  if (x === undefined) throw new Error('Identity: missing input "x"');
  const wasm = backend as BackendWasm;
  if (x.dtype === 'string') return runStock(tf.Identity, wasm, { x });
  wasm.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};

/**
 * Cast to the tensor's own dtype without a copy (tfjs's moments and our ReLU6 gradient cast
 * float32 activations to float32: 1.4 ms per 1M values for a copy); other casts stay stock.
 */
const cast: KernelFunc = ({ inputs, backend, attrs }) => {
  const x = inputs.x;
  if (x === undefined) throw new Error('Cast: missing input "x"');
  const wasm = backend as BackendWasm;
  const { dtype } = attrs as unknown as CastAttrs;
  if (x.dtype !== dtype || dtype === 'string') return runStock(tf.Cast, wasm, { x }, attrs);
  wasm.incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
};

/**
 * Add, Sub, Multiply and RealDiv on float32 in the SIMD kernel when the broadcast is same-shape,
 * per channel, per row or scalar (a CNN step's bias, BatchNorm and gradient arithmetic: the
 * stock kernels index every element with divisions, ~3 ms per 2M values); else stock.
 */
function binary(kernelName: string, op: BinaryOp): KernelFunc {
  return ({ inputs, backend, attrs }) => {
    const { a, b } = inputs;
    if (a === undefined || b === undefined) throw new Error(`${kernelName}: missing input`);
    const wasm = backend as BackendWasm;
    return nativeBinary(wasm, op, a, b) ?? runStock(kernelName, wasm, inputs, attrs);
  };
}

/** The one-pass ClipByValue / ReLU6 gradient (gradients.ts), in SIMD or, when not built, in JS. */
const clipGradient: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x, dy } = inputs;
  if (x === undefined || dy === undefined) throw new Error(`${CLIP_GRADIENT_KERNEL}: missing input`);
  const wasm = backend as BackendWasm;
  const { min, max, minExclusive } = attrs as unknown as ClipGradientAttrs;
  const native = nativeClipGradient(wasm, x, dy, min, max, minExclusive);
  if (native !== undefined) return native;
  const out = wasm.makeOutput(x.shape.slice(), 'float32');
  const xs = heapFloats(wasm, x);
  const g = heapFloats(wasm, dy);
  const o = heapFloats(wasm, out);
  for (let i = 0; i < o.length; i++) {
    const v = xs[i]!;
    o[i] = (minExclusive ? v > min : v >= min) && v <= max ? g[i]! : 0;
  }
  return out;
};

/** Per-channel batch norm in the SIMD kernels (1.6M values: 6 ms stock); other layouts stay stock. */
const fusedBatchNorm: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as BackendWasm;
  const { x, mean, variance, offset, scale } = inputs;
  if (x === undefined || mean === undefined || variance === undefined) throw new Error('FusedBatchNorm: missing input');
  const { varianceEpsilon } = attrs as unknown as FusedBatchNormAttrs;
  return nativeBatchNorm(wasm, x, { mean, variance, offset, scale }, varianceEpsilon) ??
    runStock(tf.FusedBatchNorm, wasm, inputs, attrs);
};

/**
 * Slice of float32/int32 tensors up to rank 4 in one SIMD copy (the gradient of ZeroPadding2D:
 * the stock kernel copies each innermost row through a JS subarray, ~5 ms for a 16×48×48×96
 * result); other slices stock.
 */
const slice: KernelFunc = ({ inputs, backend, attrs }) => {
  const { x } = inputs;
  if (x === undefined) throw new Error('Slice: missing input');
  const { begin, size } = attrs as unknown as SliceAttrs;
  const [begin_, size_] = tf.slice_util.parseSliceParams(x, begin, size) as [number[], number[]];
  return nativeSlice(backend as BackendWasm, x, begin_, size_) ?? runStock(tf.Slice, backend as BackendWasm, inputs, attrs);
};

const TRAINING_KERNELS: readonly KernelConfig[] = [
  { kernelName: tf.Conv2D, backendName: BACKEND, kernelFunc: conv2dForward(tf.Conv2D) },
  { kernelName: tf.FusedConv2D, backendName: BACKEND, kernelFunc: conv2dForward(tf.FusedConv2D) },
  { kernelName: tf.Conv2DBackpropFilter, backendName: BACKEND, kernelFunc: conv2dBackpropFilter },
  { kernelName: tf.Conv2DBackpropInput, backendName: BACKEND, kernelFunc: conv2dBackpropInput },
  { kernelName: tf.DepthwiseConv2dNativeBackpropFilter, backendName: BACKEND, kernelFunc: depthwiseBackpropFilter },
  { kernelName: tf.DepthwiseConv2dNative, backendName: BACKEND, kernelFunc: depthwiseForward },
  { kernelName: tf.DepthwiseConv2dNativeBackpropInput, backendName: BACKEND, kernelFunc: depthwiseBackpropInput },
  { kernelName: tf.MaxPoolGrad, backendName: BACKEND, kernelFunc: maxPoolGrad },
  { kernelName: tf.Tile, backendName: BACKEND, kernelFunc: tile },
  { kernelName: tf.BatchMatMul, backendName: BACKEND, kernelFunc: batchMatMul },
  { kernelName: tf._FusedMatMul, backendName: BACKEND, kernelFunc: fusedMatMul },
  { kernelName: tf.Sum, backendName: BACKEND, kernelFunc: sum },
  { kernelName: tf.Mean, backendName: BACKEND, kernelFunc: mean },
  { kernelName: tf.Identity, backendName: BACKEND, kernelFunc: identity },
  { kernelName: tf.Cast, backendName: BACKEND, kernelFunc: cast },
  { kernelName: tf.Add, backendName: BACKEND, kernelFunc: binary(tf.Add, 'add') },
  { kernelName: tf.Sub, backendName: BACKEND, kernelFunc: binary(tf.Sub, 'sub') },
  { kernelName: tf.Multiply, backendName: BACKEND, kernelFunc: binary(tf.Multiply, 'mul') },
  { kernelName: tf.RealDiv, backendName: BACKEND, kernelFunc: binary(tf.RealDiv, 'div') },
  { kernelName: CLIP_GRADIENT_KERNEL, backendName: BACKEND, kernelFunc: clipGradient },
  { kernelName: tf.FusedBatchNorm, backendName: BACKEND, kernelFunc: fusedBatchNorm },
  { kernelName: tf.Slice, backendName: BACKEND, kernelFunc: slice },
];

/** Kernels whose gradient formula this module replaces (on every backend). */
export const REPLACED_GRADIENTS: readonly string[] = GRADIENTS.map((g) => g.kernelName);

export { nativeKernelStatus } from './native.ts';

let threadNote: string | undefined;

/** How long selectBackend waits for the kernel threads (they take ~60–80 ms here). */
const THREAD_START_LIMIT_MS = 10_000;

/**
 * Starts the kernel threads and waits until they are up (or the limit passes), so that every
 * step of a run splits its kernels the same way: a run is then reproducible on this machine
 * (PLAN-SPEC "Determinism"), where steps taken before the threads came up would round
 * differently. Call once wasm is the backend.
 */
export async function startKernelThreadsAndWait(): Promise<void> {
  threadNote = startThreads();
  const threads = kernelThreads();
  if (threads === undefined) return;
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, THREAD_START_LIMIT_MS);
  });
  await Promise.race([threads.started(), limit]);
  clearTimeout(timer);
  if (threads.ready() === 0) threadNote = `${threadNote} — but none came up within ${THREAD_START_LIMIT_MS / 1000} s`;
}

/** One clause for the backend's reason: whether the engine's SIMD kernels run, and on how many threads. */
export function nativeKernelNote(): string {
  const status = nativeKernelStatus();
  if (!status.loaded) return status.problem;
  const where = 'file' in status.addon ? 'native AVX2 kernels (linux-x64)' : `SIMD wasm kernels (${status.addon.problem})`;
  return `convolutions, matrix products, normalisation and optimizer steps in the engine's ${where}${
    threadNote === undefined ? '' : `; ${threadNote}`}`;
}

/** Kernel names this module provides for wasm (for reports and tests). */
export const TRAINING_KERNEL_NAMES: readonly string[] = TRAINING_KERNELS.map((k) => k.kernelName);

/**
 * Registers the wasm training kernels, replacing the stock ones named above. Safe to call any
 * number of times, before or after `tf.setBackend('wasm')`.
 */
export function registerTrainingKernels(): void {
  for (const g of GRADIENTS) if (tf.getGradient(g.kernelName) !== g) tf.registerGradient(g);
  for (const config of TRAINING_KERNELS) {
    // the wrappers call the stock kernel for the cases they leave alone
    const original = captureStock(config.kernelName);
    const current = tf.getKernel(config.kernelName, config.backendName);
    if (current?.kernelFunc === config.kernelFunc) continue;
    // unregister first: registerKernel over an existing kernel works but logs a warning
    if (current !== undefined) tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel({ ...config, setupFunc: original?.setupFunc, disposeFunc: original?.disposeFunc });
  }
  registerBatchNormTrainKernels();
  registerLayerNormTrainKernels();
  registerGeluKernels();
  registerOptimizerStepKernels();
}
