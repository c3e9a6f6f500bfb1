import { test } from 'node:test';
import assert from 'node:assert/strict';
import { autoGroups } from '../../src/core/autogroup.ts';
import { LayerwiseError } from '../../src/core/errors.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import type { ModelInfo } from '../../src/core/model-info.ts';
import type { Plan } from '../../src/core/plan.ts';
import { PRESETS, applyDiscriminative, applyPreset, getPreset, seedSplitGroups } from '../../src/core/presets.ts';
import { batchNorm, dense, layer, model, type LayerDraft } from './model-builders.ts';

function deepFreeze<T>(x: T): T {
  if (x !== null && typeof x === 'object') {
    for (const v of Object.values(x)) deepFreeze(v);
    Object.freeze(x);
  }
  return x;
}

/** Group of each weighted layer after resolving `plan` against `m`. */
function groupByLayer(m: ModelInfo, plan: Plan): Record<string, string> {
  const r = resolveGroups(m, plan);
  assert.deepEqual(r.warnings, []);
  return Object.fromEntries(r.groups.flatMap((g) => g.layers.filter((l) => l.paramCount > 0).map((l) => [l.name, g.name])));
}

const mlp3 = model([layer('input', 'InputLayer'), dense('dense_1', 4, 4), dense('dense_2', 4, 4), dense('dense_3', 4, 4)]);

test('seed split: three weighted layers give base, extra and head — extra is never empty', () => {
  const groups = seedSplitGroups(mlp3);
  assert.deepEqual(groups, [
    { name: 'base', lrMult: 0.1, layers: ['input', 'dense_1'] },
    { name: 'extra', lrMult: 0.5, layers: ['dense_2'] },
    { name: 'head', lrMult: 1, layers: ['dense_3'] },
  ]);
});

test('seed split: the top third of the body is extra; a BatchNorm stays with its layer', () => {
  const ls: LayerDraft[] = [];
  for (let i = 1; i <= 6; i++) ls.push(dense(`dense_${i}`, 4, 4), batchNorm(`bn_${i}`, 4));
  ls.push(dense('out', 4, 4));
  const m = model(ls);
  // 6 units (dense + bn) below the head: extra = the top 2
  assert.deepEqual(groupByLayer(m, { model: 'm', groups: seedSplitGroups(m) }), {
    dense_1: 'base', bn_1: 'base', dense_2: 'base', bn_2: 'base', dense_3: 'base', bn_3: 'base', dense_4: 'base', bn_4: 'base',
    dense_5: 'extra', bn_5: 'extra', dense_6: 'extra', bn_6: 'extra',
    out: 'head',
  });
});

test('seed split: two weighted layers give base and head; none give no groups', () => {
  const m = model([dense('a', 4, 4), dense('b', 4, 4)]);
  assert.deepEqual(seedSplitGroups(m), [
    { name: 'base', lrMult: 0.1, layers: ['a'] },
    { name: 'head', lrMult: 1, layers: ['b'] },
  ]);
  assert.deepEqual(seedSplitGroups(model([layer('input', 'InputLayer')])), []);
});

function bert(): ModelInfo {
  const ls: LayerDraft[] = [layer('bert.embeddings.word_embeddings', '', [['weight', [50, 4]]]), layer('bert.embeddings.LayerNorm', '', [['weight', [4]], ['bias', [4]]])];
  for (let i = 0; i < 6; i++) ls.push(layer(`bert.encoder.layer.${i}.attention.self.query`, '', [['weight', [4, 4]]]), layer(`bert.encoder.layer.${i}.output.dense`, '', [['weight', [4, 4]]]));
  ls.push(layer('bert.pooler.dense', '', [['weight', [4, 4]]]));
  ls.push(layer('head_dropout', 'Dropout', [], true), dense('head_dense_1', 4, 8, true), dense('head_dense_2', 8, 2, true));
  return model(ls);
}

test('seed split of a BERT-like model with a new head: embeddings ×0.01 at the bottom, whole encoder layers', () => {
  const m = bert();
  const groups = seedSplitGroups(m);
  // units: 6 encoder layers + the pooler; with the embeddings that is 8, a third of 8 rounds to 3
  assert.deepEqual(groups, [
    { name: 'embeddings', lrMult: 0.01, layers: ['bert.embeddings.word_embeddings', 'bert.embeddings.LayerNorm'] },
    { name: 'base', lrMult: 0.1, layers: ['bert.encoder.layer.0.*', 'bert.encoder.layer.1.*', 'bert.encoder.layer.2.*', 'bert.encoder.layer.3.*'] },
    { name: 'extra', lrMult: 0.5, layers: ['bert.encoder.layer.4.*', 'bert.encoder.layer.5.*', 'bert.pooler.dense'] },
    { name: 'head', lrMult: 1, layers: ['head_dropout', 'head_dense_1', 'head_dense_2'] },
  ]);
  const r = resolveGroups(m, { model: 'm', training: { lr: 1e-5 }, groups });
  assert.deepEqual(r.warnings, []);
  const lr = (name: string) => r.params.find((p) => p.layer === name)!.effectiveLr;
  assert.ok(Math.abs(lr('bert.embeddings.word_embeddings') - 1e-7) < 1e-20);
  assert.ok(Math.abs(lr('bert.encoder.layer.0.output.dense') - 1e-6) < 1e-20);
  assert.ok(Math.abs(lr('bert.pooler.dense') - 5e-6) < 1e-20);
  assert.equal(lr('head_dense_2'), 1e-5);

  const noEmb = seedSplitGroups(m, { embeddings: false });
  assert.deepEqual(noEmb.map((g) => g.name), ['base', 'extra', 'head']);
  assert.deepEqual(noEmb[0]!.layers.slice(0, 2), ['bert.embeddings.word_embeddings', 'bert.embeddings.LayerNorm']);
});

