/**
 * The engine tests' one way to run Layerwise in a child process: the training worker driven
 * through its IPC protocol as the extension host drives it, and the CLI as a user runs it.
 */
import assert from 'node:assert/strict';
import { fork, spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isWorkerToHost, type HostToWorker, type WorkerToHost } from '../../src/protocol/worker.ts';

const repo = resolve(import.meta.dirname, '..', '..');
// by absolute URL: a child whose cwd is a temp folder cannot resolve the bare 'tsx'
const tsxLoader = ['--import', pathToFileURL(join(repo, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href];

/** The worker as the extension ships it (`npm run build` writes it). */
export const workerBundle = join(repo, 'dist', 'worker.js');
/** The worker's sources, run through tsx: never a stale bundle. */
export const workerSources = join(repo, 'src', 'engine', 'worker.ts');

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Messages as they arrive; a wait for one is woken by each arrival, never by a timer. */
export class Inbox<T> {
  readonly messages: T[] = [];
  private waiters: Array<() => void> = [];
  private closedBecause: string | undefined;

  push(m: T): void {
    this.messages.push(m);
    this.wake();
  }

  /** No message will come any more: a wait that has not found its message fails, saying why. */
  close(why: string): void {
    this.closedBecause = why;
    this.wake();
  }

  /** The first message, arrived or to come, that satisfies the predicate; the test runner's timeout bounds the wait. */
  async waitFor<S extends T>(pred: (m: T) => m is S): Promise<S>;
  async waitFor(pred: (m: T) => boolean): Promise<T>;
  async waitFor(pred: (m: T) => boolean): Promise<T> {
    for (;;) {
      const found = this.messages.find(pred);
      if (found !== undefined) return found;
      if (this.closedBecause !== undefined) throw new Error(this.closedBecause);
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** What answers a request: its result or its failure (not its events, nor the answer to a cancel). */
export type WorkerReply = Exclude<WorkerToHost, { type: 'ready' | 'stopping' | 'event' }>;

/**
 * A forked worker: `script` is a bundle (run with no extra Node flags, as the host's WorkerProcess
 * runs it) or a .ts source (run through tsx). JSON serialization as the host uses; stdout ignored;
 * stderr kept, to say why the worker died.
 */
export class WorkerHarness {
  private readonly child: ChildProcess;
  private readonly inbox = new Inbox<WorkerToHost>();
  /** Every message that failed `isWorkerToHost`. */
  readonly invalid: unknown[] = [];
  private stderr = '';
  readonly exited: Promise<ProcessExit>;

  constructor(script: string, opts: { env?: NodeJS.ProcessEnv } = {}) {
    assert.ok(existsSync(script), `${script} exists (npm run build writes dist/)`);
    this.child = fork(script, [], {
      execArgv: script.endsWith('.ts') ? tsxLoader : [],
      serialization: 'json',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: opts.env,
    });
    this.child.stderr?.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.child.on('message', (m: unknown) => {
      if (isWorkerToHost(m)) this.inbox.push(m);
      else this.invalid.push(m);
    });
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => {
      r({ code, signal });
      this.inbox.close(`the worker exited (code ${code}, signal ${signal}) before the awaited message; its stderr:\n${this.stderr}`);
    }));
  }

  /** Every valid message so far, in order. */
  get messages(): readonly WorkerToHost[] {
    return this.inbox.messages;
  }

  /** Any object, so that tests can send malformed messages too. */
  send(m: HostToWorker | Record<string, unknown>): void {
    this.child.send(m);
  }

  async waitFor<T extends WorkerToHost>(pred: (m: WorkerToHost) => m is T): Promise<T>;
  async waitFor(pred: (m: WorkerToHost) => boolean): Promise<WorkerToHost>;
  async waitFor(pred: (m: WorkerToHost) => boolean): Promise<WorkerToHost> {
    return this.inbox.waitFor(pred);
  }

  /** Sends the request and waits for the reply bearing its id (so ids must not repeat). */
  async ask(request: HostToWorker): Promise<WorkerReply> {
    this.send(request);
    return this.waitFor((m): m is WorkerReply => m.type !== 'ready' && m.type !== 'stopping' && m.type !== 'event' && m.id === request.id);
  }

  /** Closes the IPC channel: to the worker, the host went away. */
  disconnect(): void {
    this.child.disconnect();
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

export interface CliOptions {
  /** Default: the repository. */
  cwd?: string;
  /** 'bin' (default): bin/layerwise.js as a user runs it (the built bundle); 'sources': src/cli/main.ts through tsx, never a stale dist/. */
  from?: 'bin' | 'sources';
}

export interface CliRun extends ProcessExit {
  stdout: string;
  stderr: string;
}

function cliCommand(args: string[], from: CliOptions['from']): string[] {
  return from === 'sources' ? [...tsxLoader, join(repo, 'src', 'cli', 'main.ts'), ...args] : [join(repo, 'bin', 'layerwise.js'), ...args];
}

/** Runs the CLI to its end; a CLI that cannot be started, hangs for 5 minutes or floods 64 MiB fails the test. */
export function runCli(args: string[], opts: CliOptions = {}): CliRun {
  const r = spawnSync(process.execPath, cliCommand(args, opts.from), { cwd: opts.cwd ?? repo, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw r.error;
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export interface StartCliOptions extends CliOptions {
  /** 'ignore': do not keep what it prints there (`done` then holds ''). */
  stdout?: 'ignore';
  /** A bash command run first in the CLI's own process (e.g. `ulimit -f 64`), which then becomes the CLI. */
  shellPrefix?: string;
}

/** Starts the CLI and leaves it running: `done` settles once it has exited and its output is read. */
export function startCli(args: string[], opts: StartCliOptions = {}): { child: ChildProcess; done: Promise<CliRun> } {
  const command = cliCommand(args, opts.from);
  const stdio: StdioOptions = ['ignore', opts.stdout ?? 'pipe', 'pipe'];
  const child: ChildProcess = opts.shellPrefix === undefined
    ? spawn(process.execPath, command, { cwd: opts.cwd ?? repo, stdio })
    : spawn('bash', ['-c', `${opts.shellPrefix}; exec "$0" "$@"`, process.execPath, ...command], { cwd: opts.cwd ?? repo, stdio });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliRun>((r) => child.on('close', (code, signal) => r({ code, signal, stdout, stderr })));
  return { child, done };
}

/** Waits until `cond` holds, looking every 5 ms: for what a child process writes to disk, which sends no event. */
export async function pollUntil(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
}
