import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import { isNormLayer } from '../../src/core/model-info.ts';
import {
  compareModulePaths,
  firstInvalidUtf8,
  guessNormClass,
  isBuffer,
  layerOfParam,
  planOnlyFormat,
  readPytorchModel,
  readSafetensorsHeader,
  SAFETENSORS_MAX_HEADER_BYTES,
} from '../../src/core/pytorch-model.ts';

const dir = mkdtempSync(join(tmpdir(), 'layerwise-pytorch-model-'));
let n = 0;

/** A safetensors file: 8-byte little-endian header length, the header bytes, then `dataBytes` zeros. */
function safetensors(header: string | Uint8Array, dataBytes: number, opts: { length?: bigint; file?: string } = {}): string {
  const bytes = typeof header === 'string' ? Buffer.from(header, 'utf8') : Buffer.from(header);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(opts.length ?? BigInt(bytes.length));
  const file = opts.file ?? join(dir, `m${n++}.safetensors`);
  writeFileSync(file, Buffer.concat([prefix, bytes, Buffer.alloc(dataBytes)]));
  return file;
}

/** A header for tensors laid out one after another, as the safetensors writer does. */
function header(tensors: Array<{ name: string; dtype: string; shape: number[] }>, metadata?: Record<string, string>): { text: string; bytes: number } {
  const size: Record<string, number> = { F32: 4, F16: 2, BF16: 2, I64: 8 };
  let at = 0;
  const entries: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  for (const t of tensors) {
    const nbytes = t.shape.reduce((a, b) => a * b, 1) * size[t.dtype]!;
    entries[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + nbytes] };
    at += nbytes;
  }
  return { text: JSON.stringify(entries), bytes: at };
}

function rejects(fn: () => unknown, message: RegExp, field?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LayerwiseError, `a LayerwiseError, got ${String(e)}`);
    assert.match(e.problem, message);
    if (field !== undefined) assert.equal(e.field, field);
    assert.ok(e.file !== undefined && e.file.length > 0, 'names the file');
    return true;
  });
}

test('a safetensors header becomes layers: module paths, buffers marked, norms recognised, no data read', () => {
  // sorted by name, as the safetensors writer stores them
  const h = header([
    { name: 'bert.embeddings.LayerNorm.bias', dtype: 'F32', shape: [4] },
    { name: 'bert.embeddings.LayerNorm.weight', dtype: 'F32', shape: [4] },
    { name: 'bert.embeddings.position_ids', dtype: 'I64', shape: [1, 8] },
    { name: 'bert.embeddings.word_embeddings.weight', dtype: 'F32', shape: [10, 4] },
    { name: 'bert.encoder.layer.10.output.dense.weight', dtype: 'F32', shape: [4, 4] },
    { name: 'bert.encoder.layer.2.output.dense.weight', dtype: 'F32', shape: [4, 4] },
    { name: 'classifier.bias', dtype: 'F32', shape: [2] },
    { name: 'classifier.weight', dtype: 'F32', shape: [2, 4] },
    { name: 'cnn.bn1.num_batches_tracked', dtype: 'I64', shape: [] },
    { name: 'cnn.bn1.running_mean', dtype: 'F32', shape: [3] },
    { name: 'cnn.bn1.weight', dtype: 'F32', shape: [3] },
    { name: 'cnn.downsample.1.running_var', dtype: 'F32', shape: [3] },
    { name: 'cnn.downsample.1.weight', dtype: 'BF16', shape: [3] },
  ], { format: 'pt' });
  const file = safetensors(h.text, h.bytes);
  const { tensors, metadata } = readSafetensorsHeader(file);
  assert.deepEqual(metadata, { format: 'pt' });
  assert.equal(tensors.length, 13);
  const info = readPytorchModel(file);
  assert.equal(info.kind, 'pytorch');
  assert.deepEqual(
    info.layers.map((l) => l.name),
    [
      'bert.embeddings',
      'bert.embeddings.word_embeddings',
      'bert.embeddings.LayerNorm',
      'bert.encoder.layer.2.output.dense',
      'bert.encoder.layer.10.output.dense',
      'cnn.bn1',
      'cnn.downsample.1',
      'classifier',
    ],
    'embeddings first, numbers as numbers, the classifier last',
  );
  const layer = (name: string) => info.layers.find((l) => l.name === name)!;
  assert.equal(layer('bert.embeddings').weights[0]!.trainable, false, 'integer position ids are a buffer');
  assert.deepEqual(layer('cnn.bn1').weights.map((w) => [w.shortName, w.trainable]), [['weight', true], ['num_batches_tracked', false], ['running_mean', false]]);
  assert.equal(layer('cnn.bn1').className, 'BatchNorm');
  assert.equal(layer('cnn.downsample.1').className, 'BatchNorm', 'running statistics give BatchNorm away without the name');
  assert.equal(layer('bert.embeddings.LayerNorm').className, 'LayerNorm');
  assert.equal(layer('classifier').className, '');
  assert.deepEqual(layer('classifier').weights.map((w) => w.shortName), ['weight', 'bias'], 'weight before bias, as torch registers them');
});

