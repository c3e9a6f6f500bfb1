/**
 * The converted MobileNetV2 of examples/mobilenet-fashion computes what nsfwjs's own copy
 * computes: its `features` layer (global average pooling over `out_relu`) on a fixed image,
 * against nsfwjs loaded through its own path (`nsfwjs.load`, which hands tfjs the model through
 * an in-memory IO handler — the same route as `tf.io.fromMemory`).
 */
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { loadModel } from '../../src/engine/model-io.ts';

const example = path.join(__dirname, '..', '..', 'examples', 'mobilenet-fashion');
const modelFile = path.join(example, 'model', 'model.json');

interface NsfwjsInstance {
  model: tf.LayersModel;
  /** nsfwjs's JSONHandler: its load() decodes the base64 shard into in-memory artifacts. */
  urlOrIOHandler: { load(): Promise<tf.io.ModelArtifacts> };
  infer(img: tf.Tensor3D, endpoint?: string): tf.Tensor;
  dispose?: () => void;
}

let nsfw: NsfwjsInstance;

before(async () => {
  await tf.setBackend('cpu');
  const info = console.info;
  console.info = () => undefined; // nsfwjs announces which model it loads
  try {
    const { load } = (await import('nsfwjs')) as unknown as { load(name: string, o: { size: number }): Promise<NsfwjsInstance> };
    nsfw = await load('MobileNetV2', { size: 224 });
  } finally {
    console.info = info;
  }
});

/** A fixed, non-trivial RGB image: gradients and a checkerboard, integer values 0–255. */
function fixedImage(size: number): tf.Tensor3D {
  const px = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 3;
      px[i] = Math.round((255 * x) / (size - 1));
      px[i + 1] = Math.round((255 * y) / (size - 1));
      px[i + 2] = (Math.floor(x / 8) + Math.floor(y / 8)) % 2 === 0 ? 230 : 20;
    }
  }
  return tf.tensor3d(px, [size, size, 3]);
}

function maxRelativeError(actual: Float32Array, expected: Float32Array): number {
  const scale = Math.max(...expected.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!) / scale);
  return worst;
}

