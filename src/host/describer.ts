/**
 * Model descriptions for the tree and the panel, without tfjs in the host: one long-lived worker
 * answers `describe` / `describeModel` requests and is stopped after a quiet minute. Answers are
 * cached by `modelCacheKey` (model path + mtime, head, data when the head needs it), so edits to
 * multipliers never reload the model.
 */
import { randomUUID } from 'node:crypto';
import type { ModelInfo } from '../core/model-info.ts';
import { LayerwiseError } from '../core/errors.ts';
import type { DescribeModelRequest, DescribeRequest, HostToWorker, ProblemInfo, WorkerToHost } from '../protocol/worker.ts';
import { WorkerProcess, describeExit, type WorkerLog } from './worker-process.ts';

export interface Described {
  model: ModelInfo;
  trainSamples?: number;
}

type DescribeJobInput = Omit<DescribeRequest, 'id'> | Omit<DescribeModelRequest, 'id'>;

interface Pending {
  resolve: (d: Described) => void;
  reject: (e: Error) => void;
}

const IDLE_MS = 60_000;

export class ModelDescriber {
  private worker: WorkerProcess | undefined;
  private readonly pending = new Map<string, Pending>();
  private readonly cache = new Map<string, Promise<Described>>();
  private idleTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly workerScript: string, private readonly log: WorkerLog) {}

  /** The description for `key`, asking the worker only when the key is new. Failures are not cached. */
  describe(key: string, job: DescribeJobInput): Promise<Described> {
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    const p = this.request(job);
    this.cache.set(key, p);
    p.catch(() => this.cache.delete(key));
    // keep the cache small: plans × a few recent keys
    if (this.cache.size > 64) this.cache.delete(this.cache.keys().next().value as string);
    return p;
  }

  /** A bare request, never cached (Create Plan from Model). */
  request(job: DescribeJobInput): Promise<Described> {
    const id = randomUUID();
    const worker = this.ensureWorker();
    this.clearIdle();
    return new Promise<Described>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ready.then(
        () => {
          if (!worker.send({ ...job, id } as HostToWorker)) this.settle(id, new Error('the model worker is not running'));
        },
        (e: unknown) => this.settle(id, e instanceof Error ? e : new Error(String(e))),
      );
    });
  }

  private ensureWorker(): WorkerProcess {
    if (this.worker !== undefined && this.worker.exited === undefined) return this.worker;
    const worker = new WorkerProcess(this.workerScript, this.log, { label: 'model worker' });
    this.worker = worker;
    worker.onMessage((m) => this.onMessage(m));
    worker.onExit((info) => {
      if (this.worker === worker) this.worker = undefined;
      const why = new Error(describeExit(info));
      for (const id of [...this.pending.keys()]) this.settle(id, why);
    });
    return worker;
  }

  private onMessage(m: WorkerToHost): void {
    switch (m.type) {
      case 'described':
        this.settle(m.id, undefined, { model: m.model, ...(m.trainSamples === undefined ? {} : { trainSamples: m.trainSamples }) });
        break;
      case 'failed':
        this.settle(m.id, failure(m.problem));
        break;
      case 'event':
        if (m.event.kind === 'log') this.log.info(`[model worker] ${m.event.message}`);
        break;
      case 'ready':
      case 'trained':
      case 'lrFound':
        break;
    }
  }

  private settle(id: string, error: Error | undefined, value?: Described): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    this.pending.delete(id);
    if (error !== undefined || value === undefined) p.reject(error ?? new Error('no description'));
    else p.resolve(value);
    if (this.pending.size === 0) this.armIdle();
  }

  private armIdle(): void {
    this.clearIdle();
    this.idleTimer = setTimeout(() => this.worker?.stop(), IDLE_MS);
    this.idleTimer.unref?.();
  }

  private clearIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Forgets cached descriptions (the Refresh command), so the next look reloads the models. */
  clear(): void {
    this.cache.clear();
  }

  dispose(): void {
    this.clearIdle();
    this.worker?.stop(true);
    this.worker = undefined;
  }
}

/** The worker's problem as a LayerwiseError, so the host can place it at its field. */
function failure(p: ProblemInfo): LayerwiseError {
  const prefix = [p.file, p.field].filter((x): x is string => x !== undefined && x !== '').join(': ');
  const problem = prefix !== '' && p.message.startsWith(`${prefix}: `) ? p.message.slice(prefix.length + 2) : p.message;
  return new LayerwiseError(problem, { ...(p.file === undefined ? {} : { file: p.file }), ...(p.field === undefined ? {} : { field: p.field }) });
}
