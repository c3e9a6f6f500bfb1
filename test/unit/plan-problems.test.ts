import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTree } from 'jsonc-parser';
import { fixedText, parseFieldPath, planDiagnostics, rangeOfPath, suggestPattern, type PlanDiagnostic } from '../../src/core/plan-problems.ts';
import { conv, dense, layer, model } from './model-builders.ts';

// input → block1_conv1 → block1_conv2 → block2_conv1 → block3_conv1 → flatten → head
const net = model([
  layer('input_1', 'InputLayer'),
  conv('block1_conv1', 3, 4, 4),
  conv('block1_conv2', 3, 4, 4),
  conv('block2_conv1', 3, 4, 4),
  conv('block3_conv1', 3, 4, 4),
  layer('flatten', 'Flatten'),
  dense('head', 16, 3),
]);
const names = net.layers.map((l) => l.name);
const FILE = '/w/layerwise.json';

/** The text under a diagnostic's range. */
const under = (text: string, d: PlanDiagnostic): string => text.slice(d.offset, d.offset + d.length);
const byCode = (list: PlanDiagnostic[], code: string): PlanDiagnostic => {
  const d = list.find((x) => x.code === code);
  assert.ok(d, `a ${code} diagnostic in ${JSON.stringify(list.map((x) => x.code))}`);
  return d;
};

const plan = `{
  // the base trains slowly
  "model": "model.json",
  "groups": [
    { "name": "base", "layers": ["block1_*", "blok2_*"], "lrMult": 0.1 },
    { "name": "mid", "layers": ["block1_conv2", "block3_*"], "lrMult": 0 },
    { "name": "empty", "layers": ["nothing_here"] },
    { "name": "head", "layers": ["head"] }
  ],
  "layers": { "haed": { "lrMult": 2 } },
  "training": { "epochs": 1 },
  "unfreeze": { "mode": "gradual" }
}
`;

test('audit findings land on the exact field, as warnings; a plan that cannot run is an error', () => {
  const list = planDiagnostics(plan, { file: FILE, model: net });
  const typo = byCode(list, 'patternMatchesNothing');
  assert.equal(under(plan, typo), '"blok2_*"');
  assert.deepEqual(typo.path, ['groups', 0, 'layers', 1]);
  assert.equal(typo.severity, 'warning');
  assert.match(typo.message, /^groups\[0\]\.layers\[1\]: pattern "blok2_\*"/);
  const shadowed = byCode(list, 'patternShadowed');
  assert.equal(under(plan, shadowed), '"block1_conv2"');
  const empty = byCode(list, 'emptyGroup');
  assert.equal(under(plan, empty), '"empty"'); // the group's name, not the whole object
  const override = byCode(list, 'unknownLayerOverride');
  assert.equal(under(plan, override), '"haed"'); // the key
  const zero = byCode(list, 'zeroLrNotFrozen');
  assert.equal(under(plan, zero), '0');
  assert.deepEqual(zero.path, ['groups', 1, 'lrMult']);
  // gradual unfreezing of 4 groups in 1 epoch fails at Train today: here it is an error at epochs
  const stages = byCode(list, 'stages');
  assert.equal(stages.severity, 'error');
  assert.equal(under(plan, stages), '1');
  assert.match(stages.message, /^training\.epochs: gradual unfreezing of \d groups/);
  // sorted by position
  assert.deepEqual(list.map((d) => d.offset), [...list.map((d) => d.offset)].sort((a, b) => a - b));
});

test('a default that is not written falls back to the nearest field that is', () => {
  const text = '{ "model": "m.json", "training": { "lr": 0.001 } }';
  const root = parseTree(text);
  const r = rangeOfPath(root, ['training', 'epochs']);
  // training.epochs is absent: the training object's key is underlined
  assert.equal(text.slice(r.offset, r.offset + r.length), '"training"');
  assert.deepEqual(rangeOfPath(root, ['nothing', 'here']), { offset: 0, length: 1 });
});

test('syntax errors are left to the JSON language service; schema problems stay, once', () => {
  const broken = '{ "model": "m.json" "groups": [ }';
  assert.deepEqual(planDiagnostics(broken, { file: FILE, model: net }), []);
  const wrong = '{ "model": "m.json", "training": { "lr": "fast" } }';
  const list = planDiagnostics(wrong, { file: FILE, model: net });
  assert.equal(list.length, 1);
  assert.equal(list[0]!.severity, 'error');
  assert.equal(under(wrong, list[0]!), '"fast"');
  assert.match(list[0]!.message, /^training\.lr: /);
});

