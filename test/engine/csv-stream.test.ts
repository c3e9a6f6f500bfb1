// CSV files read lazily: one indexing pass parses every row, the features of a file too big to hold
// go to a scratch file that batches read their rows from. The same batches and final weights as held
// in memory, a bad row named with its line, memory that does not hold the features.
import { createHash } from 'node:crypto';
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { DataSpec, Plan } from '../../src/core/plan.ts';
import { seededRng } from '../../src/core/random.ts';
import { indexCsv, parseCsv, plainDecimal } from '../../src/engine/csv.ts';
import { BatchFeed, batchTensors, epochOrder, loadData, type Dataset, type LoadedData, type LoadOptions } from '../../src/engine/data.ts';
import { train } from '../../src/engine/trainer.ts';

const fixtures = path.join(__dirname, '..', 'fixtures');

before(async () => {
  await tf.setBackend('cpu');
});

function workspace(files: Record<string, string> = {}): { root: string; planFile: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-csv-stream-'));
  cpSync(path.join(fixtures, 'data'), path.join(root, 'data'), { recursive: true });
  mkdirSync(path.join(root, 'models'));
  cpSync(path.join(fixtures, 'models', 'mlp'), path.join(root, 'models', 'mlp'), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, name), text);
  return { root, planFile: path.join(root, 'layerwise.json') };
}

function plan(data: Partial<DataSpec>, extra: Partial<Plan> = {}): Plan {
  return { model: 'models/mlp/model.json', data: { train: 'data/mlp/train.csv', ...data }, ...extra };
}

async function load(ws: { root: string; planFile: string }, p: Plan, opts: LoadOptions, shape: Array<number | null> = [null, 6]): Promise<LoadedData> {
  return loadData(p, ws.planFile, ws.root, shape, opts);
}

/** Every batch of one epoch (x then y floats), as training takes them. */
async function batches(ds: Dataset, epoch: number, batchSize = 7): Promise<Float32Array[]> {
  const feed = new BatchFeed(ds, epochOrder(ds.n, true, 5, epoch), batchSize, { epoch, augment: true });
  const out: Float32Array[] = [];
  for (let b = 0; b < feed.batches; b++) {
    const batch = await feed.get(b);
    const { x, y } = batchTensors(batch.ds, batch.indices);
    out.push(Float32Array.from([...x.dataSync(), ...y.dataSync()]));
    tf.dispose([x, y]);
  }
  return out;
}

/** A CSV with every shape of cell the parser knows: BOM, CRLF, CR, quotes, a quoted line break, blank lines, UTF-8. */
const AWKWARD =
  '\ufeffid,"a",b,c,label\r\n' +
  '1, 1.5 ,"-2",3e-1,"spät"\r\n' +
  '\r\n' +
  '2,0.25,4,5,"two\nlines"\r\n' +
  '3,-7,"8","9\u00a0",plain\n' +
  '4,1,2,3,"spät"\r\n' +
  '5,6,7,8,"with ""quotes"""\n' +
  '   \n' +
  '7, 1 ,2,3,x\r' +
  '6,0,0,0,plain';

