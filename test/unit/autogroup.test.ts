import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoGroups, blockOf, splitByParams } from '../../src/core/autogroup.ts';
import { LayerwiseError } from '../../src/core/errors.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import { layerParamCount, type ModelInfo } from '../../src/core/model-info.ts';
import { compilePattern } from '../../src/core/patterns.ts';
import type { GroupSpec } from '../../src/core/plan.ts';
import { batchNorm, conv, dense, layer, linear, mobileNetV2Like, model, relu, type LayerDraft } from './model-builders.ts';

/** The convolutions and norms of these tests: 8 channels (a 3×3 convolution has 584 weights). */
const conv8 = (name: string) => conv(name, 3, 8, 8);
const bn8 = (name: string) => batchNorm(name, 8);

function bertLike(layers: number, withClassifier = true): ModelInfo {
  const ls: LayerDraft[] = [linear('bert.embeddings.word_embeddings', 100, 8), layer('bert.embeddings.LayerNorm', '', [['weight', [8]], ['bias', [8]]])];
  for (let i = 0; i < layers; i++) {
    ls.push(linear(`bert.encoder.layer.${i}.attention.self.query`, 8, 8), linear(`bert.encoder.layer.${i}.output.dense`, 8, 8));
    ls.push(layer(`bert.encoder.layer.${i}.output.LayerNorm`, '', [['weight', [8]], ['bias', [8]]]));
  }
  if (withClassifier) ls.push(linear('bert.pooler.dense', 8, 8), linear('classifier', 8, 2));
  return model(ls, { kind: 'pytorch' });
}

const kerasCnn = model([
  layer('conv2d_1_input', 'InputLayer'),
  conv('conv2d_1', 3, 1, 4), // 40
  layer('max_pooling2d_1', 'MaxPooling2D'),
  conv('conv2d_2', 3, 4, 8), // 296
  conv('conv2d_3', 3, 8, 16), // 1168
  layer('flatten_1', 'Flatten'),
  dense('dense_1', 1000, 64), // 64064
  dense('dense_2', 64, 10),
]);

/** Every layer matches exactly one group, no group lacks weighted layers, groups run bottom → top. */
function assertWellFormed(m: ModelInfo, groups: GroupSpec[], maxGroups = 4): void {
  assert.ok(groups.length <= maxGroups, `${groups.length} groups > ${maxGroups}`);
  assert.equal(new Set(groups.map((g) => g.name)).size, groups.length, 'names are unique');
  const matchers = groups.map((g) => g.layers.map((p) => compilePattern(p)));
  const owner = new Map<string, number>();
  for (const l of m.layers) {
    const hits = matchers.flatMap((ms, g) => (ms.some((match) => match(l.name)) ? [g] : []));
    assert.equal(hits.length, 1, `${l.name} matches groups ${hits.map((g) => groups[g]!.name).join(', ') || '(none)'}`);
    owner.set(l.name, hits[0]!);
  }
  let lastDepth = -1;
  groups.forEach((g, gi) => {
    const weighted = m.layers.filter((l) => owner.get(l.name) === gi && l.weights.length > 0);
    assert.ok(weighted.length > 0, `group ${g.name} has weighted layers`);
    const depths = weighted.map((l) => l.depth);
    assert.ok(Math.min(...depths) > lastDepth, `group ${g.name} lies above the group below it`);
    lastDepth = Math.max(...depths);
  });
  assert.deepEqual(resolveGroups(m, { model: 'm', groups }).warnings, []);
}

const namesOf = (groups: GroupSpec[]) => groups.map((g) => g.name);
const groupOf = (m: ModelInfo, groups: GroupSpec[], layerName: string): string =>
  resolveGroups(m, { model: 'm', groups }).groups.find((g) => g.layers.some((l) => l.name === layerName))!.name;

