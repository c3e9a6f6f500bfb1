/**
 * The engine's own SIMD kernels (native/*.c, built by scripts/build-wasm.mjs into
 * dist/kernels/kernels.wasm): convolution gradients, BatchNorm forward, broadcast element-wise
 * arithmetic and MaxPoolGrad. The module is instantiated over the tfjs
 * wasm backend's own memory, so tensors are passed as heap offsets and nothing is copied. On
 * linux-x64 with AVX2 and FMA the same kernels run from the native addon instead
 * (native-addon.ts), over the same memory and with the same arguments. When the files are
 * missing (a `tsx` run before `npm run build`) the composed kernels are used and
 * `nativeKernelStatus()` says why.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { backend_util } from '@tensorflow/tfjs';
import type { GradConfig, KernelConfig, TensorInfo } from '@tensorflow/tfjs';
import { heapModule, offset, withWork, type BackendWasm } from './heap.ts';
import { runBatchCall } from './split-call.ts';
import { activeAddon, addonStatus, bindAddon, isAddonBinding } from './native-addon.ts';
import { startKernelThreads } from './threads.ts';

type Conv2DInfo = import('@tensorflow/tfjs').backend_util.Conv2DInfo;

type Geometry = [
  batch: number, inHeight: number, inWidth: number, inChannels: number,
  outHeight: number, outWidth: number, outChannels: number,
  filterHeight: number, filterWidth: number, strideHeight: number, strideWidth: number,
  dilationHeight: number, dilationWidth: number, padTop: number, padLeft: number,
];

interface ConvExports {
  conv2d_forward_work(taps: number, outChannels: number): number;
  conv2d_forward(x: number, filter: number, bias: number, y: number, work: number, activation: number, ...g: Geometry): void;
  conv2d_filter_grad_work(taps: number, outChannels: number): number;
  conv2d_filter_grad(x: number, dy: number, dw: number, work: number, ...g: Geometry): void;
  conv2d_input_grad_work(taps: number, outChannels: number): number;
  conv2d_input_grad(dy: number, filter: number, dx: number, work: number, ...g: Geometry): void;
  depthwise_forward(x: number, filter: number, y: number, ...g: DepthwiseGeometry): void;
  depthwise_filter_grad(x: number, dy: number, dw: number, ...g: DepthwiseGeometry): void;
  depthwise_input_grad(dy: number, filter: number, dx: number, ...g: DepthwiseGeometry): void;
  batch_norm(x: number, mean: number, variance: number, offset: number, scale: number, epsilon: number,
    y: number, rows: number, channels: number, gain: number): void;
  binary(op: number, a: number, b: number, out: number, rows: number, channels: number, aMode: number, bMode: number): void;
  max_pool_grad(x: number, dy: number, dx: number, ...g: PoolGeometry): void;
  clip_grad(x: number, dy: number, dx: number, n: number, lo: number, hi: number, loStrict: number): void;
  batch_matmul_work(m: number, k: number, n: number): number;
  matmul_part_work(rows: number, k: number, cols: number): number;
  matmul_part(a: number, b: number, out: number, work: number, m: number, k: number, n: number, transA: number,
    transB: number, row0: number, rows: number, col0: number, cols: number, ldo: number): void;
  batch_matmul(a: number, b: number, out: number, work: number, batch: number, m: number, k: number, n: number,
    transA: number, transB: number): void;
}

type PoolGeometry = [
  batch: number, inHeight: number, inWidth: number, channels: number, outHeight: number, outWidth: number,
  filterHeight: number, filterWidth: number, strideHeight: number, strideWidth: number,
  dilationHeight: number, dilationWidth: number, padTop: number, padLeft: number,
];

type DepthwiseGeometry = [
  batch: number, inHeight: number, inWidth: number, channels: number, multiplier: number,
  outHeight: number, outWidth: number, filterHeight: number, filterWidth: number,
  strideHeight: number, strideWidth: number, dilationHeight: number, dilationWidth: number,
  padTop: number, padLeft: number,
];

const FILE = 'kernels.wasm';
/** The same kernels over a shared memory, for the kernel threads (threads.ts). */
const SHARED_FILE = 'kernels-shared.wasm';

