// The streaming image pipeline: the same batches whatever the thread count, augmentation only in
// training, the same samples streamed as held in memory, and PNG decoders that agree.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import type { DataSpec, Plan } from '../../src/core/plan.ts';
import { seededRng } from '../../src/core/random.ts';
import { BatchFeed, batchTensors, epochOrder, loadData, PREFETCH_BATCHES, type Dataset, type LoadOptions } from '../../src/engine/data.ts';
import { evaluate, train } from '../../src/engine/trainer.ts';
import { lossSpecFor } from '../../src/engine/forward.ts';
import { loadModel } from '../../src/engine/model-io.ts';
import { augmentPreview, toJpegDataUrl } from '../../src/engine/augment-preview.ts';

const fixtures = path.join(__dirname, '..', 'fixtures');

before(async () => {
  await tf.setBackend('cpu');
});

/** 3 classes × 8 images, 10–20 px, PNG and JPEG, grey and colour: fixed pixels from a seed. */
function imageFolder(): { root: string; planFile: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-stream-'));
  const rng = seededRng(11);
  for (const [c, cls] of ['a', 'b', 'c'].entries()) {
    mkdirSync(path.join(root, 'images', cls), { recursive: true });
    for (let i = 0; i < 8; i++) {
      const w = 10 + Math.floor(rng() * 11);
      const h = 10 + Math.floor(rng() * 11);
      const data = Buffer.alloc(w * h * 4);
      for (let p = 0; p < w * h; p++) {
        const base = 60 * c + 40 * rng();
        data.set([base + 80 * (p % w) / w, base, i % 2 === 0 ? base : 255 - base, 255], 4 * p);
      }
      const file = path.join(root, 'images', cls, `img_${i}`);
      if (i % 3 === 0) writeFileSync(`${file}.jpg`, jpeg.encode({ width: w, height: h, data }, 90).data);
      else {
        const png = new PNG({ width: w, height: h });
        data.copy(png.data);
        writeFileSync(`${file}.png`, PNG.sync.write(png));
      }
    }
  }
  cpSync(path.join(fixtures, 'models', 'cnn'), path.join(root, 'models', 'cnn'), { recursive: true });
  return { root, planFile: path.join(root, 'layerwise.json') };
}

const AUGMENT = { randomResizedCrop: { scale: [0.5, 1] as [number, number] }, horizontalFlip: true, rotation: 10, translate: 0.1, brightness: 0.2, contrast: 0.2 };

function plan(data: Partial<DataSpec>, extra: Partial<Plan> = {}): Plan {
  return { model: 'models/cnn/model.json', data: { train: 'images', channels: 1, seed: 5, ...data }, ...extra };
}

async function batches(ds: Dataset, epoch: number, augment: boolean): Promise<Float32Array[]> {
  const feed = new BatchFeed(ds, epochOrder(ds.n, true, 5, epoch), 5, { epoch, augment });
  const out: Float32Array[] = [];
  for (let b = 0; b < feed.batches; b++) {
    const batch = await feed.get(b);
    const { x, y } = batchTensors(batch.ds, batch.indices);
    out.push(Float32Array.from([...x.dataSync(), ...y.dataSync()]));
    x.dispose();
    y.dispose();
  }
  return out;
}

async function load(ws: { root: string; planFile: string }, p: Plan, opts: LoadOptions): Promise<Awaited<ReturnType<typeof loadData>>> {
  return loadData(p, ws.planFile, ws.root, [null, 8, 8, 1], opts);
}

