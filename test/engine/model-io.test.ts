import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import {
  applyHead, describeModel, layerClassNames, loadModel, readModelJson, saveModel,
} from '../../src/engine/model-io.ts';

const fixtures = path.join(__dirname, '..', 'fixtures', 'models');
const mlpDir = path.join(fixtures, 'mlp');
const cnnDir = path.join(fixtures, 'cnn');

before(async () => {
  await tf.setBackend('cpu');
});

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'layerwise-model-io-'));
}

/** Weight values straight from weights.bin, sliced by the manifest: independent of tfjs loading. */
function weightsFromDisk(dir: string): Map<string, { shape: number[]; values: Float32Array }> {
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as {
    weightsManifest: Array<{ paths: string[]; weights: Array<{ name: string; shape: number[] }> }>;
  };
  const out = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const group of json.weightsManifest) {
    const bytes = Buffer.concat(group.paths.map((p) => readFileSync(path.join(dir, p))));
    const all = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    let offset = 0;
    for (const w of group.weights) {
      const size = w.shape.reduce((a, b) => a * b, 1);
      out.set(w.name, { shape: w.shape, values: all.slice(offset, offset + size) });
      offset += size;
    }
  }
  return out;
}

function valuesOf(model: tf.LayersModel): Map<string, Float32Array> {
  return new Map(model.weights.map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
}

test('readModelJson resolves shards and counts their bytes', () => {
  const json = readModelJson(mlpDir);
  assert.equal(json.file, path.join(mlpDir, 'model.json'));
  assert.deepEqual(json.shardFiles, [[path.join(mlpDir, 'weights.bin')]]);
  // 6·8 + 8 + 4·8 (BN) + 8·3 + 3 floats
  assert.equal(json.weightBytes, (48 + 8 + 32 + 24 + 3) * 4);
});

test('layerClassNames reads the topology, nested models included', () => {
  assert.deepEqual(layerClassNames(readModelJson(mlpDir)), ['Dense', 'BatchNormalization', 'Dense']);
  assert.deepEqual(layerClassNames(readModelJson(cnnDir)),
    ['Conv2D', 'BatchNormalization', 'ReLU', 'MaxPooling2D', 'Flatten', 'Dense']);
  const dir = tempDir();
  const keras = {
    format: 'layers-model',
    modelTopology: {
      keras_version: '2.15.0',
      model_config: {
        class_name: 'Functional',
        config: {
          layers: [
            { class_name: 'InputLayer', config: {} },
            { class_name: 'Sequential', config: { layers: [{ class_name: 'Conv2D', config: {} }, { class_name: 'ReLU', config: {} }] } },
            { class_name: 'GlobalAveragePooling2D', config: {} },
          ],
        },
      },
    },
    weightsManifest: [],
  };
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(keras));
  assert.deepEqual(layerClassNames(readModelJson(dir)), ['InputLayer', 'Conv2D', 'ReLU', 'GlobalAveragePooling2D']);
});

test('loadModel gives the weights stored in the shards', async () => {
  const model = await loadModel(path.join(mlpDir, 'model.json'));
  const disk = weightsFromDisk(mlpDir);
  const loaded = valuesOf(model);
  assert.equal(loaded.size, 8);
  for (const [name, w] of disk) {
    assert.deepEqual(loaded.get(name), w.values, name);
  }
  model.dispose();
});

