/**
 * Slice in the engine's SIMD kernel (native/slice.c, registered by kernels/index.ts) against
 * tfjs's cpu Slice: every rank it takes, int32, slices that touch each axis's ends, empty ones,
 * and ZeroPadding2D's gradient (what MobileNetV2 slices). A copy: equal bit for bit.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { registerTrainingKernels } from '../../src/engine/kernels/index.ts';
import { nativeKernelStatus } from '../../src/engine/kernels/native.ts';
import { randomValues, size, wasmDir } from './numeric.ts';

interface SliceCase { shape: number[]; begin: number[]; size: number[]; dtype?: 'float32' | 'int32' }

const CASES: SliceCase[] = [
  { shape: [9], begin: [2], size: [5] },
  { shape: [4, 7], begin: [1, 2], size: [2, 5] },
  { shape: [3, 5, 9], begin: [0, 1, 3], size: [3, -1, 6] },
  { shape: [2, 6, 7, 13], begin: [0, 1, 1, 0], size: [2, 5, 6, 13] },
  { shape: [2, 6, 7, 13], begin: [1, 0, 2, 3], size: [1, 6, 4, 7] },
  { shape: [3, 5, 5, 8], begin: [0, 0, 0, 0], size: [3, 4, 4, 8] },
  { shape: [2, 3, 4, 5], begin: [0, 1, 0, 0], size: [2, 0, 4, 5] },
  { shape: [2, 5, 6, 3], begin: [0, 1, 2, 1], size: [2, 3, 3, 2], dtype: 'int32' },
];

function sliceResults(): Array<Float32Array | Int32Array> {
  return CASES.map((c, i) => tf.tidy(() => {
    const values = randomValues(size(c.shape), 40 + i);
    const x = c.dtype === 'int32' ? tf.tensor(Int32Array.from(values, (v) => Math.round(1000 * v)), c.shape, 'int32') : tf.tensor(values, c.shape);
    return tf.slice(x, c.begin, c.size).dataSync() as Float32Array | Int32Array;
  }));
}

/** The gradient of ZeroPadding2D((0, 1), (0, 1)) as Keras's MobileNetV2 has it: a Slice of dy. */
function paddingGradient(): Float32Array {
  return tf.tidy(() => {
    const x = tf.tensor(randomValues(2 * 6 * 6 * 12, 7), [2, 6, 6, 12]);
    const w = tf.tensor(randomValues(2 * 7 * 7 * 12, 8), [2, 7, 7, 12]);
    return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.pad(t, [[0, 0], [0, 1], [0, 1], [0, 0]]), w)))(x).dataSync() as Float32Array;
  });
}

let cpu: Array<Float32Array | Int32Array> = [];
let wasm: Array<Float32Array | Int32Array> = [];
let cpuPad: Float32Array = new Float32Array();
let wasmPad: Float32Array = new Float32Array();

before(async () => {
  assert.ok(await tf.setBackend('cpu'));
  cpu = sliceResults();
  cpuPad = paddingGradient();
  setWasmPaths(wasmDir + path.sep);
  assert.ok(await tf.setBackend('wasm'));
  registerTrainingKernels();
  wasm = sliceResults();
  wasmPad = paddingGradient();
});

test('Slice on wasm (the engine\'s kernel) equals cpu bit for bit: ranks 1–4, int32, empty, ends of each axis', () => {
  assert.ok(nativeKernelStatus().loaded);
  CASES.forEach((c, i) => assert.deepEqual(wasm[i], cpu[i], `[${c.shape.join('×')}] from [${c.begin.join(',')}] size [${c.size.join(',')}]`));
});

test('ZeroPadding2D\'s gradient (a Slice of dy) equals cpu bit for bit', () => {
  assert.deepEqual(wasmPad, cpuPad);
});
