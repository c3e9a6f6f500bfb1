import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { isHostToWebview, isPlanEditRequest, isWebviewToHost } from '../../src/protocol/webview.ts';
import { isHostToWorker, isWorkerToHost, type WorkerToHost } from '../../src/protocol/worker.ts';
import { describeExit, WorkerProcess, type WorkerExit } from '../../src/host/worker-process.ts';

const target = { planFile: '/ws/layerwise.json', workspaceRoot: '/ws', backend: 'auto' };

test('host → worker: every request kind passes, malformed ones do not', () => {
  assert.ok(isHostToWorker({ type: 'train', id: 'a', ...target, progressIntervalMs: 250 }));
  assert.ok(isHostToWorker({ type: 'train', id: 'a', ...target, planText: '{}', outDir: '/ws/runs/x', progressIntervalMs: 250 }));
  assert.ok(isHostToWorker({ type: 'train', id: 'a', ...target, resumeFrom: '/ws/runs/x', progressIntervalMs: 250 }));
  assert.ok(!isHostToWorker({ type: 'train', id: 'a', ...target, resumeFrom: 3, progressIntervalMs: 250 }));
  assert.ok(isHostToWorker({ type: 'findLr', id: 'a', ...target, options: {} }));
  assert.ok(isHostToWorker({ type: 'describe', id: 'a', ...target }));
  assert.ok(isHostToWorker({ type: 'describe', id: 'a', ...target, augmentPreview: true }));
  assert.ok(isHostToWorker({ type: 'describeModel', id: 'a', modelFile: '/ws/model/model.json', workspaceRoot: '/ws', backend: 'cpu' }));
  assert.ok(isHostToWorker({ type: 'cancel', id: 'a' }));

  const bad: unknown[] = [
    null,
    'train',
    [],
    { type: 'train', ...target, progressIntervalMs: 250 }, // no id
    { type: 'train', id: 'a', ...target }, // no interval
    { type: 'train', id: 'a', ...target, progressIntervalMs: Number.NaN },
    { type: 'train', id: 'a', ...target, backend: 'gpu', progressIntervalMs: 250 },
    { type: 'train', id: 'a', ...target, planText: 42, progressIntervalMs: 250 },
    { type: 'findLr', id: 'a', ...target, options: [] },
    { type: 'describe', id: 'a', planFile: '/ws/p.json', backend: 'auto' }, // no workspace root
    { type: 'describe', id: 'a', ...target, augmentPreview: 'yes' },
    { type: 'describeModel', id: 'a', modelFile: '/ws/m.json', workspaceRoot: '/ws' }, // no backend
    { type: 'describeModel', id: 'a', workspaceRoot: '/ws', backend: 'cpu' },
    { type: 'cancel' },
    { type: 'explode', id: 'a' },
  ];
  for (const m of bad) assert.equal(isHostToWorker(m), false, JSON.stringify(m));
});

test('worker → host: every message kind passes, malformed ones do not', () => {
  const good: WorkerToHost[] = [
    { type: 'ready', pid: 12 },
    { type: 'stopping', id: 'a' },
    { type: 'event', id: 'a', event: { kind: 'log', level: 'info', message: 'x' } },
    { type: 'failed', id: 'a', problem: { message: 'boom' }, cancelled: false },
    { type: 'described', id: 'a', model: { source: 'm', kind: 'tfjs', layers: [] } },
    { type: 'described', id: 'a', model: { source: 'm', kind: 'tfjs', layers: [] }, trainSamples: 96 },
    { type: 'described', id: 'a', model: { source: 'm', kind: 'tfjs', layers: [] }, augmentPreview: { width: 8, height: 8, samples: [{ label: 'a', file: 'x.png', images: ['data:image/jpeg;base64,'] }] } },
    { type: 'event', id: 'a', event: { kind: 'data', phase: 'checking', done: 10, total: 50, skipped: 1 } },
  ];
  for (const m of good) assert.ok(isWorkerToHost(m), JSON.stringify(m));
  assert.ok(isWorkerToHost({ type: 'trained', id: 'a', report: {}, reportFile: '/r.json', results: {} }));
  assert.ok(isWorkerToHost({ type: 'lrFound', id: 'a', outcome: {}, curveFile: '/c.json', results: {} }));

  const bad: unknown[] = [
    undefined,
    { type: 'ready' },
    { type: 'ready', pid: '12' },
    { type: 'stopping' },
    { type: 'event', id: 'a', event: { kind: 'tensor' } },
    { type: 'event', id: 'a' },
    { type: 'trained', id: 'a', report: {}, results: {} },
    { type: 'described', id: 'a', model: { layers: 'many' } },
    { type: 'described', id: 'a', model: { layers: [] }, augmentPreview: { samples: 'some' } },
    { type: 'failed', id: 'a', problem: {}, cancelled: false },
    { type: 'failed', id: 'a', problem: { message: 'x' } },
    { type: 'hello' },
  ];
  for (const m of bad) assert.equal(isWorkerToHost(m), false, JSON.stringify(m));
});

