/**
 * The CLI end to end, as a user runs it (`bin/layerwise.js`, the built bundle — `npm test`
 * builds first): inspect, find-lr --apply, train, results written back into a plan with
 * comments, and bad input ending in one stderr line, a non-zero exit and no file changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync, statSync, symlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse } from 'jsonc-parser';
import { runCli } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');

const PLAN = `// a plan written by hand, with comments that must survive
{
  "model": "model/model.json",
  "head": { "cut": "dense_1", "outputs": "auto" }, // new classifier
  "data": { "train": "data/train.csv", "validation": "data/val.csv", "label": "species", "shuffle": false },
  "training": {
    "epochs": 3,
    "batchSize": 8,
    "lr": 0.003, /* base LR */
    "schedule": { "type": "stlr" }
  },
  "groups": [
    { "name": "body", "layers": ["dense", "batch_normalization"] },
    { "name": "head", "layers": ["head_*"] },
  ],
  "discriminative": { "type": "ulmfit" },
  "unfreeze": { "mode": "gradual" },
  "output": "runs"
}
`;

function workspace(plan = PLAN): string {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-cli-'));
  cpSync(join(repo, 'test', 'fixtures', 'models', 'mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test', 'fixtures', 'data', 'mlp'), join(ws, 'data'), { recursive: true });
  writeFileSync(join(ws, 'layerwise.json'), plan);
  return ws;
}

function hashTree(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      h.update(p.slice(dir.length));
      if (statSync(p).isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

test('layer names in the fixture are what the plan above expects', () => {
  const names = (JSON.parse(readFileSync(join(repo, 'test/fixtures/models/mlp/model.json'), 'utf8')) as {
    modelTopology: { model_config?: { config: { layers: Array<{ config: { name: string } }> } }; config?: { layers: Array<{ config: { name: string } }> } };
  }).modelTopology;
  const layers = (names.model_config?.config ?? names.config)?.layers.map((l) => l.config.name) ?? [];
  assert.ok(layers.includes('dense') && layers.includes('dense_1'), `layers: ${layers.join(', ')}`);
});

test('inspect prints the audit tree with the rule behind every setting; --json gives the same as data', () => {
  const ws = workspace();
  const text = runCli(['inspect', 'layerwise.json'], { cwd: ws });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /● body/);
  assert.match(text.stdout, /● head/);
  assert.match(text.stdout, /discriminative ulmfit/);
  assert.match(text.stdout, /stage 1: .*head/);
  const json = runCli(['inspect', 'layerwise.json', '--json'], { cwd: ws });
  assert.equal(json.code, 0, json.stderr);
  const data = JSON.parse(json.stdout) as { resolution: { groups: Array<{ name: string; lrMult: number }>; params: Array<{ name: string; group: string; lrMultRule: { source: string } }> } };
  const groups = data.resolution.groups.filter((g) => g.name !== 'default');
  assert.deepEqual(groups.map((g) => g.name), ['body', 'head']);
  assert.ok(Math.abs(groups[0]!.lrMult - 1 / 2.6) < 1e-12);
  assert.ok(data.resolution.params.every((p) => typeof p.lrMultRule.source === 'string'));
});

test('find-lr --apply sets training.lr, records lrFinder, writes the curve and plot, keeps comments', () => {
  const ws = workspace();
  const r = runCli(['find-lr', 'layerwise.json', '--apply', '--steps', '30', '--end', '1', '--out', 'runs/lr'], { cwd: ws });
  assert.equal(r.code, 0, r.stderr);
  const after = readFileSync(join(ws, 'layerwise.json'), 'utf8');
  const plan = parse(after) as { training: { lr: number }; results: { lrFinder: { suggestedLr: number; curve: string; plot: string } } };
  assert.equal(plan.training.lr, plan.results.lrFinder.suggestedLr);
  assert.ok(plan.training.lr > 1e-7 && plan.training.lr < 1);
  assert.ok(existsSync(join(ws, plan.results.lrFinder.curve)));
  assert.match(readFileSync(join(ws, plan.results.lrFinder.plot), 'utf8'), /^<svg/);
  assert.match(after, /\/\/ a plan written by hand/);
  assert.match(after, /\/\* base LR \*\//);
  // the weights on disk were not touched by the sweep
  assert.equal(hashTree(join(ws, 'model')), hashTree(join(repo, 'test/fixtures/models/mlp')));
});

test('find-lr option errors name the flag the user typed; the plan is untouched', () => {
  const ws = workspace();
  for (const [args, flag, problem] of [
    [['--start', '0'], '--start', /must be > 0 and below endLr \(got 0 → 10\)/],
    [['--steps', '3'], '--steps', /whole number ≥ 5 \(got 3\)/],
    [['--stage', '9'], '--stage', /the plan has \d+ stage\(s\); there is no stage 9/],
    [['--group', 'nope'], '--group', /needs the name of a group that trains in stage 1 \(groups: head\)/],
  ] as const) {
    const r = runCli(['find-lr', 'layerwise.json', '--backend', 'cpu', ...args], { cwd: ws });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.startsWith(`layerwise: ${flag}: `), lines[0]);
    assert.match(lines[0]!, problem);
    assert.equal(readFileSync(join(ws, 'layerwise.json'), 'utf8'), PLAN);
  }
});

test('train writes the model, the report, and results into the plan; everything else byte-identical', () => {
  const ws = workspace();
  const r = runCli(['train', 'layerwise.json', '--out', 'runs/first'], { cwd: ws });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stage 3\/3/);
  // gradual unfreezing trains every group by the last stage: no weight is frozen for the whole run
  assert.match(r.stdout, /frozen check: no weight stayed frozen for the whole run, none to compare/);
  assert.ok(existsSync(join(ws, 'runs/first/model.json')));
  const report = JSON.parse(readFileSync(join(ws, 'runs/first/report.json'), 'utf8')) as { epochs: unknown[]; backend: { name: string } };
  assert.equal(report.epochs.length, 3);
  const after = readFileSync(join(ws, 'layerwise.json'), 'utf8');
  const idx = after.indexOf('"results"');
  assert.ok(idx > 0);
  // everything before the inserted member is the original text, byte for byte
  const beforeEnd = PLAN.lastIndexOf('"output": "runs"') + '"output": "runs"'.length;
  assert.equal(after.slice(0, beforeEnd), PLAN.slice(0, beforeEnd));
  const plan = parse(after) as { results: { lastRun: { folder: string; epochs: number; backend: string } } };
  assert.equal(plan.results.lastRun.folder, 'runs/first');
  assert.equal(plan.results.lastRun.epochs, 3);
  assert.equal(plan.results.lastRun.backend, report.backend.name);
  // a second run replaces results, still nothing else changes
  const r2 = runCli(['train', 'layerwise.json', '--out', 'runs/second'], { cwd: ws });
  assert.equal(r2.code, 0, r2.stderr);
  const after2 = readFileSync(join(ws, 'layerwise.json'), 'utf8');
  assert.equal(after2.slice(0, beforeEnd), PLAN.slice(0, beforeEnd));
  assert.equal((parse(after2) as { results: { lastRun: { folder: string } } }).results.lastRun.folder, 'runs/second');
});

const BAD: Array<[string, (ws: string) => void, RegExp]> = [
  ['a typo in a field', (ws) => writeFileSync(join(ws, 'layerwise.json'), PLAN.replace('"lr": 0.003', '"lr_rate": 0.003')), /layerwise\.json: training.*lr_rate/],
  ['a model path escaping the workspace', (ws) => writeFileSync(join(ws, 'layerwise.json'), PLAN.replace('"model/model.json"', '"../model.json"')), /layerwise\.json: model: /],
  ['an unknown preset', (ws) => writeFileSync(join(ws, 'layerwise.json'), PLAN.replace('"type": "ulmfit"', '"type": "ulmfitt"')), /layerwise\.json: discriminative/],
  ['a truncated shard', (ws) => writeFileSync(join(ws, 'model/weights.bin'), readFileSync(join(ws, 'model/weights.bin')).subarray(0, 10)), /model\.json.*weightsManifest/],
  ['a non-numeric CSV cell', (ws) => writeFileSync(join(ws, 'data/train.csv'), readFileSync(join(ws, 'data/train.csv'), 'utf8').replace(/\n[-0-9.]+,/, '\nabc,')), /train\.csv.*abc/],
];

for (const [what, breakIt, message] of BAD) {
  test(`bad input (${what}): one line on stderr, exit 1, no file changed`, () => {
    const ws = workspace();
    breakIt(ws);
    const before = hashTree(ws);
    const r = runCli(['train', 'layerwise.json'], { cwd: ws });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(hashTree(ws), before);
  });
}

test('train on an image folder with an unreadable file: named while preparing, counted and named again in the summary', () => {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-cli-'));
  cpSync(join(repo, 'test', 'fixtures', 'models', 'cnn'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test', 'fixtures', 'data', 'shapes'), join(ws, 'data'), { recursive: true });
  const broken = join(ws, 'data', 'train', 'cross', 'img_2.png');
  writeFileSync(broken, 'not a picture');
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify({ model: 'model/model.json', data: { train: 'data/train', validation: 'data/val' }, training: { epochs: 1, batchSize: 8 } }));
  const r = runCli(['train', 'layerwise.json', '--out', 'runs/a'], { cwd: ws });
  assert.equal(r.code, 0, r.stderr);
  assert.ok((r.stdout + r.stderr).includes(`${broken}: not a PNG or JPEG file; left out`), r.stdout + r.stderr);
  assert.ok(r.stdout.includes(`data: 1 file(s) left out as unreadable: ${broken}\n`), r.stdout);
  cpSync(join(repo, 'test', 'fixtures', 'data', 'shapes', 'train', 'cross', 'img_2.png'), broken);
  const clean = runCli(['train', 'layerwise.json', '--out', 'runs/b'], { cwd: ws });
  assert.equal(clean.code, 0, clean.stderr);
  assert.doesNotMatch(clean.stdout, /left out/);
});

test('from the sources (a checkout without dist/), run from a folder outside it: the decoding threads start', () => {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-cli-'));
  cpSync(join(repo, 'test', 'fixtures', 'models', 'cnn'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test', 'fixtures', 'data', 'shapes'), join(ws, 'data'), { recursive: true });
  writeFileSync(join(ws, 'layerwise.json'), JSON.stringify({ model: 'model/model.json', data: { train: 'data/train', validation: 'data/val' }, training: { epochs: 1, batchSize: 8 } }));
  const r = runCli(['train', 'layerwise.json', '--out', 'runs/a', '--backend', 'cpu'], { cwd: ws, from: 'sources' });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(ws, 'runs', 'a', 'model.json')));
});

test('usage errors exit 2; init writes a plan and never overwrites one', () => {
  const ws = workspace();
  assert.equal(runCli(['train'], { cwd: ws }).code, 2);
  assert.equal(runCli(['frobnicate'], { cwd: ws }).code, 2);
  assert.equal(runCli(['train', 'layerwise.json', '--bogus'], { cwd: ws }).code, 2);
  const r = runCli(['init', 'model/model.json', '--recipe', 'lp-ft', '--out', 'new.layerwise.json'], { cwd: ws });
  assert.equal(r.code, 0, r.stderr);
  const plan = parse(readFileSync(join(ws, 'new.layerwise.json'), 'utf8')) as { model: string; groups: unknown[] };
  assert.equal(plan.model, 'model/model.json');
  assert.ok(plan.groups.length >= 2);
  assert.match(r.stdout, /2 stage\(s\): 4 epoch\(s\) head at 0\.003, then 4 epoch\(s\) all/);
  const gradual = runCli(['init', 'model/model.json', '--recipe', 'gradual', '--epochs', '7', '--out', 'gradual.layerwise.json'], { cwd: ws });
  assert.equal(gradual.code, 0, gradual.stderr);
  const stages = (parse(readFileSync(join(ws, 'gradual.layerwise.json'), 'utf8')) as { unfreeze: { stages: Array<{ epochs: number }> } }).unfreeze.stages;
  assert.equal(stages.reduce((n, s) => n + s.epochs, 0), 7);
  assert.equal(runCli(['init', 'model/model.json', '--recipe', 'fastest', '--out', 'x.layerwise.json'], { cwd: ws }).code, 2);
  const again = runCli(['init', 'model/model.json', '--out', 'layerwise.json'], { cwd: ws });
  assert.equal(again.code, 1);
  assert.equal(readFileSync(join(ws, 'layerwise.json'), 'utf8'), PLAN);
});

test('export --out never overwrites a file it did not write (data, weights), nor takes a folder; it replaces its own export', () => {
  const ws = workspace();
  const before = hashTree(ws);
  for (const [target, message] of [
    ['data/train.csv', /data\/train\.csv: --out: exists and is not a Layerwise export; a file you wrote is never overwritten/],
    ['model/weights.bin', /model\/weights\.bin: --out: exists and is not a Layerwise export/],
    ['data', /data: --out: is a folder; name the file to write/],
    ['nope/train.py', /nope\/train\.py: --out: the folder .*nope does not exist/],
  ] as const) {
    const r = runCli(['export', 'layerwise.json', '--to', 'pytorch', '--out', target, '--backend', 'cpu'], { cwd: ws });
    assert.equal(r.code, 1, `${target}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(hashTree(ws), before, target);
  }
  // init's --out: a missing folder is one clear line too
  const init = runCli(['init', 'model/model.json', '--out', 'nope/plan.json'], { cwd: ws });
  assert.equal(init.code, 1, init.stderr);
  assert.match(init.stderr, /nope\/plan\.json: --out: the folder .*nope does not exist/);
  // its own earlier export is replaced
  assert.equal(runCli(['export', 'layerwise.json', '--to', 'pytorch', '--out', 'train.py', '--backend', 'cpu'], { cwd: ws }).code, 0);
  const again = runCli(['export', 'layerwise.json', '--to', 'mmengine', '--out', 'train.py', '--backend', 'cpu'], { cwd: ws });
  assert.equal(again.code, 0, again.stderr);
  assert.match(readFileSync(join(ws, 'train.py'), 'utf8'), /MMEngine/);
});

