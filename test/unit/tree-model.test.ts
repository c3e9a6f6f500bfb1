import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroups } from '../../src/core/groups.ts';
import type { Plan } from '../../src/core/plan.ts';
import {
  buildPlanTree,
  code,
  escapeMarkdown,
  findNode,
  formatCount,
  formatLr,
  formatMult,
  freezeChange,
  moveTargets,
  parseMultiplierInput,
  type TreeNode,
} from '../../src/core/tree-model.ts';
import { batchNorm, conv, dense, layer, model, type LayerDraft } from './model-builders.ts';

/** A small CNN: 80 + 32 + 1,168 + 12,832 + 198 parameters. */
const cnnLayers: LayerDraft[] = [
  layer('input', 'InputLayer'),
  conv('block1_conv', 3, 1, 8),
  batchNorm('block1_bn', 8),
  conv('block2_conv', 3, 8, 16),
  layer('flatten', 'Flatten'),
  dense('features', 400, 32),
  dense('classifier', 32, 6),
];
const cnn = model(cnnLayers, { source: 'model.json' });

const plan: Plan = {
  model: 'model.json',
  training: { lr: 3e-3 },
  groups: [
    { name: 'block1', layers: ['block1_*'] },
    { name: 'block2', layers: ['block2_*'] },
    { name: 'head', layers: ['features', 'classifier'] },
  ],
  discriminative: { type: 'ulmfit', factor: 2.6 },
  layers: { features: { frozen: true } },
};

const KEY = 'file:///ws/layerwise.json';
const tree = () => buildPlanTree({ planKey: KEY, label: 'layerwise.json', plan, problems: [], model: { state: 'ready', model: cnn } });
const node = (root: TreeNode, id: string): TreeNode => {
  const n = findNode([root], `${KEY}#${id}`);
  assert.ok(n, `no node ${id}`);
  return n;
};

test('groups appear bottom → top, the implicit default group first', () => {
  const unmatched = model([...cnnLayers, layer('extra', 'Dense', [['kernel', [6, 2]]])], { source: 'model.json' });
  const root = buildPlanTree({ planKey: KEY, label: 'layerwise.json', plan, problems: [], model: { state: 'ready', model: unmatched } });
  assert.equal(root.kind, 'plan');
  assert.deepEqual(root.children.map((c) => c.label), ['default', 'block1', 'block2', 'head']);
  assert.deepEqual(node(root, 'g:head').children.map((c) => c.label), ['features', 'classifier']);
  assert.deepEqual(node(root, 'g:default').children.map((c) => c.label), ['input', 'flatten', 'extra']);
  assert.equal(node(root, 'g:default').checkbox, undefined, 'the implicit group has no entry to write a freeze to');
  assert.equal(node(root, 'g:default').contextValue, 'layerwise.group.implicit');
});

test('an implicit group of weightless layers only (input, flatten) is not shown', () => {
  assert.deepEqual(tree().children.map((c) => c.label), ['block1', 'block2', 'head']);
  // 14,310 weights; the frozen "features" layer (12,832) and BatchNorm's statistics (16) do not train: 1,462 do
  assert.equal(tree().description, 'lr 3e-3 · 3 groups · 1.5K/14.3K params train');
});

test('group descriptions: ULMFiT multipliers (÷2.6 per group), parameter counts, frozen', () => {
  const root = tree();
  // 1/2.6² = 0.14792…, 1/2.6 = 0.38461…
  assert.equal(node(root, 'g:block1').description, '×0.148 · 112 params');
  assert.equal(node(root, 'g:block2').description, '×0.385 · 1.2K params');
  assert.equal(node(root, 'g:head').description, '×1 · 13K params');
});

test('layer descriptions name the multiplier, size, frozen state and class', () => {
  const root = tree();
  assert.equal(node(root, 'l:features').description, '×1 · 12.8K params · frozen · Dense');
  assert.equal(node(root, 'l:block1_conv').description, '×0.148 · 80 params · Conv2D');
  const withPool = model([...cnnLayers.slice(0, 2), layer('block1_pool', 'MaxPooling2D'), ...cnnLayers.slice(3)], { source: 'model.json' });
  const pooled = buildPlanTree({ planKey: KEY, label: 'p', plan, problems: [], model: { state: 'ready', model: withPool } });
  assert.equal(node(pooled, 'l:block1_pool').description, 'no params · MaxPooling2D');
  assert.equal(node(pooled, 'l:block1_pool').checkbox, undefined);
  assert.equal(node(pooled, 'l:block1_pool').contextValue, 'layerwise.layer.empty');
});

