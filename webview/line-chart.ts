/**
 * The panel's line chart: an SVG that stays on the page while a run streams. `update(spec)`
 * redraws what depends on the data (one path per series with at most four vertices per pixel
 * column, see `columnEnvelope`; the axes when their domain moves; the markers), so a
 * 20,000-step curve costs about what 2,000 points would, and the user's zoom, log/linear choice,
 * readout and keyboard focus outlive every update.
 *
 * Reading it: hover (or focus it and use ←/→, Home/End) shows the x and every series' value
 * there; drag across it to zoom into that range of x, Shift+drag (or Shift+←/→) pans, +/− zoom
 * around the readout, double-click (or Escape) resets. Exports (CSV of every series, SVG, PNG)
 * go to the host, which asks where to save them.
 */
import {
  axes,
  ColumnEnvelope,
  H,
  linearScale,
  logScale,
  lowerBound,
  M,
  niceDomain,
  readoutAt,
  readoutNumber,
  seriesCsv,
  svg,
  W,
  type Point,
  type Scale,
} from './charts.ts';
import { exportTools, fileStem, standaloneSvg, tool, type ChartExportSink, type ChartFile } from './chart-file.ts';
import { el } from './dom.ts';
import { formatNumber } from './view-model.ts';

export interface LineSeries {
  label: string;
  /** Colour class, e.g. `c3`. */
  color: string;
  /** Sorted by x. */
  points: ReadonlyArray<Point>;
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
  /** Offer a log/linear switch for the y axis (loss curves); `yLog` is where it starts. */
  yLogToggle?: boolean;
  /** On a log y axis, values below max / yFloorRatio are drawn at that floor (0 → gap). */
  yFloorRatio?: number;
  /** Clip the y axis at this quantile of the values (a loss that explodes at the end of a sweep). */
  yClipQuantile?: number;
  series: readonly LineSeries[];
  markers?: readonly VerticalMarker[];
  emptyText?: string;
  xFormat?: (v: number) => string;
  /**
   * Where a linear x axis ends when the data is known to stop there (a run's planned steps while
   * it trains, its last step once it ended): the axis stays put while points arrive and has no
   * blank room past the end. Without it, or with data beyond it, the axis ends on a round number.
   */
  xEnd?: number;
  /** A second name for an x, shown in the readout and written as a CSV column (the epoch of a step). */
  xDetail?: { name: string; of(x: number): number | undefined };
  /** The exported files' name without extension; from the title when not given. */
  fileStem?: string;
}


const IDLE_HINT = 'Hover for values · drag to zoom · Shift+drag to pan · double-click to reset';
/** The keys a focused chart answers to, for screen readers (its aria-label) and its tooltip. */
const KEYS_HINT = 'Keys: ←/→ step through the values, Home/End first/last, +/− zoom, Shift+←/→ pan, Escape resets';

let chartCount = 0;

/** A linear x domain: from a round number below the data to `end` when the data stays within it, else to a round number. */
function linearDomain([lo, hi]: readonly [number, number], end: number | undefined): [number, number] {
  if (end === undefined || !(end >= hi) || !(end > lo)) return niceDomain(lo, hi);
  return [niceDomain(lo, end)[0], end];
}


export class LineChart {
  readonly element: HTMLElement;
  private spec: LineChartSpec;
  private readonly root: SVGSVGElement;
  private readonly axesBox: SVGGElement;
  private readonly plot: SVGGElement;
  private readonly markerBox: SVGGElement;
  private readonly cursor: SVGGElement;
  private readonly selection: SVGRectElement;
  private readonly readout: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly legend: HTMLElement;
  private readonly caption: HTMLElement;
  private readonly tools: HTMLElement;
  private readonly logButton: HTMLButtonElement;
  private readonly resetButton: HTMLButtonElement;
  private series: SVGPathElement[] = [];
  /** What each series' path is drawn from, kept while the x range and scales stay. */
  private envelopes: ColumnEnvelope[] = [];
  private envelopeKey = '';
  private plotted = false;
  private dots: SVGGElement[] = [];
  private x: Scale = linearScale([0, 1], [M.left, W - M.right]);
  private y: Scale = linearScale([0, 1], [H - M.bottom, M.top]);
  private axesKey = '';
  private legendKey = '';
  /** The x range the user zoomed into; undefined: all of the data. */
  private zoom: [number, number] | undefined;
  private yLog: boolean;
  /** The data x the readout shows, while hovered or focused. */
  private readX: number | undefined;
  private focused = false;
  private drag: { mode: 'select' | 'pan'; startPx: number; scale: Scale } | undefined;

