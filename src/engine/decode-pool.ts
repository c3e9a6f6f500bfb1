/**
 * Worker threads that decode batches of image files (samples.ts) off the training thread. A batch
 * goes whole to the thread with the fewest batches in hand; its floats come back in a shared
 * buffer, placed by the caller by batch index, so order never depends on which thread finished
 * first. With 0 threads (or where threads cannot start) batches are decoded on the calling
 * thread — the same function, the same floats.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LayerwiseError } from '../core/errors.ts';
import { isDecodeReply, type DecodeRequest, type DecodeTask } from './decode-protocol.ts';
import { decodeBatch, type DecodedBatch } from './samples.ts';

/** Threads when the caller does not say: the cores but one (the training thread's), at most 4. */
export function defaultDecodeThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

/** The bundled thread beside dist/cli.js and dist/worker.js, else this folder's source (tsx). */
export function threadScript(): string | undefined {
  return [path.join(__dirname, 'decode-thread.js'), path.join(__dirname, 'decode-thread.ts')].find((p) => existsSync(p));
}

/** A data thread (`threadScript`) started with `workerData`; unref'd: an idle one never keeps a finished run's process alive. */
export function startDataThread(script: string, workerData?: unknown): Worker {
  const options = { workerData, stdout: false, stderr: false };
  // from source (tests, tsx) the thread registers tsx's CommonJS hook itself: loader hooks
  // registered with --import do not reach worker threads. Resolved beside the script: an eval'd
  // thread resolves bare names from the working folder, which may be any folder the user runs from
  const worker = script.endsWith('.ts')
    ? new Worker(`require(${JSON.stringify(createRequire(script).resolve('tsx/cjs'))}); require(${JSON.stringify(script)});`, { ...options, eval: true })
    : new Worker(script, options);
  worker.unref();
  return worker;
}

interface Lane {
  worker: Worker;
  inHand: number;
  /** Set by close: the worker stays ref'd until it has exited. */
  closing: boolean;
}

export class DecodePool {
  private lanes: Lane[] = [];
  private readonly waiting = new Map<number, { lane: Lane; resolve: (b: DecodedBatch) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  /** Why batches are decoded on the calling thread, when they are. */
  readonly note: string;

  constructor(readonly threads: number) {
    const script = threads > 0 ? threadScript() : undefined;
    if (threads > 0 && script === undefined) {
      this.threads = 0;
      this.note = 'decode-thread.js is not built (npm run build): batches are read on the training thread';
    } else this.note = threads === 0 ? 'batches are read on the training thread' : `${threads} decoding thread${threads === 1 ? '' : 's'}`;
  }

  decode(task: DecodeTask): Promise<DecodedBatch> {
    if (this.threads === 0) return decodeBatch(task.recipe, task.job);
    this.start();
    const lane = this.lanes.reduce((a, b) => (b.inHand < a.inHand ? b : a));
    const id = this.nextId++;
    lane.inHand++;
    if (lane.inHand === 1) lane.worker.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { lane, resolve, reject });
      lane.worker.postMessage({ id, task } satisfies DecodeRequest);
    });
  }

  /** Starts the threads ahead of the first batch (their start-up then overlaps other work). */
  warm(): void {
    if (this.threads > 0) this.start();
  }

  /** Stops the threads; a later `decode` starts new ones. */
  async close(): Promise<void> {
    const lanes = this.lanes;
    this.lanes = [];
    // an unref'd thread's termination does not keep Node running: hold it until it has exited (a
    // reply that arrives meanwhile must not unref it again, or Node may exit with close pending)
    await Promise.all(lanes.map((l) => {
      l.closing = true;
      l.worker.ref();
      return l.worker.terminate();
    }));
  }

  private start(): void {
    if (this.lanes.length > 0) return;
    const script = threadScript()!;
    for (let i = 0; i < this.threads; i++) {
      const worker = startDataThread(script);
      const lane: Lane = { worker, inHand: 0, closing: false };
      worker.on('message', (m: unknown) => {
        if (!isDecodeReply(m)) return;
        const w = this.waiting.get(m.id);
        if (w === undefined) return;
        this.waiting.delete(m.id);
        if (--lane.inHand === 0 && !lane.closing) worker.unref();
        if (m.error === undefined) w.resolve({ x: m.x, bad: m.bad });
        else if (m.file !== undefined || m.field !== undefined) w.reject(new LayerwiseError(m.error, { file: m.file, field: m.field }));
        else w.reject(new Error(`decoding thread: ${m.error}`));
      });
      const fail = (why: string): void => {
        for (const [id, w] of this.waiting) {
          if (w.lane !== lane) continue;
          this.waiting.delete(id);
          w.reject(new Error(`a decoding thread stopped: ${why}`));
        }
        this.lanes = this.lanes.filter((l) => l !== lane);
      };
      worker.on('error', (e) => fail(e.message));
      worker.on('exit', (code) => fail(`exit code ${code}`));
      this.lanes.push(lane);
    }
  }
}
