/**
 * The fused Adam/AdamW and SGD kernels (src/engine/kernels/optimizer-step.ts) against, first, a
 * float32 reference written here from torch 1.13's _single_tensor_adam(w) / _single_tensor_sgd
 * (every operation rounded with Math.fround, in torch's order), and second, the optimizer's own
 * tf-op route on the same backend, which they must equal bit for bit.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { seededRng } from '../../src/core/random.ts';
import { selectBackend } from '../../src/engine/backend.ts';
import { ADAM_STEP, SGD_STEP, useFusedOptimizerSteps } from '../../src/engine/kernels/optimizer-step.ts';
import { GroupedOptimizer } from '../../src/engine/optimizer.ts';

const f = Math.fround;

interface Case {
  type: 'adam' | 'adamw' | 'sgd';
  size: number;
  lr: number;
  weightDecay: number;
  momentum?: number;
  nesterov?: boolean;
}

const CASES: Case[] = [
  { type: 'adamw', size: 1, lr: 1e-3, weightDecay: 0.01 },
  { type: 'adamw', size: 1027, lr: 3e-2, weightDecay: 0 },
  { type: 'adamw', size: 64, lr: 1e-4, weightDecay: 0.1 },
  { type: 'adam', size: 13, lr: 1e-2, weightDecay: 0 },
  { type: 'adam', size: 515, lr: 5e-3, weightDecay: 0.05 },
  { type: 'sgd', size: 7, lr: 0.1, weightDecay: 0 },
  { type: 'sgd', size: 258, lr: 0.05, weightDecay: 1e-3, momentum: 0.9 },
  { type: 'sgd', size: 33, lr: 0.01, weightDecay: 0, momentum: 0.8, nesterov: true },
  { type: 'sgd', size: 1001, lr: 0.2, weightDecay: 0.01, momentum: 0.5, nesterov: true },
];
const STEPS = 4;
const BETAS: [number, number] = [0.9, 0.999];
const EPS = 1e-8;

function values(n: number, seed: number, scale = 1): Float32Array {
  const rng = seededRng(seed);
  return Float32Array.from({ length: n }, () => (rng() * 2 - 1) * scale);
}

/** torch 1.13 single-tensor SGD (dampening 0) in float32, one op at a time. */
function sgdReference(c: Case, p0: Float32Array, grads: Float32Array[]): Float32Array {
  const p = Float32Array.from(p0);
  const buf = new Float32Array(p.length);
  const momentum = f(c.momentum ?? 0);
  grads.forEach((g, k) => {
    for (let i = 0; i < p.length; i++) {
      let d = c.weightDecay !== 0 ? f(g[i]! + f(p[i]! * f(c.weightDecay))) : g[i]!;
      if (momentum !== 0) {
        buf[i] = k === 0 ? d : f(f(buf[i]! * momentum) + d);
        d = c.nesterov ? f(d + f(buf[i]! * momentum)) : buf[i]!;
      }
      p[i] = f(p[i]! + f(d * f(-c.lr)));
    }
  });
  return p;
}

/** torch 1.13 single-tensor Adam/AdamW in float32, one op at a time. */
function reference(c: Case, p0: Float32Array, grads: Float32Array[]): Float32Array {
  if (c.type === 'sgd') return sgdReference(c, p0, grads);
  const p = Float32Array.from(p0);
  const m = new Float32Array(p.length);
  const v = new Float32Array(p.length);
  const [b1, b2] = BETAS;
  grads.forEach((g, k) => {
    const step = k + 1;
    const stepSize = c.lr / (1 - b1 ** step);
    const bc2Sqrt = Math.sqrt(1 - b2 ** step);
    for (let i = 0; i < p.length; i++) {
      let gi = g[i]!;
      if (c.type === 'adamw') p[i] = f(p[i]! * f(1 - c.lr * c.weightDecay));
      else gi = f(gi + f(p[i]! * f(c.weightDecay)));
      m[i] = f(f(m[i]! * f(b1)) + f(gi * f(1 - b1)));
      v[i] = f(f(v[i]! * f(b2)) + f(f(gi * f(1 - b2)) * gi));
      const denom = f(f(f(Math.sqrt(v[i]!)) / f(bc2Sqrt)) + f(EPS));
      p[i] = f(p[i]! + f(f(m[i]! * f(-stepSize)) / denom));
    }
  });
  return p;
}

