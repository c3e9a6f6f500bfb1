/**
 * BatchNormalization and LayerNormalization with `scale` or `center` off, on cpu (where the SIMD
 * kernels do not run): stock tfjs-layers cannot back-propagate through them (the missing weight
 * reaches the tape as an absent FusedBatchNorm input), the engine's patch trains them with plain
 * ops. Reference: the same model with the weight present and set to what "off" means (gamma = 1,
 * beta = 0), which stock tfjs differentiates fine — its gradients for every other weight, and its
 * moving statistics, must be the same.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { installFastLayers, useFastLayers } from '../../src/engine/fast-layers.ts';
import { assertAllClose, randomValues, size, type Results } from './numeric.ts';

type Kind = 'batch' | 'layer';

interface Flags {
  scale: boolean;
  center: boolean;
}

/**
 * Dense → norm → Dense on [4, 6] inputs; the norm layer with its weights as `flags` say. Seeded
 * weights; a gamma or beta that `off` lists as switched off is 1 or 0 (what "off" means).
 */
function model(kind: Kind, flags: Flags, off: Flags = { scale: true, center: true }): tf.LayersModel {
  const input = tf.input({ shape: [6] });
  const hidden = tf.layers.dense({ units: 5, name: 'in' }).apply(input) as tf.SymbolicTensor;
  const norm = (kind === 'batch'
    ? tf.layers.batchNormalization({ ...flags, momentum: 0.7, name: 'norm' })
    : tf.layers.layerNormalization({ ...flags, name: 'norm' })).apply(hidden) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 3, name: 'out' }).apply(norm) as tf.SymbolicTensor;
  const m = tf.model({ inputs: input, outputs: out });
  for (const w of m.weights) {
    const n = w.originalName;
    const values = n.endsWith('gamma') && !off.scale ? new Float32Array(size(w.shape as number[])).fill(1)
      : n.endsWith('beta') && !off.center ? new Float32Array(size(w.shape as number[]))
        : n.endsWith('gamma') ? randomValues(size(w.shape as number[]), 5).map((v) => v + 1.5)
        : n.includes('moving_variance') ? randomValues(size(w.shape as number[]), 7).map((v) => Math.abs(v) + 0.5)
          : randomValues(size(w.shape as number[]), n.length * 13 + (n.includes('out') ? 1 : 0));
    w.write(tf.tensor(values, w.shape as number[]));
  }
  return m;
}

/** Gradients of a cross-entropy step for the dense weights, and the norm layer's moving statistics after it. */
function step(m: tf.LayersModel): Results {
  const x = tf.tensor2d(randomValues(24, 3).map((v) => 3 * v + 1), [4, 6]);
  const labels = tf.oneHot(tf.tensor1d([0, 2, 1, 1], 'int32'), 3);
  const dense = m.trainableWeights.filter((w) => !w.originalName.startsWith('norm'));
  const variables = dense.map((w) => w.read() as tf.Variable);
  const { value, grads } = tf.variableGrads(
    () => tf.losses.softmaxCrossEntropy(labels, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, variables);
  const r: Results = { loss: value.dataSync() as Float32Array };
  dense.forEach((w, k) => {
    r[w.originalName] = grads[variables[k]!.name]!.dataSync() as Float32Array;
  });
  for (const w of m.weights) if (w.originalName.includes('moving')) r[w.originalName] = w.read().dataSync() as Float32Array;
  tf.dispose([x, labels, value, ...Object.values(grads)]);
  return r;
}

const OFF: Flags[] = [{ scale: false, center: false }, { scale: false, center: true }, { scale: true, center: false }];

before(async () => {
  assert.ok(await tf.setBackend('cpu'));
  installFastLayers();
});

for (const kind of ['batch', 'layer'] as const) {
  test(`${kind} normalisation with scale or center off trains on cpu, as the same layer with gamma 1 and beta 0 does`, () => {
    for (const flags of OFF) {
      const what = `${kind} scale ${flags.scale} center ${flags.center}`;
      useFastLayers(false);
      try {
        const stock = model(kind, flags);
        assert.throws(() => step(stock), Error, `${what}: stock tfjs cannot differentiate it (if it now can, drop the patch's fallback)`);
        stock.dispose();
      } finally {
        useFastLayers(true);
      }
      const reference = model(kind, { scale: true, center: true }, flags);
      const expected = step(reference);
      reference.dispose();
      const patched = model(kind, flags);
      const actual = step(patched);
      patched.dispose();
      // the bias before a batch norm gets a gradient of exactly 0, up to rounding: compare at the gradients' scale
      assertAllClose(actual, expected, what, 1e-3);
    }
  });
}
