/**
 * Direct access to the wasm backend's memory for kernels written in JS or composed from other
 * wasm kernels: views into the heap instead of `dataSync` copies (a 6 MB read costs ~2 ms
 * there), and calls to the stock kernel functions on bare TensorInfos, which skip the engine's
 * bookkeeping that a tf op would add.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';

export type { BackendWasm };

/** What the engine reaches in tfjs's emscripten module: its memory and its allocator. */
interface WasmModuleInternals {
  asm?: { memory?: unknown };
  _malloc(bytes: number): number;
  _free(pointer: number): void;
}

export function heapModule(backend: BackendWasm): WasmModuleInternals {
  return backend.wasm as unknown as WasmModuleInternals;
}

/** A tensor's byte offset in the wasm heap: what the C kernels take as a pointer. */
export function offset(backend: BackendWasm, info: TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error('tensor not on the wasm backend');
  return data.memoryOffset;
}

/** Runs `body` with `floats` of scratch on the tfjs heap. */
export function withWork<T>(backend: BackendWasm, floats: number, body: (work: number) => T): T {
  if (floats === 0) return body(0);
  const heap = heapModule(backend);
  const work = heap._malloc(floats * 4);
  try {
    return body(work);
  } finally {
    heap._free(work);
  }
}


/**
 * A Float32Array over a tensor's bytes in the wasm heap. Any allocation (makeOutput, a kernel
 * call) may grow the heap and detach the views taken before it: allocate first, then view.
 */
export function heapFloats(backend: BackendWasm, info: TensorInfo): Float32Array {
  if (info.dtype !== 'float32') throw new Error(`expected a float32 tensor, got ${info.dtype}`);
  return backend.typedArrayFromHeap(info) as Float32Array;
}

/** The same data seen with another shape (no copy; the caller must not dispose it separately). */
export function reshaped(info: TensorInfo, shape: number[]): TensorInfo {
  return { dataId: info.dataId, shape, dtype: info.dtype };
}

export function release(backend: BackendWasm, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/**
 * The kernel function registered for wasm before this module replaced it. Captured once, the
 * first time it is asked for, so later wrappers (a profiler, a second registration) never end
 * up calling themselves.
 */
const stock = new Map<string, KernelConfig>();

/**
 * Remembers the stock kernel and returns it. Its setupFunc must go with any replacement: the
 * backend runs setup functions (which bind the wasm exports the stock kernel calls) only for
 * the kernels registered when it initialises.
 */
export function captureStock(kernelName: string): KernelConfig | undefined {
  if (!stock.has(kernelName)) {
    const k = tf.getKernel(kernelName, 'wasm');
    if (k !== undefined) stock.set(kernelName, k);
  }
  return stock.get(kernelName);
}

export function runStock(
  kernelName: string,
  backend: BackendWasm,
  inputs: NamedTensorInfoMap,
  attrs: NamedAttrMap = {},
): TensorInfo {
  const f: KernelFunc | undefined = stock.get(kernelName)?.kernelFunc ?? tf.getKernel(kernelName, 'wasm')?.kernelFunc;
  if (f === undefined) throw new Error(`no ${kernelName} kernel on wasm`);
  const out = f({ inputs, backend, attrs });
  if (Array.isArray(out)) throw new Error(`${kernelName} returned several tensors`);
  return out;
}

/** A kernel's input by name, or an error naming the kernel. */
export function requiredInput(inputs: Record<string, TensorInfo | undefined>, name: string, kernel: string): TensorInfo {
  const info = inputs[name];
  if (info === undefined) throw new Error(`${kernel}: missing input "${name}"`);
  return info;
}

/** A tensor seen as [rows, channels], the channels on its last axis. */
export function rowsAndChannels(x: TensorInfo): { rows: number; channels: number } {
  const channels = x.shape[x.shape.length - 1] ?? 1;
  return { rows: x.shape.reduce((a, b) => a * b, 1) / channels, channels };
}

/**
 * Whether x (float32, not empty) and its per-channel parameters (absent, or one float32 value
 * per channel of x's last axis) fit the normalisation kernels.
 */
export function perChannelParamsFit(x: tf.Tensor, ...params: Array<tf.Tensor | undefined>): boolean {
  const channels = x.shape[x.rank - 1];
  if (x.dtype !== 'float32' || x.rank < 1 || channels === undefined || x.size === 0) return false;
  return params.every((t) => t === undefined || (t.dtype === 'float32' && t.rank === 1 && t.shape[0] === channels));
}
