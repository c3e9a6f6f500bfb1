import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { GroupedOptimizer, type OptimizerSettings, type ParamUpdate } from '../../src/engine/optimizer.ts';

interface FixtureGroup {
  name: string;
  params: string[];
  lr: number;
  weightDecay: number;
  joinsAtStep: number;
}

interface FixtureConfig {
  name: string;
  optimizer: OptimizerSettings;
  steps: number;
  groups: FixtureGroup[];
  frozen: string[];
  lrs: number[][];
  trajectory: number[][];
}

interface CaseA {
  paramOrder: string[];
  shapes: Record<string, number[]>;
  initial: Record<string, number[]>;
  x: number[];
  xShape: [number, number];
  y: number[];
  yShape: [number, number];
  configs: FixtureConfig[];
}

const caseA = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', 'fixtures', 'torch-reference.json'), 'utf8')) as {
    caseA: CaseA;
  }
).caseA;

const RTOL = 1e-5;
const ATOL = 1e-6;

before(async () => {
  await tf.setBackend('cpu');
});

function configNamed(name: string): FixtureConfig {
  const config = caseA.configs.find((c) => c.name === name);
  assert.ok(config, `fixture has ${name}`);
  return config;
}

/** The fixture's model as tfjs variables, plus the MSE loss it was trained on. */
class TinyMlp {
  readonly vars = new Map<string, tf.Variable>();
  private readonly x = tf.tensor2d(caseA.x, caseA.xShape);
  private readonly y = tf.tensor2d(caseA.y, caseA.yShape);

  constructor() {
    for (const name of caseA.paramOrder) {
      this.vars.set(name, tf.variable(tf.tensor(caseA.initial[name]!, caseA.shapes[name]), true));
    }
  }

  v(name: string): tf.Variable {
    const v = this.vars.get(name);
    assert.ok(v, name);
    return v;
  }

  loss(): tf.Scalar {
    const hidden = tf.tanh(tf.add(tf.matMul(this.x, this.v('dense_1/kernel')), this.v('dense_1/bias')));
    const out = tf.add(tf.matMul(hidden, this.v('dense_2/kernel')), this.v('dense_2/bias'));
    return tf.mean(tf.square(tf.sub(out, this.y)));
  }

  /** Gradients of the loss for the named params only (frozen params get none, as in the plan). */
  updates(t: number, config: FixtureConfig, lrs: number[]): { updates: ParamUpdate[]; dispose: () => void } {
    const training = config.groups.flatMap((g, gi) =>
      g.joinsAtStep <= t ? g.params.map((name) => ({ name, lr: lrs[gi]!, weightDecay: g.weightDecay })) : [],
    );
    const varList = training.map((p) => this.v(p.name));
    const { value, grads } = tf.variableGrads(() => this.loss(), varList);
    value.dispose();
    const updates = training.map((p) => {
      const variable = this.v(p.name);
      const grad = grads[variable.name];
      assert.ok(grad, `gradient for ${p.name}`);
      return { ...p, variable, grad };
    });
    return { updates, dispose: () => tf.dispose(Object.values(grads)) };
  }

  dispose(): void {
    tf.dispose([...this.vars.values(), this.x, this.y]);
  }
}

interface Drift {
  maxAbs: number;
  maxRel: number;
  /** Largest error as a fraction of the allowed atol + rtol·|torch|. */
  worstShare: number;
}

function compareToTorch(model: TinyMlp, expected: number[], what: string, err: Drift): void {
  let offset = 0;
  for (const name of caseA.paramOrder) {
    const actual = model.v(name).dataSync();
    for (let i = 0; i < actual.length; i++) {
      const e = Math.fround(expected[offset + i]!);
      const a = actual[i]!;
      const abs = Math.abs(a - e);
      err.maxAbs = Math.max(err.maxAbs, abs);
      if (e !== 0) err.maxRel = Math.max(err.maxRel, abs / Math.abs(e));
      err.worstShare = Math.max(err.worstShare, abs / (ATOL + RTOL * Math.abs(e)));
      assert.ok(abs <= ATOL + RTOL * Math.abs(e), `${what} ${name}[${i}]: got ${a}, torch ${e}`);
    }
    offset += actual.length;
  }
  assert.equal(offset, expected.length);
}

