/**
 * The pure work behind the panel's line charts: the envelope a curve is drawn from (downsampled
 * per pixel column, taken in incrementally), the readout lookup, the CSV export, round axis ends,
 * the epoch of a step, and the guard on the export message.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ColumnEnvelope, linearScale, logScale, nearestIndex, niceDomain, readoutAt, readoutNumber, seriesCsv, type Point } from '../../webview/charts.ts';
import { fileStem } from '../../webview/chart-file.ts';
import { barsCsv } from '../../webview/bar-chart.ts';
import { RunData } from '../../webview/run-data.ts';
import { isChartExport, isWebviewToHost } from '../../src/protocol/webview.ts';
import type { StepEvent } from '../../src/core/progress.ts';

/** A noisy curve of n points at x = 1 … n (deterministic). */
function noisy(n: number): Point[] {
  let seed = 7;
  const out: Point[] = [];
  for (let i = 1; i <= n; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    out.push([i, Math.exp(-i / 3000) + (seed / 2147483648 - 0.5) * 0.2]);
  }
  return out;
}

const finite = (p: Point): boolean => Number.isFinite(p[0]) && Number.isFinite(p[1]);

test('the envelope keeps at most four points per pixel column, and every column’s lowest and highest', () => {
  const pts = noisy(20_000);
  const x = linearScale([1, 20_000], [58, 626]);
  const column = (v: number): number => Math.floor(x(v));
  const env = new ColumnEnvelope(pts, 1, 20_000, column, finite).update();
  const runs = env.runs();
  assert.equal(runs.length, 1);
  const kept = runs[0]!;
  assert.equal(env.drawn, 20_000);
  assert.ok(kept.length <= 4 * 569 && kept.length > 569, `${kept.length} vertices`);
  // in x order, first and last point kept
  assert.ok(kept.every((p, i) => i === 0 || p[0] > kept[i - 1]![0]));
  assert.deepEqual(kept[0], pts[0]);
  assert.deepEqual(kept[kept.length - 1], pts[pts.length - 1]);
  // per column, the extremes of the raw data are among the kept points
  const byCol = new Map<number, { lo: number; hi: number; keptLo: number; keptHi: number; n: number }>();
  for (const p of pts) {
    const c = byCol.get(column(p[0])) ?? { lo: Infinity, hi: -Infinity, keptLo: Infinity, keptHi: -Infinity, n: 0 };
    c.lo = Math.min(c.lo, p[1]);
    c.hi = Math.max(c.hi, p[1]);
    byCol.set(column(p[0]), c);
  }
  for (const p of kept) {
    const c = byCol.get(column(p[0]))!;
    c.keptLo = Math.min(c.keptLo, p[1]);
    c.keptHi = Math.max(c.keptHi, p[1]);
    c.n += 1;
  }
  for (const [col, c] of byCol) {
    assert.equal(c.keptLo, c.lo, `column ${col} lowest`);
    assert.equal(c.keptHi, c.hi, `column ${col} highest`);
    assert.ok(c.n <= 4, `column ${col} keeps ${c.n}`);
  }
  assert.equal(env.yMin, Math.min(...pts.map((p) => p[1])));
  assert.equal(env.yMax, Math.max(...pts.map((p) => p[1])));
});

test('points taken in one at a time give the same envelope as all at once', () => {
  const all = noisy(5_000);
  const x = linearScale([0, 6_000], [58, 626]);
  const column = (v: number): number => Math.floor(x(v));
  const growing: Point[] = [];
  const live = new ColumnEnvelope(growing, 0, 6_000, column, finite);
  for (const p of all) {
    growing.push(p);
    live.update();
  }
  const once = new ColumnEnvelope(all, 0, 6_000, column, finite).update();
  assert.deepEqual(live.runs(), once.runs());
  assert.equal(live.drawn, once.drawn);
  assert.equal(live.seen, all.length);
});

test('a point that cannot be drawn splits the line; a zoomed range keeps one point beyond each edge', () => {
  const pts: Point[] = [
    [1, 1],
    [2, 2],
    [3, NaN],
    [4, 4],
    [5, 5],
    [6, 6],
    [7, 7],
  ];
  const column = (v: number): number => v;
  const env = new ColumnEnvelope(pts, 1, 7, column, finite).update();
  assert.deepEqual(env.runs(), [
    [
      [1, 1],
      [2, 2],
    ],
    [
      [4, 4],
      [5, 5],
      [6, 6],
      [7, 7],
    ],
  ]);
  assert.equal(env.drawn, 6);
  const zoomed = new ColumnEnvelope(pts, 4.5, 5.5, column, finite).update();
  assert.deepEqual(zoomed.runs(), [
    [
      [4, 4],
      [5, 5],
      [6, 6],
    ],
  ]);
  // the y range is what lies inside the zoom, not the points beyond it
  assert.deepEqual([zoomed.yMin, zoomed.yMax], [5, 5]);
});

