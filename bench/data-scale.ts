/**
 * The streaming pipelines at scale: an image folder and a CSV file too big to hold.
 *
 * Images: a 50,000-image folder (10 classes, PNG and JPEG, 96–224 px) in a temp dir — a few
 * hundred distinct images encoded with sharp, hard-linked to reach the count, so generation takes
 * seconds — and a tiny conv net at 96×96×3. CSV: a generated file of `--csv-rows` rows of 64
 * features and 4 classes, and an MLP. Reports, with the machine's cores and load:
 *
 * - decoders: ms per image through the pipeline's own function (decode + resize to 96 px, one
 *   thread), against the ms of one training step at batch 32;
 * - a 1-epoch run over the 50,000 images in a child process (the engine decides: streamed): peak
 *   RSS (process.resourceUsage().maxRSS; goal ≤ 1 GB — in memory the floats alone would be 5.5 GB),
 *   time from the start of `train` to the first step (goal ≤ 5 s) and where it went, steps/s;
 * - the same for the CSV file streamed and held in memory (peak RSS, time to the first step);
 * - steps/s streamed vs in memory (goal ≥ 0.9×), for a 2,000-image subset — with the tiny conv
 *   net (decoding's worst case: a step that costs next to nothing) and with the real backbone of
 *   examples/mobilenet-fashion (the Keras MobileNetV2 at 96 px, every layer training, a dense 10
 *   head: what a user fine-tunes) — and for the CSV: both loaded in one process, then `--rounds` rounds of about `--round-seconds` each, alternating the
 *   two, reporting the median of each and of the rounds' ratios — one busy moment on a shared
 *   machine moves one round, not the ratio.
 *
 * Run: nice -n 10 npx tsx bench/data-scale.ts [--images 50000] [--subset 2000] [--csv-rows 300000]
 *      [--threads N] [--steps N] [--rounds 5] [--round-seconds 3] [--ratio-only]
 * `--ratio-only` skips the child runs (the big folder, the CSV runs) and measures the ratios.
 * `--steps N` stops the big runs after N steps (a cancel) where a whole epoch takes too long on a
 * busy machine; memory is bounded by design, so peak RSS is reached within the first batches.
 * Hard links share their page-cache pages: reading is cheaper than for 50,000 distinct files
 * on a cold disk; decoding (the cost that matters here) is the same. Run from source, decoding
 * threads start under tsx (they compile their TypeScript); the built extension starts
 * dist/decode-thread.js.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { closeSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Plan } from '../src/core/plan.ts';
import type { RunReport } from '../src/core/progress.ts';
import { seededRng } from '../src/core/random.ts';
import { normalization } from '../src/engine/augment.ts';
import { selectBackend } from '../src/engine/backend.ts';
import { BatchFeed, batchTensors, epochOrder, loadData, type Dataset, type LoadedData, type LoadOptions } from '../src/engine/data.ts';
import { defaultDecodeThreads } from '../src/engine/decode-pool.ts';
import { defaultDecoder, loadSharp, type DecoderName } from '../src/engine/image.ts';
import { loadModel, saveModel } from '../src/engine/model-io.ts';
import { decodeSample, type SampleRecipe } from '../src/engine/samples.ts';
import { train } from '../src/engine/trainer.ts';

const SIZE = 96;
const CLASSES = 10;
const DISTINCT = 400;
const BATCH = 32;

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const BACKBONE = path.resolve('examples/mobilenet-fashion/model/model.json');

/** The real backbone of examples/mobilenet-fashion (96×96×3 in), every layer training, with a dense head. */
async function backboneNet(): Promise<tf.LayersModel> {
  const trunk = await loadModel(BACKBONE);
  for (const layer of trunk.layers) layer.trainable = true;
  const out = tf.layers.dense({ units: CLASSES, activation: 'softmax', name: 'bench_head', kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) })
    .apply(trunk.outputs[0]!) as tf.SymbolicTensor;
  return tf.model({ inputs: trunk.inputs, outputs: out });
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


const CSV_FEATURES = 64;
const CSV_CLASSES = 4;

