/**
 * Kernel threads: the conv kernels split a batch between the thread tfjs runs on and one
 * worker_threads Worker per further core. tfjs's wasm heap cannot be shared (tfjs disables its
 * threaded build under Node, and a plain WebAssembly.Memory cannot be given to another thread),
 * so each worker runs the same C kernels (kernels-shared.wasm) over a shared memory of its own,
 * on copies of its images; the calling thread works on its images in place, then waits
 * (Atomics.wait — the calling thread does nothing else meanwhile, as with any synchronous kernel)
 * and copies the workers' results back. Copies are memcpy speed (~0.3 ms for the largest
 * tensors of the bench's CNN) against several ms of convolution per half batch. The native
 * kernels (native-addon.ts) need none of that: native code reads tfjs's heap from any thread, so
 * their calls carry addresses into it and every part works in place (native.ts, runInPlace).
 *
 * Threads start in the background when the kernels are registered and take work once they
 * report ready; until then, and wherever they cannot start (one core, no dist/kernels/thread.js,
 * no shared memory), every kernel runs on the calling thread alone.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LANE, LANE_WORDS, MAX_ARGS, PROBLEM_BYTES, STATE, type ThreadData } from './thread-protocol.ts';

/** The C kernels a thread may run, by the index a call sends. */
export const THREADED_KERNELS = [
  'conv2d_forward',
  'conv2d_filter_grad',
  'conv2d_input_grad',
  'depthwise_forward',
  'depthwise_filter_grad',
  'depthwise_input_grad',
  'matmul_part',
  'batch_matmul',
] as const;
export type ThreadedKernel = (typeof THREADED_KERNELS)[number];

