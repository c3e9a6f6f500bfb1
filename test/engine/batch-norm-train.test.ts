/**
 * BatchNormalization's training kernels (kernels/batch-norm-train.ts, native/batch_norm.c) and
 * the layer patches (fast-layers.ts). References come from tfjs's own ops on the cpu backend
 * (moments + batchNorm, differentiated by the tape, before the engine replaces any gradient),
 * computed first; then everything runs again on wasm from the same Float32Arrays, never moving
 * a tensor across backends.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { ParamAudit } from '../../src/core/groups.types.ts';
import type { Dataset } from '../../src/engine/data.ts';
import { installFastLayers, useFastLayers } from '../../src/engine/fast-layers.ts';
import { lossSpecFor, ModeControl } from '../../src/engine/forward.ts';
import { BATCH_NORM_TRAIN, BATCH_NORM_TRAIN_GRAD, batchNormTrain, batchNormTrainApplies } from '../../src/engine/kernels/batch-norm-train.ts';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { nativeKernelStatus } from '../../src/engine/kernels/native.ts';
import { GroupedOptimizer } from '../../src/engine/optimizer.ts';
import type { BoundParam } from '../../src/engine/session.ts';
import { trainStep } from '../../src/engine/trainer.ts';
import { assertAllClose, assertNoLeaks, randomValues, size, wasmDir, type Results } from './numeric.ts';

const EPSILON = 1e-3;

// ---------- the kernels against moments + batchNorm ----------

interface BatchNormCase {
  shape: number[];
  scale: boolean;
  center: boolean;
  /** Added to every x: a mean far from zero, against which a one-pass variance would cancel. */
  shift: number;
}

const BN_CASES: BatchNormCase[] = [
  { shape: [2, 5], scale: true, center: true, shift: 0 },
  // one row: the variance is 0, x̂ and dx are 0 up to rounding
  { shape: [1, 3], scale: true, center: true, shift: 0 },
  { shape: [7, 4], scale: true, center: false, shift: 0 },
  { shape: [5, 7, 8], scale: false, center: true, shift: 0 },
  { shape: [3, 4, 5, 6], scale: false, center: false, shift: 0 },
  { shape: [2, 3, 3, 1], scale: true, center: true, shift: 0 },
  { shape: [4, 6, 6, 9], scale: true, center: true, shift: 0 },
  // 1173 rows: over several of the kernel's 64-row blocks and not a multiple of them; 13 channels
  { shape: [3, 17, 23, 13], scale: true, center: true, shift: 50 },
];

const caseName = (c: BatchNormCase): string =>
  `[${c.shape.join('×')}]${c.scale ? '' : ' no scale'}${c.center ? '' : ' no center'}${c.shift ? ` shifted by ${c.shift}` : ''}`;

interface CaseInputs {
  x: tf.Tensor;
  gamma?: tf.Tensor;
  beta?: tf.Tensor;
  /** The upstream gradient: results are differentiated through Σ y ⊙ weight. */
  weight: tf.Tensor;
}

function caseInputs(c: BatchNormCase, seed: number): CaseInputs {
  const channels = c.shape[c.shape.length - 1]!;
  return {
    x: tf.tensor(randomValues(size(c.shape), seed).map((v) => 3 * v + c.shift), c.shape),
    gamma: c.scale ? tf.tensor1d(randomValues(channels, seed + 1).map((v) => v + 1.5)) : undefined,
    beta: c.center ? tf.tensor1d(randomValues(channels, seed + 2)) : undefined,
    weight: tf.tensor(randomValues(size(c.shape), seed + 3), c.shape),
  };
}

/** y, mean, variance and the gradients of Σ y ⊙ weight, from `normalize` differentiated by the tape. */
function normalizeAndDifferentiate(
  c: BatchNormCase,
  seed: number,
  normalize: (x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor) => { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor },
): Results {
  return tf.tidy(() => {
    const { x, gamma, beta, weight } = caseInputs(c, seed);
    const r = normalize(x, gamma, beta);
    const out: Results = {
      y: r.y.dataSync() as Float32Array,
      mean: r.mean.dataSync() as Float32Array,
      variance: r.variance.dataSync() as Float32Array,
    };
    const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
    const grads = tf.grads((...t: tf.Tensor[]) => {
      const [tx, ...rest] = t;
      const tg = gamma ? rest.shift() : undefined;
      const tb = beta ? rest.shift() : undefined;
      return tf.sum(tf.mul(normalize(tx!, tg, tb).y, weight));
    })(inputs);
    out['dx'] = grads[0]!.dataSync() as Float32Array;
    if (gamma) out['dgamma'] = grads[1]!.dataSync() as Float32Array;
    if (beta) out['dbeta'] = grads[gamma ? 2 : 1]!.dataSync() as Float32Array;
    return out;
  });
}