test('the indexing pass finds the same rows, lines and features whatever the chunk size, as parseCsv does, held or in the scratch file', () => {
  const ws = workspace({ 'd.csv': AWKWARD });
  const file = path.join(ws.root, 'd.csv');
  const scratchDir = path.join(ws.root, 'scratch');
  const table = parseCsv(readFileSync(file, 'utf8'), file);
  const index = (chunkBytes: number, keepFloatsBytes: number) => {
    const labels: string[] = [];
    const lines: number[] = [];
    const r = indexCsv(file, {
      chunkBytes,
      keepFloatsBytes,
      scratchDir,
      columns: (header) => ({ width: header.length, features: [1, 2, 3], names: ['a', 'b', 'c'], label: 4 }),
      onLabel: (raw, line) => {
        labels.push(raw);
        lines.push(line);
      },
    });
    // held, or read back from the scratch file (rows in any order)
    const x = r.x ?? r.rows!.read(Array.from({ length: r.n }, (_, i) => i));
    assert.equal(r.x === undefined, r.rows !== undefined);
    if (r.rows !== undefined) {
      const reversed = Array.from({ length: r.n }, (_, i) => r.n - 1 - i);
      assert.deepEqual([...r.rows.read(reversed)], reversed.flatMap((i) => [...x.subarray(3 * i, 3 * i + 3)]));
      r.rows.close();
    }
    return { n: r.n, lines, x: [...x], labels, header: r.header, sha256: r.sha256 };
  };
  const whole = index(1 << 20, Infinity);
  for (const chunk of [1, 2, 3, 5, 7, 64]) {
    // held; in the scratch file from the first row; held, then moved there after the second row
    for (const keep of [Infinity, 0, 20]) assert.deepEqual(index(chunk, keep), whole, `chunks of ${chunk} bytes, keeping ${keep} bytes`);
  }
  // the scratch files were removed as soon as they were open
  assert.deepEqual(readdirSync(scratchDir), []);
  assert.equal(whole.n, 7);
  assert.deepEqual(whole.header, table.header);
  assert.deepEqual(whole.lines, table.rows.map((r) => r.line));
  assert.deepEqual(whole.lines, [2, 4, 6, 7, 8, 10, 11]);
  assert.deepEqual(whole.labels, table.rows.map((r) => r.cells[4]));
  assert.deepEqual(whole.labels, ['spät', 'two\nlines', 'plain', 'spät', 'with "quotes"', 'x', 'plain']);
  // a U+00A0 after a number is trimmed, as the decoded text is
  assert.deepEqual(whole.x.slice(0, 9), [1.5, -2, Math.fround(0.3), 0.25, 4, 5, -7, 8, 9]);
});

test('the fast decimal reader gives exactly what Number() gives, or leaves the cell to it', () => {
  const rng = seededRng(8);
  const digits = (n: number): string => Array.from({ length: n }, () => String(Math.floor(rng() * 10))).join('');
  const cases = ['0', '-0', '+1.5', '.5', '5.', '007', '1e5', '1E-5', '-2.5e+3', ' 3 ', '\t4\t', '0.1', '0.3', '123456789012345', '1234567890123456',
    '9007199254740993', '1e22', '1e23', '1e-22', '1e-23', '2.2250738585072014e-308', '', ' ', '.', '-', 'e5', '1e', '1e+', '1.2.3', '0x10', 'Infinity', 'NaN', '1_0', '1,5', '١'];
  for (let k = 0; k < 3000; k++) {
    const exp = rng() < 0.3 ? `e${rng() < 0.5 ? '-' : ''}${Math.floor(rng() * 30)}` : '';
    cases.push(`${rng() < 0.5 ? '-' : ''}${digits(Math.floor(rng() * 9))}.${digits(Math.floor(rng() * 10))}${exp}`);
  }
  let fast = 0;
  for (const text of cases) {
    const v = plainDecimal(text, 0, text.length);
    if (v === undefined) continue;
    fast++;
    assert.ok(Object.is(v, Number(text)), `${JSON.stringify(text)}: ${v} vs Number ${Number(text)}`);
  }
  // most plain cells take the fast way; the rest are Number's
  assert.ok(fast > 2500, `${fast} of ${cases.length}`);
  for (const text of ['1234567890123456', '1e23', '', '.', '1e', '0x10', 'Infinity', '1,5']) assert.equal(plainDecimal(text, 0, text.length), undefined, text);
});