/** The converted files with only the input size changed, loaded by Layerwise's own loader. */
async function convertedAt(size: number): Promise<tf.LayersModel> {
  const model = await loadModel(modelFile);
  if (size === model.inputs[0]!.shape[1]) return model;
  const artifacts = await new Promise<tf.io.ModelArtifacts>((resolve) => {
    void model.save(tf.io.withSaveHandler(async (a) => {
      resolve(a);
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
  });
  model.dispose();
  const topology = structuredClone(artifacts.modelTopology) as { config: { layers: Array<{ config: Record<string, unknown> }> } };
  topology.config.layers[0]!.config['batch_input_shape'] = [null, size, size, 3];
  return tf.loadLayersModel(tf.io.fromMemory({ ...artifacts, modelTopology: topology as unknown as tf.io.ModelArtifacts['modelTopology'] }));
}

test('at 224 px the converted features equal nsfwjs\'s own 7×7 pooling + flatten (infer, endpoint flatten_1)', async () => {
  const image = fixedImage(224);
  const expected = nsfw.infer(image, 'flatten_1'); // nsfwjs divides by 255 itself
  const model = await convertedAt(224);
  const actual = tf.tidy(() => model.predict(image.div(255).expandDims(0)) as tf.Tensor);
  assert.deepEqual(actual.shape, [1, 1280]);
  assert.deepEqual(expected.shape, [1, 1280]);
  const err = maxRelativeError(await actual.data() as Float32Array, await expected.data() as Float32Array);
  assert.ok(err < 1e-4, `max error ${err} of the largest feature`);
  [image, expected, actual].forEach((t) => t.dispose());
  model.dispose();
});

test('at 96 px (the example) the converted features equal nsfwjs\'s network with the same input size, pooled globally', async () => {
  // nsfwjs's own in-memory artifacts (its JSONHandler decodes the base64 shard), input set to 96
  const artifacts = await nsfw.urlOrIOHandler.load();
  const topology = structuredClone(artifacts.modelTopology) as {
    model_config: { config: { layers: Array<{ name: string; config: Record<string, unknown> }>; output_layers: unknown } };
  };
  const cfg = topology.model_config.config;
  cfg.layers[0]!.config['batch_input_shape'] = [null, 96, 96, 3];
  cfg.layers = cfg.layers.slice(0, cfg.layers.findIndex((l) => l.name === 'out_relu') + 1);
  cfg.output_layers = [['out_relu', 0, 0]];
  const keptWeights = new Set(cfg.layers.map((l) => l.name));
  // keep the specs and bytes of the kept layers (the classifier's weights sit between them in the shard)
  const specs = artifacts.weightSpecs!;
  const bytes = new Uint8Array(artifacts.weightData as ArrayBuffer);
  const keptSpecs: tf.io.WeightsManifestEntry[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1) * (s.quantization?.dtype === 'uint8' ? 1 : 4);
    if (keptWeights.has(s.name.slice(0, s.name.lastIndexOf('/')))) {
      keptSpecs.push(s);
      parts.push(bytes.subarray(offset, offset + n));
    }
    offset += n;
  }
  assert.equal(offset, bytes.length, 'the weight specs cover the shard');
  const kept = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  parts.reduce((at, p) => (kept.set(p, at), at + p.length), 0);
  const reference = await tf.loadLayersModel(tf.io.fromMemory({
    modelTopology: topology as unknown as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs: keptSpecs,
    weightData: kept.buffer,
  }));

  const image = fixedImage(96);
  const x = image.div(255).expandDims(0);
  const expected = tf.tidy(() => (reference.predict(x) as tf.Tensor).mean([1, 2]));
  const model = await loadModel(modelFile);
  assert.deepEqual(model.inputs[0]!.shape, [null, 96, 96, 3]);
  assert.equal(model.outputs[0]!.sourceLayer.name, 'features');
  const actual = model.predict(x) as tf.Tensor;
  const err = maxRelativeError(await actual.data() as Float32Array, await expected.data() as Float32Array);
  assert.ok(err < 1e-4, `max error ${err} of the largest feature`);
  [image, x, expected, actual].forEach((t) => t.dispose());
  model.dispose();
  reference.dispose();
});

test('the converted files: uint8 weights, no classifier, the file\'s own trainable flags kept, and the data folders', () => {
  const json = JSON.parse(readFileSync(modelFile, 'utf8')) as {
    modelTopology: { model_config: { config: { layers: Array<{ name: string; class_name: string; config: Record<string, unknown> }> } }; training_config?: unknown };
    weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; quantization?: { dtype: string } }> }>;
  };
  const layers = json.modelTopology.model_config.config.layers;
  assert.equal(layers.length, 156);
  assert.equal(layers.filter((l) => l.config['trainable'] === false).length, 98);
  assert.equal(layers.filter((l) => l.class_name === 'Dense' || l.class_name === 'Dropout').length, 0, 'the original classifier is gone');
  assert.equal(json.modelTopology.training_config, undefined);
  assert.equal(layers[layers.length - 1]!.class_name, 'GlobalAveragePooling2D');
  const weights = json.weightsManifest.flatMap((g) => g.weights);
  assert.ok(weights.every((w) => w.quantization?.dtype === 'uint8'));
  const size = readFileSync(path.join(path.dirname(modelFile), 'weights.bin')).length;
  assert.ok(size > 2e6 && size < 3e6, `weights.bin is ${size} bytes`);

  const count = (part: string): number[] => readdirSync(path.join(example, 'data', part)).map((c) => readdirSync(path.join(example, 'data', part, c)).length);
  assert.deepEqual(count('train'), Array(10).fill(10));
  assert.deepEqual(count('val'), Array(10).fill(20));
  assert.deepEqual(count('test'), Array(10).fill(50));
});
