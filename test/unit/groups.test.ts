import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LayerwiseError } from '../../src/core/errors.ts';
import { resolveGroups } from '../../src/core/groups.ts';
import type { AuditWarning, ParamAudit, Resolution, WarningCode } from '../../src/core/groups.types.ts';
import type { GroupSpec, Plan } from '../../src/core/plan.ts';
import { batchNorm, dense, layer, linear, model } from './model-builders.ts';

// input → dense_1 → bn_1 → dense_2 → dropout_1 → dense_3
const mlp = model([
  layer('input_1', 'InputLayer'),
  dense('dense_1', 4, 8),
  batchNorm('bn_1', 8),
  dense('dense_2', 8, 8),
  layer('dropout_1', 'Dropout'),
  dense('dense_3', 8, 3),
]);

const plan = (extra: Partial<Plan> = {}): Plan => ({ model: 'model.json', ...extra });
const groups = (...specs: GroupSpec[]): Partial<Plan> => ({ groups: specs });
const param = (r: Resolution, name: string): ParamAudit => {
  const p = r.params.find((x) => x.name === name);
  assert.ok(p, `param ${name}`);
  return p;
};
const layerOf = (r: Resolution, name: string) => {
  const l = r.groups.flatMap((g) => g.layers).find((x) => x.name === name);
  assert.ok(l, `layer ${name}`);
  return l;
};
const codes = (r: Resolution): WarningCode[] => r.warnings.map((w) => w.code);
const warning = (r: Resolution, code: WarningCode): AuditWarning[] => r.warnings.filter((w) => w.code === code);
const close = (actual: number, expected: number, what = 'value') =>
  assert.ok(Math.abs(actual - expected) <= 1e-12 * Math.max(1, Math.abs(expected)), `${what}: ${actual} ≠ ${expected}`);

test('a layer belongs to the first group with a matching pattern; the rest form "default", placed first', () => {
  const r = resolveGroups(mlp, plan(groups({ name: 'low', layers: ['dense_1', 'bn_*'] }, { name: 'top', layers: ['dense_*'] })));
  assert.deepEqual(
    r.groups.map((g) => [g.name, g.index, g.planIndex, g.implicit, g.layers.map((l) => l.name)]),
    [
      ['default', 0, undefined, true, ['input_1', 'dropout_1']],
      ['low', 1, 0, false, ['dense_1', 'bn_1']],
      ['top', 2, 1, false, ['dense_2', 'dense_3']],
    ],
  );
  assert.deepEqual(layerOf(r, 'dense_1').matchedBy, { groupIndex: 0, pattern: 'dense_1' });
  assert.deepEqual(layerOf(r, 'bn_1').matchedBy, { groupIndex: 0, pattern: 'bn_*' });
  assert.deepEqual(layerOf(r, 'dense_2').matchedBy, { groupIndex: 1, pattern: 'dense_*' });
  assert.equal(layerOf(r, 'input_1').matchedBy, undefined);
  // layers without weights show in the tree but add no parameters
  assert.equal(r.groups[0]!.paramCount, 0);
  assert.equal(r.groups[1]!.paramCount, 4 * 8 + 8 + 4 * 8);
  assert.equal(r.groups[2]!.paramCount, 8 * 8 + 8 + 8 * 3 + 3);
  assert.deepEqual(r.warnings, [], 'the unmatched layers have no weights, and dense_* still takes dense_2 and dense_3');
});

