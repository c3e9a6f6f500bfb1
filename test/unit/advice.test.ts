/**
 * Advice from the live figures, on series built by hand: the band, the window, the suggested
 * multiplier (current × 1e-3 / median), groups judged only once they trained for many steps,
 * and the overfitting alert naming the best epoch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ADVICE_LIMITS, adviceWindow, adviseRun, overfittingAdvice, updateRatioAdvice } from '../../src/core/advice.ts';
import type { EpochMetrics, LayerDiagnostic } from '../../src/core/progress.ts';
import { layer, model } from './model-builders.ts';

/** Diagnostics every `every` steps; each group's layers at the given ratios (a function of the sample index). */
function series(samples: number, every: number, layers: Record<string, { group: string; ratio: (i: number) => number }>): Array<{ step: number; layers: LayerDiagnostic[] }> {
  return Array.from({ length: samples }, (_, i) => ({
    step: (i + 1) * every,
    layers: Object.entries(layers).map(([layer, l]) => ({ layer, group: l.group, gradNorm: 1, updateRatio: l.ratio(i) })),
  }));
}

const groups = [
  { name: 'body', lrMult: 0.1 },
  { name: 'head', lrMult: 1 },
];

test('a group far below the band gets a warning with current × target / median', () => {
  const d = series(30, 5, {
    conv: { group: 'body', ratio: (i) => (i % 2 === 0 ? 2e-6 : 4e-6) },
    bn: { group: 'body', ratio: () => 3e-6 },
    dense: { group: 'head', ratio: () => 1e-3 },
  });
  const advice = updateRatioAdvice({ diagnostics: d, epochs: [], groups });
  assert.equal(advice.length, 1);
  const a = advice[0];
  assert.ok(a);
  assert.equal(a.group, 'body');
  assert.equal(a.direction, 'low');
  // per sample the median of conv and bn: 2.5e-6 or 3.5e-6; over the last 20 samples: 3e-6
  assert.ok(Math.abs(a.figure - 3e-6) < 1e-12, String(a.figure));
  assert.equal(a.suggested, Number(((0.1 * 1e-3) / 3e-6).toPrecision(3)));
  assert.equal(a.samples, ADVICE_LIMITS.window);
  assert.deepEqual(a.steps, [55, 150]);
  assert.match(a.message, /group "body": update ratio ‖Δθ‖\/‖θ‖ 3\.0e-6 .* far below .* lrMult 0\.1 → 33\.3/);
});

test('adviceWindow keeps only what the advice reads: each group\'s last samples, also of a group that trained only early', () => {
  // head trains throughout; body only in the first 30 samples (a stage that froze it again), far below the band
  const early = series(30, 5, { conv: { group: 'body', ratio: () => 2e-6 }, dense: { group: 'head', ratio: () => 0.05 } });
  const late = series(200, 5, { dense: { group: 'head', ratio: (i) => (i < 150 ? 1e-3 : 0.04) } }).map((d) => ({ ...d, step: d.step + 150 }));
  const all = [...early, ...late];
  const kept = adviceWindow(all);
  assert.equal(kept.length, 2 * ADVICE_LIMITS.window, 'body\'s last 20 (steps 55–150) and head\'s last 20');
  assert.deepEqual(kept.map((d) => d.step), [...early.slice(-20), ...late.slice(-20)].map((d) => d.step));
  const full = updateRatioAdvice({ diagnostics: all, epochs: [], groups });
  assert.deepEqual(full.map((a) => [a.group, a.direction]), [['body', 'low'], ['head', 'high']]);
  assert.deepEqual(updateRatioAdvice({ diagnostics: kept, epochs: [], groups }), full);
  // trimming again, or in pieces as a run does, changes nothing
  assert.deepEqual(adviceWindow(kept), kept);
  assert.deepEqual(adviceWindow([...adviceWindow(all.slice(0, 100)), ...all.slice(100)]), kept);
});

test('far above the band: a smaller multiplier', () => {
  const d = series(25, 1, { dense: { group: 'head', ratio: () => 0.05 } });
  const [a] = updateRatioAdvice({ diagnostics: d, epochs: [], groups });
  assert.equal(a?.direction, 'high');
  assert.equal(a?.suggested, 0.02);
});

