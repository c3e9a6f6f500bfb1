/** The panel's pure half, in plain Node: tree rows, edits, numbers, scales, run folding. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroups } from '../../src/core/groups.ts';
import type { Plan } from '../../src/core/plan.ts';
import { textAfterRequest } from '../../src/host/plan-requests.ts';
import { isWebviewToHost, type TrainingStatus } from '../../src/protocol/webview.ts';
import { extent, linearScale, linearTicks, logScale, logTicks } from '../../webview/charts.ts';
import { RunData } from '../../webview/run-data.ts';
import {
  buildTreeModel,
  colorClass,
  decayBlockedReason,
  formatNumber,
  formatParams,
  groupColors,
  moveBlockedReason,
  moveEdit,
  multiplierEdit,
  trainsEdit,
  ownWeightDecayField,
  parseNumber,
  runControls,
  statusText,
  stepMultiplier,
  warmupCheck,
  weightDecayEdit,
  type GroupRow,
  type LayerRow,
  type TreeModel,
} from '../../webview/view-model.ts';
import { epochEvent, groupLrs, smallModel, smallPlan, stepEvent } from './fixtures.ts';

const treeOf = (plan: Plan): TreeModel => buildTreeModel(resolveGroups(smallModel(), plan), plan);

/** Rows by name, so a test does not depend on which groups the tree shows before them. */
function groupRow(tree: TreeModel, name: string): GroupRow {
  const g = tree.groups.find((x) => x.name === name);
  assert.ok(g, `group ${name} in ${tree.groups.map((x) => x.name).join(', ')}`);
  return g;
}

function layerRow(tree: TreeModel, name: string): LayerRow {
  const l = tree.groups.flatMap((g) => g.layers).find((x) => x.name === name);
  assert.ok(l, `layer ${name}`);
  return l;
}

test('tree rows: groups bottom to top, layers in depth order, each with its deciding rule', () => {
  const tree = treeOf(smallPlan());
  assert.deepEqual(
    tree.groups.map((g) => [g.name, g.planIndex, g.layers.map((l) => l.name)]),
    [
      ['base', 0, ['conv2d_1', 'batch_normalization_1', 'conv2d_2']],
      ['extra', 1, ['dense_1']],
      ['head', 2, ['head_dense']],
    ],
  );
  assert.equal(tree.layerCount, 5);
  const base = groupRow(tree, 'base');
  // 3·3·1·16 + 16 + 4·16 + 3·3·16·32 + 32
  assert.equal(base.paramCount, 160 + 64 + 4640);
  assert.ok(Math.abs(base.effectiveLr! - 1e-4) < 1e-15);
  assert.equal(layerRow(tree, 'conv2d_1').frozen, true);
  assert.equal(layerRow(tree, 'conv2d_1').frozenRule.source, 'layers');
  assert.equal(layerRow(tree, 'conv2d_2').frozen, false);
  // BatchNorm: gamma and beta are "norm" weights (no decay); its statistics are not optimized
  assert.equal(layerRow(tree, 'batch_normalization_1').weightDecay, '0');
  // dense_1's own multiplier wins over its group's 0.5
  const dense = layerRow(tree, 'dense_1');
  assert.equal(dense.lrMult, 0.3);
  assert.equal(dense.lrMultRule.source, 'layers');
  assert.equal(dense.weightDecay, '0.01 / 0');
  assert.equal(dense.ownWeightDecay, undefined);
  assert.equal(dense.groupPlanIndex, 1);
  assert.deepEqual(tree.planGroups, [
    { planIndex: 0, name: 'base' },
    { planIndex: 1, name: 'extra' },
    { planIndex: 2, name: 'head' },
  ]);
});

test('the implicit default group is hidden while it holds only layers without weights, shown once it holds weights', () => {
  // input, pooling, flatten and dropout match no pattern: nothing in them trains
  const hidden = treeOf(smallPlan());
  assert.ok(!hidden.groups.some((g) => g.name === 'default'));
  assert.equal(hidden.hiddenLayerCount, 4);
  assert.equal(hidden.layerCount + hidden.hiddenLayerCount, smallModel().layers.length);

  // without the "extra" group, dense_1 (weights) matches nothing: default holds weights now
  const plan = smallPlan();
  plan.groups = plan.groups!.filter((g) => g.name !== 'extra');
  const shown = treeOf(plan);
  assert.deepEqual(
    shown.groups.map((g) => g.name),
    ['default', 'base', 'head'],
  );
  const implicit = groupRow(shown, 'default');
  assert.deepEqual(
    implicit.layers.map((l) => l.name),
    ['input_1', 'max_pooling2d_1', 'flatten_1', 'dense_1', 'dropout_1'],
  );
  assert.equal(implicit.paramCount, 800 * 64 + 64);
  assert.equal(shown.hiddenLayerCount, 0);
  // its layers are in no plan group: a move has one to go to, and "head" is not where it is
  assert.equal(layerRow(shown, 'dense_1').groupPlanIndex, undefined);
  assert.deepEqual(moveEdit(layerRow(shown, 'dense_1'), 1), { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 1 });
});

