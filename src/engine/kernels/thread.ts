/**
 * The body of one kernel thread (a worker_threads Worker started by threads.ts; bundled by
 * scripts/build.mjs into dist/kernels/thread.js). It instantiates the kernels module over the
 * shared memory it is given (and loads the native addon when the calling thread runs it) and
 * then only ever does one thing: wait for a call in its lane,
 * run it, say it is done. No messages, no event loop work: the calling thread is blocked in
 * Atomics.wait meanwhile, so the lane's shared words are the whole protocol.
 */
import { workerData } from 'node:worker_threads';
import { loadAddon } from './native-addon.ts';
import { LANE, STATE, type ThreadData } from './thread-protocol.ts';

const data = workerData as ThreadData;
const exports = new WebAssembly.Instance(data.module, { env: { memory: data.memory } }).exports;
const functions = data.names.map((name) => {
  const f = exports[name];
  if (typeof f !== 'function') throw new Error(`the kernels module has no export "${name}"`);
  return f as (...args: number[]) => unknown;
});
/**
 * The same kernels from the addon. Their pointers are addresses (base 0): native code works in
 * tfjs's own heap from this thread, in place (native.ts, runInPlace).
 */
const addonFunctions = ((): Array<(args: Float64Array) => unknown> | undefined => {
  if (data.addon === undefined) return undefined;
  const addon = loadAddon(data.addon);
  return data.names.map((name) => {
    const index = addon.names.indexOf(name);
    if (index < 0) throw new Error(`the kernel addon has no "${name}"`);
    return (args) => addon.call(index, 0, args);
  });
})();
const lane = new Int32Array(data.lane);
const args = new Float64Array(data.args);
const problem = new Uint8Array(data.problem);

Atomics.store(lane, LANE.state, STATE.idle);
Atomics.notify(lane, LANE.state);

for (;;) {
  let state = Atomics.load(lane, LANE.state);
  // sleep at once: polling for the next call (2 ms) sped up products timed alone but slowed
  // whole training steps on the 2-core machine measured (MLP 265–288 → 229–248 steps/s)
  while (state !== STATE.work && state !== STATE.stop) {
    Atomics.wait(lane, LANE.state, state);
    state = Atomics.load(lane, LANE.state);
  }
  if (state === STATE.stop) break;
  // claim the call; the calling thread may have taken it back while this thread was not running
  if (Atomics.compareExchange(lane, LANE.state, STATE.work, STATE.running) !== STATE.work) continue;
  try {
    const op = Atomics.load(lane, LANE.op);
    if (Atomics.load(lane, LANE.addon) === 1) {
      const f = addonFunctions?.[op];
      if (f === undefined) throw new Error(`no addon kernel number ${op}`);
      f(args);
    } else {
      const f = functions[op];
      if (f === undefined) throw new Error(`no kernel number ${op}`);
      f(...args.subarray(0, Atomics.load(lane, LANE.count)));
    }
    Atomics.store(lane, LANE.state, STATE.done);
  } catch (e) {
    const text = new TextEncoder().encode(e instanceof Error ? e.message : String(e));
    problem.fill(0);
    problem.set(text.subarray(0, problem.length - 1));
    Atomics.store(lane, LANE.state, STATE.failed);
  }
  Atomics.notify(lane, LANE.state);
}
