/**
 * TensorFlow.js Layers models on disk: validate model.json and its weight shards before tfjs
 * sees them (so every bad file gets a message naming the file and the JSON path), load through
 * a file-system IOHandler (no tfjs-node, no fetch), replace the head, describe the layers for
 * the core, and save atomically.
 */
import * as tf from '@tensorflow/tfjs';
import {
  closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync,
  rmSync, statSync, writeSync,
} from 'node:fs';
import { totalmem } from 'node:os';
import * as path from 'node:path';
import { parse as parseJsonc, type ParseError } from 'jsonc-parser';
import { LayerwiseError, jsonPath } from '../core/errors.ts';
import type { HeadSpec } from '../core/plan.ts';
import type { LayerInfo, ModelInfo, WeightInfo } from '../core/model-info.ts';
import { resolveInside } from '../core/paths.ts';

type JsonObject = { [key: string]: unknown };

/** A validated model.json with its shards resolved to files inside the model's folder. */
export interface ModelJson {
  /** Absolute path of model.json. */
  file: string;
  folder: string;
  format: string | undefined;
  generatedBy: string | undefined;
  convertedBy: string | null | undefined;
  modelTopology: JsonObject;
  weightsManifest: tf.io.WeightsManifestConfig;
  trainingConfig: tf.io.TrainingConfig | undefined;
  userDefinedMetadata: { [key: string]: object } | undefined;
  /** Per manifest group, the absolute shard files in order. */
  shardFiles: string[][];
  /** Bytes all shards hold together (checked equal to what the manifest's weights need). */
  weightBytes: number;
}

export interface ModelContext {
  /** The plan that names the model, for errors about the model path itself. */
  planFile?: string;
  /** The plan field that names it (`model`). */
  field?: string;
}

const BYTES_PER_ELEMENT: Record<string, number> = { float32: 4, int32: 4 };
const QUANTIZED_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

/** `path` is a model.json file or a folder holding one. */
export function modelJsonPath(p: string): string {
  try {
    if (statSync(p).isDirectory()) return path.join(p, 'model.json');
  } catch {
    // missing: readModelJson reports it with the plan's context
  }
  return p;
}