/** `rows` rows of CSV_FEATURES numbers (3 decimals) and a class k0..k3, written in pieces. */
function generateCsv(file: string, rows: number): void {
  const rng = seededRng(2);
  const fd = openSync(file, 'w');
  try {
    writeSync(fd, [...Array.from({ length: CSV_FEATURES }, (_, j) => `f${j}`), 'label'].join(',') + '\n');
    let piece: string[] = [];
    for (let r = 0; r < rows; r++) {
      const cells = new Array<string>(CSV_FEATURES + 1);
      for (let j = 0; j < CSV_FEATURES; j++) cells[j] = (rng() * 20 - 10).toFixed(3);
      cells[CSV_FEATURES] = `k${r % CSV_CLASSES}`;
      piece.push(cells.join(','));
      if (piece.length === 10_000 || r === rows - 1) {
        writeSync(fd, piece.join('\n') + '\n');
        piece = [];
      }
    }
  } finally {
    closeSync(fd);
  }
}

function mlp(): tf.LayersModel {
  const m = tf.sequential({ name: 'mlp' });
  m.add(tf.layers.dense({ inputShape: [CSV_FEATURES], units: 32, activation: 'relu', name: 'hidden', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  m.add(tf.layers.dense({ units: CSV_CLASSES, activation: 'softmax', name: 'out', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }));
  return m;
}

interface ChildResult {
  maxRssMb: number;
  firstStepSeconds: number;
  /** Seconds from the start of `train` to each preparation milestone (absent when not reached). */
  phases: { listed?: number; ready?: number; prepared?: number };
  stepsPerSecond: number;
  steps: number;
  report: Pick<RunReport, 'data' | 'backend'>;
}

/** One training run in a fresh process, so its peak RSS is its own. */
function runChild(workDir: string, data: string, modelDir: string, opts: LoadOptions, maxSteps = 0): ChildResult {
  const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--child', workDir, data, modelDir, JSON.stringify(opts), String(maxSteps)], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (r.status !== 0) throw new Error(`child failed (${r.status}): ${line}`);
  return JSON.parse(line) as ChildResult;
}

async function child(workDir: string, data: string, modelDir: string, opts: LoadOptions, maxSteps: number): Promise<void> {
  const planFile = path.join(workDir, `plan-${path.basename(data)}.json`);
  const plan: Plan = {
    model: `${modelDir}/model.json`,
    data: { train: path.relative(workDir, data), shuffle: true, seed: 0 },
    training: { epochs: 1, batchSize: BATCH, lr: 1e-3 },
  };
  writeFileSync(planFile, JSON.stringify(plan));
  const t0 = performance.now();
  const since = (): number => (performance.now() - t0) / 1000;
  let firstStep: number | undefined;
  const phases: ChildResult['phases'] = {};
  const stop = new AbortController();
  const outcome = await train({
    signal: stop.signal,
    planFile,
    backend: 'auto',
    outDir: path.join(workDir, 'runs', `${path.basename(data)}-${opts.pipeline ?? 'auto'}-${Date.now()}`),
    progressIntervalMs: 0,
    dataOptions: opts,
    onEvent: (e) => {
      // the last class folder counted ends the listing; in memory, every image is then decoded before "ready"
      if (e.kind === 'data' && e.phase === 'counting') phases.listed = since();
      if (e.kind === 'data' && e.phase === 'ready') phases.ready ??= since();
      // the trainer's first message comes once the model and data are prepared
      if (e.kind === 'log' && e.message.startsWith('backend ')) phases.prepared ??= since();
      if (e.kind === 'step' && firstStep === undefined) firstStep = since();
      if (e.kind === 'step' && maxSteps > 0 && e.step >= maxSteps) stop.abort();
    },
  });
  const r = outcome.report;
  const result: ChildResult = {
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    firstStepSeconds: firstStep ?? NaN,
    phases,
    stepsPerSecond: r.timings.stepsPerSecond,
    steps: r.timings.steps,
    report: { data: r.data, backend: r.backend },
  };
  process.stdout.write(JSON.stringify(result) + '\n');
}

/** ms per image through the pipeline's own per-sample function, on one thread. */
async function decoderTimes(files: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  // each decoder that loads here (one that does not would fall back to the pure-JS one)
  const decoders = (['js', 'sharp', 'image-rs'] as DecoderName[]).filter((d) => d === 'js' || d === defaultDecoder() || (d === 'sharp' && loadSharp() !== undefined));
  for (const decoder of decoders) {
    const recipe: SampleRecipe = { size: [SIZE, SIZE], channels: 3, norm: normalization('unit', 3), seed: 0, decoder };
    for (const ext of ['.png', '.jpg']) {
      const some = files.filter((f) => f.endsWith(ext)).slice(0, 60);
      let t = 0;
      for (const [i, f] of some.entries()) {
        const t0 = performance.now();
        await decodeSample(recipe, f);
        // the first few warm the decoder up
        if (i >= 10) t += performance.now() - t0;
      }
      out[`${decoder} ${ext.slice(1)}`] = t / (some.length - 10);
    }
  }
  return out;
}

function trainStepFor(model: tf.LayersModel): (x: tf.Tensor, y: tf.Tensor) => void {
  const opt = tf.train.adam(1e-3);
  return (x, y) => {
    const cost = opt.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar, true);
    cost?.dataSync();
    cost?.dispose();
  };
}

function stepMs(model: tf.LayersModel, shape: number[], classes: number): number {
  const step = trainStepFor(model);
  const x = tf.randomUniform([BATCH, ...shape]);
  const y = tf.oneHot(tf.zeros([BATCH], 'int32'), classes);
  for (let i = 0; i < 3; i++) step(x, y);
  const t0 = performance.now();
  for (let i = 0; i < 10; i++) step(x, y);
  const ms = (performance.now() - t0) / 10;
  tf.dispose([x, y]);
  return ms;
}

const median = (v: number[]): number => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/**
 * Steps/s of the same training loop over a dataset held in memory and the same one streamed, in
 * alternating rounds of about `seconds` each (the order swaps every round) after a warm-up round of
 * each.
 */
async function alternate(memory: Dataset, streamed: Dataset, model: tf.LayersModel, rounds: number, seconds: number): Promise<{ memory: number[]; stream: number[] }> {
  const step = trainStepFor(model);
  const out = { memory: [] as number[], stream: [] as number[] };
  for (let r = -1; r < rounds; r++) {
    const order: Array<['memory' | 'stream', Dataset]> = [['memory', memory], ['stream', streamed]];
    if (r % 2 !== 0) order.reverse();
    for (const [mode, ds] of order) {
      const feed = new BatchFeed(ds, epochOrder(ds.n, true, 0, r + 1), BATCH, { epoch: r + 1, augment: true });
      const t0 = performance.now();
      let n = 0;
      // at least 5 steps, then until the round has lasted `seconds` (a round of tiny steps is too short to time)
      for (let b = 0; b < feed.batches && (b < 5 || performance.now() - t0 < seconds * 1000); b++, n++) {
        const batch = await feed.get(b);
        const { x, y } = batchTensors(batch.ds, batch.indices);
        step(x, y);
        tf.dispose([x, y]);
        // as the trainer does between steps
        await new Promise((resolve) => setImmediate(resolve));
      }
      const rate = n / ((performance.now() - t0) / 1000);
      // the batches decoded ahead must not run into the other mode's round
      await feed.drain();
      if (r >= 0) out[mode].push(rate);
    }
  }
  return out;
}

function loadAverage(): string {
  return loadavg().map((v) => v.toFixed(2)).join(', ');
}

function phaseText(c: ChildResult): string {
  const p = c.phases;
  const parts: string[] = [];
  let at = 0;
  const add = (label: string, t: number | undefined): void => {
    if (t === undefined) return;
    parts.push(`${label} ${(t - at).toFixed(2)} s`);
    at = t;
  };
  if (p.listed === undefined) add('backend, model and indexing the file', p.prepared);
  else {
    add('backend, model and listing the files', p.listed);
    add(c.report.data?.mode === 'memory' ? 'decoding them all' : 'making the streams', p.ready);
    add('the rest of the preparation', p.prepared);
  }
  add('the first batch (threads start, decode) and step', c.firstStepSeconds);
  return parts.join(' · ');
}

/** ms to read one batch of parsed rows at random places (the training thread does it). */
function csvBatchMs(streamed: Dataset): number {
  const s = streamed.stream;
  if (s?.kind !== 'csv') throw new Error('the CSV is not streamed');
  const order = epochOrder(streamed.n, true, 9, 0);
  const t0 = performance.now();
  const batches = 50;
  for (let b = 0; b < batches; b++) {
    s.rows.read(order.slice(b * BATCH, (b + 1) * BATCH).map((r) => s.ids[r]!));
  }
  return (performance.now() - t0) / batches;
}

/** The runs in child processes: the big image folder, the CSV streamed and in memory. */
async function children(work: string, count: number, csvRows: number, csvFile: string, opts: LoadOptions, maxSteps: number): Promise<void> {
  const t0 = performance.now();
  const big = runChild(work, path.join(work, 'big'), 'model', opts, maxSteps);
  const bigSeconds = (performance.now() - t0) / 1000;
  const d = big.report.data;
  console.log(`\n${maxSteps > 0 ? `the first ${maxSteps} steps of ` : ''}1 epoch over ${count.toLocaleString('en-US')} images (${d?.mode}: ${d?.reason}; decoder ${d?.decoder}, ${d?.decodeThreads} thread(s); backend ${big.report.backend.name}):`);
  console.log(`  peak RSS ${big.maxRssMb.toFixed(0)} MB (goal ≤ 1024; in memory the floats alone: ${((count * SIZE * SIZE * 3 * 4) / 2 ** 30).toFixed(1)} GB)`);
  console.log(`  first step after ${big.firstStepSeconds.toFixed(2)} s (goal ≤ 5): ${phaseText(big)}`);
  console.log(`  ${big.steps} of ${Math.ceil(count / BATCH)} steps, ${big.stepsPerSecond.toFixed(2)} steps/s, whole child ${bigSeconds.toFixed(0)} s`);

  console.log(`\n${csvRows.toLocaleString('en-US')}-row CSV, ${maxSteps > 0 ? `the first ${maxSteps} steps of ` : ''}1 epoch:`);
  for (const pipeline of ['stream', 'memory'] as const) {
    const c = runChild(work, csvFile, 'csv-model', { ...opts, pipeline }, maxSteps);
    console.log(`  ${pipeline === 'stream' ? 'streamed ' : 'in memory'}: peak RSS ${c.maxRssMb.toFixed(0)} MB, first step after ${c.firstStepSeconds.toFixed(2)} s (${phaseText(c)}), ` +
      `${c.stepsPerSecond.toFixed(1)} steps/s`);
  }
  console.log(`  (the features in memory: ${((csvRows * CSV_FEATURES * 4) / 2 ** 20).toFixed(0)} MB; streamed, memory holds 4 bytes a row and the parsed rows are in a scratch file)`);
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const [workDir, data, modelDir, opts, steps] = process.argv.slice(3);
    await child(workDir!, data!, modelDir!, JSON.parse(opts!) as LoadOptions, Number(steps ?? 0));
    return;
  }
  const count = flag('images', 50_000);
  const subset = flag('subset', 2_000);
  const csvRows = flag('csv-rows', 300_000);
  const threadsFlag = process.argv.indexOf('--threads') >= 0 ? flag('threads', 1) : undefined;
  const maxSteps = flag('steps', 0);
  const rounds = flag('rounds', 5);
  const roundSeconds = flag('round-seconds', 3);
  const ratioOnly = process.argv.includes('--ratio-only');
  console.log(`node ${process.version}, ${availableParallelism()} cores, load average ${loadAverage()} (1, 5, 15 min)`);
  console.log(`command: ${['npx tsx bench/data-scale.ts', ...process.argv.slice(2)].join(' ')}`);
  const work = mkdtempSync(path.join(tmpdir(), 'layerwise-data-scale-'));
  try {
    let t0 = performance.now();
    const distinct = await distinctImages(path.join(work, 'distinct'));
    linkFolder(path.join(work, 'big'), distinct, count);
    linkFolder(path.join(work, 'small'), distinct, subset);
    const genSeconds = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const csvFile = path.join(work, 'table.csv');
    generateCsv(csvFile, csvRows);
    const csvSeconds = (performance.now() - t0) / 1000;
    const backend = await selectBackend('auto', { trainableClassNames: ['Conv2D', 'Dense'] });
    const conv = tinyConvNet();
    await saveModel(conv, path.join(work, 'model'));
    const table = mlp();
    await saveModel(table, path.join(work, 'csv-model'));
    const files = readdirSync(path.join(work, 'distinct')).map((f) => path.join(work, 'distinct', f));
    console.log(`generated ${count.toLocaleString('en-US')} images (${DISTINCT} distinct, hard-linked) + a ${subset}-image subset in ${genSeconds.toFixed(1)} s; ` +
      `a CSV of ${csvRows.toLocaleString('en-US')} rows × ${CSV_FEATURES} features (${(statSync(csvFile).size / 2 ** 20).toFixed(0)} MB) in ${csvSeconds.toFixed(1)} s; backend ${backend.name}`);

    const decode = await decoderTimes(files);
    const step = stepMs(conv, [SIZE, SIZE, 3], CLASSES);
    const chosen = decode[`${defaultDecoder()} jpg`]! / 2 + decode[`${defaultDecoder()} png`]! / 2;
    console.log(`\ntraining step (batch ${BATCH}, ${SIZE}×${SIZE}×3, tiny conv net): ${step.toFixed(1)} ms; CSV MLP step (batch ${BATCH}, ${CSV_FEATURES} features): ${stepMs(table, [CSV_FEATURES], CSV_CLASSES).toFixed(2)} ms`);
    console.log('decode + resize to 96 px, one thread, ms per image (× 32 = per batch):');
    for (const [k, v] of Object.entries(decode)) console.log(`  ${k.padEnd(13)} ${v.toFixed(2)} ms  (${(v * BATCH).toFixed(0)} ms per batch)`);
    // the kernel threads run a step on every core, so decoding does not come free: it takes its CPU from the steps
    const threads = threadsFlag ?? defaultDecodeThreads();
    const cores = availableParallelism();
    const decodeCpu = chosen * BATCH;
    const bound = (ms: number): string => ((ms * cores) / (ms * cores + decodeCpu)).toFixed(2);
    console.log(`  a batch (half PNG, half JPEG) costs ${decodeCpu.toFixed(0)} ms of decoding (${defaultDecoder()}) on ${threads} thread(s); a step takes ${step.toFixed(0)} ms on ${cores} core(s): ` +
      `streaming can reach about ${bound(step)}× of in memory (step × cores / (step × cores + decoding))`);
    const backbone = await backboneNet();
    const backboneStep = stepMs(backbone, [SIZE, SIZE, 3], CLASSES);
    console.log(`  the real backbone (MobileNetV2, 96 px, every layer training): a step takes ${backboneStep.toFixed(0)} ms: streaming can reach about ${bound(backboneStep)}×`);

    const opts: LoadOptions = threadsFlag === undefined ? {} : { decodeThreads: threadsFlag };
    if (!ratioOnly) await children(work, count, csvRows, csvFile, opts, maxSteps);

    const planFile = path.join(work, 'bench-plan.json');
    const both = async (plan: Plan, shape: Array<number | null>): Promise<[LoadedData, LoadedData]> => [
      await loadData(plan, planFile, work, shape, { ...opts, pipeline: 'memory' }),
      await loadData(plan, planFile, work, shape, { ...opts, pipeline: 'stream' }),
    ];
    const cases: Array<[string, Plan, Array<number | null>, tf.LayersModel]> = [
      [`${subset.toLocaleString('en-US')} images, tiny conv net`, { model: 'model/model.json', data: { train: 'small', seed: 0 } }, [null, SIZE, SIZE, 3], conv],
      [`${subset.toLocaleString('en-US')} images, MobileNetV2`, { model: 'model/model.json', data: { train: 'small', seed: 0 } }, [null, SIZE, SIZE, 3], backbone],
      [`${csvRows.toLocaleString('en-US')}-row CSV`, { model: 'csv-model/model.json', data: { train: 'table.csv', seed: 0 } }, [null, CSV_FEATURES], table],
    ];
    console.log(`\nsteps/s streamed vs in memory: ${rounds} alternating rounds of ${roundSeconds} s each (after a warm-up round), medians:`);
    for (const [label, plan, shape, model] of cases) {
      const [memory, streamed] = await both(plan, shape);
      if (streamed.train.stream?.kind === 'csv') console.log(`  reading a batch of ${BATCH} rows at random places: ${csvBatchMs(streamed.train).toFixed(2)} ms on one thread`);
      const r = await alternate(memory.train, streamed.train, model, rounds, roundSeconds);
      await streamed.pool?.close();
      const m = median(r.memory);
      const s = median(r.stream);
      // each round's two runs are minutes apart at most: their ratio is the least moved by a busy machine
      const paired = median(r.stream.map((v, i) => v / r.memory[i]!));
      console.log(`  ${label}: streamed ${s.toFixed(2)} vs in memory ${m.toFixed(2)} steps/s: ${(s / m).toFixed(2)}×; median of the rounds' ratios ${paired.toFixed(2)}× ` +
        `(goal ≥ 0.9×; ${streamed.pipeline?.decodeThreads} thread(s))`);
      console.log(`    rounds streamed [${r.stream.map((v) => v.toFixed(1)).join(', ')}], in memory [${r.memory.map((v) => v.toFixed(1)).join(', ')}]`);
    }
    console.log(`\nload average at the end ${loadAverage()}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
