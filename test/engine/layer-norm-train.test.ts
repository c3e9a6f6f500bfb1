/**
 * LayerNormalization's kernels (kernels/layer-norm-train.ts, native/layer_norm.c) and the layer
 * patch (fast-layers.ts). References come from tfjs-layers' own LayerNormalization on the cpu
 * backend (moments, Tile and batchNorm, differentiated by the tape before the engine replaces
 * any gradient), computed first; then everything runs again on wasm from the same Float32Arrays,
 * never moving a tensor across backends.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { ParamAudit } from '../../src/core/groups.types.ts';
import type { Dataset } from '../../src/engine/data.ts';
import { installFastLayers, useFastLayers } from '../../src/engine/fast-layers.ts';
import { lossSpecFor } from '../../src/engine/forward.ts';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { LAYER_NORM_TRAIN, LAYER_NORM_TRAIN_GRAD, layerNormTrainApplies } from '../../src/engine/kernels/layer-norm-train.ts';
import { nativeKernelStatus } from '../../src/engine/kernels/native.ts';
import { GroupedOptimizer } from '../../src/engine/optimizer.ts';
import type { BoundParam } from '../../src/engine/session.ts';
import { trainStep } from '../../src/engine/trainer.ts';
import { assertAllClose, assertClose, assertNoLeaks, randomValues, size, wasmDir, type Results } from './numeric.ts';

// ---------- one layer against tfjs-layers' own ----------

interface LayerNormCase {
  shape: number[];
  scale: boolean;
  center: boolean;
  /** Added to every x: a row mean far from zero, against which a one-pass variance would cancel. */
  shift: number;
  epsilon?: number;
}

const LN_CASES: LayerNormCase[] = [
  { shape: [2, 5], scale: true, center: true, shift: 0 },
  // one row
  { shape: [1, 7], scale: true, center: true, shift: 0 },
  // one channel: every row is its own mean, x̂ and dx are 0, y is beta
  { shape: [6, 1], scale: true, center: true, shift: 0 },
  { shape: [4, 3, 1], scale: true, center: false, shift: 2 },
  { shape: [5, 7], scale: true, center: false, shift: 0 },
  { shape: [3, 4, 7], scale: false, center: true, shift: 0 },
  { shape: [2, 3, 4, 7], scale: false, center: false, shift: 0 },
  // 64 channels, as the bench transformer: whole SIMD vectors, no scalar tail
  { shape: [4, 9, 64], scale: true, center: true, shift: 0 },
  // 1173 rows: over several of the backward's 64-row blocks and not a multiple of them
  { shape: [3, 17, 23, 7], scale: true, center: true, shift: 100 },
  { shape: [2, 65, 64], scale: true, center: true, shift: -40, epsilon: 1e-5 },
  { shape: [3, 2, 2, 13], scale: false, center: true, shift: 0, epsilon: 0.1 },
];

const caseName = (c: LayerNormCase): string =>
  `[${c.shape.join('×')}]${c.scale ? '' : ' no scale'}${c.center ? '' : ' no center'}` +
  `${c.shift ? ` shifted by ${c.shift}` : ''}${c.epsilon === undefined ? '' : ` epsilon ${c.epsilon}`}`;

/**
 * A LayerNormalization built for the case with seeded gamma and beta (gamma away from zero),
 * applied to seeded x in training mode: y, and the gradients of Σ y ⊙ weight with respect to x
 * and the layer's weights. `standIn`: the layer always has both weights, and a missing one is
 * ones or zeros (tfjs cannot differentiate its own layer without them: FusedBatchNorm records
 * the absent input and the tape reads it); its gradient is left out of the results.
 */