test('train and find-lr refuse an --out or --resume folder outside the workspace (a symlink out included); nothing is written there', () => {
  const outer = mkdtempSync(join(tmpdir(), 'layerwise-cli-outer-'));
  const ws = join(outer, 'ws');
  cpSync(workspace(), ws, { recursive: true });
  mkdirSync(join(outer, 'target'));
  symlinkSync(join(outer, 'target'), join(ws, 'out-link'));
  const before = hashTree(outer);
  for (const args of [
    ['train', 'layerwise.json', '--out', '../elsewhere'],
    ['train', 'layerwise.json', '--out', 'out-link/run'],
    ['train', 'layerwise.json', '--resume', '..'],
    ['find-lr', 'layerwise.json', '--out', join(outer, 'lr')],
  ]) {
    const r = runCli([...args, '--backend', 'cpu'], { cwd: ws });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /^layerwise: --(out|resume): .* lies outside the workspace folder .*\/ws; choose a folder inside it, or give --workspace DIR above both\n$/);
    assert.equal(hashTree(outer), before, args.join(' '));
  }
  // --workspace above both makes it a choice the user wrote down
  const r = runCli(['train', 'layerwise.json', '--out', '../elsewhere', '--workspace', '..', '--backend', 'cpu'], { cwd: ws });
  assert.equal(r.code, 0, r.stderr);
});