test('streamed and in memory: the same batches in every epoch, split and held-out sets too', async () => {
  const ws = workspace({ 'd.csv': AWKWARD });
  const p = plan({ train: 'd.csv', features: ['a', 'b', 'c'], validationSplit: 0.34, seed: 2 });
  const memory = await load(ws, p, {}, [null, 3]);
  assert.equal(memory.pipeline?.mode, 'memory');
  assert.equal(memory.pipeline?.format, 'csv');
  assert.match(memory.pipeline!.reason, /within the in-memory limit/);
  assert.deepEqual(memory.classes, ['plain', 'spät', 'two\nlines', 'with "quotes"', 'x']);
  const streamed = await load(ws, p, { memoryLimitBytes: 16 }, [null, 3]);
  assert.equal(streamed.pipeline?.mode, 'stream');
  assert.match(streamed.pipeline!.reason, /the features would take 0\.00 MB, above the in-memory limit/);
  assert.equal(streamed.train.x.length, 0);
  assert.deepEqual(streamed.classes, memory.classes);
  for (const epoch of [0, 1]) {
    assert.deepEqual(await batches(streamed.train, epoch, 2), await batches(memory.train, epoch, 2), `epoch ${epoch}`);
    assert.deepEqual(await batches(streamed.validation!, epoch, 2), await batches(memory.validation!, epoch, 2));
  }
  // a separate validation file and test file stream with the training file
  const held = plan({ validation: 'data/mlp/val.csv', test: 'data/mlp/val.csv' });
  const m = await load(ws, held, {});
  const s = await load(ws, held, { pipeline: 'stream' });
  assert.equal(s.pipeline?.reason, 'asked for streaming');
  for (const key of ['train', 'validation', 'test'] as const) {
    assert.equal(s[key]!.x.length, 0);
    assert.deepEqual(await batches(s[key]!, 3), await batches(m[key]!, 3), key);
  }
  // the training file fits the limit, the validation file then does not: both stream
  const both = await load(ws, held, { memoryLimitBytes: 1500 });
  assert.equal(both.pipeline?.mode, 'stream');
  assert.equal(both.train.x.length, 0);
  for (const key of ['train', 'validation', 'test'] as const) assert.deepEqual(await batches(both[key]!, 1), await batches(m[key]!, 1), key);
});

test('same seed, streamed or in memory: identical final weights and losses', async () => {
  const ws = workspace();
  writeFileSync(ws.planFile, JSON.stringify(plan({ validation: 'data/mlp/val.csv', shuffle: true, seed: 4 }, { training: { epochs: 3, batchSize: 8, lr: 0.01, seed: 1 } })));
  const outs = [];
  for (const pipeline of ['memory', 'stream'] as const) {
    const o = await train({ planFile: ws.planFile, backend: 'cpu', outDir: path.join(ws.root, 'runs', pipeline), dataOptions: { pipeline } });
    assert.equal(o.report.stopped, 'completed');
    assert.equal(o.report.data?.format, 'csv');
    assert.equal(o.report.data?.mode, pipeline);
    // streamed, a thread reads the rows ahead
    assert.equal(o.report.data?.decodeThreads, pipeline === 'stream' ? 1 : 0);
    outs.push(o);
  }
  assert.ok(readFileSync(path.join(outs[0]!.outDir, 'weights.bin')).equals(readFileSync(path.join(outs[1]!.outDir, 'weights.bin'))));
  assert.deepEqual(outs[0]!.report.epochs.map((e) => [e.trainLoss, e.valLoss]), outs[1]!.report.epochs.map((e) => [e.trainLoss, e.valLoss]));
});

/** `rows` rows of `features` numbers and a label among 4 classes, from a seed. */
function generatedCsv(rows: number, features: number): string {
  const rng = seededRng(3);
  const lines = [[...Array.from({ length: features }, (_, j) => `f${j}`), 'label'].join(',')];
  for (let r = 0; r < rows; r++) lines.push([...Array.from({ length: features }, () => (rng() * 10 - 5).toFixed(4)), `k${r % 4}`].join(','));
  return lines.join('\n') + '\n';
}