test('checkboxes: checked = trains; none for the implicit group or layers without weights', () => {
  const root = tree();
  assert.equal(node(root, 'g:head').checkbox, 'checked');
  assert.equal(node(root, 'l:features').checkbox, 'unchecked');
  assert.equal(node(root, 'l:classifier').checkbox, 'checked');
  assert.equal(node(root, 'l:block1_bn').checkbox, 'checked');
  assert.equal(node(root, 'p:classifier/kernel').checkbox, undefined);
  assert.equal(node(root, 'l:features').contextValue, 'layerwise.layer');
});

test('parameter nodes show shape, size, effective LR and weight decay', () => {
  const root = tree();
  // 3e-3 × 0.147929 = 4.4379e-4; AdamW's default decay 0.01; biases are in noDecay
  assert.equal(node(root, 'p:block1_conv/kernel').description, '[3, 3, 1, 8] · 72 · lr 4.44e-4 · wd 0.01');
  assert.equal(node(root, 'p:block1_conv/bias').description, '[8] · 8 · lr 4.44e-4 · wd 0');
  assert.equal(node(root, 'p:block1_bn/moving_mean').description, '[8] · 8 · statistic');
  assert.equal(node(root, 'p:features/kernel').description, '[400, 32] · 12.8K · frozen · wd 0.01');
  assert.equal(node(root, 'p:block1_conv/kernel').label, 'kernel');
});

test('tooltips carry the audit: effective LR, weight decay and the deciding rule', () => {
  const root = tree();
  const g = node(root, 'g:block2').tooltipMarkdown ?? '';
  assert.match(g, /multiplier: ×0\.385 — discriminative/);
  assert.match(g, /effective LR: 1\.15e-3/); // 3e-3 / 2.6 = 1.1538e-3
  assert.match(g, /weight decay: 0 – 0\.01/);
  assert.match(g, /patterns: `block2_\*`/);
  const l = node(root, 'l:features').tooltipMarkdown ?? '';
  assert.match(l, /frozen: yes — layers/);
  assert.match(l, /pattern `features` of `groups\[2\]`/);
  const p = node(root, 'p:block1_conv/bias').tooltipMarkdown ?? '';
  assert.match(p, /weight decay: 0 — noDecay/);
});

test('ids are unique across the whole tree', () => {
  const ids: string[] = [];
  const walk = (n: TreeNode) => {
    ids.push(n.id);
    n.children.forEach(walk);
  };
  walk(tree());
  assert.equal(new Set(ids).size, ids.length);
  // plan + 3 groups + 5 layers with weights + 12 weights (input and flatten are in the hidden default group)
  assert.equal(ids.length, 1 + 3 + 5 + 12);
});

test('warnings show on the node they are about and are counted in its description', () => {
  const zero: Plan = { ...plan, layers: { classifier: { lrMult: 0 } } };
  const root = buildPlanTree({ planKey: KEY, label: 'l', plan: zero, problems: [], model: { state: 'ready', model: cnn } });
  const r = resolveGroups(cnn, zero);
  const onClassifier = r.warnings.filter((x) => x.layer === 'classifier');
  assert.ok(onClassifier.length >= 1, 'resolver warns about lrMult 0 without freezing');
  assert.match(node(root, 'l:classifier').description ?? '', new RegExp(`⚠ ${onClassifier.length}$`));
  assert.match(node(root, 'l:classifier').tooltipMarkdown ?? '', /\$\(warning\)/);
});

test('a plan with problems shows the problems instead of groups', () => {
  const root = buildPlanTree({
    planKey: KEY,
    label: 'layerwise.json',
    plan: undefined,
    problems: [{ message: 'must be a number > 0 (got "fast")', field: 'training.lr', offset: 40, length: 6 }],
    model: { state: 'loading' },
  });
  assert.equal(root.description, '1 problem');
  assert.equal(root.contextValue, 'layerwise.plan.invalid');
  assert.equal(root.children.length, 1);
  assert.equal(root.children[0]!.label, 'training.lr');
  assert.deepEqual(root.children[0]!.target, { kind: 'location', planKey: KEY, offset: 40, length: 6 });
});

test('while the model loads, and when it cannot, the plan says so', () => {
  const loading = buildPlanTree({ planKey: KEY, label: 'p', plan, problems: [], model: { state: 'loading' } });
  assert.equal(loading.children[0]!.kind, 'loading');
  assert.equal(loading.description, 'loading model…');
  const failed = buildPlanTree({ planKey: KEY, label: 'p', plan, problems: [], model: { state: 'failed', message: 'model.json: not found' } });
  assert.equal(failed.children[0]!.kind, 'problem');
  assert.equal(failed.children[0]!.description, 'model.json: not found');
});

