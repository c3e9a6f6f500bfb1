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
import { heapFloats, type BackendWasm } from './heap.ts';
import { activeAddon, addonStatus, bindAddon, isAddonBinding } from './native-addon.ts';
import { kernelThreads, splitMinWork, startKernelThreads, type KernelThreads, type ThreadedKernel } from './threads.ts';

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

interface WasmModuleInternals {
  asm?: { memory?: unknown };
  _malloc(bytes: number): number;
  _free(pointer: number): void;
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
  const memory = (backend.wasm as unknown as WasmModuleInternals).asm?.memory;
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

/** A tensor's byte offset in the wasm heap: what the C kernels take as a pointer. */
export function offset(backend: BackendWasm, info: TensorInfo): number {
  const data = backend.dataIdMap.get(info.dataId);
  if (data === undefined) throw new Error('tensor not on the wasm backend');
  return data.memoryOffset;
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

/** Runs `body` with `floats` of scratch on the tfjs heap. */
export function withWork<T>(backend: BackendWasm, floats: number, body: (work: number) => T): T {
  if (floats === 0) return body(0);
  const heap = backend.wasm as unknown as WasmModuleInternals;
  const work = heap._malloc(floats * 4);
  try {
    return body(work);
  } finally {
    heap._free(work);
  }
}

function kernels(backend: BackendWasm): ConvExports {
  const k = kernelsFor(backend);
  if (k === undefined) throw new Error('the native conv kernels are not loaded');
  return k;
}

const align4 = (n: number): number => Math.ceil(n / 4) * 4;

/**
 * One kernel call that may be split over the batch: the kernel threads take the last images,
 * on copies in their shared memory, and this thread the first ones in place.
 */
interface BatchCall {
  kernel: ThreadedKernel;
  batch: number;
  /** Multiply-adds of the whole call. */
  work: number;
  /** Inputs split by image, with their floats per image. */
  sliced: Array<{ info: TensorInfo; perImage: number }>;
  /** Inputs every part reads whole (a filter, a bias); undefined passes a null pointer. */
  whole: Array<TensorInfo | undefined>;
  /**
   * The output: split by image; or one per part, summed (a filter gradient); or split by
   * column of a `rows` × `width` matrix, each part's columns compact in its region.
   */
  out:
    | { info: TensorInfo; perImage: number }
    | { info: TensorInfo; summed: number }
    | { info: TensorInfo; columns: { rows: number; width: number } };
  /** Floats of scratch a part of `images` images needs. */
  scratch(images: number): number;
  /**
   * The C arguments for `images` images from `first` on, given the pointers: sliced…, whole…,
   * out, scratch (sliced ones and out already point at image `first`); `inPlace` when the
   * part writes into the output tensor itself rather than a thread's region.
   */
  args(pointers: number[], images: number, first: number, inPlace: boolean): number[];
}

/**
 * How `batch` images split between this thread and `lanes` kernel threads: this thread takes
 * the first ⌊batch/(lanes+1)⌋ (it also makes the copies), each kernel thread that many or one
 * more, in order. Every part gets at least one image when lanes < batch.
 */
export function splitBatch(batch: number, lanes: number): { mine: number; parts: Array<{ start: number; images: number }> } {
  const base = Math.floor(batch / (lanes + 1));
  const extra = batch - base * (lanes + 1);
  const parts: Array<{ start: number; images: number }> = [];
  let start = base;
  for (let i = 0; i < lanes; i++) {
    const images = base + (i < extra ? 1 : 0);
    parts.push({ start, images });
    start += images;
  }
  if (start !== batch || base < 1) throw new Error(`splitBatch(${batch}, ${lanes}): parts do not cover the batch`);
  return { mine: base, parts };
}

/** The shared memory's first floats stay unused, so no region starts at 0 (a null pointer to the C kernels). */
const RESERVED_FLOATS = 16;

/**
 * The images of sliced inputs the last split call copied into the threads' shared memory, where
 * they stay until a later call lays out its own: a gradient's second kernel reads the same dy as
 * its first (Conv2DBackpropInput then Conv2DBackpropFilter, and the depthwise pair, one after the
 * other on the tape), and finds its parts already there. Tensors are immutable and a dataId is
 * never reused, so the same dataId split into the same parts is the same data.
 */
let copied: {
  threads: object;
  inputs: Array<{ dataId: object; perImage: number; at: number[] }>;
  parts: Array<{ start: number; images: number }>;
  /** One past the last float the call laid out: a call that keeps an input lays out its own from here. */
  end: number;
} | undefined;

/** Floats of sliced input copied into the shared memory, and floats found there already (bench/speed.ts --profile). */
export const sharedCopies = { copied: 0, reused: 0 };

function runBatchCall(backend: BackendWasm, k: ConvExports, call: BatchCall): void {
  const run = (args: number[]): void => (k[call.kernel] as (...a: number[]) => void)(...args);
  const addon = isAddonBinding(k);
  const pool = call.batch >= 2 ? kernelThreads(call.work) : undefined;
  // threads started without the addon cannot run its kernels (the switch flipped since)
  const threads = pool !== undefined && (!addon || pool.addon) ? pool : undefined;
  // as many threads as are ready, as leave every part an image and half the threshold's work
  const perPart = splitMinWork() / 2;
  const worthwhile = perPart > 0 ? Math.floor(call.work / perPart) - 1 : Infinity;
  const lanes = threads === undefined ? 0 : Math.max(0, Math.min(threads.ready(), call.batch - 1, worthwhile));
  const here = (work: number, images: number): number[] => call.args(
    [...call.sliced.map((t) => offset(backend, t.info)), ...call.whole.map((t) => (t === undefined ? 0 : offset(backend, t))),
      offset(backend, call.out.info), work],
    images,
    0,
    true,
  );
  if (threads === undefined || lanes === 0) {
    withWork(backend, call.scratch(call.batch), (work) => run(here(work, call.batch)));
    return;
  }
  const { mine, parts } = splitBatch(call.batch, lanes);
  if (addon) {
    runInPlace(backend, k, call, threads, mine, parts);
    return;
  }
  const sameParts = copied !== undefined && copied.threads === threads && copied.parts.length === parts.length &&
    copied.parts.every((p, i) => p.start === parts[i]!.start && p.images === parts[i]!.images);
  const kept = call.sliced.map((t) =>
    sameParts ? copied!.inputs.find((c) => c.dataId === t.info.dataId && c.perImage === t.perImage) : undefined);
  // shared memory: the whole inputs once, then per part its slices (unless kept), its output and its scratch
  let at = kept.some((c) => c !== undefined) ? copied!.end : RESERVED_FLOATS;
  const take = (floats: number): number => {
    const start = at;
    at += align4(floats);
    return start;
  };
  const wholeAt = call.whole.map((t) => (t === undefined ? -1 : take(sizeOf(t.shape))));
  const outFloats = (images: number): number => ('summed' in call.out ? call.out.summed
    : 'columns' in call.out ? call.out.columns.rows * images : call.out.perImage * images);
  const layout = parts.map((part, p) => ({
    sliced: call.sliced.map((t, i) => kept[i]?.at[p] ?? take(t.perImage * part.images)),
    out: take(outFloats(part.images)),
    scratch: take(call.scratch(part.images)),
  }));
  const shared = threads.heap(at);
  copied = undefined;
  if (shared === undefined) {
    withWork(backend, call.scratch(call.batch), (work) => run(here(work, call.batch)));
    return;
  }
  const end = at;
  try {
    withWork(backend, call.scratch(mine), (work) => {
      // views after the scratch allocation, which may have grown (and detached) the heap
      const views = call.sliced.map((t) => heapFloats(backend, t.info));
      call.whole.forEach((t, i) => {
        if (t !== undefined) shared.set(heapFloats(backend, t), wholeAt[i]);
      });
      const lanesOf = parts.map((part, p) => {
        const l = layout[p]!;
        call.sliced.forEach((t, i) => {
          const floats = part.images * t.perImage;
          if (kept[i] !== undefined) {
            sharedCopies.reused += floats;
            return;
          }
          const from = part.start * t.perImage;
          shared.set(views[i]!.subarray(from, from + floats), l.sliced[i]);
          sharedCopies.copied += floats;
        });
        return threads.post(call.kernel, call.args(
          [...l.sliced.map((f) => f * 4), ...wholeAt.map((f) => (f < 0 ? 0 : f * 4)), l.out * 4, l.scratch * 4],
          part.images,
          part.start,
          false,
        ), addon);
      });
      // every part's slices are in place now
      copied = {
        threads,
        inputs: call.sliced.map((t, i) => ({ dataId: t.info.dataId, perImage: t.perImage, at: layout.map((l) => l.sliced[i]!) })),
        parts,
        end,
      };
      let takenBack = new Set<number>();
      try {
        run(here(work, mine));
      } finally {
        takenBack = threads.join();
      }
      // parts no kernel thread started run here, in place, with the same images: the same bits
      const mineToo = parts.filter((_, p) => takenBack.has(lanesOf[p]!));
      const summedHere = mineToo.length > 0 && 'summed' in call.out
        ? (backend.wasm as unknown as WasmModuleInternals)._malloc(call.out.summed * 4 * mineToo.length) : 0;
      try {
        mineToo.forEach((part, j) => {
          const perImage = 'perImage' in call.out ? call.out.perImage : 'columns' in call.out ? 1 : 0;
          const outAt = 'summed' in call.out ? summedHere + j * call.out.summed * 4
            : offset(backend, call.out.info) + part.start * perImage * 4;
          withWork(backend, call.scratch(part.images), (partWork) => run(call.args(
            [...call.sliced.map((t) => offset(backend, t.info) + part.start * t.perImage * 4),
              ...call.whole.map((t) => (t === undefined ? 0 : offset(backend, t))), outAt, partWork],
            part.images,
            part.start,
            true,
          )));
        });
        copyBack(shared, mineToo, summedHere);
      } finally {
        if (summedHere !== 0) (backend.wasm as unknown as WasmModuleInternals)._free(summedHere);
      }
    });
  } catch (e) {
    // the caller made the output for this call; nobody will own it now
    backend.disposeData(call.out.info.dataId);
    throw e;
  }

  /** The kernel threads' results into the output; parts in `mineToo` ran here (summed ones into `summedHere`). */
  function copyBack(shared: Float32Array, mineToo: Array<{ start: number; images: number }>, summedHere: number): void {
    const out = heapFloats(backend, call.out.info);
    const heap = new Float32Array(out.buffer);
    parts.forEach((part, p) => {
      const l = layout[p]!;
      const here = mineToo.indexOf(part);
      if (here >= 0 && !('summed' in call.out)) return;
      if ('summed' in call.out) {
        // in the parts' order whoever computed them: float sums depend on it
        const from = here >= 0 ? heap : shared;
        const at = here >= 0 ? summedHere / 4 + here * call.out.summed : l.out;
        for (let i = 0; i < call.out.summed; i++) out[i] = out[i]! + from[at + i]!;
      } else if ('columns' in call.out) {
        const { rows, width } = call.out.columns;
        for (let r = 0; r < rows; r++) {
          const from = l.out + r * part.images;
          out.set(shared.subarray(from, from + part.images), r * width + part.start);
        }
      } else {
        out.set(shared.subarray(l.out, l.out + part.images * call.out.perImage), part.start * call.out.perImage);
      }
    });
  }
}

/**
 * runBatchCall for the native kernels: they can read and write tfjs's heap from any thread, so
 * every part works in place — no copies in or out — with pointers as addresses (the heap does
 * not move meanwhile: nothing allocates between the posts and the join). Every part's scratch,
 * and for a summed output its partial sum, is allocated in the heap first.
 */
function runInPlace(backend: BackendWasm, k: ConvExports, call: BatchCall, threads: KernelThreads, mine: number,
  parts: Array<{ start: number; images: number }>): void {
  const addon = activeAddon();
  if (addon === undefined) throw new Error(`${call.kernel}: the native kernels are not loaded`);
  const index = addon.names.indexOf(call.kernel);
  const summed = 'summed' in call.out ? call.out.summed : 0;
  const mineFloats = align4(call.scratch(mine));
  const partFloats = parts.map((part) => align4(call.scratch(part.images)) + align4(summed));
  try {
    withWork(backend, mineFloats + partFloats.reduce((a, b) => a + b, 0), (work) => {
      const memory = (backend.wasm as unknown as WasmModuleInternals).asm?.memory;
      if (!(memory instanceof WebAssembly.Memory)) throw new Error(`${call.kernel}: no wasm heap`);
      const base = addon.address(new Uint8Array(memory.buffer, 0, 1));
      const address = (info: TensorInfo | undefined): number => (info === undefined ? 0 : base + offset(backend, info));
      const perImage = 'perImage' in call.out ? call.out.perImage : 'columns' in call.out ? 1 : 0;
      let at = work + mineFloats * 4;
      const sums: number[] = [];
      const partArgs = parts.map((part, p) => {
        const scratch = call.scratch(part.images) > 0 ? base + at : 0;
        const sum = at + align4(call.scratch(part.images)) * 4;
        at += partFloats[p]! * 4;
        sums.push(sum);
        const out = summed > 0 ? base + sum : address(call.out.info) + part.start * perImage * 4;
        return Float64Array.from(call.args(
          [...call.sliced.map((t) => address(t.info) + part.start * t.perImage * 4), ...call.whole.map(address), out, scratch],
          part.images,
          part.start,
          true,
        ));
      });
      const lanesOf = partArgs.map((args) => threads.post(call.kernel, [...args], true));
      let takenBack = new Set<number>();
      try {
        (k[call.kernel] as (...a: number[]) => void)(...call.args(
          [...call.sliced.map((t) => offset(backend, t.info)), ...call.whole.map((t) => (t === undefined ? 0 : offset(backend, t))),
            offset(backend, call.out.info), mineFloats > 0 ? work : 0],
          mine,
          0,
          true,
        ));
      } finally {
        takenBack = threads.join();
      }
      // parts no kernel thread started run here, with the same arguments: the same bits
      partArgs.forEach((args, p) => {
        if (takenBack.has(lanesOf[p]!)) addon.call(index, 0, args);
      });
      if (summed > 0) {
        // in the parts' order, whoever computed them: float sums depend on it
        const out = heapFloats(backend, call.out.info);
        const heap = new Float32Array(out.buffer);
        for (const sum of sums) {
          for (let i = 0; i < summed; i++) out[i] = out[i]! + heap[sum / 4 + i]!;
        }
      }
    });
  } catch (e) {
    backend.disposeData(call.out.info.dataId);
    throw e;
  }
}

/** A geometry (batch first) with another batch size: a part of a split call. */
const withBatch = <G extends [number, ...number[]]>(g: G, images: number): G => [images, ...g.slice(1)] as G;

/** Multiply-adds of a Conv2D (and of each of its gradients). */
export function convWork(info: Conv2DInfo): number {
  return info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth * info.inChannels;
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
    work: info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth,
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
    work: info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth,
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
    work: info.batchSize * info.outHeight * info.outWidth * info.outChannels * info.filterHeight * info.filterWidth,
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