function layerNormResults(c: LayerNormCase, seed: number, standIn: boolean): Results {
  const layer = tf.layers.layerNormalization({ scale: standIn || c.scale, center: standIn || c.center, epsilon: c.epsilon });
  layer.build(c.shape);
  const channels = c.shape[c.shape.length - 1]!;
  const weightName = (w: tf.LayerVariable): string => w.originalName.split('/').pop()!;
  tf.tidy(() => layer.setWeights(layer.weights.map((w) => {
    const values = randomValues(channels, seed + (weightName(w) === 'gamma' ? 0 : 1));
    if (weightName(w) === 'gamma') return c.scale ? tf.tensor(values.map((v) => v + 1.5)) : tf.ones([channels]);
    return c.center ? tf.tensor(values) : tf.zeros([channels]);
  })));
  const x = tf.variable(tf.tensor(randomValues(size(c.shape), seed + 10).map((v) => 3 * v + c.shift), c.shape), true, `x_${seed}`);
  try {
    return tf.tidy(() => {
      const weight = tf.tensor(randomValues(size(c.shape), seed + 11), c.shape);
      const variables = [x, ...layer.weights.map((w) => w.read() as tf.Variable)];
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, weight)) as tf.Scalar, variables);
      const r: Results = {
        y: (layer.apply(x) as tf.Tensor).dataSync() as Float32Array,
        loss: value.dataSync() as Float32Array,
        dx: grads[x.name]!.dataSync() as Float32Array,
      };
      layer.weights.forEach((w, k) => {
        const name = weightName(w);
        if (name === 'gamma' ? c.scale : c.center) r[`d${name}`] = grads[variables[k + 1]!.name]!.dataSync() as Float32Array;
      });
      return r;
    });
  } finally {
    x.dispose();
    // (Layer.dispose refuses a layer never applied to a symbolic input)
    for (const w of layer.weights) w.dispose();
  }
}

// ---------- a small model trained by the engine's step ----------

function auditFor(v: tf.LayerVariable, layer: string): ParamAudit {
  const rule = { source: 'default' as const, detail: 'test' };
  return {
    name: v.name, layer, shape: v.shape as number[], size: size(v.shape as number[]), trainable: true, group: 'all',
    lrMult: 1, lrMultRule: rule, effectiveLr: 0.1, weightDecay: 0, weightDecayRule: rule, frozen: false, frozenRule: rule,
  };
}

function boundParams(model: tf.LayersModel): BoundParam[] {
  return model.layers.flatMap((layer) =>
    layer.trainableWeights.map((w) => ({ audit: auditFor(w, layer.name), layerName: layer.name, variable: w.read() as tf.Variable })));
}

const SAMPLE: [number, number] = [5, 8];
const CLASSES = 3;

function dataset(n: number): Dataset {
  const y = new Float32Array(n * CLASSES);
  for (let i = 0; i < n; i++) y[i * CLASSES + (i % CLASSES)] = 1;
  return { x: randomValues(n * size(SAMPLE), 77).map((v) => 2 * v + 1), sampleShape: SAMPLE, y, targetSize: CLASSES, n, source: 'test' };
}

/** dense → add → LayerNorm → FFN → add → LayerNorm → dense, every weight seeded. */
function buildModel(): tf.LayersModel {
  const L = tf.layers;
  const input = L.input({ shape: SAMPLE });
  const projected = L.dense({ units: SAMPLE[1], name: 'proj' }).apply(input) as tf.SymbolicTensor;
  let h = L.layerNormalization({ name: 'ln1' }).apply(L.add().apply([input, projected])) as tf.SymbolicTensor;
  const f = L.dense({ units: SAMPLE[1], name: 'ffn2' }).apply(
    L.dense({ units: 12, activation: 'relu', name: 'ffn1' }).apply(h)) as tf.SymbolicTensor;
  h = L.layerNormalization({ name: 'ln2', epsilon: 1e-2 }).apply(L.add().apply([h, f])) as tf.SymbolicTensor;
  const out = L.dense({ units: CLASSES, name: 'out' }).apply(L.flatten().apply(h)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setWeights(model.weights.map((w, k) => tf.tensor(randomValues(size(w.shape as number[]), 300 + k), w.shape as number[])));
  return model;
}

const sgd = (): GroupedOptimizer => new GroupedOptimizer({ type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });

/** Losses of two SGD steps and every weight after them. */
function trainTwoSteps(): Results {
  const model = buildModel();
  const optimizer = sgd();
  const params = boundParams(model);
  const data = dataset(8);
  const losses = [0, 1].map((s) =>
    trainStep({ model, task: 'classification' }, lossSpecFor(model, 'classification'), optimizer, params, data,
      [0, 1, 2, 3].map((i) => 4 * s + i), () => 0.1, false).loss);
  const out: Results = { losses: Float32Array.from(losses) };
  for (const w of model.weights) out[w.originalName] = w.read().dataSync() as Float32Array;
  optimizer.dispose();
  model.dispose();
  return out;
}

/** A layer over another axis set than the last, applied to seeded x: y and its gradients. */
function otherAxisResults(axis: number | number[]): Results {
  const shape = [2, 3, 4, 5];
  const layer = tf.layers.layerNormalization({ axis });
  layer.build(shape);
  const out = tf.tidy(() => {
    const x = tf.tensor(randomValues(size(shape), 60), shape);
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.square(layer.apply(t, { training: true }) as tf.Tensor)))(x);
    return { y: y.dataSync() as Float32Array, dx: dx.dataSync() as Float32Array } satisfies Results;
  });
  for (const w of layer.weights) w.dispose();
  return out;
}

