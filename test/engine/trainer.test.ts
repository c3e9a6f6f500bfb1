/**
 * The trainer end to end on real (tiny) models and data: PyTorch parity of a whole run, frozen
 * means not one bit changes (BatchNorm statistics included), determinism, flat memory, cancel,
 * the non-finite guard, early stopping and gradual unfreezing.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/engine/backend.ts';
import { saveModel, loadModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';
import type { TrainEvent, StepEvent } from '../../src/core/progress.ts';
import { torchCaseB, type TorchCaseB } from '../fixtures/torch-reference.ts';

const reference = { caseB: torchCaseB() };
type CaseB = TorchCaseB;

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

function workspace(): string {
  return mkdtempSync(join(tmpdir(), 'layerwise-trainer-'));
}

/** Dense(6→5, relu) → Dense(5→3) with the reference's initial weights, saved as a tfjs model. */
async function writeReferenceModel(dir: string, c: CaseB): Promise<void> {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [6], units: 5, activation: 'relu', name: 'dense_1' }));
  m.add(tf.layers.dense({ units: 3, name: 'dense_2' }));
  m.setWeights(c.paramOrder.map((n) => tf.tensor(c.initial[n] as number[], c.shapes[n])));
  await saveModel(m, dir);
  m.dispose();
}

function writeCsv(file: string, x: number[], cols: number, labels: Array<number | string>): void {
  const header = [...Array.from({ length: cols }, (_, i) => `f${i}`), 'label'].join(',');
  const rows = labels.map((l, r) => [...x.slice(r * cols, (r + 1) * cols).map((v) => String(v)), String(l)].join(','));
  writeFileSync(file, [header, ...rows].join('\n') + '\n');
}

async function weightsOf(modelJson: string): Promise<Map<string, Float32Array>> {
  const m = await loadModel(modelJson);
  const out = new Map<string, Float32Array>();
  for (const l of m.layers) for (const w of l.weights) out.set(w.originalName, (w.read().dataSync() as Float32Array).slice());
  m.dispose();
  return out;
}

test('a whole run matches PyTorch: groups, AdamW, no-decay rule, cosine warm-up, mini-batches', async () => {
  const c = reference.caseB;
  const ws = workspace();
  await writeReferenceModel(join(ws, 'model'), c);
  writeCsv(join(ws, 'train.csv'), c.x, c.xShape[1], c.labels);
  const plan = { model: 'model/model.json', ...c.plan, data: { train: 'train.csv', label: 'label', shuffle: false } };
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify(plan, null, 2));
  const steps: StepEvent[] = [];
  const outcome = await train({
    planFile: join(ws, 'layerwise.json'),
    backend: 'cpu',
    outDir: join(ws, 'runs', 'r1'),
    progressIntervalMs: 0,
    onEvent: (e) => {
      if (e.kind === 'step') steps.push(e);
    },
  });
  assert.equal(outcome.report.timings.steps, c.steps);
  // every step's loss, before its update
  assert.equal(steps.length, c.steps);
  steps.forEach((s, t) => assert.ok(Math.abs(s.loss - (c.losses[t] as number)) < 1e-5, `loss at step ${t}: ${s.loss} vs ${c.losses[t]}`));
  const w = await weightsOf(outcome.report.outputs.model);
  const final = c.trajectory[c.steps - 1] as number[];
  let offset = 0;
  let maxErr = 0;
  for (const name of c.paramOrder) {
    const got = w.get(name);
    assert.ok(got, `weight ${name} saved`);
    for (let i = 0; i < got.length; i++) {
      const want = final[offset + i] as number;
      const err = Math.abs(got[i]! - want) / Math.max(1e-3, Math.abs(want));
      maxErr = Math.max(maxErr, err);
    }
    offset += got.length;
  }
  assert.ok(maxErr < 2e-5, `max relative error ${maxErr}`);
});