/** Beside the bundle (dist/kernels), or dist/kernels of the checkout when run from source. */
function candidates(file = FILE): string[] {
  return [path.join(__dirname, 'kernels', file), path.join(__dirname, '..', '..', '..', 'dist', 'kernels', file)];
}

/** `addon`: the native addon's file when its kernels run, else why the wasm ones do. */
export type NativeKernelStatus = { loaded: true; file: string; addon: { file: string } | { problem: string } } | { loaded: false; problem: string };

let compiled: { module: WebAssembly.Module; file: string } | { problem: string } | undefined;

function compile(): { module: WebAssembly.Module; file: string } | { problem: string } {
  if (compiled === undefined) {
    const file = candidates().find((f) => existsSync(f));
    if (file === undefined) {
      compiled = { problem: `${FILE} not built (npm run build) — using the composed conv gradients` };
    } else {
      try {
        // synchronous compile is allowed in Node for any size, and the module is 12 KB
        compiled = { module: new WebAssembly.Module(readFileSync(file)), file };
      } catch (e) {
        compiled = { problem: `${file} failed to compile (${e instanceof Error ? e.message : String(e)}) — using the composed conv gradients` };
      }
    }
  }
  return compiled;
}

let sharedModule: WebAssembly.Module | undefined;

/**
 * Starts the kernel threads (once; they come up in the background) when the kernels are
 * built; returns the sentence for the backend's reason. `count` overrides how many (tests).
 */
export function startThreads(count?: number): string {
  if (!('module' in compile())) return 'no kernel threads (kernels not built)';
  if (sharedModule === undefined) {
    const file = candidates(SHARED_FILE).find((f) => existsSync(f));
    try {
      sharedModule = file === undefined ? undefined : new WebAssembly.Module(readFileSync(file));
    } catch {
      sharedModule = undefined;
    }
  }
  const addon = addonStatus();
  return startKernelThreads(sharedModule, count, addon.loaded ? addon.file : undefined).note;
}

/** Whether the SIMD conv kernels are available, for the backend's reason. */
export function nativeKernelStatus(): NativeKernelStatus {
  const c = compile();
  if (!('module' in c)) return { loaded: false, problem: c.problem };
  const addon = addonStatus();
  return {
    loaded: true,
    file: c.file,
    addon: !addon.loaded ? { problem: addon.problem } : activeAddon() === undefined ? { problem: 'native kernels switched off' } : { file: addon.file },
  };
}

const instances = new WeakMap<WebAssembly.Memory, ConvExports>();
const addonBindings = new WeakMap<WebAssembly.Memory, ConvExports>();

let enabled = true;

/**
 * Switches the SIMD kernels off (the composed ones run instead) and back on: for tests that
 * check both paths against cpu, and for benchmarks that compare them.
 */
export function useNativeKernels(on: boolean): void {
  enabled = on;
}

/** The kernels bound to this backend's heap, or undefined when they are not built or switched off. */
function kernelsFor(backend: BackendWasm): ConvExports | undefined {
  if (!enabled) return undefined;
  const c = compile();
  if (!('module' in c)) return undefined;
  const memory = heapModule(backend).asm?.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  const addon = activeAddon();
  if (addon !== undefined) {
    let binding = addonBindings.get(memory);
    if (binding === undefined) {
      binding = bindAddon(addon, () => memory.buffer) as unknown as ConvExports;
      addonBindings.set(memory, binding);
    }
    return binding;
  }
  let exports = instances.get(memory);
  if (exports === undefined) {
    exports = new WebAssembly.Instance(c.module, { env: { memory } }).exports as unknown as ConvExports;
    instances.set(memory, exports);
  }
  return exports;
}

export function nativeAvailable(backend: BackendWasm): boolean {
  return kernelsFor(backend) !== undefined;
}

