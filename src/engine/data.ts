/**
 * Datasets for fine-tuning: a CSV table or an image folder (`<root>/<class>/*.png|jpg`), loaded
 * into flat float arrays (no tensors until a batch is built, so loading is backend-independent),
 * with a deterministic validation split and per-epoch order.
 *
 * Task inference when the plan has no `task`: any non-numeric label → classification; numeric
 * labels → classification when every label is a whole number and there are at most 20 distinct
 * values (class ids), else regression. Image folders are always classification.
 *
 * Class names are sorted (numerically when every name is a number, else by code unit), so the
 * one-hot column of a class does not depend on file order or locale.
 */
import * as tf from '@tensorflow/tfjs';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { LayerwiseError } from '../core/errors.ts';
import { resolvePlanPath } from '../core/paths.ts';
import { DEFAULTS, type DataSpec, type Plan, type Task } from '../core/plan.ts';
import { permutation, seededRng } from '../core/random.ts';
import { ImageDecodeError, imageToSample } from './image.ts';

export interface Dataset {
  /** n × prod(sampleShape) floats, row-major. */
  x: Float32Array;
  sampleShape: number[];
  /** n × targetSize floats: one-hot rows (classification) or target values (regression). */
  y: Float32Array;
  targetSize: number;
  n: number;
  classes?: string[];
  /** Where the samples came from, for messages and reports. */
  source: string;
}

export interface LoadedData {
  task: Task;
  train: Dataset;
  validation?: Dataset;
  /** data.test: evaluated once after the last epoch, never used to select anything. */
  test?: Dataset;
  classes?: string[];
}

/** A data set read beside the training data, in its format and with its classes. */
interface HeldOut {
  path: string;
  field: 'data.validation' | 'data.test';
}

/** Numeric labels with at most this many distinct whole values are read as class ids. */
export const MAX_INFERRED_CLASS_IDS = 20;

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