test('params: every weight in model order with its size, group and effective LR', () => {
  const r = resolveGroups(mlp, plan({ training: { lr: 0.02 }, ...groups({ name: 'all', layers: ['*'] }) }));
  assert.deepEqual(
    r.params.map((p) => [p.name, p.size, p.group, p.trainable]),
    [
      ['dense_1/kernel', 32, 'all', true],
      ['dense_1/bias', 8, 'all', true],
      ['bn_1/gamma', 8, 'all', true],
      ['bn_1/beta', 8, 'all', true],
      ['bn_1/moving_mean', 8, 'all', false],
      ['bn_1/moving_variance', 8, 'all', false],
      ['dense_2/kernel', 64, 'all', true],
      ['dense_2/bias', 8, 'all', true],
      ['dense_3/kernel', 24, 'all', true],
      ['dense_3/bias', 3, 'all', true],
    ],
  );
  assert.equal(r.baseLr, 0.02);
  for (const p of r.params) {
    assert.equal(p.lrMult, 1);
    assert.deepEqual(p.lrMultRule, { source: 'default', detail: 'default (1)' });
    assert.equal(p.effectiveLr, 0.02);
  }
  assert.equal(r.groups.length, 1, 'no implicit group when every layer matches');
});

test('without groups everything is in the implicit default group, and nothing warns', () => {
  const r = resolveGroups(mlp, plan());
  assert.equal(r.groups.length, 1);
  assert.equal(r.groups[0]!.name, 'default');
  assert.deepEqual(r.groups[0]!.lrMultRule, { source: 'default', detail: 'implicit group "default" (1)' });
  assert.equal(r.baseLr, 1e-3);
  assert.equal(param(r, 'dense_1/kernel').effectiveLr, 1e-3);
  assert.deepEqual(r.warnings, []);
});

const four = model([dense('l0', 2, 2), dense('l1', 2, 2), dense('l2', 2, 2), dense('l3', 2, 2)]);
const perLayerGroups = (n: number): GroupSpec[] => Array.from({ length: n }, (_, i) => ({ name: `g${i}`, layers: [`l${i}`] }));

test('ulmfit: top group ×1, each lower group ÷factor', () => {
  const r = resolveGroups(
    model([dense('l0', 2, 2), dense('l1', 2, 2), dense('l2', 2, 2)]),
    plan({ training: { lr: 0.01 }, groups: perLayerGroups(3), discriminative: { type: 'ulmfit' } }),
  );
  // 2.6^-2 = 1/6.76, 2.6^-1 = 1/2.6
  const expected = [1 / 6.76, 1 / 2.6, 1];
  r.groups.forEach((g, i) => {
    close(g.lrMult, expected[i]!, g.name);
    assert.equal(g.lrMultRule.source, 'discriminative');
  });
  close(r.groups[0]!.lrMult, 0.14792899408284024);
  assert.deepEqual(
    r.groups.map((g) => g.lrMultRule.detail),
    ['discriminative ulmfit: 2.6^-2', 'discriminative ulmfit: 2.6^-1', 'discriminative ulmfit: 2.6^0'],
  );
  close(param(r, 'l0/kernel').effectiveLr, 0.01 / 6.76, 'effectiveLr');
  assert.deepEqual(param(r, 'l0/kernel').lrMultRule, r.groups[0]!.lrMultRule);
});

test('ulmfit with a custom factor; explicit group lrMult and layers[name] win over the preset', () => {
  const r = resolveGroups(
    four,
    plan({
      groups: [...perLayerGroups(2), { name: 'g2', layers: ['l2'], lrMult: 0.5 }, { name: 'g3', layers: ['l3'] }],
      discriminative: { type: 'ulmfit', factor: 2 },
      layers: { l1: { lrMult: 3 } },
    }),
  );
  // the explicit group still counts in the ordering: g0 is 3 below the top → 2^-3
  assert.deepEqual(
    r.groups.map((g) => [g.name, g.lrMult, g.lrMultRule.source, g.lrMultRule.detail]),
    [
      ['g0', 0.125, 'discriminative', 'discriminative ulmfit: 2^-3'],
      ['g1', 0.25, 'discriminative', 'discriminative ulmfit: 2^-2'],
      ['g2', 0.5, 'group', 'groups[2] "g2".lrMult'],
      ['g3', 1, 'discriminative', 'discriminative ulmfit: 2^0'],
    ],
  );
  const l1 = layerOf(r, 'l1');
  assert.equal(l1.lrMult, 3);
  assert.deepEqual(l1.lrMultRule, { source: 'layers', detail: 'layers["l1"].lrMult' });
  assert.equal(param(r, 'l1/bias').lrMult, 3);
  assert.equal(param(r, 'l1/bias').effectiveLr, 3e-3);
});

