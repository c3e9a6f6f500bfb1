/**
 * Rows of a streamed CSV file's scratch copy (csv.ts `ParsedRows`), read ahead of the step by a
 * thread. A batch is 32 small reads: about 0.1 ms of system calls, a tenth of a small model's step,
 * and a message to a thread and back costs more than that. So the thread and the training thread
 * share a ring of slots and signal through Atomics: asking for a batch is writing its row ids,
 * taking it is a copy out of its slot — no message, no allocation but the batch.
 *
 * Batches are asked for and taken in one sequence (numbers 0, 1, 2, …; slot = number mod slots):
 * the thread reads them in that order, so a batch's rows never depend on timing.
 */
import { readSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import { startDataThread, threadScript } from './decode-pool.ts';

/** What the thread is started with (worker data). */
export interface RowThreadData {
  kind: 'rows';
  fd: number;
  /** Floats a row. */
  width: number;
  slots: number;
  /** Rows a slot holds at most. */
  rows: number;
  /** Per slot: the number asked for (−1 before), the number read, and its row count. */
  asked: SharedArrayBuffer;
  read: SharedArrayBuffer;
  counts: SharedArrayBuffer;
  ids: SharedArrayBuffer;
  data: SharedArrayBuffer;
  /** [0]: 1 once the thread failed; the message is in `data` of slot 0 as UTF-8, its length in [1]. */
  status: SharedArrayBuffer;
}

/** How long the training thread waits for one batch before it calls the thread stuck. */
const STUCK_MS = 30_000;

export class RowReader {
  private readonly worker: Worker;
  private readonly asked: Int32Array;
  private readonly read: Int32Array;
  private readonly counts: Int32Array;
  private readonly ids: Int32Array;
  private readonly data: Float32Array;
  private readonly status: Int32Array;
  private next = 0;
  private taken = 0;

  /** A thread reading `width`-float rows from `fd`, or undefined where threads cannot start (not built). */
  static start(fd: number, width: number, slots: number, rows: number): RowReader | undefined {
    const script = threadScript();
    return script === undefined ? undefined : new RowReader(script, fd, width, slots, rows);
  }

  private constructor(script: string, fd: number, readonly width: number, readonly slots: number, readonly rows: number) {
    const shared = (ints: number): SharedArrayBuffer => new SharedArrayBuffer(ints * 4);
    const init: RowThreadData = {
      kind: 'rows', fd, width, slots, rows,
      asked: shared(slots), read: shared(slots), counts: shared(slots), ids: shared(slots * rows), data: shared(slots * rows * width), status: shared(2),
    };
    this.asked = new Int32Array(init.asked).fill(-1);
    this.read = new Int32Array(init.read).fill(-1);
    this.counts = new Int32Array(init.counts);
    this.ids = new Int32Array(init.ids);
    this.data = new Float32Array(init.data);
    this.status = new Int32Array(init.status);
    this.worker = startDataThread(script, init);
  }

  /** Asks for the rows `ids` (at most `rows`); returns the batch's number, to `take` in order. */
  ask(ids: ArrayLike<number>): number {
    if (ids.length > this.rows) throw new Error(`a batch of ${ids.length} rows asked of a reader of ${this.rows}`);
    const n = this.next;
    const slot = n % this.slots;
    // the slot's last batch was asked for and never taken (a pass stopped early): drop it first
    while (this.taken <= n - this.slots) this.take(this.taken);
    for (let i = 0; i < ids.length; i++) this.ids[slot * this.rows + i] = ids[i]!;
    this.counts[slot] = ids.length;
    Atomics.store(this.asked, slot, n);
    Atomics.notify(this.asked, slot);
    this.next++;
    return n;
  }

  /**
   * The rows of batch `n`, once read (waiting, blocking, for the thread); earlier batches not taken
   * are dropped. Undefined when `n` itself was dropped (another pass asked for more since).
   */
  take(n: number): Float32Array | undefined {
    if (n < this.taken) return undefined;
    for (; this.taken < n; this.taken++) this.wait(this.taken);
    const slot = this.wait(n);
    this.taken = n + 1;
    const size = this.counts[slot]! * this.width;
    return this.data.slice(slot * this.rows * this.width, slot * this.rows * this.width + size);
  }

  /** Stops the thread. */
  close(): Promise<number> {
    return this.worker.terminate();
  }

  private wait(n: number): number {
    const slot = n % this.slots;
    const since = performance.now();
    for (let v = Atomics.load(this.read, slot); v !== n; v = Atomics.load(this.read, slot)) {
      if (Atomics.load(this.status, 0) !== 0) throw new Error(`the row reading thread failed: ${this.message()}`);
      if (performance.now() - since > STUCK_MS) throw new Error(`the row reading thread did not answer for ${STUCK_MS / 1000} s`);
      Atomics.wait(this.read, slot, v, 100);
    }
    return slot;
  }

  private message(): string {
    const bytes = new Uint8Array(this.data.buffer, 0, Atomics.load(this.status, 1));
    return Buffer.from(bytes).toString('utf8');
  }
}

/** The thread's side: reads each batch asked for, in number order, forever. */
export function serveRows(d: RowThreadData): void {
  const asked = new Int32Array(d.asked);
  const read = new Int32Array(d.read);
  const counts = new Int32Array(d.counts);
  const ids = new Int32Array(d.ids);
  const bytes = new Uint8Array(d.data);
  const status = new Int32Array(d.status);
  const rowBytes = d.width * 4;
  try {
    for (let n = 0; ; n++) {
      const slot = n % d.slots;
      for (let v = Atomics.load(asked, slot); v !== n; v = Atomics.load(asked, slot)) Atomics.wait(asked, slot, v);
      const at = slot * d.rows * rowBytes;
      for (let i = 0; i < counts[slot]!; i++) {
        const id = ids[slot * d.rows + i]!;
        if (readSync(d.fd, bytes, at + i * rowBytes, rowBytes, id * rowBytes) !== rowBytes) throw new Error(`row ${id} is past the end of the scratch file`);
      }
      Atomics.store(read, slot, n);
      Atomics.notify(read, slot);
    }
  } catch (e) {
    const message = Buffer.from(e instanceof Error ? e.message : String(e)).subarray(0, Math.min(1024, bytes.length));
    bytes.set(message);
    Atomics.store(status, 1, message.length);
    Atomics.store(status, 0, 1);
    for (let slot = 0; slot < d.slots; slot++) Atomics.notify(read, slot);
  }
}