test('a plan the resolver rejects shows the reason instead of breaking', () => {
  const dup: Plan = { ...plan, groups: [{ name: 'a', layers: ['block1_*'] }, { name: 'a', layers: ['block2_*'] }] };
  const root = buildPlanTree({ planKey: KEY, label: 'p', plan: dup, problems: [], model: { state: 'ready', model: cnn } });
  assert.equal(root.description, 'groups cannot be resolved');
  assert.equal(root.children[0]!.kind, 'problem');
  assert.match(root.children[0]!.description ?? '', /groups\[1\]/);
});

test('freeze toggles write the least that reaches the wanted state', () => {
  const r = resolveGroups(cnn, plan);
  const root = tree();
  // a group: freezing writes true, unfreezing removes the member (false is the default)
  assert.deepEqual(freezeChange(node(root, 'g:block1').target, false, r), { kind: 'group', planIndex: 0, frozen: true });
  assert.deepEqual(freezeChange(node(root, 'g:block1').target, true, r), { kind: 'group', planIndex: 0, frozen: null });
  // features is frozen by its own override while its group trains: training it again removes the override
  assert.deepEqual(freezeChange(node(root, 'l:features').target, true, r), { kind: 'layer', layer: 'features', frozen: null });
  assert.deepEqual(freezeChange(node(root, 'l:classifier').target, false, r), { kind: 'layer', layer: 'classifier', frozen: true });
  // no setting of its own
  assert.equal(freezeChange({ kind: 'group', planKey: KEY, group: 'default' }, false, r), undefined);
  assert.equal(freezeChange(node(root, 'p:classifier/kernel').target, false, r), undefined);
});

test('a layer in a frozen group is trained by an explicit override', () => {
  const frozenHead: Plan = { ...plan, groups: plan.groups!.map((g) => (g.name === 'head' ? { ...g, frozen: true } : g)), layers: {} };
  const r = resolveGroups(cnn, frozenHead);
  const root = buildPlanTree({ planKey: KEY, label: 'p', plan: frozenHead, problems: [], model: { state: 'ready', model: cnn } });
  assert.equal(node(root, 'g:head').checkbox, 'unchecked');
  assert.deepEqual(freezeChange(node(root, 'l:classifier').target, true, r), { kind: 'layer', layer: 'classifier', frozen: false });
  assert.deepEqual(freezeChange(node(root, 'l:classifier').target, false, r), { kind: 'layer', layer: 'classifier', frozen: null });
});

test('the multiplier input accepts numbers ≥ 0 and empty (remove), nothing else', () => {
  assert.deepEqual(parseMultiplierInput('0.1'), { value: 0.1 });
  assert.deepEqual(parseMultiplierInput(' 2.5e-2 '), { value: 0.025 });
  assert.deepEqual(parseMultiplierInput('×0.5'), { value: 0.5 });
  assert.deepEqual(parseMultiplierInput('0'), { value: 0 });
  assert.deepEqual(parseMultiplierInput('.5'), { value: 0.5 });
  assert.deepEqual(parseMultiplierInput(''), { value: null });
  for (const bad of ['-1', 'abc', '1e999', '0x10', '1,5', 'NaN', 'Infinity', '1 2']) {
    assert.ok('error' in parseMultiplierInput(bad), `accepted ${bad}`);
  }
});

test('move targets are the other plan groups', () => {
  assert.deepEqual(moveTargets(plan, 'head'), [{ planIndex: 0, name: 'block1' }, { planIndex: 1, name: 'block2' }]);
  assert.deepEqual(moveTargets(plan, 'default').map((t) => t.name), ['block1', 'block2', 'head']);
});

test('number formatting', () => {
  assert.equal(formatMult(1 / 2.6 ** 2), '×0.148');
  assert.equal(formatMult(1), '×1');
  assert.equal(formatMult(0.75 ** 3), '×0.422');
  assert.equal(formatMult(1e-5), '×1e-5');
  assert.equal(formatLr(3e-3), '3e-3');
  assert.equal(formatLr(0.01), '0.01');
  assert.equal(formatLr(0), '0');
  assert.equal(formatLr(1.23456e-5), '1.23e-5');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(1200), '1.2K');
  assert.equal(formatCount(1_234_567), '1.2M');
  assert.equal(formatCount(123_456), '123K');
  assert.equal(formatCount(3_500_000_000), '3.5B');
});

test('markdown escaping keeps names literal', () => {
  assert.equal(escapeMarkdown('block_1_*'), 'block\\_1\\_\\*');
  assert.equal(code('a`b'), '`` a`b ``');
  assert.equal(code('dense_1'), '`dense_1`');
});