/** Whether the kernels run from the native addon (AVX2) rather than the wasm module. */
export function nativeIsAddon(backend: BackendWasm): boolean {
  const k = kernelsFor(backend);
  return k !== undefined && isAddonBinding(k);
}

/**
 * The kernels module bound to this backend's heap, typed by the caller's view of its exports
 * (for kernel files beside this one that add their own C functions to the module).
 */
export function nativeModule<T>(backend: BackendWasm): T | undefined {
  return kernelsFor(backend) as T | undefined;
}

/**
 * The kernels module's functions `names`, typed by the caller, when the module is loaded and
 * has them all (a kernels.wasm built before a C file existed lacks that file's functions).
 */
export function nativeFunctions<T>(backend: BackendWasm, names: ReadonlyArray<keyof T & string>): T | undefined {
  const k = nativeModule<Record<string, unknown>>(backend);
  return k !== undefined && names.every((n) => typeof k[n] === 'function') ? (k as T) : undefined;
}

/** nativeFunctions, or an error naming the kernel that needed them. */
export function requireNativeFunctions<T>(backend: BackendWasm, names: ReadonlyArray<keyof T & string>, kernel: string): T {
  const k = nativeFunctions<T>(backend, names);
  if (k === undefined) throw new Error(`${kernel}: the engine's wasm kernels are not loaded`);
  return k;
}

/**
 * Whether one of the engine's own kernels can run now: wasm is the backend, the kernel (and,
 * when `gradient`, its gradient) is registered, and the module has the C `functions` it calls.
 */
export function ownKernelRuns<T>(kernelName: string, functions: ReadonlyArray<keyof T & string>, gradient = false): boolean {
  if (tf.getBackend() !== 'wasm' || tf.getKernel(kernelName, 'wasm') === undefined) return false;
  if (gradient && tf.getGradient(kernelName) === undefined) return false;
  return nativeFunctions<T>(tf.backend() as BackendWasm, functions) !== undefined;
}

/**
 * Registers the engine's own kernels on wasm, and a gradient for them; safe to call any number
 * of times. A kernel already there is ours, or a profiler's wrapper around ours: it stays.
 */
export function registerOwnKernels(kernels: readonly KernelConfig[], gradient?: GradConfig): void {
  if (gradient !== undefined && tf.getGradient(gradient.kernelName) !== gradient) tf.registerGradient(gradient);
  for (const config of kernels) if (tf.getKernel(config.kernelName, config.backendName) === undefined) tf.registerKernel(config);
}

function geometry(info: Conv2DInfo): Geometry {
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left,
  ];
}

function depthwiseGeometry(info: Conv2DInfo): DepthwiseGeometry {
  return [
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outChannels / info.inChannels,
    info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    info.dilationHeight, info.dilationWidth, info.padInfo.top, info.padInfo.left,
  ];
}

function kernels(backend: BackendWasm): ConvExports {
  const k = kernelsFor(backend);
  if (k === undefined) throw new Error('the native conv kernels are not loaded');
  return k;
}

/** A geometry (batch first) with another batch size: a part of a split call. */
const withBatch = <G extends [number, ...number[]]>(g: G, images: number): G => [images, ...g.slice(1)] as G;

/** Multiply-adds of a Conv2D (and of each of its gradients). */
export function convWork(info: Conv2DInfo): number {
  return info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth * info.inChannels;
}

/** Multiply-adds of a depthwise convolution or either of its gradients: one tap per output value. */
function depthwiseWork(info: Conv2DInfo): number {
  return info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth;
}

/** Activations the forward kernel applies itself (after the bias), numbered as in conv.c. */
export const CONV_ACTIVATIONS = { linear: 0, relu: 1, relu6: 2 } as const;
export type ConvActivation = keyof typeof CONV_ACTIVATIONS;

