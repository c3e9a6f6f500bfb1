/** The pure parts of issue 11/12's panel work, in plain Node: the filter, the data summary, the protocol guards. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroups } from '../../src/core/groups.ts';
import { isPersistedPanelState, isWebviewToHost } from '../../src/protocol/webview.ts';
import { dataSummary, isImageFolder } from '../../webview/data-section.ts';
import { buildTreeModel, filterTree } from '../../webview/view-model.ts';
import { bigModel, bigPlan } from './fixtures.ts';

const tree = buildTreeModel(resolveGroups(bigModel(120, 4), bigPlan(4)), bigPlan(4));

test('the filter matches every word in a layer\'s name, type or group, case-insensitively', () => {
  const names = (q: string): string[] => filterTree(tree, q).groups.flatMap((g) => g.layers.map((l) => l.name));
  assert.deepEqual(names('norm_101'), ['block_3/norm_101']);
  // type and group together: LayerNormalization layers (odd) of block_1 (layers 30…59)
  const both = filterTree(tree, 'LAYERNORMALIZATION block_1/');
  assert.equal(both.matches, 15);
  assert.deepEqual(both.groups.map((g) => g.group.name), ['block_1']);
  // a group's name takes all its layers
  assert.equal(filterTree(tree, 'block_2').matches, 30);
  assert.equal(filterTree(tree, 'dense norm').matches, 0);
  assert.deepEqual(filterTree(tree, '   '), { groups: [], matches: 0 });
});

test('the data section is for image folders; its summary says what is on', () => {
  assert.equal(isImageFolder({ train: 'data/train' }), true);
  assert.equal(isImageFolder({ train: 'data/train.CSV' }), false);
  assert.equal(isImageFolder({ train: 'data/x', format: 'csv' }), false);
  assert.equal(isImageFolder(undefined), false);
  assert.equal(
    dataSummary({ train: 'd', normalize: 'imagenet', onBadImage: 'error', augment: { randomResizedCrop: true, verticalFlip: true, translate: 0.1, contrast: 0 } }),
    'Data: normalize imagenet · augment random crop, v-flip, translate ±0.1 · bad images: error',
  );
  assert.equal(dataSummary({ train: 'd', normalize: { mean: [0.5], std: [0.5] } }), 'Data: normalize custom mean/std · augment off · bad images: skip');
});

test('setData edits and the saved column widths pass the guards only when well-formed', () => {
  assert.equal(isWebviewToHost({ type: 'edit', edit: { kind: 'setData', field: 'augment.rotation', value: 10 } }), true);
  assert.equal(isWebviewToHost({ type: 'edit', edit: { kind: 'setData', field: 'augment.shear', value: 10 } }), false);
  assert.equal(isWebviewToHost({ type: 'edit', edit: { kind: 'setData', field: 'normalize' } }), false);
  const saved = { planUri: 'file:///p', expandedGroups: [], tab: 'rates' };
  assert.equal(isPersistedPanelState({ ...saved, columnWidths: { name: 300 }, treeCollapsed: true }), true);
  assert.equal(isPersistedPanelState({ ...saved, columnWidths: { name: -1 } }), false);
  assert.equal(isPersistedPanelState({ ...saved, treeCollapsed: 'yes' }), false);
});
