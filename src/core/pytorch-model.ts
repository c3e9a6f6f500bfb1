/**
 * Plan-only PyTorch models: a `.safetensors` checkpoint, or a sharded one's index (of each only
 * the 8-byte length and the JSON header are read — never tensor data), or a JSON list of
 * `named_parameters()` names and shapes. Each becomes a ModelInfo whose layers are module paths
 * (PLAN-SPEC "Layer patterns": `bert.encoder.layer.0.attention.self.query` for `….query.weight`),
 * so grouping, presets, the audit and the exporters work on it as on a tfjs model. Training
 * needs weights and refuses it.
 *
 * Module classes are in none of these files, so normalisation layers are recognised by name
 * (see `guessNormClass`) and by BatchNorm's running statistics when a checkpoint holds them. */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import { visit } from 'jsonc-parser';
import { LayerwiseError, jsonPath } from './errors.ts';
import type { LayerInfo, ModelInfo, WeightInfo } from './model-info.ts';
import { resolveInside } from './paths.ts';

/** The safetensors format's own bound (huggingface/safetensors MAX_HEADER_SIZE). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the safetensors format defines. */
const DTYPE_BITS: Readonly<Record<string, number>> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8, F4: 4, F6_E2M3: 6, F6_E3M2: 6,
  I16: 16, U16: 16, F16: 16, BF16: 16, I32: 32, U32: 32, F32: 32, F64: 64, I64: 64, U64: 64, C64: 64,
};

const FLOAT_DTYPE = /^(F|BF|C)\d/;

/** One tensor of a plan-only model, in the order the file lists it. */
export interface TensorEntry {
  name: string;
  shape: number[];
  /** safetensors dtype (`F32`, `BF16`, …); absent in a parameter list unless written there. */
  dtype?: string;
  /** False for buffers (BatchNorm statistics, integer position ids): never optimised. */
  trainable: boolean;
}

export interface SafetensorsHeader {
  tensors: TensorEntry[];
  metadata: Record<string, string>;
}

export type PlanOnlyFormat = 'safetensors' | 'safetensorsIndex' | 'parameterList';

/**
 * Which plan-only format `file` is, or undefined for anything else (a tfjs model.json or its
 * folder). `*.safetensors.index.json` is a sharded checkpoint's index (Hugging Face's
 * `model.safetensors.index.json`). Another `.json` file is a parameter list when its first
 * character (after a BOM and blanks) is `[`: a tfjs model.json is an object.
 */
export function planOnlyFormat(file: string): PlanOnlyFormat | undefined {
  const ext = path.extname(file).toLowerCase();
  if (ext === '.safetensors') return 'safetensors';
  if (ext !== '.json') return undefined;
  if (file.toLowerCase().endsWith('.safetensors.index.json')) return 'safetensorsIndex';
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(4096);
    const n = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, n).toString('utf8').replace(/^\uFEFF/, '');
    return text.trimStart().startsWith('[') ? 'parameterList' : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Reads a plan-only model file (either format) into a ModelInfo; errors name the file and field. */
export function readPytorchModel(file: string, ctx: { planFile?: string; field?: string } = {}): ModelInfo {
  const format = planOnlyFormat(file);
  const source = path.basename(file);
  if (format === 'safetensors') return pytorchModelInfo(readSafetensorsHeader(file, ctx).tensors, source, 'natural');
  if (format === 'safetensorsIndex') return pytorchModelInfo(readSafetensorsIndex(file, ctx), source, 'natural');
  if (format === 'parameterList') return pytorchModelInfo(readParameterList(file, ctx), source, 'given');
  throw new LayerwiseError('is neither a .safetensors checkpoint nor a JSON list of parameter names and shapes', {
    file: ctx.planFile ?? file,
    field: ctx.field,
  });
}

// ---- safetensors ------------------------------------------------------------------------------