/** Conv2D, NHWC: act(conv(x, filter) + bias); split over the kernel threads when they are up. */
export function nativeConv2d(
  backend: BackendWasm, x: TensorInfo, filter: TensorInfo, bias: TensorInfo | undefined, activation: ConvActivation,
  info: Conv2DInfo,
): TensorInfo {
  const k = kernels(backend);
  const out = backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, info.outChannels], 'float32');
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const g = geometry(info);
  runBatchCall(backend, k, {
    kernel: 'conv2d_forward',
    batch: info.batchSize,
    work: convWork(info),
    sliced: [{ info: x, perImage: info.inHeight * info.inWidth * info.inChannels }],
    whole: [filter, bias],
    out: { info: out, perImage: info.outHeight * info.outWidth * info.outChannels },
    scratch: () => k.conv2d_forward_work(taps, info.outChannels),
    args: ([xp, fp, bp, yp, work], images) => [xp!, fp!, bp!, yp!, work!, CONV_ACTIVATIONS[activation], ...withBatch(g, images)],
  });
  return out;
}

/** Conv2DBackpropFilter, NHWC: dW [fh, fw, in, out] from x and dy. */
export function nativeConv2dFilterGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: Conv2DInfo): TensorInfo {
  const k = kernels(backend);
  const out = backend.makeOutput([info.filterHeight, info.filterWidth, info.inChannels, info.outChannels], 'float32');
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const g = geometry(info);
  runBatchCall(backend, k, {
    kernel: 'conv2d_filter_grad',
    batch: info.batchSize,
    work: convWork(info),
    sliced: [
      { info: x, perImage: info.inHeight * info.inWidth * info.inChannels },
      { info: dy, perImage: info.outHeight * info.outWidth * info.outChannels },
    ],
    whole: [],
    out: { info: out, summed: taps * info.outChannels },
    scratch: () => k.conv2d_filter_grad_work(taps, info.outChannels),
    args: ([xp, dyp, dwp, work], images) => [xp!, dyp!, dwp!, work!, ...withBatch(g, images)],
  });
  return out;
}

/** Conv2DBackpropInput, NHWC: dx from dy and the filter. */
export function nativeConv2dInputGradient(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, info: Conv2DInfo): TensorInfo {
  const k = kernels(backend);
  const out = backend.makeOutput([info.batchSize, info.inHeight, info.inWidth, info.inChannels], 'float32');
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const g = geometry(info);
  runBatchCall(backend, k, {
    kernel: 'conv2d_input_grad',
    batch: info.batchSize,
    work: convWork(info),
    sliced: [{ info: dy, perImage: info.outHeight * info.outWidth * info.outChannels }],
    whole: [filter],
    out: { info: out, perImage: info.inHeight * info.inWidth * info.inChannels },
    scratch: () => k.conv2d_input_grad_work(taps, info.outChannels),
    args: ([dyp, fp, dxp, work], images) => [dyp!, fp!, dxp!, work!, ...withBatch(g, images)],
  });
  return out;
}

/** DepthwiseConv2dNative, NHWC: y from x and the filter [fh, fw, channels, multiplier]. */
export function nativeDepthwiseConv2d(backend: BackendWasm, x: TensorInfo, filter: TensorInfo, info: Conv2DInfo): TensorInfo {
  const k = kernels(backend);
  const out = backend.makeOutput([info.batchSize, info.outHeight, info.outWidth, info.outChannels], 'float32');
  const g = depthwiseGeometry(info);
  runBatchCall(backend, k, {
    kernel: 'depthwise_forward',
    batch: info.batchSize,
    work: depthwiseWork(info),
    sliced: [{ info: x, perImage: info.inHeight * info.inWidth * info.inChannels }],
    whole: [filter],
    out: { info: out, perImage: info.outHeight * info.outWidth * info.outChannels },
    scratch: () => 0,
    args: ([xp, fp, yp], images) => [xp!, fp!, yp!, ...withBatch(g, images)],
  });
  return out;
}