/** A small MLP with BatchNorm, its CSV data, and a plan; returns the plan path. */
async function bnWorkspace(plan: Record<string, unknown>, opts: { rows?: number } = {}): Promise<string> {
  const ws = workspace();
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [4], units: 8, activation: 'relu', name: 'base_dense', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.batchNormalization({ name: 'base_bn' }));
  m.add(tf.layers.dense({ units: 8, activation: 'relu', name: 'mid_dense', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.add(tf.layers.batchNormalization({ name: 'mid_bn' }));
  m.add(tf.layers.dense({ units: 3, name: 'head_dense', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  // give the BN statistics non-trivial values so a moved statistic is visible
  for (const bn of ['base_bn', 'mid_bn']) {
    const l = m.getLayer(bn);
    const [g, b, mean, v] = l.getWeights();
    l.setWeights([g!, b!, tf.fill(mean!.shape, 0.3), tf.fill(v!.shape, 2)]);
  }
  await saveModel(m, join(ws, 'model'));
  m.dispose();
  const rows = opts.rows ?? 24;
  const x: number[] = [];
  const labels: string[] = [];
  for (let r = 0; r < rows; r++) {
    const cls = r % 3;
    for (let j = 0; j < 4; j++) x.push(Number((Math.sin(r * 7 + j * 3) + cls * (j === cls ? 2 : 0)).toFixed(4)));
    labels.push(['cat', 'dog', 'fox'][cls] as string);
  }
  writeCsv(join(ws, 'train.csv'), x, 4, labels);
  writeCsv(join(ws, 'val.csv'), x.slice(0, 12 * 4), 4, labels.slice(0, 12));
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify({ model: 'model/model.json', data: { train: 'train.csv', validation: 'val.csv', shuffle: false }, ...plan }, null, 2));
  return join(ws, 'layerwise.json');
}

const bnGroups = [
  { name: 'base', layers: ['base_*'] },
  { name: 'mid', layers: ['mid_*'] },
  { name: 'head', layers: ['head_*'] },
];

test('frozen means frozen: weights and BatchNorm statistics unchanged byte for byte', async () => {
  const planFile = await bnWorkspace({
    groups: [{ ...bnGroups[0], frozen: true }, bnGroups[1], bnGroups[2]],
    training: { epochs: 2, batchSize: 8, lr: 0.05, optimizer: 'sgd', momentum: 0.9, weightDecay: 0.1 },
  });
  const dir = join(planFile, '..');
  const beforeW = await weightsOf(join(dir, 'model', 'model.json'));
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(dir, 'runs', 'a') });
  const afterW = await weightsOf(outcome.report.outputs.model);
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  for (const name of ['base_dense/kernel', 'base_dense/bias', 'base_bn/gamma', 'base_bn/beta', 'base_bn/moving_mean', 'base_bn/moving_variance']) {
    assert.ok(bytes(beforeW.get(name)!).equals(bytes(afterW.get(name)!)), `${name} must not change`);
  }
  // the layers that train did move, statistics included (training-mode BatchNorm)
  for (const name of ['mid_dense/kernel', 'mid_bn/gamma', 'mid_bn/moving_mean', 'head_dense/kernel']) {
    assert.ok(!bytes(beforeW.get(name)!).equals(bytes(afterW.get(name)!)), `${name} should have changed`);
  }
  assert.equal(outcome.report.frozenCheck.unchanged, true);
  assert.equal(outcome.report.frozenCheck.weightsChecked, 6);
});

test('gradual unfreezing: stage 1 changes only the head, later stages the rest', async () => {
  const planFile = await bnWorkspace({
    groups: bnGroups,
    training: { epochs: 1, batchSize: 8, lr: 0.01 },
    unfreeze: { stages: [{ epochs: 1, train: ['head'] }] },
  });
  const dir = join(planFile, '..');
  const beforeW = await weightsOf(join(dir, 'model', 'model.json'));
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(dir, 'runs', 's1') });
  const afterW = await weightsOf(outcome.report.outputs.model);
  const same = (n: string) => Buffer.from(beforeW.get(n)!.buffer).equals(Buffer.from(afterW.get(n)!.buffer));
  // not-yet-unfrozen layers behave as frozen: BatchNorm in inference mode, statistics still
  assert.ok(same('base_dense/kernel') && same('mid_bn/moving_mean') && same('base_bn/moving_variance'));
  assert.ok(!same('head_dense/kernel'));
  const stages: TrainEvent[] = [];
  const planFile2 = await bnWorkspace({ groups: bnGroups, training: { epochs: 4, batchSize: 8 }, unfreeze: { mode: 'gradual' } });
  const o2 = await train({ planFile: planFile2, backend: 'cpu', outDir: join(planFile2, '..', 'runs', 'g'), onEvent: (e) => e.kind === 'stage' && stages.push(e) });
  assert.deepEqual(
    stages.map((s) => (s.kind === 'stage' ? s.trainGroups : [])),
    [['head'], ['mid', 'head'], ['base', 'mid', 'head']],
  );
  assert.deepEqual(o2.report.stages.map((s) => s.epochs), [1, 1, 2]);
  // each group's LR is 0 in the epochs before it unfreezes
  assert.deepEqual(o2.report.groupLrByEpoch['base']!.map((lr) => lr > 0), [false, false, true, true]);
});

