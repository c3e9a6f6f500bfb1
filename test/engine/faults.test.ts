/**
 * The fault suite (README "Faults"): each case is what can go wrong around a run, the outcome a
 * user sees, and proof that nothing was lost — the plan byte-identical or merged, the last
 * checkpoint loadable, the run resumable to the same weights as an uninterrupted one.
 * The CLI and worker cases run the built bundles (`npm run build` first).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { parse } from 'jsonc-parser';
import { selectBackend } from '../../src/engine/backend.ts';
import { CHECKPOINT_FILE, readCheckpoint } from '../../src/engine/checkpoint.ts';
import { loadModel, saveModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';
import { describeExit, WorkerProcess, type WorkerExit } from '../../src/host/worker-process.ts';
import type { WorkerToHost } from '../../src/protocol/worker.ts';
import { planText, weightsOf, workspace } from './resume-fixture.ts';
import { Inbox, pollUntil, startCli, workerBundle } from './processes.ts';

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

const quietLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The reference: the same plan trained without any fault, in-process. */
async function referenceWeights(planFile: string, ws: string): Promise<Buffer> {
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(ws, 'runs', 'reference') });
  assert.equal(outcome.report.stopped, 'completed');
  return weightsOf(outcome.outDir);
}

function startWorker(): { worker: WorkerProcess; exit: Promise<WorkerExit>; next: (pred: (m: WorkerToHost) => boolean) => Promise<WorkerToHost> } {
  assert.ok(existsSync(workerBundle), 'dist/worker.js is built (npm run build)');
  const worker = new WorkerProcess(workerBundle, quietLog, { label: 'fault test' });
  const inbox = new Inbox<WorkerToHost>();
  worker.onMessage((m) => inbox.push(m));
  const exit = new Promise<WorkerExit>((r) => worker.onExit((info) => {
    r(info);
    inbox.close(`the worker exited (${describeExit(info)}) before the awaited message`);
  }));
  return { worker, exit, next: (pred) => inbox.waitFor(pred) };
}

test('the worker killed (SIGKILL) mid-epoch: a clear message, the plan intact, the run resumable to the same weights', async () => {
  const { ws, planFile } = workspace(2000, { epochs: 4, batchSize: 4 });
  const reference = await referenceWeights(planFile, ws);
  const plan = readFileSync(planFile, 'utf8');
  const runDir = join(ws, 'runs', 'killed');
  const first = startWorker();
  await first.worker.ready;
  first.worker.send({ type: 'train', id: 't1', planFile, workspaceRoot: ws, backend: 'cpu', outDir: runDir, progressIntervalMs: 0 });
  // mid-epoch, after the first checkpoint
  await pollUntil(() => existsSync(join(runDir, CHECKPOINT_FILE)));
  await first.next((m) => m.type === 'event' && m.event.kind === 'step' && m.event.step % 500 > 100);
  first.worker.stop(true);
  const exit = await first.exit;
  assert.equal(describeExit(exit), 'the worker process was killed (SIGKILL)');
  assert.equal(readFileSync(planFile, 'utf8'), plan, 'the plan is untouched');
  assert.ok(!existsSync(join(runDir, 'report.json')));
  const at = readCheckpoint(runDir).manifest.position;
  assert.equal(at.batch, 0, 'the last checkpoint is the epoch end before the kill');
  const second = startWorker();
  await second.worker.ready;
  second.worker.send({ type: 'train', id: 't2', planFile, workspaceRoot: ws, backend: 'cpu', resumeFrom: runDir, progressIntervalMs: 250 });
  const done = await second.next((m) => m.type === 'trained' || m.type === 'failed');
  assert.equal(done.type, 'trained', JSON.stringify(done));
  second.worker.stop();
  assert.ok(weightsOf(runDir).equals(reference), 'resumed weights equal the uninterrupted run');
});

test('a resume request for a folder outside the workspace is refused by the worker', async () => {
  const { ws, planFile } = workspace(100);
  const w = startWorker();
  await w.worker.ready;
  w.worker.send({ type: 'train', id: 'x', planFile, workspaceRoot: ws, backend: 'cpu', resumeFrom: join(ws, '..'), progressIntervalMs: 250 });
  const m = await w.next((x) => x.type === 'failed');
  assert.ok(m.type === 'failed' && /outside the workspace folder/.test(m.problem.message));
  w.worker.stop();
});

