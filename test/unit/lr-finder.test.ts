import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LossSmoother, pickSuggestion, shouldStop, suggestLrs, sweepLr, type LrCurvePoint } from '../../src/core/lr-finder.ts';
import { LayerwiseError } from '../../src/core/errors.ts';

test('the sweep is exponential from start to end, inclusive', () => {
  const o = { startLr: 1e-7, endLr: 10, steps: 100 };
  assert.equal(sweepLr(o, 0), 1e-7);
  assert.ok(Math.abs(sweepLr(o, 99) - 10) < 1e-12);
  // each step multiplies by (1e8)^(1/99)
  assert.ok(Math.abs(sweepLr(o, 1) / sweepLr(o, 0) - Math.pow(1e8, 1 / 99)) < 1e-12);
});

test('smoothing is the bias-corrected EMA: first value unchanged, second by hand', () => {
  const s = new LossSmoother(0.98);
  assert.ok(Math.abs(s.add(2).smoothed - 2) < 1e-12);
  // avg = 0.98·0.04 + 0.02·1 = 0.0592; / (1 − 0.98²) = 0.0396 → 1.494949…
  assert.ok(Math.abs(s.add(1).smoothed - 0.0592 / 0.0396) < 1e-12);
});

test('stop rule: above 4× best, or non-finite', () => {
  assert.equal(shouldStop(3.9, 1, 4), false);
  assert.equal(shouldStop(4.1, 1, 4), true);
  assert.equal(shouldStop(NaN, 1, 4), true);
});

test('suggestions follow fastai on a hand-made curve', () => {
  // 20 points (no skipping: too short for the 10% + 5 trim to leave ≥ 3? 20 − 2 − 5 = 13 kept)
  const lrs = Array.from({ length: 20 }, (_, i) => Math.pow(10, -6 + i * 0.25));
  const losses = [5, 5, 4.9, 4.8, 4.5, 4.0, 3.2, 2.5, 2.0, 1.7, 1.5, 1.45, 1.5, 1.9, 2.8, 4, 6, 9, 12, 20];
  const pts: LrCurvePoint[] = lrs.map((lr, i) => ({ lr, loss: losses[i]!, smoothed: losses[i]! }));
  const s = suggestLrs(pts, 20);
  // kept = points[2 .. 14] (skip 2 at the start, 5 at the end): losses 4.9 … 2.8
  // minimum at 1.45 (index 11) → lr 10^(−6+2.75) / 10
  assert.ok(Math.abs(s.minimum! - Math.pow(10, -3.25) / 10) < 1e-15);
  // steepest drop per log-LR: 4.0 → 3.2 (−0.8) between indices 5 and 6 → lrs[5]
  assert.equal(s.steep, lrs[5]);
  // longest decreasing run: 4.9 … 1.45 (indices 2..11, length 10 in kept coords 0..9)
  // fastai: max_start = max_end − lds = 9 − 10 = −1; sections = 10/3; idx = −1 + 3 + 1 = 3 → kept[3] = lrs[5]
  assert.equal(s.valley, lrs[5]);
});

test('pickSuggestion falls back and refuses an empty curve', () => {
  assert.equal(pickSuggestion({ valley: 1, minimum: 2 }, 'steep'), 1);
  assert.throws(() => pickSuggestion({}, 'valley'), LayerwiseError);
});