test('only the header is read: a 3 GB checkpoint is described without reading its data', () => {
  const h = header([{ name: 'w.weight', dtype: 'F32', shape: [3 * 2 ** 28] }]);
  const file = join(dir, 'big.safetensors');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(h.text)));
  const fd = openSync(file, 'w');
  writeSync(fd, Buffer.concat([prefix, Buffer.from(h.text)]));
  closeSync(fd);
  // a sparse file: the size is there, the bytes are not
  truncateSync(file, 8 + Buffer.byteLength(h.text) + h.bytes);
  const before = process.memoryUsage().rss;
  const started = performance.now();
  const info = readPytorchModel(file);
  const ms = performance.now() - started;
  assert.deepEqual(info.layers[0]!.weights[0]!.shape, [3 * 2 ** 28]);
  assert.ok(process.memoryUsage().rss - before < 64 * 2 ** 20, 'memory did not grow with the file');
  assert.ok(ms < 1000, `read in ${ms.toFixed(0)} ms`);
});

test('bad safetensors files each give one clear error naming the file (and the field)', () => {
  const ok = header([{ name: 'a.weight', dtype: 'F32', shape: [2, 2] }]);
  // truncated: shorter than the length prefix, header cut short, data cut short
  rejects(() => readSafetensorsHeader(writeTo('short.safetensors', Buffer.from([1, 2, 3])) ), /shorter than the 8-byte header length/);
  rejects(() => readSafetensorsHeader(safetensors(ok.text.slice(0, 20), 0, { length: BigInt(Buffer.byteLength(ok.text)) })), /truncated: the header length prefix says \d+ bytes but only 20 bytes follow/);
  rejects(() => readSafetensorsHeader(safetensors(ok.text, ok.bytes - 3)), /truncated: the header says the tensor data takes 16 bytes, but only 13 follow/);
  rejects(() => readSafetensorsHeader(safetensors(ok.text, ok.bytes + 5)), /the tensors take 16 bytes, but 21 follow the header/);
  // an oversized header length, even in a file too small to hold it
  rejects(() => readSafetensorsHeader(safetensors(ok.text, ok.bytes, { length: BigInt(SAFETENSORS_MAX_HEADER_BYTES) + 1n })), /more than the 100000000 bytes \(100 MB\) the format allows/);
  rejects(() => readSafetensorsHeader(safetensors(ok.text, ok.bytes, { length: 2n ** 64n - 1n })), /18446744073709551615 bytes, more than/);
  // malformed headers
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": {"dtype": "F32",', 0)), /malformed header: not valid JSON/);
  rejects(() => readSafetensorsHeader(safetensors('[1, 2]', 0)), /malformed header: it must be a JSON object/);
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": 3}', 0)), /must be an object with dtype, shape and data_offsets/, '["a.weight"]');
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}', 4)), /unknown dtype "F33"/, '["a.weight"].dtype');
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', 4)), /whole numbers ≥ 0/, '["a.weight"].shape');
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}', 8)), /must be \[begin, end\]/, '["a.weight"].data_offsets');
  rejects(() => readSafetensorsHeader(safetensors('{"a.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', 4)), /4 bytes, but shape \[2\] of F32 needs 8/, '["a.weight"].data_offsets');
  rejects(
    () => readSafetensorsHeader(safetensors('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}', 12)),
    /leaves a gap after byte 4/,
    'b.data_offsets',
  );
  rejects(
    () => readSafetensorsHeader(safetensors('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', 8)),
    /the tensor "a" is listed twice/,
  );
  rejects(() => readSafetensorsHeader(safetensors('{"__metadata__": {"format": 1}}', 0)), /must be a string/, '__metadata__.format');
  rejects(() => readSafetensorsHeader(safetensors('{"a..weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', 4)), /not a PyTorch parameter name/);
  // a name that is not UTF-8
  const bad = Buffer.concat([Buffer.from('{"encoder.lay'), Buffer.from([0xff, 0xfe]), Buffer.from('er.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}')]);
  rejects(() => readSafetensorsHeader(safetensors(bad, 4)), /not valid UTF-8: byte 13 \(0xff\) in the string that starts "encoder\.lay"; tensor names must be UTF-8/);
});

