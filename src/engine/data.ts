/**
 * Datasets for fine-tuning: a CSV table or an image folder (`<root>/<class>/*.png|jpg`), held in
 * flat float arrays or, when too big (or augmented), read from their files per batch (BatchFeed);
 * no tensors until a batch is built, so loading is backend-independent. A deterministic validation
 * split and per-epoch order.
 *
 * Task inference when the plan has no `task`: any non-numeric label → classification; numeric
 * labels → classification when every label is a whole number and there are at most 20 distinct
 * values (class ids), else regression. Image folders are always classification.
 *
 * Class names are sorted (numerically when every name is a number, else by code unit), so the
 * one-hot column of a class does not depend on file order or locale.
 */
import * as tf from '@tensorflow/tfjs';
import { readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { assertNever, LayerwiseError } from '../core/errors.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { augmentIsOn, DEFAULTS, type AugmentSpec, type DataSpec, type Plan, type Task } from '../core/plan.ts';
import type { DataEvent, DataPipelineReport } from '../core/progress.ts';
import { permutation, seededRng } from '../core/random.ts';
import { normalization } from './augment.ts';
import { DecodePool, defaultDecodeThreads, threadScript } from './decode-pool.ts';
import { defaultDecoder, type DecoderName } from './image.ts';
import { Growing, indexCsv, parseNumber, ParsedRows, type IndexedCsv } from './csv.ts';
import { sampleSize, type SampleRecipe } from './samples.ts';

export interface Dataset {
  /** n × prod(sampleShape) floats, row-major; empty when the samples are streamed (`stream`). */
  x: Float32Array;
  sampleShape: number[];
  /** n × targetSize floats: one-hot rows (classification) or target values (regression). */
  y: Float32Array;
  targetSize: number;
  n: number;
  classes?: string[];
  /** Where the samples came from, for messages and reports. */
  source: string;
  /** Set when samples are read from files per batch (BatchFeed) instead of held in `x`. */
  stream?: SampleStream;
}

export type SampleStream = ImageStream | CsvStream;

/** An image folder read lazily: file names and labels are in memory, pixels are not. */
export interface ImageStream {
  kind: 'images';
  /** One file per sample. */
  files: string[];
  recipe: SampleRecipe;
  pool: DecodePool;
  onBad: 'error' | 'skip';
  /** The plan field that named these files, for messages. */
  field: string;
  /** Files found bad when decoded so far; shared by the splits of one load. */
  skipped: Set<string>;
  onWarn: ((message: string) => void) | undefined;
}

/** A CSV file too big to hold: its labels are in memory, its parsed features in a scratch file. */
export interface CsvStream {
  kind: 'csv';
  rows: ParsedRows;
  /** Each sample's row in `rows` (a split takes some of them). */
  ids: Uint32Array;
  /** The file's sha256 when it was indexed: the run's fingerprint of features it does not hold. */
  sha256: string;
}

/** A data set read beside the training data, in its format and with its classes. */
interface HeldOut {
  path: string;
  field: 'data.validation' | 'data.test';
}

export interface LoadedData {
  task: Task;
  train: Dataset;
  validation?: Dataset;
  /** data.test: evaluated once after the last epoch, never used to select anything. */
  test?: Dataset;
  classes?: string[];
  /** How samples reach the model, and why (the run report's `data`). */
  pipeline?: DataPipelineReport;
  /** Image folders: every file left out so far, including ones found bad while streaming. */
  badFiles?: ReadonlySet<string>;
  /** Streamed images: the decoding threads; closed when the run ends (they restart on demand). */
  pool?: DecodePool;
}

export interface LoadOptions {
  onEvent?: (e: DataEvent) => void;
  /** A skipped image, named. */
  onWarn?: (message: string) => void;
  /** Threads that decode streamed images (0: on the calling thread). Batches are the same for any count. */
  decodeThreads?: number;
  /** Force a decoder (default: the fastest that loads, `defaultDecoder`). */
  decoder?: DecoderName;
  /** Force streaming or in-memory; default: the engine decides (augmentation, size). */
  pipeline?: 'auto' | 'stream' | 'memory';
  memoryLimitBytes?: number;
  /** Where a streamed CSV file's parsed rows go (a scratch file, removed at once); default: the system's temporary folder. */
  scratchDir?: string;
}

/** Data sets whose samples take up to this many bytes are held in memory (faster, and the frozen-prefix cache needs it). */
export const DEFAULT_MEMORY_LIMIT_BYTES = 512 * 2 ** 20;

/** Numeric labels with at most this many distinct whole values are read as class ids. */
export const MAX_INFERRED_CLASS_IDS = 20;

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);
/** Unreadable files named one warning each; the rest are counted (summary, report) without a line. */
const NAMED_BAD_FILES = 20;

