/**
 * Frozen-prefix caching on wasm, the backend it is for. Unlike cpu, wasm's kernels are not
 * bit-reproducible across different computation histories: the same head gradient computed from
 * the same activation values differs in the last bits (≤ 5e-7 here) depending on whether those
 * activations were computed inside the gradient's scope or came from a fresh tensor — with or
 * without the cache. So on wasm this compares to float32 tolerance, on the first two stages of
 * the example; prefix-cache.test.ts checks bit-identity on cpu. (Later stages are not a fair
 * test of the cache: the conv biases in front of BatchNorm have a gradient that is exactly 0 in
 * exact arithmetic, so Adam turns any rounding difference into steps of the learning rate's size
 * there; the BatchNorm after them removes them, but its moving mean trails them, which moves
 * the validation loss by ~1e-3 between two runs that differ in one rounding.)
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend } from '../../src/engine/backend.ts';
import { runExample, stagedPlanText } from './example-runs.ts';

before(async () => {
  await selectBackend('wasm', { trainableClassNames: ['Conv2D', 'BatchNormalization', 'ReLU', 'MaxPooling2D', 'Flatten', 'Dense'] });
});

test('on wasm, two frozen-prefix stages give the same losses and weights with and without the cache', async () => {
  const text = stagedPlanText(2);
  const plain = await runExample('wasm', false, text);
  const cached = await runExample('wasm', true, text);
  assert.equal(cached.logs.filter((m) => /were computed once/.test(m)).length, 2, cached.logs.join('\n'));
  assert.ok(cached.frozenUnchanged && plain.frozenUnchanged);
  assert.equal(cached.losses.length, plain.losses.length);
  cached.losses.forEach((l, i) => {
    const p = plain.losses[i]!;
    assert.ok(Math.abs(l - p) <= 1e-5 * Math.max(1, Math.abs(p)), `loss ${i}: ${l} with the cache, ${p} without`);
  });
  let worst = 0;
  for (const [name, w] of plain.weights) {
    const c = cached.weights.get(name)!;
    for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(c[i]! - w[i]!));
  }
  assert.ok(worst <= 1e-6, `weights differ by up to ${worst}`);
});
