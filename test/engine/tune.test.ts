/**
 * `tune`: Auto-RGN per group against a hand computation of the gradients of a two-layer linear
 * network (softmax cross-entropy, worked out here without tfjs), weights untouched by measuring;
 * the search never spends more than its budget, counted step by step, and repeats itself for a seed.
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/engine/backend.ts';
import { saveModel } from '../../src/engine/model-io.ts';
import { prepareRun } from '../../src/engine/session.ts';
import { tune, tunePrepared } from '../../src/engine/tune.ts';
import { TUNE_DEFAULTS, halvingRungs } from '../../src/core/tune.ts';
import { WorkerHarness, workerBundle } from './processes.ts';

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

const repo = resolve('.');
const W1 = [
  [0.5, -0.3],
  [0.2, 0.8],
  [-0.6, 0.1],
];
const B1 = [0.05, -0.1];
const W2 = [
  [0.7, -0.4],
  [-0.2, 0.3],
];
const B2 = [0.0, 0.1];
const X = [
  [1, 2, 0.5],
  [-1, 0.5, 1.5],
  [0.3, -0.7, 2],
  [2, 1, -1],
];
const LABELS = ['a', 'b', 'b', 'a'];

/** Linear 3→2 ("low") then linear 2→2 ("top", logits), weights above, CSV data; returns the plan file. */
async function linearWorkspace(planExtra: object): Promise<string> {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-tune-'));
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [3], units: 2, name: 'low' }));
  m.add(tf.layers.dense({ units: 2, name: 'top' }));
  m.setWeights([tf.tensor2d(W1), tf.tensor1d(B1), tf.tensor2d(W2), tf.tensor1d(B2)]);
  await saveModel(m, join(ws, 'model'));
  m.dispose();
  writeFileSync(join(ws, 'train.csv'), ['f0,f1,f2,label', ...X.map((r, i) => `${r.join(',')},${LABELS[i]}`)].join('\n') + '\n');
  const plan = {
    model: 'model/model.json',
    data: { train: 'train.csv', label: 'label', shuffle: false },
    groups: [
      { name: 'low', layers: ['low'], lrMult: 0.25 },
      { name: 'top', layers: ['top'] },
    ],
    ...planExtra,
  };
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify(plan, null, 2));
  return join(ws, 'layerwise.json');
}

/** ‖g‖/‖θ‖ of each layer (kernel and bias as one vector) on the given rows, by the chain rule. */
function handRgn(rows: number[]): { low: number; top: number } {
  const n = rows.length;
  const gW1 = W1.map((r) => r.map(() => 0));
  const gB1 = [0, 0];
  const gW2 = W2.map((r) => r.map(() => 0));
  const gB2 = [0, 0];
  for (const i of rows) {
    const x = X[i] as number[];
    const z1 = [0, 1].map((j) => (B1[j] as number) + x.reduce((s, xk, k) => s + xk * (W1[k] as number[])[j]!, 0));
    const z2 = [0, 1].map((j) => (B2[j] as number) + z1.reduce((s, zk, k) => s + zk * (W2[k] as number[])[j]!, 0));
    const mx = Math.max(...z2);
    const e = z2.map((z) => Math.exp(z - mx));
    const p = e.map((v) => v / (e[0]! + e[1]!));
    const y = LABELS[i] === 'a' ? [1, 0] : [0, 1];
    const d2 = p.map((pj, j) => (pj - y[j]!) / n); // d(mean CE)/dz2
    const d1 = [0, 1].map((k) => d2.reduce((s, dj, j) => s + dj * (W2[k] as number[])[j]!, 0));
    for (let k = 0; k < 2; k++) for (let j = 0; j < 2; j++) (gW2[k] as number[])[j]! += z1[k]! * d2[j]!;
    for (let j = 0; j < 2; j++) gB2[j]! += d2[j]!;
    for (let k = 0; k < 3; k++) for (let j = 0; j < 2; j++) (gW1[k] as number[])[j]! += x[k]! * d1[j]!;
    for (let j = 0; j < 2; j++) gB1[j]! += d1[j]!;
  }
  const sq = (a: number[][] | number[]): number => a.flat().reduce((s, v) => s + v * v, 0);
  return {
    low: Math.sqrt(sq(gW1) + sq(gB1)) / Math.sqrt(sq(W1) + sq(B1)),
    top: Math.sqrt(sq(gW2) + sq(gB2)) / Math.sqrt(sq(W2) + sq(B2)),
  };
}

