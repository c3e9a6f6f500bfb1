/**
 * One kernel call split over the batch between the calling thread and the kernel threads
 * (threads.ts): the wasm kernels' parts work on copies in the threads' shared memory, the native
 * kernels' parts in place in tfjs's heap (native-addon.ts).
 */
import type { TensorInfo } from '@tensorflow/tfjs';
import { heapFloats, heapModule, offset, withWork, type BackendWasm } from './heap.ts';
import { activeAddon, isAddonBinding } from './native-addon.ts';
import { kernelThreads, splitMinWork, type KernelThreads, type ThreadedKernel } from './threads.ts';

/** The kernels a split call runs: the wasm module's exports or the addon's binding of them. */
type KernelSet = { [K in ThreadedKernel]: (...args: never[]) => unknown };

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const align4 = (n: number): number => Math.ceil(n / 4) * 4;

/**
 * One kernel call that may be split over the batch: the kernel threads take the last images,
 * on copies in their shared memory, and this thread the first ones in place.
 */
export interface BatchCall {
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

export function runBatchCall(backend: BackendWasm, k: KernelSet, call: BatchCall): void {
  const run = (args: number[]): void => (k[call.kernel] as unknown as (...a: number[]) => void)(...args);
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
        ? heapModule(backend)._malloc(call.out.summed * 4 * mineToo.length) : 0;
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
        if (summedHere !== 0) heapModule(backend)._free(summedHere);
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
function runInPlace(backend: BackendWasm, k: KernelSet, call: BatchCall, threads: KernelThreads, mine: number,
  parts: Array<{ start: number; images: number }>): void {
  const addon = activeAddon();
  if (addon === undefined) throw new Error(`${call.kernel}: the native kernels are not loaded`);
  const index = addon.names.indexOf(call.kernel);
  const summed = 'summed' in call.out ? call.out.summed : 0;
  const mineFloats = align4(call.scratch(mine));
  const partFloats = parts.map((part) => align4(call.scratch(part.images)) + align4(summed));
  try {
    withWork(backend, mineFloats + partFloats.reduce((a, b) => a + b, 0), (work) => {
      const memory = heapModule(backend).asm?.memory;
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
        (k[call.kernel] as unknown as (...a: number[]) => void)(...call.args(
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