test('blockOf reads block numbers from common naming schemes', () => {
  const cases: Array<[string, string | undefined, number | undefined]> = [
    ['block_3_expand_BN', 'block_3', 3],
    ['block3a_expand_conv', 'block3a', 3],
    ['block1_conv2', 'block1', 1],
    ['conv2_block1_1_conv', 'conv2', 2],
    ['res4b_branch2a', 'res4b', 4],
    ['bert.encoder.layer.11.attention.self.query', 'bert.encoder.layer.11', 11],
    ['encoder/layer_2/attention', 'encoder/layer_2', 2],
    ['tf_bert_model/bert/encoder/layer_._0/output', 'tf_bert_model/bert/encoder/layer_._0', 0],
    ['transformer.h.5.mlp.c_fc', 'transformer.h.5', 5],
    ['blocks.0.attn.qkv', 'blocks.0', 0],
    ['stage2/unit1/conv', 'stage2', 2],
    ['conv_pw_7_bn', 'conv_pw_7', 7],
    ['conv2d_5', undefined, undefined],
    ['dense_1', undefined, undefined],
    ['layer_normalization_2', undefined, undefined],
    ['batch_normalization_3', undefined, undefined],
  ];
  for (const [name, stem, n] of cases) {
    const b = blockOf(name);
    assert.equal(b?.stem, stem, name);
    assert.equal(b?.n, n, name);
  }
  assert.equal(blockOf('conv_dw_3')!.key, blockOf('conv_pw_3_bn')!.key, 'depthwise and pointwise of one block are one block');
  assert.notEqual(blockOf('Conv1')!.signature, blockOf('block_1_expand')!.signature);
});

test('MobileNetV2-like: runs of blocks with readable globs, stem and top in the end runs', () => {
  const m = mobileNetV2Like(8);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  // 8 blocks in 3 runs: 3, 3, 2 (the larger runs at the bottom)
  assert.deepEqual(namesOf(groups), ['stem + blocks 1-3', 'blocks 4-6', 'blocks 7-8 + top', 'head']);
  assert.deepEqual(groups[1]!.layers, ['block_4_*', 'block_5_*', 'block_6_*']);
  assert.deepEqual(groups[3]!.layers, ['predictions']);
  assert.equal(groupOf(m, groups, 'input_1'), 'stem + blocks 1-3');
  assert.equal(groupOf(m, groups, 'expanded_conv_project'), 'stem + blocks 1-3');
  assert.equal(groupOf(m, groups, 'block_2_add'), 'stem + blocks 1-3');
  assert.equal(groupOf(m, groups, 'Conv_1_bn'), 'blocks 7-8 + top');
  assert.equal(groupOf(m, groups, 'global_average_pooling2d'), 'blocks 7-8 + top');
});

test('block_1_* never takes block_10 … block_12', () => {
  const m = mobileNetV2Like(12);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(namesOf(groups), ['stem + blocks 1-4', 'blocks 5-8', 'blocks 9-12 + top', 'head']);
  assert.ok(groups[0]!.layers.includes('block_1_*'));
  assert.equal(groupOf(m, groups, 'block_10_expand'), 'blocks 9-12 + top');
});

test('BERT-like module paths: embeddings at the bottom, encoder layers, pooler with the top run', () => {
  const m = bertLike(6);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(groups, [
    { name: 'embeddings', layers: ['bert.embeddings.word_embeddings', 'bert.embeddings.LayerNorm'] },
    { name: 'layers 0-2', layers: ['bert.encoder.layer.0.*', 'bert.encoder.layer.1.*', 'bert.encoder.layer.2.*'] },
    { name: 'layers 3-5 + top', layers: ['bert.encoder.layer.3.*', 'bert.encoder.layer.4.*', 'bert.encoder.layer.5.*', 'bert.pooler.dense'] },
    { name: 'head', layers: ['classifier'] },
  ]);
});

test('with maxGroups 2 the embeddings join the body', () => {
  const m = bertLike(4);
  const groups = autoGroups(m, { maxGroups: 2 });
  assertWellFormed(m, groups, 2);
  assert.deepEqual(namesOf(groups), ['embeddings + layers 0-3 + top', 'head']);
});

test('more groups than blocks: one group per block, then the top and the stem alone', () => {
  const m = bertLike(2);
  const groups = autoGroups(m, { maxGroups: 8 });
  assertWellFormed(m, groups, 8);
  assert.deepEqual(namesOf(groups), ['embeddings', 'layer 0', 'layer 1', 'bert.pooler.dense', 'head']);
  // with one group to spare the top takes it; the stem stays with the first run
  const v2 = mobileNetV2Like(3);
  const five = autoGroups(v2, { maxGroups: 5 });
  assertWellFormed(v2, five, 5);
  assert.deepEqual(namesOf(five), ['stem + block 1', 'block 2', 'block 3', 'top', 'head']);
  assert.deepEqual(five[3]!.layers, ['Conv_1', 'Conv_1_bn', 'out_relu', 'global_average_pooling2d']);
  const six = autoGroups(v2, { maxGroups: 6 });
  assertWellFormed(v2, six, 6);
  assert.deepEqual(namesOf(six), ['stem', 'block 1', 'block 2', 'block 3', 'top', 'head']);
  assert.deepEqual(six[0]!.layers, ['input_1', 'Conv1', 'bn_Conv1', 'Conv1_relu', 'expanded_conv_depthwise', 'expanded_conv_depthwise_BN', 'expanded_conv_project']);
});