function writeTo(name: string, bytes: Uint8Array): string {
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return file;
}

test('firstInvalidUtf8 finds overlong forms, surrogates and cut sequences', () => {
  assert.equal(firstInvalidUtf8(Buffer.from('añ€😀', 'utf8')), Buffer.byteLength('añ€😀'));
  assert.equal(firstInvalidUtf8(Uint8Array.from([0x61, 0xc0, 0x80])), 1, 'overlong');
  assert.equal(firstInvalidUtf8(Uint8Array.from([0xed, 0xa0, 0x80])), 0, 'surrogate');
  assert.equal(firstInvalidUtf8(Uint8Array.from([0x61, 0x62, 0xe2, 0x82])), 2, 'cut');
  assert.equal(firstInvalidUtf8(Uint8Array.from([0xf4, 0x90, 0x80, 0x80])), 0, 'past U+10FFFF');
});

test('a parameter list keeps its order; bad lists give clear errors', () => {
  const file = writeTo('params.json', Buffer.from(JSON.stringify([
    { name: 'cls_token', shape: [1, 1, 4] },
    { name: 'blocks.0.norm1.weight', shape: [4] },
    { name: 'blocks.0.attn.qkv.weight', shape: [12, 4] },
    { name: 'head.weight', shape: [2, 4] },
    { name: 'stats.running_mean', shape: [4], trainable: false },
  ])));
  assert.equal(planOnlyFormat(file), 'parameterList');
  const info = readPytorchModel(file);
  assert.deepEqual(info.layers.map((l) => l.name), ['cls_token', 'blocks.0.norm1', 'blocks.0.attn.qkv', 'head', 'stats']);
  assert.equal(info.layers[0]!.weights[0]!.name, 'cls_token', 'a root parameter is a layer of its own');
  assert.equal(info.layers[4]!.weights[0]!.trainable, false);

  const list = (value: unknown) => writeTo(`l${n++}.json`, Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)));
  rejects(() => readPytorchModel(list('[{"name": "a.weight", "shape": [1]}')), /not valid JSON/);
  rejects(() => readPytorchModel(list([])), /lists no parameters/);
  rejects(() => readPytorchModel(list([{ name: 'a.w', shape: [1] }, { name: 'a.w', shape: [2] }])), /already listed at \[0\]/, '[1].name');
  rejects(() => readPytorchModel(list([{ name: 'a.w', shape: [1.5] }])), /whole numbers ≥ 0/, '[0].shape');
  rejects(() => readPytorchModel(list([{ name: 'a.w', shape: [1], requires_grad: true }])), /unknown field "requires_grad"/, '[0].requires_grad');
  rejects(() => readPytorchModel(list([{ name: 7, shape: [1] }])), /must be a string/, '[0].name');
  const nonUtf8 = writeTo('bad.json', Buffer.concat([Buffer.from('[{"name": "a'), Buffer.from([0xc3, 0x28]), Buffer.from('", "shape": [1]}]')]));
  rejects(() => readPytorchModel(nonUtf8), /not valid UTF-8/);
});

test('planOnlyFormat tells plan-only files from tfjs models', () => {
  const modelJson = writeTo('model.json', Buffer.from('\uFEFF {"modelTopology": {}, "weightsManifest": []}'));
  assert.equal(planOnlyFormat(modelJson), undefined);
  assert.equal(planOnlyFormat(writeTo('x.json', Buffer.from('\uFEFF\n [ ]'))), 'parameterList');
  assert.equal(planOnlyFormat(join(dir, 'missing.safetensors')), 'safetensors');
  assert.equal(planOnlyFormat(dir), undefined);
});