export async function loadData(
  plan: Plan,
  planFile: string,
  workspaceRoot: string,
  modelInputShape: Array<number | null>,
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
  const heldOut = (path: string | undefined, field: HeldOut['field']): HeldOut | undefined => (path === undefined ? undefined : { path, field });
  const val = heldOut(valPath, 'data.validation');
  const test = heldOut(testPath, 'data.test');

  let loaded: LoadedData;
  switch (format) {
    case 'csv':
      loaded = loadCsvData(spec, plan.task, planFile, trainPath, [val, test], modelInputShape);
      break;
    case 'imagefolder':
      loaded = loadImageData(spec, plan.task, planFile, trainPath, [val, test], modelInputShape);
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
  const sampleSize = ds.sampleShape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(indices.length * sampleSize);
  const y = new Float32Array(indices.length * ds.targetSize);
  indices.forEach((s, row) => {
    if (!(s >= 0 && s < ds.n)) throw new RangeError(`sample index ${s} outside 0..${ds.n - 1}`);
    x.set(ds.x.subarray(s * sampleSize, (s + 1) * sampleSize), row * sampleSize);
    y.set(ds.y.subarray(s * ds.targetSize, (s + 1) * ds.targetSize), row * ds.targetSize);
  });
  return {
    x: tf.tensor(x, [indices.length, ...ds.sampleShape], 'float32'),
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

function argmaxRow(y: Float32Array, row: number, width: number): number {
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

interface CsvRow {
  /** 1-based line where the row starts. */
  line: number;
  cells: string[];
}

interface CsvTable {
  header: string[];
  rows: CsvRow[];
}

/** RFC 4180: comma separated, double-quoted cells with "" escapes, CRLF or LF; blank lines skipped. */
export function parseCsv(text: string, file: string): CsvTable {
  const records: CsvRow[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let cells: string[] = [];
  let cell = '';
  let rowLine = 1;
  let rowHasContent = false;
  const endRow = (): void => {
    cells.push(cell);
    if (rowHasContent || cells.length > 1 || cell.trim() !== '') records.push({ line: rowLine, cells });
    cells = [];
    cell = '';
    rowHasContent = false;
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"' && cell.trim() === '') {
      const start = line;
      cell = '';
      i++;
      for (;;) {
        if (i >= text.length) {
          throw new LayerwiseError('a quoted cell is never closed', { file, field: `line ${start}` });
        }
        const c = text[i]!;
        if (c === '"') {
          if (text[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === '\n') line++;
        cell += c;
        i++;
      }
      rowHasContent = true;
      // anything but spaces between the closing quote and the separator is malformed
      while (i < text.length && text[i] === ' ') i++;
      if (i < text.length && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') {
        throw new LayerwiseError('unexpected text after a closing quote', { file, field: `line ${line}` });
      }
      continue;
    }
    if (ch === ',') {
      cells.push(cell);
      cell = '';
      rowHasContent = true;
      i++;
    } else if (ch === '\r' || ch === '\n') {
      endRow();
      i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
      line++;
      rowLine = line;
    } else {
      cell += ch;
      i++;
    }
  }
  if (cell !== '' || cells.length > 0 || rowHasContent) endRow();
  const [head, ...rows] = records;
  if (head === undefined) throw new LayerwiseError('the CSV file is empty: a header row is required', { file, field: 'line 1' });
  const header = head.cells.map((c) => c.trim());
  const seen = new Set<string>();
  header.forEach((name, col) => {
    if (name === '') throw new LayerwiseError(`column ${col + 1} of the header has no name`, { file, field: `line ${head.line}` });
    if (seen.has(name)) throw new LayerwiseError(`column "${name}" appears twice in the header`, { file, field: `line ${head.line}` });
    seen.add(name);
  });
  for (const row of rows) {
    if (row.cells.length !== header.length) {
      throw new LayerwiseError(`row has ${row.cells.length} cells but the header has ${header.length}`, { file, field: `line ${row.line}` });
    }
  }
  return { header, rows };
}

function readText(file: string, planFile: string, field: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new LayerwiseError(`cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file: planFile, field });
  }
}

function parseNumber(cell: string): number | undefined {
  const t = cell.trim();
  if (t === '') return undefined;
  const v = Number(t);
  return Number.isFinite(v) ? v : undefined;
}

function loadCsvData(
  spec: DataSpec,
  task: Task | undefined,
  planFile: string,
  trainPath: string,
  [val, test]: [HeldOut | undefined, HeldOut | undefined],
  modelInputShape: Array<number | null>,
): LoadedData {
  const train = parseCsv(readText(trainPath, planFile, 'data.train'), trainPath);
  const labelName = spec.label ?? train.header[train.header.length - 1]!;
  const labelCol = train.header.indexOf(labelName);
  if (labelCol < 0) {
    throw new LayerwiseError(`no column "${labelName}" in ${trainPath}; its header has ${train.header.map((h) => `"${h}"`).join(', ')}`,
      { file: planFile, field: 'data.label' });
  }
  const featureNames = spec.features ?? train.header.filter((_, i) => i !== labelCol);
  const featureCols = featureNames.map((name, i) => {
    const col = train.header.indexOf(name);
    if (col < 0) throw new LayerwiseError(`no column "${name}" in ${trainPath}`, { file: planFile, field: `data.features[${i}]` });
    if (col === labelCol) throw new LayerwiseError(`"${name}" is the label column and cannot be a feature`, { file: planFile, field: `data.features[${i}]` });
    return col;
  });
  if (featureCols.length === 0) throw new LayerwiseError(`${trainPath} has no feature columns`, { file: planFile, field: 'data.features' });
  if (train.rows.length === 0) throw new LayerwiseError('the CSV file has a header but no rows', { file: trainPath, field: 'line 2' });

  const sampleShape = csvSampleShape(featureCols.length, modelInputShape, trainPath, planFile);
  const labels = train.rows.map((r) => r.cells[labelCol]!.trim());
  const resolvedTask = task ?? inferTask(labels);
  const classes = resolvedTask === 'classification' ? sortClasses(labels) : undefined;

  const build = (table: CsvTable, file: string, field: 'data.train' | HeldOut['field']): Dataset => {
    const label = table.header.indexOf(labelName);
    if (label < 0) throw new LayerwiseError(`no label column "${labelName}" (data.label)`, { file, field: 'line 1' });
    const cols = featureNames.map((name) => {
      const col = table.header.indexOf(name);
      if (col < 0) throw new LayerwiseError(`no feature column "${name}" (the training data has it)`, { file, field: 'line 1' });
      return col;
    });
    const n = table.rows.length;
    const x = new Float32Array(n * cols.length);
    const width = classes === undefined ? 1 : classes.length;
    const y = new Float32Array(n * width);
    const classIndex = new Map((classes ?? []).map((c, i) => [c, i]));
    table.rows.forEach((row, r) => {
      cols.forEach((col, j) => {
        const raw = row.cells[col]!;
        const v = parseNumber(raw);
        if (v === undefined) {
          throw new LayerwiseError(`cell ${JSON.stringify(raw)} is not a number`, { file, field: `line ${row.line}, column "${table.header[col]}"` });
        }
        x[r * cols.length + j] = v;
      });
      const raw = row.cells[label]!.trim();
      const where = { file, field: `line ${row.line}, column "${labelName}"` };
      if (raw === '') throw new LayerwiseError('the label is empty', where);
      if (classes === undefined) {
        const v = parseNumber(raw);
        if (v === undefined) throw new LayerwiseError(`label ${JSON.stringify(raw)} is not a number (task is regression)`, where);
        y[r] = v;
      } else {
        const k = classIndex.get(raw);
        if (k === undefined) {
          throw new LayerwiseError(`class ${JSON.stringify(raw)}${field === 'data.train' ? '' : ` in ${field}`} does not occur in the training data (${trainPath})`, where);
        }
        y[r * width + k] = 1;
      }
    });
    const ds: Dataset = { x, sampleShape, y, targetSize: width, n, source: file };
    if (classes !== undefined) ds.classes = classes;
    return ds;
  };

  const out: LoadedData = { task: resolvedTask, train: build(train, trainPath, 'data.train') };
  const read = (h: HeldOut): Dataset => build(parseCsv(readText(h.path, planFile, h.field), h.path), h.path, h.field);
  if (val !== undefined) out.validation = read(val);
  if (test !== undefined) out.test = read(test);
  if (classes !== undefined) out.classes = classes;
  return out;
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

function listClassFolders(root: string, planFile: string, field: string): string[] {
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

function listImages(classDir: string, field: string): string[] {
  const files = readdirSync(classDir)
    .filter((name) => !name.startsWith('.') && IMAGE_EXTENSIONS.has(path.extname(name).toLowerCase()))
    .filter((name) => statOrUndefined(path.join(classDir, name))?.isFile() === true)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (files.length === 0) {
    throw new LayerwiseError(`class folder "${path.basename(classDir)}" holds no .png, .jpg or .jpeg images`, { file: classDir, field });
  }
  return files.map((f) => path.join(classDir, f));
}

function loadImageData(
  spec: DataSpec,
  task: Task | undefined,
  planFile: string,
  trainPath: string,
  [val, test]: [HeldOut | undefined, HeldOut | undefined],
  modelInputShape: Array<number | null>,
): LoadedData {
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
  const scale = spec.scale ?? DEFAULTS.imageScale;
  const classes = listClassFolders(trainPath, planFile, 'data.train');

  const build = (root: string, field: string, folders: string[]): Dataset => {
    const files = folders.map((c) => ({ cls: classes.indexOf(c), images: listImages(path.join(root, c), field) }));
    const n = files.reduce((a, f) => a + f.images.length, 0);
    const sampleSize = size[0] * size[1] * channels;
    const x = new Float32Array(n * sampleSize);
    const y = new Float32Array(n * classes.length);
    let row = 0;
    for (const { cls, images } of files) {
      for (const file of images) {
        let sample: Float32Array;
        try {
          sample = imageToSample(readFileSync(file), size, channels, scale);
        } catch (e) {
          if (e instanceof ImageDecodeError) throw new LayerwiseError(`cannot decode image: ${e.message}`, { file, field });
          throw e;
        }
        x.set(sample, row * sampleSize);
        y[row * classes.length + cls] = 1;
        row++;
      }
    }
    return { x, sampleShape: [size[0], size[1], channels], y, targetSize: classes.length, n, classes, source: root };
  };

  const out: LoadedData = { task: 'classification', train: build(trainPath, 'data.train', classes), classes };
  const read = (h: HeldOut): Dataset => {
    const folders = listClassFolders(h.path, planFile, h.field);
    for (const c of folders) {
      if (!classes.includes(c)) {
        throw new LayerwiseError(`class "${c}" does not occur in the training data (${trainPath})`, { file: path.join(h.path, c), field: h.field });
      }
    }
    return build(h.path, h.field, folders);
  };
  if (val !== undefined) out.validation = read(val);
  if (test !== undefined) out.test = read(test);
  return out;
}