export function readModelJson(modelPath: string, ctx: ModelContext = {}): ModelJson {
  const file = path.resolve(modelJsonPath(modelPath));
  const folder = path.dirname(file);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'model file not found' : `cannot read the model file (${code ?? String(e)})`;
    throw new LayerwiseError(`${why}: ${file}`, ctx.planFile !== undefined
      ? { file: ctx.planFile, field: ctx.field ?? 'model' }
      : { file });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new LayerwiseError(`not valid JSON (${(e as Error).message})`, { file, field: jsonErrorLocation(text) });
  }
  const bad = (problem: string, at: Array<string | number>): LayerwiseError =>
    new LayerwiseError(problem, { file, field: jsonPath(at) });

  if (!isObject(parsed)) throw bad('a model.json must be a JSON object', []);
  const topology = parsed['modelTopology'];
  if (topology === undefined) {
    throw bad('modelTopology is missing: this is not a TensorFlow.js Layers model' +
      (parsed['format'] === 'graph-model' ? ' (it is a graph model, which cannot be fine-tuned)' : ''), ['modelTopology']);
  }
  if (!isObject(topology)) throw bad('modelTopology must be an object', ['modelTopology']);
  const format = parsed['format'];
  if (format !== undefined && format !== 'layers-model') {
    throw bad(`format "${String(format)}" is not supported: only "layers-model" can be fine-tuned`, ['format']);
  }
  const manifest = parsed['weightsManifest'];
  if (manifest === undefined) throw bad('weightsManifest is missing', ['weightsManifest']);
  if (!Array.isArray(manifest)) throw bad('weightsManifest must be an array', ['weightsManifest']);

  const groups: tf.io.WeightsManifestConfig = [];
  const shardFiles: string[][] = [];
  const seen = new Map<string, string>();
  let weightBytes = 0;
  manifest.forEach((entry: unknown, gi: number) => {
    const at = ['weightsManifest', gi];
    if (!isObject(entry)) throw bad('each weightsManifest entry must be an object', at);
    const paths = entry['paths'];
    if (!Array.isArray(paths) || paths.length === 0) throw bad('paths must be a non-empty array of shard file names', [...at, 'paths']);
    const weights = entry['weights'];
    if (!Array.isArray(weights)) throw bad('weights must be an array', [...at, 'weights']);

    const files = paths.map((p: unknown, pi: number) => {
      const field = jsonPath([...at, 'paths', pi]);
      if (typeof p !== 'string' || p === '') throw bad('a shard path must be a non-empty string', [...at, 'paths', pi]);
      if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p)) {
        throw new LayerwiseError(`shard "${p}" is a URL; only files inside the model's folder can be read`, { file, field });
      }
      const shard = resolveInside(folder, p, 'weight shard', file, field);
      let size: number;
      try {
        const st = statSync(shard);
        if (!st.isFile()) throw new LayerwiseError(`shard "${p}" is not a file`, { file, field });
        size = st.size;
      } catch (e) {
        if (e instanceof LayerwiseError) throw e;
        throw new LayerwiseError(`shard "${p}" not found in ${folder}`, { file, field });
      }
      return { shard, size };
    });

    let need = 0;
    const specs: tf.io.WeightsManifestEntry[] = weights.map((w: unknown, wi: number) => {
      const wat = [...at, 'weights', wi];
      if (!isObject(w)) throw bad('each weight must be an object with name, shape and dtype', wat);
      const name = w['name'];
      if (typeof name !== 'string' || name === '') throw bad('name must be a non-empty string', [...wat, 'name']);
      const earlier = seen.get(name);
      if (earlier !== undefined) throw bad(`weight "${name}" is listed twice (also at ${earlier})`, [...wat, 'name']);
      seen.set(name, jsonPath(wat));
      const shape = w['shape'];
      if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
        throw bad(`shape of "${name}" must be an array of non-negative whole numbers`, [...wat, 'shape']);
      }
      const dtype = w['dtype'];
      if (typeof dtype !== 'string' || !(dtype in BYTES_PER_ELEMENT)) {
        throw bad(dtype === undefined ? `dtype of "${name}" is missing (float32 or int32)` : `dtype ${JSON.stringify(dtype)} of "${name}" is not supported (float32 or int32)`, [...wat, 'dtype']);
      }
      const spec: tf.io.WeightsManifestEntry = { name, shape: shape as number[], dtype: dtype as 'float32' | 'int32' };
      if (typeof w['group'] === 'string') spec.group = w['group'] as tf.io.WeightGroup;
      let bytesPer = BYTES_PER_ELEMENT[dtype] ?? 4;
      const q = w['quantization'];
      if (q !== undefined) {
        if (!isObject(q) || typeof q['dtype'] !== 'string' || !(q['dtype'] in QUANTIZED_BYTES)) {
          throw bad(`quantization of "${name}" is not supported (uint8, uint16 or float16)`, [...wat, 'quantization']);
        }
        const qd = q['dtype'] as 'uint8' | 'uint16' | 'float16';
        if (qd === 'float16' && dtype !== 'float32') {
          throw bad(`float16 quantization needs dtype float32, "${name}" is ${dtype}`, [...wat, 'quantization']);
        }
        if (qd !== 'float16' && (typeof q['scale'] !== 'number' || typeof q['min'] !== 'number')) {
          throw bad(`${qd} quantization of "${name}" needs numeric scale and min`, [...wat, 'quantization']);
        }
        spec.quantization = { dtype: qd, scale: q['scale'] as number, min: q['min'] as number };
        bytesPer = QUANTIZED_BYTES[qd] ?? 4;
      }
      need += bytesPer * (shape as number[]).reduce((a: number, b: number) => a * b, 1);
      return spec;
    });

    const have = files.reduce((n, f) => n + f.size, 0);
    if (have !== need) {
      const hint = have < need ? 'a shard is truncated or missing data' : 'the shards hold extra bytes';
      throw bad(`the shards hold ${have} bytes but the ${specs.length} weights listed in ` +
        `${jsonPath([...at, 'weights'])} need ${need} bytes (${hint})`, [...at, 'paths']);
    }
    weightBytes += have;
    groups.push({ paths: paths as string[], weights: specs });
    shardFiles.push(files.map((f) => f.shard));
  });

  return {
    file,
    folder,
    format: typeof format === 'string' ? format : undefined,
    generatedBy: typeof parsed['generatedBy'] === 'string' ? parsed['generatedBy'] : undefined,
    convertedBy: typeof parsed['convertedBy'] === 'string' || parsed['convertedBy'] === null
      ? (parsed['convertedBy'] as string | null) : undefined,
    modelTopology: topology,
    weightsManifest: groups,
    trainingConfig: isObject(parsed['trainingConfig']) ? (parsed['trainingConfig'] as unknown as tf.io.TrainingConfig) : undefined,
    userDefinedMetadata: isObject(parsed['userDefinedMetadata'])
      ? (parsed['userDefinedMetadata'] as { [key: string]: object }) : undefined,
    shardFiles,
    weightBytes,
  };
}