test('a window reload (the host goes away) mid-run: the worker writes a checkpoint at that batch and exits; the run resumes to the same weights', async () => {
  const { ws, planFile } = workspace(2000, { epochs: 3, batchSize: 4 });
  const reference = await referenceWeights(planFile, ws);
  const runDir = join(ws, 'runs', 'reloaded');
  const w = startWorker();
  await w.worker.ready;
  w.worker.send({ type: 'train', id: 't', planFile, workspaceRoot: ws, backend: 'cpu', outDir: runDir, progressIntervalMs: 0 });
  await w.next((m) => m.type === 'event' && m.event.kind === 'step' && m.event.step === 650);
  // what the extension host's death looks like to the worker: its IPC channel closes
  w.worker.stop();
  const exit = await w.exit;
  assert.equal(exit.code, 0, describeExit(exit));
  const { manifest } = readCheckpoint(runDir);
  assert.equal(manifest.reason, 'stopped');
  assert.ok(manifest.position.globalStep >= 650 && manifest.position.batch > 0, `a mid-epoch checkpoint: ${JSON.stringify(manifest.position)}`);
  const report = JSON.parse(readFileSync(join(runDir, 'report.json'), 'utf8')) as { stopped: string; outputs: { checkpoint?: string } };
  assert.equal(report.stopped, 'cancelled');
  assert.equal(report.outputs.checkpoint, join(runDir, CHECKPOINT_FILE));
  assert.ok(!existsSync(join(ws, 'runs', '.layerwise.json.lock')), 'the lock was released on the way out');
  const resumed = await train({ planFile, backend: 'cpu', resumeFrom: runDir });
  assert.equal(resumed.report.stopped, 'completed');
  assert.ok(weightsOf(runDir).equals(reference));
});

test('a file-size limit (ulimit -f) hit while writing a checkpoint: one clear error, the previous checkpoint valid, the plan untouched, the run resumable', async () => {
  const { ws, planFile } = workspace(200, { epochs: 14, batchSize: 8, earlyStopping: true });
  const reference = await referenceWeights(planFile, ws);
  // the checkpoint manifest grows with every epoch's metrics; allow the first epochs' and not the last
  const probe = new AbortController();
  await train({ planFile, backend: 'cpu', outDir: join(ws, 'runs', 'probe'), progressIntervalMs: 0, signal: probe.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 20) probe.abort();
  } });
  const firstSize = statSync(join(ws, 'runs', 'probe', CHECKPOINT_FILE)).size;
  const limitKb = Math.ceil(firstSize / 1024) + 1;
  const plan = readFileSync(planFile, 'utf8');
  const runDir = join(ws, 'runs', 'limited');
  const r = await startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/limited'], { cwd: ws, shellPrefix: `ulimit -f ${limitKb}` }).done;
  assert.equal(r.signal, null, 'SIGXFSZ did not kill the process');
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trim().split('\n').filter((l) => !/^info:/.test(l));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0] ?? '', /^layerwise: .*runs\/limited: cannot write the checkpoint: a file-size limit was hit \(EFBIG\); the previous checkpoint \(checkpoint\.json\) is kept$/);
  assert.equal(readFileSync(planFile, 'utf8'), plan, 'the plan is untouched');
  const { manifest } = readCheckpoint(runDir);
  assert.ok(manifest.position.epoch >= 1 && manifest.position.epoch < 14, `an earlier epoch's checkpoint: ${JSON.stringify(manifest.position)}`);
  const resumed = await startCli(['train', 'layerwise.json', '--backend', 'cpu', '--resume', 'runs/limited'], { cwd: ws }).done;
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok(weightsOf(runDir).equals(reference), 'resumed weights equal the uninterrupted run');
});