test('determinism: two runs with shuffle off and a fixed seed give identical weights', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 2, batchSize: 5, seed: 7 } });
  const dir = join(planFile, '..');
  const a = await train({ planFile, backend: 'cpu', outDir: join(dir, 'runs', 'a') });
  const b = await train({ planFile, backend: 'cpu', outDir: join(dir, 'runs', 'b') });
  assert.ok(readFileSync(join(a.outDir, 'weights.bin')).equals(readFileSync(join(b.outDir, 'weights.bin'))));
});

test('memory stays flat over a run', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 6, batchSize: 4, diagnosticsEvery: 2, earlyStopping: { patience: 100 } } });
  const counts: number[] = [];
  await train({ planFile, backend: 'cpu', outDir: join(planFile, '..', 'runs', 'm'), onEvent: (e) => e.kind === 'epoch' && counts.push(tf.memory().numTensors) });
  assert.equal(counts.length, 6);
  // epoch 1 allocates optimizer state and the best-so-far copy; after that nothing may grow
  assert.deepEqual(counts.slice(1), counts.slice(1).map(() => counts[1]));
});

test('cancel returns within one batch and writes no model', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 50, batchSize: 2 } });
  const controller = new AbortController();
  let stepsAfterAbort = 0;
  const outDir = join(planFile, '..', 'runs', 'c');
  const outcome = await train({
    planFile,
    backend: 'cpu',
    outDir,
    signal: controller.signal,
    progressIntervalMs: 0,
    onEvent: (e) => {
      if (e.kind !== 'step') return;
      if (controller.signal.aborted) stepsAfterAbort += 1;
      if (e.step === 3) controller.abort();
    },
  });
  assert.equal(outcome.report.stopped, 'cancelled');
  assert.equal(stepsAfterAbort, 0);
  assert.equal(outcome.report.timings.steps, 3);
  assert.equal(existsSync(join(outDir, 'model.json')), false);
  assert.equal(existsSync(join(outDir, 'weights.bin')), false);
});

test('a non-finite loss stops the run with a clear message and keeps finite weights', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 20, batchSize: 4, lr: 1e9, optimizer: 'sgd' } });
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(planFile, '..', 'runs', 'n') });
  assert.equal(outcome.report.stopped, 'nonFinite');
  assert.match(outcome.report.message ?? '', /loss became (NaN|Infinity|-Infinity) at step \d+.*lower the learning rate/);
  const w = await weightsOf(outcome.report.outputs.model);
  for (const [name, v] of w) assert.ok(v.every(Number.isFinite), `${name} finite`);
});

test('early stopping stops after `patience` epochs without improvement and keeps the best copy', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 30, batchSize: 4, lr: 0.5, optimizer: 'sgd', earlyStopping: { patience: 1, minDelta: 10 } } });
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(planFile, '..', 'runs', 'e') });
  // minDelta 10 means no epoch after the first counts as an improvement
  assert.equal(outcome.report.stopped, 'earlyStopping');
  assert.equal(outcome.report.epochs.length, 2);
  assert.equal(outcome.report.best?.epoch, 1);
  assert.ok(existsSync(join(outcome.outDir, 'best', 'model.json')));
});

test('the report lists backend, per-epoch metrics, group LRs, timings and the frozen check', async () => {
  const planFile = await bnWorkspace({ groups: bnGroups, training: { epochs: 2, batchSize: 6, schedule: { type: 'stlr' } }, discriminative: { type: 'ulmfit' } });
  const outcome = await train({ planFile, backend: 'cpu', outDir: join(planFile, '..', 'runs', 'r') });
  const r = JSON.parse(readFileSync(outcome.reportFile, 'utf8'));
  assert.equal(r.backend.name, 'cpu');
  assert.equal(r.epochs.length, 2);
  assert.ok(r.epochs.every((e: { valLoss?: number; trainAccuracy?: number }) => typeof e.valLoss === 'number' && typeof e.trainAccuracy === 'number'));
  // ULMFiT ÷2.6 per group below the top: ratios hold in the recorded LRs
  const lr = r.groupLrByEpoch;
  assert.ok(Math.abs(lr.head[0] / lr.mid[0] - 2.6) < 1e-9 && Math.abs(lr.mid[0] / lr.base[0] - 2.6) < 1e-9);
  assert.equal(typeof r.frozenCheck.unchanged, 'boolean');
  assert.ok(r.timings.steps === 8);
  mkdirSync(join(planFile, '..', 'x'), { recursive: true });
});