  constructor(spec: LineChartSpec, sink?: ChartExportSink) {
    this.spec = spec;
    this.yLog = spec.yLog === true;
    const id = `lw-clip-${++chartCount}`;
    this.element = el('figure', 'chart line-chart');
    this.caption = el('figcaption');
    this.tools = el('div', 'chart-tools');
    this.tools.setAttribute('role', 'toolbar');
    this.logButton = tool('log y', 'Switch the y axis between log and linear', () => {
      this.yLog = !this.yLog;
      this.draw();
    });
    this.logButton.dataset['tool'] = 'log';
    this.resetButton = tool('reset zoom', 'Show all of x again (double-click or Escape on the chart)', () => this.setZoom(undefined));
    this.resetButton.dataset['tool'] = 'reset';
    this.tools.append(this.logButton, this.resetButton);
    if (sink !== undefined) {
      this.tools.append(
        ...exportTools(sink, {
          stem: () => this.spec.fileStem ?? fileStem(this.spec.title),
          csvTitle: 'Save every series of this chart as CSV…',
          csv: () => seriesCsv(this.xName(), this.spec.series, this.spec.xDetail),
          svg: () => this.standaloneSvg(),
        }),
      );
    }
    const body = el('div', 'chart-body');
    this.root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', preserveAspectRatio: 'xMidYMid meet', tabindex: 0 });
    const clip = svg('clipPath', { id });
    clip.append(svg('rect', { x: M.left, y: M.top - 1, width: W - M.left - M.right, height: H - M.top - M.bottom + 2 }));
    const defs = svg('defs', {});
    defs.append(clip);
    this.axesBox = svg('g', {});
    this.plot = svg('g', { 'clip-path': `url(#${id})` });
    this.markerBox = svg('g', {});
    this.cursor = svg('g', { class: 'cursor' });
    this.selection = svg('rect', { class: 'zoom-selection', y: M.top, height: H - M.top - M.bottom, x: 0, width: 0 });
    this.selection.setAttribute('visibility', 'hidden');
    this.root.append(defs, this.axesBox, this.plot, this.markerBox, this.cursor, this.selection);
    this.empty = el('p', 'chart-empty');
    body.append(this.root, this.empty);
    this.readout = el('p', 'chart-readout');
    this.readout.setAttribute('aria-live', 'polite');
    this.legend = el('ul', 'legend');
    this.element.append(this.caption, this.tools, body, this.readout, this.legend);
    this.listen();
    this.draw();
  }

  /** New data (or a new spec) for the same chart: the zoom, scale choice and readout stay. */
  update(spec: LineChartSpec): void {
    if (spec.yLog !== this.spec.yLog) this.yLog = spec.yLog === true;
    this.spec = spec;
    this.draw();
  }

  // ---- drawing ---------------------------------------------------------------------------------

  private setPlotted(plotted: boolean): void {
    this.plotted = plotted;
    this.root.style.display = plotted ? '' : 'none';
    this.empty.hidden = plotted;
    this.readout.hidden = !plotted;
  }

  private drawable(xLog: boolean, yLog: boolean): (p: Point) => boolean {
    return ([vx, vy]) => Number.isFinite(vx) && (!xLog || vx > 0) && Number.isFinite(vy) && (!yLog || vy > 0);
  }