test('nearestIndex and readoutAt: the nearest x any series has, and each series’ value there or none', () => {
  const a: Point[] = [
    [1, 10],
    [2, 20],
    [4, 40],
  ];
  const b: Point[] = [
    [2, 0.2],
    [3, 0.3],
  ];
  assert.equal(nearestIndex(a, 2.9), 1);
  assert.equal(nearestIndex(a, 3.1), 2);
  assert.equal(nearestIndex(a, -5), 0);
  assert.equal(nearestIndex(a, 99), 2);
  assert.equal(nearestIndex([], 1), -1);
  const r = readoutAt(
    [
      { label: 'a', color: 'c0', points: a },
      { label: 'b', color: 'c1', points: b },
    ],
    3.2,
  );
  assert.deepEqual(r, {
    x: 3,
    values: [
      { label: 'a', color: 'c0', y: undefined },
      { label: 'b', color: 'c1', y: 0.3 },
    ],
  });
  assert.equal(readoutAt([{ label: 'a', color: 'c0', points: [] }], 1), undefined);
  // on a log axis the distance that counts is on screen: 2e-3 is nearer to 1e-3 than to 1e-2
  const lr: Point[] = [
    [1e-3, 1],
    [1e-2, 2],
  ];
  const x = logScale([1e-3, 1e-2], [0, 100]);
  assert.equal(readoutAt([{ label: 'loss', color: 'c0', points: lr }], 4e-3, (p, q) => Math.abs(x(p) - x(q)))?.x, 1e-2);
  assert.equal(readoutAt([{ label: 'loss', color: 'c0', points: lr }], 2e-3, (p, q) => Math.abs(x(p) - x(q)))?.x, 1e-3);
});

test('CSV: one row per x of any series, empty cells where a series has no point, values in full', () => {
  const csv = seriesCsv(
    'step',
    [
      { label: 'train loss', points: [[1, 0.693147], [2, 0.5], [3, NaN]] },
      { label: 'lr, head', points: [[2, 1e-5], [4, 2.5e-5]] },
    ],
    { name: 'epoch', of: (s) => (s <= 2 ? 1 : s === 3 ? 2 : undefined) },
  );
  assert.equal(csv, 'step,epoch,train loss,"lr, head"\n1,1,0.693147,\n2,1,0.5,0.00001\n3,2,NaN,\n4,,,0.000025\n');
  assert.equal(seriesCsv('epoch', [{ label: 'loss', points: [] }]), 'epoch,loss\n');
});

test('bars as CSV: one row per bar in drawing order, its value in full, its fields, awkward labels quoted', () => {
  const csv = barsCsv({
    csv: { label: 'layer', value: 'update ratio', fields: ['group', 'gradNorm'] },
    bars: [
      { label: 'conv1', value: 1.2345678e-5, color: 'c0', fields: { group: 'body', gradNorm: 0.5 } },
      { label: 'head, "dense"', value: 0.001, color: 'c1', fields: { group: 'head' } },
    ],
  });
  assert.equal(csv, 'layer,update ratio,group,gradNorm\nconv1,0.000012345678,body,0.5\n"head, ""dense""",0.001,head,\n');
});

test('scales invert what they draw; niceDomain ends on round numbers', () => {
  const lin = linearScale([0, 200], [58, 626]);
  assert.ok(Math.abs(lin.invert(lin(123)) - 123) < 1e-9);
  const log = logScale([1e-6, 1e-1], [58, 626]);
  assert.ok(Math.abs(log.invert(log(3e-3)) / 3e-3 - 1) < 1e-9);
  assert.deepEqual(niceDomain(1, 20_100), [0, 22_000]);
  assert.deepEqual(niceDomain(1, 5), [1, 5]);
  assert.deepEqual(niceDomain(0.37, 2.31), [0.2, 2.4]);
  assert.deepEqual(niceDomain(3, 3), [3, 3]);
});

test('readout numbers: whole steps whole, the rest to four significant digits', () => {
  assert.equal(readoutNumber(12345), '12345');
  assert.equal(readoutNumber(0.693147), '0.6931');
  assert.equal(readoutNumber(2.5e-5), '2.5e-5');
  assert.equal(readoutNumber(123456.7), '1.235e5');
  assert.equal(readoutNumber(NaN), 'NaN');
});

test('the epoch of a live step, from the step events; export file names and the export message guard', () => {
  const run = new RunData('train');
  const step = (s: number, epoch: number): StepEvent => ({ kind: 'step', stage: 1, stages: 1, epoch, epochs: 3, step: s, totalSteps: 9, loss: 1, groupLrs: [], etaSeconds: 0 });
  assert.equal(run.epochAt(1), undefined);
  for (const [s, e] of [
    [1, 1],
    [2, 1],
    [3, 1],
    [4, 2],
    [5, 2],
    [6, 3],
  ] as const) {
    run.add(step(s, e));
  }
  assert.deepEqual([1, 3, 4, 5, 6, 99].map((s) => run.epochAt(s)), [1, 1, 2, 2, 3, 3]);
  assert.equal(run.epochAt(0), undefined);

  assert.equal(fileStem('LR range test: loss vs base LR (group ratios kept)'), 'lr-range-test-loss-vs-base-lr-group-ratios-kept');
  assert.equal(fileStem('Loss per epoch'), 'loss-per-epoch');
  assert.ok(isChartExport({ fileName: 'loss-per-epoch.csv', format: 'csv', content: 'epoch,loss\n' }));
  assert.ok(isWebviewToHost({ type: 'saveChart', file: { fileName: 'chart.png', format: 'png', content: 'iVBORw0KGgo=' } }));
  // a name that is a path, a format it does not end in, or no content: refused
  assert.ok(!isChartExport({ fileName: '../../.bashrc.csv', format: 'csv', content: '' }));
  assert.ok(!isChartExport({ fileName: 'a.csv', format: 'svg', content: '' }));
  assert.ok(!isChartExport({ fileName: 'a.exe', format: 'exe', content: '' }));
  assert.ok(!isChartExport({ fileName: 'a.csv', format: 'csv' }));
});