/** tfjs-layers' normalizeBatchInTraining for the last axis; ones and zeros stand in for a missing gamma or beta. */
function tfjsBatchNorm(x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  const channels = x.shape[x.rank - 1]!;
  const axes = Array.from({ length: x.rank - 1 }, (_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  const y = tf.batchNorm(x, mean, variance, beta ?? tf.zeros([channels]), gamma ?? tf.ones([channels]), EPSILON);
  return { y, mean, variance };
}

function engineBatchNorm(x: tf.Tensor, gamma?: tf.Tensor, beta?: tf.Tensor): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  const r = batchNormTrain(x, gamma, beta, EPSILON);
  if (r === undefined) throw new Error('batchNormTrain did not apply');
  return r;
}

// ---------- a small model trained by the engine's step ----------

function auditFor(v: tf.LayerVariable, layer: string): ParamAudit {
  const rule = { source: 'default' as const, detail: 'test' };
  return {
    name: v.name, layer, shape: v.shape as number[], size: size(v.shape as number[]), trainable: true, group: 'all',
    lrMult: 1, lrMultRule: rule, effectiveLr: 0.1, weightDecay: 0, weightDecayRule: rule, frozen: false, frozenRule: rule,
  };
}

function boundParams(model: tf.LayersModel, skip: ReadonlySet<string> = new Set()): BoundParam[] {
  return model.layers.filter((l) => !skip.has(l.name)).flatMap((layer) =>
    layer.trainableWeights.map((w) => ({ audit: auditFor(w, layer.name), layerName: layer.name, variable: w.read() as tf.Variable })));
}

const SAMPLE: [number, number, number] = [6, 6, 2];
const CLASSES = 3;

function dataset(n: number): Dataset {
  const y = new Float32Array(n * CLASSES);
  for (let i = 0; i < n; i++) y[i * CLASSES + (i % CLASSES)] = 1;
  return { x: randomValues(n * size(SAMPLE), 77), sampleShape: SAMPLE, y, targetSize: CLASSES, n, source: 'test' };
}

/** conv → BN → ReLU → conv (stride 2) → BN → ReLU → dense, every weight (moving statistics too) seeded. */
function buildModel(): tf.LayersModel {
  const L = tf.layers;
  const input = L.input({ shape: SAMPLE });
  let h = L.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'conv1' }).apply(input) as tf.SymbolicTensor;
  h = L.reLU().apply(L.batchNormalization({ name: 'bn1', momentum: 0.9 }).apply(h)) as tf.SymbolicTensor;
  h = L.conv2d({ filters: 5, kernelSize: 3, strides: 2, padding: 'same', name: 'conv2' }).apply(h) as tf.SymbolicTensor;
  h = L.reLU().apply(L.batchNormalization({ name: 'bn2' }).apply(h)) as tf.SymbolicTensor;
  const out = L.dense({ units: CLASSES, name: 'out' }).apply(L.flatten().apply(h)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  model.setWeights(model.weights.map((w, k) => {
    const values = randomValues(size(w.shape as number[]), 300 + k);
    // moving variances must stay positive
    return tf.tensor(w.name.includes('moving_variance') ? values.map((v) => Math.abs(v) + 0.5) : values, w.shape as number[]);
  }));
  return model;
}

