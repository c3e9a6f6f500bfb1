import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import * as jpeg from 'jpeg-js';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import type { Plan } from '../../src/core/plan.ts';
import { parseCsv } from '../../src/engine/csv.ts';
import { batchTensors, epochOrder, loadData, type Dataset } from '../../src/engine/data.ts';

const fixtures = path.join(__dirname, '..', 'fixtures');
const planFile = path.join(fixtures, 'layerwise.json'); // never read: paths resolve against its folder

before(async () => {
  await tf.setBackend('cpu');
});

function plan(data: Plan['data'], task?: Plan['task']): Plan {
  const p: Plan = { model: 'models/mlp/model.json', data };
  if (task !== undefined) p.task = task;
  return p;
}

function tempWorkspace(files: Record<string, string>): { root: string; plan: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-data-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, name), text);
  return { root, plan: path.join(root, 'layerwise.json') };
}

/** The fixture CSV read the plain way: split lines and commas. */
function readCsvPlainly(file: string): { features: number[][]; labels: string[] } {
  const lines = readFileSync(file, 'utf8').trim().split('\n').slice(1);
  const rows = lines.map((l) => l.split(','));
  return { features: rows.map((r) => r.slice(0, 6).map(Number)), labels: rows.map((r) => r[6]!) };
}

function row(ds: Dataset, i: number): number[] {
  const size = ds.sampleShape.reduce((a, b) => a * b, 1);
  return [...ds.x.subarray(i * size, (i + 1) * size)];
}

function target(ds: Dataset, i: number): number[] {
  return [...ds.y.subarray(i * ds.targetSize, (i + 1) * ds.targetSize)];
}

test('CSV: features, one-hot labels, sorted classes, task inferred', async () => {
  const d = await loadData(plan({ train: 'data/mlp/train.csv', validation: 'data/mlp/val.csv' }), planFile, fixtures, [null, 6]);
  assert.equal(d.task, 'classification');
  assert.deepEqual(d.classes, ['alpha', 'beta', 'gamma']);
  const plain = readCsvPlainly(path.join(fixtures, 'data/mlp/train.csv'));
  assert.equal(d.train.n, 60);
  assert.deepEqual(d.train.sampleShape, [6]);
  assert.equal(d.train.targetSize, 3);
  for (let i = 0; i < d.train.n; i++) {
    assert.deepEqual(row(d.train, i), plain.features[i]!.map((v) => Math.fround(v)));
    const oneHot = [0, 0, 0];
    oneHot[['alpha', 'beta', 'gamma'].indexOf(plain.labels[i]!)] = 1;
    assert.deepEqual(target(d.train, i), oneHot);
  }
  assert.equal(d.validation?.n, 18);
});

test('CSV: quoted cells, CRLF, BOM, blank lines, a named label column and chosen features', async () => {
  const ws = tempWorkspace({
    'd.csv': '\ufeffid,"label, with comma",a,b\r\n1,"x ""quoted""",1.5,2\r\n\r\n2,y,-3,4e-1\r\n',
  });
  const d = await loadData(plan({ train: 'd.csv', label: 'label, with comma', features: ['b', 'a'] }), ws.plan, ws.root, [null, 2]);
  assert.deepEqual(d.classes, ['x "quoted"', 'y']);
  assert.deepEqual(row(d.train, 0), [2, 1.5]);
  assert.deepEqual(row(d.train, 1), [Math.fround(0.4), -3]);
  assert.deepEqual(target(d.train, 1), [0, 1]);
  assert.deepEqual(parseCsv('a,b\n"1\n2",3\n4,5\n', 'f').rows.map((r) => r.line), [2, 4]);
});

test('CSV task inference: few whole numbers are class ids (sorted numerically), else regression', async () => {
  const ids = tempWorkspace({ 'd.csv': 'x,y\n1,10\n2,2\n3,10\n4,0\n' });
  const c = await loadData(plan({ train: 'd.csv' }), ids.plan, ids.root, [null, 1]);
  assert.equal(c.task, 'classification');
  assert.deepEqual(c.classes, ['0', '2', '10']);
  assert.deepEqual(target(c.train, 0), [0, 0, 1]);

  const reals = tempWorkspace({ 'd.csv': 'x,y\n1,0.5\n2,1.25\n' });
  const r = await loadData(plan({ train: 'd.csv' }), reals.plan, reals.root, [null, 1]);
  assert.equal(r.task, 'regression');
  assert.equal(r.classes, undefined);
  assert.deepEqual([...r.train.y], [0.5, 1.25]);

  const many = tempWorkspace({ 'd.csv': 'x,y\n' + Array.from({ length: 21 }, (_, i) => `${i},${i}`).join('\n') });
  assert.equal((await loadData(plan({ train: 'd.csv' }), many.plan, many.root, [null, 1])).task, 'regression');

  const forced = await loadData(plan({ train: 'd.csv' }, 'regression'), ids.plan, ids.root, [null, 1]);
  assert.deepEqual([...forced.train.y], [10, 2, 10, 0]);
});