test('edits: group rows address the plan group by index, layer rows by name, the implicit group not at all', () => {
  const plan = smallPlan();
  plan.groups = plan.groups!.filter((g) => g.name !== 'extra');
  const tree = treeOf(plan);
  const implicit = groupRow(tree, 'default');
  const base = groupRow(tree, 'base');
  const head = groupRow(tree, 'head');
  assert.deepEqual(multiplierEdit(head, 0.2), { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: 0.2 });
  assert.deepEqual(trainsEdit(base, false, false), { kind: 'setGroup', groupIndex: 0, key: 'frozen', value: true });
  // a group that trains again loses its field rather than getting "frozen": false
  assert.deepEqual(trainsEdit(base, true, true), { kind: 'setGroup', groupIndex: 0, key: 'frozen', value: null });
  assert.deepEqual(multiplierEdit(layerRow(tree, 'conv2d_2'), null), { kind: 'setLayer', layer: 'conv2d_2', key: 'lrMult', value: null });
  assert.equal(multiplierEdit(implicit, 2), undefined);
  assert.equal(trainsEdit(implicit, false, false), undefined);
  assert.equal(weightDecayEdit(implicit, 0.1), undefined);
  assert.notEqual(decayBlockedReason(implicit), undefined);
  // a layer of the implicit group can still be edited one by one
  assert.deepEqual(trainsEdit(layerRow(tree, 'input_1'), false, false), { kind: 'setLayer', layer: 'input_1', key: 'frozen', value: true });
  // a layer that agrees with its group again loses its override
  assert.deepEqual(trainsEdit(layerRow(tree, 'conv2d_1'), true, false), { kind: 'setLayer', layer: 'conv2d_1', key: 'frozen', value: null });
});

test('weight decay: rows show their own setting, edits address the same plan entries as the multiplier', () => {
  const plan = smallPlan();
  plan.groups![2]!.weightDecay = 0.05;
  plan.layers = { ...plan.layers, dense_1: { ...plan.layers!['dense_1'], weightDecay: 0 } };
  const tree = treeOf(plan);
  const head = groupRow(tree, 'head');
  assert.equal(head.ownWeightDecay, 0.05);
  assert.equal(ownWeightDecayField(head), 'groups[2] "head".weightDecay');
  // the group's decay spares the bias (noDecay); the layer shows what each weight gets
  assert.equal(layerRow(tree, 'head_dense').weightDecay, '0.05 / 0');
  assert.equal(layerRow(tree, 'head_dense').ownWeightDecay, undefined);
  const dense = layerRow(tree, 'dense_1');
  assert.equal(dense.ownWeightDecay, 0);
  assert.equal(dense.weightDecay, '0');
  assert.equal(ownWeightDecayField(dense), 'layers["dense_1"].weightDecay');
  assert.equal(groupRow(tree, 'base').ownWeightDecay, undefined);
  assert.equal(ownWeightDecayField(groupRow(tree, 'base')), undefined);

  assert.deepEqual(weightDecayEdit(head, 0.1), { kind: 'setGroup', groupIndex: 2, key: 'weightDecay', value: 0.1 });
  assert.deepEqual(weightDecayEdit(head, null), { kind: 'setGroup', groupIndex: 2, key: 'weightDecay', value: null });
  assert.deepEqual(weightDecayEdit(dense, 0.02), { kind: 'setLayer', layer: 'dense_1', key: 'weightDecay', value: 0.02 });
  assert.equal(decayBlockedReason(dense), undefined);
  assert.equal(decayBlockedReason(head), undefined);

  // a weightless layer (shown when its group holds weights) has nothing to decay
  plan.groups![2]!.layers = ['head_*', 'dropout_1'];
  const dropout = layerRow(treeOf(plan), 'dropout_1');
  assert.equal(dropout.hasOptimizedWeights, false);
  assert.equal(dropout.weightDecay, '—');
  assert.match(decayBlockedReason(dropout) ?? '', /nothing to decay/);
});

