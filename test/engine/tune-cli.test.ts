/**
 * `layerwise tune` as a user runs it, on a copy of the bundled example: the table comes first
 * and nothing changes without --apply; --apply writes explicit multipliers with the comment
 * naming the method, every comment of the plan intact and the plan still valid; --json prints
 * the documented shape; bad input is one stderr line and no change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parsePlanText } from '../../src/core/validate.ts';
import { runCli } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');

function example(): string {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-tune-cli-'));
  cpSync(join(repo, 'examples/fashion'), ws, { recursive: true });
  return join(ws, 'layerwise.json');
}

const comments = (text: string): string[] => text.split('\n').filter((l) => l.includes('//')).map((l) => l.slice(l.indexOf('//')));

test('tune (rgn): the table, then --apply writes the multipliers with a comment, comments intact', () => {
  const planFile = example();
  const before = readFileSync(planFile, 'utf8');
  const shown = runCli(['tune', planFile, '--backend', 'cpu']);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /group\s+current\s+suggested\s+why/);
  assert.match(shown.stdout, /head\s+×1\s+×1\s+‖g‖\/‖θ‖/);
  assert.equal(readFileSync(planFile, 'utf8'), before, 'nothing changes without --apply');

  const json = runCli(['tune', planFile, '--backend', 'cpu', '--json', '--apply']);
  assert.equal(json.code, 0, json.stderr);
  const out = JSON.parse(json.stdout) as { method: string; groups: Array<{ name: string; lrMult: number }>; steps: number };
  assert.equal(out.method, 'rgn');
  assert.equal(out.steps, 5);
  assert.deepEqual(out.groups.map((g) => g.name), ['default', 'block1', 'block2', 'features', 'head']);
  const after = readFileSync(planFile, 'utf8');
  const plan = parsePlanText(after, planFile);
  for (const g of out.groups.filter((x) => x.name !== 'default')) assert.equal(plan.groups?.find((x) => x.name === g.name)?.lrMult, g.lrMult);
  const added = comments(after).filter((c) => /^\/\/ tuned by rgn on \d{4}-\d\d-\d\d$/.test(c));
  assert.equal(added.length, 4);
  assert.deepEqual(comments(after).filter((c) => !c.startsWith('// tuned by')), comments(before));
});

test('tune (search): the steps spent are printed and stay within --budget', () => {
  // the small MLP fixture: the same candidates (BatchNorm included), seconds instead of minutes
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-tune-cli-'));
  cpSync(join(repo, 'test/fixtures/models/mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test/fixtures/data/mlp'), join(ws, 'data'), { recursive: true });
  const planFile = join(ws, 'layerwise.json');
  writeFileSync(
    planFile,
    JSON.stringify({
      model: 'model/model.json',
      data: { train: 'data/train.csv', validation: 'data/val.csv', label: 'species' },
      groups: [{ name: 'body', layers: ['dense', 'batch_normalization'] }, { name: 'head', layers: ['dense_1'] }],
      training: { epochs: 3, batchSize: 8, lr: 0.01 },
    }),
  );
  const r = runCli(['tune', planFile, '--backend', 'cpu', '--method', 'search', '--budget', '250']);
  assert.equal(r.code, 0, r.stderr);
  const m = /(\d+) optimizer steps of a budget of 250/.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.ok(Number(m[1]) > 0 && Number(m[1]) <= 250, m[1]);
  assert.match(r.stdout, /^(winner: factor|the plan as it is scored best)/m);
});

test('tune: bad input is one line on stderr and nothing written', () => {
  const planFile = example();
  const before = readFileSync(planFile, 'utf8');
  const r = runCli(['tune', planFile, '--method', 'magic', '--apply']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--method must be one of rgn, search/);
  const b = runCli(['tune', planFile, '--backend', 'cpu', '--method', 'search', '--budget', '3', '--apply']);
  assert.equal(b.code, 1);
  assert.match(b.stderr, /^layerwise: a budget of 3 steps cannot train/);
  assert.equal(readFileSync(planFile, 'utf8'), before);
});
