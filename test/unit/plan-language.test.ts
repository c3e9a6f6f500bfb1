import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeLensOffset, completionsAt, groupNamesIn, patternHover, spotAt } from '../../src/core/plan-language.ts';
import type { Plan } from '../../src/core/plan.ts';
import { conv, dense, layer, model } from './model-builders.ts';

const net = model([
  layer('input_1', 'InputLayer'),
  conv('block1_conv1', 3, 4, 4),
  conv('block1_conv2', 3, 4, 4),
  conv('block2_conv1', 3, 4, 4),
  conv('block2_conv2', 3, 4, 4),
  layer('flatten', 'Flatten'),
  dense('head', 16, 3),
]);

const text = `{
  "model": "model.json",
  "training": { "lr": 0.001 },
  "groups": [
    { "name": "base", "layers": ["block1_*", "bl"], "lrMult": 0.1 },
    { "name": "head", "layers": ["head"] }
  ],
  "layers": { "he": { "frozen": true } },
  "unfreeze": { "stages": [{ "train": ["h"], "epochs": 1 }] }
}`;
const plan: Plan = { model: 'model.json', training: { lr: 0.001 }, groups: [{ name: 'base', layers: ['block1_*', 'bl'], lrMult: 0.1 }, { name: 'head', layers: ['head'] }] };
const at = (needle: string, into = 1): number => text.indexOf(needle) + into;

test('spotAt tells a pattern, a stage group name and a layers key apart; elsewhere it stays out', () => {
  assert.deepEqual(spotAt(text, at('"bl"', 2)), { kind: 'pattern', groupIndex: 0, patternIndex: 1, value: 'bl', offset: text.indexOf('"bl"'), length: 4 });
  assert.equal(spotAt(text, at('["h"]', 2))?.kind, 'groupName');
  assert.equal(spotAt(text, at('"he"', 2))?.kind, 'layerKey');
  assert.equal(spotAt(text, at('"base"', 2)), undefined); // a group's name is not a pattern
  assert.equal(spotAt(text, at('"model"', 2)), undefined);
});

test('pattern completions: layer names and the families they share, each with how many layers it matches', () => {
  const spot = spotAt(text, at('"bl"', 2))!;
  const items = completionsAt(spot, [], net);
  const byValue = new Map(items.map((i) => [i.value, i]));
  assert.equal(byValue.get('block1_*')?.detail, '2 layers: block1_conv1, block1_conv2');
  assert.equal(byValue.get('block2_*')?.kind, 'pattern');
  assert.equal(byValue.get('block2_conv2')?.detail, '1 layer: Conv2D');
  assert.ok(byValue.has('head') && byValue.has('input_1'));
  // families sort before single layers
  const sorted = [...items].sort((a, b) => a.sortText.localeCompare(b.sortText));
  assert.equal(sorted[0]!.value, 'block1_*');
  // no model yet: nothing to offer
  assert.deepEqual(completionsAt(spot, [], undefined), []);
});

test('group-name and layer-key completions', () => {
  // read from the text, even half-typed
  assert.deepEqual(groupNamesIn(text), ['base', 'head']);
  assert.deepEqual(groupNamesIn('{ "groups": [{ "name": "a", "layers": [] }, { "name": "b", "layers": ['), ['a', 'b']);
  assert.deepEqual(completionsAt(spotAt(text, at('["h"]', 2))!, groupNamesIn(text), net).map((c) => c.value), ['base', 'head']);
  assert.equal(completionsAt(spotAt(text, at('"he"', 2))!, [], net).length, net.layers.length);
});

test('hover on a pattern lists the layers it matches with their group and effective LR', () => {
  const spot = spotAt(text, at('"block1_*"', 2));
  assert.equal(spot?.kind, 'pattern');
  if (spot?.kind !== 'pattern') return;
  const md = patternHover(spot, plan, net);
  assert.match(md, /`block1_\*` matches 2 layers/);
  assert.match(md, /\| `block1_conv1` \| base \| 0\.0001 \|/);
  const none = patternHover({ ...spot, value: 'nothing*' }, plan, net);
  assert.match(none, /matches no layer/);
});

test('the CodeLens sits on the "groups" key', () => {
  assert.equal(text.slice(codeLensOffset(text), codeLensOffset(text) + 8), '"groups"');
  assert.equal(codeLensOffset('{ "model": "m" }'), 0);
});