test('a transformer without a classifier: the head inside the last block gets exact names, other blocks keep globs', () => {
  const m = bertLike(4, false);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  // the last weighted layer is a LayerNorm, so the head is the dense layer below it plus the norm
  assert.deepEqual(groups[groups.length - 1], {
    name: 'head',
    layers: ['bert.encoder.layer.3.output.dense', 'bert.encoder.layer.3.output.LayerNorm'],
  });
  const top = groups[groups.length - 2]!;
  assert.ok(top.layers.includes('bert.encoder.layer.2.*'));
  assert.ok(top.layers.includes('bert.encoder.layer.3.attention.self.query'));
  assert.ok(!top.layers.includes('bert.encoder.layer.3.*'));
});

test('the example CNN (block1_conv, block2_conv, features, classifier): a pre-trained dense top gets its own group', () => {
  const m = model([
    layer('image', 'InputLayer'),
    conv8('block1_conv'),
    bn8('block1_bn'),
    relu('block1_relu'),
    layer('block1_pool', 'MaxPooling2D'),
    conv8('block2_conv'),
    bn8('block2_bn'),
    relu('block2_relu'),
    layer('block2_pool', 'MaxPooling2D'),
    layer('flatten', 'Flatten'),
    dense('features', 392, 64),
    dense('classifier', 64, 10),
  ]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(groups, [
    { name: 'block 1', layers: ['image', 'block1_*'] },
    { name: 'block 2', layers: ['block2_*', 'flatten'] },
    { name: 'features', layers: ['features'] },
    { name: 'head', layers: ['classifier'] },
  ]);
});

test('EfficientNet-like: sub-blocks 2a, 2b are one stage', () => {
  const m = model([
    layer('input_1', 'InputLayer'),
    conv8('stem_conv'),
    bn8('stem_bn'),
    conv8('block1a_dwconv'),
    bn8('block1a_bn'),
    conv8('block2a_expand_conv'),
    conv8('block2b_expand_conv'),
    layer('block2b_add', 'Add'),
    conv8('block3a_expand_conv'),
    conv8('block3b_expand_conv'),
    conv8('block4a_expand_conv'),
    conv8('top_conv'),
    layer('top_dropout', 'Dropout'),
    dense('predictions', 8, 3),
  ]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(groups, [
    { name: 'stem + blocks 1-2', layers: ['input_1', 'stem_conv', 'stem_bn', 'block1a_*', 'block2a_*', 'block2b_*'] },
    { name: 'block 3', layers: ['block3a_*', 'block3b_*'] },
    { name: 'block 4 + top', layers: ['block4a_*', 'top_conv', 'top_dropout'] },
    { name: 'head', layers: ['predictions'] },
  ]);
});

test('ResNet-like: conv2_block1_… groups by stage', () => {
  const m = model([
    layer('input_1', 'InputLayer'),
    conv8('conv1_conv'),
    bn8('conv1_bn'),
    conv8('conv2_block1_1_conv'),
    conv8('conv2_block2_1_conv'),
    layer('conv2_block2_out', 'Add'),
    conv8('conv3_block1_1_conv'),
    conv8('conv4_block1_1_conv'),
    conv8('conv5_block1_1_conv'),
    layer('avg_pool', 'GlobalAveragePooling2D'),
    dense('predictions', 8, 3),
  ]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(groups, [
    { name: 'stages 1-2', layers: ['input_1', 'conv1_*', 'conv2_*'] },
    { name: 'stages 3-4', layers: ['conv3_*', 'conv4_*'] },
    { name: 'stage 5', layers: ['conv5_*', 'avg_pool'] },
    { name: 'head', layers: ['predictions'] },
  ]);
});

test('MobileNet v1: conv_dw_N and conv_pw_N are one block; conv1 is the stem; act_softmax goes with the head', () => {
  const ls: LayerDraft[] = [layer('input_1', 'InputLayer'), conv8('conv1'), bn8('conv1_bn')];
  for (let b = 1; b <= 6; b++) ls.push(conv8(`conv_dw_${b}`), bn8(`conv_dw_${b}_bn`), relu(`conv_dw_${b}_relu`), conv8(`conv_pw_${b}`), bn8(`conv_pw_${b}_bn`));
  ls.push(layer('global_average_pooling2d_1', 'GlobalAveragePooling2D'), layer('dropout', 'Dropout'), conv8('conv_preds'), layer('act_softmax', 'Activation'));
  const m = model(ls);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(namesOf(groups), ['stem + blocks 1-2', 'blocks 3-4', 'blocks 5-6', 'head']);
  assert.deepEqual(groups[1]!.layers, ['conv_dw_3', 'conv_dw_3_*', 'conv_pw_3', 'conv_pw_3_*', 'conv_dw_4', 'conv_dw_4_*', 'conv_pw_4', 'conv_pw_4_*']);
  assert.deepEqual(groups[3]!.layers, ['conv_preds', 'act_softmax']);
});

/** Independent check: the k-way contiguous split with the least sum of squared sizes, by brute force. */
function bestSplit(sizes: number[], k: number): number[] {
  let best: { cost: number; cuts: number[] } | undefined;
  const rec = (start: number, left: number, cuts: number[], cost: number): void => {
    if (left === 1) {
      const total = cost + sizes.slice(start).reduce((a, b) => a + b, 0) ** 2;
      if (best === undefined || total < best.cost) best = { cost: total, cuts };
      return;
    }
    for (let end = start + 1; end <= sizes.length - left + 1; end++) {
      rec(end, left - 1, [...cuts, end], cost + sizes.slice(start, end).reduce((a, b) => a + b, 0) ** 2);
    }
  };
  rec(0, k, [], 0);
  return best!.cuts;
}

test('Keras CNN without block names: chunks of about equal parameter count', () => {
  const groups = autoGroups(kerasCnn);
  assertWellFormed(kerasCnn, groups);
  // sizes 40, 296, 1168, 64064 in 3 chunks: [40+296][1168][64064] beats [40][296+1168][64064]
  assert.deepEqual(bestSplit([40, 296, 1168, 64064], 3), [2, 3]);
  assert.deepEqual(groups, [
    { name: 'conv2d_1-conv2d_2', layers: ['conv2d_1_input', 'conv2d_1', 'max_pooling2d_1', 'conv2d_2'] },
    { name: 'conv2d_3', layers: ['conv2d_3', 'flatten_1'] },
    { name: 'dense_1', layers: ['dense_1'] },
    { name: 'head', layers: ['dense_2'] },
  ]);
});

test('splitByParams matches a brute-force search', () => {
  const cases: Array<[number[], number]> = [
    [[5, 1, 1, 1, 1, 5], 3],
    [[1, 2, 3, 4, 5, 6, 7, 8], 3],
    [[100, 1, 1, 1, 1, 1, 1, 100], 4],
    [[3, 3, 3], 2],
  ];
  for (const [sizes, k] of cases) {
    const chunks = splitByParams(sizes, k, (x) => x);
    const cuts: number[] = [];
    let at = 0;
    for (const c of chunks.slice(0, -1)) cuts.push((at += c.length));
    const cost = (cs: number[]) => [0, ...cs].map((s, i) => sizes.slice(s, [...cs, sizes.length][i]).reduce((a, b) => a + b, 0) ** 2).reduce((a, b) => a + b, 0);
    assert.equal(cost(cuts), cost(bestSplit(sizes, k)), `${sizes} in ${k}`);
    assert.deepEqual(chunks.flat(), sizes);
    assert.equal(chunks.length, k);
  }
});

test('dense_N MLP with BatchNorm: a norm layer stays with the layer below it', () => {
  const m = model([
    layer('input', 'InputLayer'),
    dense('dense_1', 100, 100), // 10100
    batchNorm('batch_normalization_1', 100),
    dense('dense_2', 100, 100),
    batchNorm('batch_normalization_2', 100),
    dense('dense_3', 100, 50),
    dense('dense_4', 50, 10),
  ]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  assert.deepEqual(groups, [
    { name: 'dense_1', layers: ['input', 'dense_1', 'batch_normalization_1'] },
    { name: 'dense_2', layers: ['dense_2', 'batch_normalization_2'] },
    { name: 'dense_3', layers: ['dense_3'] },
    { name: 'head', layers: ['dense_4'] },
  ]);
});

test('names with no structure: contiguous chunks, embeddings still found at the bottom', () => {
  const sizes = [4, 4, 4, 40, 4, 4];
  const names = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
  const m = model([linear('token_embedding', 50, 4), ...names.map((n, i) => layer(n, 'Dense', [['kernel', [sizes[i]!, 1]]])), linear('out', 4, 2)]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  // body sizes 4,4,4,40,4,4 into 2 chunks (embeddings and head take 2 of 4 slots)
  assert.deepEqual(bestSplit(sizes, 2), [3]);
  assert.deepEqual(groups, [
    { name: 'embeddings', layers: ['token_embedding'] },
    { name: 'alpha-charlie', layers: ['alpha', 'bravo', 'charlie'] },
    { name: 'delta-foxtrot', layers: ['delta', 'echo', 'foxtrot'] },
    { name: 'head', layers: ['out'] },
  ]);
  assert.equal(layerParamCount(m.layers[4]!), 40);
});

test('one block number is not a structure', () => {
  const m = model([conv8('stage1_a'), conv8('stage1_b'), conv8('stage1_c'), dense('fc', 8, 8), dense('out', 8, 2)]);
  const groups = autoGroups(m);
  assertWellFormed(m, groups);
  // 584, 584, 584, 72 parameters in 3 chunks
  assert.deepEqual(bestSplit([584, 584, 584, 72], 3), [1, 2]);
  assert.deepEqual(namesOf(groups), ['stage1_a', 'stage1_b', 'stage1_c-fc', 'head']);
});

test('the new head (isNewHead) is the head group, with its dropout', () => {
  const m = model([
    layer('input_1', 'InputLayer'),
    conv8('block_1_conv'),
    conv8('block_2_conv'),
    conv8('block_3_conv'),
    layer('flatten', 'Flatten'),
    layer('head_dropout', 'Dropout', [], true),
    dense('head_dense_1', 8, 8, true),
    layer('head_dropout_2', 'Dropout', [], true),
    dense('head_dense_2', 8, 2, true),
  ]);
  const groups = autoGroups(m, { maxGroups: 3 });
  assertWellFormed(m, groups, 3);
  assert.deepEqual(groups, [
    { name: 'blocks 1-2', layers: ['input_1', 'block_1_*', 'block_2_*'] },
    { name: 'block 3', layers: ['block_3_*', 'flatten'] },
    { name: 'head', layers: ['head_dropout', 'head_dense_1', 'head_dropout_2', 'head_dense_2'] },
  ]);
});

test('odd names are escaped, and name clashes with "head"/"default" get a suffix', () => {
  const m = model([linear('default', 2, 2), linear('we*rd', 2, 2), linear('head', 2, 2), linear('re:x', 2, 2), linear('final', 2, 2)]);
  const groups = autoGroups(m, { maxGroups: 5 });
  assertWellFormed(m, groups, 5);
  assert.deepEqual(namesOf(groups), ['default (2)', 'we*rd', 'head (2)', 're:x', 'head']);
  assert.deepEqual(groups[1]!.layers, ['re:we\\*rd']);
  assert.deepEqual(groups[3]!.layers, ['re:re:x']);
});

test('edge cases: no weights, one weighted layer, maxGroups 1, bad maxGroups', () => {
  assert.deepEqual(autoGroups(model([layer('input', 'InputLayer'), layer('flatten', 'Flatten')])), []);
  const one = model([layer('input', 'InputLayer'), dense('only', 2, 2)]);
  assert.deepEqual(autoGroups(one), [{ name: 'head', layers: ['input', 'only'] }]);
  assert.deepEqual(autoGroups(kerasCnn, { maxGroups: 1 }), [{ name: 'model', layers: ['*'] }]);
  const two = autoGroups(kerasCnn, { maxGroups: 2 });
  assertWellFormed(kerasCnn, two, 2);
  assert.deepEqual(namesOf(two), ['conv2d_1-dense_1', 'head']);
  for (const bad of [0, 2.5, -1]) {
    assert.throws(() => autoGroups(kerasCnn, { maxGroups: bad }), (e: unknown) => e instanceof LayerwiseError && e.field === 'maxGroups');
  }
});

test('a PyTorch head module at the top (classifier.fc1, classifier.fc2) is the head group whole', () => {
  const m = model(
    [
      linear('embeddings.word', 10, 4),
      ...Array.from({ length: 6 }, (_, i) => linear(`encoder.layer.${i}.dense`, 4, 4)),
      linear('pooler.dense', 4, 4),
      linear('classifier.fc1', 4, 8),
      linear('classifier.fc2', 8, 2),
    ],
    { kind: 'pytorch' },
  );
  const groups = autoGroups(m);
  assert.deepEqual(groups[groups.length - 1], { name: 'head', layers: ['classifier.fc1', 'classifier.fc2'] });
  // a model nested under one name is not a head
  const nested = model([linear('bert.embeddings.word', 10, 4), ...Array.from({ length: 6 }, (_, i) => linear(`bert.encoder.layer.${i}.dense`, 4, 4)), linear('bert.pooler.dense', 4, 4)], { kind: 'pytorch' });
  assert.deepEqual(autoGroups(nested).at(-1)?.layers, ['bert.pooler.dense']);
});
