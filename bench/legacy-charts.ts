/**
 * THE OLD DRAWING PATH, kept only so bench/chart-update.ts can measure "before" in the same
 * process as "after": webview/charts.ts as of commit 1d5c8f0, where the panel rebuilt every line
 * chart (a new SVG with every point in one path) on each train event. Not used by the product.
 *
 * Small SVG charts for the panel: line charts (linear or log axes, gaps where a value cannot be
 * drawn, vertical markers) and bar charts (log y). Colours come from classes (`.c0` … `.c7`,
 * `alt` for a second round) that media/webview.css maps to a palette per theme kind, so charts
 * follow the theme and nothing sets an inline style the CSP would refuse.
 */
import { formatNumber } from '../webview/view-model.ts';

const SVG = 'http://www.w3.org/2000/svg';

// ---- scales (pure) ---------------------------------------------------------------------------

export interface Scale {
  (v: number): number;
  readonly log: boolean;
  readonly domain: readonly [number, number];
  ticks(): number[];
}

export function linearScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  let [d0, d1] = domain;
  if (!(d1 > d0)) {
    const pad = d0 === 0 ? 1 : Math.abs(d0) * 0.1;
    d0 -= pad;
    d1 += pad;
  }
  const [r0, r1] = range;
  const f = (v: number): number => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0);
  return Object.assign(f, { log: false, domain: [d0, d1] as const, ticks: () => linearTicks(d0, d1, 5) });
}

/** log10 scale; the domain must be positive (callers drop values ≤ 0 first). */
export function logScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
  let [d0, d1] = domain;
  if (!(d0 > 0)) d0 = 1e-12;
  if (!(d1 > d0)) {
    d0 /= Math.SQRT2 * 2;
    d1 = d0 * 8;
  }
  const l0 = Math.log10(d0);
  const l1 = Math.log10(d1);
  const [r0, r1] = range;
  const f = (v: number): number => r0 + ((Math.log10(v) - l0) / (l1 - l0)) * (r1 - r0);
  return Object.assign(f, { log: true, domain: [d0, d1] as const, ticks: () => logTicks(d0, d1) });
}

/** About `count` round numbers (1, 2 or 5 × 10^k apart) inside [min, max]. */
export function linearTicks(min: number, max: number, count: number): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  // the finest round step that gives at most count + 1 intervals
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => (max - min) / s <= count + 1) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Powers of ten inside [min, max]; every other one when there are many, both ends when none. */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.ceil(Math.log10(min) - 1e-9);
  const hi = Math.floor(Math.log10(max) + 1e-9);
  if (hi < lo) return [min, max];
  const stride = Math.ceil((hi - lo + 1) / 7);
  const out: number[] = [];
  // `1e-5` read as a number is exact where Math.pow(10, -5) is a hair below it
  for (let e = lo; e <= hi; e += stride) out.push(Number(`1e${e}`));
  return out;
}

/** [min, max] of the finite values that fit the axis (positive ones on a log axis). */
export function extent(values: Iterable<number>, log: boolean): [number, number] | undefined {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (!Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : undefined;
}

// ---- DOM helpers -------------------------------------------------------------------------------

function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

function html<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (className !== '') el.className = className;
  if (text !== undefined) el.textContent = text;
  return el;
}

const W = 640;
const H = 220;
const M = { left: 58, right: 14, top: 12, bottom: 36 };

export interface LegendEntry {
  label: string;
  /** Colour class, e.g. `c3`. */
  color: string;
  dashed?: boolean;
}

function figure(title: string, legend: readonly LegendEntry[]): { fig: HTMLElement; body: HTMLElement } {
  const fig = html('figure', 'chart');
  fig.append(html('figcaption', '', title));
  const body = html('div', 'chart-body');
  fig.append(body);
  if (legend.length > 1) {
    const ul = html('ul', 'legend');
    for (const e of legend) {
      const li = html('li', '');
      li.append(html('span', `swatch ${e.color}${e.dashed === true ? ' dashed' : ''}`), document.createTextNode(e.label));
      ul.append(li);
    }
    fig.append(ul);
  }
  return { fig, body };
}

function emptyChart(title: string, text: string): HTMLElement {
  const { fig, body } = figure(title, []);
  fig.classList.add('empty');
  body.append(html('p', 'chart-empty', text));
  return fig;
}

