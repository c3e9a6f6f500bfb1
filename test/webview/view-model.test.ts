/** The panel's pure half, in plain Node: tree rows, edits, numbers, scales, run folding. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroups } from '../../src/core/groups.ts';
import type { TrainingStatus } from '../../src/protocol/webview.ts';
import { extent, linearScale, linearTicks, logScale, logTicks } from '../../webview/charts.ts';
import { RunData } from '../../webview/run-data.ts';
import {
  buildTreeModel,
  formatNumber,
  formatParams,
  frozenEdit,
  multiplierEdit,
  parseNumber,
  runControls,
  statusText,
  stepMultiplier,
  warmupCheck,
} from '../../webview/view-model.ts';
import { epochEvent, groupLrs, smallModel, smallPlan, stepEvent } from './fixtures.ts';

test('tree rows: groups bottom to top, layers in depth order, each with its deciding rule', () => {
  const plan = smallPlan();
  const tree = buildTreeModel(resolveGroups(smallModel(), plan), plan);
  assert.deepEqual(
    tree.groups.map((g) => [g.name, g.planIndex, g.layers.map((l) => l.name)]),
    [
      ['default', undefined, ['input_1', 'max_pooling2d_1', 'flatten_1', 'dropout_1']],
      ['base', 0, ['conv2d_1', 'batch_normalization_1', 'conv2d_2']],
      ['extra', 1, ['dense_1']],
      ['head', 2, ['head_dense']],
    ],
  );
  assert.equal(tree.layerCount, 9);
  const base = tree.groups[1]!;
  // 3·3·1·16 + 16 + 4·16 + 3·3·16·32 + 32
  assert.equal(base.paramCount, 160 + 64 + 4640);
  assert.ok(Math.abs(base.effectiveLr! - 1e-4) < 1e-15);
  const [conv1, bn, conv2] = base.layers;
  assert.equal(conv1!.frozen, true);
  assert.equal(conv1!.frozenRule.source, 'layers');
  assert.equal(conv2!.frozen, false);
  // BatchNorm: gamma and beta are "norm" weights (no decay); its statistics are not optimized
  assert.equal(bn!.weightDecay, '0');
  // dense_1's own multiplier wins over its group's 0.5
  const dense = tree.groups[2]!.layers[0]!;
  assert.equal(dense.lrMult, 0.3);
  assert.equal(dense.lrMultRule.source, 'layers');
  assert.equal(dense.weightDecay, '0.01 / 0');
  // layers without weights have no learning rate to show
  assert.equal(tree.groups[0]!.layers[0]!.effectiveLr, undefined);
});

test('edits: group rows address the plan group by index, layer rows by name, the implicit group not at all', () => {
  const plan = smallPlan();
  const tree = buildTreeModel(resolveGroups(smallModel(), plan), plan);
  const [implicit, base, extra] = tree.groups;
  assert.deepEqual(multiplierEdit(extra!, 0.2), { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: 0.2 });
  assert.deepEqual(frozenEdit(base!, true), { kind: 'setGroup', groupIndex: 0, key: 'frozen', value: true });
  assert.deepEqual(multiplierEdit(base!.layers[2]!, null), { kind: 'setLayer', layer: 'conv2d_2', key: 'lrMult', value: null });
  assert.equal(multiplierEdit(implicit!, 2), undefined);
  assert.equal(frozenEdit(implicit!, true), undefined);
  // a layer of the implicit group can still be edited one by one
  assert.deepEqual(frozenEdit(implicit!.layers[0]!, true), { kind: 'setLayer', layer: 'input_1', key: 'frozen', value: true });
});

test('warnings land on the row they are about, the rest on the plan', () => {
  const plan = smallPlan();
  plan.layers = { ...plan.layers, conv2d_9: { lrMult: 2 } };
  plan.groups![0]!.lrMult = 0;
  const tree = buildTreeModel(resolveGroups(smallModel(), plan), plan);
  // an override naming no layer of the model has no row: it is shown with the plan's warnings
  assert.ok(tree.warnings.some((w) => w.includes('conv2d_9')), tree.warnings.join('\n'));
  // lrMult 0 is not frozen: the layer's row says so (conv2d_1 is frozen, so it is spared)
  const [conv1, , conv2] = tree.groups[1]!.layers;
  assert.equal(conv1!.warnings.length, 0);
  assert.equal(conv2!.warnings.length, 1);
  assert.match(conv2!.warnings[0]!, /lrMult 0 is not frozen/);
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