test('the implicit default group is not part of the preset ordering', () => {
  const r = resolveGroups(four, plan({ groups: [{ name: 'a', layers: ['l1'] }, { name: 'b', layers: ['l2'] }], discriminative: { type: 'ulmfit' } }));
  assert.deepEqual(
    r.groups.map((g) => g.name),
    ['default', 'a', 'b'],
  );
  close(r.groups[1]!.lrMult, 1 / 2.6, 'a (bottom of 2 plan groups)');
  assert.equal(r.groups[2]!.lrMult, 1);
  assert.equal(r.groups[0]!.lrMult, 1);
  assert.equal(layerOf(r, 'l0').lrMultRule.source, 'default');
  assert.equal(layerOf(r, 'l3').lrMultRule.detail, 'implicit group "default" (1)');
});

test('layerDecay: group i of n gets γ^(n−1−i)', () => {
  const r = resolveGroups(four, plan({ groups: perLayerGroups(4), discriminative: { type: 'layerDecay', gamma: 0.75 } }));
  assert.deepEqual(
    r.groups.map((g) => g.lrMult),
    [0.421875, 0.5625, 0.75, 1],
  );
  assert.equal(r.groups[0]!.lrMultRule.detail, 'discriminative layerDecay: 0.75^3');
});

test('geometric: multipliers from low/high up to 1, and a warning when training.lr is not high', () => {
  const spec = { type: 'geometric' as const, low: 1e-5, high: 1e-3 };
  const r = resolveGroups(
    model([dense('l0', 2, 2), dense('l1', 2, 2), dense('l2', 2, 2)]),
    plan({ training: { lr: 1e-3 }, groups: perLayerGroups(3), discriminative: spec }),
  );
  // (1e-5/1e-3)^(2/2) = 0.01, ^(1/2) = 0.1
  close(r.groups[0]!.lrMult, 0.01);
  close(r.groups[1]!.lrMult, 0.1);
  assert.equal(r.groups[2]!.lrMult, 1);
  assert.equal(r.groups[0]!.lrMultRule.detail, 'discriminative geometric: (0.00001/0.001)^(2/2)');
  close(param(r, 'l0/kernel').effectiveLr, 1e-5, 'bottom group trains at low');
  assert.deepEqual(codes(r), []);

  // training.lr left at its default (1e-3) equals high: no warning either
  assert.deepEqual(codes(resolveGroups(four, plan({ groups: perLayerGroups(4), discriminative: spec }))), []);

  const off = resolveGroups(four, plan({ training: { lr: 0.01 }, groups: perLayerGroups(4), discriminative: spec }));
  const [w, ...more] = warning(off, 'geometricLrMismatch');
  assert.ok(w !== undefined && more.length === 0);
  assert.equal(w.field, 'discriminative.high');
  assert.match(w.message, /training\.lr is 0\.01/);

  const single = resolveGroups(four, plan({ groups: [{ name: 'all', layers: ['*'] }], discriminative: spec }));
  assert.equal(single.groups[0]!.lrMult, 1, 'n = 1 → ×1');
});

