/**
 * CSV files for training, read without holding them: one pass (`indexCsv`) checks and parses every
 * row and hands its label on; the features are kept in memory while they fit, else written as
 * float32 to a scratch file (`ParsedRows`) that a batch reads its rows from — a copy, not a parse.
 *
 * Text is handled as latin1, one char per byte, so a char offset is a byte offset; the separators
 * are ASCII, so UTF-8 cells come out as their bytes and are decoded where their text matters
 * (header names, labels, messages).
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { LayerwiseError } from '../core/errors.ts';
import { RowReader } from './row-reader.ts';

/** One record: its cells (latin1), and where the next one starts. */
interface CsvRecord {
  cells: string[];
  /** Offset just past the record's line break (or the end of the text). */
  end: number;
  /** Line breaks the record spans, its own included. */
  breaks: number;
  /** A blank line: one empty cell and nothing quoted. */
  blank: boolean;
}

/**
 * RFC 4180 record at `i`: comma separated, double-quoted cells with "" escapes, CRLF or LF. Leading
 * spaces before a quote are dropped; only spaces may follow a closing quote. Returns undefined when
 * `text` ends inside the record and more text may follow (`final` false).
 */
function readRecord(text: string, i: number, final: boolean, file: string, line: number): CsvRecord | undefined {
  const cells: string[] = [];
  let cell = '';
  let quoted = false;
  let breaks = 0;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22 /* " */ && cell.trim() === '') {
      const start = line + breaks;
      cell = '';
      i++;
      for (;;) {
        if (i >= text.length) {
          if (!final) return undefined;
          throw new LayerwiseError('a quoted cell is never closed', { file, field: `line ${start}` });
        }
        const c = text.charCodeAt(i);
        if (c === 0x22) {
          if (i + 1 >= text.length && !final) return undefined;
          if (text.charCodeAt(i + 1) === 0x22) {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if (c === 0x0a) breaks++;
        cell += text[i];
        i++;
      }
      quoted = true;
      while (i < text.length && text.charCodeAt(i) === 0x20) i++;
      if (i >= text.length && !final) return undefined;
      const next = text.charCodeAt(i);
      if (i < text.length && next !== 0x2c && next !== 0x0a && next !== 0x0d) {
        throw new LayerwiseError('unexpected text after a closing quote', { file, field: `line ${line + breaks}` });
      }
      continue;
    }
    if (ch === 0x2c /* , */) {
      cells.push(cell);
      cell = '';
      i++;
    } else if (ch === 0x0d || ch === 0x0a) {
      // a CR at the end of a chunk may be the first half of a CRLF
      if (ch === 0x0d && i + 1 >= text.length && !final) return undefined;
      cells.push(cell);
      const end = i + (ch === 0x0d && text.charCodeAt(i + 1) === 0x0a ? 2 : 1);
      return { cells, end, breaks: breaks + 1, blank: cells.length === 1 && !quoted && cell.trim() === '' };
    } else {
      // a run of plain characters at once: most cells are plain
      let j = i + 1;
      while (j < text.length) {
        const c = text.charCodeAt(j);
        if (c === 0x2c || c === 0x0a || c === 0x0d) break;
        j++;
      }
      cell += text.slice(i, j);
      i = j;
    }
  }
  if (!final) return undefined;
  cells.push(cell);
  return { cells, end: i, breaks, blank: cells.length === 1 && !quoted && cell.trim() === '' };
}

/** latin1 text of UTF-8 bytes → the text. */
export function utf8(latin1: string): string {
  for (let i = 0; i < latin1.length; i++) if (latin1.charCodeAt(i) > 0x7f) return Buffer.from(latin1, 'latin1').toString('utf8');
  return latin1;
}

/** A text's number, or undefined (empty, text, infinite). */
export function parseNumber(text: string): number | undefined {
  const t = text.trim();
  if (t === '') return undefined;
  const v = Number(t);
  return Number.isFinite(v) ? v : undefined;
}

/** A latin1 cell's number: decoded first, so a UTF-8 space (U+00A0…) around it is trimmed as in text. */
function cellNumber(cell: string): number | undefined {
  return plainDecimal(cell, 0, cell.length) ?? parseNumber(utf8(cell));
}

/** 10^0 … 10^22: every one exactly a double. */
const POW10 = Array.from({ length: 23 }, (_, k) => Number(`1e${k}`));