test('weights split over several shards and groups load in manifest order', async () => {
  const dir = tempDir();
  const json = JSON.parse(readFileSync(path.join(mlpDir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const bin = readFileSync(path.join(mlpDir, 'weights.bin'));
  const weights = json.weightsManifest[0]!.weights;
  // group 0: dense/kernel + dense/bias (56 floats) in shards of 100 and 124 bytes; group 1: the rest
  writeFileSync(path.join(dir, 'g0-a.bin'), bin.subarray(0, 100));
  writeFileSync(path.join(dir, 'g0-b.bin'), bin.subarray(100, 224));
  writeFileSync(path.join(dir, 'g1.bin'), bin.subarray(224));
  json.weightsManifest = [
    { paths: ['g0-a.bin', 'g0-b.bin'], weights: weights.slice(0, 2) },
    { paths: ['g1.bin'], weights: weights.slice(2) },
  ];
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  const got = valuesOf(await loadModel(dir));
  for (const [name, w] of weightsFromDisk(mlpDir)) assert.deepEqual(got.get(name), w.values, name);
});

test('uint8-quantized weights are counted at one byte each and dequantized', async () => {
  const dir = tempDir();
  const json = JSON.parse(readFileSync(path.join(mlpDir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const disk = weightsFromDisk(mlpDir);
  const spec = json.weightsManifest[0]!.weights[0]!;
  assert.equal(spec.name, 'dense/kernel');
  spec.quantization = { dtype: 'uint8', scale: 0.01, min: -1 };
  const q = Uint8Array.from({ length: 48 }, (_, i) => (i * 37) % 256);
  const rest = json.weightsManifest[0]!.weights.slice(1).map((w) => Buffer.from(disk.get(w.name)!.values.buffer));
  writeFileSync(path.join(dir, 'weights.bin'), Buffer.concat([Buffer.from(q), ...rest]));
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  assert.equal(readModelJson(dir).weightBytes, 48 + (8 + 32 + 24 + 3) * 4);
  const model = await loadModel(dir);
  const kernel = valuesOf(model).get('dense/kernel')!;
  q.forEach((v, i) => assert.ok(Math.abs(kernel[i]! - (v * 0.01 - 1)) < 1e-6));
  assert.deepEqual(valuesOf(model).get('dense_1/bias'), disk.get('dense_1/bias')!.values);
});

test('describeModel names weights as the manifest does, even when tfjs renames variables', async () => {
  const first = await loadModel(mlpDir);
  const second = await loadModel(mlpDir);
  // a second copy in the same process gets unique variable names; originalName stays
  assert.notEqual(second.weights[0]!.name, 'dense/kernel');
  const info = describeModel(second, 'mlp/model.json');
  assert.deepEqual(info.layers.map((l) => [l.name, l.className, l.depth]), [
    ['dense', 'Dense', 0], ['batch_normalization', 'BatchNormalization', 1], ['dense_1', 'Dense', 2],
  ]);
  const bn = info.layers[1]!;
  assert.deepEqual(bn.weights.map((w) => [w.name, w.shortName, w.trainable]), [
    ['batch_normalization/gamma', 'gamma', true],
    ['batch_normalization/beta', 'beta', true],
    ['batch_normalization/moving_mean', 'moving_mean', false],
    ['batch_normalization/moving_variance', 'moving_variance', false],
  ]);
  assert.deepEqual(info.layers[0]!.weights.map((w) => [w.name, w.shape]), [['dense/kernel', [6, 8]], ['dense/bias', [8]]]);
  assert.deepEqual(info.inputShape, [null, 6]);
  assert.deepEqual(info.outputShape, [null, 3]);
  assert.equal(info.kind, 'tfjs');
  first.dispose();
  second.dispose();
});

test('describeModel marks weights trainable by structure, not by a frozen layer config', async () => {
  const dir = tempDir();
  cpSync(mlpDir, dir, { recursive: true });
  const file = path.join(dir, 'model.json');
  const json = JSON.parse(readFileSync(file, 'utf8')) as { modelTopology: { config: { layers: Array<{ config: Record<string, unknown> }> } } };
  json.modelTopology.config.layers[0]!.config['trainable'] = false;
  writeFileSync(file, JSON.stringify(json));
  const model = await loadModel(dir);
  assert.equal(model.layers[0]!.trainable, false);
  const info = describeModel(model, 'frozen');
  assert.deepEqual(info.layers[0]!.weights.map((w) => w.trainable), [true, true]);
  model.dispose();
});

test('applyHead keeps the layers up to the cut and adds seeded new layers', async () => {
  const model = await loadModel(mlpDir);
  const before = valuesOf(model);
  const a = applyHead(model, { hidden: [5], dropout: 0.25 }, 4, 7);
  assert.deepEqual(a.newLayers, ['head_dense_1', 'head_dropout_1', 'head_out']);
  const names = a.model.layers.map((l) => l.name).filter((n) => !n.includes('input'));
  assert.deepEqual(names, ['dense', 'batch_normalization', 'head_dense_1', 'head_dropout_1', 'head_out']);
  assert.deepEqual(a.model.outputs[0]!.shape, [null, 4]);
  const out = a.model.getLayer('head_out');
  assert.equal((out.getConfig() as { activation: string }).activation, 'linear');
  assert.deepEqual(out.getWeights()[0]!.shape, [5, 4]);
  // kept layers are the same layers with the same values
  for (const w of a.model.weights) {
    const old = before.get(w.originalName);
    if (w.originalName.startsWith('head_')) assert.equal(old, undefined);
    else assert.deepEqual(w.read().dataSync(), old, w.originalName);
  }
  // the head sees exactly the cut layer's output
  const x = tf.randomNormal([3, 6]);
  const cutOut = tf.model({ inputs: model.inputs, outputs: model.getLayer('batch_normalization').output as tf.SymbolicTensor }).predict(x) as tf.Tensor;
  const [k1, b1] = a.model.getLayer('head_dense_1').getWeights();
  const [k2, b2] = out.getWeights();
  const manual = tf.relu(cutOut.matMul(k1!).add(b1!)).matMul(k2!).add(b2!);
  const got = a.model.predict(x) as tf.Tensor;
  assert.ok(tf.max(tf.abs(got.sub(manual))).dataSync()[0]! < 1e-5);

  const again = applyHead(await loadModel(mlpDir), { hidden: [5], dropout: 0.25 }, 4, 7);
  const other = applyHead(await loadModel(mlpDir), { hidden: [5], dropout: 0.25 }, 4, 8);
  const headKernel = (m: tf.LayersModel): Float32Array => m.getLayer('head_out').getWeights()[0]!.dataSync() as Float32Array;
  assert.deepEqual(headKernel(again.model), headKernel(a.model));
  assert.notDeepEqual(headKernel(other.model), headKernel(a.model));
});

test('applyHead default cut is the input of the last layer with weights', async () => {
  const model = await loadModel(cnnDir);
  const r = applyHead(model, { activation: 'softmax' }, 2);
  assert.deepEqual(r.newLayers, ['head_out']);
  assert.ok(r.model.layers.some((l) => l.name === 'flatten'));
  assert.ok(!r.model.layers.some((l) => l.name === 'dense'));
  assert.equal((r.model.getLayer('head_out').getConfig() as { activation: string }).activation, 'softmax');
  const sum = tf.sum(r.model.predict(tf.randomNormal([2, 8, 8, 1])) as tf.Tensor, 1).dataSync();
  assert.ok(Math.abs(sum[0]! - 1) < 1e-5);
});

test('applyHead flattens a feature map and avoids existing names', async () => {
  const model = await loadModel(cnnDir);
  const cut = applyHead(model, { cut: 'max_pooling2d' }, 3);
  assert.deepEqual(cut.newLayers, ['head_flatten', 'head_out']);
  assert.deepEqual(cut.model.getLayer('head_out').getWeights()[0]!.shape, [3 * 3 * 4, 3]);
  // cutting again below the new head keeps "head_out" and must not reuse its name
  const twice = applyHead(cut.model, { cut: 'head_out', hidden: [2] }, 2);
  assert.deepEqual(twice.newLayers, ['head_dense_1', 'head_out_1']);
});

test('applyHead with an unknown cut names head.cut and the closest layers', async () => {
  const model = await loadModel(mlpDir);
  assert.throws(() => applyHead(model, { cut: 'dense_2' }, 3), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.field, 'head.cut');
    assert.match(e.message, /"dense_1"/);
    assert.match(e.message, /"dense"/);
    return true;
  });
});

test('saveModel writes a model tf.loadLayersModel reads back bit for bit', async () => {
  const model = applyHead(await loadModel(mlpDir), { hidden: [4] }, 2, 3).model;
  const parent = tempDir();
  const dir = path.join(parent, 'run');
  await saveModel(model, dir);
  assert.deepEqual(readdirSync(parent), ['run']);
  assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'weights.bin']);

  // load through tfjs's own in-memory handler, not through loadModel
  const json = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
  const bin = readFileSync(path.join(dir, 'weights.bin'));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const reloaded = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData }));
  const want = valuesOf(model);
  const got = valuesOf(reloaded);
  assert.equal(got.size, want.size);
  for (const [name, v] of want) assert.deepEqual(got.get(name), v, name);
  assert.deepEqual(reloaded.layers.map((l) => l.name), model.layers.map((l) => l.name));
});

