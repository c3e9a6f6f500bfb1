/**
 * GELU's kernels (kernels/gelu.ts, native/gelu.c) and the activation patch (fast-layers.ts).
 * References come from tfjs-layers' own 'gelu' activation on the cpu backend (div, erf, add,
 * mul, differentiated by the tape), computed first; then everything runs again on wasm from the
 * same Float32Arrays, never moving a tensor across backends.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installFastLayers, useFastLayers } from '../../src/engine/fast-layers.ts';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { GELU, GELU_GRAD, geluApplies } from '../../src/engine/kernels/gelu.ts';
import { assertClose, assertNoLeaks, randomValues, size, wasmDir, type Results } from './numeric.ts';

/** Shapes (a tail of 1–3 values past the SIMD body included) and how far x spreads. */
const CASES: Array<{ shape: number[]; spread: number }> = [
  { shape: [1, 7], spread: 1 },
  { shape: [3, 5], spread: 4 },
  { shape: [2, 9, 16], spread: 3 },
  // far into both tails: Φ → 0 and 1, e^(−x²/2) underflowing
  { shape: [4, 33], spread: 15 },
];

/** A Dense layer with the gelu activation over seeded x: y and the gradients of Σ y ⊙ w for x, kernel and bias. */
function denseGeluResults(c: { shape: number[]; spread: number }, seed: number): Results {
  const units = 6;
  const layer = tf.layers.dense({ units, activation: 'gelu' });
  const inChannels = c.shape[c.shape.length - 1]!;
  layer.build([null, inChannels]);
  tf.tidy(() => layer.setWeights(layer.weights.map((w, k) => tf.tensor(randomValues(size(w.shape as number[]), seed + k), w.shape as number[]))));
  const x = tf.variable(tf.tensor(randomValues(size(c.shape), seed + 10).map((v) => c.spread * v), c.shape), true, `gx_${seed}`);
  try {
    return tf.tidy(() => {
      const outShape = [...c.shape.slice(0, -1), units];
      const weight = tf.tensor(randomValues(size(outShape), seed + 11), outShape);
      const variables = [x, ...layer.weights.map((w) => w.read() as tf.Variable)];
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x) as tf.Tensor, weight)) as tf.Scalar, variables);
      // the activation alone, on x itself: its tails are reached (the product mixes them away)
      const act = tf.layers.activation({ activation: 'gelu' });
      const direct = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(act.apply(t) as tf.Tensor, tf.sin(t))))(x);
      return {
        y: (layer.apply(x) as tf.Tensor).dataSync() as Float32Array,
        loss: value.dataSync() as Float32Array,
        dx: grads[x.name]!.dataSync() as Float32Array,
        dkernel: grads[variables[1]!.name]!.dataSync() as Float32Array,
        dbias: grads[variables[2]!.name]!.dataSync() as Float32Array,
        gelu: (act.apply(x) as tf.Tensor).dataSync() as Float32Array,
        geluGrad: direct.dataSync() as Float32Array,
      };
    });
  } finally {
    x.dispose();
    for (const w of layer.weights) w.dispose();
  }
}

const cpu: Results[] = [];
const wasm: Results[] = [];
let applied: boolean[] = [];

before(async () => {
  installFastLayers();
  useFastLayers(false);
  assert.ok(await tf.setBackend('cpu'));
  CASES.forEach((c, i) => cpu.push(denseGeluResults(c, 50 * i)));
  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  useFastLayers(true);
  applied = CASES.map((c) => tf.tidy(() => geluApplies(tf.zeros(c.shape))));
  CASES.forEach((c, i) => wasm.push(denseGeluResults(c, 50 * i)));
});

test('GELU runs in the engine\'s kernels on wasm, forward and backward', () => {
  assert.ok(applied.every(Boolean), 'geluApplies on wasm');
  assert.ok(tf.getKernel(GELU, 'wasm') !== undefined && tf.getKernel(GELU_GRAD, 'wasm') !== undefined);
});

for (const [i, c] of CASES.entries()) {
  test(`gelu [${c.shape.join('×')}] (x up to ±${c.spread}): the same y and gradients as tfjs-layers' gelu on cpu`, () => {
    for (const key of Object.keys(cpu[i]!)) {
      // tfjs computes Φ as 0.5·(1 + erf) in float32: for x ≪ 0 that loses ~1e-7 absolute to cancellation
      assertClose(wasm[i]![key]!, cpu[i]![key]!, `${key}`, 1e-3);
    }
  });
}

test('gelu leaves no tensors behind', () => {
  const act = tf.layers.activation({ activation: 'gelu' });
  assertNoLeaks(() => {
    tf.tidy(() => {
      const x = tf.tensor(randomValues(40, 3), [8, 5]);
      tf.grad((t: tf.Tensor) => tf.sum(act.apply(t) as tf.Tensor))(x);
    });
  });
});