test('a weight-decay edit goes through the host path: guarded, written with comments kept, shown as the row’s own value', () => {
  const text = `{
  // the model to fine-tune
  "model": "model/model.json",
  "training": { "lr": 0.001 },
  "groups": [
    { "name": "base", "layers": ["conv2d_*", "batch_normalization_*"], "lrMult": 0.1 }, // slow
    { "name": "extra", "layers": ["dense_1"] },
    { "name": "head", "layers": ["head_*"] }
  ]
}
`;
  const plan = JSON.parse(text.replace(/\/\/.*$/gm, '')) as Plan;
  const before = treeOf(plan);
  const edits = [weightDecayEdit(groupRow(before, 'base'), 0.001), weightDecayEdit(layerRow(before, 'head_dense'), 0.2)];
  let out = text;
  for (const edit of edits) {
    const message = { type: 'edit', edit };
    assert.ok(isWebviewToHost(message), JSON.stringify(message));
    out = textAfterRequest(out, message.edit, { file: 'layerwise.json' });
  }
  assert.match(out, /\/\/ the model to fine-tune/);
  assert.match(out, /\/\/ slow/);
  const after = JSON.parse(out.replace(/\/\/.*$/gm, '')) as Plan;
  assert.equal(after.groups![0]!.weightDecay, 0.001);
  assert.deepEqual(after.layers, { head_dense: { weightDecay: 0.2 } });
  const tree = treeOf(after);
  assert.equal(groupRow(tree, 'base').ownWeightDecay, 0.001);
  // conv kernels take the group's 0.001; biases and BatchNorm weights keep 0 (noDecay)
  assert.equal(layerRow(tree, 'conv2d_2').weightDecay, '0.001 / 0');
  // the layer's own value wins over noDecay: the bias is decayed too
  assert.equal(layerRow(tree, 'head_dense').weightDecay, '0.2');
  // what the guard refuses never reaches the file
  for (const value of [-0.1, Number.NaN, Number.POSITIVE_INFINITY, '0.1']) {
    assert.equal(isWebviewToHost({ type: 'edit', edit: { kind: 'setLayer', layer: 'head_dense', key: 'weightDecay', value } }), false, String(value));
  }
});

test('move: a layer row offers the plan groups it is not in', () => {
  const tree = treeOf(smallPlan());
  const dense = layerRow(tree, 'dense_1');
  assert.deepEqual(moveEdit(dense, 2), { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 2 });
  assert.equal(moveEdit(dense, 1), undefined);
  assert.equal(moveBlockedReason(dense, tree.planGroups), undefined);
  assert.match(moveBlockedReason(dense, [{ planIndex: 1, name: 'extra' }]) ?? '', /no other group/);
  assert.match(moveBlockedReason(dense, []) ?? '', /no groups/);
});

test('group colours follow the shown groups: a hidden implicit group takes none', () => {
  const tree = treeOf(smallPlan());
  assert.deepEqual(
    tree.groups.map((g) => [g.name, g.color]),
    [
      ['base', 'c0'],
      ['extra', 'c1'],
      ['head', 'c2'],
    ],
  );
  assert.equal(layerRow(tree, 'conv2d_2').color, 'c0');
  assert.equal(layerRow(tree, 'head_dense').color, 'c2');
  const plan = smallPlan();
  plan.groups = plan.groups!.filter((g) => g.name !== 'extra');
  assert.deepEqual(
    [...groupColors(resolveGroups(smallModel(), plan))],
    [
      ['default', 'c0'],
      ['base', 'c1'],
      ['head', 'c2'],
    ],
  );
});