function axes(root: SVGSVGElement, x: Scale, y: Scale, xLabel: string, yLabel: string, xFormat: (v: number) => string): void {
  const g = svg('g', { class: 'axes' });
  const bottom = H - M.bottom;
  for (const t of y.ticks()) {
    const py = y(t);
    g.append(svg('line', { class: 'grid', x1: M.left, x2: W - M.right, y1: py, y2: py }));
    g.append(svg('text', { x: M.left - 6, y: py + 4, 'text-anchor': 'end' }, formatNumber(t)));
  }
  for (const t of x.ticks()) {
    const px = x(t);
    g.append(svg('line', { class: 'tick', x1: px, x2: px, y1: bottom, y2: bottom + 4 }));
    g.append(svg('text', { x: px, y: bottom + 16, 'text-anchor': 'middle' }, xFormat(t)));
  }
  g.append(svg('line', { class: 'axis', x1: M.left, x2: W - M.right, y1: bottom, y2: bottom }));
  g.append(svg('line', { class: 'axis', x1: M.left, x2: M.left, y1: M.top, y2: bottom }));
  g.append(svg('text', { class: 'label', x: (M.left + W - M.right) / 2, y: H - 4, 'text-anchor': 'middle' }, xLabel));
  g.append(svg('text', { class: 'label', transform: `translate(12 ${(M.top + bottom) / 2}) rotate(-90)`, 'text-anchor': 'middle' }, yLabel));
  root.append(g);
}

function chartSvg(label: string): SVGSVGElement {
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' });
}

// ---- line chart --------------------------------------------------------------------------------

export interface LineSeries {
  label: string;
  color: string;
  points: ReadonlyArray<readonly [number, number]>;
  dashed?: boolean;
  /** Also draw a dot at every point (short per-epoch series). */
  dots?: boolean;
}

export interface VerticalMarker {
  x: number;
  label: string;
  /** `stage` boundaries are faint, a `suggestion` stands out. */
  kind: 'stage' | 'suggestion' | 'other';
}

export interface LineChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  /** On a log y axis, values below max / yFloorRatio are drawn at that floor (0 → gap). */
  yFloorRatio?: number;
  /** Clip the y axis at this quantile of the values (a loss that explodes at the end of a sweep). */
  yClipQuantile?: number;
  series: readonly LineSeries[];
  markers?: readonly VerticalMarker[];
  emptyText?: string;
  xFormat?: (v: number) => string;
}

export function lineChart(spec: LineChartSpec): HTMLElement {
  const xLog = spec.xLog === true;
  const yLog = spec.yLog === true;
  const xs = extent(spec.series.flatMap((s) => s.points.map((p) => p[0])), xLog);
  const ysAll = spec.series.flatMap((s) => s.points.map((p) => p[1]));
  let ys = extent(ysAll, yLog);
  if (xs === undefined || ys === undefined) return emptyChart(spec.title, spec.emptyText ?? 'No data yet.');
  if (yLog && spec.yFloorRatio !== undefined) ys = [Math.max(ys[0], ys[1] / spec.yFloorRatio), ys[1]];
  if (spec.yClipQuantile !== undefined) {
    const sorted = ysAll.filter((v) => Number.isFinite(v) && (!yLog || v > 0)).sort((a, b) => a - b);
    const q = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * spec.yClipQuantile))];
    if (q !== undefined && q > ys[0]) ys = [ys[0], q + (q - ys[0]) * 0.05];
  }
  const xRange = [M.left, W - M.right] as const;
  const yRange = [H - M.bottom, M.top] as const;
  const x = xLog ? logScale(xs, xRange) : linearScale(xs, xRange);
  const y = yLog ? logScale(ys, yRange) : linearScale(ys, yRange);
  const [yLo, yHi] = y.domain;

  const total = spec.series.reduce((n, s) => n + s.points.length, 0);
  const root = chartSvg(`${spec.title}: ${spec.series.map((s) => s.label).join(', ')}; ${total} points`);
  axes(root, x, y, spec.xLabel, spec.yLabel, spec.xFormat ?? formatNumber);

  let labelRow = 0;
  let lastStageLabel = -Infinity;
  for (const m of spec.markers ?? []) {
    if (!Number.isFinite(m.x) || (xLog && m.x <= 0) || m.x < x.domain[0] || m.x > x.domain[1]) continue;
    const px = x(m.x);
    const g = svg('g', { class: `marker ${m.kind}`, 'data-x': m.x });
    g.append(svg('line', { x1: px, x2: px, y1: M.top, y2: H - M.bottom }));
    // labels near the right edge go on the left of their line; rows keep close labels apart
    const right = px > W - M.right - 90;
    const ty = m.kind === 'stage' ? M.top + 12 : M.top + 12 + 13 * labelRow++;
    // many stages: lines for all, labels only where they do not run into the previous one
    const crowded = m.kind === 'stage' && px - lastStageLabel < 56;
    if (!crowded) g.append(svg('text', { x: right ? px - 4 : px + 4, y: ty, 'text-anchor': right ? 'end' : 'start' }, m.label));
    if (m.kind === 'stage' && !crowded) lastStageLabel = px;
    root.append(g);
  }

  spec.series.forEach((s) => {
    let d = '';
    let drawn = 0;
    const dots: string[] = [];
    // a run of drawable points; a lone point (a group that trained for one step) gets a dot,
    // since a path of one point draws nothing
    let run: string[] = [];
    const endRun = (): void => {
      if (run.length === 1 && s.dots !== true) dots.push(...run);
      run = [];
    };
    for (const [vx, vy] of s.points) {
      const okX = Number.isFinite(vx) && (!xLog || vx > 0);
      let v = vy;
      if (Number.isFinite(v) && yLog && v > 0 && v < yLo) v = yLo;
      const okY = Number.isFinite(v) && (!yLog || v > 0);
      if (!okX || !okY) {
        endRun();
        continue;
      }
      const px = x(vx).toFixed(1);
      const py = y(Math.min(v, yHi)).toFixed(1);
      d += `${run.length > 0 ? 'L' : 'M'}${px} ${py}`;
      run.push(`${px} ${py}`);
      drawn += 1;
      if (s.dots === true) dots.push(`${px} ${py}`);
    }
    endRun();
    const cls = `series ${s.color}${s.dashed === true ? ' dashed' : ''}`;
    const path = svg('path', { class: cls, d: d === '' ? 'M0 0' : d, 'data-series': s.label, 'data-points': drawn });
    path.append(svg('title', {}, s.label));
    root.append(path);
    if (dots.length > 0) {
      const g = svg('g', { class: `dots ${s.color}` });
      for (const p of dots) {
        const [cx = '0', cy = '0'] = p.split(' ');
        g.append(svg('circle', { cx, cy, r: 2.5 }));
      }
      root.append(g);
    }
  });

  const { fig, body } = figure(
    spec.title,
    spec.series.map((s) => ({ label: s.label, color: s.color, ...(s.dashed === true ? { dashed: true } : {}) })),
  );
  body.append(root);
  return fig;
}

