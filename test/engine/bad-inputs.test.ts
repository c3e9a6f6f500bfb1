// Broken models, manifests and datasets: each must give one LayerwiseError that names the file
// and the field, and nothing on disk may change. Broken copies live in a temp dir.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import type { Plan } from '../../src/core/plan.ts';
import type { DataEvent } from '../../src/core/progress.ts';
import { loadData } from '../../src/engine/data.ts';
import { loadModel, readModelJson } from '../../src/engine/model-io.ts';
import { prepareModel, prepareRun } from '../../src/engine/session.ts';
import { defaultOutDir, train } from '../../src/engine/trainer.ts';
import { findLr } from '../../src/engine/lr-finder.ts';

const fixtures = path.join(__dirname, '..', 'fixtures');
const committed = [path.join(fixtures, 'models'), path.join(fixtures, 'data')];

function hashTree(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      h.update(path.relative(dir, p));
      if (statSync(p).isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

const committedBefore = committed.map(hashTree);

before(async () => {
  await tf.setBackend('cpu');
});

interface Expect {
  file: string;
  field: string | RegExp;
  message: RegExp;
}

/** Runs `f` in workspace `root`, expects the LayerwiseError and checks nothing under root changed. */
async function expectProblem(root: string, f: () => unknown, want: Expect): Promise<void> {
  const before = hashTree(root);
  let caught: unknown;
  try {
    await f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof LayerwiseError, `expected a LayerwiseError, got ${String(caught)}`);
  assert.equal(caught.file, want.file);
  if (typeof want.field === 'string') assert.equal(caught.field, want.field);
  else assert.match(caught.field ?? '', want.field);
  assert.match(caught.message, want.message);
  assert.equal(caught.message.split('\n').length, 1, 'one line');
  assert.equal(hashTree(root), before, 'files changed');
}

type ModelJsonShape = {
  format?: string;
  modelTopology?: { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } };
  weightsManifest: Array<{ paths: string[]; weights: Array<Record<string, unknown>> }>;
};

/** A copy of the mlp fixture inside a fresh workspace, with model.json edited by `edit`. */
function brokenModel(edit: (json: ModelJsonShape, dir: string) => void): { root: string; dir: string; file: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-bad-'));
  const dir = path.join(root, 'model');
  cpSync(path.join(fixtures, 'models', 'mlp'), dir, { recursive: true });
  const file = path.join(dir, 'model.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as ModelJsonShape;
  edit(json, dir);
  writeFileSync(file, JSON.stringify(json));
  return { root, dir, file };
}

const group0 = (json: ModelJsonShape): ModelJsonShape['weightsManifest'][number] => json.weightsManifest[0]!;

// ------------------------------------------------------------------ models and manifests

test('shard path escaping the model folder with ..', async () => {
  const m = brokenModel((json, dir) => {
    cpSync(path.join(dir, 'weights.bin'), path.join(dir, '..', 'weights.bin'));
    group0(json).paths = ['../weights.bin'];
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].paths[0]', message: /outside/ });
});

test('absolute shard path', async () => {
  const m = brokenModel((json, dir) => {
    group0(json).paths = [path.join(dir, 'weights.bin')];
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].paths[0]', message: /absolute/ });
});

test('shard given as a URL', async () => {
  const m = brokenModel((json) => {
    group0(json).paths = ['https://example.com/weights.bin'];
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].paths[0]', message: /URL/ });
});

test('missing shard', async () => {
  const m = brokenModel((json) => {
    group0(json).paths = ['weights.bin', 'group1-shard2of2.bin'];
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].paths[1]', message: /not found/ });
});

test('truncated shard', async () => {
  const m = brokenModel((_json, dir) => truncateSync(path.join(dir, 'weights.bin'), 456));
  await expectProblem(m.root, () => loadModel(m.dir), {
    file: m.file, field: 'weightsManifest[0].paths', message: /456 bytes.*need 460 bytes.*truncated/,
  });
});

test('shard with extra bytes', async () => {
  const m = brokenModel((_json, dir) => appendFileSync(path.join(dir, 'weights.bin'), Buffer.alloc(8)));
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].paths', message: /468 bytes.*extra bytes/ });
});

test('weight shape in the manifest differs from the topology', async () => {
  // same byte count, so only the topology can tell
  const m = brokenModel((json) => {
    group0(json).weights[0]!['shape'] = [8, 6];
  });
  await expectProblem(m.root, () => loadModel(m.dir), {
    file: m.file, field: 'weightsManifest[0].weights[0].shape', message: /"dense\/kernel".*\[8, 6\].*"dense".*\[6, 8\]/,
  });
});

test('weight that belongs to no layer', async () => {
  const m = brokenModel((json) => {
    group0(json).weights[5]!['name'] = 'dense_9/bias';
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'weightsManifest[0].weights[5].name', message: /dense_9\/bias/ });
});

test('unknown dtype', async () => {
  const m = brokenModel((json) => {
    group0(json).weights[1]!['dtype'] = 'bool';
  });
  await expectProblem(m.root, () => readModelJson(m.dir), { file: m.file, field: 'weightsManifest[0].weights[1].dtype', message: /"bool".*float32 or int32/ });
});

test('missing dtype', async () => {
  const m = brokenModel((json) => {
    delete group0(json).weights[1]!['dtype'];
  });
  await expectProblem(m.root, () => readModelJson(m.dir), { file: m.file, field: 'weightsManifest[0].weights[1].dtype', message: /dtype of "dense\/bias" is missing \(float32 or int32\)/ });
});

test('unsupported quantization', async () => {
  const m = brokenModel((json) => {
    group0(json).weights[0]!['quantization'] = { dtype: 'int4', scale: 1, min: 0 };
  });
  await expectProblem(m.root, () => readModelJson(m.dir), { file: m.file, field: 'weightsManifest[0].weights[0].quantization', message: /uint8, uint16 or float16/ });
});

test('the same weight listed twice', async () => {
  const m = brokenModel((json) => {
    group0(json).weights[1]!['name'] = 'dense/kernel';
  });
  await expectProblem(m.root, () => readModelJson(m.dir), { file: m.file, field: 'weightsManifest[0].weights[1].name', message: /twice/ });
});

test('model.json that is not JSON', async () => {
  const m = brokenModel(() => undefined);
  writeFileSync(m.file, '{\n  "format": "layers-model",\n  "modelTopology": {,\n}');
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'line 3, column 21', message: /not valid JSON/ });
});

test('model.json without modelTopology', async () => {
  const m = brokenModel((json) => {
    delete json.modelTopology;
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'modelTopology', message: /missing/ });
});

test('a graph model is not a layers model', async () => {
  const m = brokenModel((json) => {
    json.format = 'graph-model';
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'format', message: /graph-model/ });
});

test('a layer class tfjs does not know', async () => {
  const m = brokenModel((json) => {
    json.modelTopology!.config.layers[1]!.class_name = 'BatchNormalisation';
  });
  await expectProblem(m.root, () => loadModel(m.dir), { file: m.file, field: 'modelTopology', message: /BatchNormalisation/ });
});

test('the plan names a model that does not exist', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-bad-'));
  const planFile = path.join(root, 'layerwise.json');
  await expectProblem(root, () => readModelJson(path.join(root, 'nope', 'model.json'), { planFile, field: 'model' }), {
    file: planFile, field: 'model', message: /not found/,
  });
});

// ------------------------------------------------------------------ datasets

function workspace(): { root: string; planFile: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-bad-data-'));
  cpSync(path.join(fixtures, 'data'), path.join(root, 'data'), { recursive: true });
  return { root, planFile: path.join(root, 'layerwise.json') };
}

function plan(data: Plan['data'], task?: Plan['task']): Plan {
  return task === undefined ? { model: 'm', data } : { model: 'm', data, task };
}

function editCsv(file: string, edit: (lines: string[]) => void): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  edit(lines);
  writeFileSync(file, lines.join('\n'));
}

test('non-numeric CSV cell', async () => {
  const ws = workspace();
  const csv = path.join(ws.root, 'data/mlp/train.csv');
  editCsv(csv, (l) => { l[2] = l[2]!.replace(/^([^,]*),([^,]*)/, '$1,n/a'); });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv' }), ws.planFile, ws.root, [null, 6]), {
    file: csv, field: 'line 3, column "f2"', message: /"n\/a" is not a number/,
  });
});

