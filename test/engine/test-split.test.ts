/**
 * data.test: read like the validation data (same format, same classes as train; an unknown
 * class is an error naming data.test), and evaluated once after a run: the final weights, and
 * the best epoch's when best/ holds a copy — checked against the saved models evaluated here.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LayerwiseError } from '../../src/core/errors.ts';
import type { Plan } from '../../src/core/plan.ts';
import { batchTensors, loadData, type Dataset } from '../../src/engine/data.ts';
import { loadModel } from '../../src/engine/model-io.ts';
import { train } from '../../src/engine/trainer.ts';

const fixtures = path.join(__dirname, '..', 'fixtures');
const planFile = path.join(fixtures, 'layerwise.json'); // never read: paths resolve against its folder

before(async () => {
  await tf.setBackend('cpu');
});

const plan = (data: Plan['data']): Plan => ({ model: 'models/mlp/model.json', data });

test('data.test (CSV): read with the training classes, kept apart from train and validation', async () => {
  const d = await loadData(plan({ train: 'data/mlp/train.csv', validationSplit: 0.25, test: 'data/mlp/val.csv' }), planFile, fixtures, [null, 6]);
  const v = await loadData(plan({ train: 'data/mlp/train.csv', validation: 'data/mlp/val.csv' }), planFile, fixtures, [null, 6]);
  assert.ok(d.test);
  assert.deepEqual(d.test.classes, ['alpha', 'beta', 'gamma']);
  assert.deepEqual([...d.test.x], [...v.validation!.x]);
  assert.deepEqual([...d.test.y], [...v.validation!.y]);
  assert.equal(d.train.n + d.validation!.n, v.train.n, 'validationSplit takes from train only');
});

test('data.test: a class the training data lacks is one error naming data.test', async () => {
  const root = mkdtempSync(path.join(tmpdir(), 'layerwise-test-split-'));
  cpSync(path.join(fixtures, 'data/mlp/train.csv'), path.join(root, 'train.csv'));
  writeFileSync(path.join(root, 'test.csv'), 'f1,f2,f3,f4,f5,f6,species\n1,2,3,4,5,6,alpha\n1,2,3,4,5,6,delta\n');
  await assert.rejects(loadData(plan({ train: 'train.csv', test: 'test.csv' }), path.join(root, 'layerwise.json'), root, [null, 6]), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.file, path.join(root, 'test.csv'));
    assert.match(e.message, /class "delta" in data\.test does not occur in the training data/);
    return true;
  });
  // image folders: the unknown class folder is named, with data.test as the field
  cpSync(path.join(fixtures, 'data/shapes/train'), path.join(root, 'img/train'), { recursive: true });
  cpSync(path.join(fixtures, 'data/shapes/val'), path.join(root, 'img/test'), { recursive: true });
  mkdirSync(path.join(root, 'img/test/star'));
  cpSync(path.join(fixtures, 'data/shapes/val/circle/img_0.png'), path.join(root, 'img/test/star/a.png'));
  await assert.rejects(loadData(plan({ train: 'img/train', test: 'img/test' }), path.join(root, 'layerwise.json'), root, [null, 8, 8, 1]), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.field, 'data.test');
    assert.match(e.message, /class "star" does not occur in the training data/);
    return true;
  });
  // a path that leaves the workspace names data.test too
  await assert.rejects(loadData(plan({ train: 'train.csv', test: '../elsewhere.csv' }), path.join(root, 'layerwise.json'), root, [null, 6]), (e: unknown) => {
    assert.ok(e instanceof LayerwiseError);
    assert.equal(e.field, 'data.test');
    return true;
  });
});

/** Accuracy and mean cross-entropy of a saved model (its new head outputs logits) on a data set, computed here with predict(). */
async function scoreSaved(modelFile: string, ds: Dataset): Promise<{ loss: number; accuracy: number }> {
  const model = await loadModel(modelFile);
  const { x, y } = batchTensors(ds, Array.from({ length: ds.n }, (_, i) => i));
  const p = tf.logSoftmax(model.predict(x) as tf.Tensor2D);
  const logProbs = p.arraySync() as number[][];
  const labels = y.arraySync() as number[][];
  let correct = 0;
  let loss = 0;
  logProbs.forEach((row, i) => {
    const k = labels[i]!.indexOf(1);
    if (row.indexOf(Math.max(...row)) === k) correct++;
    loss -= row[k]!;
  });
  tf.dispose([x, y, p]);
  model.dispose();
  return { loss: loss / ds.n, accuracy: correct / ds.n };
}

test('a run evaluates data.test once: final weights, and the best epoch\'s kept in best/ (report, results, saved models agree)', async () => {
  const example = path.resolve('examples/fashion/layerwise.json');
  const text = readFileSync(example, 'utf8');
  // two sensible epochs, then one at a learning rate that wrecks the weights: the best epoch is not the last
  const planText = text
    .replace('"epochs": 6,', '')
    .replace('"validation": "data/val",', '"validation": "data/val", "test": "data/val",')
    .replace('"unfreeze": { "mode": "gradual", "epochsPerStage": 1 }', '"unfreeze": { "stages": [{ "epochs": 2, "train": ["head"] }, { "epochs": 1, "train": "all", "lr": 0.5 }] }');
  assert.notEqual(planText, text);
  const outDir = path.join(mkdtempSync(path.join(tmpdir(), 'layerwise-test-run-')), 'run');
  const outcome = await train({ planFile: example, planText, backend: 'cpu', outDir });
  const { report } = outcome;
  assert.ok(report.test, 'report.test');
  assert.ok(report.outputs.best, `a best copy is kept (best epoch ${report.best?.epoch} of ${report.epochs.length})`);
  const data = await loadData(JSON.parse(text.replace(/\/\/.*$/gm, '').replace(/,(\s*[}\]])/g, '$1')) as Plan, example, path.dirname(example), [null, 28, 28, 1]);
  const finalScore = await scoreSaved(report.outputs.model, data.validation!);
  const bestScore = await scoreSaved(report.outputs.best, data.validation!);
  assert.equal(report.test.final.accuracy, finalScore.accuracy);
  assert.ok(Math.abs(report.test.final.loss - finalScore.loss) < 1e-4 * Math.max(1, finalScore.loss), `${report.test.final.loss} vs ${finalScore.loss}`);
  assert.equal(report.test.best?.epoch, report.best?.epoch);
  assert.equal(report.test.best?.accuracy, bestScore.accuracy);
  assert.ok(Math.abs(report.test.best!.loss - bestScore.loss) < 1e-4 * Math.max(1, bestScore.loss));
  // the test data here is the validation data, so the figures must equal the per-epoch validation ones
  const last = report.epochs[report.epochs.length - 1]!;
  assert.equal(report.test.final.accuracy, last.valAccuracy);
  assert.equal(report.test.best!.accuracy, report.best?.valAccuracy);
  assert.deepEqual(outcome.results.lastRun?.test, {
    loss: report.test.final.loss,
    accuracy: report.test.final.accuracy,
    bestLoss: report.test.best!.loss,
    bestAccuracy: report.test.best!.accuracy,
  });
  const written = JSON.parse(readFileSync(path.join(outDir, 'report.json'), 'utf8')) as { test?: unknown };
  assert.deepEqual(written.test, report.test);
});