// ---- bar chart ---------------------------------------------------------------------------------

export interface Bar {
  label: string;
  value: number;
  color: string;
  /** Drawn as an outline (a frozen layer: its rate does not apply). */
  hollow?: boolean;
  detail?: string;
}

export interface BarChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  bars: readonly Bar[];
  legend: readonly LegendEntry[];
  emptyText?: string;
}

/**
 * Log-y bars, one per item, drawn as one path per colour so a thousand layers cost a handful
 * of elements; hovering shows the bar under the pointer.
 */
export function barChart(spec: BarChartSpec): HTMLElement {
  const ys = extent(spec.bars.map((b) => b.value), true);
  if (ys === undefined || spec.bars.length === 0) return emptyChart(spec.title, spec.emptyText ?? 'Nothing to draw.');
  const n = spec.bars.length;
  const lo = ys[0] / 2;
  const y = logScale([lo, ys[1] * 1.5], [H - M.bottom, M.top]);
  const slot = (W - M.left - M.right) / n;
  const x = linearScale([0, n], [M.left, W - M.right]);
  const xTicks: Scale = Object.assign((v: number) => x(v + 0.5), {
    log: false,
    domain: [0, n] as const,
    ticks: () => linearTicks(0, n - 1, Math.min(n - 1, 8)).filter((t) => Number.isInteger(t)),
  });
  const root = chartSvg(`${spec.title}: ${n} bars`);
  // a few bars are named; many are numbered by position
  const short = (t: string): string => (t.length > 14 ? `${t.slice(0, 13)}…` : t);
  axes(root, xTicks, y, spec.xLabel, spec.yLabel, (v) => (n <= 8 ? short(spec.bars[v]?.label ?? String(v)) : String(v)));

  const paths = new Map<string, string>();
  const bottom = H - M.bottom;
  const gap = slot > 3 ? slot * 0.15 : 0;
  spec.bars.forEach((b, i) => {
    if (!(b.value > 0) || !Number.isFinite(b.value)) return;
    const key = `${b.color}${b.hollow === true ? ' hollow' : ''}`;
    const x0 = (x(i) + gap / 2).toFixed(2);
    const w = Math.max(0.6, slot - gap).toFixed(2);
    const top = y(b.value).toFixed(1);
    paths.set(key, `${paths.get(key) ?? ''}M${x0} ${bottom}V${top}h${w}V${bottom}Z`);
  });
  for (const [key, d] of paths) root.append(svg('path', { class: `bars ${key}`, d }));

  const hover = svg('text', { class: 'hover', x: W - M.right, y: M.top + 10, 'text-anchor': 'end' });
  root.append(hover);
  root.addEventListener('pointermove', (ev) => {
    const box = root.getBoundingClientRect();
    const vx = ((ev.clientX - box.left) / box.width) * W;
    const i = Math.floor((vx - M.left) / slot);
    const b = spec.bars[i];
    hover.textContent = b === undefined ? '' : `${b.label}: ${b.detail ?? formatNumber(b.value)}`;
  });
  root.addEventListener('pointerleave', () => {
    hover.textContent = '';
  });

  const { fig, body } = figure(spec.title, spec.legend);
  body.append(root);
  return fig;
}
