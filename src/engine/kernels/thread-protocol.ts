/**
 * What a kernel thread (thread.ts) and the thread that calls it (threads.ts) share: the words
 * of a lane and their values. A lane is one Int32Array the calling thread writes a call into
 * and the kernel thread answers in; arguments travel as float64 (every C argument is an int or
 * a float32, both exact in a double; so is an x86-64 address, which the native kernels take).
 */

/** Word indices in a lane. */
/** `addon`: 1 when the call is for the native addon's kernels, 0 for the wasm module's. */
export const LANE = { state: 0, op: 1, count: 2, addon: 3 } as const;
export const LANE_WORDS = 4;

/**
 * Values of the lane's state word. A posted call is `work` until the kernel thread claims it
 * (`running`, by compare-and-exchange); until then the calling thread may take it back (`idle`)
 * and run it itself, when the kernel thread has not been scheduled (threads.ts, join).
 */
export const STATE = { starting: 0, idle: 1, work: 2, done: 3, failed: 4, stop: 5, running: 6 } as const;

export const MAX_ARGS = 32;
export const PROBLEM_BYTES = 512;

export interface ThreadData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  /** The kernels' export names; a call names one by its index here. */
  names: readonly string[];
  /** The native addon (native-addon.ts) when the calling thread runs it: its kernels must run here too. */
  addon: string | undefined;
  lane: SharedArrayBuffer;
  args: SharedArrayBuffer;
  /** UTF-8 message of the last failure, zero-terminated. */
  problem: SharedArrayBuffer;
}