test('CSV rows fill a multi-dimensional model input in row-major order', async () => {
  const ws = tempWorkspace({ 'd.csv': 'a,b,c,d,e,f,l\n1,2,3,4,5,6,k\n7,8,9,10,11,12,m\n' });
  const d = await loadData(plan({ train: 'd.csv' }), ws.plan, ws.root, [null, 2, 3]);
  assert.deepEqual(d.train.sampleShape, [2, 3]);
  const { x } = batchTensors(d.train, [0]);
  assert.deepEqual(x.arraySync(), [[[1, 2, 3], [4, 5, 6]]]);
});

test('validationSplit is seeded, stratified and keeps file order', async () => {
  const spec = { train: 'data/mlp/train.csv', validationSplit: 0.25, seed: 5 };
  const a = await loadData(plan(spec), planFile, fixtures, [null, 6]);
  const b = await loadData(plan(spec), planFile, fixtures, [null, 6]);
  const c = await loadData(plan({ ...spec, seed: 6 }), planFile, fixtures, [null, 6]);
  assert.equal(a.validation?.n, 15);
  assert.equal(a.train.n, 45);
  assert.deepEqual(a.validation?.x, b.validation?.x);
  assert.notDeepEqual(a.validation?.x, c.validation?.x);
  // 20 per class → 5 per class in validation
  const counts = [0, 0, 0];
  for (let i = 0; i < 15; i++) counts[target(a.validation!, i).indexOf(1)]! += 1;
  assert.deepEqual(counts, [5, 5, 5]);
  // together the parts are the original rows, each part in file order
  const all = readCsvPlainly(path.join(fixtures, 'data/mlp/train.csv')).features.map((f) => f.map((v) => Math.fround(v)).join());
  const pos = (ds: Dataset): number[] => Array.from({ length: ds.n }, (_, i) => all.indexOf(row(ds, i).join()));
  const tp = pos(a.train);
  const vp = pos(a.validation!);
  assert.deepEqual([...tp, ...vp].sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i));
  assert.deepEqual(tp, [...tp].sort((x, y) => x - y));
  assert.deepEqual(vp, [...vp].sort((x, y) => x - y));
});

