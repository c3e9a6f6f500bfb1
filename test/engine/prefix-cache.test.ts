/**
 * Frozen-prefix caching (src/engine/prefix-cache.ts): where the cut goes and when there is none,
 * and runs of the bundled example with stages that freeze a prefix, with and without the cache,
 * on cpu, where every kernel is deterministic down to the bit: the weights must be identical.
 * (On wasm the same runs agree to float32 rounding: prefix-cache-wasm.test.ts.)
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../../src/engine/backend.ts';
import type { Dataset } from '../../src/engine/data.ts';
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel, saveModel } from '../../src/engine/model-io.ts';
import { buildFrozenPrefix, planPrefix } from '../../src/engine/prefix-cache.ts';
import { train } from '../../src/engine/trainer.ts';
import { runExample, stagedPlanText } from './example-runs.ts';

const L = tf.layers;

before(async () => {
  await selectBackend('cpu', { trainableClassNames: [] });
});

function stack(withDropoutAt?: number): tf.LayersModel {
  const layers: tf.layers.Layer[] = [
    L.dense({ inputShape: [4], units: 5, activation: 'relu', name: 'a' }),
    L.dense({ units: 5, name: 'b' }),
    L.dense({ units: 3, name: 'c' }),
  ];
  if (withDropoutAt !== undefined) layers.splice(withDropoutAt, 0, L.dropout({ rate: 0.5, name: 'drop' }));
  return tf.sequential({ layers });
}

test('a plain stack is cut just below the lowest layer that trains', () => {
  const model = stack();
  const plan = planPrefix(model, new Set(['c']));
  assert.ok(plan.cache);
  assert.deepEqual(plan.prefix.map((l) => l.name), ['a', 'b']);
  assert.deepEqual(plan.suffix.map((l) => l.name), ['c']);
  // several trainable layers: the lowest decides
  const two = planPrefix(model, new Set(['c', 'b']));
  assert.ok(two.cache && two.prefix.length === 1);
  model.dispose();
});

test('no cache when the first layer trains, when nothing trains, or when a frozen layer is random', () => {
  const model = stack(1);
  assert.deepEqual(planPrefix(model, new Set(['a', 'c'])), { cache: false, reason: 'the first layer trains' });
  assert.equal(planPrefix(model, new Set()).cache, false);
  const random = planPrefix(model, new Set(['c']));
  assert.equal(random.cache, false);
  assert.match(!random.cache ? random.reason : '', /random in training mode \(drop\)/);
  model.dispose();
  // dropout above the cut is fine: it still runs in training mode with the layers that train
  const above = stack(3);
  assert.equal(planPrefix(above, new Set(['b'])).cache, true);
  above.dispose();
});

test('a model with a skip connection is cut at the add; no cache when a layer on one side of it trains and the other side reads the input', () => {
  const input = L.input({ shape: [4] });
  const a = L.dense({ units: 4, name: 'a' }).apply(input) as tf.SymbolicTensor;
  const b = L.dense({ units: 4, name: 'b' }).apply(a) as tf.SymbolicTensor;
  const sum = L.add({ name: 'sum' }).apply([a, b]) as tf.SymbolicTensor;
  const out = L.dense({ units: 2, name: 'out' }).apply(sum) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  const plan = planPrefix(model, new Set(['out']));
  assert.ok(plan.cache);
  assert.deepEqual(plan.prefix.map((l) => l.name), ['a', 'b', 'sum']);
  assert.deepEqual(plan.suffix.map((l) => l.name), ['out']);
  // b trains: a feeds both sides of the add, so it is the cut
  const mid = planPrefix(model, new Set(['b', 'out']));
  assert.ok(mid.cache);
  assert.equal(mid.cut.name, 'a');
  assert.deepEqual(mid.suffix.map((l) => l.name), ['b', 'sum', 'out']);
  model.dispose();
  // two branches straight from the input: nothing below the trainable branch carries both
  const x = L.input({ shape: [4] });
  const left = L.dense({ units: 4, name: 'left' }).apply(x) as tf.SymbolicTensor;
  const right = L.dense({ units: 4, name: 'right' }).apply(x) as tf.SymbolicTensor;
  const both = L.add({ name: 'both' }).apply([left, right]) as tf.SymbolicTensor;
  const wide = tf.model({ inputs: x, outputs: L.dense({ units: 2, name: 'top' }).apply(both) as tf.SymbolicTensor });
  assert.deepEqual(planPrefix(wide, new Set(['left', 'top'])), { cache: false, reason: 'the first layer trains' });
  wide.dispose();
});

test('cached activations equal the prefix run in inference mode, and the budget is respected', () => {
  const model = tf.sequential({ layers: [
    L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same', name: 'conv' }),
    L.batchNormalization({ name: 'bn' }),
    L.reLU({ name: 'relu' }),
    L.flatten({ name: 'flat' }),
    L.dense({ units: 2, name: 'out' }),
  ] });
  const n = 7;
  const x = Float32Array.from({ length: n * 72 }, (_, i) => Math.sin(i * 0.37));
  const data: Dataset = { x, sampleShape: [6, 6, 2], y: new Float32Array(n * 2), targetSize: 2, n, source: 'test' };
  const outcome = buildFrozenPrefix(model, new Set(['out']), data, 3);
  assert.ok(outcome.cached);
  assert.deepEqual(outcome.cached.cachedLayers, ['conv', 'bn', 'relu', 'flat']);
  assert.deepEqual(outcome.cached.dataset.sampleShape, [108]);
  // reference: the whole batch at once through the prefix, independently of the cache's batching
  const expected = tf.tidy(() => {
    let h: tf.Tensor = tf.tensor4d(x, [n, 6, 6, 2]);
    for (const l of model.layers.slice(0, 4)) h = l.apply(h, { training: false }) as tf.Tensor;
    return h.dataSync() as Float32Array;
  });
  const got = outcome.cached.dataset.x;
  assert.equal(got.length, expected.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
  assert.ok(worst <= 1e-6, `largest difference ${worst}`);
  assert.ok(outcome.cached.dataset.y === data.y, 'targets are shared, not copied');
  const small = buildFrozenPrefix(model, new Set(['out']), data, 3, 100);
  assert.equal(small.cached, undefined);
  assert.match(small.cached === undefined ? small.reason : '', /budget/);
  model.dispose();
});

test('on cpu, three frozen-prefix stages train to bit-identical weights with and without the cache', async () => {
  const text = stagedPlanText();
  const plain = await runExample('cpu', false, text);
  const cached = await runExample('cpu', true, text);
  const used = cached.logs.filter((m) => /were computed once/.test(m));
  assert.equal(used.length, 3, cached.logs.join('\n'));
  assert.match(used[0]!, /stage 1: the frozen layers block1_conv … features \(10\)/);
  assert.match(used[2]!, /stage 3: the frozen layers block1_conv … block1_pool \(4\)/);
  assert.equal(plain.logs.filter((m) => /computed once/.test(m)).length, 0);
  assert.ok(cached.frozenUnchanged && plain.frozenUnchanged);
  assert.deepEqual([...cached.weights.keys()].sort(), [...plain.weights.keys()].sort());
  let compared = 0;
  for (const [name, w] of plain.weights) {
    const c = cached.weights.get(name)!;
    assert.equal(c.length, w.length, name);
    for (let i = 0; i < w.length; i++) assert.ok(Object.is(c[i], w[i]), `${name}[${i}]: ${c[i]} with the cache, ${w[i]} without`);
    compared += w.length;
  }
  assert.ok(compared > 1000);
  assert.deepEqual(cached.losses, plain.losses);
});

/**
 * A small residual network (conv, BatchNorm, add, as MobileNetV2 is built) saved beside a copy
 * of the example's images, with groups for the stem + block 1, block 2 and the head.
 */