test('frozen: layers[name].frozen → group.frozen → not frozen; statistics freeze with their layer', () => {
  const r = resolveGroups(
    mlp,
    plan({
      groups: [
        { name: 'base', layers: ['dense_1', 'bn_1', 'dense_2'], frozen: true },
        { name: 'head', layers: ['dense_3'] },
      ],
      layers: { dense_2: { frozen: false } },
    }),
  );
  for (const name of ['dense_1/kernel', 'bn_1/gamma', 'bn_1/moving_mean', 'bn_1/moving_variance']) {
    assert.equal(param(r, name).frozen, true, name);
    assert.deepEqual(param(r, name).frozenRule, { source: 'group', detail: 'groups[0] "base".frozen' });
  }
  assert.equal(param(r, 'bn_1/moving_mean').trainable, false);
  assert.equal(param(r, 'dense_2/kernel').frozen, false);
  assert.deepEqual(param(r, 'dense_2/kernel').frozenRule, { source: 'layers', detail: 'layers["dense_2"].frozen' });
  assert.equal(param(r, 'dense_3/kernel').frozen, false);
  assert.deepEqual(param(r, 'dense_3/kernel').frozenRule, { source: 'default', detail: 'default (not frozen)' });
  assert.equal(r.groups.find((g) => g.name === 'base')!.frozen, true);
  assert.deepEqual(codes(r).filter((c) => c !== 'unmatchedLayers'), []);

  const unfrozenBn = resolveGroups(mlp, plan({ groups: [{ name: 'all', layers: ['*'] }] }));
  assert.equal(param(unfrozenBn, 'bn_1/moving_mean').frozen, false, 'statistics move when their layer is not frozen');
});

test('weight decay: layers → noDecay → group → training → optimizer default', () => {
  const r = resolveGroups(
    mlp,
    plan({
      groups: [
        { name: 'low', layers: ['dense_1', 'bn_1'], weightDecay: 0.05, frozen: true },
        { name: 'top', layers: ['dense_*'] },
      ],
      layers: { dense_2: { weightDecay: 0.2 } },
    }),
  );
  const decay = (name: string) => {
    const p = param(r, name);
    return [p.weightDecay, p.weightDecayRule.source, p.weightDecayRule.detail];
  };
  assert.deepEqual(decay('dense_1/kernel'), [0.05, 'group', 'groups[0] "low".weightDecay']);
  assert.equal(param(r, 'dense_1/kernel').frozen, true, 'a frozen parameter reports its configured decay and frozen: true');
  assert.deepEqual(decay('dense_1/bias'), [0, 'noDecay', 'noDecay "bias"']);
  assert.deepEqual(decay('bn_1/gamma'), [0, 'noDecay', 'noDecay "bias" (1-D weight)']);
  assert.deepEqual(decay('bn_1/moving_mean'), [0, 'default', 'not trainable (statistic): never decayed']);
  // layers[name].weightDecay wins over noDecay, for the bias too
  assert.deepEqual(decay('dense_2/kernel'), [0.2, 'layers', 'layers["dense_2"].weightDecay']);
  assert.deepEqual(decay('dense_2/bias'), [0.2, 'layers', 'layers["dense_2"].weightDecay']);
  assert.deepEqual(decay('dense_3/kernel'), [0.01, 'default', 'default (adamw 0.01)']);
  assert.deepEqual(decay('dense_3/bias'), [0, 'noDecay', 'noDecay "bias"']);
});