test('a torn checkpoint (its data file cut short) is detected and the previous checkpoint is used', async () => {
  const { ws, planFile } = workspace(100);
  const dir = join(ws, 'runs', 'b');
  const controller = new AbortController();
  await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 24) controller.abort();
  } });
  const newest = readCheckpoint(dir);
  assert.equal(newest.manifest.position.globalStep, 24);
  const binFile = join(dir, newest.manifest.data.file);
  writeFileSync(binFile, readFileSync(binFile).subarray(0, 100));
  const loaded = readCheckpoint(dir);
  assert.equal(loaded.manifest.position.globalStep, 20, 'the epoch-2 checkpoint');
  assert.match(loaded.fellBack ?? '', /has 100 bytes, the manifest says \d+ \(torn write\)/);
  const logs: string[] = [];
  const outcome = await train({ planFile, backend: 'cpu', resumeFrom: dir, onEvent: (e) => {
    if (e.kind === 'log') logs.push(e.message);
  } });
  assert.equal(outcome.report.stopped, 'completed');
  assert.ok(logs.some((l) => /newest checkpoint could not be used .*resuming from the previous one/.test(l)), logs.join('\n'));
  // and with both damaged: one message naming the folder and each reason
  mkdirSync(join(ws, 'runs', 'broken'));
  writeFileSync(join(ws, 'runs', 'broken', CHECKPOINT_FILE), '{"format":"x"}');
  assert.throws(() => readCheckpoint(join(ws, 'runs', 'broken')), /no usable checkpoint in this run folder \(checkpoint\.json: not a Layerwise checkpoint of version 1; checkpoint-previous\.json: absent\)/);
});

test('the plan edited during a run: the run uses its snapshot; results merge into the edited text', async () => {
  const { ws, planFile } = workspace(2000, { epochs: 3, batchSize: 4 });
  const reference = await referenceWeights(planFile, ws);
  const run = startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/edited'], { cwd: ws });
  await pollUntil(() => existsSync(join(ws, 'runs', 'edited', CHECKPOINT_FILE)));
  const edited = readFileSync(planFile, 'utf8').replace('// resume fixture', '// edited during the run').replace('"lrMult": 0.38', '"lrMult": 0.5');
  writeFileSync(planFile, edited);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.ok(weightsOf(join(ws, 'runs', 'edited')).equals(reference), 'the run trained the plan as it was when it started');
  const after = readFileSync(planFile, 'utf8');
  assert.ok(after.startsWith(edited.slice(0, edited.lastIndexOf('}')).trimEnd()), 'the edit is kept, results appended');
  const parsed = parse(after) as { groups: Array<{ lrMult?: number }>; results: { lastRun: { folder: string } } };
  assert.equal(parsed.groups[0]?.lrMult, 0.5);
  assert.equal(parsed.results.lastRun.folder, 'runs/edited');
});

for (const how of ['deleted', 'renamed'] as const) {
  test(`the plan ${how} during a run: the run finishes, the plan is not recreated, the CLI says where the results are`, async () => {
    const { ws, planFile } = workspace(2000, { epochs: 2, batchSize: 4 });
    const run = startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/gone'], { cwd: ws });
    await pollUntil(() => existsSync(join(ws, 'runs', 'gone', CHECKPOINT_FILE)));
    if (how === 'deleted') unlinkSync(planFile);
    else renameSync(planFile, join(ws, 'renamed.json'));
    const r = await run.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(planFile), 'no plan was recreated');
    assert.match(r.stderr, new RegExp(`layerwise: ${planFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} was deleted or renamed during the run; the results are in .*runs/gone/report\\.json`));
    assert.ok(existsSync(join(ws, 'runs', 'gone', 'model.json')));
    if (how === 'renamed') assert.equal(readFileSync(join(ws, 'renamed.json'), 'utf8'), planText({ epochs: 2, batchSize: 4 }), 'the renamed plan is untouched');
  });
}

test('the model and the data changed on disk during a run: the run trains what it loaded; a later resume is refused', async () => {
  const { ws, planFile } = workspace(2000, { epochs: 3, batchSize: 4 });
  const reference = await referenceWeights(planFile, ws);
  const runDir = join(ws, 'runs', 'changed');
  const controller = new AbortController();
  let changed = false;
  const outcome = await train({ planFile, backend: 'cpu', outDir: runDir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 600 && !changed) {
      changed = true;
      writeFileSync(join(ws, 'model', 'weights.bin'), Buffer.alloc(statSync(join(ws, 'model', 'weights.bin')).size));
      writeFileSync(join(ws, 'data', 'train.csv'), readFileSync(join(ws, 'data', 'train.csv'), 'utf8').replace(/\n-?\d/, '\n9'));
    }
    if (e.kind === 'step' && e.step === 1200) controller.abort();
  } });
  assert.equal(outcome.report.stopped, 'cancelled');
  await assert.rejects(train({ planFile, backend: 'cpu', resumeFrom: runDir }), /cannot resume runs\/changed: model changed since the run started \(weights weights\.bin .*\); data changed since the run started/);
  // undo the change: the same run resumes and ends where the uninterrupted run ended
  rmSync(join(ws, 'model'), { recursive: true });
  rmSync(join(ws, 'data', 'train.csv'));
  const fresh = workspace(2000, { epochs: 3, batchSize: 4 });
  renameSync(join(fresh.ws, 'model'), join(ws, 'model'));
  renameSync(join(fresh.ws, 'data', 'train.csv'), join(ws, 'data', 'train.csv'));
  await train({ planFile, backend: 'cpu', resumeFrom: runDir });
  assert.ok(weightsOf(runDir).equals(reference));
});