async function residualWorkspace(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'layerwise-residual-'));
  cpSync(resolve('examples/fashion/data'), join(dir, 'data'), { recursive: true });
  const conv = (name: string) => L.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) });
  const x = L.input({ shape: [28, 28, 1], name: 'image' });
  let s = L.reLU({ name: 'stem_relu' }).apply(L.batchNormalization({ name: 'stem_bn' }).apply(conv('stem_conv').apply(x))) as tf.SymbolicTensor;
  const b1 = L.batchNormalization({ name: 'b1_bn' }).apply(conv('b1_conv').apply(s)) as tf.SymbolicTensor;
  s = L.reLU({ name: 'b1_relu' }).apply(L.add({ name: 'b1_add' }).apply([s, b1])) as tf.SymbolicTensor;
  const p = L.maxPooling2d({ poolSize: 2, name: 'pool1' }).apply(s) as tf.SymbolicTensor;
  const b2 = L.batchNormalization({ name: 'b2_bn' }).apply(conv('b2_conv').apply(p)) as tf.SymbolicTensor;
  s = L.reLU({ name: 'b2_relu' }).apply(L.add({ name: 'b2_add' }).apply([p, b2])) as tf.SymbolicTensor;
  const f = L.dense({ units: 8, activation: 'relu', name: 'features', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }).apply(L.globalAveragePooling2d({ name: 'gap' }).apply(s));
  const out = L.dense({ units: 4, name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }) }).apply(f) as tf.SymbolicTensor;
  const model = tf.model({ inputs: x, outputs: out });
  await saveModel(model, join(dir, 'model'));
  model.dispose();
  const plan = {
    model: 'model/model.json',
    data: { train: 'data/train', validation: 'data/val', shuffle: true, seed: 3 },
    groups: [
      { name: 'trunk', layers: ['image', 'stem_*', 'b1_*', 'pool1'] },
      { name: 'block2', layers: ['b2_*', 'gap'], batchNorm: 'inference' },
      { name: 'head', layers: ['features', 'out'] },
    ],
    discriminative: { type: 'ulmfit', factor: 2.6 },
    training: { batchSize: 16, lr: 3e-3, schedule: { type: 'stlr' } },
    unfreeze: { stages: [{ epochs: 2, train: ['head'] }, { epochs: 2, train: ['block2', 'head'] }, { epochs: 1, train: 'all' }] },
  };
  writeFileSync(join(dir, 'layerwise.json'), JSON.stringify(plan, null, 2));
  return dir;
}