/**
 * `text[from, to)` read as a plain decimal ([+-]digits[.digits][e[+-]digits], spaces or tabs around)
 * with at most 15 significant digits and a power of ten within ±22, or undefined for anything else
 * (the caller then uses Number). Within those limits the digits and the power are exact doubles,
 * so one multiplication or division rounds once, correctly: the same double Number() gives
 * (Clinger's fast path), without making a string per cell.
 */
export function plainDecimal(text: string, from: number, to: number): number | undefined {
  let a = from;
  let b = to;
  while (a < b && (text.charCodeAt(a) === 0x20 || text.charCodeAt(a) === 0x09)) a++;
  while (b > a && (text.charCodeAt(b - 1) === 0x20 || text.charCodeAt(b - 1) === 0x09)) b--;
  let i = a;
  let negative = false;
  let c = text.charCodeAt(i);
  if (c === 0x2d || c === 0x2b) {
    negative = c === 0x2d;
    i++;
  }
  let mantissa = 0;
  let significant = 0;
  let digits = 0;
  let power = 0;
  for (; i < b; i++) {
    c = text.charCodeAt(i) - 0x30;
    if (c < 0 || c > 9) break;
    digits++;
    if (mantissa === 0 && c === 0) continue;
    if (++significant > 15) return undefined;
    mantissa = mantissa * 10 + c;
  }
  if (i < b && text.charCodeAt(i) === 0x2e) {
    for (i++; i < b; i++) {
      c = text.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      digits++;
      power--;
      if (mantissa === 0 && c === 0) continue;
      if (++significant > 15) return undefined;
      mantissa = mantissa * 10 + c;
    }
  }
  if (digits === 0) return undefined;
  if (i < b && (text.charCodeAt(i) | 0x20) === 0x65) {
    i++;
    let exponentNegative = false;
    c = text.charCodeAt(i);
    if (i < b && (c === 0x2d || c === 0x2b)) {
      exponentNegative = c === 0x2d;
      i++;
    }
    let exponent = 0;
    let exponentDigits = 0;
    for (; i < b; i++) {
      c = text.charCodeAt(i) - 0x30;
      if (c < 0 || c > 9) break;
      if (++exponentDigits > 4) return undefined;
      exponent = exponent * 10 + c;
    }
    if (exponentDigits === 0) return undefined;
    power += exponentNegative ? -exponent : exponent;
  }
  if (i !== b) return undefined;
  let v: number;
  if (mantissa === 0) v = 0;
  else if (power >= 0 && power <= 22) v = mantissa * POW10[power]!;
  else if (power < 0 && power >= -22) v = mantissa / POW10[-power]!;
  else return undefined;
  return negative ? -v : v;
}

export interface CsvRow {
  /** 1-based line where the row starts. */
  line: number;
  cells: string[];
}

export interface CsvTable {
  header: string[];
  rows: CsvRow[];
}

const BOM = '\xef\xbb\xbf';

/** The header's column names, checked: each named, none twice. */
function checkHeader(cells: string[], file: string, line: number): string[] {
  const header = cells.map((c) => utf8(c).trim());
  const seen = new Set<string>();
  header.forEach((name, col) => {
    if (name === '') throw new LayerwiseError(`column ${col + 1} of the header has no name`, { file, field: `line ${line}` });
    if (seen.has(name)) throw new LayerwiseError(`column "${name}" appears twice in the header`, { file, field: `line ${line}` });
    seen.add(name);
  });
  return header;
}

function wrongWidth(cells: number, header: string[], file: string, line: number): LayerwiseError {
  return new LayerwiseError(`row has ${cells} cells but the header has ${header.length}`, { file, field: `line ${line}` });
}

function checkWidth(cells: string[], header: string[], file: string, line: number): void {
  if (cells.length !== header.length) throw wrongWidth(cells.length, header, file, line);
}

/**
 * The cells of a record without quotes, `text[from, to)` without its line break: each cell's
 * [start, end) into `bounds` (while there is room), and the cell count.
 */
function plainCells(text: string, from: number, to: number, bounds: Int32Array): number {
  let count = 0;
  let start = from;
  for (;;) {
    let comma = text.indexOf(',', start);
    if (comma < 0 || comma > to) comma = to;
    if (2 * count + 1 < bounds.length) {
      bounds[2 * count] = start;
      bounds[2 * count + 1] = comma;
    }
    count++;
    if (comma === to) return count;
    start = comma + 1;
  }
}

/** The number in cell `col` of a record cut by `plainCells`. */
function boundedNumber(text: string, bounds: Int32Array, col: number): number | undefined {
  const from = bounds[2 * col]!;
  const to = bounds[2 * col + 1]!;
  return plainDecimal(text, from, to) ?? cellNumber(text.slice(from, to));
}