test('a malformed row in the middle of a big file is named with its line, streamed or not', async () => {
  const text = generatedCsv(5000, 6).split('\n');
  const ragged = [...text];
  ragged[2500] += ',9';
  const notNumber = [...text];
  notNumber[3999] = notNumber[3999]!.replace(/^([^,]*),[^,]*,/, '$1,abc,');
  const unclosed = [...text];
  unclosed[4500] = unclosed[4500]!.replace(/,k(\d)$/, ',"k$1');
  const ws = workspace({ 'ragged.csv': ragged.join('\n'), 'nan.csv': notNumber.join('\n'), 'unclosed.csv': unclosed.join('\n') });
  for (const pipeline of ['stream', 'memory', 'auto'] as const) {
    await assert.rejects(load(ws, plan({ train: 'ragged.csv' }), { pipeline }), (e: Error & { file?: string; field?: string }) =>
      e.file === path.join(ws.root, 'ragged.csv') && e.field === 'line 2501' && /row has 8 cells but the header has 7/.test(e.message));
    await assert.rejects(load(ws, plan({ train: 'nan.csv' }), { pipeline }), (e: Error & { file?: string; field?: string }) =>
      e.file === path.join(ws.root, 'nan.csv') && e.field === 'line 4000, column "f1"' && /"abc" is not a number/.test(e.message));
    await assert.rejects(load(ws, plan({ train: 'unclosed.csv' }), { pipeline }), (e: Error & { file?: string; field?: string }) =>
      e.file === path.join(ws.root, 'unclosed.csv') && e.field === 'line 4501' && /never closed/.test(e.message));
  }
});

test('a file changed during a streamed run: the run reads its rows as they were when indexed (the fingerprint is of that file)', async () => {
  const ws = workspace({ 'd.csv': generatedCsv(100, 6) });
  const file = path.join(ws.root, 'd.csv');
  const d = await load(ws, plan({ train: 'd.csv' }), { pipeline: 'stream' });
  const before = await load(ws, plan({ train: 'd.csv' }), { pipeline: 'memory' });
  const text = readFileSync(file, 'utf8').split('\n');
  // row 50 (line 51) loses a cell, and the rest of the file is cut
  text[50] = text[50]!.replace(/^[^,]*,/, '');
  writeFileSync(file, text.slice(0, 60).join('\n'));
  for (const epoch of [0, 1]) assert.deepEqual(await batches(d.train, epoch, 10), await batches(before.train, epoch, 10));
  const stream = d.train.stream;
  assert.equal(stream?.kind === 'csv' && stream.sha256, createHash('sha256').update(generatedCsv(100, 6)).digest('hex'));
});

test('streamed, memory holds the labels and a row id, not the features; nothing is left in the scratch folder; reading reports its progress', async () => {
  const rows = 20_000;
  const features = 50;
  const ws = workspace({ 'big.csv': generatedCsv(rows, features) });
  const featureBytes = rows * features * 4;
  const scratchDir = path.join(ws.root, 'scratch');
  // the engine decides: 3.8 MB of features over a 1 MB limit
  const progress: number[] = [];
  const d = await load(ws, plan({ train: 'big.csv', validationSplit: 0.1 }), {
    memoryLimitBytes: 2 ** 20,
    scratchDir,
    onEvent: (e) => e.phase === 'reading' && progress.push(e.done),
  }, [null, features]);
  assert.equal(d.pipeline?.mode, 'stream');
  // the reading pass says how far it is (the status bar and the CLI show it)
  assert.deepEqual(progress, [8192, 16384]);
  assert.match(d.pipeline!.reason, /the features would take 4 MB, above the in-memory limit of 1 MB/);
  let held = 0;
  for (const ds of [d.train, d.validation!]) {
    assert.equal(ds.x.length, 0);
    const s = ds.stream!;
    assert.equal(s.kind, 'csv');
    if (s.kind !== 'csv') continue;
    held += s.ids.byteLength + ds.y.byteLength;
  }
  // 4 bytes of row id and 16 of one-hot label a row, against 200 of features
  assert.equal(held, rows * (4 + 16));
  assert.ok(held * 9 < featureBytes, `${held} bytes held for ${featureBytes} bytes of features`);
  // the scratch file was removed as soon as it was open: the folder is empty while the rows are read
  assert.deepEqual(readdirSync(scratchDir), []);
  const memory = await load(ws, plan({ train: 'big.csv', validationSplit: 0.1 }), {}, [null, features]);
  assert.equal(memory.pipeline?.mode, 'memory');
  assert.deepEqual(await batches(d.validation!, 0, 64), await batches(memory.validation!, 0, 64));
});