test('on cpu, a residual model (conv, BatchNorm, add) trains to bit-identical weights with and without the cache, cut at the pooling and at the block below the trainable one', async () => {
  const dir = await residualWorkspace();
  const run = async (cache: boolean) => {
    const logs: string[] = [];
    const outDir = join(dir, 'runs', cache ? 'cached' : 'plain');
    const outcome = await train({ planFile: join(dir, 'layerwise.json'), backend: 'cpu', outDir, frozenPrefixCache: cache, onEvent: (e) => void (e.kind === 'log' && logs.push(e.message)) });
    assert.equal(outcome.report.stopped, 'completed');
    assert.ok(outcome.report.frozenCheck.unchanged);
    const model = await loadModel(join(outDir, 'model.json'));
    const weights = new Map<string, Float32Array>();
    for (const l of model.layers) for (const w of l.weights) weights.set(w.originalName, (w.read().dataSync() as Float32Array).slice());
    model.dispose();
    return { logs, weights, losses: outcome.report.epochs.flatMap((e) => [e.trainLoss, e.valLoss ?? NaN]) };
  };
  const plain = await run(false);
  const cached = await run(true);
  const used = cached.logs.filter((m) => /were computed once/.test(m));
  assert.equal(used.length, 2, cached.logs.join('\n'));
  assert.match(used[0]!, /stage 1: the frozen layers stem_conv … gap \(13\)/);
  assert.match(used[1]!, /stage 2: the frozen layers stem_conv … pool1 \(8\)/);
  assert.equal(plain.logs.filter((m) => /computed once/.test(m)).length, 0);
  assert.deepEqual([...cached.weights.keys()].sort(), [...plain.weights.keys()].sort());
  let compared = 0;
  for (const [name, w] of plain.weights) {
    const c = cached.weights.get(name)!;
    for (let i = 0; i < w.length; i++) assert.ok(Object.is(c[i], w[i]), `${name}[${i}]: ${c[i]} with the cache, ${w[i]} without`);
    compared += w.length;
  }
  assert.ok(compared > 300);
  assert.deepEqual(cached.losses, plain.losses);
});
