/**
 * Writes the small, seeded test fixtures: two tfjs Layers models and two datasets.
 *   test/fixtures/models/mlp   Dense 6→8 relu → BatchNormalization → Dense 8→3
 *   test/fixtures/models/cnn   Conv2D 4×3×3 on 8×8×1 → BN → ReLU → MaxPool → Flatten → Dense 3
 *   test/fixtures/data/mlp     train.csv (60 rows) + val.csv (18 rows), 6 features, 3 classes
 *   test/fixtures/data/shapes  train/<class>/*.png (3 × 6) + val/<class>/*.png (3 × 2), 8×8
 * Run: npx tsx scripts/make-fixtures.ts. Same output on every run (byte for byte).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { seededRng, type Rng } from '../src/core/random.ts';
import { saveModel } from '../src/engine/model-io.ts';

const root = path.join(__dirname, '..', 'test', 'fixtures');

function gaussian(rng: Rng): number {
  // Box–Muller; 1 − u keeps log away from 0
  const u = 1 - rng();
  const v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** BatchNorm statistics that are not the defaults, so a test can tell them from a fresh layer. */
function setBatchNormStats(layer: tf.layers.Layer, rng: Rng): void {
  const units = layer.getWeights()[0]!.shape[0]!;
  const vec = (f: () => number): tf.Tensor => tf.tensor1d(Array.from({ length: units }, f));
  layer.setWeights([
    vec(() => 1 + 0.2 * gaussian(rng)), // gamma
    vec(() => 0.1 * gaussian(rng)), // beta
    vec(() => 0.5 * gaussian(rng)), // moving_mean
    vec(() => 0.5 + rng()), // moving_variance
  ]);
}

function makeMlp(): tf.LayersModel {
  const model = tf.sequential({ name: 'mlp' });
  model.add(tf.layers.dense({
    name: 'dense', inputShape: [6], units: 8, activation: 'relu',
    kernelInitializer: tf.initializers.glorotUniform({ seed: 11 }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: 12 }),
  }));
  model.add(tf.layers.batchNormalization({ name: 'batch_normalization' }));
  model.add(tf.layers.dense({
    name: 'dense_1', units: 3,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 13 }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: 14 }),
  }));
  setBatchNormStats(model.getLayer('batch_normalization'), seededRng(15));
  return model;
}

function makeCnn(): tf.LayersModel {
  const model = tf.sequential({ name: 'cnn' });
  model.add(tf.layers.conv2d({
    name: 'conv2d', inputShape: [8, 8, 1], filters: 4, kernelSize: 3,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 21 }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: 22 }),
  }));
  model.add(tf.layers.batchNormalization({ name: 'batch_normalization' }));
  model.add(tf.layers.reLU({ name: 're_lu' }));
  model.add(tf.layers.maxPooling2d({ name: 'max_pooling2d', poolSize: 2 }));
  model.add(tf.layers.flatten({ name: 'flatten' }));
  model.add(tf.layers.dense({
    name: 'dense', units: 3,
    kernelInitializer: tf.initializers.glorotUniform({ seed: 23 }),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.1, maxval: 0.1, seed: 24 }),
  }));
  setBatchNormStats(model.getLayer('batch_normalization'), seededRng(25));
  return model;
}

const CSV_CLASSES = ['alpha', 'beta', 'gamma'];

function csvRows(perClass: number, rng: Rng): string {
  // class k's mean is +1.5 on features 2k and 2k+1, so the classes are separable but overlap a little
  const lines = ['f1,f2,f3,f4,f5,f6,species'];
  for (let i = 0; i < perClass * CSV_CLASSES.length; i++) {
    const k = i % CSV_CLASSES.length;
    const f = Array.from({ length: 6 }, (_, j) => (Math.floor(j / 2) === k ? 1.5 : 0) + 0.6 * gaussian(rng));
    lines.push([...f.map((v) => v.toFixed(3)), CSV_CLASSES[k]].join(','));
  }
  return lines.join('\n') + '\n';
}

const SHAPES: Record<string, (y: number, x: number) => boolean> = {
  circle: (y, x) => Math.abs(Math.hypot(y - 3.5, x - 3.5) - 2.5) < 0.8,
  cross: (y, x) => y === x || y === 7 - x,
  square: (y, x) => (y === 1 || y === 6 || x === 1 || x === 6) && y >= 1 && y <= 6 && x >= 1 && x <= 6,
};

type PngKind = 'gray' | 'rgb' | 'rgba';

/** An 8×8 shape with noise; `rgb` tints it red, `rgba` adds a partly transparent corner. */
function shapePng(shape: (y: number, x: number) => boolean, kind: PngKind, rng: Rng): Buffer {
  const png = new PNG({ width: 8, height: 8 });
  for (let y = 0; y < 8; y++) {
    for (let x = 0; x < 8; x++) {
      const v = Math.max(0, Math.min(255, Math.round((shape(y, x) ? 210 : 30) + 25 * gaussian(rng))));
      const o = 4 * (y * 8 + x);
      png.data[o] = v;
      png.data[o + 1] = kind === 'rgb' ? Math.round(v * 0.6) : v;
      png.data[o + 2] = kind === 'rgb' ? Math.round(v * 0.3) : v;
      png.data[o + 3] = kind === 'rgba' && y < 2 && x < 2 ? 128 : 255;
    }
  }
  const colorType = kind === 'gray' ? 0 : kind === 'rgb' ? 2 : 6;
  return PNG.sync.write(png, { colorType });
}

function writeImageFolder(dir: string, perClass: number, kinds: PngKind[], rng: Rng): void {
  for (const [name, shape] of Object.entries(SHAPES)) {
    mkdirSync(path.join(dir, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      writeFileSync(path.join(dir, name, `img_${i}.png`), shapePng(shape, kinds[i % kinds.length]!, rng));
    }
  }
}

async function main(): Promise<void> {
  await tf.setBackend('cpu');
  for (const d of ['models', 'data']) rmSync(path.join(root, d), { recursive: true, force: true });

  await saveModel(makeMlp(), path.join(root, 'models', 'mlp'));
  await saveModel(makeCnn(), path.join(root, 'models', 'cnn'));

  const csvDir = path.join(root, 'data', 'mlp');
  mkdirSync(csvDir, { recursive: true });
  const rng = seededRng(31);
  writeFileSync(path.join(csvDir, 'train.csv'), csvRows(20, rng));
  writeFileSync(path.join(csvDir, 'val.csv'), csvRows(6, rng));

  const imgRng = seededRng(41);
  writeImageFolder(path.join(root, 'data', 'shapes', 'train'), 6, ['gray', 'gray', 'gray', 'gray', 'rgb', 'rgba'], imgRng);
  writeImageFolder(path.join(root, 'data', 'shapes', 'val'), 2, ['gray', 'rgb'], imgRng);
  console.log(`fixtures written under ${root}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
