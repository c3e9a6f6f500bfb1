/**
 * The training worker driven from plain Node through the real protocol, as the extension host
 * drives it: fork the built bundle (`npm test` builds first), start, progress, cancel, bad
 * messages, a crash.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WorkerHarness, workerBundle } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');

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

test('train through the protocol: ready, backend, stage/step/epoch events, trained with results', { timeout: 120_000 }, async () => {
  const ws = workspace();
  const w = new WorkerHarness(workerBundle);
  await w.waitFor((m) => m.type === 'ready');
  const done = await w.ask({ type: 'train', id: 'r1', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', 'r1') });
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
  w.disconnect();
  assert.deepEqual(await w.exited, { code: 0, signal: null });
});

test('cancel stops a run within a batch; the worker stays usable', { timeout: 120_000 }, async () => {
  const ws = workspace(500);
  const w = new WorkerHarness(workerBundle);
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
  const described = await w.ask({ type: 'describe', id: 'd', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto' });
  assert.ok(described.type === 'described' && described.model.layers.some((l) => l.name === 'dense'));
  w.kill();
  await w.exited;
});

test('bad input and malformed messages fail clearly without killing the worker', { timeout: 60_000 }, async () => {
  const ws = workspace();
  writeFileSync(join(ws, 'broken.layerwise.json'), '{ "model": "model/model.json", "training": { "lr": "fast" } }');
  const w = new WorkerHarness(workerBundle);
  await w.waitFor((m) => m.type === 'ready');
  const failed = await w.ask({ type: 'train', id: 'bad', planFile: join(ws, 'broken.layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0 });
  assert.ok(failed.type === 'failed');
  if (failed.type === 'failed') {
    assert.equal(failed.problem.field, 'training.lr');
    assert.match(failed.problem.message, /broken\.layerwise\.json: training\.lr: /);
  }
  w.send({ type: 'train', id: 'x' }); // missing fields
  const malformed = await w.waitFor((m) => m.type === 'failed' && m.id === 'x');
  assert.ok(malformed.type === 'failed' && /malformed/.test(malformed.problem.message));
  const ok = await w.ask({ type: 'describe', id: 'ok', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto' });
  assert.equal(ok.type, 'described', JSON.stringify(ok));
  w.kill();
});

test('a killed worker mid-run leaves the plan intact and is seen as an exit', { timeout: 60_000 }, async () => {
  const ws = workspace(500);
  const w = new WorkerHarness(workerBundle);
  await w.waitFor((m) => m.type === 'ready');
  w.send({ type: 'train', id: 'k', planFile: join(ws, 'layerwise.json'), workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', 'k') });
  await w.waitFor((m) => m.type === 'event' && m.event.kind === 'step');
  w.kill();
  const exit = await w.exited;
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(readFileSync(join(ws, 'layerwise.json'), 'utf8'), PLAN.replace('"epochs": 2', '"epochs": 500'));
  assert.equal(existsSync(join(ws, 'runs', 'k', 'model.json')), false);
});
