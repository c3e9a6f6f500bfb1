import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, lstatSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyEdits, findNodeAtLocation, parse, parseTree, type ParseError } from 'jsonc-parser';
import {
  detectLayout,
  moveLayerToGroup,
  planEdits,
  setGroupField,
  setLayerOverride,
  setPlanValue,
  setTrainingField,
  writeResults,
  mergeResults,
} from '../../src/core/plan-edit.ts';
import { writeFileAtomic } from '../../src/core/atomic-write.ts';
import { LayerwiseError } from '../../src/core/errors.ts';
import type { PlanResults } from '../../src/core/plan.ts';

const RESULTS: PlanResults = {
  lastRun: {
    folder: 'runs/2025-06-01T10-00-00',
    date: '2025-06-01T10:00:00.000Z',
    backend: 'wasm',
    epochs: 3,
    stopped: 'completed',
    best: { epoch: 2, valLoss: 0.41, valAccuracy: 0.87 },
  },
  lrFinder: { date: '2025-06-01T09:00:00.000Z', suggestedLr: 0.0003, method: 'valley', mode: 'global', curve: 'runs/lr-find/curve.csv' },
};

function parseStrictJsonc(text: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = parse(text, errors, { allowTrailingComma: true, disallowComments: false });
  assert.deepEqual(errors, [], `does not parse:\n${text}`);
  return value;
}

/**
 * `after` must be `before` with only these insertions: the results member, and at most one comma
 * (separating the former last member from it). Checked by peeling common prefix and suffix.
 */
