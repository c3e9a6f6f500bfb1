/**
 * Advice on real runs of the bundled example: quiet on the example as shipped (diagnostics at
 * every step, so every group is judged), a warning for a head held at ×1e-4 — naming the group,
 * its figure and the multiplier that would bring it into the band — in report.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RunReport } from '../../src/core/progress.ts';
import { train } from '../../src/engine/trainer.ts';

const EXAMPLE = resolve('examples/fashion/layerwise.json');

async function run(edit: (text: string) => string): Promise<RunReport> {
  const text = readFileSync(EXAMPLE, 'utf8');
  const planText = edit(text.replace('"batchSize": 16,', '"batchSize": 16, "diagnosticsEvery": 1,'));
  assert.notEqual(planText, text, 'the example plan changed: update this test');
  const outcome = await train({ planFile: EXAMPLE, planText, backend: 'cpu', outDir: join(mkdtempSync(join(tmpdir(), 'layerwise-advice-')), 'run') });
  const onDisk = JSON.parse(readFileSync(outcome.reportFile, 'utf8')) as RunReport;
  assert.deepEqual(onDisk.advice, outcome.report.advice);
  return outcome.report;
}

test('the bundled example: no advice', async () => {
  const report = await run((t) => t);
  assert.deepEqual(report.advice, []);
});

test('a head held at ×1e-4 is far below the band: the advice names it, its figure and a multiplier', async () => {
  const report = await run((t) => t.replace('{ "name": "head", "layers": ["head_*"] }', '{ "name": "head", "layers": ["head_*"], "lrMult": 1e-4 }'));
  const heads = (report.advice ?? []).filter((a) => a.kind === 'updateRatio' && a.group === 'head');
  assert.equal(heads.length, 1, JSON.stringify(report.advice));
  const a = heads[0];
  assert.ok(a && a.kind === 'updateRatio');
  assert.equal(a.direction, 'low');
  assert.equal(a.current, 1e-4);
  assert.ok(a.figure < 1e-4);
  // the suggestion lands the head near the 1e-3 the band is built around: ×(1e-3/figure)
  assert.ok(a.suggested > 1e-4 && Math.abs(a.suggested - (1e-4 * 1e-3) / a.figure) / a.suggested < 0.01);
  assert.match(a.message, /^group "head": update ratio/);
});