/** A whole CSV text (UTF-8, as a JS string) parsed: the header and every row. Blank lines are skipped. */
export function parseCsv(text: string, file: string): CsvTable {
  const bytes = Buffer.from(text, 'utf8').toString('latin1');
  let i = bytes.startsWith(BOM) ? BOM.length : 0;
  let line = 1;
  let header: string[] | undefined;
  const rows: CsvRow[] = [];
  while (i < bytes.length) {
    const r = readRecord(bytes, i, true, file, line)!;
    if (!r.blank) {
      if (header === undefined) header = checkHeader(r.cells, file, line);
      else {
        checkWidth(r.cells, header, file, line);
        rows.push({ line, cells: r.cells.map(utf8) });
      }
    }
    i = r.end;
    line += r.breaks;
  }
  if (header === undefined) throw new LayerwiseError('the CSV file is empty: a header row is required', { file, field: 'line 1' });
  return { header, rows };
}

/** How a row becomes a sample: which cells, in what order. Plain data: it is posted to threads. */
export interface CsvColumns {
  /** Cells per row (the header's). */
  width: number;
  /** Column index of each feature, in sample order. */
  features: number[];
  /** The header's names of `features`, for messages. */
  names: string[];
}

/** A typed array that grows as rows are read. */
export class Growing<T extends Float64Array | Uint32Array> {
  private data: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.data = make(1024);
  }

  push(v: number): void {
    if (this.length === this.data.length) {
      const bigger = this.make(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.length++] = v;
  }

  done(): T {
    return this.data.subarray(0, this.length) as T;
  }
}

/** Floats kept in fixed blocks while they are read: no copy of everything at each doubling. */
class FloatBlocks {
  private static readonly BLOCK = 2 ** 20;
  private readonly blocks: Float32Array[] = [];
  private last = new Float32Array(0);
  private used = 0;
  length = 0;

  push(v: number): void {
    if (this.used === this.last.length) {
      this.last = new Float32Array(FloatBlocks.BLOCK);
      this.blocks.push(this.last);
      this.used = 0;
    }
    this.last[this.used++] = v;
    this.length++;
  }

  /** The floats in order, block by block. */
  *parts(): Generator<Float32Array> {
    let at = 0;
    for (const b of this.blocks) {
      const part = b.subarray(0, Math.min(b.length, this.length - at));
      yield part;
      at += part.length;
    }
  }

  done(): Float32Array {
    const out = new Float32Array(this.length);
    let at = 0;
    for (const part of this.parts()) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
}

/** Scratch files that could not be removed while open (Windows): closed and removed when the process exits. */
const leftovers = new Set<Handles>();
const closeOnCollect = new FinalizationRegistry<Handles>((h) => release(h));

/** What a `ParsedRows` holds open. */
interface Handles {
  fd: number;
  file: string;
  /** Threads reading ahead, by the rows a batch holds at most. */
  readers: Map<number, RowReader | undefined>;
}

function release(h: Handles): void {
  for (const r of h.readers.values()) void r?.close();
  h.readers.clear();
  try {
    closeSync(h.fd);
  } catch {
    // already closed
  }
  if (leftovers.delete(h)) {
    try {
      unlinkSync(h.file);
    } catch {
      // gone already
    }
  }
}

/**
 * The parsed features of a streamed CSV file, `width` float32 a row, in a scratch file: written once
 * while the file is indexed, then any rows read back by id. The file is removed as soon as it is
 * open, so it is never seen and its space returns when the handle closes — when this object is
 * collected or the process ends, a crash included. Rows are read on the thread that made it
 * (`read`), or ahead by a thread of their own (`reader`).
 */
export class ParsedRows {
  private readonly buffer = new Float32Array(2 ** 16);
  private used = 0;
  private written = 0;
  private readonly handles: Handles;

  private constructor(
    fd: number,
    readonly width: number,
    scratch: string,
    /** The CSV file, for messages. */
    private readonly source: string,
  ) {
    this.handles = { fd, file: scratch, readers: new Map() };
    closeOnCollect.register(this, this.handles, this);
  }