test('applyDiscriminative sets the preset, drops group lrMults, keeps layer overrides, mutates nothing', () => {
  const plan = deepFreeze<Plan>({
    model: 'm',
    groups: [
      { name: 'a', layers: ['dense_1'], lrMult: 0.1, frozen: true },
      { name: 'b', layers: ['*'], lrMult: 1, weightDecay: 0 },
    ],
    layers: { dense_2: { lrMult: 5 } },
  });
  const out = applyDiscriminative(plan, { type: 'layerDecay', gamma: 0.5 });
  assert.deepEqual(out, {
    model: 'm',
    groups: [
      { name: 'a', layers: ['dense_1'], frozen: true },
      { name: 'b', layers: ['*'], weightDecay: 0 },
    ],
    layers: { dense_2: { lrMult: 5 } },
    discriminative: { type: 'layerDecay', gamma: 0.5 },
  });
  const r = resolveGroups(mlp3, out);
  assert.equal(r.groups[0]!.lrMult, 0.5);
  assert.equal(r.params.find((p) => p.layer === 'dense_2')!.lrMult, 5);
});

test('PRESETS: the five presets, each described', () => {
  assert.deepEqual(
    PRESETS.map((p) => p.id),
    ['ulmfit', 'layerDecay', 'geometric', 'seed', 'none'],
  );
  for (const p of PRESETS) {
    assert.ok(p.label.length > 0 && p.description.length > 20, p.id);
    assert.equal(getPreset(p.id), p);
  }
  assert.throws(
    () => getPreset('slanted'),
    (e: unknown) =>
      e instanceof LayerwiseError && e.message.includes('"slanted"') && e.message.includes('ulmfit, layerDecay, geometric, seed, none'),
  );
});

const threeGroups: Plan = {
  model: 'm',
  training: { lr: 0.01 },
  groups: [
    { name: 'low', layers: ['dense_1'], lrMult: 0.3 },
    { name: 'mid', layers: ['dense_2'], frozen: true },
    { name: 'top', layers: ['dense_3'] },
  ],
  discriminative: { type: 'ulmfit', factor: 4 },
};

test('ulmfit, layerDecay and geometric presets spread multipliers over the plan groups', () => {
  const plan = deepFreeze(structuredClone(threeGroups));
  const mults = (p: Plan) => resolveGroups(mlp3, p).groups.filter((g) => !g.implicit).map((g) => g.lrMult);
  const close = (a: number[], b: number[]) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-15, `${a} vs ${b}`));

  const ulmfit = applyPreset(plan, mlp3, 'ulmfit');
  assert.deepEqual(ulmfit.discriminative, { type: 'ulmfit', factor: 2.6 });
  close(mults(ulmfit), [1 / 6.76, 1 / 2.6, 1]);
  assert.equal(ulmfit.groups?.[1]?.frozen, true, 'freezing is kept');

  const decay = applyPreset(plan, mlp3, 'layerDecay');
  assert.deepEqual(decay.discriminative, { type: 'layerDecay', gamma: 0.75 });
  close(mults(decay), [0.5625, 0.75, 1]);

  const geometric = applyPreset(plan, mlp3, 'geometric');
  assert.deepEqual(geometric.discriminative, { type: 'geometric', low: 0.0001, high: 0.01 });
  close(mults(geometric), [0.01, 0.1, 1]);
  assert.deepEqual(resolveGroups(mlp3, geometric).warnings, [], 'high equals training.lr');
});

test('seed preset: replaces the groups, base LR 1e-5 with AdamW, no discriminative', () => {
  const out = applyPreset(deepFreeze(structuredClone(threeGroups)), mlp3, 'seed');
  assert.equal(out.discriminative, undefined);
  assert.deepEqual(out.training, { lr: 1e-5, optimizer: 'adamw' });
  assert.deepEqual(out.groups, seedSplitGroups(mlp3));
});

test('none preset: one learning rate, freezing kept', () => {
  const out = applyPreset(deepFreeze(structuredClone(threeGroups)), mlp3, 'none');
  assert.equal(out.discriminative, undefined);
  assert.deepEqual(out.groups, [
    { name: 'low', layers: ['dense_1'] },
    { name: 'mid', layers: ['dense_2'], frozen: true },
    { name: 'top', layers: ['dense_3'] },
  ]);
  assert.deepEqual(
    resolveGroups(mlp3, out).groups.filter((g) => !g.implicit).map((g) => g.lrMult),
    [1, 1, 1],
  );
});

test('a preset on a plan without groups groups the model first', () => {
  const out = applyPreset(deepFreeze<Plan>({ model: 'm' }), mlp3, 'ulmfit');
  const expected = autoGroups(mlp3);
  assert.deepEqual(out.groups, expected);
  assert.equal(expected.length, 3);
  assert.deepEqual(out.discriminative, { type: 'ulmfit', factor: 2.6 });
  assert.deepEqual(applyPreset(deepFreeze<Plan>({ model: 'm', groups: [] }), mlp3, 'layerDecay').groups, expected);
});