test('rgn: each group gets its ‖g‖/‖θ‖ over the hand-computed gradients, ÷ the largest', async () => {
  const planFile = await linearWorkspace({ training: { batchSize: 4 } });
  const r = await tune({ planFile, backend: 'cpu', method: 'rgn', batches: 1 });
  const hand = handRgn([0, 1, 2, 3]);
  const max = Math.max(hand.low, hand.top);
  const low = r.groups.find((g) => g.name === 'low');
  const top = r.groups.find((g) => g.name === 'top');
  assert.ok(low && top);
  assert.equal(low.current, 0.25);
  assert.equal(top.current, 1);
  assert.equal(low.lrMult, Number((hand.low / max).toPrecision(3)), `low ${low.lrMult} vs ${hand.low / max}`);
  assert.equal(top.lrMult, Number((hand.top / max).toPrecision(3)));
  assert.match(low.why, new RegExp(hand.low.toExponential(2).replace('+', '\\+')));
  assert.equal(r.steps, 1);
});

test('rgn: the figure is the mean over batches of each batch’s ratio', async () => {
  const planFile = await linearWorkspace({ training: { batchSize: 2 } });
  const r = await tune({ planFile, backend: 'cpu', method: 'rgn', batches: 2 });
  const a = handRgn([0, 1]);
  const b = handRgn([2, 3]);
  const low = (a.low + b.low) / 2;
  const top = (a.top + b.top) / 2;
  const max = Math.max(low, top);
  assert.deepEqual(
    r.groups.map((g) => [g.name, g.lrMult]),
    [
      ['low', Number((low / max).toPrecision(3))],
      ['top', Number((top / max).toPrecision(3))],
    ],
  );
});

test('rgn: a frozen group stays frozen unless asked; no weight or statistic changes by a bit', async () => {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-tune-'));
  cpSync(join(repo, 'test/fixtures/models/mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test/fixtures/data/mlp'), join(ws, 'data'), { recursive: true });
  const plan = {
    model: 'model/model.json',
    data: { train: 'data/train.csv', validation: 'data/val.csv', label: 'species' },
    groups: [
      { name: 'body', layers: ['dense', 'batch_normalization'], frozen: true },
      { name: 'head', layers: ['dense_1'] },
    ],
  };
  const planFile = join(ws, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify(plan));
  const run = await prepareRun({ planFile, backend: 'cpu' });
  try {
    const before = run.params.map((p) => Buffer.from((p.variable.dataSync() as Float32Array).buffer.slice(0)));
    const frozen = await tunePrepared(run, { planFile, method: 'rgn' });
    assert.equal(frozen.groups.find((g) => g.name === 'body')?.frozen, true);
    assert.equal(frozen.groups.find((g) => g.name === 'head')?.lrMult, 1);
    // training-mode forward passes move BatchNorm statistics: they must be put back
    const all = await tunePrepared(run, { planFile, method: 'rgn', includeFrozen: true });
    const body = all.groups.find((g) => g.name === 'body');
    assert.ok(body && body.frozen === undefined && body.lrMult > 0);
    run.params.forEach((p, i) => assert.ok(Buffer.from((p.variable.dataSync() as Float32Array).buffer.slice(0)).equals(before[i] as Buffer), `${p.audit.name} changed`));
  } finally {
    run.model.dispose();
  }
});

function mlpPlan(): string {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-tune-'));
  cpSync(join(repo, 'test/fixtures/models/mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test/fixtures/data/mlp'), join(ws, 'data'), { recursive: true });
  const plan = {
    model: 'model/model.json',
    data: { train: 'data/train.csv', validation: 'data/val.csv', label: 'species' },
    groups: [
      { name: 'body', layers: ['dense'] },
      { name: 'norm', layers: ['batch_normalization'] },
      { name: 'head', layers: ['dense_1'] },
    ],
    training: { epochs: 3, batchSize: 8, lr: 0.01 },
  };
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify(plan));
  return join(ws, 'layerwise.json');
}

test('search: never more optimizer steps than the budget, counted one by one', async () => {
  const planFile = mlpPlan();
  for (const budget of [196, 250, 301]) {
    let counted = 0;
    const r = await tune({
      planFile,
      backend: 'cpu',
      method: 'search',
      budget,
      progressIntervalMs: 0,
      onEvent: (e) => {
        if (e.kind === 'step') counted += 1;
      },
    });
    assert.equal(r.steps, counted, `budget ${budget}: reported steps = steps taken`);
    assert.ok(counted <= budget, `budget ${budget}: ${counted} steps`);
    assert.equal(r.budget, budget);
    assert.ok(counted > 0);
    const trialSteps = (r.trials ?? []).reduce((s, t) => s + t.steps, 0);
    assert.equal(trialSteps, counted);
  }
  await assert.rejects(tune({ planFile, backend: 'cpu', method: 'search', budget: 150 }), /budget of 150 steps cannot train 49 candidates in 4 rounds; give at least 196/);
});