// ---------- the phases ----------

const cpu = { ln: [] as Results[], training: {} as Results };
const wasm = { ln: [] as Results[], training: {} as Results };
let appliedOnWasm: boolean[] = [];

before(async () => {
  installFastLayers();
  // the references: tfjs-layers' own layer and tfjs's own gradients
  useFastLayers(false);
  assert.ok(await tf.setBackend('cpu'));
  cpu.ln = LN_CASES.map((c, i) => layerNormResults(c, 100 * i, true));
  cpu.training = trainTwoSteps();

  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  useFastLayers(true);
  appliedOnWasm = LN_CASES.map((c) => tf.tidy(() => {
    const channels = c.shape[c.shape.length - 1]!;
    return layerNormTrainApplies(tf.zeros(c.shape), c.scale ? tf.ones([channels]) : undefined, c.center ? tf.zeros([channels]) : undefined);
  }));
  wasm.ln = LN_CASES.map((c, i) => layerNormResults(c, 100 * i, false));
  wasm.training = trainTwoSteps();
});

test('the engine\'s wasm kernels are built, with the layer-norm functions (npm run build)', () => {
  const status = nativeKernelStatus();
  assert.ok(status.loaded, status.loaded ? '' : status.problem);
  assert.ok(appliedOnWasm.every(Boolean), 'layerNormTrain applies to every case on wasm');
  assert.ok(tf.getKernel(LAYER_NORM_TRAIN, 'wasm') && tf.getKernel(LAYER_NORM_TRAIN_GRAD, 'wasm'));
});

for (const [i, c] of LN_CASES.entries()) {
  test(`layer-norm kernels: y, dx, dgamma, dbeta match tfjs-layers on cpu for ${caseName(c)}`, () => {
    const channels = c.shape[c.shape.length - 1]!;
    assertAllClose(wasm.ln[i]!, cpu.ln[i]!, caseName(c), channels === 1 ? 1 : 0);
  });
}

test('two training steps of a model with two LayerNormalizations on wasm give the losses and weights of cpu', () => {
  assert.ok(cpu.training['ln1/gamma'] !== undefined && cpu.training['ln2/beta'] !== undefined, 'the model has LayerNorm weights');
  assertAllClose(wasm.training, cpu.training, 'after two steps');
});

test('outside wasm, and for tensors it does not cover, layerNormTrainApplies says no', () => {
  tf.tidy(() => {
    const x = tf.ones([4, 3]);
    assert.equal(layerNormTrainApplies(x, tf.ones([3]), tf.zeros([3])), true);
    assert.equal(layerNormTrainApplies(x, undefined, undefined), true);
    assert.equal(layerNormTrainApplies(tf.ones([4, 3], 'int32'), undefined, undefined), false);
    assert.equal(layerNormTrainApplies(x, tf.ones([1, 3]), undefined), false);
    assert.equal(layerNormTrainApplies(x, undefined, tf.zeros([4])), false);
    assert.equal(layerNormTrainApplies(tf.ones([0, 3]), undefined, undefined), false);
  });
});