test('weight decay from training, the optimizer defaults, and custom noDecay tokens', () => {
  const all = groups({ name: 'all', layers: ['*'] });
  const fromTraining = resolveGroups(mlp, plan({ training: { weightDecay: 0.03 }, ...all }));
  assert.equal(param(fromTraining, 'dense_3/kernel').weightDecay, 0.03);
  assert.deepEqual(param(fromTraining, 'dense_3/kernel').weightDecayRule, { source: 'training', detail: 'training.weightDecay' });

  for (const [optimizer, expected] of [['adam', 0], ['sgd', 0], ['adamw', 0.01]] as const) {
    const r = resolveGroups(mlp, plan({ training: { optimizer }, ...all }));
    assert.equal(param(r, 'dense_1/kernel').weightDecay, expected, optimizer);
    assert.equal(param(r, 'dense_1/kernel').weightDecayRule.detail, `default (${optimizer} ${expected})`);
  }

  const onlyNorm = resolveGroups(mlp, plan({ training: { noDecay: ['norm'] }, ...all }));
  assert.deepEqual(param(onlyNorm, 'bn_1/gamma').weightDecayRule, { source: 'noDecay', detail: 'noDecay "norm" (BatchNormalization layer)' });
  assert.equal(param(onlyNorm, 'dense_1/bias').weightDecay, 0.01, 'biases decay when "bias" is not in noDecay');

  const kernels = resolveGroups(mlp, plan({ training: { noDecay: ['*/kernel'] }, ...all }));
  assert.deepEqual(param(kernels, 'dense_2/kernel').weightDecayRule, { source: 'noDecay', detail: 'noDecay "*/kernel"' });
  assert.equal(param(kernels, 'dense_2/kernel').weightDecay, 0);
  assert.equal(param(kernels, 'dense_2/bias').weightDecay, 0.01);
  assert.equal(param(kernels, 'bn_1/gamma').weightDecay, 0.01);

  const none = resolveGroups(mlp, plan({ training: { noDecay: [] }, ...all }));
  assert.equal(param(none, 'bn_1/beta').weightDecay, 0.01);
  assert.equal(param(none, 'bn_1/moving_variance').weightDecay, 0, 'statistics are never decayed');
});

test('"norm" covers every weight of a normalisation layer, also a 2-D one, and LayerNormalization', () => {
  const m = model([layer('ln', 'LayerNormalization', [['gamma', [4]], ['beta', [4]]]), layer('odd_norm', 'BatchNormalization', [['gamma', [2, 2]]]), dense('d', 4, 2)]);
  const r = resolveGroups(m, plan({ training: { noDecay: ['norm'] } }));
  assert.equal(param(r, 'ln/gamma').weightDecayRule.detail, 'noDecay "norm" (LayerNormalization layer)');
  assert.equal(param(r, 'odd_norm/gamma').weightDecay, 0);
  assert.equal(param(r, 'd/kernel').weightDecay, 0.01);
});

test('warning: layers with weights that match no group', () => {
  const r = resolveGroups(mlp, plan(groups({ name: 'first', layers: ['dense_1'] })));
  const [w, ...more] = warning(r, 'unmatchedLayers');
  assert.ok(w !== undefined && more.length === 0);
  assert.match(w.message, /^3 layers with weights match no group/);
  assert.match(w.message, /bn_1, dense_2, dense_3$/);
  assert.ok(!w.message.includes('input_1') && !w.message.includes('dropout_1'), 'layers without weights are not listed');
  assert.equal(r.groups[0]!.name, 'default');
  assert.equal(r.groups[0]!.paramCount, 32 + 64 + 8 + 24 + 3);
});

test('warning: one layer that matches no group reads in the singular', () => {
  const r = resolveGroups(mlp, plan(groups({ name: 'first', layers: ['dense_1', 'bn_1', 'dense_2'] })));
  assert.match(warning(r, 'unmatchedLayers')[0]?.message ?? '', /^1 layer with weights matches no group and trains in the implicit group "default" \(×1\): dense_3$/);
});

test('warnings: a pattern that matches nothing, an empty group, a shadowed pattern', () => {
  const r = resolveGroups(
    mlp,
    plan(
      groups(
        { name: 'a', layers: ['dense_*', 'bn_1'] },
        { name: 'b', layers: ['dense_2'] },
        { name: 'ghost', layers: ['conv*'] },
        { name: 'none', layers: [] },
        { name: 'partly', layers: ['re:dense_1|dropout_1'] },
      ),
    ),
  );
  const byField = Object.fromEntries(r.warnings.map((w) => [`${w.code} ${w.field}`, w]));
  assert.deepEqual(Object.keys(byField).sort(), [
    'emptyGroup groups[1]',
    'emptyGroup groups[2]',
    'emptyGroup groups[3]',
    'patternMatchesNothing groups[2].layers[0]',
    'patternShadowed groups[1].layers[0]',
  ]);
  const shadowed = byField['patternShadowed groups[1].layers[0]']!;
  assert.equal(shadowed.group, 'b');
  assert.match(shadowed.message, /"dense_2" of group "b" matches only layers that an earlier group already takes \("a"\)/);
  // "partly" takes dropout_1 although dense_1 is shadowed: not reported as shadowed
  assert.deepEqual(layerOf(r, 'dropout_1').group, 'partly');
  assert.match(byField['emptyGroup groups[3]']!.message, /lists no patterns/);
  assert.deepEqual(
    r.groups.map((g) => [g.name, g.layers.length]),
    [
      ['default', 1],
      ['a', 4],
      ['b', 0],
      ['ghost', 0],
      ['none', 0],
      ['partly', 1],
    ],
  );
});