/** Reads the length prefix and the JSON header of `file` (nothing after it) and validates both. */
export function readSafetensorsHeader(file: string, ctx: { planFile?: string; field?: string } = {}): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    throw new LayerwiseError(`cannot open the checkpoint ${JSON.stringify(file)} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      file: ctx.planFile ?? file,
      field: ctx.field,
    });
  }
  try {
    const fileSize = fstatSync(fd).size;
    const prefix = Buffer.alloc(8);
    const got = fileSize >= 8 ? readSync(fd, prefix, 0, 8, 0) : 0;
    const headerLength = checkHeaderLength(got === 8 ? prefix.readBigUInt64LE(0) : undefined, fileSize, file);
    const header = Buffer.alloc(headerLength);
    let read = 0;
    while (read < headerLength) {
      const n = readSync(fd, header, read, headerLength - read, 8 + read);
      if (n === 0) break;
      read += n;
    }
    if (read < headerLength) throw new LayerwiseError(`truncated: the header should be ${headerLength} bytes but only ${read} could be read`, { file });
    return parseSafetensorsHeader(header, fileSize - 8 - headerLength, file);
  } finally {
    closeSync(fd);
  }
}

/**
 * The header length the 8-byte prefix gives, checked against the format's 100 MB bound and the
 * file's size before anything is allocated for it.
 */
function checkHeaderLength(value: bigint | undefined, fileSize: number, file: string): number {
  if (value === undefined) {
    throw new LayerwiseError(`not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length that starts one`, { file });
  }
  if (value > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new LayerwiseError(
      `not a safetensors file or corrupt: the header length prefix says ${value} bytes, more than the ${SAFETENSORS_MAX_HEADER_BYTES} bytes (100 MB) the format allows`,
      { file },
    );
  }
  const n = Number(value);
  if (n > fileSize - 8) {
    throw new LayerwiseError(`truncated: the header length prefix says ${n} bytes but only ${fileSize - 8} bytes follow it`, { file });
  }
  if (n < 2) throw new LayerwiseError(`not a safetensors file: a header of ${n} bytes cannot hold a JSON object`, { file });
  return n;
}

/**
 * Validates a header (the bytes after the length prefix) and returns its tensors in file order.
 * `dataBytes` is how many bytes follow the header: the tensors' offsets must cover exactly that.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, dataBytes: number, file: string): SafetensorsHeader {
  const text = decodeUtf8(bytes, file);
  const trimmed = text.trimStart();
  if (!trimmed.startsWith('{')) {
    throw new LayerwiseError(`malformed header: it must be a JSON object, but starts with ${JSON.stringify(trimmed.slice(0, 20))}`, { file });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new LayerwiseError(`malformed header: not valid JSON (${(e as Error).message})`, { file });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LayerwiseError('malformed header: it must be a JSON object of tensors', { file });
  }
  const duplicate = firstDuplicateKey(text);
  if (duplicate !== undefined) {
    throw new LayerwiseError(`malformed header: the tensor ${JSON.stringify(duplicate)} is listed twice`, { file, field: jsonPath([duplicate]) });
  }
  const metadata: Record<string, string> = {};
  const tensors: Array<TensorEntry & { begin: number; end: number }> = [];
  for (const [name, info] of Object.entries(value as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof info !== 'object' || info === null || Array.isArray(info)) {
        throw new LayerwiseError('must be an object of strings', { file, field: '__metadata__' });
      }
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new LayerwiseError(`must be a string (got ${typeName(v)})`, { file, field: jsonPath(['__metadata__', k]) });
        metadata[k] = v;
      }
      continue;
    }
    tensors.push(tensorOf(name, info, file));
  }
  checkCoverage(tensors, dataBytes, file);
  return { tensors: tensors.map(({ begin: _b, end: _e, ...t }) => t), metadata };
}

function tensorOf(name: string, info: unknown, file: string): TensorEntry & { begin: number; end: number } {
  const field = (...rest: Array<string | number>) => jsonPath([name, ...rest]);
  checkName(name, file, field());
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    throw new LayerwiseError(`must be an object with dtype, shape and data_offsets (got ${typeName(info)})`, { file, field: field() });
  }
  const o = info as Record<string, unknown>;
  const dtype = o['dtype'];
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BITS, dtype)) {
    throw new LayerwiseError(`unknown dtype ${JSON.stringify(dtype)} (safetensors dtypes: ${Object.keys(DTYPE_BITS).join(', ')})`, {
      file,
      field: field('dtype'),
    });
  }
  const shape = checkShape(o['shape'], file, field('shape'));
  const offsets = o['data_offsets'];
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((x) => Number.isSafeInteger(x) && (x as number) >= 0)) {
    throw new LayerwiseError(`must be [begin, end], two whole byte offsets ≥ 0 (got ${JSON.stringify(offsets)})`, { file, field: field('data_offsets') });
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new LayerwiseError(`end ${end} is before begin ${begin}`, { file, field: field('data_offsets') });
  const bits = shape.reduce((n, d) => n * BigInt(d), 1n) * BigInt(DTYPE_BITS[dtype]!);
  if (bits % 8n !== 0n) {
    throw new LayerwiseError(`${shape.join('×') || 'scalar'} elements of ${dtype} do not fill whole bytes`, { file, field: field('shape') });
  }
  if (BigInt(end - begin) !== bits / 8n) {
    throw new LayerwiseError(`${end - begin} bytes, but shape [${shape.join(', ')}] of ${dtype} needs ${bits / 8n}`, { file, field: field('data_offsets') });
  }
  return { name, shape, dtype, trainable: !isBuffer(name, dtype, shape), begin, end };
}

/** The format requires the tensors' bytes to follow each other without gaps and fill the rest of the file. */
function checkCoverage(tensors: ReadonlyArray<{ name: string; begin: number; end: number }>, dataBytes: number, file: string): void {
  const byOffset = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const t of byOffset) {
    if (t.begin !== at) {
      const what = t.begin < at ? `overlaps the tensor before it (which ends at ${at})` : `leaves a gap after byte ${at}`;
      throw new LayerwiseError(`data_offsets [${t.begin}, ${t.end}] ${what}`, { file, field: jsonPath([t.name, 'data_offsets']) });
    }
    at = t.end;
  }
  if (at > dataBytes) {
    throw new LayerwiseError(`truncated: the header says the tensor data takes ${at} bytes, but only ${dataBytes} follow the header`, { file });
  }
  if (at < dataBytes) {
    throw new LayerwiseError(`malformed: the tensors take ${at} bytes, but ${dataBytes} follow the header (the format allows no trailing bytes)`, { file });
  }
}

/** A strict UTF-8 decode; the error shows the bytes before the bad one (usually inside a name). */
function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    const before = new TextDecoder('utf-8').decode(bytes.subarray(Math.max(0, bad - 40), bad));
    const quote = before.lastIndexOf('"');
    const context = quote >= 0 ? `in the string that starts ${JSON.stringify(before.slice(quote + 1))}` : `after ${JSON.stringify(before)}`;
    throw new LayerwiseError(`the header is not valid UTF-8: byte ${bad} (0x${(bytes[bad] ?? 0).toString(16).padStart(2, '0')}) ${context}; tensor names must be UTF-8`, { file });
  }
}

/** Offset of the first byte that does not start or continue a valid UTF-8 sequence. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    let need: number;
    let min: number;
    if (b < 0x80) {
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // overlong forms, surrogates and code points past U+10FFFF are invalid too
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return bytes.length;
}

/** JSON.parse keeps the last of two equal keys silently; a checkpoint with two is broken. */
function firstDuplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let duplicate: string | undefined;
  visit(text, {
    onObjectBegin: () => void depth++,
    onObjectEnd: () => void depth--,
    onObjectProperty: (name) => {
      if (depth !== 1 || duplicate !== undefined) return;
      if (seen.has(name)) duplicate = name;
      seen.add(name);
    },
  });
  return duplicate;
}

/**
 * A sharded checkpoint: the index's `weight_map` names each tensor's shard; every shard's header
 * is read (shards must sit in the index's folder) and must hold the tensors the index gives it.
 */
export function readSafetensorsIndex(file: string, ctx: { planFile?: string; field?: string } = {}): TensorEntry[] {
  const value = parseJsonFile(file, ctx, 'the checkpoint index');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new LayerwiseError('must be an object with a "weight_map" (tensor name → shard file)', { file });
  }
  const map = (value as Record<string, unknown>)['weight_map'];
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new LayerwiseError('must be an object: tensor name → shard file', { file, field: 'weight_map' });
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string') throw new LayerwiseError(`must be a shard file name (got ${typeName(shard)})`, { file, field: jsonPath(['weight_map', name]) });
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  if (byShard.size === 0) throw new LayerwiseError('lists no tensors', { file, field: 'weight_map' });
  const tensors: TensorEntry[] = [];
  for (const [shard, names] of byShard) {
    const shardFile = resolveInside(path.dirname(file), shard, 'shard', file, jsonPath(['weight_map', names[0]!]));
    const inShard = new Map(readSafetensorsHeader(shardFile).tensors.map((t) => [t.name, t]));
    for (const name of names) {
      const t = inShard.get(name);
      if (t === undefined) throw new LayerwiseError(`the index puts this tensor in ${shard}, whose header does not list it`, { file, field: jsonPath(['weight_map', name]) });
      tensors.push(t);
    }
  }
  return tensors;
}

// ---- parameter list ---------------------------------------------------------------------------

/**
 * A JSON list `[{ "name": "bert.embeddings.word_embeddings.weight", "shape": [30522, 768] }, …]`
 * in `model.named_parameters()` order; optional per entry: `dtype`, and `trainable: false` for
 * a buffer listed on purpose. Written in Python by
 * `json.dump([{"name": n, "shape": list(p.shape)} for n, p in model.named_parameters()], f)`.
 */
export function readParameterList(file: string, ctx: { planFile?: string; field?: string } = {}): TensorEntry[] {
  return parseParameterList(readTextFile(file, ctx, 'the parameter list'), file);
}

function parseJsonFile(file: string, ctx: { planFile?: string; field?: string }, what: string): unknown {
  try {
    return JSON.parse(readTextFile(file, ctx, what));
  } catch (e) {
    if (e instanceof LayerwiseError) throw e;
    throw new LayerwiseError(`not valid JSON (${(e as Error).message})`, { file });
  }
}

/** A UTF-8 text file of at most 100 MB, without its BOM. */
function readTextFile(file: string, ctx: { planFile?: string; field?: string }, what: string): string {
  let bytes: Buffer;
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    if (size > SAFETENSORS_MAX_HEADER_BYTES) {
      throw new LayerwiseError(`${size} bytes is too large for ${what} (at most ${SAFETENSORS_MAX_HEADER_BYTES})`, { file });
    }
    bytes = Buffer.alloc(size);
    let read = 0;
    while (read < size) {
      const n = readSync(fd, bytes, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
  } catch (e) {
    if (e instanceof LayerwiseError) throw e;
    throw new LayerwiseError(`cannot read ${what} ${JSON.stringify(file)} (${(e as NodeJS.ErrnoException).code ?? String(e)})`, {
      file: ctx.planFile ?? file,
      field: ctx.field,
    });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return decodeUtf8(bytes, file).replace(/^\uFEFF/, '');
}

export function parseParameterList(text: string, file: string): TensorEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new LayerwiseError(`not valid JSON (${(e as Error).message})`, { file });
  }
  if (!Array.isArray(value)) {
    throw new LayerwiseError('must be a JSON list of {"name", "shape"} objects, one per parameter in named_parameters() order', { file });
  }
  if (value.length === 0) throw new LayerwiseError('lists no parameters', { file });
  const seen = new Map<string, number>();
  return value.map((item, i): TensorEntry => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new LayerwiseError(`must be an object {"name", "shape"} (got ${typeName(item)})`, { file, field: `[${i}]` });
    }
    const o = item as Record<string, unknown>;
    const name = o['name'];
    if (typeof name !== 'string') throw new LayerwiseError(`must be a string (got ${typeName(name)})`, { file, field: `[${i}].name` });
    checkName(name, file, `[${i}].name`);
    const first = seen.get(name);
    if (first !== undefined) throw new LayerwiseError(`${JSON.stringify(name)} is already listed at [${first}]`, { file, field: `[${i}].name` });
    seen.set(name, i);
    const shape = checkShape(o['shape'], file, `[${i}].shape`);
    const dtype = o['dtype'];
    if (dtype !== undefined && typeof dtype !== 'string') throw new LayerwiseError(`must be a string (got ${typeName(dtype)})`, { file, field: `[${i}].dtype` });
    const trainable = o['trainable'];
    if (trainable !== undefined && typeof trainable !== 'boolean') {
      throw new LayerwiseError(`must be true or false (got ${typeName(trainable)})`, { file, field: `[${i}].trainable` });
    }
    for (const key of Object.keys(o)) {
      if (!['name', 'shape', 'dtype', 'trainable'].includes(key)) {
        throw new LayerwiseError(`unknown field ${JSON.stringify(key)} (known: name, shape, dtype, trainable)`, { file, field: `[${i}].${key}` });
      }
    }
    return { name, shape, ...(dtype === undefined ? {} : { dtype }), trainable: trainable ?? true };
  });
}

// ---- shared checks ----------------------------------------------------------------------------

function checkName(name: string, file: string, field: string): void {
  if (name === '') throw new LayerwiseError('a tensor name must not be empty', { file, field });
  if (name.startsWith('.') || name.endsWith('.') || name.includes('..')) {
    throw new LayerwiseError(`${JSON.stringify(name)} is not a PyTorch parameter name (empty module name between dots)`, { file, field });
  }
}

function checkShape(shape: unknown, file: string, field: string): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw new LayerwiseError(`must be a list of whole numbers ≥ 0 (got ${JSON.stringify(shape)})`, { file, field });
  }
  return shape as number[];
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

// ---- names → layers ---------------------------------------------------------------------------

const STATISTICS = new Set(['running_mean', 'running_var', 'num_batches_tracked']);

/**
 * Buffers a checkpoint stores beside the parameters: non-float tensors (position ids, counters),
 * BatchNorm's running statistics, and GPT-2's attention masks saved as a rank-4 `bias`.
 */
export function isBuffer(name: string, dtype: string | undefined, shape: readonly number[]): boolean {
  const short = shortNameOf(name);
  if (dtype !== undefined && !FLOAT_DTYPE.test(dtype)) return true;
  if (STATISTICS.has(short)) return true;
  return (short === 'bias' || short === 'masked_bias') && shape.length > 1;
}

/**
 * The layer of a parameter: its module path (the name without the last dotted component). A
 * parameter registered on the root module (ViT's `cls_token`) is a layer of its own.
 */
export function layerOfParam(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot < 0 ? name : name.slice(0, dot);
}

export function shortNameOf(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

// BatchNorm `bn1`, LayerNorm `ln_f`/`ln_1`, GroupNorm `gn`: the short names that say "norm" without the word.
const SHORT_NORM = /^(bn|ln|gn)(\d+|_\w*)?$/i;

/**
 * The normalisation class a module's name (or its running statistics) shows, or '' when it shows
 * none. A layer is a normalisation layer when its path contains "norm" (`LayerNorm`,
 * `layer_norm`, `norm1`, `final_layer_norm`), its own name is `bn…`/`ln…`/`gn…`, or it holds
 * BatchNorm's running statistics. The exporters transcribe the same rule into Python.
 */
export function guessNormClass(layerName: string, weights: ReadonlyArray<Pick<WeightInfo, 'shortName'>>): string {
  const own = layerName.slice(layerName.lastIndexOf('.') + 1);
  if (weights.some((w) => w.shortName === 'running_mean' || w.shortName === 'running_var')) return 'BatchNorm';
  const short = SHORT_NORM.exec(own)?.[1]?.toLowerCase();
  if (/batch_?norm/i.test(own) || short === 'bn') return 'BatchNorm';
  if (/group_?norm/i.test(own) || short === 'gn') return 'GroupNorm';
  if (/rms_?norm/i.test(own)) return 'RMSNorm';
  if (/layer_?norm/i.test(own) || short === 'ln') return 'LayerNorm';
  if (/norm/i.test(layerName)) return 'Norm';
  return '';
}

/** The same rule as a regular expression source, for the exporters (tested against guessNormClass). */
export const SHORT_NORM_SOURCE = SHORT_NORM.source;

/**
 * Layers from tensors: one per module path, in the order of the module's first tensor. A
 * parameter list is in `named_parameters()` order, which is the model's registration order; a
 * safetensors header is sorted by dtype and name, so its order is reconstructed: numbers in
 * names compare as numbers (`layer.2` before `layer.10`), and among siblings, modules named like
 * embeddings come first and classifier heads last.
 */
export function pytorchModelInfo(tensors: readonly TensorEntry[], source: string, order: 'given' | 'natural'): ModelInfo {
  const byLayer = new Map<string, WeightInfo[]>();
  const sorted = order === 'given' ? tensors : [...tensors].sort((a, b) => compareModulePaths(a.name, b.name));
  for (const t of sorted) {
    const layer = layerOfParam(t.name);
    let weights = byLayer.get(layer);
    if (weights === undefined) {
      weights = [];
      byLayer.set(layer, weights);
    }
    weights.push({ name: t.name, shortName: shortNameOf(t.name), shape: [...t.shape], trainable: t.trainable });
  }
  const layers: LayerInfo[] = [...byLayer].map(([name, weights], depth) => ({ name, className: guessNormClass(name, weights), depth, weights }));
  return { source, kind: 'pytorch', layers };
}

const EMBEDDING_LIKE = /embed|^wte$|^wpe$|^cls_token$|^pos_/i;
const HEAD_LIKE = /^(classifier|lm_head|head|heads|score|qa_outputs|cls|fc|logits)$/i;

function siblingRank(part: string): number {
  if (EMBEDDING_LIKE.test(part)) return 0;
  if (HEAD_LIKE.test(part)) return 2;
  return 1;
}

/** Compares dotted names part by part: embeddings first, heads last, numbers numerically. */
export function compareModulePaths(a: string, b: string): number {
  const pa = a.split('.');
  const pb = b.split('.');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    // the parameters of a module come before its submodules' (torch registers them first)
    const xLeaf = i === pa.length - 1;
    const yLeaf = i === pb.length - 1;
    if (xLeaf !== yLeaf) return xLeaf ? -1 : 1;
    const rank = siblingRank(x) - siblingRank(y);
    if (rank !== 0) return rank;
    const nx = /^\d+$/.test(x) ? Number(x) : undefined;
    const ny = /^\d+$/.test(y) ? Number(y) : undefined;
    if (nx !== undefined && ny !== undefined) return nx - ny;
    if (xLeaf && yLeaf) return leafRank(x) - leafRank(y) || (x < y ? -1 : 1);
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** torch registers weight before bias; keep that order within a module. */
function leafRank(short: string): number {
  if (short === 'weight') return 0;
  if (short === 'bias') return 1;
  return 2;
}
