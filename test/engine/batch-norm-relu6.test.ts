/**
 * The fused BatchNorm → ReLU6 (fast-layers.ts reluCall on a training BatchNormalization's output,
 * kernels/batch-norm-train.ts batchNormRelu6, native/batch_norm.c): on wasm, the same bits as the
 * unfused layers (BatchNorm kernel, relu6, LayerwiseClipGradient, BatchNorm gradient) for the
 * loss, every gradient and the moving statistics; equal up to rounding where the BatchNorm output
 * is also read by another layer; against tfjs's own layers on cpu within float32 rounding; the fused
 * kernels really run (and the clip gradient does not); no tensor is left behind. The cpu
 * reference runs the layer patches too: there they are tfjs's own ops.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installFastLayers, useBatchNormRelu6Fusion, useFastLayers } from '../../src/engine/fast-layers.ts';
import { BATCH_NORM_RELU6_GRAD } from '../../src/engine/kernels/batch-norm-train.ts';
import { CLIP_GRADIENT_KERNEL } from '../../src/engine/kernels/gradients.ts';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { nativeKernelStatus } from '../../src/engine/kernels/native.ts';
import { assertAllClose, assertNoLeaks, randomValues, size, wasmDir, type Results } from './numeric.ts';

const L = tf.layers;
const SHAPE = [6, 6, 5];
const BATCH = 4;

/**
 * conv → BN → ReLU6 three times (the last BN without beta), global pooling and a dense head;
 * with `secondReader`, the second BN's output is also added to its ReLU6's. Weights drawn from a
 * fixed seed.
 */
function buildModel(secondReader: boolean): tf.LayersModel {
  const input = L.input({ shape: SHAPE });
  const conv = (filters: number, kernelSize: number, name: string): tf.layers.Layer =>
    L.conv2d({ filters, kernelSize, padding: 'same', useBias: false, name });
  let h = conv(8, 3, 'c1').apply(input) as tf.SymbolicTensor;
  h = L.batchNormalization({ name: 'bn1' }).apply(h) as tf.SymbolicTensor;
  h = L.reLU({ maxValue: 6, name: 'r1' }).apply(h) as tf.SymbolicTensor;
  h = conv(8, 1, 'c2').apply(h) as tf.SymbolicTensor;
  const bn2 = L.batchNormalization({ name: 'bn2' }).apply(h) as tf.SymbolicTensor;
  h = L.reLU({ maxValue: 6, name: 'r2' }).apply(bn2) as tf.SymbolicTensor;
  if (secondReader) h = L.add().apply([h, bn2]) as tf.SymbolicTensor;
  h = conv(6, 1, 'c3').apply(h) as tf.SymbolicTensor;
  h = L.batchNormalization({ name: 'bn3', center: false }).apply(h) as tf.SymbolicTensor;
  h = L.reLU({ maxValue: 6, name: 'r3' }).apply(h) as tf.SymbolicTensor;
  const out = L.dense({ units: 3, name: 'head' }).apply(L.globalAveragePooling2d({}).apply(h)) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: out });
  tf.tidy(() => model.layers.forEach((layer, i) => {
    // scaled so that some BatchNorm outputs land beyond 6 and below 0: both ends of the mask matter
    layer.setWeights(layer.getWeights().map((w, j) => tf.tensor(randomValues(w.size, 100 + 10 * i + j).map((v) => (w.rank === 1 ? 2 + 2 * v : 1.5 * v)), w.shape)));
  }));
  return model;
}

/** The loss, its gradient for every trainable weight, and the moving statistics after one training forward pass. */
function lossAndGradients(secondReader = false): Results {
  const model = buildModel(secondReader);
  const x = tf.tensor(randomValues(BATCH * size(SHAPE), 7).map((v) => 4 * v), [BATCH, ...SHAPE]);
  const target = tf.tensor(randomValues(BATCH * 3, 8), [BATCH, 3]);
  const weights = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.mean(tf.square(tf.sub(model.apply(x, { training: true }) as tf.Tensor, target))) as tf.Scalar, weights);
  const out: Results = { loss: value.dataSync() as Float32Array };
  model.trainableWeights.forEach((w, i) => {
    out[`d ${w.originalName}`] = grads[weights[i]!.name]!.dataSync() as Float32Array;
  });
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    layer.getWeights(false).forEach((w, i) => {
      out[`${layer.name} weight ${i}`] = w.dataSync() as Float32Array;
    });
  }
  tf.dispose([x, target, value, grads]);
  model.dispose();
  return out;
}

let cpu: Results = {};
let cpuSecondReader: Results = {};

before(async () => {
  installFastLayers();
  // on cpu the patches run tfjs's own ops (composed for the BatchNorm without beta, which stock tfjs cannot differentiate)
  useFastLayers(true);
  assert.ok(await tf.setBackend('cpu'));
  cpu = lossAndGradients();
  cpuSecondReader = lossAndGradients(true);
  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  assert.ok(nativeKernelStatus().loaded, 'the kernels must be built (npm run build)');
});

/** The kernels a call runs, by name. */
async function kernelsRun(f: () => void): Promise<Set<string>> {
  const info = await tf.profile(() => {
    f();
    return [];
  });
  return new Set(info.kernels.map((k) => k.name));
}

test('BatchNorm → ReLU6 fused: the same bits as the unfused layers on wasm for the loss, every gradient and the moving statistics', async () => {
  useBatchNormRelu6Fusion(false);
  let unfused: Results = {};
  const plainKernels = await kernelsRun(() => {
    unfused = lossAndGradients();
  });
  useBatchNormRelu6Fusion(true);
  let fused: Results = {};
  const fusedKernels = await kernelsRun(() => {
    fused = lossAndGradients();
  });
  assert.ok(plainKernels.has(CLIP_GRADIENT_KERNEL) && !plainKernels.has(BATCH_NORM_RELU6_GRAD));
  assert.ok(fusedKernels.has(BATCH_NORM_RELU6_GRAD));
  assert.ok(!fusedKernels.has(CLIP_GRADIENT_KERNEL), 'no ReLU6 gradient pass of its own');
  assert.deepEqual(Object.keys(fused).sort(), Object.keys(unfused).sort());
  for (const key of Object.keys(unfused)) {
    unfused[key]!.forEach((e, i) => assert.ok(Object.is(fused[key]![i], e), `${key}[${i}]: fused ${fused[key]![i]}, unfused ${e}`));
  }
});

test('BatchNorm → ReLU6 fused agrees with tfjs-layers on cpu within float32 rounding', () => {
  useBatchNormRelu6Fusion(true);
  assertAllClose(lossAndGradients(), cpu, 'fused on wasm against cpu');
});

test('a BatchNorm output that another layer reads too: its two gradients add up to the unfused one and agree with cpu', () => {
  useBatchNormRelu6Fusion(false);
  const unfused = lossAndGradients(true);
  useBatchNormRelu6Fusion(true);
  const fused = lossAndGradients(true);
  // BN(dz masked) + BN(d other) against BN(dz masked + d other): equal up to rounding, not bit for bit
  assertAllClose(fused, unfused, 'fused against unfused on wasm');
  assertAllClose(fused, cpuSecondReader, 'fused on wasm against cpu');
});

test('BatchNorm → ReLU6 fused leaves no tensor behind', () => {
  useBatchNormRelu6Fusion(true);
  assertNoLeaks(() => {
    lossAndGradients(true);
  });
});