test('saveModel into an existing run folder replaces the model and keeps other files', async () => {
  const dir = tempDir();
  writeFileSync(path.join(dir, 'report.json'), '{"kept":true}');
  writeFileSync(path.join(dir, 'model.json'), 'old');
  const model = await loadModel(cnnDir);
  await saveModel(model, dir);
  assert.equal(readFileSync(path.join(dir, 'report.json'), 'utf8'), '{"kept":true}');
  assert.deepEqual(readdirSync(dir).sort(), ['model.json', 'report.json', 'weights.bin']);
  assert.deepEqual(readdirSync(path.dirname(dir)).filter((f) => f.startsWith(`.${path.basename(dir)}.tmp`)), []);
  const again = await loadModel(dir);
  assert.deepEqual(valuesOf(again), valuesOf(model));
});

test('a save that fails leaves neither the target nor a temporary folder', async () => {
  const parent = tempDir();
  const failing = { save: async () => { throw new Error('disk full'); } } as unknown as tf.LayersModel;
  await assert.rejects(saveModel(failing, path.join(parent, 'out')), /disk full/);
  assert.deepEqual(readdirSync(parent), []);
  mkdirSync(path.join(parent, 'out'));
  await assert.rejects(saveModel(failing, path.join(parent, 'out')), /disk full/);
  assert.deepEqual(readdirSync(parent), ['out']);
  assert.equal(existsSync(path.join(parent, 'out', 'model.json')), false);
});