test('label column that is not in the CSV', async () => {
  const ws = workspace();
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv', label: 'label' }), ws.planFile, ws.root, [null, 6]), {
    file: ws.planFile, field: 'data.label', message: /no column "label".*"species"/,
  });
});

test('ragged CSV row', async () => {
  const ws = workspace();
  const csv = path.join(ws.root, 'data/mlp/train.csv');
  editCsv(csv, (l) => { l[3] = `${l[3]},7`; });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv' }), ws.planFile, ws.root, [null, 6]), {
    file: csv, field: 'line 4', message: /8 cells but the header has 7/,
  });
});

test('CSV quote never closed', async () => {
  const ws = workspace();
  const csv = path.join(ws.root, 'data/mlp/train.csv');
  editCsv(csv, (l) => { l[5] = l[5]!.replace(/,([a-z]+)$/, ',"$1'); });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv' }), ws.planFile, ws.root, [null, 6]), {
    file: csv, field: 'line 6', message: /never closed/,
  });
});

test('feature count differs from the model input', async () => {
  const ws = workspace();
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv' }), ws.planFile, ws.root, [null, 5]), {
    file: ws.planFile, field: 'data.features', message: /6 feature columns.*takes 5 values/,
  });
});

test('CSV validation label that the training data does not have', async () => {
  const ws = workspace();
  const val = path.join(ws.root, 'data/mlp/val.csv');
  editCsv(val, (l) => { l[4] = l[4]!.replace(/[a-z]+$/, 'delta'); });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv', validation: 'data/mlp/val.csv' }), ws.planFile, ws.root, [null, 6]), {
    file: val, field: 'line 5, column "species"', message: /class "delta" in data\.validation does not occur in the training data/,
  });
});