test('group colours: eight classes, then the same eight marked alt', () => {
  assert.deepEqual(
    Array.from({ length: 17 }, (_, i) => colorClass(i)),
    ['c0', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c0 alt', 'c1 alt', 'c2 alt', 'c3 alt', 'c4 alt', 'c5 alt', 'c6 alt', 'c7 alt', 'c0'],
  );
  assert.equal(colorClass(-1), 'c0');
});

test('warnings land on the row they are about, the rest on the plan', () => {
  const plan = smallPlan();
  plan.layers = { ...plan.layers, conv2d_9: { lrMult: 2 } };
  plan.groups![0]!.lrMult = 0;
  const tree = buildTreeModel(resolveGroups(smallModel(), plan), plan);
  // an override naming no layer of the model has no row: it is shown with the plan's warnings
  assert.ok(tree.warnings.some((w) => w.includes('conv2d_9')), tree.warnings.join('\n'));
  // lrMult 0 is not frozen: the layer's row says so (conv2d_1 is frozen, so it is spared)
  assert.equal(layerRow(tree, 'conv2d_1').warnings.length, 0);
  const conv2 = layerRow(tree, 'conv2d_2');
  assert.equal(conv2.warnings.length, 1);
  assert.match(conv2.warnings[0]!, /lrMult 0 is not frozen/);
});

test('numbers: short forms for cells, strict parsing of what the user typed', () => {
  assert.equal(formatNumber(1e-4), '1e-4');
  assert.equal(formatNumber(2.5e-5), '2.5e-5');
  assert.equal(formatNumber(0.001), '0.001');
  assert.equal(formatNumber(0.3), '0.3');
  assert.equal(formatNumber(1 / 3), '0.333');
  assert.equal(formatNumber(12345), '1.23e4');
  assert.equal(formatNumber(0), '0');
  assert.equal(formatParams(4864), '4.9k');
  assert.equal(formatParams(51264), '51.3k');
  assert.equal(formatParams(110_000_000), '110M');
  assert.equal(formatParams(650), '650');
  assert.equal(parseNumber(' 3e-4 '), 3e-4);
  assert.equal(parseNumber('.5'), 0.5);
  assert.equal(parseNumber('1,5'), undefined);
  assert.equal(parseNumber('0x10'), undefined);
  assert.equal(parseNumber('Infinity'), undefined);
  assert.equal(parseNumber(''), undefined);
  assert.equal(stepMultiplier(0.1, -1), 0.05);
  assert.equal(stepMultiplier(1 / 3, 1), 0.6667);
  assert.equal(stepMultiplier(0, 1), 2);
  assert.equal(warmupCheck(0.1), undefined);
  assert.equal(warmupCheck(100), undefined);
  assert.notEqual(warmupCheck(1.5), undefined);
  assert.notEqual(warmupCheck(-0.1), undefined);
});

test('run buttons follow the status and workspace trust', () => {
  const running: TrainingStatus = { state: 'running', job: 'train', planFile: 'p', stage: 2, stages: 3, epoch: 3, epochs: 5, fraction: 0.41, loss: 0.312 };
  assert.deepEqual(runControls({ state: 'idle' }, true, undefined), { train: true, findLr: true, stop: false, reason: undefined });
  const busy = runControls(running, true, undefined);
  assert.equal(busy.train, false);
  assert.equal(busy.stop, true);
  const untrusted = runControls({ state: 'idle' }, false, undefined);
  assert.equal(untrusted.train, false);
  assert.match(untrusted.reason ?? '', /Restricted Mode/);
  assert.equal(runControls({ state: 'idle' }, true, 'Fix the plan').train, false);
  assert.equal(statusText(running), 'Training · stage 2/3 · epoch 3/5 · 41% · loss 0.312');
  assert.equal(statusText({ state: 'failed', job: 'findLr', planFile: 'p', message: 'worker crashed' }), 'LR range test failed: worker crashed');
});

test('scales: log axes space decades evenly, ticks are round', () => {
  const y = logScale([1e-6, 1e-2], [200, 0]);
  assert.equal(y(1e-6), 200);
  assert.equal(y(1e-2), 0);
  assert.ok(Math.abs(y(1e-4) - 100) < 1e-9);
  assert.deepEqual(logTicks(1e-6, 1e-2), [1e-6, 1e-5, 1e-4, 1e-3, 1e-2]);
  assert.deepEqual(linearTicks(0, 1, 5), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(linearTicks(1.2, 2.3, 5), [1.2, 1.4, 1.6, 1.8, 2, 2.2]);
  const x = linearScale([5, 5], [0, 100]);
  assert.ok(Number.isFinite(x(5)));
  assert.deepEqual(extent([3, -1, NaN, 0, 2], true), [2, 3]);
  assert.deepEqual(extent([3, -1, NaN, 0, 2], false), [-1, 3]);
  assert.equal(extent([0, -1], true), undefined);
});

test('run data: steps, stages and epochs fold into curves; a resent epoch replaces the old one', () => {
  const run = new RunData('train');
  run.add({ kind: 'stage', stage: 1, stages: 2, epochs: 1, trainGroups: ['head'], lr: 1e-3 });
  run.add(stepEvent(1, 2.0, { groupLrs: groupLrs(1e-3, ['head']) }));
  run.add(stepEvent(2, 1.8, { groupLrs: groupLrs(1e-3, ['head']) }));
  run.add({ kind: 'stage', stage: 2, stages: 2, epochs: 2, trainGroups: ['base', 'head'], lr: 1e-3 });
  run.add(stepEvent(3, 1.7, { stage: 2 }));
  run.add(epochEvent(1, 1.9, 2.0, 0.3));
  run.add(epochEvent(1, 1.85, 1.95, 0.31));
  assert.deepEqual(run.stepLoss, [
    [1, 2.0],
    [2, 1.8],
    [3, 1.7],
  ]);
  assert.deepEqual(
    run.stageStarts.map((s) => [s.stage, s.step]),
    [
      [1, 1],
      [2, 3],
    ],
  );
  assert.deepEqual(run.groupLrs.get('base'), [
    [1, 0],
    [2, 0],
    [3, 1e-4],
  ]);
  assert.equal(run.epochs.length, 1);
  assert.equal(run.epochs[0]!.trainLoss, 1.85);
  assert.equal(run.progress?.step, 3);
});