export async function loadData(
  plan: Plan,
  planFile: string,
  workspaceRoot: string,
  modelInputShape: Array<number | null>,
  opts: LoadOptions = {},
): Promise<LoadedData> {
  const spec = plan.data;
  if (spec === undefined) {
    throw new LayerwiseError('the plan has no "data" section: name the training data with data.train', { file: planFile, field: 'data' });
  }
  const trainPath = resolvePlanPath(planFile, spec.train, 'data.train', workspaceRoot);
  const format = spec.format ?? inferFormat(trainPath, planFile, 'data.train');
  checkKind(trainPath, format, planFile, 'data.train');
  const valPath = spec.validation === undefined
    ? undefined
    : resolvePlanPath(planFile, spec.validation, 'data.validation', workspaceRoot);
  if (valPath !== undefined) checkKind(valPath, format, planFile, 'data.validation');
  const testPath = spec.test === undefined ? undefined : resolvePlanPath(planFile, spec.test, 'data.test', workspaceRoot);
  if (testPath !== undefined) checkKind(testPath, format, planFile, 'data.test');
  // the plan's validation sees these only when data.format is written; a format read from data.train is checked here
  const foreign = format === 'csv' ? (['size', 'channels', 'scale', 'normalize', 'augment', 'onBadImage'] as const) : (['label', 'features'] as const);
  for (const key of foreign) {
    if (spec[key] !== undefined) {
      throw new LayerwiseError(`applies to ${format === 'csv' ? 'image folders' : 'CSV data'} only, but data.train is ${format === 'csv' ? 'a CSV file' : 'an image folder'}`,
        { file: planFile, field: `data.${key}` });
    }
  }
  const heldOut = (path: string | undefined, field: HeldOut['field']): HeldOut | undefined => (path === undefined ? undefined : { path, field });
  const val = heldOut(valPath, 'data.validation');
  const test = heldOut(testPath, 'data.test');

  let loaded: LoadedData;
  switch (format) {
    case 'csv':
      loaded = await loadCsvData(spec, plan.task, planFile, trainPath, [val, test], modelInputShape, opts);
      break;
    case 'imagefolder':
      loaded = await loadImageData(spec, plan.task, planFile, trainPath, [val, test], modelInputShape, opts);
      break;
    default:
      throw new LayerwiseError(`unknown data format "${String(format)}" (csv or imagefolder)`, { file: planFile, field: 'data.format' });
  }

  if (spec.validationSplit !== undefined && loaded.validation === undefined) {
    const split = spec.validationSplit;
    if (!(split > 0 && split < 1)) {
      throw new LayerwiseError(`validationSplit must be between 0 and 1, got ${split}`, { file: planFile, field: 'data.validationSplit' });
    }
    const parts = splitDataset(loaded.train, split, spec.seed ?? DEFAULTS.seed, loaded.task === 'classification');
    if (parts.validation.n === 0) {
      throw new LayerwiseError(`validationSplit ${split} of ${loaded.train.n} samples leaves no validation samples`,
        { file: planFile, field: 'data.validationSplit' });
    }
    if (parts.train.n === 0) {
      throw new LayerwiseError(`validationSplit ${split} of ${loaded.train.n} samples leaves no training samples`,
        { file: planFile, field: 'data.validationSplit' });
    }
    loaded = { ...loaded, train: parts.train, validation: parts.validation };
  }
  return loaded;
}

/**
 * Sample order for one epoch: file order without shuffling, else a permutation seeded by
 * (seed, epoch), so epochs differ but a rerun repeats them.
 */
export function epochOrder(n: number, shuffle: boolean, seed: number, epoch: number): number[] {
  if (!shuffle) return Array.from({ length: n }, (_, i) => i);
  return permutation(n, seededRng(seed * 1000003 + epoch));
}

export function batchTensors(ds: Dataset, indices: number[]): { x: tf.Tensor; y: tf.Tensor } {
  if (ds.stream !== undefined) throw new Error(`${ds.source} is streamed from files: take its batches from a BatchFeed`);
  const sampleSize = ds.sampleShape.reduce((a, b) => a * b, 1);
  const shape = [indices.length, ...ds.sampleShape];
  // a decoded batch is taken whole and in order: its floats go to the tensor as they are (a copy
  // of a few MB per step showed in the streamed path's profile)
  if (indices.length === ds.n && indices.every((s, row) => s === row)) {
    return { x: tf.tensor(ds.x, shape, 'float32'), y: tf.tensor2d(ds.y, [indices.length, ds.targetSize], 'float32') };
  }
  const x = new Float32Array(indices.length * sampleSize);
  const y = new Float32Array(indices.length * ds.targetSize);
  indices.forEach((s, row) => {
    if (!(s >= 0 && s < ds.n)) throw new RangeError(`sample index ${s} outside 0..${ds.n - 1}`);
    x.set(ds.x.subarray(s * sampleSize, (s + 1) * sampleSize), row * sampleSize);
    y.set(ds.y.subarray(s * ds.targetSize, (s + 1) * ds.targetSize), row * ds.targetSize);
  });
  return {
    x: tf.tensor(x, shape, 'float32'),
    y: tf.tensor2d(y, [indices.length, ds.targetSize], 'float32'),
  };
}

/**
 * Seeded validation split. Stratified for classification: each class gives round(n_c × fraction)
 * of its samples, so rare classes are not left out of one side by chance. Both parts keep file
 * order.
 */
export function splitDataset(
  ds: Dataset,
  fraction: number,
  seed: number,
  stratified: boolean,
): { train: Dataset; validation: Dataset } {
  const rng = seededRng(seed);
  const strata = new Map<number, number[]>();
  for (let i = 0; i < ds.n; i++) {
    const key = stratified ? argmaxRow(ds.y, i, ds.targetSize) : 0;
    const list = strata.get(key);
    if (list === undefined) strata.set(key, [i]);
    else list.push(i);
  }
  const inValidation = new Uint8Array(ds.n);
  for (const key of [...strata.keys()].sort((a, b) => a - b)) {
    const members = strata.get(key)!;
    const take = Math.round(members.length * fraction);
    const order = permutation(members.length, rng);
    for (let k = 0; k < take; k++) inValidation[members[order[k]!]!] = 1;
  }
  const pick = (want: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < ds.n; i++) if (inValidation[i] === want) out.push(i);
    return out;
  };
  return {
    train: subset(ds, pick(0), `${ds.source} (training part)`),
    validation: subset(ds, pick(1), `${ds.source} (validationSplit part)`),
  };
}