function assertOnlyResultsAdded(before: string, after: string): string {
  let prefix = 0;
  while (prefix < before.length && before[prefix] === after[prefix]) prefix++;
  let rest = after;
  if (after[prefix] === ',' && !after.slice(prefix).trimStart().startsWith('"results"')) {
    rest = after.slice(0, prefix) + after.slice(prefix + 1);
  }
  let p = 0;
  while (p < before.length && before[p] === rest[p]) p++;
  let s = 0;
  while (s < before.length - p && before[before.length - 1 - s] === rest[rest.length - 1 - s]) s++;
  assert.equal(p + s, before.length, 'text outside results changed');
  const inserted = rest.slice(p, rest.length - s);
  assert.match(inserted.trimStart(), /^"results": \{/);
  return inserted;
}

const FILES: Record<string, string> = {
  'comments and trailing commas': `// Fine-tuning plan for the fashion example.
{
  "$schema": "../../src/core/plan.schema.json",
  "model": "model/model.json", /* converted from Keras */
  "training": {
    "lr": 1e-3, // the base LR
    "epochs": 3,
  },
  "groups": [
    { "name": "base", "layers": ["conv2d_*"], "lrMult": 0.1 },
    { "name": "head", "layers": ["dense_*"] }, // new layers
  ],
  // where runs go
  "output": "runs",
}
`,
  'CRLF, four spaces, comment after the last member': [
    '{',
    '    "model": "model/model.json",',
    '    "training": { "lr": 0.001 },',
    '    "output": "runs" // keep here',
    '}',
    '',
  ].join('\r\n'),
  tabs: '{\n\t"model": "model/model.json",\n\t"layers": {\n\t\t"dense_1": { "frozen": true }\n\t}\n}\n',
  'no final newline': '{\n  "model": "model/model.json",\n  "task": "classification"\n}',
  'comment lines before the closing brace': '{\n  "model": "m.json"\n  // "results": {} was here\n  /* end */\n}\n',
};

for (const [name, before] of Object.entries(FILES)) {
  test(`writeResults adds results without touching anything else: ${name}`, () => {
    const after = writeResults(before, RESULTS);
    const inserted = assertOnlyResultsAdded(before, after);
    const value = parseStrictJsonc(after) as Record<string, unknown>;
    assert.deepEqual(value.results, RESULTS);
    assert.deepEqual({ ...value, results: undefined }, { ...(parseStrictJsonc(before) as object), results: undefined });
    const layout = detectLayout(before);
    if (layout.eol === '\r\n') assert.ok(!/[^\r]\n/.test(after), 'a bare \\n in a CRLF file');
    else assert.ok(!after.includes('\r'), 'a \\r in an LF file');
    // inserted lines are indented with the file's own unit
    for (const line of inserted.split(/\r?\n/).filter((l) => l.trim() !== '')) assert.ok(line.startsWith(layout.indent), JSON.stringify(line));
    assert.equal(after.endsWith('\n'), before.endsWith('\n'));

    // A second write replaces only the value of results.
    const again = writeResults(after, { lastRun: RESULTS.lastRun });
    const nodeBefore = findNodeAtLocation(parseTree(after)!, ['results'])!;
    const nodeAfter = findNodeAtLocation(parseTree(again)!, ['results'])!;
    assert.equal(again.slice(0, nodeAfter.offset), after.slice(0, nodeBefore.offset));
    assert.equal(again.slice(nodeAfter.offset + nodeAfter.length), after.slice(nodeBefore.offset + nodeBefore.length));
    assert.deepEqual((parseStrictJsonc(again) as Record<string, unknown>).results, { lastRun: RESULTS.lastRun });
  });

  test(`mergeResults (what runs write) adds results without touching anything else: ${name}`, () => {
    const after = mergeResults(before, RESULTS);
    assertOnlyResultsAdded(before, after);
    assert.deepEqual((parseStrictJsonc(after) as Record<string, unknown>).results, RESULTS);
    assert.equal(after.endsWith('\n'), before.endsWith('\n'));
    // a later run replaces its own member and keeps the others; nothing outside results moves
    const lastRun = { ...RESULTS.lastRun!, epochs: 99 };
    const again = mergeResults(after, { lastRun });
    const nodeBefore = findNodeAtLocation(parseTree(after)!, ['results'])!;
    const nodeAfter = findNodeAtLocation(parseTree(again)!, ['results'])!;
    assert.equal(again.slice(0, nodeAfter.offset), after.slice(0, nodeBefore.offset));
    assert.equal(again.slice(nodeAfter.offset + nodeAfter.length), after.slice(nodeBefore.offset + nodeBefore.length));
    assert.deepEqual((parseStrictJsonc(again) as Record<string, unknown>).results, { ...RESULTS, lastRun });
  });
}

test('results in the middle of a file are replaced in place', () => {
  const before = '{\n  "model": "m.json",\n  // last results:\n  "results": { "old": true }, // tool-written\n  "output": "runs"\n}\n';
  const edits = planEdits(before, ['results'], RESULTS);
  assert.equal(edits.length, 1);
  assert.equal(edits[0]?.offset, before.indexOf('{ "old"'));
  assert.equal(edits[0]?.length, '{ "old": true }'.length);
  const after = applyEdits(before, edits);
  assert.equal(after, writeResults(before, RESULTS));
  assert.ok(after.includes('}, // tool-written\n  "output": "runs"\n}\n'));
  assert.ok(after.startsWith('{\n  "model": "m.json",\n  // last results:\n  "results": {\n    "lastRun": {\n      "folder"'));
});

test('a new member goes on its own line, leaving comments with their members', () => {
  const before = '{\n  "model": "m.json",\n  "training": {\n    "lr": 0.001 // base\n  }\n}\n';
  const after = setTrainingField(before, 'epochs', 5);
  assert.equal(after, '{\n  "model": "m.json",\n  "training": {\n    "lr": 0.001, // base\n    "epochs": 5\n  }\n}\n');
  // and removal takes the member's line, comment included, without leaving a trailing comma
  const removed = setTrainingField(after, 'epochs', undefined);
  assert.equal(removed, before);
  const middle = '{\n  "a": 1, // one\n  "b": 2, // two\n  "c": 3 // three\n}';
  assert.equal(setPlanValue(middle, ['b'], undefined), '{\n  "a": 1, // one\n  "c": 3 // three\n}');
  assert.equal(setPlanValue(middle, ['c'], undefined), '{\n  "a": 1, // one\n  "b": 2 // two\n}');
});

test('missing parents are created, in the file layout', () => {
  const before = '{\n    "model": "m.json"\n}';
  assert.equal(setLayerOverride(before, 'conv2d_1', 'lrMult', 0.5), '{\n    "model": "m.json",\n    "layers": {\n        "conv2d_1": {\n            "lrMult": 0.5\n        }\n    }\n}');
  assert.equal(setPlanValue('{}', ['training', 'lr'], 0.01), '{\n  "training": {\n    "lr": 0.01\n  }\n}');
  assert.deepEqual(parseStrictJsonc(setPlanValue('', ['model'], 'm.json')), { model: 'm.json' });
});

test('one-line objects and lists stay on one line', () => {
  const before = '{\n  "layers": { "dense_1": { "lrMult": 0.5 } }\n}\n';
  const frozen = setLayerOverride(before, 'dense_1', 'frozen', true);
  assert.equal(frozen, '{\n  "layers": { "dense_1": { "lrMult": 0.5, "frozen": true } }\n}\n');
  assert.equal(setLayerOverride(frozen, 'dense_1', 'lrMult', undefined), '{\n  "layers": { "dense_1": { "frozen": true } }\n}\n');
  // the last setting gone, the entry goes too
  assert.equal(setLayerOverride(before, 'dense_1', 'lrMult', undefined), '{\n  "layers": {}\n}\n');
  assert.equal(setPlanValue('{ "a": [1, 2, 3] }', ['a', 1], undefined), '{ "a": [1, 3] }');
  assert.equal(setPlanValue('{ "a": [1, 2, 3] }', ['a', 2], undefined), '{ "a": [1, 2] }');
  assert.equal(setPlanValue('{ "a": [1, 2, 3] }', ['a', 0], undefined), '{ "a": [2, 3] }');
  assert.equal(setPlanValue('{ "a": [1, 2] }', ['a', 2], 3), '{ "a": [1, 2, 3] }');
  assert.equal(setPlanValue('{ "a": [1, 2] }', ['a', 0], 0, { insert: true }), '{ "a": [0, 1, 2] }');
});

test('group fields are set by index, and a missing group is an error', () => {
  const before = '{\n  "groups": [\n    { "name": "base", "layers": ["conv*"] },\n    { "name": "head", "layers": ["dense*"] }\n  ]\n}';
  assert.equal(setGroupField(before, 1, 'frozen', true), '{\n  "groups": [\n    { "name": "base", "layers": ["conv*"] },\n    { "name": "head", "layers": ["dense*"], "frozen": true }\n  ]\n}');
  assert.equal(setGroupField(before, 0, 'name', 'backbone'), before.replace('"base"', '"backbone"'));
  assert.throws(() => setGroupField(before, 2, 'lrMult', 1), (e: unknown) => e instanceof LayerwiseError && e.field === 'groups[2]' && e.problem === 'there is no group 2 (the plan has 2 groups)');
});

test('edits refuse a file with a syntax error', () => {
  assert.throws(() => writeResults('{\n  "model": "m.json"\n  "task": 1\n}', RESULTS, 'layerwise.json'), {
    message: 'layerwise.json: cannot edit results: the file has a syntax error at 3:3; fix it first',
  });
  assert.throws(() => setPlanValue('{ "training": 3 }', ['training', 'lr'], 1), { message: /training\.lr: cannot set training\.lr: training is a number/ });
});

test('detectLayout reads tabs, the smallest space indent and the line ending', () => {
  assert.deepEqual(detectLayout('{\n\t"a": {\n\t\t"b": 1\n\t}\n}'), { indent: '\t', eol: '\n' });
  assert.deepEqual(detectLayout('{\r\n    "a": {\r\n        "b": 1\r\n    }\r\n}'), { indent: '    ', eol: '\r\n' });
  assert.deepEqual(detectLayout('/**\n * doc\n */\n{\n   "a": 1\n}'), { indent: '   ', eol: '\n' });
  assert.deepEqual(detectLayout('{"a": 1}'), { indent: '  ', eol: '\n' });
});

// An independent reading of PLAN-SPEC's rule: a layer belongs to the first group (file order)
// with a matching pattern; globs `*` `?`, or `re:` matching the whole name.
function groupOf(planText: string, layer: string): string {
  const plan = parseStrictJsonc(planText) as { groups: Array<{ name: string; layers: string[] }> };
  for (const g of plan.groups) {
    for (const p of g.layers) {
      const source = p.startsWith('re:')
        ? p.slice(3)
        : p.replace(/[\\^$.+()[\]{}|/-]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
      if (new RegExp(`^(?:${source})$`).test(layer)) return g.name;
    }
  }
  return 'default';
}

const GROUPED = `{
  "groups": [
    { "name": "embeddings", "layers": ["embedding"] },
    { "name": "base", "layers": ["conv*", "dense_1", "block?.norm"] }, // backbone
    {
      "name": "head",
      "layers": [
        "dense_2",
        "weird*name"
      ]
    }
  ]
}
`;
const LAYERS = ['embedding', 'conv1', 'conv2', 'dense_1', 'dense_2', 'block1.norm', 'block2.norm', 'weird*name', 'weirdXname'];

test('moveLayerToGroup puts the layer in the target group and changes no other layer', () => {
  const moves: Array<[string, number | 'default', string]> = [
    ['dense_1', 2, 'head'],
    ['conv2', 2, 'head'],
    ['block2.norm', 0, 'embeddings'],
    ['dense_2', 1, 'base'],
    ['weird*name', 1, 'base'],
    ['conv1', 'default', 'default'],
    ['embedding', 1, 'base'],
  ];
  for (const [layer, to, expected] of moves) {
    const after = moveLayerToGroup(GROUPED, layer, to);
    assert.equal(groupOf(after, layer), expected, `${layer} → ${to}:\n${after}`);
    for (const other of LAYERS.filter((l) => l !== layer)) assert.equal(groupOf(after, other), groupOf(GROUPED, other), `${other} moved along with ${layer}`);
    // comments and the untouched groups' text survive
    assert.ok(after.includes('// backbone'));
  }
});

test('moveLayerToGroup writes the exact name first, removes it elsewhere, and narrows wider patterns', () => {
  const toHead = moveLayerToGroup(GROUPED, 'dense_1', 2);
  assert.ok(toHead.includes('{ "name": "base", "layers": ["conv*", "block?.norm"] }, // backbone'));
  assert.ok(toHead.includes('"layers": [\n        "dense_1",\n        "dense_2",\n        "weird*name"\n      ]'));
  const conv2 = moveLayerToGroup(GROUPED, 'conv2', 2);
  assert.ok(conv2.includes('["re:(?!conv2$)conv.*", "dense_1", "block?.norm"]'), conv2);
  // a name with glob characters is written as an anchored regex
  const weird = moveLayerToGroup(GROUPED, 'weird*name', 1);
  assert.ok(weird.includes('"layers": ["re:weird\\\\*name", "conv*", "dense_1", "block?.norm"]'), weird);
  // already the first pattern of its group: nothing to do
  const once = moveLayerToGroup(GROUPED, 'dense_2', 2);
  assert.equal(once, GROUPED);
  assert.throws(() => moveLayerToGroup(GROUPED, 'dense_2', 3), (e: unknown) => e instanceof LayerwiseError && e.field === 'groups[3]');
});

// ---------------------------------------------------------------------------------------------
// Atomic writes

test('writeFileAtomic replaces the content, keeps the mode and leaves no temporary file', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'layerwise-atomic-')));
  try {
    const file = join(dir, 'layerwise.json');
    writeFileSync(file, 'old');
    chmodSync(file, 0o640);
    writeFileAtomic(file, '{ "model": "é.json" }\n');
    assert.equal(readFileSync(file, 'utf8'), '{ "model": "é.json" }\n');
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(dir), ['layerwise.json']);

    // through a symlink the target is replaced and the link stays a link
    const link = join(dir, 'link.json');
    symlinkSync(file, link);
    writeFileAtomic(link, 'new');
    assert.ok(lstatSync(link).isSymbolicLink());
    assert.equal(readFileSync(file, 'utf8'), 'new');

    // a new file
    writeFileAtomic(join(dir, 'fresh.json'), 'x');
    assert.equal(readFileSync(join(dir, 'fresh.json'), 'utf8'), 'x');
    assert.deepEqual(readdirSync(dir).sort(), ['fresh.json', 'layerwise.json', 'link.json']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeFileAtomic leaves the original alone when it cannot write', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'layerwise-atomic-')));
  try {
    assert.throws(() => writeFileAtomic(join(dir, 'missing-folder', 'x.json'), 'x'), { code: 'ENOENT' });
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
