/**
 * The page side of bench/chart-update.ts (bundled by it, run in headless Chromium): a loss
 * curve of `n` steps drawn by the old path (bench/legacy-charts.ts: a new SVG with every point on
 * each update) and by webview/line-chart.ts (the chart kept and updated), then one step appended
 * at a time, as the panel does while a run trains: the chart is moved into a fresh grid each
 * time, as the panel's Training tab does on every redraw.
 */
import { lineChart as legacyLineChart } from './legacy-charts.ts';
import { LineChart, type LineChartSpec } from '../webview/line-chart.ts';
import type { Point } from '../webview/charts.ts';

export interface CaseResult {
  /** One chart from nothing with the whole series: ms to built + laid out, and to painted. */
  firstSync: number;
  firstPaint: number;
  /** Per appended step: ms in the chart code alone; to updated + laid out; to the next frame painted. */
  appendChart: number[];
  appendSync: number[];
  appendPaint: number[];
  /** Length of the series' path `d` and vertices after the last append. */
  pathChars: number;
  vertices: number;
}

declare global {
  interface Window {
    chartBench: { run(kind: 'before' | 'after', n: number, appends: number): Promise<CaseResult> };
  }
}

/** A noisy decaying loss (deterministic). */
function lossCurve(n: number): Point[] {
  let seed = 12345;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const out: Point[] = [];
  for (let i = 1; i <= n; i++) out.push([i, 0.2 + 2 * Math.exp(-i / (n / 5)) + 0.3 * (rand() - 0.5)]);
  return out;
}

/** After the browser has painted what the last change asked for. */
const painted = (): Promise<void> => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

window.chartBench = {
  async run(kind, n, appends) {
    const all = lossCurve(n + appends);
    const points = all.slice(0, n);
    const spec = (): LineChartSpec => ({ title: 'Training loss per step', xLabel: 'step', yLabel: 'loss', yLogToggle: true, series: [{ label: 'train loss', color: 'c0', points }] });
    const box = document.getElementById('app') as HTMLElement;
    box.replaceChildren();
    let chart: LineChart | undefined;
    let chartMs = 0;
    const draw = (): void => {
      const grid = document.createElement('div');
      grid.className = 'chart-grid';
      const t = performance.now();
      let fig: HTMLElement;
      if (kind === 'before') fig = legacyLineChart(spec());
      else {
        if (chart === undefined) chart = new LineChart(spec(), () => undefined);
        else chart.update(spec());
        fig = chart.element;
      }
      chartMs = performance.now() - t;
      grid.append(fig);
      box.replaceChildren(grid);
      void box.offsetHeight;
    };
    await painted();
    let t0 = performance.now();
    draw();
    const firstSync = performance.now() - t0;
    await painted();
    const firstPaint = performance.now() - t0;
    const appendChart: number[] = [];
    const appendSync: number[] = [];
    const appendPaint: number[] = [];
    for (let i = 0; i < appends; i++) {
      points.push(all[n + i] as Point);
      t0 = performance.now();
      draw();
      appendSync.push(performance.now() - t0);
      appendChart.push(chartMs);
      await painted();
      appendPaint.push(performance.now() - t0);
    }
    const d = box.querySelector('path.series')?.getAttribute('d') ?? '';
    return { firstSync, firstPaint, appendChart, appendSync, appendPaint, pathChars: d.length, vertices: (d.match(/[ML]/g) ?? []).length };
  },
};