/** Losses of two SGD steps and every weight after them, statistics included. */
function trainTwoSteps(): Results {
  const model = buildModel();
  const optimizer = new GroupedOptimizer({ type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });
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

// ---------- the Conv2D patch ----------

interface ConvCase {
  name: string;
  args: Parameters<typeof tf.layers.conv2d>[0];
  input: number[];
}

const CONV_CASES: ConvCase[] = [
  { name: 'linear, bias, same', args: { filters: 4, kernelSize: 3, padding: 'same' }, input: [2, 6, 5, 3] },
  { name: 'relu, bias, stride 2, valid', args: { filters: 5, kernelSize: 3, strides: 2, activation: 'relu' }, input: [3, 7, 7, 2] },
  { name: 'no bias, 1×1', args: { filters: 6, kernelSize: 1, useBias: false }, input: [2, 4, 4, 5] },
  { name: 'elu, 2×3 kernel', args: { filters: 3, kernelSize: [2, 3], activation: 'elu', padding: 'same' }, input: [2, 5, 6, 4] },
  { name: 'sigmoid (not fusable)', args: { filters: 2, kernelSize: 3, activation: 'sigmoid' }, input: [1, 5, 5, 3] },
  { name: 'relu, bias, channels first', args: { filters: 3, kernelSize: 3, activation: 'relu', dataFormat: 'channelsFirst' }, input: [2, 2, 6, 5] },
  // softmax over the last axis, W when channels come first: applied after the transpose back
  // (no bias: softmax along W would cancel its gradient to rounding noise)
  { name: 'softmax, channels first', args: { filters: 3, kernelSize: 3, padding: 'same', activation: 'softmax', dataFormat: 'channelsFirst', useBias: false }, input: [2, 4, 6, 5] },
];

/** Output and the gradients of Σ out ⊙ weight with respect to the input and the layer's weights. */
function convResults(c: ConvCase, seed: number): Results {
  const layer = tf.layers.conv2d(c.args);
  layer.build(c.input);
  layer.setWeights(layer.weights.map((w, k) => tf.tensor(randomValues(size(w.shape as number[]), seed + k), w.shape as number[])));
  const out = tf.tidy(() => {
    const x = tf.variable(tf.tensor(randomValues(size(c.input), seed + 10), c.input), true, `x_${seed}`);
    const y = layer.apply(x) as tf.Tensor;
    const weight = tf.tensor(randomValues(y.size, seed + 11), y.shape);
    const variables = [x, ...layer.weights.map((w) => w.read() as tf.Variable)];
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, weight)) as tf.Scalar, variables);
    const r: Results = { y: y.dataSync() as Float32Array, dx: grads[x.name]!.dataSync() as Float32Array };
    layer.weights.forEach((w, k) => {
      r[w.originalName] = grads[variables[k + 1]!.name]!.dataSync() as Float32Array;
    });
    x.dispose();
    return r;
  });
  // (Layer.dispose refuses a layer never applied to a symbolic input)
  for (const w of layer.weights) w.dispose();
  return out;
}

/** Two stacked convolutions and a dense head; how often each kernel runs in one gradient computation. */
async function convKernelCounts(): Promise<Map<string, number>> {
  const L = tf.layers;
  const model = tf.sequential({ layers: [
    L.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, padding: 'same' }),
    L.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }),
    L.flatten(),
    L.dense({ units: 2 }),
  ] });
  const x = tf.tensor4d(randomValues(2 * 6 * 6 * 2, 5), [2, 6, 6, 2]);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const profile = await tf.profile(() => {
    const { value, grads } = tf.variableGrads(() => tf.sum(model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, variables);
    tf.dispose([value, grads]);
  });
  x.dispose();
  model.dispose();
  const counts = new Map<string, number>();
  for (const k of profile.kernels) counts.set(k.name, (counts.get(k.name) ?? 0) + 1);
  return counts;
}

// ---------- the phases ----------

const cpu = { bn: [] as Results[], training: {} as Results };
const wasm = { bn: [] as Results[], training: {} as Results, stockConv: [] as Results[], fastConv: [] as Results[] };
let appliedOnWasm: boolean[] = [];

before(async () => {
  installFastLayers();
  // the references: tfjs's own layers and gradients
  useFastLayers(false);
  assert.ok(await tf.setBackend('cpu'));
  cpu.bn = BN_CASES.map((c, i) => normalizeAndDifferentiate(c, 100 * i, tfjsBatchNorm));
  cpu.training = trainTwoSteps();

  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  wasm.stockConv = CONV_CASES.map((c, i) => convResults(c, 1000 * i));
  useFastLayers(true);
  wasm.fastConv = CONV_CASES.map((c, i) => convResults(c, 1000 * i));
  appliedOnWasm = BN_CASES.map((c, i) => tf.tidy(() => {
    const { x, gamma, beta } = caseInputs(c, 100 * i);
    return batchNormTrainApplies(x, gamma, beta);
  }));
  wasm.bn = BN_CASES.map((c, i) => normalizeAndDifferentiate(c, 100 * i, engineBatchNorm));
  wasm.training = trainTwoSteps();
});