test('same seed, 1 or 4 decoding threads (or none): identical augmented batches in every epoch, with each decoder', async () => {
  const ws = imageFolder();
  const p = plan({ augment: AUGMENT });
  for (const decoder of ['js', 'image-rs'] as const) {
    const runs = [];
    for (const decodeThreads of [0, 1, 4]) {
      const d = await load(ws, p, { decodeThreads, decoder });
      assert.equal(d.pipeline?.mode, 'stream');
      assert.match(d.pipeline!.reason, /data\.augment is on/);
      runs.push([...(await batches(d.train, 0, true)), ...(await batches(d.train, 1, true))]);
      await d.pool?.close();
    }
    assert.deepEqual(runs[1], runs[0], decoder);
    assert.deepEqual(runs[2], runs[0], decoder);
    // and the epochs differ: each (epoch, sample) draws its own transform
    const perEpoch = runs[0]!.length / 2;
    assert.notDeepEqual(runs[0]!.slice(0, perEpoch), runs[0]!.slice(perEpoch));
  }
});

test('same seed, 1 or 4 decoding threads: identical final weights after training with augmentation', async () => {
  const ws = imageFolder();
  writeFileSync(ws.planFile, JSON.stringify(plan({ augment: AUGMENT, validationSplit: 0.25 }, { training: { epochs: 2, batchSize: 4, seed: 3 } })));
  const outs = [];
  for (const decodeThreads of [1, 4]) {
    // the default decoder: the fastest that loads here
    const o = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', `t${decodeThreads}`), dataOptions: { decodeThreads } });
    assert.equal(o.report.data?.mode, 'stream');
    assert.equal(o.report.data?.augment, true);
    assert.equal(o.report.data?.decodeThreads, decodeThreads);
    outs.push(o);
  }
  assert.ok(readFileSync(path.join(outs[0]!.outDir, 'weights.bin')).equals(readFileSync(path.join(outs[1]!.outDir, 'weights.bin'))));
  assert.deepEqual(outs[0]!.report.epochs.map((e) => e.trainLoss), outs[1]!.report.epochs.map((e) => e.trainLoss));
});

test('an augmented run cancelled mid-epoch and resumed ends with the weights of an uninterrupted one', async () => {
  const ws = imageFolder();
  writeFileSync(ws.planFile, JSON.stringify(plan({ augment: AUGMENT, validationSplit: 0.25 }, { training: { epochs: 2, batchSize: 4, seed: 3 } })));
  const whole = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', 'whole'), dataOptions: { decodeThreads: 1 } });
  const controller = new AbortController();
  const outDir = path.join(ws.root, 'runs', 'resumed');
  // 18 training images in batches of 4: step 7 is the second batch of epoch 2
  const stopped = await train({ planFile: ws.planFile, backend: 'cpu', outDir, dataOptions: { decodeThreads: 1 }, progressIntervalMs: 0, signal: controller.signal, onEvent: (e) => {
    if (e.kind === 'step' && e.step === 7) controller.abort();
  } });
  assert.equal(stopped.report.stopped, 'cancelled');
  const resumed = await train({ planFile: ws.planFile, backend: 'cpu', resumeFrom: outDir, dataOptions: { decodeThreads: 2 } });
  assert.equal(resumed.report.stopped, 'completed');
  assert.deepEqual(resumed.report.epochs.map((e) => [e.trainLoss, e.valLoss]), whole.report.epochs.map((e) => [e.trainLoss, e.valLoss]));
  assert.ok(readFileSync(path.join(resumed.outDir, 'weights.bin')).equals(readFileSync(path.join(whole.outDir, 'weights.bin'))));
});