function subset(ds: Dataset, indices: number[], source: string): Dataset {
  if (ds.stream !== undefined) {
    return { ...ds, x: new Float32Array(0), y: gatherRows(ds.y, indices, ds.targetSize), n: indices.length, source, stream: selectSamples(ds.stream, indices) };
  }
  const sampleSize = ds.sampleShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(indices.length * sampleSize);
  const y = new Float32Array(indices.length * ds.targetSize);
  indices.forEach((s, row) => {
    x.set(ds.x.subarray(s * sampleSize, (s + 1) * sampleSize), row * sampleSize);
    y.set(ds.y.subarray(s * ds.targetSize, (s + 1) * ds.targetSize), row * ds.targetSize);
  });
  const out: Dataset = { x, sampleShape: ds.sampleShape, y, targetSize: ds.targetSize, n: indices.length, source };
  if (ds.classes !== undefined) out.classes = ds.classes;
  return out;
}

function selectSamples(stream: SampleStream, indices: number[]): SampleStream {
  switch (stream.kind) {
    case 'images':
      return { ...stream, files: indices.map((i) => stream.files[i]!) };
    case 'csv':
      return { ...stream, ids: Uint32Array.from(indices, (i) => stream.ids[i]!) };
    default:
      return assertNever(stream, 'sample stream');
  }
}

/** The column of row `row`'s largest value (a one-hot label's class). */
export function argmaxRow(y: Float32Array, row: number, width: number): number {
  let best = 0;
  for (let j = 1; j < width; j++) if (y[row * width + j]! > y[row * width + best]!) best = j;
  return best;
}

function inferFormat(p: string, planFile: string, field: string): 'csv' | 'imagefolder' {
  const st = statOrUndefined(p);
  if (st === undefined) throw new LayerwiseError(`not found: ${p}`, { file: planFile, field });
  return st.isDirectory() ? 'imagefolder' : 'csv';
}

function checkKind(p: string, format: DataSpec['format'], planFile: string, field: string): void {
  const st = statOrUndefined(p);
  if (st === undefined) throw new LayerwiseError(`not found: ${p}`, { file: planFile, field });
  if (format === 'imagefolder' && !st.isDirectory()) {
    throw new LayerwiseError(`format "imagefolder" needs a folder of class folders, but ${p} is a file`, { file: planFile, field });
  }
  if (format === 'csv' && !st.isFile()) {
    throw new LayerwiseError(`format "csv" needs a CSV file, but ${p} is a folder`, { file: planFile, field });
  }
}

function statOrUndefined(p: string): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------- CSV

/** Above this many distinct numeric labels, an unset task is regression: their strings are not kept. */
const MAX_DISTINCT_NUMERIC_LABELS = 65_536;

/** The training file's labels as they are read: distinct strings and each row's id and value. */
class TrainLabels {
  /** Label text → id in first-seen order; dropped when the labels can only be regression targets. */
  distinct: Map<string, number> | undefined = new Map();
  readonly ids = new Growing((n) => new Uint32Array(n));
  readonly values = new Growing((n) => new Float64Array(n));
  private allNumeric = true;

  constructor(private readonly task: Task | undefined, private readonly file: string, private readonly column: string) {}

  add(raw: string, line: number): void {
    const where = { file: this.file, field: `line ${line}, column "${this.column}"` };
    const label = raw.trim();
    if (label === '') throw new LayerwiseError('the label is empty', where);
    const v = parseNumber(label);
    if (v === undefined) {
      if (this.task === 'regression') throw new LayerwiseError(`label ${JSON.stringify(label)} is not a number (task is regression)`, where);
      if (this.distinct === undefined) {
        throw new LayerwiseError(`label ${JSON.stringify(label)} is not a number, but the ${this.values.length.toLocaleString('en-US')} before it are, ` +
          `with more than ${MAX_DISTINCT_NUMERIC_LABELS.toLocaleString('en-US')} distinct values: set "task" in the plan`, where);
      }
      this.allNumeric = false;
    }
    if (this.task !== 'classification') this.values.push(v ?? NaN);
    if (this.task === 'regression' || this.distinct === undefined) return;
    let id = this.distinct.get(label);
    if (id === undefined) {
      id = this.distinct.size;
      this.distinct.set(label, id);
      if (this.task === undefined && this.allNumeric && this.distinct.size > MAX_DISTINCT_NUMERIC_LABELS) this.distinct = undefined;
    }
    this.ids.push(id);
  }

  resolvedTask(): Task {
    return this.task ?? (this.distinct === undefined ? 'regression' : inferTask([...this.distinct.keys()]));
  }
}

/** The columns of the training file, resolved from its header; held-out files are matched by name. */
interface CsvLayout {
  labelName: string;
  featureNames: string[];
  sampleShape: number[];
}