test('the engine\'s wasm kernels are built, with the batch-norm functions (npm run build)', () => {
  const status = nativeKernelStatus();
  assert.ok(status.loaded, status.loaded ? '' : status.problem);
  assert.ok(appliedOnWasm.every(Boolean), 'batchNormTrain applies to every case on wasm');
  assert.ok(tf.getKernel(BATCH_NORM_TRAIN, 'wasm') && tf.getKernel(BATCH_NORM_TRAIN_GRAD, 'wasm'));
});

for (const [i, c] of BN_CASES.entries()) {
  test(`batch-norm kernels: y, mean, variance, dx, dgamma, dbeta match tfjs on cpu for ${caseName(c)}`, () => {
    const rows = size(c.shape) / c.shape[c.shape.length - 1]!;
    assertAllClose(wasm.bn[i]!, cpu.bn[i]!, caseName(c), rows === 1 ? 1 : 0);
  });
}

test('two training steps on wasm give the losses, weights and moving statistics of cpu', () => {
  assert.ok(cpu.training['bn1/moving_mean'] !== undefined, 'the model has moving statistics');
  assertAllClose(wasm.training, cpu.training, 'after two steps');
});

test('outside wasm, and for layouts it does not cover, batchNormTrain declines', () => {
  tf.tidy(() => {
    const x = tf.ones([4, 3]);
    assert.equal(batchNormTrainApplies(x, tf.ones([3]), tf.zeros([3])), true);
    assert.equal(batchNormTrainApplies(tf.ones([4, 3], 'int32'), undefined, undefined), false);
    assert.equal(batchNormTrainApplies(x, tf.ones([1, 3]), undefined), false);
    assert.equal(batchNormTrainApplies(x, undefined, tf.zeros([4])), false);
    assert.equal(batchNormTrainApplies(tf.ones([0, 3]), undefined, undefined), false);
  });
});

test('BatchNormalization in training mode runs the kernels once forward and once back, and a frozen one (ModeControl) does not change a bit', async () => {
  const model = buildModel();
  const modes = new ModeControl(model);
  // bn1 and the conv below it do not train this stage
  modes.trainOnly(new Set(['conv2', 'bn2', 'out']));
  const stats = (name: string): Float32Array[] => {
    const layer = model.getLayer(name);
    return layer.weights.filter((w) => w.originalName.includes('moving')).map((w) => w.read().dataSync().slice() as Float32Array);
  };
  const frozenBefore = stats('bn1');
  const trainedBefore = stats('bn2');
  const optimizer = new GroupedOptimizer({ type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });
  const profile = await tf.profile(() => {
    trainStep({ model, task: 'classification' }, lossSpecFor(model, 'classification'), optimizer,
      boundParams(model, new Set(['conv1', 'bn1'])), dataset(4), [0, 1, 2, 3], () => 0.1, false);
  });
  const count = (name: string): number => profile.kernels.filter((k) => k.name === name).length;
  assert.equal(count(BATCH_NORM_TRAIN), 1, 'only bn2 normalises with batch statistics');
  assert.equal(count(BATCH_NORM_TRAIN_GRAD), 1);
  const frozenAfter = stats('bn1');
  const trainedAfter = stats('bn2');
  frozenBefore.forEach((v, k) => assert.deepEqual(Buffer.from(frozenAfter[k]!.buffer), Buffer.from(v.buffer), 'bn1 statistics'));
  trainedBefore.forEach((v, k) => assert.notDeepEqual(trainedAfter[k], v, 'bn2 statistics move'));
  modes.restore();
  optimizer.dispose();
  model.dispose();
});

/** A BatchNormalization layer built for `shape` with seeded weights, applied once in training mode. */
function trainBatchNormLayer(args: Parameters<typeof tf.layers.batchNormalization>[0], shape: number[], seed: number): Results {
  const layer = tf.layers.batchNormalization(args);
  layer.build(shape);
  layer.setWeights(layer.weights.map((w, k) => {
    const values = randomValues(size(w.shape as number[]), seed + k);
    return tf.tensor(w.originalName.includes('moving_variance') ? values.map((v) => Math.abs(v) + 0.5) : values, w.shape as number[]);
  }));
  const out = tf.tidy(() => {
    const x = tf.tensor(randomValues(size(shape), seed + 10).map((v) => 2 * v + 0.5), shape);
    const r: Results = { y: (layer.apply(x, { training: true }) as tf.Tensor).dataSync() as Float32Array };
    for (const w of layer.weights) r[w.originalName] = w.read().dataSync() as Float32Array;
    return r;
  });
  for (const w of layer.weights) w.dispose();
  return out;
}