test('with augmentation the report says, per stage with frozen layers, that they were not cached and why; held in memory they are', async () => {
  const ws = imageFolder();
  const staged = (data: Partial<DataSpec>): string => JSON.stringify(plan(data, {
    groups: [{ name: 'body', layers: ['conv2d', 'batch_normalization'] }, { name: 'head', layers: ['dense'] }],
    unfreeze: { stages: [{ epochs: 1, train: ['head'] }, { epochs: 1, train: 'all' }] },
    training: { batchSize: 8 },
  }));
  const runs = [];
  for (const [name, data] of [['augment', { augment: AUGMENT }], ['memory', {}]] as const) {
    writeFileSync(ws.planFile, staged(data));
    const logs: string[] = [];
    const o = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', name), dataOptions: { decodeThreads: 1 }, onEvent: (e) => e.kind === 'log' && logs.push(e.message) });
    runs.push({ stages: o.report.stages, logs });
  }
  const [augmented, memory] = runs;
  assert.deepEqual(augmented!.stages[0]!.frozenCache, { cached: false, reason: 'data.augment is on, so the inputs differ every epoch' });
  assert.equal(memory!.stages[0]!.frozenCache?.cached, true);
  // stage 2 trains every layer: nothing frozen, nothing to report or log
  for (const r of runs) {
    assert.equal(r.stages[1]!.frozenCache, undefined);
    assert.deepEqual(r.logs.filter((m) => /^stage 2: frozen layers/.test(m)), []);
  }
});

test('augmentation touches training batches only: validation batches are the plain resize', async () => {
  const ws = imageFolder();
  const augmented = await load(ws, plan({ augment: AUGMENT, validationSplit: 0.25 }), { decodeThreads: 1, decoder: 'js' });
  const plain = await load(ws, plan({ validationSplit: 0.25 }), { decodeThreads: 1, decoder: 'js', pipeline: 'memory' });
  assert.equal(plain.pipeline?.mode, 'memory');
  // validation (augment: false, as evaluate asks) = the in-memory samples
  assert.deepEqual(await batches(augmented.validation!, 0, false), await batches(plain.validation!, 0, false));
  // training with augment differs from the same order without
  assert.notDeepEqual(await batches(augmented.train, 0, true), await batches(plain.train, 0, false));
  await augmented.pool?.close();
});

test('a run with augmentation scores validation on the plain images: its val loss is the saved model\'s on the set loaded without augment', async () => {
  const ws = imageFolder();
  writeFileSync(ws.planFile, JSON.stringify(plan({ augment: AUGMENT, validationSplit: 0.25 }, { training: { epochs: 1, batchSize: 4 } })));
  const o = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', 'val'), dataOptions: { decodeThreads: 1 } });
  const reported = o.report.epochs[0]!.valLoss!;
  const plain = await load(ws, plan({ validationSplit: 0.25 }), { pipeline: 'memory' });
  const model = await loadModel(path.join(o.outDir, 'model.json'));
  const scored = await evaluate(model, lossSpecFor(model, 'classification'), plain.validation!, 4);
  model.dispose();
  assert.ok(Math.abs(scored.loss - reported) <= 1e-6 * Math.max(1, reported), `reported ${reported}, plain validation ${scored.loss}`);
});

test('streamed and in-memory loading give the same samples (no augmentation)', async () => {
  const ws = imageFolder();
  const memory = await load(ws, plan({ normalize: 'symmetric' }), { decodeThreads: 1, decoder: 'js' });
  assert.equal(memory.pipeline?.mode, 'memory');
  assert.match(memory.pipeline!.reason, /within the in-memory limit/);
  const streamed = await load(ws, plan({ normalize: 'symmetric' }), { decodeThreads: 2, decoder: 'js', memoryLimitBytes: 1024 });
  assert.equal(streamed.pipeline?.mode, 'stream');
  assert.match(streamed.pipeline!.reason, /above the in-memory limit/);
  assert.equal(streamed.train.x.length, 0);
  assert.deepEqual(await batches(streamed.train, 2, false), await batches(memory.train, 2, false));
  // symmetric normalisation: every value in [-1, 1], and both ends reached by the fixtures' range
  assert.ok(memory.train.x.every((v) => v >= -1 && v <= 1));
  await streamed.pool?.close();
});