async function loadCsvData(
  spec: DataSpec,
  task: Task | undefined,
  planFile: string,
  trainPath: string,
  [val, test]: [HeldOut | undefined, HeldOut | undefined],
  modelInputShape: Array<number | null>,
  opts: LoadOptions,
): Promise<LoadedData> {
  const limit = opts.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
  const scratchDir = opts.scratchDir ?? tmpdir();
  // features are kept while reading as long as they may still be held: no second pass for a small file
  let budget = opts.pipeline === 'stream' ? 0 : opts.pipeline === 'memory' ? Infinity : limit;
  const keep = (read: IndexedCsv): void => {
    budget = read.x === undefined ? 0 : budget - read.x.length * 4;
  };
  let layout: CsvLayout | undefined;
  let labels: TrainLabels | undefined;
  const train = indexCsv(trainPath, {
    keepFloatsBytes: budget,
    scratchDir,
    columns: (header) => {
      const labelName = spec.label ?? header[header.length - 1]!;
      const label = header.indexOf(labelName);
      if (label < 0) {
        throw new LayerwiseError(`no column "${labelName}" in ${trainPath}; its header has ${header.map((h) => `"${h}"`).join(', ')}`,
          { file: planFile, field: 'data.label' });
      }
      const featureNames = spec.features ?? header.filter((_, i) => i !== label);
      const features = featureNames.map((name, i) => {
        const col = header.indexOf(name);
        if (col < 0) throw new LayerwiseError(`no column "${name}" in ${trainPath}`, { file: planFile, field: `data.features[${i}]` });
        if (col === label) throw new LayerwiseError(`"${name}" is the label column and cannot be a feature`, { file: planFile, field: `data.features[${i}]` });
        return col;
      });
      if (features.length === 0) throw new LayerwiseError(`${trainPath} has no feature columns`, { file: planFile, field: 'data.features' });
      layout = { labelName, featureNames, sampleShape: csvSampleShape(features.length, modelInputShape, trainPath, planFile) };
      labels = new TrainLabels(task, trainPath, labelName);
      return { width: header.length, features, names: featureNames, label };
    },
    onLabel: (raw, line) => labels!.add(raw, line),
    // a file of millions of rows takes seconds to check: say how far it is
    onProgress: (rows) => opts.onEvent?.({ kind: 'data', phase: 'reading', done: rows, total: 0, skipped: 0 }),
  });
  keep(train);
  const n = train.n;
  if (n === 0) throw new LayerwiseError('the CSV file has a header but no rows', { file: trainPath, field: 'line 2' });
  const { labelName, featureNames, sampleShape } = layout!;
  const resolvedTask = labels!.resolvedTask();
  const classes = resolvedTask === 'classification' ? sortClasses([...labels!.distinct!.keys()]) : undefined;
  if (classes?.length === 1) {
    throw new LayerwiseError(
      `column ${JSON.stringify(labelName)} holds one class (${JSON.stringify(classes[0])}); classification needs at least 2 (for a numeric target set "task": "regression")`,
      { file: planFile, field: 'data.label' },
    );
  }
  const width = classes === undefined ? 1 : classes.length;

  const trainY = new Float32Array(n * width);
  if (classes === undefined) trainY.set(labels!.values.done());
  else {
    const rank = new Uint32Array(labels!.distinct!.size);
    for (const [label, id] of labels!.distinct!) rank[id] = classes.indexOf(label);
    labels!.ids.done().forEach((id, r) => (trainY[r * width + rank[id]!] = 1));
  }

  const classIndex = new Map((classes ?? []).map((c, i) => [c, i]));
  const readHeldOut = (h: HeldOut): { read: IndexedCsv; y: Float32Array } => {
    const targets = new Growing((k) => new Float64Array(k));
    const read = indexCsv(h.path, {
      keepFloatsBytes: budget,
      scratchDir,
      columns: (header) => {
        const label = header.indexOf(labelName);
        if (label < 0) throw new LayerwiseError(`no label column "${labelName}" (data.label)`, { file: h.path, field: 'line 1' });
        const features = featureNames.map((name) => {
          const col = header.indexOf(name);
          if (col < 0) throw new LayerwiseError(`no feature column "${name}" (the training data has it)`, { file: h.path, field: 'line 1' });
          return col;
        });
        return { width: header.length, features, names: featureNames, label };
      },
      onLabel: (raw, line) => {
        const label = raw.trim();
        const where = { file: h.path, field: `line ${line}, column "${labelName}"` };
        if (label === '') throw new LayerwiseError('the label is empty', where);
        if (classes === undefined) {
          const v = parseNumber(label);
          if (v === undefined) throw new LayerwiseError(`label ${JSON.stringify(label)} is not a number (task is regression)`, where);
          targets.push(v);
        } else {
          const k = classIndex.get(label);
          if (k === undefined) throw new LayerwiseError(`class ${JSON.stringify(label)} in ${h.field} does not occur in the training data (${trainPath})`, where);
          targets.push(k);
        }
      },
    });
    keep(read);
    if (read.n === 0) throw new LayerwiseError(`the CSV file has a header but no rows (${h.field})`, { file: h.path, field: 'line 2' });
    const t = targets.done();
    const y = new Float32Array(t.length * width);
    if (classes === undefined) y.set(t);
    else t.forEach((k, r) => (y[r * width + k] = 1));
    return { read, y };
  };
  const held = [val, test].map((h) => (h === undefined ? undefined : { h, ...readHeldOut(h) }));

  const all = [{ read: train, y: trainY, file: trainPath }, ...held.flatMap((p) => (p === undefined ? [] : [{ ...p, file: p.h.path }]))];
  const bytes = all.reduce((a, p) => a + p.read.n, 0) * featureNames.length * 4;
  const inMemory = all.every((p) => p.read.x !== undefined);
  // one held file fitted, the others did not: it streams with them
  if (!inMemory) {
    for (const { read, file } of all) {
      if (read.x === undefined) continue;
      read.rows = ParsedRows.create(scratchDir, featureNames.length, file);
      read.rows.pushAll(read.x);
      read.rows.done();
      read.x = undefined;
    }
  }
  let reason: string;
  if (opts.pipeline === 'stream' || opts.pipeline === 'memory') reason = `asked for ${opts.pipeline === 'stream' ? 'streaming' : 'in memory'}`;
  else if (inMemory) reason = `the features take ${megabytes(bytes)}, within the in-memory limit of ${megabytes(limit)}`;
  else reason = `the features would take ${megabytes(bytes)}, above the in-memory limit of ${megabytes(limit)}`;
  const build = ({ read, y }: { read: IndexedCsv; y: Float32Array }, source: string): Dataset => {
    const ds: Dataset = { x: read.x ?? new Float32Array(0), sampleShape, y, targetSize: width, n: read.n, source };
    if (read.rows !== undefined) ds.stream = { kind: 'csv', rows: read.rows, ids: Uint32Array.from({ length: read.n }, (_, i) => i), sha256: read.sha256 };
    if (classes !== undefined) ds.classes = classes;
    return ds;
  };

  const out: LoadedData = {
    task: resolvedTask,
    train: build(all[0]!, trainPath),
    // streamed, one thread reads the rows ahead (row-reader.ts)
    pipeline: { format: 'csv', mode: inMemory ? 'memory' : 'stream', reason, decodeThreads: !inMemory && threadScript() !== undefined ? 1 : 0, skipped: 0, skippedFiles: [], augment: false },
  };
  for (const p of held) {
    if (p === undefined) continue;
    if (p.h.field === 'data.validation') out.validation = build(p, p.h.path);
    else out.test = build(p, p.h.path);
  }
  if (classes !== undefined) out.classes = classes;
  return out;
}

function megabytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(bytes < 2 ** 20 ? 2 : 0)} MB`;
}

/** The model's per-sample shape when it holds exactly the CSV's feature count. */
function csvSampleShape(features: number, inputShape: Array<number | null>, csvFile: string, planFile: string): number[] {
  const dims = inputShape.slice(1);
  if (dims.length === 0 || dims.some((d) => d === null)) {
    if (dims.length <= 1) return [features];
    throw new LayerwiseError(`the model's input shape [${inputShape.map(String).join(', ')}] has unknown sizes: ` +
      'a CSV row cannot fill it', { file: planFile, field: 'data.train' });
  }
  const size = (dims as number[]).reduce((a, b) => a * b, 1);
  if (size !== features) {
    throw new LayerwiseError(`${csvFile} has ${features} feature column${features === 1 ? '' : 's'} but the model's input ` +
      `takes ${size} value${size === 1 ? '' : 's'} per sample (input shape [${inputShape.map(String).join(', ')}])`,
    { file: planFile, field: 'data.features' });
  }
  return dims as number[];
}

export function inferTask(labels: string[]): Task {
  const values = labels.map(parseNumber);
  if (values.some((v) => v === undefined)) return 'classification';
  const distinct = new Set(values as number[]);
  const whole = (values as number[]).every((v) => Number.isInteger(v));
  return whole && distinct.size <= MAX_INFERRED_CLASS_IDS ? 'classification' : 'regression';
}

export function sortClasses(labels: string[]): string[] {
  const unique = [...new Set(labels)];
  const numeric = unique.every((l) => parseNumber(l) !== undefined);
  return numeric
    ? unique.sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0))
    : unique.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

// ---------------------------------------------------------------- image folders

