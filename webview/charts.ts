/**
 * What the panel's SVG charts share: scales, ticks and the pure work behind the line charts
 * (downsampling to the pixel columns drawn, the value readout, the CSV export) and the axes.
 * The interactive line chart is webview/line-chart.ts, the bar chart webview/bar-chart.ts. Colours come from
 * classes (`.c0` … `.c7`, `alt` for a second round) that media/webview.css maps to a palette per
 * theme kind, so charts follow the theme and nothing sets an inline style the CSP would refuse.
 */
import { el as html } from './dom.ts';
import { formatNumber } from './view-model.ts';

const SVG = 'http://www.w3.org/2000/svg';

// ---- scales (pure) ---------------------------------------------------------------------------

export interface Scale {
  (v: number): number;
  readonly log: boolean;
  readonly domain: readonly [number, number];
  ticks(): number[];
  /** The value drawn at a position of the range. */
  invert(px: number): number;
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
  const invert = (px: number): number => d0 + ((px - r0) / (r1 - r0)) * (d1 - d0);
  return Object.assign(f, { log: false, domain: [d0, d1] as const, ticks: () => linearTicks(d0, d1, 5), invert });
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
  const invert = (px: number): number => Math.pow(10, l0 + ((px - r0) / (r1 - r0)) * (l1 - l0));
  return Object.assign(f, { log: true, domain: [d0, d1] as const, ticks: () => logTicks(d0, d1), invert });
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

// ---- line data (pure) ----------------------------------------------------------------------------

export type Point = readonly [number, number];

/** First index whose x is ≥ `x` in points sorted by x (points.length when none is). */
export function lowerBound(points: ReadonlyArray<Point>, x: number): number {
  let lo = 0;
  let hi = points.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((points[mid]?.[0] ?? Infinity) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export type Distance = (a: number, b: number) => number;
const along: Distance = (a, b) => Math.abs(a - b);

/** Index of the point nearest to `x` (by `distance`, e.g. on screen), in points sorted by x; -1 when there are none. */
export function nearestIndex(points: ReadonlyArray<Point>, x: number, distance: Distance = along): number {
  if (points.length === 0) return -1;
  const i = lowerBound(points, x);
  if (i >= points.length) return points.length - 1;
  if (i === 0) return 0;
  const before = points[i - 1]?.[0] ?? -Infinity;
  const after = points[i]?.[0] ?? Infinity;
  return distance(before, x) <= distance(after, x) ? i - 1 : i;
}

/** [lo, hi] widened to round numbers (about `count` steps of 1, 2 or 5 × 10^k), as ticks would fall. */
export function niceDomain(lo: number, hi: number, count = 10): [number, number] {
  if (!(hi > lo)) return [lo, hi];
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => (hi - lo) / s <= count + 1) ?? 10 * mag;
  return [Number((Math.floor(lo / step) * step).toPrecision(12)), Number((Math.ceil(hi / step) * step).toPrecision(12))];
}

/**
 * The points of a growing series worth drawing, taken in as they arrive: of every pixel column
 * (`column(x)`) only the first, lowest, highest and last point of a run (M4), in their order, in
 * runs split where a point cannot be drawn (`drawable` false). A 20,000-step curve drawn 570
 * columns wide keeps at most ~2,300 vertices and looks the same as with all of them, and each
 * `update()` looks only at the points added since the last one. Points must be sorted by x;
 * those outside [x0, x1] are left out except the nearest one on each side, so the line runs to
 * the plot's edges. A new x range or scale needs a new envelope.
 */
export class ColumnEnvelope {
  /** Drawable points taken in, and the range of their y inside [x0, x1]. */
  drawn = 0;
  yMin = Infinity;
  yMax = -Infinity;
  private readonly done: Point[][] = [];
  private open: Point[] = [];
  private next = -1;
  private closed = false;
  // the pixel column being collected: its first, lowest, highest and last point (by index)
  private col = NaN;
  private first = -1;
  private low = -1;
  private high = -1;
  private last = -1;

  constructor(
    readonly points: ReadonlyArray<Point>,
    private readonly x0: number,
    private readonly x1: number,
    private readonly column: (x: number) => number,
    private readonly drawable: (p: Point) => boolean,
  ) {}

  /** How many points have been looked at; an envelope of a series that shrank is stale. */
  get seen(): number {
    return this.next;
  }

  /** Takes in the points added to the series since the last call. */
  update(): this {
    const pts = this.points;
    if (this.next < 0) this.next = Math.max(0, lowerBound(pts, this.x0) - 1);
    while (!this.closed && this.next < pts.length) {
      const i = this.next++;
      const p = pts[i] as Point;
      // the first point past the right edge is the last one the line needs
      if (p[0] > this.x1) this.closed = true;
      if (!this.drawable(p)) {
        this.flush();
        if (this.open.length > 0) this.done.push(this.open);
        this.open = [];
        continue;
      }
      this.drawn += 1;
      if (p[0] >= this.x0 && p[0] <= this.x1) {
        if (p[1] < this.yMin) this.yMin = p[1];
        if (p[1] > this.yMax) this.yMax = p[1];
      }
      const c = this.column(p[0]);
      if (c !== this.col || this.first < 0) {
        this.flush();
        this.col = c;
        this.first = this.low = this.high = this.last = i;
        continue;
      }
      this.last = i;
      if (p[1] < (pts[this.low] as Point)[1]) this.low = i;
      if (p[1] > (pts[this.high] as Point)[1]) this.high = i;
    }
    return this;
  }

  /** The runs to draw so far, the column still being collected included. */
  runs(): Point[][] {
    const tail = [...this.open, ...this.columnPoints()];
    return tail.length > 0 ? [...this.done, tail] : [...this.done];
  }

  private columnPoints(): Point[] {
    if (this.first < 0) return [];
    return [...new Set([this.first, this.low, this.high, this.last])].sort((a, b) => a - b).map((i) => this.points[i] as Point);
  }

  private flush(): void {
    this.open.push(...this.columnPoints());
    this.first = -1;
  }
}

export interface ReadoutSeries {
  label: string;
  color: string;
  points: ReadonlyArray<Point>;
}

export interface Readout {
  /** The x of the data point nearest to where the pointer is. */
  x: number;
  /** Each series' value at that x; undefined where the series has no point there. */
  values: Array<{ label: string; color: string; y: number | undefined }>;
}

/** What a hover at `x` reads: the nearest x any series has a point at, and every series' value there. */
export function readoutAt(series: readonly ReadoutSeries[], x: number, distance: Distance = along): Readout | undefined {
  let best: number | undefined;
  for (const s of series) {
    const p = s.points[nearestIndex(s.points, x, distance)];
    if (p !== undefined && (best === undefined || distance(p[0], x) < distance(best, x))) best = p[0];
  }
  if (best === undefined) return undefined;
  const at = best;
  return {
    x: at,
    values: series.map((s) => {
      const p = s.points[nearestIndex(s.points, at)];
      return { label: s.label, color: s.color, y: p !== undefined && p[0] === at ? p[1] : undefined };
    }),
  };
}

/** A number as the readout and CSV want it: integers whole, others to 4 significant digits. */
export function readoutNumber(v: number): string {
  if (Number.isInteger(v) && Math.abs(v) < 1e7) return String(v);
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

export const csvField = (s: string): string => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);

/**
 * The curves as CSV: a header (the x name, an optional detail column such as the epoch of a
 * step, one column per series), then one row per x that any series has, ascending; a series
 * without a point at that x leaves its cell empty. Values are written in full (shortest exact
 * form); a non-finite loss stays visible as NaN or Infinity.
 */
export function seriesCsv(
  xName: string,
  series: ReadonlyArray<{ label: string; points: ReadonlyArray<Point> }>,
  detail?: { name: string; of(x: number): number | string | undefined },
): string {
  const rows = new Map<number, Array<number | undefined>>();
  series.forEach((s, j) => {
    for (const [x, y] of s.points) {
      let row = rows.get(x);
      if (row === undefined) {
        row = new Array<number | undefined>(series.length).fill(undefined);
        rows.set(x, row);
      }
      row[j] = y;
    }
  });
  const header = [xName, ...(detail ? [detail.name] : []), ...series.map((s) => s.label)].map(csvField).join(',');
  const lines = [header];
  for (const x of [...rows.keys()].sort((a, b) => a - b)) {
    const d = detail?.of(x);
    const cells = [String(x), ...(detail ? [d === undefined ? '' : csvField(String(d))] : []), ...(rows.get(x) ?? []).map((v) => (v === undefined ? '' : String(v)))];
    lines.push(cells.join(','));
  }
  return `${lines.join('\n')}\n`;
}

// ---- DOM helpers -------------------------------------------------------------------------------

export function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}


/** The charts' viewBox and the plot area's margins inside it. */
export const W = 640;
export const H = 220;
export const M = { left: 58, right: 14, top: 12, bottom: 36 };

export interface LegendEntry {
  label: string;
  /** Colour class, e.g. `c3`. */
  color: string;
  dashed?: boolean;
}

export function figure(title: string, legend: readonly LegendEntry[]): { fig: HTMLElement; body: HTMLElement } {
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

export function emptyChart(title: string, text: string): HTMLElement {
  const { fig, body } = figure(title, []);
  fig.classList.add('empty');
  body.append(html('p', 'chart-empty', text));
  return fig;
}

/** Grid, ticks, tick labels and axis titles, as one group. */
export function axes(x: Scale, y: Scale, xLabel: string, yLabel: string, xFormat: (v: number) => string): SVGGElement {
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
  return g;
}

export function chartSvg(label: string): SVGSVGElement {
  return svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, preserveAspectRatio: 'xMidYMid meet' });
}