test('regression with a label that is not a number', async () => {
  const ws = workspace();
  const csv = path.join(ws.root, 'data/mlp/train.csv');
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv' }, 'regression'), ws.planFile, ws.root, [null, 6]), {
    file: csv, field: 'line 2, column "species"', message: /"alpha" is not a number/,
  });
});

test('training data outside the workspace', async () => {
  const ws = workspace();
  await expectProblem(ws.root, () => loadData(plan({ train: '../train.csv' }), ws.planFile, ws.root, [null, 6]), {
    file: ws.planFile, field: 'data.train', message: /outside the workspace/,
  });
});

test('empty class folder', async () => {
  const ws = workspace();
  const empty = path.join(ws.root, 'data/shapes/train/triangle');
  mkdirSync(empty);
  writeFileSync(path.join(empty, 'notes.txt'), 'no images here');
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: empty, field: 'data.train', message: /"triangle" holds no .png/,
  });
});

test('corrupt PNG', async () => {
  const ws = workspace();
  const png = path.join(ws.root, 'data/shapes/train/cross/img_2.png');
  truncateSync(png, 60);
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', onBadImage: 'error' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: png, field: 'data.train', message: /cannot decode image: corrupt or truncated PNG/,
  });
  // the default leaves it out, names it and counts it; the header was fine, so decoding found it
  const warnings: string[] = [];
  const d = await loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1], { onWarn: (m) => warnings.push(m), decoder: 'js' });
  const whole = await loadData(plan({ train: 'data/shapes/train' }), path.join(fixtures, 'p.json'), fixtures, [null, 8, 8, 1]);
  assert.equal(d.train.n, whole.train.n - 1);
  assert.equal(d.pipeline?.skipped, 1);
  assert.deepEqual([...d.badFiles!], [png]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /img_2\.png: corrupt or truncated PNG .*; left out/);
});

test('a folder of unreadable files: the first 20 named one line each, then one line for the rest; all counted', async () => {
  const ws = workspace();
  const fakes = Array.from({ length: 25 }, (_, i) => path.join(ws.root, `data/shapes/train/circle/zz_${String(i).padStart(2, '0')}.png`));
  for (const f of fakes) writeFileSync(f, 'not a picture');
  const warnings: string[] = [];
  const d = await loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1], { onWarn: (m) => warnings.push(m) });
  assert.equal(d.pipeline?.skipped, 25);
  assert.deepEqual([...d.badFiles!].sort(), fakes);
  assert.equal(warnings.length, 21, warnings.join('\n'));
  for (const w of warnings.slice(0, 20)) assert.match(w, /zz_\d\d\.png: not a PNG or JPEG file; left out$/);
  assert.match(warnings[20]!, /^more unreadable files are left out without a line each/);
});