test('quiet inside the band, on too few samples or steps, at lrMult 0, and for a group that never trained', () => {
  const inside = series(40, 10, { conv: { group: 'body', ratio: () => 2e-4 }, dense: { group: 'head', ratio: () => 8e-3 } });
  assert.deepEqual(updateRatioAdvice({ diagnostics: inside, epochs: [], groups }), []);
  const few = series(ADVICE_LIMITS.minSamples - 1, 10, { conv: { group: 'body', ratio: () => 1e-7 } });
  assert.deepEqual(updateRatioAdvice({ diagnostics: few, epochs: [], groups }), []);
  const short = series(10, 1, { conv: { group: 'body', ratio: () => 1e-7 } });
  assert.deepEqual(updateRatioAdvice({ diagnostics: short, epochs: [], groups }), []);
  const zero = series(30, 10, { conv: { group: 'body', ratio: () => 0 } });
  assert.deepEqual(updateRatioAdvice({ diagnostics: zero, epochs: [], groups: [{ name: 'body', lrMult: 0 }] }), []);
  assert.deepEqual(updateRatioAdvice({ diagnostics: [], epochs: [], groups }), []);
});

test('only the window counts: a group that recovered is not warned about', () => {
  const d = series(60, 2, { conv: { group: 'body', ratio: (i) => (i < 40 ? 1e-7 : 1e-3) } });
  assert.deepEqual(updateRatioAdvice({ diagnostics: d, epochs: [], groups }), []);
});

function epochs(pairs: Array<[number, number]>): EpochMetrics[] {
  return pairs.map(([trainLoss, valLoss], i) => ({ stage: 1, epoch: i + 1, trainLoss, valLoss, seconds: 1, groupLrs: [] }));
}

test('overfitting: validation loss up two epochs in a row while training loss falls, naming the best epoch', () => {
  const [a] = overfittingAdvice(epochs([[1, 0.9], [0.8, 0.7], [0.6, 0.5], [0.4, 0.55], [0.3, 0.6]]));
  assert.equal(a?.bestEpoch, 3);
  assert.deepEqual(a?.epochs, [4, 5]);
  assert.match(a?.message ?? '', /rose for 2 epochs in a row \(epochs 4–5\).*best validation loss was at epoch 3 \(0\.5000\)/);
  // one rising epoch, or rising together with the training loss, is not overfitting
  assert.deepEqual(overfittingAdvice(epochs([[1, 0.9], [0.8, 0.7], [0.6, 0.75], [0.5, 0.7]])), []);
  assert.deepEqual(overfittingAdvice(epochs([[1, 0.9], [1.1, 1.0], [1.2, 1.1]])), []);
  assert.equal(adviseRun({ diagnostics: [], epochs: epochs([[1, 0.9], [0.8, 1], [0.7, 1.1]]), groups }).length, 1);
});

test('the tree marks the group a run’s advice names, with the figure and the multiplier to try', async () => {
  const { buildPlanTree } = await import('../../src/core/tree-model.ts');
  const net = model(['conv', 'dense'].map((name) => layer(name, 'Dense', [['kernel', [2, 2]]])), { source: 'm/model.json' });
  const plan = { model: 'm/model.json', groups: [{ name: 'body', layers: ['conv'], lrMult: 0.1 }, { name: 'head', layers: ['dense'] }] };
  const d = series(30, 5, { conv: { group: 'body', ratio: () => 3e-6 }, dense: { group: 'head', ratio: () => 1e-3 } });
  const advice = adviseRun({ diagnostics: d, epochs: [], groups });
  const root = buildPlanTree({ planKey: 'k', label: 'layerwise.json', plan, problems: [], model: { state: 'ready', model: net }, advice });
  const body = root.children.find((n) => n.label === 'body');
  const head = root.children.find((n) => n.label === 'head');
  assert.equal(body?.icon, 'warning');
  assert.match(body?.description ?? '', /⚠ update ratio 3e-6: try ×33\.3/);
  assert.match(body?.tooltipMarkdown ?? '', /\*\*Last run:\*\* group "body": update ratio/);
  assert.equal(head?.icon, 'layers');
  assert.doesNotMatch(head?.description ?? '', /update ratio/);
});