test('two runs on one plan at once (CLI + worker): the second is refused with a message naming the first; a stale lock is taken over', async () => {
  // long enough to outlast a second CLI and a worker starting on a loaded machine; stopped below
  const { ws, planFile } = workspace(2000, { epochs: 200, batchSize: 4 });
  const plan = readFileSync(planFile, 'utf8');
  const first = startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/first', '--no-write-back'], { cwd: ws });
  const lock = join(ws, 'runs', '.layerwise.json.lock');
  await pollUntil(() => existsSync(join(ws, 'runs', 'first', CHECKPOINT_FILE)));
  const second = await startCli(['train', 'layerwise.json', '--backend', 'cpu', '--out', 'runs/second'], { cwd: ws }).done;
  assert.equal(second.code, 1);
  assert.match(second.stderr.trim(), new RegExp(`^layerwise: .*layerwise\\.json: another training run of this plan is in progress \\(pid ${first.child.pid}, started .*, writing .*runs/first\\); wait for it to end or stop it`));
  assert.ok(!existsSync(join(ws, 'runs', 'second')), 'the refused run wrote nothing');
  // the extension's way in: a worker request
  const w = startWorker();
  await w.worker.ready;
  w.worker.send({ type: 'train', id: 'ext', planFile, workspaceRoot: ws, backend: 'cpu', progressIntervalMs: 250 });
  const refused = await w.next((m) => m.type === 'failed' || m.type === 'trained');
  assert.ok(refused.type === 'failed' && /another training run of this plan is in progress/.test(refused.problem.message), JSON.stringify(refused));
  w.worker.stop();
  process.kill(first.child.pid!, 'SIGINT');
  assert.equal((await first.done).code, 130, 'a stopped run exits 130');
  assert.ok(!existsSync(lock));
  assert.equal(readFileSync(planFile, 'utf8'), plan);
  // a lock left by a process that no longer exists is taken over
  writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), startedAt: 'then', runFolder: 'x' }));
  const short = plan.replace(/"epochs": 200/, '"epochs": 2');
  assert.notEqual(short, plan);
  const outcome = await train({ planFile, planText: short, backend: 'cpu', outDir: join(ws, 'runs', 'after-stale') });
  assert.equal(outcome.report.stopped, 'completed');
  assert.ok(!existsSync(lock));
});

test('50 cancels in a row: each run stops with a checkpoint, no tensor leaks, the lock is released, the plan untouched', async () => {
  const { ws, planFile } = workspace(100);
  const plan = readFileSync(planFile, 'utf8');
  const baseline = tf.memory().numTensors;
  for (let i = 0; i < 50; i++) {
    const controller = new AbortController();
    const dir = join(ws, 'runs', `c${i}`);
    const outcome = await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
      if (e.kind === 'step' && e.step === 1 + (i % 7)) controller.abort();
    } });
    assert.equal(outcome.report.stopped, 'cancelled');
    assert.equal(readCheckpoint(dir).manifest.position.globalStep, 1 + (i % 7));
    assert.equal(tf.memory().numTensors, baseline, `tensors after cancel ${i + 1}`);
  }
  assert.ok(!existsSync(join(ws, 'runs', '.layerwise.json.lock')));
  assert.equal(readFileSync(planFile, 'utf8'), plan);
});

