/**
 * The grouped optimizer's cost against tfjs's own Adam, in the same process on the same
 * backend, model and batch: a full training step (forward + backward + update) with
 * `tf.train.adam` vs with `GroupedOptimizer` (AdamW, 3 groups, per-parameter LR and decay).
 * Prints steps/s of both and the ratio (goal ≤ 1.05×). Run: npx tsx bench/optimizer-overhead.ts
 */
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '../src/engine/backend.ts';
import { GroupedOptimizer } from '../src/engine/optimizer.ts';

const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const STEPS = Number(process.env['STEPS'] ?? 30);

function mlp(): tf.LayersModel {
  const m = tf.sequential();
  m.add(tf.layers.dense({ inputShape: [784], units: 256, activation: 'relu', name: 'd1' }));
  m.add(tf.layers.dense({ units: 256, activation: 'relu', name: 'd2' }));
  m.add(tf.layers.dense({ units: 10, name: 'out' }));
  return m;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const backend = await selectBackend((process.env['BACKEND'] as 'auto' | 'cpu' | 'wasm' | undefined) ?? 'auto', { trainableClassNames: ['Dense'] });
  tf.randomUniform([1]).dispose();
  const model = mlp();
  const x = tf.randomNormal([64, 784]);
  const y = tf.oneHot(tf.randomUniform([64], 0, 10, 'int32'), 10).toFloat();
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const loss = () => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
  const adam = tf.train.adam(1e-4, 0.9, 0.999, 1e-8);
  const grouped = new GroupedOptimizer({ type: 'adamw', betas: [0.9, 0.999], eps: 1e-8, momentum: 0, nesterov: false });
  const mult = vars.map((_, i) => [0.1, 0.1, 0.5, 0.5, 1, 1][i] ?? 1);
  const wd = vars.map((v) => (v.shape.length === 1 ? 0 : 0.01));

  const stepAdam = () => {
    const { value, grads } = tf.variableGrads(loss, vars);
    adam.applyGradients(Object.entries(grads).map(([name, tensor]) => ({ name, tensor })));
    value.dataSync();
    value.dispose();
    tf.dispose(grads);
  };
  const stepGrouped = () => {
    const { value, grads } = tf.variableGrads(loss, vars);
    grouped.step(vars.map((v, i) => ({ name: v.name, variable: v, grad: grads[v.name] as tf.Tensor, lr: 1e-4 * (mult[i] ?? 1), weightDecay: wd[i] ?? 0 })));
    value.dataSync();
    value.dispose();
    tf.dispose(grads);
  };
  const time = (f: () => void) => {
    const t0 = performance.now();
    for (let i = 0; i < STEPS; i++) f();
    return (performance.now() - t0) / STEPS;
  };
  // warm both paths up (kernel compilation, state allocation)
  time(stepAdam);
  time(stepGrouped);
  const a: number[] = [];
  const g: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    // alternate so drift on a shared machine hits both alike
    a.push(time(stepAdam));
    g.push(time(stepGrouped));
  }
  const ma = median(a);
  const mg = median(g);
  const before = tf.memory().numTensors;
  time(stepGrouped);
  const leak = tf.memory().numTensors - before;
  console.log(`backend: ${backend.name} (${backend.reason})`);
  console.log(`MLP 784-256-256-10, batch 64, ${ROUNDS}×${STEPS} steps each, median per step:`);
  console.log(`  tf.train.adam           ${ma.toFixed(2)} ms/step (${(1000 / ma).toFixed(1)} steps/s)`);
  console.log(`  GroupedOptimizer adamw  ${mg.toFixed(2)} ms/step (${(1000 / mg).toFixed(1)} steps/s), 3 groups, per-param LR + decay`);
  console.log(`  ratio grouped / tf.train.adam = ${(mg / ma).toFixed(3)}× (goal ≤ 1.05×)`);
  console.log(`  tensors leaked per ${STEPS} steps: ${leak}`);
}

void main();