test('file with an image extension that is no image', async () => {
  const ws = workspace();
  const fake = path.join(ws.root, 'data/shapes/train/circle/zz.jpg');
  writeFileSync(fake, 'GIF89a');
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', onBadImage: 'error' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: fake, field: 'data.train', message: /cannot decode image: not a PNG or JPEG/,
  });
  const events: DataEvent[] = [];
  const d = await loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1], { onEvent: (e) => events.push(e) });
  assert.deepEqual([...d.badFiles!], [fake]);
  // the header check found it: counted while checking, before any decoding
  const checking = events.filter((e) => e.phase === 'checking');
  assert.equal(checking[checking.length - 1]?.skipped, 1);
  assert.deepEqual(events[events.length - 1], { kind: 'data', phase: 'ready', done: checking[0]!.total, total: checking[0]!.total, skipped: 1 });
});

test('an image in a mode the decoders do not read (CMYK JPEG) is named, or skipped', async () => {
  const ws = workspace();
  const cmyk = path.join(ws.root, 'data/shapes/train/circle/cmyk.jpg');
  // SOI, then a baseline frame header with 4 components
  writeFileSync(cmyk, Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x14, 0x08, 0x00, 0x08, 0x00, 0x08, 0x04, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0, 0xff, 0xd9]));
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', onBadImage: 'error' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: cmyk, field: 'data.train', message: /unsupported JPEG mode: 4 colour components \(CMYK\)/,
  });
  const d = await loadData(plan({ train: 'data/shapes/train', onBadImage: 'skip' }), ws.planFile, ws.root, [null, 8, 8, 1]);
  assert.deepEqual([...d.badFiles!], [cmyk]);
});

test('12-bit, lossless and arithmetic-coded JPEGs are named by their mode, or skipped', async () => {
  // SOI, a frame header (marker, precision, 8×8, 3 components), EOI
  const frame = (marker: number, precision: number): Buffer =>
    Buffer.from([0xff, 0xd8, 0xff, marker, 0x00, 0x11, precision, 0x00, 0x08, 0x00, 0x08, 0x03, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xff, 0xd9]);
  for (const [name, bytes, mode] of [
    ['twelve.jpg', frame(0xc1, 12), /unsupported JPEG mode: 12-bit samples/],
    ['lossless.jpg', frame(0xc3, 8), /unsupported JPEG mode: lossless/],
    ['arithmetic.jpg', frame(0xc9, 8), /unsupported JPEG mode: arithmetic-coded \(SOF 9\)/],
    ['hierarchical.jpg', frame(0xc5, 8), /unsupported JPEG mode: hierarchical \(SOF 5\)/],
    ['both.jpg', frame(0xcb, 8), /unsupported JPEG mode: lossless, arithmetic-coded \(SOF 11\)/],
  ] as const) {
    const ws = workspace();
    const file = path.join(ws.root, 'data/shapes/train/circle', name);
    writeFileSync(file, bytes);
    await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', onBadImage: 'error' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
      file, field: 'data.train', message: mode,
    });
    const warnings: string[] = [];
    const d = await loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1], { onWarn: (m) => warnings.push(m) });
    assert.deepEqual([...d.badFiles!], [file]);
    assert.match(warnings.join('\n'), mode);
  }
});

test('a normalisation that does not fit the images\' channels names its field and says what it got', async () => {
  const ws = workspace();
  // the shapes are read as grey (the model's input has 1 channel)
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', normalize: 'imagenet' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: ws.planFile, field: 'data.normalize', message: /"imagenet" has a mean and std for 3 channels, but the images are read with 1/,
  });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', normalize: { mean: [0.5], std: [0.2, 0.2] } }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: ws.planFile, field: 'data.normalize.std', message: /needs 1 value \(one per channel of the images, read with 1\), got 2/,
  });
});

test('image folder without class folders', async () => {
  const ws = workspace();
  const flat = path.join(ws.root, 'flat');
  mkdirSync(flat);
  cpSync(path.join(ws.root, 'data/shapes/train/cross/img_0.png'), path.join(flat, 'a.png'));
  await expectProblem(ws.root, () => loadData(plan({ train: 'flat' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: ws.planFile, field: 'data.train', message: /no class folders.*holds images directly/,
  });
});

test('validation class folder that the training data does not have', async () => {
  const ws = workspace();
  const extra = path.join(ws.root, 'data/shapes/val/triangle');
  mkdirSync(extra);
  cpSync(path.join(ws.root, 'data/shapes/val/cross/img_0.png'), path.join(extra, 'a.png'));
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', validation: 'data/shapes/val' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: extra, field: 'data.validation', message: /class "triangle" does not occur in the training data/,
  });
});