/** DepthwiseConv2dNativeBackpropFilter, NHWC: dW [fh, fw, channels, multiplier]. */
export function nativeDepthwiseFilterGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: Conv2DInfo): TensorInfo {
  const k = kernels(backend);
  const multiplier = info.outChannels / info.inChannels;
  const out = backend.makeOutput([info.filterHeight, info.filterWidth, info.inChannels, multiplier], 'float32');
  const g = depthwiseGeometry(info);
  runBatchCall(backend, k, {
    kernel: 'depthwise_filter_grad',
    batch: info.batchSize,
    work: depthwiseWork(info),
    sliced: [
      { info: x, perImage: info.inHeight * info.inWidth * info.inChannels },
      { info: dy, perImage: info.outHeight * info.outWidth * info.outChannels },
    ],
    whole: [],
    out: { info: out, summed: info.filterHeight * info.filterWidth * info.outChannels },
    scratch: () => 0,
    args: ([xp, dyp, dwp], images) => [xp!, dyp!, dwp!, ...withBatch(g, images)],
  });
  return out;
}

/** DepthwiseConv2dNativeBackpropInput, NHWC: dx from dy and the filter. */
export function nativeDepthwiseInputGradient(backend: BackendWasm, dy: TensorInfo, filter: TensorInfo, info: Conv2DInfo): TensorInfo {
  const k = kernels(backend);
  const out = backend.makeOutput([info.batchSize, info.inHeight, info.inWidth, info.inChannels], 'float32');
  const g = depthwiseGeometry(info);
  runBatchCall(backend, k, {
    kernel: 'depthwise_input_grad',
    batch: info.batchSize,
    work: depthwiseWork(info),
    sliced: [{ info: dy, perImage: info.outHeight * info.outWidth * info.outChannels }],
    whole: [filter],
    out: { info: out, perImage: info.inHeight * info.inWidth * info.inChannels },
    scratch: () => 0,
    args: ([dyp, fp, dxp], images) => [dyp!, fp!, dxp!, ...withBatch(g, images)],
  });
  return out;
}

/**
 * FusedBatchNorm over the last axis, when every parameter is one value per channel (what
 * BatchNormalization layers pass); undefined for other layouts (LayerNormalization's
 * per-row statistics), which the stock kernel keeps.
 */
export function nativeBatchNorm(
  backend: BackendWasm,
  x: TensorInfo,
  params: { mean: TensorInfo; variance: TensorInfo; offset?: TensorInfo; scale?: TensorInfo },
  epsilon: number,
): TensorInfo | undefined {
  const k = kernelsFor(backend);
  const channels = x.shape[x.shape.length - 1];
  if (k === undefined || channels === undefined || channels === 0 || x.dtype !== 'float32') return undefined;
  const perChannel = (t: TensorInfo | undefined): boolean =>
    t === undefined || (t.dtype === 'float32' && t.shape[t.shape.length - 1] === channels && t.shape.reduce((a, b) => a * b, 1) === channels);
  if (![params.mean, params.variance, params.offset, params.scale].every(perChannel)) return undefined;
  const out = backend.makeOutput(x.shape.slice(), 'float32');
  const rows = x.shape.reduce((a, b) => a * b, 1) / channels;
  const at = (t: TensorInfo | undefined): number => (t === undefined ? 0 : offset(backend, t));
  withWork(backend, channels, (gain) =>
    k.batch_norm(offset(backend, x), at(params.mean), at(params.variance), at(params.offset), at(params.scale), epsilon,
      offset(backend, out), rows, channels, gain));
  return out;
}

/** The element-wise operations the SIMD kernel has, numbered as in conv.c. */
export const BINARY_OPS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type BinaryOp = keyof typeof BINARY_OPS;

/** Operand layouts, numbered as in conv.c. */
const FULL = 0;
const PER_CHANNEL = 1;
const PER_ROW = 2;
const SCALAR = 3;

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** How `shape` broadcasts to `out` seen as [rows, channels], or undefined for other patterns. */
function layout(shape: readonly number[], out: readonly number[]): number | undefined {
  const size = sizeOf(shape);
  const total = sizeOf(out);
  // broadcasting only stretches size-1 axes: same size means same layout
  if (size === total) return FULL;
  if (size === 1) return SCALAR;
  const channels = out[out.length - 1] ?? 1;
  if (size === channels && shape[shape.length - 1] === channels) return PER_CHANNEL;
  const padded = [...new Array<number>(out.length - shape.length).fill(1), ...shape];
  if (padded[padded.length - 1] === 1 && padded.slice(0, -1).every((d, i) => d === out[i])) return PER_ROW;
  return undefined;
}