export function listClassFolders(root: string, planFile: string, field: string): string[] {
  let entries: string[];
  try {
    entries = readdirSync(root);
  } catch (e) {
    throw new LayerwiseError(`cannot read ${root} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file: planFile, field });
  }
  const classes = entries
    .filter((name) => !name.startsWith('.') && statOrUndefined(path.join(root, name))?.isDirectory() === true)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (classes.length === 0) {
    const loose = entries.some((name) => IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase()));
    throw new LayerwiseError(`no class folders in ${root}: expected <folder>/<class>/*.png|jpg` +
      (loose ? ' (it holds images directly; put each class in its own folder)' : ''), { file: planFile, field });
  }
  return classes;
}

export function listImages(classDir: string, field: string): string[] {
  // the directory entry's type, not a stat per file: 50,000 stats would delay the first step
  const files = readdirSync(classDir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(e.name).toLowerCase()))
    .filter((e) => e.isFile() || (e.isSymbolicLink() && statOrUndefined(path.join(classDir, e.name))?.isFile() === true))
    .map((e) => e.name)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (files.length === 0) {
    throw new LayerwiseError(`class folder "${path.basename(classDir)}" holds no .png, .jpg or .jpeg images`, { file: classDir, field });
  }
  return files.map((f) => path.join(classDir, f));
}

/** One image folder's files, listed, with each file's class. */
interface ImageList {
  files: string[];
  classOf: number[];
}

async function loadImageData(
  spec: DataSpec,
  task: Task | undefined,
  planFile: string,
  trainPath: string,
  [val, test]: [HeldOut | undefined, HeldOut | undefined],
  modelInputShape: Array<number | null>,
  opts: LoadOptions,
): Promise<LoadedData> {
  if (task === 'regression') {
    throw new LayerwiseError('an image folder labels images by class: task must be classification', { file: planFile, field: 'task' });
  }
  if (modelInputShape.length !== 4) {
    throw new LayerwiseError(`an image folder needs a model whose input is [batch, height, width, channels]; ` +
      `this model's input is [${modelInputShape.map(String).join(', ')}]`, { file: planFile, field: 'data.format' });
  }
  const [, mh, mw, mc] = modelInputShape;
  const size: [number, number] | undefined = spec.size ?? (mh != null && mw != null ? [mh, mw] : undefined);
  if (size === undefined) {
    throw new LayerwiseError('the model accepts any image size: set data.size to [height, width]', { file: planFile, field: 'data.size' });
  }
  if ((mh != null && mh !== size[0]) || (mw != null && mw !== size[1])) {
    throw new LayerwiseError(`size [${size.join(', ')}] differs from the model's input ${mh}×${mw}`, { file: planFile, field: 'data.size' });
  }
  const channels = spec.channels ?? mc;
  if (channels !== 1 && channels !== 3) {
    throw new LayerwiseError(`images can be read with 1 or 3 channels, the model needs ${String(channels)}`,
      { file: planFile, field: spec.channels !== undefined ? 'data.channels' : 'data.format' });
  }
  if (mc != null && mc !== channels) {
    throw new LayerwiseError(`channels ${channels} differs from the model's input channels ${mc}`, { file: planFile, field: 'data.channels' });
  }
  const norm = spec.normalize;
  if (norm === 'imagenet' && channels !== 3) {
    throw new LayerwiseError(`"imagenet" has a mean and std for 3 channels, but the images are read with ${channels}`, { file: planFile, field: 'data.normalize' });
  }
  if (typeof norm === 'object') {
    for (const key of ['mean', 'std'] as const) {
      const n = norm[key].length;
      if (n !== 1 && n !== channels) {
        throw new LayerwiseError(`needs ${channels === 1 ? '1 value' : `1 or ${channels} values`} (one per channel of the images, read with ${channels}), got ${n}`,
          { file: planFile, field: `data.normalize.${key}` });
      }
    }
  }
  const onBad = spec.onBadImage ?? DEFAULTS.onBadImage;
  const augment = augmentIsOn(spec.augment) ? spec.augment : undefined;
  const decoder: DecoderName = opts.decoder ?? defaultDecoder();
  const recipe: SampleRecipe = {
    size,
    channels,
    norm: normalization(norm, channels, spec.scale ?? DEFAULTS.imageScale),
    seed: spec.seed ?? DEFAULTS.seed,
    decoder,
  };
  if (augment !== undefined) recipe.augment = augment;
  // the threads start now, while the folders are listed: their start-up is off the path to the first step
  const pool = new DecodePool(opts.decodeThreads ?? defaultDecodeThreads());
  pool.warm();
  try {
    return await listAndLoadImages(planFile, trainPath, [val, test], opts, { recipe, pool, onBad, augment, size, channels, decoder });
  } catch (e) {
    await pool.close();
    throw e;
  }
}

/** What loadImageData settled before the files are listed. */
interface ImageSetup {
  recipe: SampleRecipe;
  pool: DecodePool;
  onBad: 'error' | 'skip';
  augment: AugmentSpec | undefined;
  size: [number, number];
  channels: 1 | 3;
  decoder: DecoderName;
}

async function listAndLoadImages(
  planFile: string,
  trainPath: string,
  [val, test]: [HeldOut | undefined, HeldOut | undefined],
  opts: LoadOptions,
  { recipe, pool, onBad, augment, size, channels, decoder }: ImageSetup,
): Promise<LoadedData> {
  const emit = opts.onEvent ?? (() => undefined);
  const classes = listClassFolders(trainPath, planFile, 'data.train');
  if (classes.length === 1) {
    throw new LayerwiseError(`${trainPath} holds one class folder (${JSON.stringify(classes[0])}); classification needs at least 2`, { file: planFile, field: 'data.train' });
  }
  const lists: Array<{ root: string; field: string; folders: string[] }> = [{ root: trainPath, field: 'data.train', folders: classes }];
  for (const h of [val, test]) {
    if (h === undefined) continue;
    const folders = listClassFolders(h.path, planFile, h.field);
    for (const c of folders) {
      if (!classes.includes(c)) {
        throw new LayerwiseError(`class "${c}" does not occur in the training data (${trainPath})`, { file: path.join(h.path, c), field: h.field });
      }
    }
    lists.push({ root: h.path, field: h.field, folders });
  }
  // counting only: each file's header and pixels are checked when it is decoded (by the threads),
  // so the first step does not wait for a pass over every file of a big folder
  let counted = 0;
  const listed = lists.map(({ root, field, folders }) => {
    const out: ImageList = { files: [], classOf: [] };
    for (const c of folders) {
      const images = listImages(path.join(root, c), field);
      for (const f of images) {
        out.files.push(f);
        out.classOf.push(classes.indexOf(c));
      }
      counted += images.length;
      emit({ kind: 'data', phase: 'counting', done: counted, total: 0, skipped: 0 });
    }
    return { root, field, list: out };
  });
  const total = counted;

  // memory or stream: augmentation needs the source images each epoch; a big set does not fit
  const floats = total * sampleSize(recipe);
  const limit = opts.memoryLimitBytes ?? DEFAULT_MEMORY_LIMIT_BYTES;
  let mode: 'memory' | 'stream';
  let reason: string;
  if (opts.pipeline === 'stream' || opts.pipeline === 'memory') {
    mode = opts.pipeline;
    reason = `asked for ${mode === 'stream' ? 'streaming' : 'in memory'}`;
    if (mode === 'memory' && augment !== undefined) {
      throw new LayerwiseError('augmentation decodes the images again every epoch: it cannot run on a dataset held in memory', { file: planFile, field: 'data.augment' });
    }
  } else if (augment !== undefined) {
    mode = 'stream';
    reason = 'data.augment is on: each epoch decodes and transforms the training images again';
  } else if (floats * 4 > limit) {
    mode = 'stream';
    reason = `the decoded images would take ${megabytes(floats * 4)}, above the in-memory limit of ${megabytes(limit)}`;
  } else {
    mode = 'memory';
    reason = `the decoded images take ${megabytes(floats * 4)}, within the in-memory limit of ${megabytes(limit)}`;
  }
  const stream: Omit<ImageStream, 'files' | 'field'> = { kind: 'images', recipe, pool, onBad, skipped: new Set(), onWarn: opts.onWarn };
  let decoded = 0;
  let lastEmit = 0;
  const build = async ({ root, field, list }: { root: string; field: string; list: ImageList }): Promise<Dataset> => {
    const n = list.files.length;
    const y = new Float32Array(n * classes.length);
    list.classOf.forEach((c, i) => (y[i * classes.length + c] = 1));
    const streamed: Dataset = {
      x: new Float32Array(0), sampleShape: [size[0], size[1], channels], y, targetSize: classes.length, n, classes, source: root,
      stream: { ...stream, files: list.files, field },
    };
    if (mode === 'stream') return streamed;
    // in memory: decoded once, by the same threads and function as a stream, in batch-sized jobs;
    // this pass checks every file, so it is the "checking" the progress shows
    const order = Array.from({ length: n }, (_, i) => i);
    const feed = new BatchFeed(streamed, order, 64, { epoch: 0, augment: false });
    const one = sampleSize(recipe);
    const x = new Float32Array(n * one);
    const keep: number[] = [];
    for (let b = 0; b < feed.batches; b++) {
      const batch = await feed.get(b);
      batch.indices.forEach((row) => {
        x.set(batch.ds.x.subarray(row * one, (row + 1) * one), keep.length * one);
        keep.push(batch.samples[row]!);
      });
      decoded += Math.min(64, n - b * 64);
      const now = performance.now();
      if (now - lastEmit > 200 || decoded === total) {
        lastEmit = now;
        emit({ kind: 'data', phase: 'checking', done: decoded, total, skipped: stream.skipped.size });
      }
    }
    if (keep.length === 0) throw new LayerwiseError(`every image of ${root} is unreadable`, { file: planFile, field });
    const ds: Dataset = {
      x: keep.length === n ? x : x.slice(0, keep.length * one),
      sampleShape: [size[0], size[1], channels],
      y: keep.length === n ? y : gatherRows(y, keep, classes.length),
      targetSize: classes.length,
      n: keep.length,
      classes,
      source: root,
    };
    return ds;
  };
  const out: LoadedData = { task: 'classification', train: await build(listed[0]!), classes, pool };
  for (const [i, h] of [val, test].filter((h): h is HeldOut => h !== undefined).entries()) {
    const ds = await build(listed[i + 1]!);
    if (h.field === 'data.validation') out.validation = ds;
    else out.test = ds;
  }
  if (mode === 'memory') await pool.close();
  const allSkipped = [...stream.skipped];
  out.pipeline = {
    format: 'imagefolder', mode, reason, decoder, decodeThreads: pool.threads, skipped: allSkipped.length, skippedFiles: allSkipped.slice(0, 10), augment: augment !== undefined,
  };
  // the set object keeps collecting files found bad while streaming; the report reads it at the end
  out.badFiles = stream.skipped;
  emit({ kind: 'data', phase: 'ready', done: mode === 'memory' ? decoded : total, total, skipped: allSkipped.length });
  return out;
}

function gatherRows(src: Float32Array, rows: number[], width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((r, i) => out.set(src.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

// ---------------------------------------------------------------- batches

/** One batch ready for `trainStep`: `indices` are rows of `ds`. */
export interface Batch {
  ds: Dataset;
  indices: number[];
  /** The dataset's sample id of each row of a decoded batch (its indices into the dataset). */
  samples: number[];
}

/** Batches decoded ahead of the step that needs them: enough to keep every decoding thread busy. */
export const PREFETCH_BATCHES = 4;

/**
 * The batches of one pass over `order`: an in-memory dataset's are views; a streamed one's are
 * read (CSV rows, by the row reader's thread) or decoded (images, by the pool) `ahead` batches in
 * advance — bounded: memory holds at most `ahead + 1` batches. With `augment`, training samples
 * get their (seed, epoch, sample) transform.
 */
export class BatchFeed {
  readonly batches: number;
  private readonly pending = new Map<number, Promise<Batch>>();
  /** A streamed CSV's batches asked for ahead: their numbers with its row reader. */
  private readonly asked = new Map<number, number>();

  constructor(
    private readonly ds: Dataset,
    private readonly order: number[],
    private readonly batchSize: number,
    private readonly at: { epoch: number; augment: boolean },
    private readonly ahead: number = PREFETCH_BATCHES,
  ) {
    this.batches = Math.ceil(order.length / batchSize);
  }

  /** Batch `b`; asks for the next `ahead` too. Batches are asked for in order. */
  async get(b: number): Promise<Batch> {
    const indices = this.order.slice(b * this.batchSize, (b + 1) * this.batchSize);
    const stream = this.ds.stream;
    if (stream === undefined) return { ds: this.ds, indices, samples: indices };
    if (stream.kind === 'csv') return { ds: this.batchSet(this.csvRows(stream, b), indices), indices: indices.map((_, i) => i), samples: indices };
    for (let k = b; k <= Math.min(b + this.ahead, this.batches - 1); k++) {
      if (!this.pending.has(k)) {
        const p = this.decode(k, stream);
        // a prefetched batch nobody awaits (a cancelled run) must not be an unhandled rejection
        p.catch(() => undefined);
        this.pending.set(k, p);
      }
    }
    const batch = this.pending.get(b)!;
    this.pending.delete(b);
    return batch;
  }

  /** Batch `b`'s rows of a streamed CSV: read ahead by a thread, or here where threads cannot start. */
  private csvRows(stream: CsvStream, b: number): Float32Array {
    const rowsOf = (k: number): number[] => this.order.slice(k * this.batchSize, (k + 1) * this.batchSize).map((s) => stream.ids[s]!);
    const reader = stream.rows.reader(this.batchSize, this.ahead + 1);
    if (reader === undefined) return stream.rows.read(rowsOf(b));
    for (let k = b; k <= Math.min(b + this.ahead, this.batches - 1); k++) if (!this.asked.has(k)) this.asked.set(k, reader.ask(rowsOf(k)));
    const n = this.asked.get(b)!;
    this.asked.delete(b);
    // dropped when another pass over the same rows asked for batches since: read it here
    return reader.take(n) ?? stream.rows.read(rowsOf(b));
  }

  /** Waits for the images decoding ahead: a pass stopped early leaves them in flight. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending.values()]);
    this.pending.clear();
  }

  private async decode(b: number, stream: ImageStream): Promise<Batch> {
    const samples = this.order.slice(b * this.batchSize, (b + 1) * this.batchSize);
    const files = samples.map((s) => stream.files[s]!);
    const r = await stream.pool.decode({ recipe: stream.recipe, job: { files, samples, epoch: this.at.epoch, augment: this.at.augment } });
    const size = this.ds.sampleShape.reduce((a, c) => a * c, 1);
    const badRows = new Set(r.bad.map((bad) => bad.row));
    for (const bad of r.bad) {
      if (stream.onBad === 'error') {
        throw new LayerwiseError(`cannot decode image: ${bad.message} (data.onBadImage is "error"; "skip" leaves such files out)`, { file: bad.file, field: stream.field });
      }
      if (!stream.skipped.has(bad.file)) {
        stream.skipped.add(bad.file);
        // a folder of unreadable files (HEIC, say) would otherwise print a line for each of them
        const n = stream.skipped.size;
        if (n <= NAMED_BAD_FILES) stream.onWarn?.(`${bad.file}: ${bad.message}; left out`);
        else if (n === NAMED_BAD_FILES + 1) stream.onWarn?.(`more unreadable files are left out without a line each; the run's summary and report count them all`);
      }
    }
    const kept = samples.flatMap((s, row) => (badRows.has(row) ? [] : [{ s, row }]));
    const x = kept.length === samples.length ? r.x : new Float32Array(kept.length * size);
    if (x !== r.x) kept.forEach(({ row }, i) => x.set(r.x.subarray(row * size, (row + 1) * size), i * size));
    const keptSamples = kept.map((k) => k.s);
    return { ds: this.batchSet(x, keptSamples), indices: kept.map((_, i) => i), samples: keptSamples };
  }

  /** The batch's samples `x` (in `samples` order) with their targets, as a dataset of its own. */
  private batchSet(x: Float32Array, samples: number[]): Dataset {
    const ds: Dataset = {
      x,
      sampleShape: this.ds.sampleShape,
      y: gatherRows(this.ds.y, samples, this.ds.targetSize),
      targetSize: this.ds.targetSize,
      n: samples.length,
      source: this.ds.source,
    };
    if (this.ds.classes !== undefined) ds.classes = this.ds.classes;
    return ds;
  }
}

/**
 * The batches of a set in the trainer's order (`epochOrder` for each epoch, augmented as training
 * draws them), epoch after epoch for as long as asked: for passes counted in steps, not epochs
 * (the LR range test, tune).
 */
export class EpochBatches {
  private feed: BatchFeed | undefined;
  private epoch = 0;
  private b = 0;
  /** Batches in one epoch. */
  readonly perEpoch: number;

  constructor(private readonly ds: Dataset, private readonly batchSize: number, private readonly shuffle: boolean, private readonly seed: number) {
    this.perEpoch = Math.ceil(ds.n / batchSize);
  }

  async next(): Promise<Batch> {
    if (this.feed === undefined || this.b >= this.feed.batches) {
      this.feed = new BatchFeed(this.ds, epochOrder(this.ds.n, this.shuffle, this.seed, this.epoch), this.batchSize, { epoch: this.epoch, augment: true });
      this.epoch++;
      this.b = 0;
    }
    return this.feed.get(this.b++);
  }

  /** Waits for the batches still decoding ahead (the caller stops before a pass ends). */
  async close(): Promise<void> {
    await this.feed?.drain();
  }
}