/** Atomics.waitAsync is in Node 20; TypeScript declares it from lib ES2024 on. */
const waitAsync = (Atomics as unknown as {
  waitAsync(array: Int32Array, index: number, value: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const PAGE = 65536;
/**
 * How long `join` polls before it sleeps. Measured in alternating runs of bench/speed.ts: 1 ms
 * gave transformer 107–110 steps/s against 94–104 sleeping at once, CNN 35.0–35.3 against
 * 33.8–34.7; polling in the kernel thread instead (for the next call) gained nothing.
 */
const JOIN_POLL_MS = 1;
/** No single kernel call takes minutes: a call unanswered for this long is lost. */
const JOIN_LIMIT_MS = 300_000;
/** 2 GB: a part's copies beyond that run on the calling thread instead. */
const MAX_PAGES = 32768;
const SCRIPT = 'thread.js';

interface Lane {
  worker: Worker;
  words: Int32Array;
  args: Float64Array;
  problem: Uint8Array;
}

export class KernelThreads {
  private readonly lanes: Lane[] = [];
  private readonly memory: WebAssembly.Memory;
  private floats: Float32Array;
  private stopped = false;
  /** Calls posted so far (tests check that a split really happened). */
  posted = 0;
  /** Posted calls that `join` took back unstarted and the calling thread ran. */
  takenBack = 0;

  /** Whether the threads can run the native addon's kernels. */
  readonly addon: boolean;

  constructor(module: WebAssembly.Module, script: string, count: number, addon: string | undefined) {
    this.addon = addon !== undefined;
    this.memory = new WebAssembly.Memory({ initial: 256, maximum: MAX_PAGES, shared: true });
    this.floats = new Float32Array(this.memory.buffer);
    for (let i = 0; i < count; i++) {
      const data: ThreadData = {
        module,
        memory: this.memory,
        names: THREADED_KERNELS,
        addon,
        lane: new SharedArrayBuffer(LANE_WORDS * 4),
        args: new SharedArrayBuffer(MAX_ARGS * 8),
        problem: new SharedArrayBuffer(PROBLEM_BYTES),
      };
      const worker = new Worker(script, { workerData: data, stdout: false, stderr: false });
      // an idle kernel thread must never keep a finished CLI run or test process alive
      worker.unref();
      const lane: Lane = {
        worker,
        words: new Int32Array(data.lane),
        args: new Float64Array(data.args),
        problem: new Uint8Array(data.problem),
      };
      // a thread that dies (it cannot start, or is terminated) is simply never ready again;
      // the notify wakes `started()` waiting on it
      const gone = (): void => {
        Atomics.store(lane.words, LANE.state, STATE.stop);
        Atomics.notify(lane.words, LANE.state);
      };
      worker.on('error', gone);
      worker.on('exit', gone);
      this.lanes.push(lane);
    }
  }

  /** How many threads can take a call now (the others are still starting, or gone). */
  ready(): number {
    if (this.stopped) return 0;
    let n = 0;
    for (const lane of this.lanes) if (Atomics.load(lane.words, LANE.state) === STATE.idle) n++;
    return n;
  }

  /** Resolves when every thread is ready (or gone): for tests and benchmarks that need them up. */
  async started(): Promise<number> {
    // a pending Atomics.waitAsync does not keep Node running: hold the threads while waiting
    for (const lane of this.lanes) lane.worker.ref();
    try {
      await Promise.all(this.lanes.map(async (lane) => {
        for (;;) {
          const state = Atomics.load(lane.words, LANE.state);
          if (state !== STATE.starting) return;
          const wait = waitAsync(lane.words, LANE.state, STATE.starting);
          if (wait.async) await wait.value;
        }
      }));
    } finally {
      for (const lane of this.lanes) lane.worker.unref();
    }
    return this.ready();
  }

  /**
   * The shared memory as floats, grown to hold `floats` (from offset 0); undefined when it
   * cannot grow that far. Views taken earlier go stale on growth: take this one after sizing.
   */
  heap(floats: number): Float32Array | undefined {
    const bytes = floats * 4;
    if (bytes > this.memory.buffer.byteLength) {
      const pages = Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE);
      if (this.memory.buffer.byteLength / PAGE + pages > MAX_PAGES) return undefined;
      try {
        this.memory.grow(pages);
      } catch {
        return undefined;
      }
    }
    if (this.floats.buffer !== this.memory.buffer || this.floats.length * 4 !== this.memory.buffer.byteLength) {
      this.floats = new Float32Array(this.memory.buffer);
    }
    return this.floats;
  }

  /**
   * Starts kernel `name` on the next ready thread (call at most `ready()` times before `join`);
   * returns the lane's number, by which `join` names calls it took back. `addon`: run the native
   * addon's kernel (the calling thread's own kernels are the addon's), else the wasm module's.
   */
  post(name: ThreadedKernel, args: readonly number[], addon = false): number {
    if (args.length > MAX_ARGS) throw new Error(`${name}: ${args.length} arguments, at most ${MAX_ARGS}`);
    const index = this.lanes.findIndex((l) => Atomics.load(l.words, LANE.state) === STATE.idle);
    const lane = this.lanes[index];
    if (lane === undefined) throw new Error(`${name}: no kernel thread is ready`);
    if (addon && !this.addon) throw new Error(`${name}: the kernel threads were started without the native addon`);
    lane.args.set(args);
    Atomics.store(lane.words, LANE.op, THREADED_KERNELS.indexOf(name));
    Atomics.store(lane.words, LANE.count, args.length);
    Atomics.store(lane.words, LANE.addon, addon ? 1 : 0);
    Atomics.store(lane.words, LANE.state, STATE.work);
    if (wakeThreads) Atomics.notify(lane.words, LANE.state);
    this.posted++;
    return index;
  }

  /**
   * Waits for every call posted since the last join; throws what a thread reported. Returns the
   * lanes whose call this thread took back, unstarted, after polling JOIN_POLL_MS: the caller
   * must run those itself. On a busy machine a kernel thread can wait many milliseconds for a
   * core while this one, which already has one, would otherwise sleep. A thread that dies
   * mid-call cannot say so while this thread is blocked here (its exit event needs the event
   * loop), so a call that takes longer than JOIN_LIMIT_MS is given up as lost.
   */
  join(takeBack = true): Set<number> {
    let failure: string | undefined;
    const takenBack = new Set<number>();
    for (const [index, lane] of this.lanes.entries()) {
      let state = Atomics.load(lane.words, LANE.state);
      const since = performance.now();
      // poll first: this thread has nothing else to do, and waking from Atomics.wait takes a while
      const pollUntil = since + (takeBackAfterMs ?? JOIN_POLL_MS);
      while ((state === STATE.work || state === STATE.running) && performance.now() < pollUntil) {
        state = Atomics.load(lane.words, LANE.state);
      }
      if (takeBack && takeBackOn && state === STATE.work && Atomics.compareExchange(lane.words, LANE.state, STATE.work, STATE.idle) === STATE.work) {
        takenBack.add(index);
        this.takenBack++;
        continue;
      }
      state = Atomics.load(lane.words, LANE.state);
      while (state === STATE.work || state === STATE.running) {
        Atomics.wait(lane.words, LANE.state, state, 1000);
        state = Atomics.load(lane.words, LANE.state);
        if (state === STATE.running && performance.now() - since > JOIN_LIMIT_MS) {
          // never hand this lane work again; the run fails with a message rather than hanging
          Atomics.store(lane.words, LANE.state, STATE.stop);
          failure ??= `no answer after ${JOIN_LIMIT_MS / 1000} s (the thread died or hangs)`;
          state = STATE.stop;
        }
      }
      if (state === STATE.failed) {
        const end = lane.problem.indexOf(0);
        failure ??= new TextDecoder().decode(lane.problem.slice(0, end < 0 ? undefined : end));
      }
      if (state === STATE.done || state === STATE.failed) Atomics.store(lane.words, LANE.state, STATE.idle);
    }
    if (failure !== undefined) throw new Error(`a kernel thread failed: ${failure}`);
    return takenBack;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const lane of this.lanes) {
      Atomics.store(lane.words, LANE.state, STATE.stop);
      Atomics.notify(lane.words, LANE.state);
    }
    await Promise.all(this.lanes.map((lane) => lane.worker.terminate()));
  }
}

/** Beside the bundle (dist/kernels), or dist/kernels of the checkout when run from source. */
function scriptPath(): string | undefined {
  return [path.join(__dirname, 'kernels', SCRIPT), path.join(__dirname, '..', '..', '..', 'dist', 'kernels', SCRIPT)]
    .find((f) => existsSync(f));
}

export type ThreadStatus = { threads: number; note: string };

let pool: KernelThreads | undefined;
let status: ThreadStatus = { threads: 0, note: 'kernel threads not started' };
let enabled = true;
/**
 * Multiply-adds below which splitting costs more than it saves: the copies, the hand-over and
 * packing the shared operand twice took ~0.1 ms on the 2-core machine this was measured on: a
 * 64×256·256×256 product (4 M) gained nothing, a 64×784·784×256 one (13 M) about 30 %.
 */
export const SPLIT_MIN_WORK = 6e6;
/** Set by tests to split every call, however small. */
let minWorkOverride: number | undefined;
/** Set by tests to take unstarted calls back sooner (0: at once, so nearly always). */
let takeBackAfterMs: number | undefined;
/** Off: join always waits for the kernel threads (benches compare both). */
let takeBackOn = true;
/** Off in tests only: posted calls do not wake a sleeping kernel thread, as when it waits for a core. */
let wakeThreads = true;

/**
 * How many kernel threads to run: LAYERWISE_KERNEL_THREADS when set (0 turns them off; for
 * containers whose CPU quota is below their visible cores), else one per core beyond the first,
 * at most 7.
 */
export function kernelThreadCount(env: NodeJS.ProcessEnv = process.env): { count: number; why: string } {
  const asked = env['LAYERWISE_KERNEL_THREADS'];
  if (asked !== undefined && asked.trim() !== '') {
    const n = Number(asked);
    if (Number.isInteger(n) && n >= 0 && n <= 64) return { count: n, why: 'LAYERWISE_KERNEL_THREADS' };
  }
  return { count: Math.min(7, availableParallelism() - 1), why: `${availableParallelism()} cores` };
}

/**
 * Starts the kernel threads once (`count` of them; default kernelThreadCount()); returns why
 * there are none when they cannot start. `module` is the shared-memory build of the kernels;
 * `addon` the native addon's file when the calling thread runs it (native-addon.ts).
 */
export function startKernelThreads(module: WebAssembly.Module | undefined, count = kernelThreadCount().count,
  addon?: string): ThreadStatus {
  if (pool !== undefined || module === undefined) {
    if (module === undefined) status = { threads: 0, note: 'no shared-memory kernels module (kernels-shared.wasm)' };
    return status;
  }
  const script = scriptPath();
  if (count < 1) status = { threads: 0, note: `no kernel threads (${kernelThreadCount().why}): kernels run on one thread` };
  else if (script === undefined) status = { threads: 0, note: `${SCRIPT} not built (npm run build): kernels run on one thread` };
  else {
    try {
      pool = new KernelThreads(module, script, count, addon);
      status = { threads: count, note: `conv and matrix-product kernels split over ${count + 1} threads` };
    } catch (e) {
      status = { threads: 0, note: `kernel threads could not start (${e instanceof Error ? e.message : String(e)})` };
    }
  }
  return status;
}

/** Stops the threads (tests that restart them with another count). */
export async function stopKernelThreads(): Promise<void> {
  const stopping = pool;
  pool = undefined;
  status = { threads: 0, note: 'kernel threads stopped' };
  await stopping?.stop();
}

export function kernelThreadStatus(): ThreadStatus {
  return status;
}

/** The multiply-adds from which calls are split (lowered by tests). */
export function splitMinWork(): number {
  return minWorkOverride ?? SPLIT_MIN_WORK;
}

/** The pool, for a call of `work` multiply-adds when it is worth splitting (omitted: any call). */
export function kernelThreads(work = Infinity): KernelThreads | undefined {
  return enabled && work >= (minWorkOverride ?? SPLIT_MIN_WORK) ? pool : undefined;
}

/** Whether a call over `batch` images of `work` multiply-adds would be split now. */
export function threadsCanSplit(batch: number, work: number): boolean {
  const threads = kernelThreads(work);
  return threads !== undefined && batch > 1 && threads.ready() > 0;
}

/**
 * Switches splitting off and on, for tests that check both paths and benches that compare
 * them; `minWork` (multiply-adds) lets tests split calls too small to be worth it, and
 * `takeBackAfterMs` lets them make the calling thread take posted calls back (see join);
 * `takeBack: false` makes it always wait for the kernel threads instead; `wake: false` posts
 * calls without waking a sleeping kernel thread, so tests see calls taken back on any machine.
 */
export function useKernelThreads(on: boolean, options: { minWork?: number; takeBackAfterMs?: number; takeBack?: boolean; wake?: boolean } = {}): void {
  enabled = on;
  minWorkOverride = options.minWork;
  takeBackAfterMs = options.takeBackAfterMs;
  takeBackOn = options.takeBack ?? true;
  wakeThreads = options.wake ?? true;
}