test('a BatchNormalization layer with scale and center off trains (tfjs-layers\' own call throws) and moves its statistics by tfjs\'s formula', () => {
  const shape = [3, 4, 4, 6];
  const momentum = 0.8;
  useFastLayers(false);
  try {
    assert.throws(() => trainBatchNormLayer({ scale: false, center: false, momentum }, shape, 40));
  } finally {
    useFastLayers(true);
  }
  const fast = trainBatchNormLayer({ scale: false, center: false, momentum }, shape, 40);
  // independently: tfjs's moments and arithmetic on the same values
  const expected = tf.tidy(() => {
    const x = tf.tensor(randomValues(size(shape), 50).map((v) => 2 * v + 0.5), shape);
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const movingMean = tf.tensor(randomValues(6, 40));
    const movingVariance = tf.tensor(randomValues(6, 41).map((v) => Math.abs(v) + 0.5));
    const moved = (m: tf.Tensor, v: tf.Tensor): Float32Array => tf.sub(m, tf.mul(tf.sub(m, v), 1 - momentum)).dataSync() as Float32Array;
    return {
      y: tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, EPSILON))).dataSync() as Float32Array,
      moving_mean: moved(movingMean, mean),
      moving_variance: moved(movingVariance, variance),
    } satisfies Results;
  });
  assertAllClose(fast, expected, 'scale and center off');
});

test('a BatchNormalization over another axis than the last keeps tfjs-layers\' own call', async () => {
  const args = { axis: 1, momentum: 0.5 };
  useFastLayers(false);
  let stock: Results;
  try {
    stock = trainBatchNormLayer(args, [2, 3, 4, 5], 60);
  } finally {
    useFastLayers(true);
  }
  let fast: Results = {};
  const profile = await tf.profile(() => {
    fast = trainBatchNormLayer(args, [2, 3, 4, 5], 60);
  });
  assert.ok(!profile.kernels.some((k) => k.name === BATCH_NORM_TRAIN));
  assert.deepEqual(fast, stock);
});

for (const [i, c] of CONV_CASES.entries()) {
  test(`Conv2D while recording gradients (unfused) gives the fused path's output and gradients: ${c.name}`, () => {
    assertAllClose(wasm.fastConv[i]!, wasm.stockConv[i]!, c.name);
  });
}

test('the first Conv2D no longer back-propagates into its data: one Conv2DBackpropInput instead of two', async () => {
  useFastLayers(false);
  let stock: Map<string, number>;
  try {
    stock = await convKernelCounts();
  } finally {
    useFastLayers(true);
  }
  const fast = await convKernelCounts();
  assert.equal(stock.get('Conv2DBackpropInput'), 2);
  assert.equal(stock.get('FusedConv2D'), 2);
  assert.equal(fast.get('Conv2DBackpropInput'), 1);
  assert.equal(fast.get('FusedConv2D'), undefined);
  assert.equal(fast.get('Conv2DBackpropFilter'), 2);
});

test('inference keeps the fused conv and the stock batch norm', async () => {
  const model = buildModel();
  const x = tf.tensor4d(randomValues(2 * size(SAMPLE), 8), [2, ...SAMPLE]);
  const profile = await tf.profile(() => tf.dispose(model.predict(x)));
  const names = new Set(profile.kernels.map((k) => k.name));
  assert.ok(names.has('FusedConv2D') && names.has('FusedBatchNorm'));
  assert.ok(!names.has(BATCH_NORM_TRAIN) && !names.has('Conv2D'));
  x.dispose();
  model.dispose();
});

test('installFastLayers is idempotent', () => {
  const entry = tf.serialization.SerializationMap.getMap().classNameMap['BatchNormalization'];
  const proto = (entry![0] as unknown as { prototype: { call: unknown } }).prototype;
  const call = proto.call;
  installFastLayers();
  installFastLayers();
  assert.equal(proto.call, call);
});

test('training steps through the patched layers keep tensor and buffer counts flat', () => {
  const model = buildModel();
  const optimizer = new GroupedOptimizer({ type: 'sgd', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });
  const params = boundParams(model);
  const data = dataset(4);
  const step = (): void => {
    trainStep({ model, task: 'classification' }, lossSpecFor(model, 'classification'), optimizer, params, data, [0, 1, 2, 3], () => 0.1, false);
  };
  assertNoLeaks(step);
  optimizer.dispose();
  model.dispose();
});
