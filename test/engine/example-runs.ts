/**
 * Whole training runs of the bundled example for the frozen-prefix tests: final weights, log
 * messages and per-epoch losses of one run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrainEvent } from '../../src/core/progress.ts';
import { loadModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';

const EXAMPLE = resolve('examples/fashion/layerwise.json');

/**
 * The example with explicit stages, each with frozen layers below the cut (head; features and
 * head; block2, features and head: the first `count` of them), two epochs each.
 */
export function stagedPlanText(count = 3): string {
  const text = readFileSync(EXAMPLE, 'utf8');
  const stages = ['["head"]', '["features", "head"]', '["block2", "features", "head"]'].slice(0, count).map((t) => `{ "epochs": 2, "train": ${t} }`);
  const staged = text
    .replace('"epochs": 6,', '')
    .replace('"unfreeze": { "mode": "gradual", "epochsPerStage": 1 }', `"unfreeze": { "stages": [${stages.join(', ')}] }`);
  assert.notEqual(staged, text, 'the example plan changed: update this test');
  return staged;
}

export async function runExample(
  backend: 'cpu' | 'wasm',
  cache: boolean,
  planText?: string,
): Promise<{ weights: Map<string, Float32Array>; logs: string[]; losses: number[]; frozenUnchanged: boolean }> {
  const logs: string[] = [];
  const out = join(mkdtempSync(join(tmpdir(), 'layerwise-prefix-')), cache ? 'cached' : 'plain');
  const outcome = await train({
    planFile: EXAMPLE,
    planText,
    backend,
    outDir: out,
    frozenPrefixCache: cache,
    onEvent: (e: TrainEvent) => {
      if (e.kind === 'log') logs.push(e.message);
    },
  });
  assert.equal(outcome.report.stopped, 'completed');
  const model = await loadModel(join(out, 'model.json'));
  const weights = new Map<string, Float32Array>();
  for (const l of model.layers) for (const w of l.weights) weights.set(w.originalName, (w.read().dataSync() as Float32Array).slice());
  model.dispose();
  const losses = outcome.report.epochs.flatMap((e) => [e.trainLoss, e.valLoss ?? NaN]);
  return { weights, logs, losses, frozenUnchanged: outcome.report.frozenCheck.unchanged };
}

