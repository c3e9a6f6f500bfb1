/**
 * One forked engine worker (dist/worker.js) seen from the host: typed messages in and out, every
 * incoming one checked with `isWorkerToHost`, stdout/stderr sent to the log, and one `exit`
 * notification however the process ends. No `vscode` import, so it runs under plain Node too.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { isWorkerToHost, type HostToWorker, type WorkerToHost } from '../protocol/worker.ts';

export interface WorkerLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface WorkerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started or its channel failed. */
  error?: string;
}

type Listener<T> = (value: T) => void;

export class WorkerProcess {
  private readonly child: ChildProcess;
  private readonly messageListeners = new Set<Listener<WorkerToHost>>();
  private readonly exitListeners = new Set<Listener<WorkerExit>>();
  private exitInfo: WorkerExit | undefined;
  /** Resolves with the worker's pid once it says `ready`; rejects if it exits first. */
  readonly ready: Promise<number>;

  constructor(script: string, private readonly log: WorkerLog, opts: { cwd?: string; label: string }) {
    this.child = fork(script, [], {
      cwd: opts.cwd,
      serialization: 'json',
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      // an inspector flag inherited from a debugged extension host would make every worker wait
      execArgv: [],
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    const tag = `[${opts.label}${this.child.pid === undefined ? '' : ` pid ${this.child.pid}`}]`;
    forwardLines(this.child.stdout, (line) => log.info(`${tag} ${line}`));
    forwardLines(this.child.stderr, (line) => log.warn(`${tag} ${line}`));

    let resolveReady: (pid: number) => void = () => undefined;
    let rejectReady: (e: Error) => void = () => undefined;
    this.ready = new Promise<number>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    // nobody may be waiting on `ready` when the worker dies later; that is reported through `exit`
    this.ready.catch(() => undefined);

    this.child.on('message', (raw: unknown) => {
      if (!isWorkerToHost(raw)) {
        log.error(`${tag} ignored a malformed message: ${preview(raw)}`);
        return;
      }
      if (raw.type === 'ready') resolveReady(raw.pid);
      for (const l of [...this.messageListeners]) l(raw);
    });
    const finish = (info: WorkerExit) => {
      if (this.exitInfo !== undefined) return;
      this.exitInfo = info;
      rejectReady(new Error(describeExit(info)));
      for (const l of [...this.exitListeners]) l(info);
      this.messageListeners.clear();
      this.exitListeners.clear();
    };
    this.child.on('error', (e) => {
      log.error(`${tag} ${e.message}`);
      // a failed spawn emits no 'exit'; a failed send on a live process is followed by one
      if (this.child.pid === undefined) finish({ code: null, signal: null, error: e.message });
    });
    this.child.on('exit', (code, signal) => finish({ code, signal }));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get exited(): WorkerExit | undefined {
    return this.exitInfo;
  }

  onMessage(listener: Listener<WorkerToHost>): () => void {
    this.messageListeners.add(listener);
    return () => this.messageListeners.delete(listener);
  }

  /** Called once when the process ends (immediately if it already has). */
  onExit(listener: Listener<WorkerExit>): () => void {
    if (this.exitInfo !== undefined) {
      listener(this.exitInfo);
      return () => undefined;
    }
    this.exitListeners.add(listener);
    return () => this.exitListeners.delete(listener);
  }

  /** False when the channel is already closed (the process has ended or is ending). */
  send(message: HostToWorker): boolean {
    if (this.exitInfo !== undefined || !this.child.connected) return false;
    try {
      return this.child.send(message);
    } catch (e) {
      this.log.error(`cannot send to the worker: ${e instanceof Error ? e.message : String(e)}`);
      return false;
    }
  }

  /** Ends the process: closes the channel (the worker exits on `disconnect`) and, with `force`, kills it. */
  stop(force = false): void {
    if (this.exitInfo !== undefined) return;
    if (force) this.child.kill('SIGKILL');
    else if (this.child.connected) this.child.disconnect();
    else this.child.kill();
  }
}

export function describeExit(info: WorkerExit): string {
  if (info.error !== undefined) return `the worker process could not run: ${info.error}`;
  if (info.signal !== null) return `the worker process was killed (${info.signal})`;
  return `the worker process exited with code ${info.code ?? 'unknown'}`;
}

function forwardLines(stream: NodeJS.ReadableStream | null, write: (line: string) => void): void {
  if (stream === null) return;
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split(/\r?\n/);
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.trim() !== '') write(line);
  });
  stream.on('end', () => {
    if (pending.trim() !== '') write(pending);
    pending = '';
  });
}

function preview(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 200 ? `${s.slice(0, 200)}…` : s;
}