  /** A new scratch file in `dir` (created if missing) for the rows of `source`. */
  static create(dir: string, width: number, source: string): ParsedRows {
    const scratch = path.join(dir, `.layerwise-rows-${randomBytes(6).toString('hex')}.f32`);
    let fd: number;
    try {
      mkdirSync(dir, { recursive: true });
      fd = openSync(scratch, 'wx+', 0o600);
    } catch (e) {
      throw new LayerwiseError(`cannot make the scratch file that streams this file's parsed rows in ${dir} (${errorCode(e)})`, { file: source });
    }
    const rows = new ParsedRows(fd, width, scratch, source);
    try {
      unlinkSync(scratch);
    } catch {
      if (leftovers.size === 0) process.once('exit', () => [...leftovers].forEach(release));
      leftovers.add(rows.handles);
    }
    return rows;
  }

  push(v: number): void {
    if (this.used === this.buffer.length) this.flush();
    this.buffer[this.used++] = v;
  }

  /** Appends floats in bulk (rows first kept in memory). */
  pushAll(values: Float32Array): void {
    this.flush();
    this.write(values);
  }

  /** Everything pushed is in the file: rows can be read. */
  done(): this {
    this.flush();
    return this;
  }

  /** The features of rows `ids` (row ids in file order), in that order. */
  read(ids: ArrayLike<number>): Float32Array {
    const bytes = this.width * Float32Array.BYTES_PER_ELEMENT;
    const x = new Float32Array(ids.length * this.width);
    for (let i = 0; i < ids.length; i++) {
      const got = readSync(this.handles.fd, new Uint8Array(x.buffer, i * bytes, bytes), 0, bytes, ids[i]! * bytes);
      if (got !== bytes) throw new Error(`the scratch file of ${this.source}'s parsed rows has no row ${ids[i]}`);
    }
    return x;
  }

  /**
   * The thread that reads batches of up to `rows` rows ahead through a ring of `slots` (started on
   * first use, one per batch size; undefined where threads cannot start).
   */
  reader(rows: number, slots: number): RowReader | undefined {
    const readers = this.handles.readers;
    if (!readers.has(rows)) readers.set(rows, RowReader.start(this.handles.fd, this.width, slots, rows));
    return readers.get(rows);
  }

  /** Closes the scratch file and stops its readers now (both also happen when this object is collected). */
  close(): void {
    closeOnCollect.unregister(this);
    release(this.handles);
  }

  private flush(): void {
    if (this.used === 0) return;
    this.write(this.buffer.subarray(0, this.used));
    this.used = 0;
  }

  private write(values: Float32Array): void {
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    try {
      for (let at = 0; at < bytes.length;) at += writeSync(this.handles.fd, bytes, at, bytes.length - at, this.written * 4 + at);
    } catch (e) {
      throw new LayerwiseError(`cannot write this file's parsed rows to the scratch file in ${path.dirname(this.handles.file)} (${errorCode(e)}): ` +
        `streaming it needs ${megabytesOf((this.written + values.length) * 4)} there so far`, { file: this.source });
    }
    this.written += values.length;
  }
}

function errorCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? String(e);
}