  private draw(): void {
    const spec = this.spec;
    if (this.caption.textContent !== spec.title) {
      this.caption.textContent = spec.title;
      this.tools.setAttribute('aria-label', `${spec.title}: chart tools`);
    }
    const xLog = spec.xLog === true;
    const yLog = this.yLog;
    const toggle = spec.yLogToggle === true;
    this.logButton.hidden = !toggle;
    this.logButton.setAttribute('aria-pressed', String(yLog));
    const yLabel = yLog && toggle && !/\(log\)/.test(spec.yLabel) ? `${spec.yLabel} (log)` : spec.yLabel;

    const fullX = this.fullDomain();
    // a linear x axis ends where the data will (xEnd) or on a round number, so it stays put
    // while steps arrive and the envelopes of the series only take in the new points
    const xDom = this.zoom ?? (fullX === undefined || xLog ? fullX : linearDomain(fullX, spec.xEnd));
    const xRange = [M.left, W - M.right] as const;
    const yRange = [H - M.bottom, M.top] as const;
    const x = xDom === undefined ? this.x : xLog ? logScale(xDom, xRange) : linearScale(xDom, xRange);
    const ok = this.drawable(xLog, yLog);
    const envKey = `${x.domain.join()}|${xLog}|${yLog}`;
    this.envelopes = spec.series.map((s, i) => {
      const kept = this.envelopes[i];
      const env =
        kept !== undefined && kept.points === s.points && this.envelopeKey === envKey && kept.seen <= s.points.length
          ? kept
          : new ColumnEnvelope(s.points, x.domain[0], x.domain[1], (v) => Math.floor(x(v)), ok);
      return env.update();
    });
    this.envelopeKey = envKey;
    // y fits what is visible
    const yMin = Math.min(...this.envelopes.map((e) => e.yMin));
    const yMax = Math.max(...this.envelopes.map((e) => e.yMax));
    let ys: [number, number] | undefined = xDom !== undefined && yMin <= yMax ? [yMin, yMax] : undefined;
    if (fullX === undefined || ys === undefined) {
      this.setPlotted(false);
      this.empty.textContent = this.zoom !== undefined && fullX !== undefined ? 'Nothing in the zoomed range: “reset zoom” shows all of it.' : (spec.emptyText ?? 'No data yet.');
      this.tools.hidden = fullX === undefined;
      this.resetButton.hidden = this.zoom === undefined;
      this.renderLegend();
      return;
    }
    this.setPlotted(true);
    this.tools.hidden = false;
    this.resetButton.hidden = this.zoom === undefined;
    if (yLog && spec.yFloorRatio !== undefined) ys = [Math.max(ys[0], ys[1] / spec.yFloorRatio), ys[1]];
    if (spec.yClipQuantile !== undefined) {
      // a short sweep (the LR range test): every visible value, sorted
      const [x0, x1] = x.domain;
      const sorted = spec.series
        .flatMap((s) => s.points.filter((p) => p[0] >= x0 && p[0] <= x1 && ok(p)).map((p) => p[1]))
        .sort((a, b) => a - b);
      const q = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * spec.yClipQuantile))];
      if (q !== undefined && q > ys[0]) ys = [ys[0], q + (q - ys[0]) * 0.05];
    }
    const y = yLog ? logScale(ys, yRange) : linearScale(ys, yRange);
    this.x = x;
    this.y = y;
    const key = `${x.domain.join()}|${y.domain.join()}|${y.log}|${yLabel}`;
    if (key !== this.axesKey) {
      this.axesKey = key;
      this.axesBox.replaceChildren(axes(x, y, spec.xLabel, yLabel, spec.xFormat ?? formatNumber));
    }
    this.drawSeries();
    this.drawMarkers();
    this.renderLegend();
    this.showReadout();
  }

  private drawSeries(): void {
    const spec = this.spec;
    const { x, y } = this;
    const [yLo, yHi] = y.domain;
    const px = (p: Point): string => `${x(p[0]).toFixed(1)} ${y(Math.min(Math.max(p[1], y.log ? yLo : -Infinity), yHi)).toFixed(1)}`;
    // one path (and one group of dots) per series, kept from draw to draw
    while (this.series.length > spec.series.length) {
      this.series.pop()?.remove();
      this.dots.pop()?.remove();
    }
    while (this.series.length < spec.series.length) {
      const path = svg('path', {});
      path.append(svg('title', {}));
      const dots = svg('g', {});
      this.plot.append(path, dots);
      this.series.push(path);
      this.dots.push(dots);
    }
    let total = 0;
    spec.series.forEach((s, i) => {
      const path = this.series[i] as SVGPathElement;
      const dotBox = this.dots[i] as SVGGElement;
      const env = this.envelopes[i] as ColumnEnvelope;
      const runs = env.runs();
      const drawn = env.drawn;
      total += drawn;
      let d = '';
      const dots: Point[] = [];
      for (const run of runs) {
        // a lone point (a group that trained for one step) gets a dot: a path of one point draws nothing
        if (run.length === 1 && s.dots !== true) dots.push(...run);
        run.forEach((p, j) => {
          d += `${j === 0 ? 'M' : 'L'}${px(p)}`;
        });
      }
      if (s.dots === true) dots.push(...runs.flat());
      path.setAttribute('class', `series ${s.color}${s.dashed === true ? ' dashed' : ''}`);
      path.setAttribute('d', d === '' ? 'M0 0' : d);
      path.dataset['series'] = s.label;
      path.dataset['points'] = String(drawn);
      const title = path.firstChild;
      if (title !== null && title.textContent !== s.label) title.textContent = s.label;
      dotBox.setAttribute('class', `dots ${s.color}`);
      dotBox.replaceChildren(
        ...dots.map((p) => {
          const [cx = '0', cy = '0'] = px(p).split(' ');
          return svg('circle', { cx, cy, r: 2.5 });
        }),
      );
    });
    this.root.setAttribute('aria-label', `${spec.title}: ${spec.series.map((s) => s.label).join(', ')}; ${total} points. ${KEYS_HINT}.`);
  }

  private drawMarkers(): void {
    const x = this.x;
    const xLog = this.spec.xLog === true;
    const out: SVGGElement[] = [];
    let labelRow = 0;
    let lastStageLabel = -Infinity;
    for (const m of this.spec.markers ?? []) {
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
      out.push(g);
    }
    this.markerBox.replaceChildren(...out);
  }

  private renderLegend(): void {
    const entries = this.spec.series.map((s) => `${s.color}${s.dashed === true ? ' dashed' : ''}\t${s.label}`);
    const key = entries.join('\n');
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legend.hidden = entries.length < 2;
    this.legend.replaceChildren(
      ...this.spec.series.map((s) => {
        const li = el('li');
        li.append(el('span', `swatch ${s.color}${s.dashed === true ? ' dashed' : ''}`), document.createTextNode(s.label));
        return li;
      }),
    );
  }

  // ---- reading values ----------------------------------------------------------------------------

  private xName(): string {
    return this.spec.xLabel.replace(/\s*\(log\)$/, '');
  }

  /** The readout for `readX` (it follows new data while the pointer rests), or the hint. */
  private showReadout(): void {
    const at = this.readX;
    const r = at === undefined ? undefined : readoutAt(this.spec.series, at, (a, b) => Math.abs(this.x(a) - this.x(b)));
    if (r === undefined || !this.plotted) {
      this.readout.classList.add('idle');
      this.readout.textContent = IDLE_HINT;
      this.cursor.replaceChildren();
      return;
    }
    this.readout.classList.remove('idle');
    const detail = this.spec.xDetail;
    const d = detail?.of(r.x);
    const head = el('span', 'readout-x', `${this.xName()} ${readoutNumber(r.x)}${detail !== undefined && d !== undefined ? ` · ${detail.name} ${readoutNumber(d)}` : ''}`);
    // spaces between the parts: the readout is read out as one sentence
    const parts: Array<HTMLElement | string> = [head];
    for (const v of r.values) {
      parts.push(' ');
      const item = el('span', 'readout-value');
      item.dataset['series'] = v.label;
      item.append(el('span', `swatch ${v.color}`), document.createTextNode(`${v.label} `), el('b', '', v.y === undefined ? '–' : readoutNumber(v.y)));
      parts.push(item);
    }
    this.readout.replaceChildren(...parts);
    // the cursor: a line at x and a ring on each value drawn
    const px = this.x(r.x);
    const inside = px >= M.left - 0.5 && px <= W - M.right + 0.5;
    const [yLo, yHi] = this.y.domain;
    const marks: SVGElement[] = inside ? [svg('line', { x1: px, x2: px, y1: M.top, y2: H - M.bottom })] : [];
    if (inside) {
      for (const v of r.values) {
        if (v.y === undefined || !Number.isFinite(v.y) || (this.y.log && v.y <= 0)) continue;
        marks.push(svg('circle', { class: v.color, cx: px, cy: this.y(Math.min(Math.max(v.y, yLo), yHi)), r: 3.5 }));
      }
    }
    this.cursor.replaceChildren(...marks);
  }

  private setZoom(zoom: [number, number] | undefined): void {
    this.zoom = zoom;
    this.draw();
  }

  /** Every distinct x of the series, next after (dir 1) or before (dir −1) `from`. */
  private stepX(from: number | undefined, dir: 1 | -1): number | undefined {
    let best: number | undefined;
    for (const s of this.spec.series) {
      const pts = s.points;
      if (pts.length === 0) continue;
      let cand: number | undefined;
      if (from === undefined) cand = (dir === 1 ? pts[0] : pts[pts.length - 1])?.[0];
      else if (dir === 1) {
        let i = lowerBound(pts, from);
        while (i < pts.length && (pts[i] as Point)[0] <= from) i++;
        cand = pts[i]?.[0];
      } else cand = pts[lowerBound(pts, from) - 1]?.[0];
      if (cand !== undefined && (best === undefined || (dir === 1 ? cand < best : cand > best))) best = cand;
    }
    return best;
  }

  /** Zoom by `factor` (< 1 in, > 1 out) around `centre`; out past all of the data is no zoom. */
  private zoomBy(factor: number, centre: number): void {
    const x = this.x;
    const pc = x(centre);
    const lo = x.invert(pc - (pc - M.left) * factor);
    const hi = x.invert(pc + (W - M.right - pc) * factor);
    const all = this.fullDomain();
    if (all !== undefined && lo <= all[0] && hi >= all[1]) this.setZoom(undefined);
    else this.setZoom([lo, hi]);
  }

  /** The x range of all of the data: each series' first and last x that can be drawn (they are sorted). */
  private fullDomain(): [number, number] | undefined {
    const xLog = this.spec.xLog === true;
    const fits = (v: number | undefined): v is number => v !== undefined && Number.isFinite(v) && (!xLog || v > 0);
    let lo = Infinity;
    let hi = -Infinity;
    for (const { points } of this.spec.series) {
      let i = 0;
      while (i < points.length && !fits(points[i]?.[0])) i++;
      let j = points.length - 1;
      while (j >= i && !fits(points[j]?.[0])) j--;
      if (j < i) continue;
      lo = Math.min(lo, (points[i] as Point)[0]);
      hi = Math.max(hi, (points[j] as Point)[0]);
    }
    return lo <= hi ? [lo, hi] : undefined;
  }

  /** Shift the x range shown by `px` viewBox units, as the scale `from` drew it. */
  private panBy(from: Scale, px: number): void {
    this.setZoom([from.invert(M.left + px), from.invert(W - M.right + px)]);
  }

  // ---- input -------------------------------------------------------------------------------------

  /** The pointer's position in viewBox units. */
  private viewX(ev: MouseEvent): number {
    const box = this.root.getBoundingClientRect();
    // preserveAspectRatio meet: the drawing is centred at one scale in both directions
    const scale = Math.min(box.width / W, box.height / H);
    return (ev.clientX - box.left - (box.width - W * scale) / 2) / scale;
  }

  private listen(): void {
    const root = this.root;
    root.addEventListener('pointermove', (ev) => {
      if (this.drag !== undefined || !this.plotted) return;
      const px = this.viewX(ev);
      this.readX = px >= M.left && px <= W - M.right ? this.x.invert(px) : undefined;
      this.showReadout();
    });
    root.addEventListener('pointerleave', () => {
      if (this.drag !== undefined || this.focused) return;
      this.readX = undefined;
      this.showReadout();
    });
    root.addEventListener('pointerdown', (ev) => {
      if (ev.button !== 0 || !this.plotted) return;
      const startPx = this.viewX(ev);
      if (startPx < M.left || startPx > W - M.right) return;
      ev.preventDefault();
      this.drag = { mode: ev.shiftKey ? 'pan' : 'select', startPx, scale: this.x };
      // on the window: the panel may move the chart in the page mid-drag (a redraw), which would end a pointer capture
      const move = (e: PointerEvent): void => {
        const drag = this.drag;
        if (drag === undefined) return;
        const now = Math.min(W - M.right, Math.max(M.left, this.viewX(e)));
        if (drag.mode === 'pan') {
          this.panBy(drag.scale, drag.startPx - this.viewX(e));
          return;
        }
        const a = Math.min(drag.startPx, now);
        this.selection.setAttribute('x', String(a));
        this.selection.setAttribute('width', String(Math.abs(now - drag.startPx)));
        this.selection.setAttribute('visibility', 'visible');
      };
      const up = (e: PointerEvent): void => {
        window.removeEventListener('pointermove', move);
        window.removeEventListener('pointerup', up);
        window.removeEventListener('pointercancel', up);
        const drag = this.drag;
        this.drag = undefined;
        this.selection.setAttribute('visibility', 'hidden');
        if (drag?.mode !== 'select' || e.type === 'pointercancel') return;
        const now = Math.min(W - M.right, Math.max(M.left, this.viewX(e)));
        if (Math.abs(now - drag.startPx) < 4) return;
        const a = drag.scale.invert(Math.min(drag.startPx, now));
        const b = drag.scale.invert(Math.max(drag.startPx, now));
        this.setZoom([a, b]);
      };
      window.addEventListener('pointermove', move);
      window.addEventListener('pointerup', up);
      window.addEventListener('pointercancel', up);
    });
    root.addEventListener('dblclick', () => this.setZoom(undefined));
    root.addEventListener('focus', () => {
      this.focused = true;
      if (this.readX === undefined && this.plotted) {
        this.readX = readoutAt(this.spec.series, this.x.domain[0])?.x;
        this.showReadout();
      }
    });
    root.addEventListener('blur', () => {
      // the panel's redraws move the chart into a new grid, which takes the focus away from it:
      // once the redraw is done, a chart that moved and left the focus to nobody takes it back
      const parent = this.element.parentNode;
      queueMicrotask(() => {
        const active = document.activeElement;
        if (this.element.parentNode !== parent && root.isConnected && (active === null || active === document.body)) {
          root.focus({ preventScroll: true });
          return;
        }
        this.focused = false;
        this.readX = undefined;
        this.showReadout();
      });
    });
    root.addEventListener('keydown', (ev) => {
      if (!this.plotted) return;
      const x = this.x;
      const span = (W - M.left - M.right) / 4;
      let handled = true;
      switch (ev.key) {
        case 'ArrowRight':
        case 'ArrowLeft': {
          const dir = ev.key === 'ArrowRight' ? 1 : -1;
          if (ev.shiftKey) {
            this.panBy(x, dir * span);
            break;
          }
          const next = this.stepX(this.readX, dir);
          if (next === undefined) break;
          this.readX = next;
          const [lo, hi] = x.domain;
          // the readout walks off a zoomed range: the range follows it
          if (this.zoom !== undefined && (next < lo || next > hi)) this.panBy(x, x(next) - (dir === 1 ? W - M.right : M.left));
          else this.showReadout();
          break;
        }
        case 'Home':
        case 'End':
          this.readX = this.stepX(undefined, ev.key === 'Home' ? 1 : -1);
          this.setZoom(undefined);
          break;
        case '+':
        case '=':
        case '-':
        case '_':
          this.zoomBy(ev.key === '+' || ev.key === '=' ? 0.5 : 2, this.readX ?? x.invert((M.left + W - M.right) / 2));
          break;
        case 'Escape':
          handled = this.zoom !== undefined;
          this.setZoom(undefined);
          break;
        default:
          handled = false;
      }
      if (handled) ev.preventDefault();
    });
  }

  // ---- export ------------------------------------------------------------------------------------

  /** The chart as a file of its own (what SVG and PNG exports save). */
  standaloneSvg(): ChartFile {
    return standaloneSvg(this.root, this.spec.title, this.spec.series.length > 1 ? this.legend : null);
  }
  }


/**
 * The panel's line charts by key, each made once and updated after: redrawing a tab moves the
 * same chart elements into place instead of building new ones.
 */
export class LineCharts {
  private readonly charts = new Map<string, LineChart>();

  constructor(private readonly sink?: ChartExportSink) {}

  /** The chart kept under `key`, showing `spec`. */
  show(key: string, spec: LineChartSpec): HTMLElement {
    let chart = this.charts.get(key);
    if (chart === undefined) {
      chart = new LineChart(spec, this.sink);
      this.charts.set(key, chart);
    } else chart.update(spec);
    return chart.element;
  }
}
