/**
 * Which runs the extension offers to resume (after a crash, a kill or a window reload) and the
 * run lock behind "two runs on one plan": the pure rule, then the folder scan on real files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { findInterruptedRuns, isResumable } from '../../src/core/interrupted-runs.ts';
import { acquireRunLock, lockFileFor, runningOwner } from '../../src/core/run-lock.ts';

const plan = '/ws/layerwise.json';

test('resumable: a checkpoint of this plan, with no report (crashed) or a stopped one, not being written right now', () => {
  const f = { folder: '/ws/runs/a', checkpointPlan: plan };
  assert.equal(isResumable(f, plan), true);
  assert.equal(isResumable({ ...f, reportStopped: 'cancelled' }, plan), true);
  assert.equal(isResumable({ ...f, reportStopped: 'completed' }, plan), false);
  assert.equal(isResumable({ ...f, reportStopped: 'nonFinite' }, plan), false);
  assert.equal(isResumable({ ...f, checkpointPlan: '/ws/other.json' }, plan), false);
  assert.equal(isResumable({ folder: '/ws/runs/a' }, plan), false);
  assert.equal(isResumable({ ...f, runningFolder: '/ws/runs/a' }, plan), false, 'the live run is not offered');
  assert.equal(isResumable({ ...f, runningFolder: '/ws/runs/b' }, plan), true);
});

function runFolder(root: string, name: string, planFile: string, step: number, writtenAt: string, report?: string): void {
  mkdirSync(join(root, name), { recursive: true });
  writeFileSync(join(root, name, 'checkpoint.json'), JSON.stringify({ format: 'layerwise-checkpoint', version: 1, planFile, writtenAt, position: { epoch: 1, batch: 0, globalStep: step } }));
  if (report) writeFileSync(join(root, name, 'report.json'), JSON.stringify({ stopped: report }));
}

test('the scan lists crashed and stopped runs of the plan, newest first; skips finished runs, other plans and the live run', () => {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-interrupted-'));
  const planFile = join(ws, 'layerwise.json');
  const root = join(ws, 'runs');
  runFolder(root, 'crashed', planFile, 10, '2026-01-01T00:00:02Z');
  runFolder(root, 'stopped', planFile, 5, '2026-01-01T00:00:03Z', 'cancelled');
  runFolder(root, 'done', planFile, 40, '2026-01-01T00:00:04Z', 'completed');
  runFolder(root, 'other', join(ws, 'other.json'), 7, '2026-01-01T00:00:05Z');
  mkdirSync(join(root, 'no-checkpoint'));
  writeFileSync(join(root, 'stray.txt'), '');
  const found = findInterruptedRuns(root, planFile);
  assert.deepEqual(found.map((r) => [r.folder, r.how, r.step]), [[join(root, 'stopped'), 'stopped', 5], [join(root, 'crashed'), 'crashed', 10]]);
  // while this process holds the lock writing "crashed", that run is not offered
  const lock = acquireRunLock(root, planFile, join(root, 'crashed'));
  assert.deepEqual(findInterruptedRuns(root, planFile).map((r) => r.how), ['stopped']);
  lock.release();
  assert.equal(findInterruptedRuns(join(ws, 'nothing'), planFile).length, 0);
});

test('the run lock: a second taker is refused naming the owner; released, or left by a dead pid, it can be taken', () => {
  const root = mkdtempSync(join(tmpdir(), 'layerwise-lock-'));
  const planFile = join(root, 'p.json');
  const lock = acquireRunLock(root, planFile, '/runs/a');
  assert.equal(runningOwner(root, planFile)?.pid, process.pid);
  assert.throws(() => acquireRunLock(root, planFile, '/runs/b'), new RegExp(`another training run of this plan is in progress \\(pid ${process.pid}, started .*, writing /runs/a\\)`));
  lock.release();
  assert.ok(!existsSync(lockFileFor(root, planFile)));
  writeFileSync(lockFileFor(root, planFile), JSON.stringify({ pid: 2 ** 22 + 4321, host: hostname(), startedAt: 'x', runFolder: '/runs/dead' }));
  assert.equal(runningOwner(root, planFile), undefined, 'a dead pid holds nothing');
  const taken = acquireRunLock(root, planFile, '/runs/c');
  assert.equal(runningOwner(root, planFile)?.runFolder, '/runs/c');
  taken.release();
  // another machine's lock on a shared folder is respected: its pid means nothing here
  writeFileSync(lockFileFor(root, planFile), JSON.stringify({ pid: 2 ** 22 + 4321, host: `${hostname()}-elsewhere`, startedAt: 'x', runFolder: '/runs/remote' }));
  assert.throws(() => acquireRunLock(root, planFile, '/runs/d'), /in progress \(pid \d+ on .*-elsewhere/);
});
