/**
 * The streaming image pipeline at scale. Generates a 50,000-image folder (10 classes, PNG and
 * JPEG, 96–224 px) in a temp dir — a few hundred distinct images encoded with sharp, hard-linked
 * to reach the count, so generation takes seconds — and a tiny conv net at 96×96×3. Reports:
 *
 * - decoders: ms per image for jpeg-js/pngjs and sharp (one thread, decode + resize to 96 px),
 *   against the ms of one training step at batch 32;
 * - a 1-epoch run over the 50,000 images, streamed, in a child process: peak RSS
 *   (process.resourceUsage().maxRSS; goal ≤ 1 GB — held in memory the floats alone would be
 *   5.5 GB), time from the start of `train` to the first step (goal ≤ 5 s), steps/s;
 * - steps/s of a run over 2,000 of the images streamed vs held in memory (goal ≥ 0.9×).
 *
 * Run: nice -n 10 npx tsx bench/data-scale.ts [--images 50000] [--subset 2000] [--threads N] [--steps N]
 * `--steps N` stops the big run after N steps (a cancel) where a whole epoch takes too long on a
 * busy machine; memory is bounded by design, so peak RSS is reached within the first batches.
 * Hard links share their page-cache pages: reading is cheaper than for 50,000 distinct files
 * on a cold disk; decoding (the cost that matters here) is the same.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Plan } from '../src/core/plan.ts';
import type { RunReport } from '../src/core/progress.ts';
import { seededRng } from '../src/core/random.ts';
import { normalization, toModelInput } from '../src/engine/augment.ts';
import { selectBackend } from '../src/engine/backend.ts';
import type { LoadOptions } from '../src/engine/data.ts';
import { decodeImageWith, loadSharp, toChannels, type DecoderName } from '../src/engine/image.ts';
import { saveModel } from '../src/engine/model-io.ts';
import { train } from '../src/engine/trainer.ts';

const SIZE = 96;
const CLASSES = 10;
const DISTINCT = 400;
const BATCH = 32;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function tinyConvNet(): tf.LayersModel {
  const m = tf.sequential({ name: 'tiny' });
  m.add(tf.layers.conv2d({ inputShape: [SIZE, SIZE, 3], filters: 8, kernelSize: 3, strides: 2, activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, activation: 'relu', name: 'conv2', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  m.add(tf.layers.globalAveragePooling2d({ name: 'pool' }));
  m.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
  return m;
}

/** `DISTINCT` encoded images (half PNG, half JPEG) of smooth colour ramps plus noise. */
async function distinctImages(dir: string): Promise<string[]> {
  const sharp = loadSharp();
  if (sharp === undefined) throw new Error('the benchmark encodes its images with sharp, which does not load here');
  const encode = (await import('sharp')).default;
  const rng = seededRng(1);
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < DISTINCT; i++) {
    const w = 96 + Math.floor(rng() * 129);
    const h = 96 + Math.floor(rng() * 129);
    const px = Buffer.alloc(w * h * 3);
    const [a, b, c] = [rng() * 255, rng() * 255, rng() * 255];
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      const o = 3 * (y * w + x);
      px[o] = (a + (x * 200) / w + rng() * 40) & 255;
      px[o + 1] = (b + (y * 200) / h + rng() * 40) & 255;
      px[o + 2] = (c + rng() * 60) & 255;
    }
    const img = encode(px, { raw: { width: w, height: h, channels: 3 } });
    const file = path.join(dir, `src_${i}.${i % 2 === 0 ? 'png' : 'jpg'}`);
    writeFileSync(file, i % 2 === 0 ? await img.png().toBuffer() : await img.jpeg({ quality: 90 }).toBuffer());
    files.push(file);
  }
  return files;
}

function linkFolder(root: string, distinct: string[], count: number): void {
  for (let c = 0; c < CLASSES; c++) mkdirSync(path.join(root, `class_${c}`), { recursive: true });
  for (let i = 0; i < count; i++) {
    const src = distinct[i % distinct.length]!;
    linkSync(src, path.join(root, `class_${i % CLASSES}`, `img_${String(i).padStart(6, '0')}${path.extname(src)}`));
  }
}

interface ChildResult {
  maxRssMb: number;
  firstStepSeconds: number;
  stepsPerSecond: number;
  steps: number;
  report: Pick<RunReport, 'data' | 'backend'>;
}

/** One training run in a fresh process, so its peak RSS is its own. */
function runChild(workDir: string, images: string, opts: LoadOptions, maxSteps = 0): ChildResult {
  const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--child', workDir, images, JSON.stringify(opts), String(maxSteps)], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${line}`);
  return JSON.parse(line) as ChildResult;
}