test('webview → host: edits and commands are checked field by field', () => {
  assert.ok(isWebviewToHost({ type: 'ready' }));
  assert.ok(isWebviewToHost({ type: 'command', command: 'train' }));
  assert.ok(isWebviewToHost({ type: 'edit', edit: { kind: 'setLayer', layer: 'dense_1', key: 'lrMult', value: 0.5 } }));
  assert.ok(isWebviewToHost({ type: 'edit', edit: { kind: 'setGroup', groupIndex: 2, key: 'frozen', value: true } }));
  assert.ok(isWebviewToHost({ type: 'edit', edit: { kind: 'setGroup', groupIndex: 0, key: 'lrMult', value: null } }));
  assert.ok(isWebviewToHost({ type: 'edit', edit: { kind: 'moveLayer', layer: 'x', toGroupIndex: 1 } }));
  assert.ok(isWebviewToHost({ type: 'persist', state: { planUri: 'file:///x' } }));

  assert.equal(isWebviewToHost({ type: 'command', command: 'rm -rf' }), false);
  assert.equal(isWebviewToHost({ type: 'edit' }), false);
  assert.equal(isPlanEditRequest({ kind: 'setLayer', layer: 'x', key: 'lrMult', value: -1 }), false);
  assert.equal(isPlanEditRequest({ kind: 'setLayer', layer: 'x', key: 'lrMult', value: Number.POSITIVE_INFINITY }), false);
  assert.equal(isPlanEditRequest({ kind: 'setLayer', layer: 'x', key: 'frozen', value: 1 }), false);
  assert.equal(isPlanEditRequest({ kind: 'setLayer', layer: 'x', key: 'name', value: 1 }), false);
  assert.equal(isPlanEditRequest({ kind: 'setGroup', groupIndex: -1, key: 'lrMult', value: 1 }), false);
  assert.equal(isPlanEditRequest({ kind: 'setGroup', groupIndex: 1.5, key: 'lrMult', value: 1 }), false);
  assert.equal(isPlanEditRequest({ kind: 'setTraining', key: 'model', value: 'x' }), false);
  assert.equal(isPlanEditRequest({ kind: 'moveLayer', layer: 'x' }), false);
});

test('host → webview: state, status and run messages', () => {
  assert.ok(isHostToWebview({ type: 'status', status: { state: 'idle' } }));
  assert.ok(isHostToWebview({ type: 'runStarted', job: 'findLr' }));
  assert.ok(isHostToWebview({ type: 'state', state: { planFile: '/p', problems: [] } }));
  assert.equal(isHostToWebview({ type: 'status', status: { state: 'exploded' } }), false);
  assert.equal(isHostToWebview({ type: 'runStarted', job: 'export' }), false);
  assert.equal(isHostToWebview({ type: 'report', report: { epochs: 3 } }), false);
});

// ---- the host's side of a real child process -------------------------------------------------