test('rows read ahead by the thread: a pass stopped early, and two passes taking turns, still get their own rows', async () => {
  const ws = workspace({ 'd.csv': generatedCsv(300, 6) });
  const p = plan({ train: 'd.csv', validationSplit: 0.2, seed: 3 });
  const s = await load(ws, p, { pipeline: 'stream' });
  const m = await load(ws, p, { pipeline: 'memory' });
  const xOf = async (feed: BatchFeed, b: number): Promise<number[]> => {
    const batch = await feed.get(b);
    const { x, y } = batchTensors(batch.ds, batch.indices);
    const out = [...x.dataSync(), ...y.dataSync()];
    tf.dispose([x, y]);
    return out;
  };
  const feeds = (ds: LoadedData, epoch: number): [BatchFeed, BatchFeed] => [
    new BatchFeed(ds.train, epochOrder(ds.train.n, true, 1, epoch), 8, { epoch, augment: true }),
    new BatchFeed(ds.validation!, epochOrder(ds.validation!.n, true, 2, epoch), 8, { epoch, augment: false }),
  ];
  // two batches of a pass, then it is dropped (its batches asked for ahead are never taken)
  const [stopped] = feeds(s, 0);
  for (const b of [0, 1]) await xOf(stopped, b);
  // training and validation batches in turns through the one reader
  const [st, sv] = feeds(s, 1);
  const [mt, mv] = feeds(m, 1);
  for (let b = 0; b < st.batches; b++) {
    assert.deepEqual(await xOf(st, b), await xOf(mt, b), `training batch ${b}`);
    if (b < sv.batches) assert.deepEqual(await xOf(sv, b), await xOf(mv, b), `validation batch ${b}`);
  }
});

test('no room for the scratch file: one error naming the CSV file and the folder, and nothing written', async () => {
  const ws = workspace({ 'd.csv': generatedCsv(50, 6) });
  // a file where the scratch folder should be
  const notAFolder = path.join(ws.root, 'not-a-folder');
  writeFileSync(notAFolder, 'x');
  await assert.rejects(load(ws, plan({ train: 'd.csv' }), { pipeline: 'stream', scratchDir: notAFolder }), (e: Error & { file?: string }) =>
    e.file === path.join(ws.root, 'd.csv') && /cannot make the scratch file that streams this file's parsed rows in .*not-a-folder \((EEXIST|ENOTDIR)\)/.test(e.message));
  assert.equal(readFileSync(notAFolder, 'utf8'), 'x');
});

test('labels: many distinct numbers are regression targets without keeping their text; a text label after them is an error', async () => {
  const many = ['x,y', ...Array.from({ length: 70_000 }, (_, i) => `${i},${i / 7}`)].join('\n');
  const ws = workspace({ 'many.csv': many, 'mixed.csv': `${many}\n1,oops\n` });
  const d = await load(ws, plan({ train: 'many.csv' }), { pipeline: 'stream' }, [null, 1]);
  assert.equal(d.task, 'regression');
  assert.equal(d.train.y[7], 1);
  await assert.rejects(load(ws, plan({ train: 'mixed.csv' }), {}, [null, 1]), (e: Error & { field?: string }) =>
    e.field === 'line 70002, column "y"' && /label "oops" is not a number, but the 70,000 before it are/.test(e.message));
});

test('image settings on a CSV file, or CSV columns on an image folder, are named when the format comes from data.train', async () => {
  const ws = workspace();
  await assert.rejects(load(ws, plan({ augment: { horizontalFlip: true } }), {}), (e: Error & { file?: string; field?: string }) =>
    e.file === ws.planFile && e.field === 'data.augment' && /applies to image folders only, but data\.train is a CSV file/.test(e.message));
  await assert.rejects(load(ws, plan({ train: 'data/shapes/train', label: 'species' }), {}, [null, 8, 8, 1]), (e: Error & { file?: string; field?: string }) =>
    e.file === ws.planFile && e.field === 'data.label' && /applies to CSV data only, but data\.train is an image folder/.test(e.message));
});
