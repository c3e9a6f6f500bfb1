/**
 * batchNorm: "inference" in a real run of the bundled example (cpu): the BatchNorm layers train
 * gamma and beta but their moving statistics do not change by one bit, and the run's frozen
 * check covers those statistics; with the default policy the same run moves them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';

const EXAMPLE = resolve('examples/fashion/layerwise.json');

function planText(policy: 'train' | 'inference' | undefined): string {
  const text = readFileSync(EXAMPLE, 'utf8');
  const out = text
    .replace('"epochs": 6,', '')
    .replace('"unfreeze": { "mode": "gradual", "epochsPerStage": 1 }', `"unfreeze": { "stages": [{ "epochs": 1, "train": "all" }] }${policy === undefined ? '' : `, "batchNorm": "${policy}"`}`);
  assert.notEqual(out, text, 'the example plan changed: update this test');
  return out;
}

async function weightsOf(modelFile: string): Promise<Map<string, Float32Array>> {
  const model = await loadModel(modelFile);
  const out = new Map<string, Float32Array>();
  for (const l of model.layers) for (const w of l.weights) out.set(w.originalName, (w.read().dataSync() as Float32Array).slice());
  model.dispose();
  return out;
}

const same = (a: Float32Array | undefined, b: Float32Array | undefined): boolean =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

for (const policy of ['inference', undefined] as const) {
  test(`batchNorm ${policy ?? '(default train)'}: gamma/beta train; the moving statistics ${policy === 'inference' ? 'stay bit-identical and are checked' : 'move'}`, async () => {
    const outDir = join(mkdtempSync(join(tmpdir(), 'layerwise-bn-')), 'run');
    const outcome = await train({ planFile: EXAMPLE, planText: planText(policy), backend: 'cpu', outDir });
    assert.equal(outcome.report.stopped, 'completed');
    const before = await weightsOf(resolve('examples/fashion/model/model.json'));
    const after = await weightsOf(join(outDir, 'model.json'));
    for (const bn of ['block1_bn', 'block2_bn']) {
      assert.ok(!same(before.get(`${bn}/gamma`), after.get(`${bn}/gamma`)), `${bn}/gamma trains`);
      assert.ok(!same(before.get(`${bn}/beta`), after.get(`${bn}/beta`)), `${bn}/beta trains`);
      for (const stat of ['moving_mean', 'moving_variance']) {
        const fixed = same(before.get(`${bn}/${stat}`), after.get(`${bn}/${stat}`));
        assert.equal(fixed, policy === 'inference', `${bn}/${stat} ${policy === 'inference' ? 'unchanged' : 'moves'}`);
      }
    }
    assert.equal(outcome.report.frozenCheck.unchanged, true);
    assert.equal(outcome.report.frozenCheck.weightsChecked, policy === 'inference' ? 4 : 0);
  });
}