test('warning: lrMult 0 is not frozen — one warning per rule, BatchNorm statistics separately', () => {
  const r = resolveGroups(
    mlp,
    plan({
      groups: [
        { name: 'base', layers: ['dense_1', 'bn_1', 'dense_2'], lrMult: 0 },
        { name: 'head', layers: ['*'] },
      ],
      layers: { dense_3: { lrMult: 0 } },
    }),
  );
  const zero = warning(r, 'zeroLrNotFrozen');
  assert.equal(zero.length, 2);
  const fromGroup = zero.find((w) => w.field === 'groups[0].lrMult');
  assert.ok(fromGroup);
  assert.equal(fromGroup.group, 'base');
  assert.equal(fromGroup.layer, undefined, 'a group-wide warning names the group, not one layer');
  assert.match(fromGroup.message, /^lrMult 0 is not frozen \(groups\[0\] "base"\.lrMult\): dense_1, dense_2 /);
  assert.match(fromGroup.message, /use "frozen": true/);
  const fromLayer = zero.find((w) => w.field === 'layers.dense_3.lrMult');
  assert.ok(fromLayer);
  assert.equal(fromLayer.layer, 'dense_3');
  const [bn, ...moreBn] = warning(r, 'frozenBatchNormStatistics');
  assert.ok(bn !== undefined && moreBn.length === 0);
  assert.equal(bn.layer, 'bn_1');
  assert.equal(bn.field, 'groups[0].lrMult');
  assert.match(bn.message, /moving mean\/variance of BatchNormalization bn_1 still move/);
  assert.deepEqual(warning(r, 'allFrozen').length, 1, 'every trainable weight has lrMult 0');
  assert.match(warning(r, 'allFrozen')[0]!.message, /every layer that is not frozen has lrMult 0/);

  const frozenToo = resolveGroups(
    mlp,
    plan({ groups: [{ name: 'base', layers: ['dense_1', 'bn_1', 'dense_2'], lrMult: 0, frozen: true }, { name: 'head', layers: ['*'] }] }),
  );
  assert.deepEqual(codes(frozenToo), [], 'lrMult 0 on a frozen group is harmless');
});

test('warning: layers[name] naming no layer, with a suggestion when one is close', () => {
  const r = resolveGroups(mlp, plan({ layers: { Dense_1: { lrMult: 2 }, dense_4: { frozen: true }, classifier: { frozen: true } } }));
  const ws = warning(r, 'unknownLayerOverride');
  assert.deepEqual(
    ws.map((w) => [w.field, w.layer]),
    [
      ['layers.Dense_1', 'Dense_1'],
      ['layers.dense_4', 'dense_4'],
      ['layers.classifier', 'classifier'],
    ],
  );
  assert.match(ws[0]!.message, /did you mean "dense_1"\?/);
  assert.match(ws[1]!.message, /did you mean "dense_\d"\?/);
  assert.ok(!ws[2]!.message.includes('did you mean'));
});

test('warning: everything frozen', () => {
  const r = resolveGroups(mlp, plan(groups({ name: 'all', layers: ['*'], frozen: true })));
  assert.deepEqual(codes(r), ['allFrozen']);
  assert.match(r.warnings[0]!.message, /every layer with trainable weights is frozen/);
  const oneTrains = resolveGroups(mlp, plan({ ...groups({ name: 'all', layers: ['*'], frozen: true }), layers: { dense_3: { frozen: false } } }));
  assert.deepEqual(codes(oneTrains), []);
});