test('a model that cannot be loaded is an error at "model", with a fix per model.json found', () => {
  const text = '{ "model": "modle.json", "groups": [] }';
  const list = planDiagnostics(text, { file: FILE, modelProblem: { field: 'model', problem: 'no such file' }, modelCandidates: ['model.json', 'models/b/model.json'] });
  const d = byCode(list, 'model');
  assert.equal(under(text, d), '"modle.json"');
  assert.equal(d.severity, 'error');
  assert.deepEqual(d.fixes.map((f) => f.title), ['Point "model" at model.json', 'Point "model" at models/b/model.json']);
  assert.equal(d.message, 'model: no such file');
  assert.equal(fixedText(text, d.fixes[0]!), '{ "model": "model.json", "groups": [] }');
  // a data problem is the data field's, and no model fix is offered
  const data = planDiagnostics('{ "model": "model.json", "data": { "train": "nowhere" } }', { file: FILE, modelProblem: { field: 'data.train', problem: 'not found' }, modelCandidates: ['x/model.json'] });
  assert.deepEqual(data.map((x) => [x.field, x.fixes.length]), [['data.train', 0]]);
});

test('Quick Fixes: did you mean, remove a shadowed pattern, freeze instead of lrMult 0, rename an override — comments kept', () => {
  const list = planDiagnostics(plan, { file: FILE, model: net });
  const apply = (code: string): string => {
    const fix = byCode(list, code).fixes[0];
    assert.ok(fix, `a fix for ${code}`);
    const after = fixedText(plan, fix);
    assert.ok(after.includes('// the base trains slowly'));
    return after;
  };
  assert.equal(byCode(list, 'patternMatchesNothing').fixes[0]!.title, 'Did you mean "block2_*"?');
  assert.match(apply('patternMatchesNothing'), /"layers": \["block1_\*", "block2_\*"\]/);
  assert.match(apply('patternShadowed'), /"name": "mid", "layers": \["block3_\*"\]/);
  const frozen = apply('zeroLrNotFrozen');
  assert.match(frozen, /"name": "mid", "layers": \["block1_conv2", "block3_\*"\], "frozen": true \}/);
  assert.doesNotMatch(frozen, /"lrMult": 0\s*[,}]/);
  assert.match(apply('unknownLayerOverride'), /"layers": \{ "head": \{ "lrMult": 2 \} \}/);
  // the fixed plan has no such finding left
  const fixedTypo = apply('patternMatchesNothing');
  assert.equal(planDiagnostics(fixedTypo, { file: FILE, model: net }).some((d) => d.code === 'patternMatchesNothing' && d.path[1] === 0), false);
});

test('a stage naming an unknown group offers to create it', () => {
  const text = '{ "model": "m.json", "groups": [{ "name": "head", "layers": ["head"] }], "unfreeze": { "stages": [{ "train": ["head", "neck"], "epochs": 1 }] } }';
  const d = planDiagnostics(text, { file: FILE, model: net }).find((x) => x.fixes.some((f) => f.kind === 'createGroup'));
  assert.ok(d);
  assert.equal(d.severity, 'error');
  assert.equal(under(text, d), '"neck"');
  const fix = d.fixes[0]!;
  assert.equal(fix.title, 'Create the group "neck"');
  const after = fixedText(text, fix);
  assert.match(after, /\{ "name": "neck", "layers": \[\] \}/);
  assert.equal(planDiagnostics(after, { file: FILE, model: net }).some((x) => x.severity === 'error'), false);
});

test('suggestPattern and parseFieldPath', () => {
  assert.equal(suggestPattern('blok3_*', names), 'block3_*');
  assert.equal(suggestPattern('haed', names), 'head');
  assert.equal(suggestPattern('zzzzzz_*', names), undefined);
  assert.deepEqual(parseFieldPath('groups[2].layers[1]'), ['groups', 2, 'layers', 1]);
  assert.deepEqual(parseFieldPath('layers["conv 1"].lrMult'), ['layers', 'conv 1', 'lrMult']);
  assert.deepEqual(parseFieldPath('(root)'), []);
  assert.equal(parseFieldPath('groups[x'), undefined);
});
