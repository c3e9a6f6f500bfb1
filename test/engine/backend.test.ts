// Backend choice. Tests run in file order: the ones that switch backends come first, while no
// tensor exists (tensors do not survive a switch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import {
  defaultWasmDir, kernelsForTraining, knownLayerClasses, missingKernels, selectBackend,
} from '../../src/engine/backend.ts';
import { TRAINING_KERNEL_NAMES } from '../../src/engine/kernels/index.ts';
import { layerClassNames, loadModel, readModelJson } from '../../src/engine/model-io.ts';

const cnnDir = path.join(__dirname, '..', 'fixtures', 'models', 'cnn');

test('defaultWasmDir finds the wasm binaries of the installed package', () => {
  assert.ok(existsSync(path.join(defaultWasmDir(), 'tfjs-backend-wasm-simd.wasm')));
});

test('auto with no usable wasm binaries falls back to cpu and says why', async () => {
  const choice = await selectBackend('auto', { trainableClassNames: ['Dense'] }, { wasmDir: '/nonexistent/wasm' });
  assert.equal(choice.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(choice.tried.map((t) => t.backend), ['tensorflow', 'wasm']);
  assert.match(choice.tried[0]!.problem, /tfjs-node/);
  assert.match(choice.reason, /no tfjs-backend-wasm\.wasm in \/nonexistent\/wasm/);
});

test('an explicit tfjs-node that is not installed is a clear error', async () => {
  await assert.rejects(selectBackend('tfjs-node', { trainableClassNames: ['Dense'] }), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.field, 'backend');
    assert.match(e.message, /tfjs-node.*not installed/);
    return true;
  });
});