/**
 * a op b for float32 tensors whose broadcast is one of: same shape, one value per channel (last
 * axis), one per row, or a scalar; undefined otherwise (the stock kernel then runs). Every
 * element is one IEEE operation, so results equal the stock kernel's bit for bit.
 */
export function nativeBinary(backend: BackendWasm, op: BinaryOp, a: TensorInfo, b: TensorInfo): TensorInfo | undefined {
  const k = kernelsFor(backend);
  if (k === undefined || a.dtype !== 'float32' || b.dtype !== 'float32') return undefined;
  const outShape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const total = sizeOf(outShape);
  if (total === 0) return undefined;
  const aMode = layout(a.shape, outShape);
  const bMode = layout(b.shape, outShape);
  if (aMode === undefined || bMode === undefined) return undefined;
  const whole = (aMode === FULL || aMode === SCALAR) && (bMode === FULL || bMode === SCALAR);
  const channels = whole ? total : (outShape[outShape.length - 1] ?? 1);
  const out = backend.makeOutput(outShape, 'float32');
  k.binary(BINARY_OPS[op], offset(backend, a), offset(backend, b), offset(backend, out), total / channels, channels, aMode, bMode);
  return out;
}

interface SliceExports {
  slice4(x: number, out: number, d1: number, d2: number, d3: number, b0: number, b1: number, b2: number, b3: number,
    s0: number, s1: number, s2: number, s3: number): void;
}

/**
 * Slice of a float32 or int32 tensor of rank 1–4 (begin and size already resolved), as one
 * SIMD copy; undefined for other dtypes and ranks, or when the kernels are not loaded.
 */
export function nativeSlice(backend: BackendWasm, x: TensorInfo, begin: number[], size: number[]): TensorInfo | undefined {
  const k = nativeFunctions<SliceExports>(backend, ['slice4']);
  const rank = x.shape.length;
  if (k === undefined || (x.dtype !== 'float32' && x.dtype !== 'int32') || rank < 1 || rank > 4) return undefined;
  const pad = <T>(xs: T[], fill: T): T[] => [...new Array<T>(4 - rank).fill(fill), ...xs];
  const d = pad(x.shape.slice(), 1);
  const b = pad(begin, 0);
  const s = pad(size, 1);
  const out = backend.makeOutput(size.slice(), x.dtype);
  if (sizeOf(size) > 0) {
    k.slice4(offset(backend, x), offset(backend, out), d[1]!, d[2]!, d[3]!, b[0]!, b[1]!, b[2]!, b[3]!, s[0]!, s[1]!, s[2]!, s[3]!);
  }
  return out;
}

/** MaxPoolGrad, NHWC, from the pool's input and dy; undefined when the kernels are not loaded. */
export function nativeMaxPoolGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, info: Conv2DInfo): TensorInfo | undefined {
  const k = kernelsFor(backend);
  if (k === undefined || x.dtype !== 'float32' || dy.dtype !== 'float32') return undefined;
  const out = backend.makeOutput(x.shape.slice(), 'float32');
  k.max_pool_grad(offset(backend, x), offset(backend, dy), offset(backend, out),
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left);
  return out;
}

/** dy where min ≤ x ≤ max (min < x when minExclusive), else 0; undefined when not loaded. */
export function nativeClipGradient(backend: BackendWasm, x: TensorInfo, dy: TensorInfo, min: number, max: number, minExclusive: boolean): TensorInfo | undefined {
  const k = kernelsFor(backend);
  if (k === undefined || x.dtype !== 'float32' || dy.dtype !== 'float32') return undefined;
  const out = backend.makeOutput(x.shape.slice(), 'float32');
  k.clip_grad(offset(backend, x), offset(backend, dy), offset(backend, out), sizeOf(x.shape), min, max, minExclusive ? 1 : 0);
  return out;
}