test('image folder for a model whose input is not an image', async () => {
  const ws = workspace();
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 6]), {
    file: ws.planFile, field: 'data.format', message: /\[batch, height, width, channels\]/,
  });
});

test('validationSplit that leaves no validation samples', async () => {
  const ws = workspace();
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train', validationSplit: 0.05 }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: ws.planFile, field: 'data.validationSplit', message: /no validation samples/,
  });
});

// ------------------------------------------------------------------ plans, run as the CLI runs them

/** The mlp model and its CSV data in a fresh workspace, with a plan (`edit` changes the base). */
function planWorkspace(edit: (p: Plan) => void): { root: string; planFile: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-bad-plan-'));
  cpSync(path.join(fixtures, 'models', 'mlp'), path.join(root, 'model'), { recursive: true });
  cpSync(path.join(fixtures, 'data', 'mlp'), path.join(root, 'data'), { recursive: true });
  const p: Plan = {
    model: 'model/model.json',
    head: { cut: 'dense_1', outputs: 'auto' },
    data: { train: 'data/train.csv', validation: 'data/val.csv', label: 'species' },
    training: { epochs: 1, batchSize: 8 },
  };
  edit(p);
  const planFile = path.join(root, 'layerwise.json');
  writeFileSync(planFile, JSON.stringify(p, null, 2));
  return { root, planFile };
}

test('head.cut naming no layer names the plan file', async () => {
  const ws = planWorkspace((p) => { p.head = { cut: 'dense_9' }; });
  await expectProblem(ws.root, () => prepareModel({ planFile: ws.planFile, backend: 'cpu' }, { withData: false }), {
    file: ws.planFile, field: 'head.cut', message: /no layer named "dense_9"; closest: "dense_1"/,
  });
});

test('head.outputs that differs from the classes names head.outputs and its value', async () => {
  const ws = planWorkspace((p) => { p.head = { cut: 'dense_1', outputs: 2 }; });
  await expectProblem(ws.root, () => prepareRun({ planFile: ws.planFile, backend: 'cpu' }), {
    file: ws.planFile, field: 'head.outputs', message: /^[^"]*head\.outputs: head\.outputs is 2 but the data has 3 classes; set it to 3 or "auto"$/,
  });
});

test('an output folder that is a file is refused before anything is written', async () => {
  const ws = planWorkspace((p) => { p.output = 'data/train.csv'; });
  await expectProblem(ws.root, () => train({ planFile: ws.planFile, backend: 'cpu' }), {
    file: ws.planFile, field: 'output', message: /"data\/train\.csv" is a file, not a folder/,
  });
});

test('a model named by its folder: runs beside it are allowed, runs inside it are not', async () => {
  const ws = planWorkspace((p) => { p.model = 'model'; });
  const out = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', 'a') });
  assert.equal(out.report.stopped, 'completed');
  await expectProblem(ws.root, () => train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'model', 'run') }), {
    file: ws.planFile, field: 'output', message: /inside the model's folder/,
  });
});

test('a run folder (--out) that already holds files, or is a file, is refused: nothing in it is overwritten', async () => {
  const ws = planWorkspace(() => undefined);
  const mine = path.join(ws.root, 'mine');
  mkdirSync(mine);
  writeFileSync(path.join(mine, 'report.json'), 'my own notes');
  await expectProblem(ws.root, () => train({ planFile: ws.planFile, backend: 'cpu', outDir: mine }), {
    file: mine, field: '--out', message: /already holds files \(report\.json\); a new run writes into a new or empty folder/,
  });
  const file = path.join(ws.root, 'data', 'train.csv');
  await expectProblem(ws.root, () => train({ planFile: ws.planFile, backend: 'cpu', outDir: file }), {
    file, field: '--out', message: /is a file, not a folder/,
  });
  await expectProblem(ws.root, () => findLr({ planFile: ws.planFile, backend: 'cpu', outDir: mine, options: { mode: 'global', steps: 5 } }), {
    file: mine, field: '--out', message: /already holds files/,
  });
  // an empty folder is fine
  const empty = path.join(ws.root, 'empty');
  mkdirSync(empty);
  assert.equal((await train({ planFile: ws.planFile, backend: 'cpu', outDir: empty })).report.stopped, 'completed');
});