test('epochOrder: file order without shuffle, seeded permutations that differ by epoch', () => {
  assert.deepEqual(epochOrder(5, false, 1, 3), [0, 1, 2, 3, 4]);
  const e0 = epochOrder(50, true, 1, 0);
  const e1 = epochOrder(50, true, 1, 1);
  assert.deepEqual([...e0].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(epochOrder(50, true, 1, 0), e0);
  assert.notDeepEqual(e0, e1);
  assert.notDeepEqual(epochOrder(50, true, 2, 0), e0);
});

test('batchTensors gathers the rows it is given', async () => {
  const d = await loadData(plan({ train: 'data/mlp/train.csv' }), planFile, fixtures, [null, 6]);
  const { x, y } = batchTensors(d.train, [4, 0, 59]);
  assert.deepEqual(x.shape, [3, 6]);
  assert.deepEqual(y.shape, [3, 3]);
  const xs = x.arraySync() as number[][];
  assert.deepEqual(xs[0], row(d.train, 4));
  assert.deepEqual(xs[2], row(d.train, 59));
  assert.deepEqual((y.arraySync() as number[][])[1], target(d.train, 0));
});

function decodePng(file: string): { width: number; height: number; data: Buffer } {
  return PNG.sync.read(readFileSync(file));
}

test('image folder: classes from folders, sorted files, gray from luminance, scaled', async () => {
  const d = await loadData(plan({ train: 'data/shapes/train', validation: 'data/shapes/val' }), planFile, fixtures, [null, 8, 8, 1]);
  assert.equal(d.task, 'classification');
  assert.deepEqual(d.classes, ['circle', 'cross', 'square']);
  assert.equal(d.train.n, 18);
  assert.equal(d.validation?.n, 6);
  assert.deepEqual(d.train.sampleShape, [8, 8, 1]);
  // sample 6 is cross/img_0.png (gray), sample 10 is cross/img_4.png (RGB)
  assert.deepEqual(target(d.train, 6), [0, 1, 0]);
  const gray = decodePng(path.join(fixtures, 'data/shapes/train/cross/img_0.png'));
  assert.deepEqual(row(d.train, 6), Array.from({ length: 64 }, (_, i) => Math.fround(gray.data[4 * i]! * (1 / 255))));
  const rgb = decodePng(path.join(fixtures, 'data/shapes/train/cross/img_4.png'));
  const lum = Array.from({ length: 64 }, (_, i) => (0.299 * rgb.data[4 * i]! + 0.587 * rgb.data[4 * i + 1]! + 0.114 * rgb.data[4 * i + 2]!) / 255);
  row(d.train, 10).forEach((v, i) => assert.ok(Math.abs(v - lum[i]!) < 1e-6, `pixel ${i}`));
});

test('image folder: bilinear resize matches tf.image.resizeBilinear (half-pixel centres), gray repeats to RGB', async () => {
  const d = await loadData(plan({ train: 'data/shapes/train', scale: 1 }), planFile, fixtures, [null, 5, 3, 3]);
  assert.deepEqual(d.train.sampleShape, [5, 3, 3]);
  for (const [i, file] of [[10, 'cross/img_4.png'], [6, 'cross/img_0.png']] as const) {
    const png = decodePng(path.join(fixtures, 'data/shapes/train', file));
    const rgb = tf.tensor3d(Array.from({ length: 64 * 3 }, (_, k) => png.data[4 * Math.floor(k / 3) + (k % 3)]!), [8, 8, 3]);
    const want = tf.image.resizeBilinear(rgb, [5, 3], false, true).dataSync();
    row(d.train, i).forEach((v, k) => assert.ok(Math.abs(v - want[k]!) < 1e-3, `${file} value ${k}: ${v} vs ${want[k]}`));
  }
});

test('image folder: JPEG files decode like jpeg-js, and size comes from data.size for open-sized models', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-jpeg-'));
  const rgba = Buffer.alloc(4 * 4 * 4);
  for (let i = 0; i < 16; i++) rgba.set([i * 16, 255 - i * 16, 100, 255], 4 * i);
  const bytes = jpeg.encode({ width: 4, height: 4, data: rgba }, 95).data;
  for (const c of ['a', 'b']) {
    mkdirSync(path.join(root, 'train', c), { recursive: true });
    writeFileSync(path.join(root, 'train', c, 'x.JPG'), bytes);
  }
  const d = await loadData(plan({ train: 'train', size: [4, 4], scale: 1 }), path.join(root, 'p.json'), root, [null, null, null, 3], { decoder: 'js' });
  const want = jpeg.decode(bytes, { useTArray: true });
  const wanted = Array.from({ length: 48 }, (_, k) => want.data[4 * Math.floor(k / 3) + (k % 3)]!);
  assert.deepEqual(row(d.train, 1), wanted);
  // libjpeg-turbo (sharp) and the Rust decoder round their IDCT differently: the same picture, values within a few levels
  for (const decoder of ['sharp', 'image-rs'] as const) {
    const s = await loadData(plan({ train: 'train', size: [4, 4], scale: 1 }), path.join(root, 'p.json'), root, [null, null, null, 3], { decoder });
    assert.equal(s.pipeline?.decoder, decoder);
    const diff = Math.max(...row(s.train, 1).map((v, k) => Math.abs(v - wanted[k]!)));
    assert.ok(diff <= 3, `${decoder} and jpeg-js differ by ${diff} levels`);
  }
});

test('data.seed does not change an unshuffled file order, and a copy of the fixtures loads the same', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-copy-'));
  cpSync(path.join(fixtures, 'data'), path.join(root, 'data'), { recursive: true });
  const a = await loadData(plan({ train: 'data/shapes/train', seed: 9 }), path.join(root, 'p.json'), root, [null, 8, 8, 1]);
  const b = await loadData(plan({ train: 'data/shapes/train' }), planFile, fixtures, [null, 8, 8, 1]);
  assert.deepEqual(a.train.x, b.train.x);
});