/** Layer class names from the topology (nested models included), without creating tensors. */
export function layerClassNames(json: ModelJson): string[] {
  const out: string[] = [];
  const visit = (node: unknown): void => {
    if (!isObject(node)) return;
    const className = node['class_name'];
    const config = node['config'];
    const layers = Array.isArray(config) ? config : isObject(config) ? config['layers'] : undefined;
    if (Array.isArray(layers)) {
      for (const l of layers) visit(l);
    } else if (typeof className === 'string') {
      out.push(className);
    }
  };
  const top = json.modelTopology;
  visit(isObject(top['model_config']) ? top['model_config'] : top);
  return out;
}

/** Loads the model's topology and weights through a file-system IOHandler. */
export async function loadModel(modelPath: string, ctx: ModelContext = {}): Promise<tf.LayersModel> {
  const json = readModelJson(modelPath, ctx);
  const weightData = readShards(json);
  const weightSpecs = json.weightsManifest.flatMap((g) => g.weights);
  const handler: tf.io.IOHandler = {
    load: async () => ({
      modelTopology: json.modelTopology,
      weightSpecs,
      weightData,
      format: json.format,
      generatedBy: json.generatedBy,
      convertedBy: json.convertedBy,
      trainingConfig: json.trainingConfig,
      userDefinedMetadata: json.userDefinedMetadata,
    }),
  };
  try {
    return await tf.loadLayersModel(handler, { strict: true });
  } catch (e) {
    throw await explainLoadFailure(json, e);
  }
}

