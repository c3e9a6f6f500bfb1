import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mean, pairedComparison, sampleSd, tQuantile975 } from '../../scripts/study-stats.ts';

const close = (a: number, b: number, tol = 1e-9): void => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

test('t quantiles: the table values and the normal tail', () => {
  close(tQuantile975(1), 12.706);
  close(tQuantile975(4), 2.776);
  close(tQuantile975(30), 2.042);
  close(tQuantile975(200), 1.96);
  assert.throws(() => tQuantile975(0), /degrees of freedom/);
});

test('mean and sample sd by hand', () => {
  close(mean([1, 2, 3, 4]), 2.5);
  // squares of deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; / 3
  close(sampleSd([1, 2, 3, 4]), Math.sqrt(5 / 3));
  assert.equal(sampleSd([7]), 0);
});

test('paired comparison: differences by seed, 95% t-interval, win rate with half-ties', () => {
  const arm = new Map([[1, 0.60], [2, 0.70], [3, 0.65], [4, 0.50], [5, 0.9]]);
  const base = new Map([[1, 0.55], [2, 0.60], [3, 0.65], [4, 0.55]]); // seed 5 has no pair
  const c = pairedComparison(arm, base)!;
  // diffs 0.05, 0.10, 0, −0.05 → mean 0.025; deviations 0.025, 0.075, −0.025, −0.075 → Σ² 0.0125, /3
  assert.equal(c.n, 4);
  close(c.meanDiff, 0.025);
  const sd = Math.sqrt(0.0125 / 3);
  close(c.sdDiff, sd);
  const half = 3.182 * sd / 2;
  close(c.ci![0], 0.025 - half);
  close(c.ci![1], 0.025 + half);
  close(c.winRate, 2.5 / 4);
});

test('paired comparison: one pair has no interval, no pair no comparison', () => {
  const one = pairedComparison(new Map([[1, 0.5]]), new Map([[1, 0.4]]))!;
  assert.equal(one.ci, undefined);
  close(one.meanDiff, 0.1);
  assert.equal(pairedComparison(new Map([[1, 0.5]]), new Map([[2, 0.4]])), undefined);
});