test('module paths of a PyTorch checkpoint: * crosses dots', () => {
  const m = model(
    [
      layer('bert.embeddings.word_embeddings', '', [['weight', [10, 4]]]),
      layer('bert.embeddings.LayerNorm', '', [['weight', [4]], ['bias', [4]]]),
      linear('bert.encoder.layer.0.attention.self.query', 4, 4),
      linear('bert.encoder.layer.1.attention.self.query', 4, 4),
      linear('classifier', 4, 2),
    ],
    { kind: 'pytorch' },
  );
  const r = resolveGroups(
    m,
    plan(groups({ name: 'emb', layers: ['bert.embeddings.*'] }, { name: 'enc', layers: ['bert.*.query'] }, { name: 'head', layers: ['classifier'] })),
  );
  assert.deepEqual(
    r.groups.map((g) => [g.name, g.layers.length]),
    [
      ['emb', 2],
      ['enc', 2],
      ['head', 1],
    ],
  );
  // className is empty for checkpoints: a module named like a norm is a norm
  assert.equal(param(r, 'bert.embeddings.LayerNorm/weight').weightDecayRule.detail, 'noDecay "bias" (1-D weight)');
  assert.equal(resolveGroups(m, plan({ training: { noDecay: ['norm'] } })).params[1]!.weightDecayRule.detail, 'noDecay "norm" (normalisation layer)');
});

test('errors: invalid regex, duplicate names, a plan group called "default", negative values', () => {
  const fails = (p: Plan, field: string, text: RegExp) =>
    assert.throws(
      () => resolveGroups(mlp, p, 'layerwise.json'),
      (e: unknown) => e instanceof LayerwiseError && e.field === field && e.file === 'layerwise.json' && text.test(e.message),
    );
  fails(plan(groups({ name: 'a', layers: ['dense_1', 're:(dense'] })), 'groups[0].layers[1]', /invalid regular expression/);
  fails(plan(groups({ name: 'a', layers: ['dense_1'] }, { name: 'a', layers: ['dense_2'] })), 'groups[1].name', /already used by groups\[0\]/);
  fails(plan(groups({ name: 'default', layers: ['dense_1'] })), 'groups[0].name', /reserved/);
  fails(plan(groups({ name: 'a', layers: ['*'], lrMult: -1 })), 'groups[0].lrMult', /≥ 0/);
  fails(plan({ layers: { dense_1: { weightDecay: Number.NaN } } }), 'layers.dense_1.weightDecay', /≥ 0/);
  fails(plan({ training: { lr: 0 } }), 'training.lr', /> 0/);
  fails(plan({ groups: [{ name: 'a', layers: ['*'] }], discriminative: { type: 'ulmfit', factor: 0 } }), 'discriminative.factor', /> 0/);
  fails(plan({ training: { noDecay: ['re:['] } }), 'training.noDecay[0]', /invalid regular expression/);
  // a plan group may be called "default" when it leaves no layer unmatched
  assert.equal(resolveGroups(mlp, plan(groups({ name: 'default', layers: ['*'] }))).groups.length, 1);
});

test('resolution is pure: the plan and model are not modified', () => {
  const p = plan({
    training: { lr: 0.1, noDecay: ['bias'] },
    groups: [{ name: 'a', layers: ['dense_1'], lrMult: 0.5 }, { name: 'b', layers: ['*'] }],
    discriminative: { type: 'ulmfit' },
    layers: { dense_2: { frozen: true } },
  });
  const before = JSON.stringify([p, mlp]);
  const first = resolveGroups(mlp, p);
  assert.equal(JSON.stringify([p, mlp]), before);
  assert.deepEqual(resolveGroups(mlp, p), first);
});