const optimizerFor = (c: Case): GroupedOptimizer =>
  new GroupedOptimizer({ type: c.type, betas: BETAS, eps: EPS, momentum: c.momentum ?? 0, nesterov: c.nesterov ?? false });

/** The optimizer's parameter after STEPS steps. */
function run(c: Case, p0: Float32Array, grads: Float32Array[]): Float32Array {
  const optimizer = optimizerFor(c);
  const variable = tf.variable(tf.tensor1d(p0));
  for (const g of grads) {
    const grad = tf.tensor1d(g);
    optimizer.step([{ name: 'w', variable, grad, lr: c.lr, weightDecay: c.weightDecay }]);
    grad.dispose();
  }
  const p = Float32Array.from(variable.dataSync() as Float32Array);
  variable.dispose();
  optimizer.dispose();
  return p;
}

/** Kernel names run by one step (tf.profile is async; the step inside it is synchronous). */
async function kernelsOfOneStep(c: Case): Promise<string[]> {
  const optimizer = optimizerFor(c);
  const variable = tf.variable(tf.tensor1d(values(c.size, 1)));
  const grad = tf.tensor1d(values(c.size, 2));
  const info = await tf.profile(() => optimizer.step([{ name: 'w', variable, grad, lr: c.lr, weightDecay: c.weightDecay }]));
  tf.dispose([variable, grad]);
  optimizer.dispose();
  return info.kernels.map((k) => k.name);
}

const inputs = CASES.map((c, i) => ({
  p0: values(c.size, 10 * i, 2),
  grads: Array.from({ length: STEPS }, (_, k) => values(c.size, 10 * i + k + 1, k === 2 ? 1e-3 : 1)),
}));
let fused: Float32Array[] = [];
let ops: Float32Array[] = [];
const fusedKernels: string[][] = [];
const opKernels: string[][] = [];
/** One case per kernel kind for the kernel-name checks. */
const KINDS = [CASES[0]!, CASES[6]!];

before(async () => {
  await selectBackend('wasm', { trainableClassNames: ['Dense'] });
  fused = CASES.map((c, i) => run(c, inputs[i]!.p0, inputs[i]!.grads));
  for (const c of KINDS) fusedKernels.push(await kernelsOfOneStep(c));
  useFusedOptimizerSteps(false);
  try {
    ops = CASES.map((c, i) => run(c, inputs[i]!.p0, inputs[i]!.grads));
    for (const c of KINDS) opKernels.push(await kernelsOfOneStep(c));
  } finally {
    useFusedOptimizerSteps(true);
  }
});

test('on wasm an Adam/AdamW or SGD step is one fused kernel (and the switch turns it off)', () => {
  assert.deepEqual(fusedKernels, [[ADAM_STEP], [SGD_STEP]]);
  opKernels.forEach((names) => assert.ok(!names.includes(ADAM_STEP) && !names.includes(SGD_STEP) && names.length > 3, names.join(' ')));
});

test('the fused steps match torch\'s float32 formulas, op by op (Adam, AdamW, SGD ± momentum/Nesterov, ± decay)', () => {
  CASES.forEach((c, i) => {
    const expected = reference(c, inputs[i]!.p0, inputs[i]!.grads);
    const actual = fused[i]!;
    for (let j = 0; j < expected.length; j++) {
      // float32 rounding of the same operations: equal, or one ulp where sqrt/divide round differently
      const tol = 2 * Math.abs(expected[j]!) * 2 ** -23;
      assert.ok(Math.abs(actual[j]! - expected[j]!) <= tol, `${c.type} size ${c.size} element ${j}: ${actual[j]} vs ${expected[j]}`);
    }
  });
});

test('the fused steps equal the optimizer\'s tf-op route bit for bit', () => {
  CASES.forEach((c, i) => {
    assert.deepEqual(Array.from(fused[i]!), Array.from(ops[i]!), `${c.type} size ${c.size} wd ${c.weightDecay}`);
  });
});

test('the comparison would notice a changed update', () => {
  const wrong = Float32Array.from(fused[1]!);
  wrong[7] = f(wrong[7]! + 1e-6);
  assert.notDeepEqual(Array.from(wrong), Array.from(ops[1]!));
});
