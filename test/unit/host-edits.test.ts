import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'jsonc-parser';
import type { Plan } from '../../src/core/plan.ts';
import {
  applyChanges,
  freezeRequest,
  minimalChange,
  structuralChanges,
  textAfterRequest,
  textWithSuggestedLr,
} from '../../src/host/plan-requests.ts';
import { mergeResults } from '../../src/core/plan-edit.ts';
import { layer, model } from './model-builders.ts';

const PLAN = `// fine-tuning plan for the demo
{
  "model": "model/model.json", // the pre-trained CNN
  "training": {
    "lr": 0.003, // base LR
    "epochs": 4
  },
  "groups": [
    // bottom
    { "name": "block1", "layers": ["block1_*"] },
    { "name": "block2", "layers": ["block2_*"], "lrMult": 0.5 },
    /* top */
    { "name": "head", "layers": ["dense_*"] }
  ],
  "layers": {
    "dense_1": { "frozen": true } // keep the features
  }
}
`;

const net = model(
  [
    layer('block1_conv', 'Conv2D', [['kernel', [8]]]),
    layer('block2_conv', 'Conv2D', [['kernel', [16]]]),
    layer('dense_1', 'Dense', [['kernel', [32]]]),
    layer('dense_2', 'Dense', [['kernel', [6]]]),
  ],
  { source: 'model.json' },
);
const ctx = { file: '/ws/layerwise.json', model: net };
const value = (text: string): Plan => parse(text, [], { allowTrailingComma: true }) as Plan;
/** Every comment of the original must still be in the text. */
const comments = (text: string) => text.match(/\/\/[^\n]*|\/\*[\s\S]*?\*\//g) ?? [];
const keepsComments = (before: string, after: string) => {
  for (const c of comments(before)) assert.ok(after.includes(c), `lost comment ${c}`);
};

test('minimalChange: one replacement that turns old into new', () => {
  assert.equal(minimalChange('abc', 'abc'), undefined);
  // common prefix '"lr": 0.0' and suffix ','
  assert.deepEqual(minimalChange('"lr": 0.003,', '"lr": 0.01,'), { offset: 9, length: 2, content: '1' });
  assert.deepEqual(minimalChange('ab', 'abX'), { offset: 2, length: 0, content: 'X' });
  assert.deepEqual(minimalChange('aXb', 'ab'), { offset: 1, length: 1, content: '' });
  // a CRLF is never split between kept and replaced text
  const c = minimalChange('a\r\nb', 'a\nb');
  assert.ok(c);
  const apply = (s: string, ch: { offset: number; length: number; content: string }) => s.slice(0, ch.offset) + ch.content + s.slice(ch.offset + ch.length);
  assert.equal(apply('a\r\nb', c), 'a\nb');
  // a surrogate pair is never split either
  const s = minimalChange('x😀y', 'x😁y');
  assert.ok(s && s.offset === 1 && s.content === '😁');
  for (const [a, b] of [['', 'x'], ['x', ''], ['same same', 'same sane'], ['{\n  "a": 1\n}', '{\n  "a": 1,\n  "b": 2\n}']] as const) {
    const ch = minimalChange(a, b);
    assert.ok(ch);
    assert.equal(apply(a, ch), b);
  }
});

test('structuralChanges descends into objects and same-length lists only', () => {
  const before = { model: 'm', groups: [{ name: 'a', lrMult: 1 }, { name: 'b' }], training: { lr: 1, epochs: 2 } };
  const after = { model: 'm', groups: [{ name: 'a' }, { name: 'b', lrMult: 0.5 }], training: { lr: 1 }, discriminative: { type: 'ulmfit' } };
  assert.deepEqual(structuralChanges(before, after), [
    { path: ['groups', 0, 'lrMult'], value: undefined },
    { path: ['groups', 1, 'lrMult'], value: 0.5 },
    { path: ['training', 'epochs'], value: undefined },
    { path: ['discriminative'], value: { type: 'ulmfit' } },
  ]);
  assert.deepEqual(structuralChanges({ g: [1, 2] }, { g: [1, 2, 3] }), [{ path: ['g'], value: [1, 2, 3] }]);
  assert.deepEqual(structuralChanges({ a: 1 }, { a: 1 }), []);
});

test('setting a layer multiplier adds the member and keeps every comment', () => {
  const out = textAfterRequest(PLAN, { kind: 'setLayer', layer: 'dense_1', key: 'lrMult', value: 0.25 }, ctx);
  assert.deepEqual(value(out).layers, { dense_1: { frozen: true, lrMult: 0.25 } });
  keepsComments(PLAN, out);
  // everything outside layers is byte-identical
  assert.equal(out.slice(0, PLAN.indexOf('"layers"')), PLAN.slice(0, PLAN.indexOf('"layers"')));
});

test('null removes a layer setting, and the entry once it is empty', () => {
  const out = textAfterRequest(PLAN, { kind: 'setLayer', layer: 'dense_1', key: 'frozen', value: null }, ctx);
  assert.equal(value(out).layers?.['dense_1'], undefined);
  assert.equal(value(out).training?.lr, 0.003);
});

test('group settings edit groups[i] in place', () => {
  const frozen = textAfterRequest(PLAN, { kind: 'setGroup', groupIndex: 0, key: 'frozen', value: true }, ctx);
  assert.deepEqual(value(frozen).groups?.[0], { name: 'block1', layers: ['block1_*'], frozen: true });
  keepsComments(PLAN, frozen);
  const reset = textAfterRequest(PLAN, { kind: 'setGroup', groupIndex: 1, key: 'lrMult', value: null }, ctx);
  assert.deepEqual(value(reset).groups?.[1], { name: 'block2', layers: ['block2_*'] });
  assert.throws(() => textAfterRequest(PLAN, { kind: 'setGroup', groupIndex: 7, key: 'lrMult', value: 1 }, ctx), /no group 7/);
});

test('training fields are checked before they reach the file', () => {
  const lr = textAfterRequest(PLAN, { kind: 'setTraining', key: 'lr', value: 0.01 }, ctx);
  assert.equal(value(lr).training?.lr, 0.01);
  assert.ok(lr.includes('"lr": 0.01, // base LR'), 'the comment after the value stays');
  const opt = textAfterRequest(PLAN, { kind: 'setTraining', key: 'optimizer', value: 'sgd' }, ctx);
  assert.equal(value(opt).training?.optimizer, 'sgd');
  for (const [key, bad] of [['lr', 0], ['lr', 'fast'], ['epochs', 1.5], ['batchSize', 0], ['optimizer', 'lion'], ['weightDecay', -1], ['schedule', { type: 'exp' }]] as const) {
    assert.throws(() => textAfterRequest(PLAN, { kind: 'setTraining', key, value: bad }, ctx), /must be/, `${key} = ${JSON.stringify(bad)}`);
  }
  const removed = textAfterRequest(PLAN, { kind: 'setTraining', key: 'epochs', value: null }, ctx);
  assert.equal(value(removed).training?.epochs, undefined);
});

test('a schedule change edits member by member', () => {
  const withSchedule = textAfterRequest(PLAN, { kind: 'setTraining', key: 'schedule', value: { type: 'cosine', warmup: 0.1 } }, ctx);
  assert.deepEqual(value(withSchedule).training?.schedule, { type: 'cosine', warmup: 0.1 });
  const commented = withSchedule.replace('"warmup": 0.1', '"warmup": 0.1 // a tenth');
  const changed = textAfterRequest(commented, { kind: 'setTraining', key: 'schedule', value: { type: 'stlr', warmup: 0.1 } }, ctx);
  assert.deepEqual(value(changed).training?.schedule, { type: 'stlr', warmup: 0.1 });
  assert.ok(changed.includes('// a tenth'));
});

test('moving a layer makes the target group claim it first', () => {
  const out = textAfterRequest(PLAN, { kind: 'moveLayer', layer: 'dense_1', toGroupIndex: 1 }, ctx);
  const groups = value(out).groups!;
  assert.equal(groups[1]!.layers[0], 'dense_1');
  keepsComments(PLAN, out);
});

test('a preset applies through member-level edits: comments on untouched members survive', () => {
  const out = textAfterRequest(PLAN, { kind: 'applyPreset', preset: 'ulmfit' }, ctx);
  const p = value(out);
  assert.deepEqual(p.discriminative, { type: 'ulmfit', factor: 2.6 });
  // the preset fills multipliers: the explicit one is removed
  assert.equal(p.groups?.[1]?.lrMult, undefined);
  assert.deepEqual(p.groups?.map((g) => g.name), ['block1', 'block2', 'head']);
  keepsComments(PLAN, out);
  assert.throws(() => textAfterRequest(PLAN, { kind: 'applyPreset', preset: 'ulmfit' }, { file: ctx.file }), /model is not loaded/);
  assert.throws(() => textAfterRequest(PLAN, { kind: 'applyPreset', preset: 'nope' }, ctx), /nope/);
});

test('results are merged member by member: a run keeps the last LR test and the other way round', () => {
  const lastRun = { folder: 'runs/a', date: '2025-01-01T00:00:00Z', backend: 'wasm', epochs: 4, stopped: 'completed' as const };
  const once = mergeResults(PLAN, { lastRun });
  assert.deepEqual(value(once).results, { lastRun });
  // everything before the new member is unchanged (the comma after the last member aside)
  const head = PLAN.slice(0, PLAN.lastIndexOf('}', PLAN.lastIndexOf('}') - 1));
  assert.equal(once.slice(0, head.length), head);
  keepsComments(PLAN, once);
  const lrFinder = { date: 'd', suggestedLr: 0.002, method: 'valley' as const, mode: 'global' as const, curve: 'runs/lr/lr-curve.json' };
  const twice = mergeResults(once, { lrFinder });
  assert.deepEqual(value(twice).results, { lastRun, lrFinder });
  const again = mergeResults(twice, { lastRun: { ...lastRun, epochs: 5 } });
  assert.deepEqual(value(again).results, { lastRun: { ...lastRun, epochs: 5 }, lrFinder });
});

test("accepting an LR suggestion sets the field the outcome names", () => {
  const out = textWithSuggestedLr(PLAN, { apply: { field: 'training.lr', path: ['training', 'lr'], value: 0.0021 } });
  assert.equal(value(out).training?.lr, 0.0021);
  const group = textWithSuggestedLr(PLAN, { apply: { field: 'groups[2].lrMult', path: ['groups', 2, 'lrMult'], value: 0.7 } });
  assert.equal(value(group).groups?.[2]?.lrMult, 0.7);
  keepsComments(PLAN, group);
});

test('checkbox toggles become the right edit requests', () => {
  const plan = value(PLAN);
  const key = 'file:///ws/layerwise.json';
  // dense_1 is frozen by its own override in a training group: checking it removes the override
  assert.deepEqual(freezeRequest(plan, net, { kind: 'layer', planKey: key, layer: 'dense_1', group: 'head' }, true), {
    kind: 'setLayer', layer: 'dense_1', key: 'frozen', value: null,
  });
  assert.deepEqual(freezeRequest(plan, net, { kind: 'layer', planKey: key, layer: 'dense_2', group: 'head' }, false), {
    kind: 'setLayer', layer: 'dense_2', key: 'frozen', value: true,
  });
  assert.deepEqual(freezeRequest(plan, net, { kind: 'group', planKey: key, group: 'block2', planIndex: 1 }, false), {
    kind: 'setGroup', groupIndex: 1, key: 'frozen', value: true,
  });
  assert.equal(freezeRequest(plan, net, { kind: 'group', planKey: key, group: 'default' }, false), undefined);
  // and the request, applied, gives the state the checkbox shows
  const req = freezeRequest(plan, net, { kind: 'group', planKey: key, group: 'block2', planIndex: 1 }, false)!;
  assert.equal(value(textAfterRequest(PLAN, req, ctx)).groups?.[1]?.frozen, true);
});

test('applyChanges applies in order on the text the previous change left', () => {
  const out = applyChanges(PLAN, [
    { path: ['training', 'lr'], value: 0.1 },
    { path: ['training', 'epochs'], value: undefined },
    { path: ['output'], value: 'out' },
  ]);
  assert.deepEqual(value(out).training, { lr: 0.1 });
  assert.equal(value(out).output, 'out');
  keepsComments(PLAN.replace('"epochs": 4\n', ''), out);
});