/** How often each kernel runs in `body`. */
async function kernelCounts(body: () => void): Promise<Map<string, number>> {
  const profile = await tf.profile(body);
  const counts = new Map<string, number>();
  for (const k of profile.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

test('a training step runs each LayerNormalization as one kernel forward and one back, without moments or FusedBatchNorm', async () => {
  const model = buildModel();
  const optimizer = sgd();
  const step = (): void => {
    trainStep({ model, task: 'classification' }, lossSpecFor(model, 'classification'), optimizer, boundParams(model), dataset(4),
      [0, 1, 2, 3], () => 0.1, false);
  };
  const fast = await kernelCounts(step);
  useFastLayers(false);
  let stock: Map<string, number>;
  try {
    stock = await kernelCounts(step);
  } finally {
    useFastLayers(true);
  }
  assert.equal(fast.get(LAYER_NORM_TRAIN), 2);
  assert.equal(fast.get(LAYER_NORM_TRAIN_GRAD), 2);
  for (const name of ['FusedBatchNorm', 'Rsqrt', 'Square']) assert.equal(fast.get(name), undefined, name);
  // the loss's gradient tiles too; LayerNormalization tiles its statistics, gamma and beta
  assert.ok((fast.get('Tile') ?? 0) < (stock.get('Tile') ?? 0));
  // the stock route really is the one the kernels replace
  assert.equal(stock.get(LAYER_NORM_TRAIN), undefined);
  assert.equal(stock.get('FusedBatchNorm'), 2);
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  assert.ok(total(stock) - total(fast) >= 2 * 15, `kernels per step: ${total(stock)} stock, ${total(fast)} patched`);
  optimizer.dispose();
  model.dispose();
});

test('inference runs the forward kernel too, with the stock result', async () => {
  const model = buildModel();
  const x = tf.tensor3d(randomValues(3 * size(SAMPLE), 8).map((v) => 4 * v - 3), [3, ...SAMPLE]);
  const predict = (): Float32Array => tf.tidy(() => (model.predict(x) as tf.Tensor).dataSync() as Float32Array);
  let fastY: Float32Array | undefined;
  const fast = await kernelCounts(() => {
    fastY = predict();
  });
  useFastLayers(false);
  let stockY: Float32Array;
  try {
    stockY = predict();
  } finally {
    useFastLayers(true);
  }
  assert.equal(fast.get(LAYER_NORM_TRAIN), 2);
  assert.equal(fast.get('FusedBatchNorm'), undefined);
  assertClose(fastY!, stockY, 'predictions');
  x.dispose();
  model.dispose();
});

for (const axis of [1, [2, 3], [-1, 1]]) {
  test(`a LayerNormalization over axis ${JSON.stringify(axis)} keeps tfjs-layers' own call`, async () => {
    useFastLayers(false);
    let stock: Results;
    try {
      stock = otherAxisResults(axis);
    } finally {
      useFastLayers(true);
    }
    let fast: Results = {};
    const counts = await kernelCounts(() => {
      fast = otherAxisResults(axis);
    });
    assert.equal(counts.get(LAYER_NORM_TRAIN), undefined);
    assert.deepEqual(fast, stock);
  });
}

test('a LayerNormalization without center or scale trains (tfjs-layers\' own gradient throws)', () => {
  const c: LayerNormCase = { shape: [3, 4, 6], scale: true, center: false, shift: 0 };
  const d: LayerNormCase = { ...c, scale: false, center: true };
  useFastLayers(false);
  try {
    assert.throws(() => layerNormResults(c, 7, false));
    assert.throws(() => layerNormResults(d, 7, false));
  } finally {
    useFastLayers(true);
  }
  assert.deepEqual(Object.keys(layerNormResults(c, 7, false)).sort(), ['dgamma', 'dx', 'loss', 'y']);
  assert.deepEqual(Object.keys(layerNormResults(d, 7, false)).sort(), ['dbeta', 'dx', 'loss', 'y']);
});

test('a rank-5 input keeps tfjs-layers\' own call and its error', () => {
  const layer = tf.layers.layerNormalization();
  layer.build([1, 2, 2, 2, 3]);
  assert.throws(() => tf.tidy(() => {
    layer.apply(tf.ones([1, 2, 2, 2, 3]));
  }), /rank 5/);
  for (const w of layer.weights) w.dispose();
});

test('training steps through the patched layers keep tensor and buffer counts flat', () => {
  const model = buildModel();
  const optimizer = sgd();
  const params = boundParams(model);
  const data = dataset(4);
  const step = (): void => {
    trainStep({ model, task: 'classification' }, lossSpecFor(model, 'classification'), optimizer, params, data, [0, 1, 2, 3], () => 0.1, false);
    tf.tidy(() => {
      model.predict(tf.zeros([2, ...SAMPLE]));
    });
  };
  assertNoLeaks(step);
  optimizer.dispose();
  model.dispose();
});