test('the committed fixtures are unchanged', () => {
  assert.deepEqual(committed.map(hashTree), committedBefore);
});

test('two runs started in the same second get two folders', () => {
  const ws = planWorkspace(() => undefined);
  const run = { plan: { model: 'model/model.json' }, planFile: ws.planFile, workspaceRoot: ws.root };
  const first = defaultOutDir(run);
  mkdirSync(first, { recursive: true });
  assert.notEqual(defaultOutDir(run), first);
});

test('a plan whose audit warns (an override naming no layer, a pattern matching none) trains, and the run says so with file and field', async () => {
  const ws = planWorkspace((p) => {
    p.layers = { densse: { lrMult: 0.1 } };
    p.groups = [{ name: 'body', layers: ['dense', 'batch_norm'] }];
  });
  const warnings: string[] = [];
  const out = await train({ planFile: ws.planFile, backend: 'cpu', onEvent: (e) => { if (e.kind === 'log' && e.level === 'warn') warnings.push(e.message); } });
  assert.equal(out.report.stopped, 'completed');
  assert.ok(warnings.includes(`${ws.planFile}: layers.densse: layers["densse"] names no layer of the model; did you mean "dense"?`), warnings.join('\n'));
  assert.ok(warnings.includes(`${ws.planFile}: groups[0].layers[1]: pattern "batch_norm" of group "body" matches no layer`), warnings.join('\n'));
});

test('classification with a single class is refused, for image folders and CSV labels', async () => {
  const ws = workspace();
  const shapes = path.join(ws.root, 'data/shapes/train');
  const [keep, ...others] = readdirSync(shapes).sort();
  for (const c of others) rmSync(path.join(shapes, c), { recursive: true });
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/shapes/train' }), ws.planFile, ws.root, [null, 8, 8, 1]), {
    file: ws.planFile, field: 'data.train', message: new RegExp(`one class folder \\("${keep}"\\); classification needs at least 2`),
  });
  const csv = path.join(ws.root, 'data/mlp/train.csv');
  editCsv(csv, (l) => l.forEach((line, i) => { if (i > 0) l[i] = line.replace(/,[a-z]+$/, ',alpha'); }));
  await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv', label: 'species' }), ws.planFile, ws.root, [null, 6]), {
    file: ws.planFile, field: 'data.label', message: /column "species" holds one class \("alpha"\); classification needs at least 2/,
  });
});

test('unfreezing stages the epochs cannot hold are refused before the run creates its output folder', async () => {
  const ws = planWorkspace((p) => {
    p.groups = [{ name: 'body', layers: ['dense'] }, { name: 'norm', layers: ['batch_normalization'] }, { name: 'head', layers: ['head_*'] }];
    p.unfreeze = { mode: 'gradual' };
  });
  await expectProblem(ws.root, () => train({ planFile: ws.planFile, backend: 'cpu' }), {
    file: ws.planFile, field: 'training.epochs', message: /gradual unfreezing of 4 groups with 1 epoch\(s\) per stage needs at least 4 epochs in total \(got 1\)/,
  });
});

test('a new head too large for this machine is refused before tfjs allocates it', async () => {
  const ws = planWorkspace((p) => { p.head = { cut: 'dense', hidden: [1e9] }; });
  await expectProblem(ws.root, () => prepareModel({ planFile: ws.planFile, backend: 'cpu' }, { withData: false }), {
    file: ws.planFile, field: 'head.hidden', message: /the new head would hold 1\.2e\+10 weights \(1\d\d GB with the optimizer's two moments\), more than this machine's \d+ GB of memory/,
  });
});

test('a validation or test CSV with a header and no rows is refused (it gave a NaN validation loss)', async () => {
  const ws = workspace();
  const val = path.join(ws.root, 'data/mlp/val.csv');
  editCsv(val, (l) => l.splice(1));
  for (const held of ['validation', 'test'] as const) {
    await expectProblem(ws.root, () => loadData(plan({ train: 'data/mlp/train.csv', [held]: 'data/mlp/val.csv' }), ws.planFile, ws.root, [null, 6]), {
      file: val, field: 'line 2', message: new RegExp(`the CSV file has a header but no rows \\(data\\.${held}\\)`),
    });
  }
});