test('a 1,000-layer model trains, checkpoints and resumes', async () => {
  const { ws, planFile } = workspace(40);
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [6], units: 4, name: 'dense' }));
  for (let i = 0; i < 998; i++) m.add(tf.layers.dense({ units: 4, name: `deep_${i}`, kernelInitializer: 'identity', biasInitializer: 'zeros' }));
  m.add(tf.layers.dense({ units: 3, name: 'out' }));
  rmSync(join(ws, 'model'), { recursive: true });
  await saveModel(m, join(ws, 'model'));
  m.dispose();
  writeFileSync(planFile, JSON.stringify({
    model: 'model/model.json',
    data: { train: 'data/train.csv', label: 'species' },
    training: { epochs: 2, batchSize: 20, lr: 0.001 },
    groups: [{ name: 'deep', layers: ['deep_*'], lrMult: 0.1 }, { name: 'top', layers: ['out'] }],
  }));
  const controller = new AbortController();
  const dir = join(ws, 'runs', 'deep');
  await train({ planFile, backend: 'cpu', outDir: dir, progressIntervalMs: 0, frozenPrefixCache: false, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 3) controller.abort();
  } });
  assert.equal(readCheckpoint(dir).manifest.tensors.filter((t) => t.key.startsWith('weight:')).length, 2000);
  const outcome = await train({ planFile, backend: 'cpu', resumeFrom: dir, frozenPrefixCache: false });
  assert.equal(outcome.report.stopped, 'completed');
  const saved = await loadModel(join(dir, 'model.json'));
  assert.equal(saved.layers.length, 1000);
  saved.dispose();
});

test('a 0-byte weights file and one whose manifest claims 2 GB: refused with a message naming the file, nothing allocated or written', async () => {
  for (const [what, breakIt, message] of [
    ['0-byte', (dir: string) => writeFileSync(join(dir, 'weights.bin'), ''), /weightsManifest\[0\]\.paths: the shards hold 0 bytes but the 8 weights .* need 460 bytes/],
    ['2 GB', (dir: string) => {
      const file = join(dir, 'model.json');
      const json = JSON.parse(readFileSync(file, 'utf8')) as { weightsManifest: Array<{ weights: Array<{ shape: number[] }> }> };
      const w = json.weightsManifest[0]?.weights[0];
      assert.ok(w);
      w.shape = [6, 89_478_486];
      writeFileSync(file, JSON.stringify(json));
    }, /weightsManifest\[0\]\.paths: the shards hold 460 bytes but the 8 weights .* need 2147483932 bytes/],
  ] as const) {
    const { ws, planFile } = workspace(40);
    breakIt(join(ws, 'model'));
    const plan = readFileSync(planFile, 'utf8');
    const before = process.memoryUsage().rss;
    await assert.rejects(train({ planFile, backend: 'cpu' }), (e: Error & { file?: string }) => {
      assert.match(e.message, message, what);
      assert.match(e.file ?? '', /model\.json$/, `${what}: names the model file (${e.message})`);
      return true;
    });
    assert.ok(process.memoryUsage().rss - before < 500 * 2 ** 20, `${what}: no 2 GB allocation`);
    assert.equal(readFileSync(planFile, 'utf8'), plan);
    assert.ok(!existsSync(join(ws, 'runs')) || !readdirNames(join(ws, 'runs')).some((n) => !n.startsWith('.')), `${what}: no run folder`);
  }
});

function readdirNames(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}

test('the model cannot be written at the end of a run: one clear error, the last checkpoint kept, a resume saves the same weights', async () => {
  const { ws, planFile } = workspace(100);
  const reference = await referenceWeights(planFile, ws);
  const plan = readFileSync(planFile, 'utf8');
  const dir = join(ws, 'runs', 'blocked');
  const obstacle = join(dir, 'weights.bin');
  await assert.rejects(train({ planFile, backend: 'cpu', outDir: dir, onEvent: (e) => {
    // a folder where the weights file must go: the rename at the end of saveModel fails
    if (e.kind === 'epoch' && e.epoch === 4) mkdirSync(join(obstacle, 'in-the-way'), { recursive: true });
  } }), (e: Error & { file?: string }) => {
    assert.match(e.message, /^.*runs\/blocked: cannot write the model: EISDIR: illegal operation on a directory, rename .*; the last checkpoint is kept: once that is fixed, resume with "layerwise train <plan> --resume .*blocked"$/);
    return true;
  });
  assert.equal(readFileSync(planFile, 'utf8'), plan);
  assert.ok(!existsSync(join(dir, 'report.json')));
  assert.equal(readCheckpoint(dir).manifest.position.epoch, 4, 'the checkpoint of the last epoch');
  rmSync(obstacle, { recursive: true });
  const outcome = await train({ planFile, backend: 'cpu', resumeFrom: dir });
  assert.equal(outcome.report.stopped, 'completed');
  assert.equal(outcome.report.epochs.length, 4);
  assert.ok(weightsOf(dir).equals(reference));
  assert.ok(!existsSync(join(dir, CHECKPOINT_FILE)), 'the checkpoint is removed once the model is saved');
});