function megabytesOf(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MB`;
}

export interface IndexedCsv {
  header: string[];
  /** Rows read (blank lines are not rows). */
  n: number;
  columns: CsvColumns;
  /** The features of every row (n × features), when they fitted `keepFloatsBytes`; else in `rows`. */
  x: Float32Array | undefined;
  /** The features of every row in a scratch file, when they did not fit `keepFloatsBytes`. */
  rows: ParsedRows | undefined;
  /** sha256 of the file's bytes: the run's fingerprint of a streamed file. */
  sha256: string;
}

export interface IndexOptions {
  /** Resolves the feature columns from the header (throws naming the plan field when one is missing). */
  columns: (header: string[]) => CsvColumns & { label: number };
  /** Each row's label cell (UTF-8 text, untrimmed) and line; throws for a bad label. */
  onLabel: (raw: string, line: number) => void;
  /** Keep the features in memory while they take at most this many bytes; beyond, in a scratch file. */
  keepFloatsBytes: number;
  /** The folder of that scratch file (it is removed at once: nothing is left there). */
  scratchDir: string;
  /** Rows read so far; called every few thousand rows. */
  onProgress?: (rows: number) => void;
  /** Chunk size (tests use a small one to cross chunk boundaries). */
  chunkBytes?: number;
}

/**
 * One pass over a CSV file in chunks: every row checked (cell count, every feature a number, the
 * label through `onLabel`) and its features kept: in memory while they fit `keepFloatsBytes`, then
 * in a scratch file (`ParsedRows`). Memory: the labels and at most `keepFloatsBytes` of features.
 */
export function indexCsv(file: string, opts: IndexOptions): IndexedCsv {
  const chunk = Buffer.alloc(opts.chunkBytes ?? 4 * 2 ** 20);
  const hash = createHash('sha256');
  let rowCount = 0;
  let floats: FloatBlocks | undefined = opts.keepFloatsBytes > 0 ? new FloatBlocks() : undefined;
  let rows: ParsedRows | undefined;
  const keep = (v: number): void => {
    if (floats === undefined) rows!.push(v);
    else floats.push(v);
  };
  let header: string[] | undefined;
  let columns: (CsvColumns & { label: number }) | undefined;
  let text = '';
  // the line text[0] starts on
  let line = 1;
  const special = /[\r\n"]/g;
  // each cell's [start, end) in a quote-free record
  let bounds = new Int32Array(0);
  const addRow = (label: string): void => {
    opts.onLabel(utf8(label), line);
    rowCount++;
    if (floats !== undefined && floats.length * 4 > opts.keepFloatsBytes) {
      // too many to hold: the rows so far go to the scratch file, and the rest after them
      rows = ParsedRows.create(opts.scratchDir, columns!.features.length, file);
      for (const part of floats.parts()) rows.pushAll(part);
      floats = undefined;
    }
    if (rowCount % 8192 === 0) opts.onProgress?.(rowCount);
  };
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new LayerwiseError(`cannot read the file (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { file });
  }
  try {
    let first = true;
    for (;;) {
      const got = readSync(fd, chunk, 0, chunk.length, null);
      const final = got === 0;
      if (got > 0) hash.update(chunk.subarray(0, got));
      text += chunk.toString('latin1', 0, got);
      let i = 0;
      if (first && (text.length >= BOM.length || final)) {
        first = false;
        if (text.startsWith(BOM)) i = BOM.length;
      } else if (first) continue;
      while (i < text.length) {
        if (header !== undefined) {
          // most records have no quotes: find the line break, cut at commas, no string per cell
          special.lastIndex = i;
          const at = special.exec(text)?.index ?? text.length;
          const c = at < text.length ? text.charCodeAt(at) : -1;
          if (c !== 0x22) {
            // the record may go on in the next chunk (or a CRLF was cut between the two)
            if (!final && (at === text.length || (c === 0x0d && at + 1 === text.length))) break;
            const ending = c < 0 ? 0 : c === 0x0d && text.charCodeAt(at + 1) === 0x0a ? 2 : 1;
            const count = plainCells(text, i, at, bounds);
            if (count > 1 || text.slice(i, at).trim() !== '') {
              if (count !== header.length) throw wrongWidth(count, header, file, line);
              const cols = columns!;
              for (let j = 0; j < cols.features.length; j++) {
                const v = boundedNumber(text, bounds, cols.features[j]!);
                if (v === undefined) throw notANumber(text.slice(bounds[2 * cols.features[j]!], bounds[2 * cols.features[j]! + 1]), file, line, cols.names[j]!);
                keep(v);
              }
              addRow(text.slice(bounds[2 * cols.label], bounds[2 * cols.label + 1]));
            }
            i = at + ending;
            if (ending > 0) line++;
            continue;
          }
        }
        const r = readRecord(text, i, final, file, line);
        if (r === undefined) break;
        if (!r.blank) {
          if (header === undefined) {
            header = checkHeader(r.cells, file, line);
            columns = opts.columns(header);
            bounds = new Int32Array(2 * header.length);
            if (floats === undefined) rows = ParsedRows.create(opts.scratchDir, columns.features.length, file);
          } else {
            checkWidth(r.cells, header, file, line);
            const cols = columns!;
            for (let j = 0; j < cols.features.length; j++) {
              const raw = r.cells[cols.features[j]!]!;
              const v = cellNumber(raw);
              if (v === undefined) throw notANumber(raw, file, line, cols.names[j]!);
              keep(v);
            }
            addRow(r.cells[cols.label]!);
          }
        }
        i = r.end;
        line += r.breaks;
      }
      text = text.slice(i);
      if (final) break;
    }
  } catch (e) {
    rows?.close();
    throw e;
  } finally {
    closeSync(fd);
  }
  if (header === undefined || columns === undefined) throw new LayerwiseError('the CSV file is empty: a header row is required', { file, field: 'line 1' });
  return {
    header,
    n: rowCount,
    columns: { width: columns.width, features: columns.features, names: columns.names },
    x: floats?.done(),
    rows: rows?.done(),
    sha256: hash.digest('hex'),
  };
}

function notANumber(raw: string, file: string, line: number, column: string): LayerwiseError {
  return new LayerwiseError(`cell ${JSON.stringify(utf8(raw))} is not a number`, { file, field: `line ${line}, column "${column}"` });
}