function readShards(json: ModelJson): ArrayBuffer {
  const out = new Uint8Array(json.weightBytes);
  let offset = 0;
  json.shardFiles.forEach((files, gi) => files.forEach((f, pi) => {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f);
    } catch (e) {
      throw new LayerwiseError(`cannot read shard (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
        { file: json.file, field: jsonPath(['weightsManifest', gi, 'paths', pi]) });
    }
    if (offset + bytes.length > out.length) {
      throw new LayerwiseError('shard changed size while it was read', { file: json.file, field: jsonPath(['weightsManifest', gi, 'paths', pi]) });
    }
    out.set(bytes, offset);
    offset += bytes.length;
  }));
  return out.buffer;
}

/**
 * tfjs's own messages ("Shape mismatch: [6,8] vs. [5,8]") name neither file nor weight: rebuild
 * the topology without weights and compare it with the manifest to say which weight is wrong.
 */
async function explainLoadFailure(json: ModelJson, cause: unknown): Promise<LayerwiseError> {
  let skeleton: tf.LayersModel;
  try {
    // the topology is plain parsed JSON; tfjs types it as its own JSON dict
    const config = { modelTopology: json.modelTopology } as unknown as Parameters<typeof tf.models.modelFromJSON>[0];
    skeleton = await tf.models.modelFromJSON(config);
  } catch (e) {
    const unknown = /Unknown layer: ([^\s.]+)/.exec(oneLine(e));
    if (unknown !== null) {
      return new LayerwiseError(`layer class "${unknown[1]}" is not built into TensorFlow.js (custom layers are not supported)`,
        { file: json.file, field: 'modelTopology' });
    }
    return new LayerwiseError(`tfjs cannot build the model from modelTopology: ${oneLine(e)}`, { file: json.file, field: 'modelTopology' });
  }
  try {
    const needed = new Map<string, { shape: number[]; layer: string }>();
    for (const layer of skeleton.layers) {
      for (const w of layer.weights) needed.set(w.originalName, { shape: w.shape as number[], layer: layer.name });
    }
    const listed = new Set<string>();
    for (const [gi, g] of json.weightsManifest.entries()) {
      for (const [wi, spec] of g.weights.entries()) {
        if (spec.group === 'optimizer') continue;
        const at = jsonPath(['weightsManifest', gi, 'weights', wi]);
        let target = needed.get(spec.name);
        let name = spec.name;
        if (target === undefined) {
          // TF 2.2 put the cell name inside weight names; tfjs drops it the same way
          const tokens = spec.name.split('/');
          name = [...tokens.slice(0, -2), tokens[tokens.length - 1]].join('/');
          target = needed.get(name);
        }
        if (target === undefined) {
          return new LayerwiseError(`weight "${spec.name}" belongs to no layer of modelTopology`, { file: json.file, field: `${at}.name` });
        }
        listed.add(name);
        if (!sameShape(target.shape, spec.shape)) {
          return new LayerwiseError(`weight "${spec.name}" has shape [${spec.shape.join(', ')}] in the manifest, ` +
            `but layer "${target.layer}" in modelTopology needs [${target.shape.join(', ')}]`, { file: json.file, field: `${at}.shape` });
        }
      }
    }
    const missing = [...needed.keys()].filter((n) => !listed.has(n));
    if (missing.length > 0) {
      return new LayerwiseError(`weightsManifest lists no data for ${missing.map((m) => `"${m}"`).join(', ')}`,
        { file: json.file, field: 'weightsManifest' });
    }
  } finally {
    skeleton.dispose();
  }
  return new LayerwiseError(`tfjs could not load the model: ${oneLine(cause)}`, { file: json.file });
}

/** tfjs messages span lines; the CLI prints one. */
function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).replace(/\s+/g, ' ').trim();
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * The core's view of the model. Weight names are tfjs's `originalName` (`dense/kernel`, as in
 * the manifest): `name` gets a `_1` suffix when another model in the process already holds a
 * variable of that name.
 */
export function describeModel(model: tf.LayersModel, source: string, newHeadLayers?: Set<string>): ModelInfo {
  const layers: LayerInfo[] = model.layers.map((layer, depth) => {
    const structural = structurallyTrainable(layer);
    const weights: WeightInfo[] = layer.weights.map((w) => {
      const name = w.originalName;
      return {
        name,
        shortName: name.slice(name.lastIndexOf('/') + 1),
        shape: [...w.shape] as number[],
        trainable: structural.has(w),
      };
    });
    const info: LayerInfo = { name: layer.name, className: layer.getClassName(), depth, weights };
    if (newHeadLayers?.has(layer.name)) info.isNewHead = true;
    const shape = layer.outputShape;
    if (Array.isArray(shape) && !shape.some(Array.isArray)) info.outputShape = [...(shape as Array<number | null>)];
    return info;
  });
  return {
    source,
    kind: 'tfjs',
    layers,
    inputShape: [...(model.inputs[0]?.shape ?? [])],
    outputShape: [...(model.outputs[0]?.shape ?? [])],
  };
}

/**
 * Weights a layer optimises when it trains. `layer.trainableWeights` is empty for a layer whose
 * config says `trainable: false`, so read the list the layer built (BatchNorm's moving
 * statistics are never in it).
 */
function structurallyTrainable(layer: tf.layers.Layer): Set<tf.LayerVariable> {
  const built = (layer as unknown as { _trainableWeights?: tf.LayerVariable[] })._trainableWeights;
  return new Set(built ?? layer.trainableWeights);
}

/**
 * Replaces the top of the model: keeps every layer up to `head.cut`, then adds
 * Dense(hidden[i], relu) [+ Dropout] … and Dense(outputs). The output activation defaults to
 * `linear` (logits): the classification loss applies softmax itself, which is numerically
 * safer than softmax followed by a log. A rank > 2 cut output is flattened first
 * (`head_flatten`). Kernels are initialised from `seed` so runs repeat.
 */
export function applyHead(
  model: tf.LayersModel,
  head: HeadSpec,
  outputs: number,
  seed = 0,
  planFile?: string,
): { model: tf.LayersModel; newLayers: string[] } {
  const at = (field: string) => (planFile === undefined ? { field } : { file: planFile, field });
  const cutLayer = head.cut === undefined ? defaultCut(model, at('head.cut')) : findLayer(model, head.cut, at('head.cut'));
  if (!Number.isInteger(outputs) || outputs < 1) {
    throw new LayerwiseError(`the new head needs a whole number of outputs ≥ 1, got ${outputs}`, at('head.outputs'));
  }
  const kept = keptLayerNames(model, cutLayer);
  const newLayers: string[] = [];
  const uniqueName = (base: string): string => {
    let name = base;
    for (let i = 1; kept.has(name) || newLayers.includes(name); i++) name = `${base}_${i}`;
    newLayers.push(name);
    return name;
  };
  let x = cutLayer.output;
  if (Array.isArray(x)) {
    throw new LayerwiseError(`layer "${cutLayer.name}" has several outputs; cut at a layer with one`, at('head.cut'));
  }
  if (x.shape.length > 2) {
    x = tf.layers.flatten({ name: uniqueName('head_flatten') }).apply(x) as tf.SymbolicTensor;
  }
  assertHeadFits(x.shape[1] ?? 0, [...(head.hidden ?? []), outputs], at(head.hidden !== undefined && head.hidden.length > 0 ? 'head.hidden' : 'head.outputs'));
  let seedOffset = 0;
  const dense = (units: number, activation: 'relu' | 'linear' | 'softmax' | 'sigmoid', name: string): tf.layers.Layer =>
    tf.layers.dense({
      units,
      activation,
      name,
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed + seedOffset++ }),
      biasInitializer: 'zeros',
    });
  (head.hidden ?? []).forEach((units, i) => {
    x = dense(units, 'relu', uniqueName(`head_dense_${i + 1}`)).apply(x) as tf.SymbolicTensor;
    if (head.dropout !== undefined && head.dropout > 0) {
      // no dropout seed: tfjs would reuse one mask for every step
      x = tf.layers.dropout({ rate: head.dropout, name: uniqueName(`head_dropout_${i + 1}`) }).apply(x) as tf.SymbolicTensor;
    }
  });
  if ((head.hidden ?? []).length === 0 && head.dropout !== undefined && head.dropout > 0) {
    x = tf.layers.dropout({ rate: head.dropout, name: uniqueName('head_dropout') }).apply(x) as tf.SymbolicTensor;
  }
  x = dense(outputs, head.activation ?? 'linear', uniqueName('head_out')).apply(x) as tf.SymbolicTensor;
  const replaced = tf.model({ inputs: model.inputs, outputs: x, name: `${model.name}_with_head` });
  return { model: replaced, newLayers };
}

/** The new dense layers' float32 weights and the optimizer's two moments for each must fit in this machine's memory. */
function assertHeadFits(inputs: number, units: readonly number[], where: { file?: string; field: string }): void {
  let weights = 0;
  let width = inputs;
  for (const u of units) {
    weights += (width + 1) * u;
    width = u;
  }
  const bytes = weights * 4 * 3;
  if (bytes > totalmem()) {
    const gb = (b: number) => `${Math.round(b / 2 ** 30)} GB`;
    throw new LayerwiseError(
      `the new head would hold ${weights.toPrecision(2)} weights (${gb(bytes)} with the optimizer's two moments), more than this machine's ${gb(totalmem())} of memory`,
      where,
    );
  }
}

/** The layer feeding the last layer that has weights (the second-to-last in a plain stack). */
export function defaultCut(model: tf.LayersModel, where: { file?: string; field: string }): tf.layers.Layer {
  const layers = model.layers;
  let last = layers.length - 1;
  while (last > 0 && layers[last]!.weights.length === 0) last--;
  const inbound = layers[last]?.inboundNodes[0]?.inboundLayers ?? [];
  const feeding = inbound.length === 1 ? inbound[0] : undefined;
  if (feeding === undefined || feeding.getClassName() === 'InputLayer') {
    throw new LayerwiseError('cannot tell which layer to keep below the current head: name it with head.cut', where);
  }
  return feeding;
}

function findLayer(model: tf.LayersModel, name: string, where: { file?: string; field: string }): tf.layers.Layer {
  const found = model.layers.find((l) => l.name === name);
  if (found !== undefined) return found;
  const names = model.layers.map((l) => l.name);
  const close = names
    .map((n) => ({ n, d: editDistance(n.toLowerCase(), name.toLowerCase()) }))
    .sort((a, b) => a.d - b.d || a.n.localeCompare(b.n))
    .slice(0, 3)
    .map((c) => `"${c.n}"`);
  throw new LayerwiseError(`no layer named "${name}"; closest: ${close.join(', ')}`, where);
}

/** Names of the layers the new model keeps: everything the cut layer's output depends on. */
function keptLayerNames(model: tf.LayersModel, cut: tf.layers.Layer): Set<string> {
  const kept = new Set<string>();
  const stack: tf.layers.Layer[] = [cut];
  while (stack.length > 0) {
    const layer = stack.pop()!;
    if (kept.has(layer.name)) continue;
    kept.add(layer.name);
    for (const node of layer.inboundNodes) stack.push(...node.inboundLayers);
  }
  for (const l of model.layers) if (l.getClassName() === 'InputLayer') kept.add(l.name);
  return kept;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = Math.min(up + 1, row[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return row[b.length]!;
}

export const WEIGHTS_FILE = 'weights.bin';

/**
 * Writes model.json + weights.bin. Both are written into a temporary sibling folder first; a new
 * folder is then renamed into place whole. Into an existing folder (a run folder holding
 * report.json) the files are renamed one by one, weights first, model.json last, so model.json
 * never names weights that are not fully on disk.
 */
export async function saveModel(model: tf.LayersModel, dir: string): Promise<void> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  mkdirSync(parent, { recursive: true });
  const tmp = path.join(parent, `.${path.basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}`);
  mkdirSync(tmp);
  try {
    await model.save(tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      const modelJson = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy,
        convertedBy: 'layerwise',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        ...(artifacts.trainingConfig !== undefined ? { trainingConfig: artifacts.trainingConfig } : {}),
        ...(artifacts.userDefinedMetadata !== undefined ? { userDefinedMetadata: artifacts.userDefinedMetadata } : {}),
      };
      writeDurable(path.join(tmp, WEIGHTS_FILE), new Uint8Array(weightData));
      writeDurable(path.join(tmp, 'model.json'), Buffer.from(JSON.stringify(modelJson)));
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weightData.byteLength,
        },
      };
    }));
    if (!existsSync(target)) {
      renameSync(tmp, target);
      return;
    }
    renameSync(path.join(tmp, WEIGHTS_FILE), path.join(target, WEIGHTS_FILE));
    renameSync(path.join(tmp, 'model.json'), path.join(target, 'model.json'));
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { recursive: true, force: true });
  }
}

function writeDurable(file: string, bytes: Uint8Array): void {
  const fd = openSync(file, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** `line L, column C` of the first syntax error, for the editor to place a diagnostic. */
function jsonErrorLocation(text: string): string {
  const errors: ParseError[] = [];
  parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const offset = errors[0]?.offset ?? 0;
  const before = text.slice(0, offset).split(/\r?\n/);
  return `line ${before.length}, column ${(before[before.length - 1]?.length ?? 0) + 1}`;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