async function child(workDir: string, images: string, opts: LoadOptions, maxSteps: number): Promise<void> {
  const planFile = path.join(workDir, `plan-${path.basename(images)}.json`);
  const plan: Plan = { model: 'model/model.json', data: { train: path.relative(workDir, images), shuffle: true, seed: 0 }, training: { epochs: 1, batchSize: BATCH, lr: 1e-3 } };
  writeFileSync(planFile, JSON.stringify(plan));
  const t0 = performance.now();
  let firstStep: number | undefined;
  const stop = new AbortController();
  const outcome = await train({
    signal: stop.signal,
    planFile,
    backend: 'auto',
    outDir: path.join(workDir, 'runs', `${path.basename(images)}-${opts.pipeline ?? 'auto'}-${Date.now()}`),
    progressIntervalMs: 0,
    dataOptions: opts,
    onEvent: (e) => {
      if (e.kind === 'step' && firstStep === undefined) firstStep = performance.now();
      if (e.kind === 'step' && maxSteps > 0 && e.step >= maxSteps) stop.abort();
    },
  });
  const r = outcome.report;
  const result: ChildResult = {
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    firstStepSeconds: ((firstStep ?? NaN) - t0) / 1000,
    stepsPerSecond: r.timings.stepsPerSecond,
    steps: r.timings.steps,
    report: { data: r.data, backend: r.backend },
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

async function decoderTimes(files: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const norm = normalization('unit', 3);
  const decoders: DecoderName[] = loadSharp() === undefined ? ['js'] : ['js', 'sharp'];
  for (const decoder of decoders) {
    for (const ext of ['.png', '.jpg']) {
      const some = files.filter((f) => f.endsWith(ext)).slice(0, 60);
      const bytes = some.map((f) => readFileSync(f));
      let t = 0;
      for (const [i, b] of bytes.entries()) {
        const t0 = performance.now();
        const img = await decodeImageWith(decoder, b);
        toModelInput(toChannels(img, 3), img.height, img.width, 3, [SIZE, SIZE], norm);
        // the first few warm the decoder up
        if (i >= 10) t += performance.now() - t0;
      }
      out[`${decoder} ${ext.slice(1)}`] = t / (bytes.length - 10);
    }
  }
  return out;
}

function stepMs(model: tf.LayersModel): number {
  const opt = tf.train.adam(1e-3);
  const x = tf.randomUniform([BATCH, SIZE, SIZE, 3]);
  const y = tf.oneHot(tf.zeros([BATCH], 'int32'), CLASSES);
  const step = (): void => {
    const cost = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, true);
    cost?.dataSync();
    cost?.dispose();
  };
  for (let i = 0; i < 3; i++) step();
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) step();
  const ms = (performance.now() - t0) / 10;
  tf.dispose([x, y]);
  return ms;
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    await child(process.argv[3]!, process.argv[4]!, JSON.parse(process.argv[5]!) as LoadOptions, Number(process.argv[6] ?? 0));
    return;
  }
  const count = flag('images', 50_000);
  const subset = flag('subset', 2_000);
  const threadsFlag = process.argv.indexOf('--threads') >= 0 ? flag('threads', 1) : undefined;
  const maxSteps = flag('steps', 0);
  const work = mkdtempSync(path.join(tmpdir(), 'layerwise-data-scale-'));
  try {
    let t0 = performance.now();
    const distinct = await distinctImages(path.join(work, 'distinct'));
    linkFolder(path.join(work, 'big'), distinct, count);
    linkFolder(path.join(work, 'small'), distinct, subset);
    const genSeconds = (performance.now() - t0) / 1000;
    const backend = await selectBackend('auto', { trainableClassNames: ['Conv2D', 'Dense'] });
    const model = tinyConvNet();
    await saveModel(model, path.join(work, 'model'));
    const files = readdirSync(path.join(work, 'distinct')).map((f) => path.join(work, 'distinct', f));
    console.log(`generated ${count.toLocaleString('en-US')} images (${DISTINCT} distinct, hard-linked) + a ${subset}-image subset in ${genSeconds.toFixed(1)} s; backend ${backend.name}`);

    const decode = await decoderTimes(files);
    const step = stepMs(model);
    console.log(`\ntraining step (batch ${BATCH}, ${SIZE}×${SIZE}×3, tiny conv net): ${step.toFixed(1)} ms`);
    console.log('decode + resize to 96 px, one thread, ms per image (× 32 = per batch):');
    for (const [k, v] of Object.entries(decode)) console.log(`  ${k.padEnd(10)} ${v.toFixed(2)} ms  (${(v * BATCH).toFixed(0)} ms per batch)`);
    model.dispose();

    const opts: LoadOptions = threadsFlag === undefined ? {} : { decodeThreads: threadsFlag };
    t0 = performance.now();
    const big = runChild(work, path.join(work, 'big'), opts, maxSteps);
    const bigSeconds = (performance.now() - t0) / 1000;
    console.log(`\n${maxSteps > 0 ? `the first ${maxSteps} steps of ` : ''}1 epoch over ${count.toLocaleString('en-US')} images (${big.report.data?.mode}: ${big.report.data?.reason}; decoder ${big.report.data?.decoder}, ${big.report.data?.decodeThreads} thread(s); backend ${big.report.backend.name}):`);
    console.log(`  peak RSS ${big.maxRssMb.toFixed(0)} MB (goal ≤ 1024; in memory the floats alone: ${((count * SIZE * SIZE * 3 * 4) / 2 ** 30).toFixed(1)} GB)`);
    console.log(`  first step after ${big.firstStepSeconds.toFixed(2)} s (goal ≤ 5)`);
    console.log(`  ${big.steps} of ${Math.ceil(count / BATCH)} steps, ${big.stepsPerSecond.toFixed(2)} steps/s, whole child ${bigSeconds.toFixed(0)} s`);

    const streamed = runChild(work, path.join(work, 'small'), { ...opts, pipeline: 'stream' });
    const memory = runChild(work, path.join(work, 'small'), { ...opts, pipeline: 'memory' });
    console.log(`\n${subset.toLocaleString('en-US')} images, 1 epoch: streamed ${streamed.stepsPerSecond.toFixed(2)} steps/s (first step ${streamed.firstStepSeconds.toFixed(2)} s, RSS ${streamed.maxRssMb.toFixed(0)} MB)` +
      ` vs in memory ${memory.stepsPerSecond.toFixed(2)} steps/s (first step ${memory.firstStepSeconds.toFixed(2)} s, RSS ${memory.maxRssMb.toFixed(0)} MB): ` +
      `${(streamed.stepsPerSecond / memory.stepsPerSecond).toFixed(2)}× (goal ≥ 0.9×)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