test('a pass over a streamed folder has at most the prefetch window of batches decoding or decoded', async () => {
  const ws = imageFolder();
  const d = await load(ws, plan({}), { decodeThreads: 1, pipeline: 'stream' });
  const pool = d.pool!;
  const decode = pool.decode.bind(pool);
  let inFlight = 0;
  let most = 0;
  pool.decode = async (task) => {
    most = Math.max(most, ++inFlight);
    try {
      return await decode(task);
    } finally {
      inFlight--;
    }
  };
  const feed = new BatchFeed(d.train, epochOrder(d.train.n, true, 1, 0), 2, { epoch: 0, augment: false });
  let seen = 0;
  for (let b = 0; b < feed.batches; b++) seen += (await feed.get(b)).indices.length;
  assert.equal(seen, d.train.n);
  assert.equal(most, PREFETCH_BATCHES + 1);
  await pool.close();
});

test('PNG decodes to the same pixels with each native decoder and with pngjs; JPEG within a few levels', async () => {
  const ws = imageFolder();
  for (const decoder of ['sharp', 'image-rs'] as const) {
    for (const channels of [1, 3] as const) {
      const p: Plan = { model: 'models/cnn/model.json', data: { train: 'images', channels, scale: 1 } };
      const shape = [null, 8, 8, channels];
      const js = await loadData(p, ws.planFile, ws.root, shape, { decoder: 'js', pipeline: 'memory' });
      const native = await loadData(p, ws.planFile, ws.root, shape, { decoder, pipeline: 'memory' });
      assert.equal(native.pipeline?.decoder, decoder);
      const files = js.train.n;
      const size = 8 * 8 * channels;
      let jpegDiff = 0;
      for (let s = 0; s < files; s++) {
        const a = js.train.x.subarray(s * size, (s + 1) * size);
        const b = native.train.x.subarray(s * size, (s + 1) * size);
        // every third file of a class is a JPEG (img_0, img_3, img_6; sorted names keep that order)
        if (s % 8 % 3 === 0) jpegDiff = Math.max(jpegDiff, ...a.map((v, i) => Math.abs(v - b[i]!)));
        else assert.deepEqual(a, b, `sample ${s} (PNG, ${channels} channel(s), ${decoder})`);
      }
      assert.ok(jpegDiff <= 4, `JPEG: ${decoder} and jpeg-js differ by up to ${jpegDiff} levels`);
    }
  }
});

test('the panel\'s strip: per class the unaugmented image then one draw per epoch, as JPEG data URLs; none without augmentation', async () => {
  const ws = imageFolder();
  const preview = await augmentPreview(plan({ augment: AUGMENT }), ws.planFile, ws.root, [null, 8, 8, 1]);
  assert.ok(preview !== undefined);
  assert.deepEqual([preview.width, preview.height], [8, 8]);
  assert.deepEqual(preview.samples.map((s) => s.label), ['a', 'b', 'c']);
  for (const s of preview.samples) {
    assert.equal(s.images.length, 5);
    assert.ok(s.images.every((u) => u.startsWith('data:image/jpeg;base64,')));
    // different draws give different pictures
    assert.ok(new Set(s.images).size > 1);
  }
  assert.equal(await augmentPreview(plan({}), ws.planFile, ws.root, [null, 8, 8, 1]), undefined);
  assert.equal(await augmentPreview(plan({ augment: {} }), ws.planFile, ws.root, [null, 8, 8, 1]), undefined);
});

