/**
 * What the kernel tests share: seeded inputs, the wasm binaries' folder, and the float32
 * comparison every kernel is held to against its reference.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { seededRng } from '../../src/core/random.ts';

/** Relative tolerance of every kernel comparison: float32 rounding of differently ordered sums. */
export const RTOL = 1e-4;

export type Results = Record<string, Float32Array>;

const requireHere = createRequire(__filename);
/** tfjs-backend-wasm's .wasm files, for setWasmPaths. */
export const wasmDir = path.join(path.dirname(requireHere.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');

/** n values uniform in [−1, 1) from `seed`. */
export function randomValues(n: number, seed: number): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

export const size = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/**
 * |actual − expected| ≤ rtol·(|expected| + scale), scale the reference's largest magnitude:
 * relative per element, and relative to the tensor's scale where an element is a
 * near-cancelling sum of float32 terms. `floor` is the least scale, for a reference that is zero
 * up to rounding (a one-row batch's dx).
 */
export function assertClose(actual: Float32Array, expected: Float32Array, what: string, floor = 0): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = floor;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  assert.ok(scale > 0, `${what}: reference is all zeros, the case tests nothing`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (!(Math.abs(a - e) <= RTOL * (Math.abs(e) + scale))) {
      assert.fail(`${what}: element ${i} is ${a}, the reference gives ${e} (scale ${scale})`);
    }
  }
}

/**
 * op(a)·op(b) for seeded a and b of the given (stored) shapes, and the gradients of
 * Σ (op(a)·op(b)) ⊙ w with respect to both: every transposed product a Dense layer or attention
 * makes, forward and backward.
 */
export function matMulAndGradients(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean, seed: number): Results {
  return tf.tidy(() => {
    const a = tf.tensor(randomValues(size(aShape), seed), aShape);
    const b = tf.tensor(randomValues(size(bShape), seed + 1), bShape);
    const product = (x: tf.Tensor, y: tf.Tensor): tf.Tensor => tf.matMul(x, y, transposeA, transposeB);
    const y = product(a, b);
    const weight = tf.tensor(randomValues(y.size, seed + 2), y.shape);
    const [da, db] = tf.grads((x: tf.Tensor, z: tf.Tensor) => tf.sum(tf.mul(product(x, z), weight)))([a, b]);
    return { y: y.dataSync() as Float32Array, da: da!.dataSync() as Float32Array, db: db!.dataSync() as Float32Array };
  });
}

/** assertClose for every result of a case; both must have the same names. */
export function assertAllClose(actual: Results, expected: Results, what: string, floor = 0): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${what}: same results`);
  for (const key of Object.keys(expected)) assertClose(actual[key]!, expected[key]!, `${what} ${key}`, floor);
}

/** Runs `step` once (caches fill), then three times more: tensor and backend buffer counts must stay put. */
export function assertNoLeaks(step: () => void): void {
  step();
  const tensors = tf.memory().numTensors;
  const buffers = tf.backend().numDataIds();
  for (let i = 0; i < 3; i++) step();
  assert.equal(tf.memory().numTensors, tensors, 'tensors left behind');
  assert.equal(tf.backend().numDataIds(), buffers, 'backend buffers left behind');
}