test('names: layers, buffers, norm classes, module order', () => {
  assert.equal(layerOfParam('bert.encoder.layer.0.attention.self.query.weight'), 'bert.encoder.layer.0.attention.self.query');
  assert.equal(layerOfParam('pos_embed'), 'pos_embed');
  assert.equal(isBuffer('h.0.attn.bias', 'F32', [1, 1, 8, 8]), true, "GPT-2's causal mask");
  assert.equal(isBuffer('h.0.attn.c_attn.bias', 'F32', [24]), false);
  assert.equal(isBuffer('embeddings.position_ids', 'I64', [1, 512]), true);
  assert.equal(isBuffer('x.weight', undefined, [2]), false);
  const cases: Array<[string, string]> = [
    ['bert.encoder.layer.0.output.LayerNorm', 'LayerNorm'],
    ['model.decoder.layers.3.final_layer_norm', 'LayerNorm'],
    ['transformer.ln_f', 'LayerNorm'],
    ['transformer.h.0.ln_1', 'LayerNorm'],
    ['layer1.0.bn2', 'BatchNorm'],
    ['features.batch_norm', 'BatchNorm'],
    ['stages.0.gn', 'GroupNorm'],
    ['model.layers.0.input_rmsnorm', 'RMSNorm'],
    ['blocks.0.norm1', 'Norm'],
    ['blocks.0.norm_blocks.fc', 'Norm'],
    ['bert.encoder.layer.0.output.dense', ''],
    ['lnx', ''],
    ['subnet.fc', ''],
    ['bnb.linear', ''],
  ];
  for (const [name, cls] of cases) {
    assert.equal(guessNormClass(name, []), cls, name);
    assert.equal(isNormLayer({ name, className: cls }), cls !== '', `${name} is ${cls === '' ? 'not ' : ''}a norm layer`);
  }
  assert.ok(compareModulePaths('encoder.layer.2.w', 'encoder.layer.10.w') < 0);
  assert.ok(compareModulePaths('wte.weight', 'h.0.attn.weight') < 0, 'embeddings first');
  assert.ok(compareModulePaths('lm_head.weight', 'ln_f.weight') > 0, 'heads last');
  assert.ok(compareModulePaths('a.weight', 'a.b.weight') < 0, "a module's own parameters before its submodules'");
});

test('the resolver works on plan-only models: noDecay "norm" by name, shown in the audit', () => {
  const file = writeTo('norms.json', Buffer.from(JSON.stringify([
    { name: 'body.dense.weight', shape: [4, 4] },
    { name: 'body.LayerNorm.weight', shape: [4] },
    { name: 'body.bn1.weight', shape: [4] },
    { name: 'head.weight', shape: [2, 4] },
  ])));
  const info = readPytorchModel(file);
  const r = resolveGroups(info, { model: 'norms.json', training: { noDecay: ['norm'] }, groups: [{ name: 'body', layers: ['body.*'], lrMult: 0.1 }, { name: 'head', layers: ['head'] }] });
  const p = new Map(r.params.map((x) => [x.name, x]));
  assert.equal(p.get('body.dense.weight')!.weightDecay, 0.01);
  assert.equal(p.get('body.LayerNorm.weight')!.weightDecay, 0);
  assert.equal(p.get('body.LayerNorm.weight')!.weightDecayRule.detail, 'noDecay "norm" (LayerNorm layer)');
  assert.equal(p.get('body.bn1.weight')!.weightDecayRule.detail, 'noDecay "norm" (BatchNorm layer)');
  assert.equal(p.get('body.dense.weight')!.effectiveLr, 1e-3 * 0.1);
  assert.deepEqual(r.warnings, []);
});

test('a sharded checkpoint is read through its index: every shard\'s header, shards kept inside the folder', () => {
  const shardDir = mkdtempSync(join(tmpdir(), 'layerwise-shards-'));
  const a = header([{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [8, 4] }, { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'BF16', shape: [6, 4] }]);
  const b = header([{ name: 'lm_head.weight', dtype: 'BF16', shape: [8, 4] }, { name: 'model.layers.1.mlp.up_proj.weight', dtype: 'BF16', shape: [6, 4] }]);
  safetensors(a.text, a.bytes, { file: join(shardDir, 'model-00001-of-00002.safetensors') });
  safetensors(b.text, b.bytes, { file: join(shardDir, 'model-00002-of-00002.safetensors') });
  const index = (weightMap: Record<string, string>) => {
    const file = join(shardDir, `m${n++}.safetensors.index.json`);
    writeFileSync(file, JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    return file;
  };
  const good = index({
    'lm_head.weight': 'model-00002-of-00002.safetensors',
    'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
    'model.layers.0.mlp.up_proj.weight': 'model-00001-of-00002.safetensors',
    'model.layers.1.mlp.up_proj.weight': 'model-00002-of-00002.safetensors',
  });
  assert.equal(planOnlyFormat(good), 'safetensorsIndex');
  assert.deepEqual(readPytorchModel(good).layers.map((l) => l.name), ['model.embed_tokens', 'model.layers.0.mlp.up_proj', 'model.layers.1.mlp.up_proj', 'lm_head']);
  rejects(() => readPytorchModel(index({ 'x.weight': '../outside.safetensors' })), /resolves outside/, 'weight_map["x.weight"]');
  rejects(() => readPytorchModel(index({ 'x.weight': 'model-00001-of-00002.safetensors' })), /whose header does not list it/, 'weight_map["x.weight"]');
  rejects(() => readPytorchModel(index({})), /lists no tensors/, 'weight_map');
});