/**
 * BatchMatMul, any transposes, when both sides have the same batch axes (one matrix or many);
 * undefined otherwise (broadcast batches: the stock kernel). Faster than XNNPACK here even for
 * single untransposed products (64×784 by 784×256: 0.74 vs 1.08 ms), which repack their
 * right-hand operand on every call.
 */
export function nativeBatchMatMul(backend: BackendWasm, a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): TensorInfo | undefined {
  const k = kernelsFor(backend);
  const rank = a.shape.length;
  if (k === undefined || a.dtype !== "float32" || b.dtype !== "float32" || rank < 2 || b.shape.length !== rank) return undefined;
  const batchShape = a.shape.slice(0, -2);
  if (!batchShape.every((d, i) => d === b.shape[i])) return undefined;
  const batch = sizeOf(batchShape);
  const m = a.shape[rank - (transposeA ? 1 : 2)]!;
  const inner = a.shape[rank - (transposeA ? 2 : 1)]!;
  const n = b.shape[rank - (transposeB ? 2 : 1)]!;
  if (inner !== b.shape[rank - (transposeB ? 1 : 2)]) return undefined;
  const out = backend.makeOutput([...batchShape, m, n], 'float32');
  if (m * n === 0) return out;
  const ta = transposeA ? 1 : 0;
  const tb = transposeB ? 1 : 0;
  if (batch === 1 && m >= n) {
    // one product (a Dense layer's): each thread packs all of op(b) and its rows of op(a)
    runBatchCall(backend, k, {
      kernel: 'matmul_part',
      batch: m,
      work: m * inner * n,
      sliced: [],
      whole: [a, b],
      out: { info: out, perImage: n },
      scratch: (rows) => k.matmul_part_work(rows, inner, n),
      args: ([ap, bp, op, work], rows, first) => [ap!, bp!, op!, work!, m, inner, n, ta, tb, first, rows, 0, n, n],
    });
  } else if (batch === 1) {
    // fewer rows than columns (a batch through a wide layer): split the columns instead, so
    // that the larger operand is packed once in all
    runBatchCall(backend, k, {
      kernel: 'matmul_part',
      batch: n,
      work: m * inner * n,
      sliced: [],
      whole: [a, b],
      out: { info: out, columns: { rows: m, width: n } },
      scratch: (cols) => k.matmul_part_work(m, inner, cols),
      args: ([ap, bp, op, work], cols, first, inPlace) =>
        [ap!, bp!, op!, work!, m, inner, n, ta, tb, 0, m, first, cols, inPlace ? n : cols],
    });
  } else {
    // many products (attention's): the threads take whole products
    runBatchCall(backend, k, {
      kernel: 'batch_matmul',
      batch,
      work: batch * m * inner * n,
      sliced: [{ info: a, perImage: m * inner }, { info: b, perImage: inner * n }],
      whole: [],
      out: { info: out, perImage: m * n },
      scratch: () => k.batch_matmul_work(m, inner, n),
      args: ([ap, bp, op, work], products) => [ap!, bp!, op!, work!, products, m, inner, n, ta, tb],
    });
  }
  return out;
}

/** target += bias per last-axis column, in place (target is a fresh kernel output); false when not loaded. */
export function nativeAddInPlace(backend: BackendWasm, target: TensorInfo, bias: TensorInfo): boolean {
  const k = kernelsFor(backend);
  const channels = target.shape[target.shape.length - 1] ?? 1;
  if (k === undefined || target.dtype !== 'float32' || bias.dtype !== 'float32' || sizeOf(bias.shape) !== channels) return false;
  const total = sizeOf(target.shape);
  if (total === 0) return true;
  const at = offset(backend, target);
  k.binary(BINARY_OPS.add, at, offset(backend, bias), at, total / channels, channels, FULL, PER_CHANNEL);
  return true;
}