test('the strip shows training images only, each with the draws the run gives it (after a validationSplit: its index in the training part)', async () => {
  const ws = imageFolder();
  // scale 1: training batches hold the 0–255 pixels the strip shows
  const p = plan({ augment: AUGMENT, validationSplit: 0.5, scale: 1 });
  const preview = await augmentPreview(p, ws.planFile, ws.root, [null, 8, 8, 1]);
  assert.ok(preview !== undefined);
  assert.deepEqual(preview.samples.map((s) => s.label), ['a', 'b', 'c']);
  const d = await load(ws, p, { decodeThreads: 1 });
  try {
    const files = (ds: Dataset | undefined): string[] => (ds?.stream?.kind === 'images' ? ds.stream.files : []);
    const training = files(d.train);
    for (const shown of preview.samples) {
      const file = path.join(ws.root, shown.file);
      assert.ok(!files(d.validation).includes(file), `${shown.file} is a validation image`);
      const sample = training.indexOf(file);
      // the class's first training image
      assert.equal(training.findIndex((f) => path.basename(path.dirname(f)) === shown.label), sample);
      const pixels = async (epoch: number, augment: boolean): Promise<string> =>
        toJpegDataUrl((await new BatchFeed(d.train, [sample], 1, { epoch, augment }).get(0)).ds.x, [8, 8], 1);
      assert.equal(shown.images[0], await pixels(0, false), `${shown.file}: unaugmented`);
      for (let epoch = 0; epoch < 4; epoch++) assert.equal(shown.images[epoch + 1], await pixels(epoch, true), `${shown.file}: epoch ${epoch}`);
    }
  } finally {
    await d.pool?.close();
  }
});

test('a file that breaks only when decoded, while streaming: named and left out of its batch, or the run stops naming it', async () => {
  const ws = imageFolder();
  const broken = path.join(ws.root, 'images', 'b', 'img_1.png');
  // the header (IHDR) survives, the pixel data does not
  truncateSync(broken, 60);
  const warnings: string[] = [];
  const d = await load(ws, plan({}), { decodeThreads: 1, decoder: 'js', pipeline: 'stream', onWarn: (m) => warnings.push(m) });
  assert.equal(d.train.n, 24, 'the header check passes it');
  const rows = (await Promise.all([0, 1, 2, 3, 4].map((b) => new BatchFeed(d.train, epochOrder(24, false, 0, 0), 5, { epoch: 0, augment: false }).get(b)))).map((b) => b.indices.length);
  // file order: class a is samples 0–7, so b/img_1.png is sample 9, in the second batch of five
  assert.deepEqual(rows, [5, 4, 5, 5, 4]);
  assert.deepEqual([...d.badFiles!], [broken]);
  assert.match(warnings[0]!, /img_1\.png: corrupt or truncated PNG/);
  await d.pool?.close();
  const strict = await load(ws, plan({ onBadImage: 'error' }), { decodeThreads: 1, decoder: 'js', pipeline: 'stream' });
  await assert.rejects(new BatchFeed(strict.train, epochOrder(24, false, 0, 0), 24, { epoch: 0, augment: false }).get(0), (e: Error & { file?: string; field?: string }) =>
    e.file === broken && e.field === 'data.train' && /cannot decode image: corrupt or truncated PNG/.test(e.message));
  await strict.pool?.close();
});

test('a streamed folder whose every file is unreadable stops with one error naming data.train (as in memory), not an empty "completed" run', async () => {
  const ws = imageFolder();
  // each file keeps its first 60 bytes: a PNG's header survives, its pixels do not; a JPEG is cut before its frame
  for (const cls of ['a', 'b', 'c']) for (let i = 0; i < 8; i++) truncateSync(path.join(ws.root, 'images', cls, `img_${i}.${i % 3 === 0 ? 'jpg' : 'png'}`), 60);
  writeFileSync(ws.planFile, JSON.stringify(plan({ augment: AUGMENT }, { training: { epochs: 1, batchSize: 4 } })));
  const outDir = path.join(ws.root, 'runs', 'bad');
  await assert.rejects(train({ planFile: ws.planFile, backend: 'cpu', outDir, dataOptions: { decodeThreads: 1 } }), (e: Error & { file?: string; field?: string }) => {
    assert.equal(e.field, 'data.train');
    assert.equal(e.file, ws.planFile);
    assert.match(e.message, /no training sample could be read in epoch 1: all 24 were left out as unreadable \(e\.g\. .*img_\d\.(png|jpg)\); nothing was trained/);
    return true;
  });
  assert.equal(existsSync(path.join(outDir, 'model.json')), false, 'no model written');
});