test('auto picks wasm when every training kernel of the model is registered there', async () => {
  const classes = layerClassNames(readModelJson(cnnDir));
  const choice = await selectBackend('auto', { trainableClassNames: classes });
  assert.equal(choice.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(missingKernels(classes, 'wasm'), []);
  assert.deepEqual(choice.tried.map((t) => t.backend), ['tensorflow']);
});

test('a kernel missing on wasm sends auto to cpu and makes an explicit wasm fail, naming it', async () => {
  // a kernel of stock wasm that registerTrainingKernels does not replace, removed for this test
  const candidates: Array<[string, string]> = [['AveragePooling2D', 'AvgPoolGrad'], ['UpSampling2D', 'ResizeNearestNeighborGrad'], ['ELU', 'EluGrad']];
  const pick = candidates.find(([, k]) => !TRAINING_KERNEL_NAMES.includes(k) && tf.getKernel(k, 'wasm') !== undefined);
  assert.ok(pick, 'no stock wasm kernel left to remove');
  const [cls, kernel] = pick;
  const saved = tf.getKernel(kernel, 'wasm')!;
  tf.unregisterKernel(kernel, 'wasm');
  try {
    const choice = await selectBackend('auto', { trainableClassNames: ['Dense', cls] });
    assert.equal(choice.name, 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    assert.match(choice.reason, new RegExp(`${kernel}.*${cls}`));
    await assert.rejects(selectBackend('wasm', { trainableClassNames: [cls] }), (e: unknown) => {
      assert.ok(e instanceof LayerwiseError);
      assert.equal(e.field, 'backend');
      assert.match(e.message, new RegExp(kernel));
      return true;
    });
  } finally {
    tf.registerKernel(saved);
  }
});

test('explicit cpu is honoured', async () => {
  const choice = await selectBackend('cpu', { trainableClassNames: ['Conv2D'] });
  assert.equal(choice.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
});

test('switching backend while tensors live is refused', async () => {
  const t = tf.scalar(1);
  try {
    await assert.rejects(selectBackend('wasm', { trainableClassNames: ['Dense'] }), /before creating any tensor/);
  } finally {
    t.dispose();
  }
});

test('the wasm backend it picks computes the same CNN gradients as cpu', async () => {
  const grads = async (): Promise<Float32Array[]> => {
    const model = await loadModel(cnnDir);
    const x = tf.tensor4d(Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i)), [2, 8, 8, 1]);
    const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const { value, grads: g } = tf.variableGrads(() => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar, vars);
    const out = vars.map((v) => g[v.name]!.dataSync() as Float32Array);
    tf.dispose([x, value, ...Object.values(g)]);
    model.dispose();
    return out;
  };
  await selectBackend('cpu', { trainableClassNames: [] });
  const onCpu = await grads();
  assert.equal(tf.engine().state.numTensors, 0);
  await selectBackend('wasm', { trainableClassNames: layerClassNames(readModelJson(cnnDir)) });
  const onWasm = await grads();
  onCpu.forEach((g, i) => g.forEach((v, k) => assert.ok(Math.abs(v - onWasm[i]![k]!) <= 1e-4 * (1 + Math.abs(v)), `weight ${i} [${k}]: ${v} vs ${onWasm[i]![k]}`)));
  await selectBackend('cpu', { trainableClassNames: [] });
});

// ------------------------------------------------------------ kernel table, measured on cpu

type Case = { cls: string; make: () => tf.layers.Layer; shape: number[]; ints?: boolean };

const cases: Case[] = [
  { cls: 'Dense', make: () => tf.layers.dense({ units: 3 }), shape: [4] },
  { cls: 'Dense', make: () => tf.layers.dense({ units: 3, activation: 'relu' }), shape: [4] },
  { cls: 'Dense', make: () => tf.layers.dense({ units: 3, activation: 'softmax', useBias: false }), shape: [2, 4] },
  { cls: 'Conv1D', make: () => tf.layers.conv1d({ filters: 2, kernelSize: 3 }), shape: [5, 2] },
  { cls: 'Conv2D', make: () => tf.layers.conv2d({ filters: 2, kernelSize: 3 }), shape: [5, 5, 2] },
  { cls: 'Conv2D', make: () => tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', strides: 2, activation: 'relu' }), shape: [5, 5, 2] },
  { cls: 'Conv2DTranspose', make: () => tf.layers.conv2dTranspose({ filters: 2, kernelSize: 3 }), shape: [5, 5, 2] },
  { cls: 'DepthwiseConv2D', make: () => tf.layers.depthwiseConv2d({ kernelSize: 3 }), shape: [5, 5, 2] },
  { cls: 'SeparableConv2D', make: () => tf.layers.separableConv2d({ filters: 2, kernelSize: 3 }), shape: [5, 5, 2] },
  { cls: 'BatchNormalization', make: () => tf.layers.batchNormalization(), shape: [5, 5, 2] },
  { cls: 'BatchNormalization', make: () => tf.layers.batchNormalization(), shape: [4] },
  { cls: 'LayerNormalization', make: () => tf.layers.layerNormalization(), shape: [3, 4] },
  { cls: 'Embedding', make: () => tf.layers.embedding({ inputDim: 10, outputDim: 3 }), shape: [4], ints: true },
  { cls: 'MaxPooling1D', make: () => tf.layers.maxPooling1d({ poolSize: 2 }), shape: [4, 2] },
  { cls: 'MaxPooling2D', make: () => tf.layers.maxPooling2d({ poolSize: 2 }), shape: [4, 4, 2] },
  { cls: 'AveragePooling1D', make: () => tf.layers.averagePooling1d({ poolSize: 2 }), shape: [4, 2] },
  { cls: 'AveragePooling2D', make: () => tf.layers.averagePooling2d({ poolSize: 2 }), shape: [4, 4, 2] },
  { cls: 'GlobalAveragePooling1D', make: () => tf.layers.globalAveragePooling1d(), shape: [4, 2] },
  { cls: 'GlobalAveragePooling2D', make: () => tf.layers.globalAveragePooling2d({}), shape: [4, 4, 2] },
  { cls: 'GlobalMaxPooling1D', make: () => tf.layers.globalMaxPooling1d(), shape: [4, 2] },
  { cls: 'GlobalMaxPooling2D', make: () => tf.layers.globalMaxPooling2d({}), shape: [4, 4, 2] },
  { cls: 'Flatten', make: () => tf.layers.flatten(), shape: [4, 2] },
  { cls: 'Reshape', make: () => tf.layers.reshape({ targetShape: [2, 4] }), shape: [4, 2] },
  { cls: 'Permute', make: () => tf.layers.permute({ dims: [2, 1] }), shape: [4, 2] },
  { cls: 'RepeatVector', make: () => tf.layers.repeatVector({ n: 3 }), shape: [4] },
  { cls: 'Dropout', make: () => tf.layers.dropout({ rate: 0.5 }), shape: [4] },
  { cls: 'ReLU', make: () => tf.layers.reLU(), shape: [4] },
  { cls: 'LeakyReLU', make: () => tf.layers.leakyReLU(), shape: [4] },
  { cls: 'ELU', make: () => tf.layers.elu(), shape: [4] },
  { cls: 'Softmax', make: () => tf.layers.softmax(), shape: [4] },
  { cls: 'PReLU', make: () => tf.layers.prelu(), shape: [4] },
  { cls: 'ZeroPadding2D', make: () => tf.layers.zeroPadding2d({}), shape: [4, 4, 2] },
  { cls: 'Cropping2D', make: () => tf.layers.cropping2D({ cropping: 1 }), shape: [4, 4, 2] },
  { cls: 'UpSampling2D', make: () => tf.layers.upSampling2d({}), shape: [4, 4, 2] },
  { cls: 'UpSampling2D', make: () => tf.layers.upSampling2d({ interpolation: 'bilinear' }), shape: [4, 4, 2] },
  { cls: 'SimpleRNN', make: () => tf.layers.simpleRNN({ units: 3 }), shape: [4, 2] },
  { cls: 'LSTM', make: () => tf.layers.lstm({ units: 3 }), shape: [4, 2] },
  { cls: 'GRU', make: () => tf.layers.gru({ units: 3 }), shape: [4, 2] },
  ...['relu', 'relu6', 'sigmoid', 'hardSigmoid', 'tanh', 'softmax', 'logSoftmax', 'elu', 'selu', 'softplus', 'softsign', 'swish', 'gelu', 'gelu_new', 'mish', 'linear']
    .map((a): Case => ({ cls: 'Activation', make: () => tf.layers.activation({ activation: a as 'relu' }), shape: [4] })),
];

/** Kernels (not op scopes) a function runs on cpu. */
async function kernelsRun(f: () => void): Promise<string[]> {
  const info = await tf.profile(f);
  return [...new Set(info.kernelNames)].filter((k) => tf.getKernel(k, 'cpu') !== undefined).sort();
}

test('the kernel table covers every kernel a forward + backward pass runs, per layer class', async () => {
  await tf.setBackend('cpu');
  const gaps: string[] = [];
  for (const c of cases) {
    const input = tf.input({ shape: c.shape });
    const layer = c.make();
    const model = tf.model({ inputs: input, outputs: layer.apply(input) as tf.SymbolicTensor });
    assert.equal(layer.getClassName(), c.cls);
    const x = c.ints ? tf.tensor2d([[1, 2, 3, 4], [5, 6, 7, 8]]) : tf.randomNormal([2, ...c.shape]);
    const loss = (xx: tf.Tensor): tf.Scalar => tf.sum(tf.square(model.apply(xx, { training: true }) as tf.Tensor)) as tf.Scalar;
    const vars = model.trainableWeights.map((w) => (w as unknown as { val: tf.Variable }).val);
    const used = await kernelsRun(() => {
      if (vars.length > 0) tf.variableGrads(() => loss(x), vars);
      if (!c.ints) tf.grad(loss)(x);
    });
    const listed = new Set(kernelsForTraining([c.cls]));
    const missing = used.filter((k) => !listed.has(k));
    if (missing.length > 0) gaps.push(`${c.cls} (${JSON.stringify(layer.getConfig()).slice(0, 60)}…): ${missing.join(', ')}`);
    assert.ok(knownLayerClasses().includes(c.cls));
    model.dispose();
  }
  assert.deepEqual(gaps, []);
});

test('the kernel table covers the losses, metrics and optimizer updates', async () => {
  await tf.setBackend('cpu');
  const y = tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3).toFloat();
  const z = tf.randomNormal([2, 3]);
  const v = tf.variable(tf.randomNormal([3]));
  const used = await kernelsRun(() => {
    tf.grad((q: tf.Tensor) => tf.losses.softmaxCrossEntropy(y, q) as tf.Scalar)(z);
    tf.grad((q: tf.Tensor) => tf.losses.meanSquaredError(y, q) as tf.Scalar)(z);
    tf.metrics.categoricalAccuracy(y, z).mean();
    for (const opt of [tf.train.adam(0.1), tf.train.sgd(0.1), tf.train.momentum(0.1, 0.9, true)]) {
      opt.minimize(() => tf.sum(tf.square(v)) as tf.Scalar);
    }
  });
  const listed = new Set(kernelsForTraining([]));
  assert.deepEqual(used.filter((k) => !listed.has(k)), []);
});

test('kernelsForTraining adds the conv gradients for Conv2D and nothing for unknown classes', () => {
  const conv = kernelsForTraining(['Conv2D']);
  assert.ok(conv.includes('Conv2DBackpropFilter') && conv.includes('Conv2DBackpropInput'));
  assert.ok(kernelsForTraining(['DepthwiseConv2D']).includes('DepthwiseConv2dNativeBackpropFilter'));
  assert.ok(kernelsForTraining(['MaxPooling2D']).includes('MaxPoolGrad'));
  assert.deepEqual(kernelsForTraining(['NoSuchLayer']), kernelsForTraining([]));
});