function fakeWorker(body: string): { script: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'layerwise-worker-'));
  const script = path.join(dir, 'worker.cjs');
  writeFileSync(script, body);
  return { script, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const quietLog = () => {
  const lines: string[] = [];
  return { lines, log: { info: (m: string) => lines.push(`info ${m}`), warn: (m: string) => lines.push(`warn ${m}`), error: (m: string) => lines.push(`error ${m}`) } };
};

function untilExit(worker: WorkerProcess): Promise<WorkerExit> {
  return new Promise((resolve) => worker.onExit(resolve));
}

test('a forked worker: ready, guarded messages, requests answered, clean exit on disconnect', async () => {
  const { script, cleanup } = fakeWorker(`
    process.on('message', (m) => {
      if (m.type === 'describe') {
        process.send({ type: 'nonsense', id: m.id });
        process.send({ type: 'described', id: m.id, model: { source: 'm', kind: 'tfjs', layers: [] } });
      }
    });
    process.on('disconnect', () => process.exit(0));
    console.log('hello from the worker');
    process.send({ type: 'ready', pid: process.pid });
  `);
  try {
    const { lines, log } = quietLog();
    const worker = new WorkerProcess(script, log, { label: 'test' });
    const received: WorkerToHost[] = [];
    const described = new Promise<void>((resolve) =>
      worker.onMessage((m) => {
        received.push(m);
        if (m.type === 'described') resolve();
      }),
    );
    const pid = await worker.ready;
    assert.equal(pid, worker.pid);
    assert.ok(worker.send({ type: 'describe', id: 'd1', ...target, backend: 'cpu' }));
    await described;
    // the malformed message never reached the listener, and was logged
    assert.deepEqual(received.map((m) => m.type), ['ready', 'described']);
    assert.ok(lines.some((l) => l.startsWith('error') && l.includes('malformed')));
    const exit = untilExit(worker);
    worker.stop();
    assert.deepEqual(await exit, { code: 0, signal: null });
    assert.ok(lines.some((l) => l.includes('hello from the worker')), 'stdout goes to the log');
    assert.equal(worker.send({ type: 'cancel', id: 'x' }), false, 'no sending after exit');
  } finally {
    cleanup();
  }
});

test('a worker that crashes before ready rejects ready and reports the exit', async () => {
  const { script, cleanup } = fakeWorker(`console.error('cannot load tfjs'); process.exit(3);`);
  try {
    const { lines, log } = quietLog();
    const worker = new WorkerProcess(script, log, { label: 'test' });
    const exit = untilExit(worker);
    await assert.rejects(worker.ready, /exited with code 3/);
    assert.deepEqual(await exit, { code: 3, signal: null });
    assert.ok(lines.some((l) => l.startsWith('warn') && l.includes('cannot load tfjs')), 'stderr goes to the log');
    // a late listener still hears about the exit
    const late = await untilExit(worker);
    assert.equal(late.code, 3);
  } finally {
    cleanup();
  }
});

test('a worker that ignores cancel is killed by a forced stop', async () => {
  const { script, cleanup } = fakeWorker(`
    process.on('message', () => {});
    process.on('disconnect', () => {}); // stubborn: keeps running
    setInterval(() => {}, 1000);
    process.send({ type: 'ready', pid: process.pid });
  `);
  try {
    const worker = new WorkerProcess(script, quietLog().log, { label: 'test' });
    await worker.ready;
    const exit = untilExit(worker);
    worker.stop(true);
    const info = await exit;
    assert.equal(info.signal, 'SIGKILL');
    assert.equal(describeExit(info), 'the worker process was killed (SIGKILL)');
  } finally {
    cleanup();
  }
});

test('a missing worker script ends as an exit, not an exception', async () => {
  const worker = new WorkerProcess(path.join(tmpdir(), 'no-such-layerwise-worker.js'), quietLog().log, { label: 'test' });
  const info = await untilExit(worker);
  assert.notEqual(info.code, 0);
  await assert.rejects(worker.ready);
});