test('search: the same seed picks the same winner with the same scores', async () => {
  const planFile = mlpPlan();
  const a = await tune({ planFile, backend: 'cpu', method: 'search', budget: 200, seed: 7 });
  const b = await tune({ planFile, backend: 'cpu', method: 'search', budget: 200, seed: 7 });
  assert.deepEqual(a.trials, b.trials);
  assert.deepEqual(a.groups, b.groups);
  assert.deepEqual(a.changes, b.changes);
  // every dimension is tried, BatchNorm too (the model has a BatchNormalization layer)
  const labels = (a.trials ?? []).filter((t) => t.rung === 1).map((t) => t.label);
  assert.equal(labels.length, 1 + TUNE_DEFAULTS.factors.length * 3 * TUNE_DEFAULTS.schedules.length * 2);
  for (const word of ['factor 1,', 'factor 4,', 'LP-FT', 'gradual', 'all from the start', 'stlr', 'cosine', 'BatchNorm train', 'BatchNorm inference']) {
    assert.ok(labels.some((l) => l.includes(word)), word);
  }
});

test('a streamed training set (too big for memory, or augmented) is tuned from the same batches as one held in memory', async () => {
  const linear = await linearWorkspace({ training: { batchSize: 2 } });
  const streamed = await tune({ planFile: linear, backend: 'cpu', method: 'rgn', batches: 2, dataOptions: { pipeline: 'stream', decodeThreads: 1 } });
  const a = handRgn([0, 1]);
  const b = handRgn([2, 3]);
  const max = Math.max((a.low + b.low) / 2, (a.top + b.top) / 2);
  assert.deepEqual(streamed.groups.map((g) => g.lrMult), [Number(((a.low + b.low) / 2 / max).toPrecision(3)), Number(((a.top + b.top) / 2 / max).toPrecision(3))]);
  const mlp = mlpPlan();
  const memory = await tune({ planFile: mlp, backend: 'cpu', method: 'search', budget: 196, seed: 3, dataOptions: { pipeline: 'memory' } });
  const stream = await tune({ planFile: mlp, backend: 'cpu', method: 'search', budget: 196, seed: 3, dataOptions: { pipeline: 'stream', decodeThreads: 1 } });
  assert.deepEqual(stream.trials, memory.trials);
  assert.deepEqual(stream.groups, memory.groups);
});

test('search: a plan without validation data is refused, naming the field', async () => {
  const planFile = await linearWorkspace({});
  await assert.rejects(tune({ planFile, backend: 'cpu', method: 'search' }), (e: Error & { field?: string }) => e.field === 'data' && /validation/.test(e.message));
});

test('halving rungs share the budget evenly and stay within it', () => {
  for (const [n, budget] of [[25, 600], [49, 1000], [7, 30], [1, 5]] as const) {
    const rungs = halvingRungs(n, budget);
    const total = rungs.reduce((s, r) => s + r.candidates * r.steps, 0);
    assert.ok(total <= budget, `${n} candidates, budget ${budget}: ${total}`);
    assert.equal(rungs[0]?.candidates, n);
  }
  assert.deepEqual(halvingRungs(25, 600).map((r) => r.candidates), [25, 9, 3]);
});

test('the built worker answers a tune request with the suggestion and writes nothing', { timeout: 300_000 }, async () => {
  const planFile = mlpPlan();
  const before = readFileSync(planFile, 'utf8');
  const w = new WorkerHarness(workerBundle);
  await w.waitFor((m) => m.type === 'ready');
  const m = await w.ask({ type: 'tune', id: 't1', planFile, workspaceRoot: join(planFile, '..'), backend: 'cpu', method: 'rgn' });
  w.disconnect();
  assert.equal(m.type, 'tuned', JSON.stringify(m));
  assert.deepEqual(w.invalid, []);
  const groups = m.type === 'tuned' ? m.result.groups : [];
  assert.deepEqual(groups.map((g) => g.name), ['body', 'norm', 'head']);
  assert.equal(Math.max(...groups.map((g) => g.lrMult)), 1);
  assert.equal(readFileSync(planFile, 'utf8'), before);
});