function replay(config: FixtureConfig, err: Drift): void {
  const model = new TinyMlp();
  const optimizer = new GroupedOptimizer(config.optimizer);
  try {
    for (let t = 0; t < config.steps; t++) {
      const { updates, dispose } = model.updates(t, config, config.lrs[t]!);
      optimizer.step(updates);
      dispose();
      compareToTorch(model, config.trajectory[t]!, `${config.name} step ${t}`, err);
    }
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

test('every Case A configuration matches PyTorch after every step', (t) => {
  const overall: Drift = { maxAbs: 0, maxRel: 0, worstShare: 0 };
  for (const config of caseA.configs) {
    const err: Drift = { maxAbs: 0, maxRel: 0, worstShare: 0 };
    replay(config, err);
    t.diagnostic(`${config.name}: max abs error ${err.maxAbs.toExponential(2)}, max rel error ${err.maxRel.toExponential(2)}, ${(100 * err.worstShare).toFixed(0)}% of tolerance`);
    overall.maxAbs = Math.max(overall.maxAbs, err.maxAbs);
    overall.maxRel = Math.max(overall.maxRel, err.maxRel);
    overall.worstShare = Math.max(overall.worstShare, err.worstShare);
  }
  t.diagnostic(
    `all: max abs ${overall.maxAbs.toExponential(2)}, max rel ${overall.maxRel.toExponential(2)}, ${(100 * overall.worstShare).toFixed(0)}% of tolerance`,
  );
  assert.equal(caseA.configs.length, 14);
});

test('a frozen parameter stays bit-identical', () => {
  const config = configNamed('adamw_frozen');
  assert.deepEqual(config.frozen, ['dense_1/kernel']);
  const initialBytes = new Uint8Array(Float32Array.from(caseA.initial['dense_1/kernel']!).buffer);
  const model = new TinyMlp();
  const optimizer = new GroupedOptimizer(config.optimizer);
  for (let t = 0; t < config.steps; t++) {
    const { updates, dispose } = model.updates(t, config, config.lrs[t]!);
    assert.ok(!updates.some((u) => u.name === 'dense_1/kernel'));
    optimizer.step(updates);
    dispose();
    const now = new Uint8Array(Float32Array.from(model.v('dense_1/kernel').dataSync()).buffer);
    assert.deepEqual(now, initialBytes, `step ${t}`);
  }
  assert.equal(optimizer.stepsTaken('dense_1/kernel'), 0);
  assert.equal(optimizer.stepsTaken('dense_2/kernel'), config.steps);
  optimizer.dispose();
  model.dispose();
});

test('a parameter that joins mid-run starts its own step count; the others keep theirs', () => {
  const config = configNamed('adamw_unfreeze_at_10');
  const model = new TinyMlp();
  const optimizer = new GroupedOptimizer(config.optimizer);
  for (let t = 0; t < config.steps; t++) {
    const { updates, dispose } = model.updates(t, config, config.lrs[t]!);
    optimizer.step(updates);
    dispose();
  }
  assert.equal(optimizer.stepsTaken('dense_2/kernel'), 25);
  assert.equal(optimizer.stepsTaken('dense_1/kernel'), 15);
  optimizer.dispose();
  model.dispose();
});

test('resetState makes the next step a first Adam step again', () => {
  const settings: OptimizerSettings = { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false };
  const optimizer = new GroupedOptimizer(settings);
  const p = tf.variable(tf.tensor1d([0.5, -1.5, 2]));
  const oldGrad = tf.tensor1d([3, 3, -3]);
  for (let i = 0; i < 3; i++) optimizer.step([{ name: 'p', variable: p, grad: oldGrad, lr: 0.1, weightDecay: 0 }]);
  assert.equal(optimizer.stepsTaken('p'), 3);
  optimizer.resetState('p');
  assert.equal(optimizer.stepsTaken('p'), 0);

  const before = Array.from(p.dataSync());
  const g = [0.2, -0.4, 1e-3];
  const grad = tf.tensor1d(g);
  const lr = 0.01;
  const wd = 0.1;
  optimizer.step([{ name: 'p', variable: p, grad, lr, weightDecay: wd }]);
  // First AdamW step in closed form: m̂ = g, v̂ = g², so p ← p·(1 − lr·wd) − lr·g/(|g| + eps).
  const expected = before.map((w, i) => w * (1 - lr * wd) - (lr * g[i]!) / (Math.abs(g[i]!) + 1e-8));
  const after = p.dataSync();
  expected.forEach((e, i) => assert.ok(Math.abs(after[i]! - e) <= 1e-6 * Math.abs(e) + 1e-7, `[${i}] ${after[i]} vs ${e}`));
  assert.equal(optimizer.stepsTaken('p'), 1);
  optimizer.dispose();
  tf.dispose([p, oldGrad, grad]);
});

test('restoring a snapshot (with the weights) replays the same PyTorch trajectory', () => {
  const config = configNamed('sgd_momentum');
  const err: Drift = { maxAbs: 0, maxRel: 0, worstShare: 0 };
  const model = new TinyMlp();
  const optimizer = new GroupedOptimizer(config.optimizer);
  const run = (from: number, to: number) => {
    for (let t = from; t < to; t++) {
      const { updates, dispose } = model.updates(t, config, config.lrs[t]!);
      optimizer.step(updates);
      dispose();
      compareToTorch(model, config.trajectory[t]!, `step ${t}`, err);
    }
  };
  run(0, 8);
  const saved = optimizer.snapshot();
  const savedWeights = caseA.paramOrder.map((name) => tf.clone(model.v(name)));
  run(8, 14);
  // A detour the LR finder would take: wild steps that scramble weights and momentum.
  for (let i = 0; i < 3; i++) {
    const { updates, dispose } = model.updates(0, config, [5, 5]);
    optimizer.step(updates);
    dispose();
  }
  optimizer.restore(saved);
  caseA.paramOrder.forEach((name, i) => model.v(name).assign(savedWeights[i]!));
  assert.equal(optimizer.stepsTaken('dense_1/kernel'), 8);
  run(8, config.steps);
  optimizer.disposeSnapshot(saved);
  tf.dispose(savedWeights);
  optimizer.dispose();
  model.dispose();
});

test('no tensor leaks: the count is flat across 50 steps and returns to zero after dispose', () => {
  const settingsList: OptimizerSettings[] = [
    { type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false },
    { type: 'adam', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false },
    { type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0.9, nesterov: true },
    { type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false },
  ];
  const config = configNamed('adamw_groups');
  for (const settings of settingsList) {
    const model = new TinyMlp();
    const baseline = tf.memory().numTensors;
    const optimizer = new GroupedOptimizer(settings);
    const lrs = config.groups.map(() => 1e-3);
    const counts: number[] = [];
    for (let t = 0; t < 50; t++) {
      const { updates, dispose } = model.updates(t, config, lrs);
      optimizer.step(updates.map((u) => ({ ...u, weightDecay: 0.01 })));
      dispose();
      counts.push(tf.memory().numTensors);
    }
    assert.ok(counts.every((n) => n === counts[0]), `${settings.type}: ${counts[0]} → ${counts.at(-1)}`);
    const snapshot = optimizer.snapshot();
    optimizer.restore(snapshot);
    optimizer.disposeSnapshot(snapshot);
    assert.equal(tf.memory().numTensors, counts[0], `${settings.type}: snapshot round trip`);
    optimizer.dispose();
    assert.equal(tf.memory().numTensors, baseline, `${settings.type}: after dispose`);
    model.dispose();
  }
});

test('nesterov without momentum is refused, as torch does', () => {
  assert.throws(
    () => new GroupedOptimizer({ type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: true }),
    /nesterov/,
  );
});
