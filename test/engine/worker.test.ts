/**
 * The training worker driven from plain Node through the real protocol, as the extension host
 * drives it: fork the built bundle (`npm test` builds first), start, progress, cancel, bad
 * messages, a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isWorkerToHost, type HostToWorker, type WorkerToHost } from '../../src/protocol/worker.ts';

const repo = resolve(import.meta.dirname, '..', '..');
const workerBundle = join(repo, 'dist', 'worker.js');

const PLAN = `{
  // comments stay
  "model": "model/model.json",
  "data": { "train": "data/train.csv", "validation": "data/val.csv", "label": "species", "shuffle": false },
  "training": { "epochs": 2, "batchSize": 4, "lr": 0.01 },
  "groups": [{ "name": "body", "layers": ["dense", "batch_normalization"] }, { "name": "top", "layers": ["dense_1"] }]
}
`;

function workspace(epochs = 2): string {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-worker-'));
  cpSync(join(repo, 'test/fixtures/models/mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test/fixtures/data/mlp'), join(ws, 'data'), { recursive: true });
  writeFileSync(join(ws, 'layerwise.json'), PLAN.replace('"epochs": 2', `"epochs": ${epochs}`));
  return ws;
}

class WorkerHarness {
  readonly child: ChildProcess;
  readonly messages: WorkerToHost[] = [];
  readonly invalid: unknown[] = [];
  private waiters: Array<() => void> = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor() {
    assert.ok(existsSync(workerBundle), 'dist/worker.js is built (npm run build)');
    this.child = fork(workerBundle, [], { serialization: 'json', stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child.on('message', (m: unknown) => {
      if (isWorkerToHost(m)) this.messages.push(m);
      else this.invalid.push(m);
      for (const w of this.waiters.splice(0)) w();
    });
    this.exited = new Promise((r) => this.child.on('exit', (code, signal) => {
      r({ code, signal });
      for (const w of this.waiters.splice(0)) w();
    }));
  }

  send(m: HostToWorker | Record<string, unknown>): void {
    this.child.send(m);
  }

  /** Resolves when a message satisfies the predicate (no timers: the test runner's timeout bounds it). */
  async waitFor<T extends WorkerToHost>(pred: (m: WorkerToHost) => m is T): Promise<T>;
  async waitFor(pred: (m: WorkerToHost) => boolean): Promise<WorkerToHost>;
  async waitFor(pred: (m: WorkerToHost) => boolean): Promise<WorkerToHost> {
    for (;;) {
      const found = this.messages.find(pred);
      if (found) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error('worker exited while waiting');
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

test('train through the protocol: ready, backend, stage/step/epoch events, trained with results', { timeout: 120_000 }, async () => {
  const ws = workspace();
  const w = new WorkerHarness();
  await w.waitFor((m) => m.type === 'ready');
  w.send({ type: 'train', id: 'r1', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', 'r1') });
  const done = await w.waitFor((m) => (m.type === 'trained' || m.type === 'failed') && m.id === 'r1');
  assert.equal(done.type, 'trained', JSON.stringify(done));
  const events = w.messages.filter((m) => m.type === 'event').map((m) => (m.type === 'event' ? m.event.kind : ''));
  assert.ok(events.includes('stage') && events.includes('step') && events.includes('epoch'));
  if (done.type === 'trained') {
    assert.equal(done.results.lastRun?.epochs, 2);
    assert.ok(existsSync(done.reportFile));
  }
  // the worker never writes the plan: the host does, through the editor
  assert.equal(readFileSync(join(ws, 'layerwise.json'), 'utf8'), PLAN);
  assert.deepEqual(w.invalid, []);
  w.child.disconnect();
  assert.deepEqual(await w.exited, { code: 0, signal: null });
});

test('cancel stops a run within a batch; the worker stays usable', { timeout: 120_000 }, async () => {
  const ws = workspace(500);
  const w = new WorkerHarness();
  await w.waitFor((m) => m.type === 'ready');
  w.send({ type: 'train', id: 'long', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', 'long') });
  await w.waitFor((m) => m.type === 'event' && m.event.kind === 'step');
  const sentAt = performance.now();
  w.send({ type: 'cancel', id: 'long' });
  const done = await w.waitFor((m) => (m.type === 'trained' || m.type === 'failed') && m.id === 'long');
  const latency = performance.now() - sentAt;
  assert.equal(done.type, 'trained');
  if (done.type === 'trained') assert.equal(done.report.stopped, 'cancelled');
  assert.ok(latency < 1000, `cancel took ${latency.toFixed(0)} ms`);
  // the worker answers the cancel before it ends the run (the host then waits for the checkpoint)
  const order = w.messages.filter((m) => 'id' in m && m.id === 'long' && (m.type === 'stopping' || m.type === 'trained')).map((m) => m.type);
  assert.deepEqual(order, ['stopping', 'trained']);
  assert.equal(existsSync(join(ws, 'runs', 'long', 'model.json')), false);
  // still alive and answering
  w.send({ type: 'describe', id: 'd', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto' });
  const described = await w.waitFor((m) => m.type === 'described' && m.id === 'd');
  assert.ok(described.type === 'described' && described.model.layers.some((l) => l.name === 'dense'));
  w.kill();
  await w.exited;
});

test('bad input and malformed messages fail clearly without killing the worker', { timeout: 60_000 }, async () => {
  const ws = workspace();
  writeFileSync(join(ws, 'broken.layerwise.json'), '{ "model": "model/model.json", "training": { "lr": "fast" } }');
  const w = new WorkerHarness();
  await w.waitFor((m) => m.type === 'ready');
  w.send({ type: 'train', id: 'bad', planFile: join(ws, 'broken.layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0 });
  const failed = await w.waitFor((m) => m.type === 'failed' && m.id === 'bad');
  assert.ok(failed.type === 'failed');
  if (failed.type === 'failed') {
    assert.equal(failed.problem.field, 'training.lr');
    assert.match(failed.problem.message, /broken\.layerwise\.json: training\.lr: /);
  }
  w.send({ type: 'train', id: 'x' }); // missing fields
  const malformed = await w.waitFor((m) => m.type === 'failed' && m.id === 'x');
  assert.ok(malformed.type === 'failed' && /malformed/.test(malformed.problem.message));
  w.send({ type: 'describe', id: 'ok', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto' });
  await w.waitFor((m) => m.type === 'described' && m.id === 'ok');
  w.kill();
});

test('a killed worker mid-run leaves the plan intact and is seen as an exit', { timeout: 60_000 }, async () => {
  const ws = workspace(500);
  const w = new WorkerHarness();
  await w.waitFor((m) => m.type === 'ready');
  w.send({ type: 'train', id: 'k', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', 'k') });
  await w.waitFor((m) => m.type === 'event' && m.event.kind === 'step');
  w.kill();
  const exit = await w.exited;
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(readFileSync(join(ws, 'layerwise.json'), 'utf8'), PLAN.replace('"epochs": 2', '"epochs": 500'));
  assert.equal(existsSync(join(ws, 'runs', 'k', 'model.json')), false);
});
