/**
 * The ReLU(maxValue 6) layer patch (fast-layers.ts reluCall: one relu6 instead of relu +
 * clipByValue) against tfjs-layers' own ReLU layer on cpu with the patch off: the same y and
 * the same dx value for value, with x exactly at 0 and 6 (where the gradient mask decides).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installFastLayers, useFastLayers } from '../../src/engine/fast-layers.ts';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { randomValues, wasmDir, type Results } from './numeric.ts';

function reluResults(): Results {
  return tf.tidy(() => {
    const values = randomValues(4 * 5 * 6, 5).map((v) => 9 * v);
    values.set([0, 6, -0, 6.000001, 5.999999, -6], 0);
    const x = tf.tensor(values, [4, 5, 6]);
    const w = tf.tensor(randomValues(4 * 5 * 6, 6), [4, 5, 6]);
    const layer = tf.layers.reLU({ maxValue: 6 });
    const dx = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(layer.apply(t) as tf.Tensor, w)))(x);
    const plain = tf.layers.reLU();
    const dxPlain = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(plain.apply(t) as tf.Tensor, w)))(x);
    return {
      y: (layer.apply(x) as tf.Tensor).dataSync() as Float32Array,
      dx: dx.dataSync() as Float32Array,
      yPlain: (plain.apply(x) as tf.Tensor).dataSync() as Float32Array,
      dxPlain: dxPlain.dataSync() as Float32Array,
    };
  });
}

let cpu: Results = {};
let wasm: Results = {};

before(async () => {
  installFastLayers();
  useFastLayers(false);
  assert.ok(await tf.setBackend('cpu'));
  cpu = reluResults();
  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  useFastLayers(true);
  wasm = reluResults();
});

test('ReLU(maxValue 6) as one relu6: the same y and dx as tfjs-layers\' relu + clipByValue on cpu, value for value', () => {
  // equal as numbers: cpu's gradient multiplies by a 0/1 mask (−0 for a negative dy), the engine's masks bits (+0)
  for (const key of Object.keys(cpu)) {
    cpu[key]!.forEach((e, i) => assert.ok(wasm[key]![i] === e, `${key}[${i}]: ${wasm[key]![i]} against ${e}`));
  }
  // the bounds: no gradient at x = 0, the whole gradient at x = 6
  assert.equal(cpu['dx']![0], 0);
  assert.notEqual(cpu['dx']![1], 0);
});
