/**
 * One training run per plan at a time, across processes: the CLI and the extension's worker
 * take the same lock file in the plan's output folder. It holds the owner's pid, host and start
 * time; a lock whose process is gone (kill -9, a crash, a reloaded window) is taken over.
 */
import { closeSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { LayerwiseError } from './errors.ts';

export interface LockOwner {
  pid: number;
  host: string;
  startedAt: string;
  runFolder: string;
}

export interface RunLock {
  file: string;
  release(): void;
}

export function lockFileFor(outputRoot: string, planFile: string): string {
  return join(outputRoot, `.${basename(planFile)}.lock`);
}

/** The live run holding the plan's lock, if any (a lock left by a dead process is no run). */
export function runningOwner(outputRoot: string, planFile: string): LockOwner | undefined {
  const owner = readOwner(lockFileFor(outputRoot, planFile));
  return owner !== undefined && (owner.host !== hostname() || alive(owner.pid)) ? owner : undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to someone else
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.startedAt === 'string') {
      return { pid: o.pid, host: o.host, startedAt: o.startedAt, runFolder: typeof o.runFolder === 'string' ? o.runFolder : '' };
    }
  } catch {
    // unreadable or half-written: treated as stale below
  }
  return undefined;
}

function justWritten(file: string): boolean {
  try {
    return Date.now() - statSync(file).mtimeMs < 2000;
  } catch {
    return false;
  }
}

/** Takes the plan's run lock or throws a LayerwiseError naming the run that holds it. */
export function acquireRunLock(outputRoot: string, planFile: string, runFolder: string): RunLock {
  mkdirSync(outputRoot, { recursive: true });
  const file = lockFileFor(outputRoot, planFile);
  const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString(), runFolder };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = readOwner(file);
      // another machine's pid says nothing here (a shared folder): only a local dead pid is stale
      if (owner !== undefined && (owner.host !== me.host || alive(owner.pid))) {
        throw new LayerwiseError(
          `another training run of this plan is in progress (pid ${owner.pid}${owner.host !== me.host ? ` on ${owner.host}` : ''}, started ${owner.startedAt}` +
            `${owner.runFolder ? `, writing ${owner.runFolder}` : ''}); wait for it to end or stop it — its lock is ${file}`,
          { file: planFile },
        );
      }
      if (owner === undefined && justWritten(file)) {
        // an owner between creating the file and writing its pid
        throw new LayerwiseError(`another training run of this plan is starting (its lock is ${file})`, { file: planFile });
      }
      try {
        unlinkSync(file);
      } catch {
        // another process took it over first; the next attempt sees its lock
      }
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(me) + '\n');
    } finally {
      closeSync(fd);
    }
    let released = false;
    return {
      file,
      release: () => {
        if (released) return;
        released = true;
        // only our own lock: a stale-lock takeover by another process must not be undone
        if (readOwner(file)?.pid === me.pid) {
          try {
            unlinkSync(file);
          } catch {
            // already gone
          }
        }
      },
    };
  }
  throw new LayerwiseError(`could not take the run lock ${file}; another run is starting at the same moment`, { file: planFile });
}
