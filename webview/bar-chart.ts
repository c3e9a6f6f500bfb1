/**
 * Log-y bar charts, one bar per item (a layer), drawn as one path per colour so a thousand
 * layers cost a handful of elements; hovering shows the bar under the pointer; with a sink, CSV
 * (every bar), SVG and PNG exports.
 */
import { type ChartExportSink, exportTools, fileStem, standaloneSvg } from './chart-file.ts';
import { axes, chartSvg, csvField, emptyChart, extent, figure, H, linearScale, linearTicks, logScale, M, svg, W, type LegendEntry, type Scale } from './charts.ts';
import { el as html } from './dom.ts';
import { formatNumber } from './view-model.ts';


export interface Bar {
  label: string;
  value: number;
  color: string;
  /** Drawn as an outline (a frozen layer: its rate does not apply). */
  hollow?: boolean;
  detail?: string;
  /** More columns of the bar's CSV row (BarChartSpec.csv.fields names them). */
  fields?: Readonly<Record<string, string | number>>;
}

export interface BarChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  bars: readonly Bar[];
  legend: readonly LegendEntry[];
  emptyText?: string;
  /** The CSV's columns: the bars' label and value, then each bar's `fields` in this order. */
  csv: { label: string; value: string; fields?: readonly string[] };
}

/**
 * Log-y bars, one per item, drawn as one path per colour so a thousand layers cost a handful
 * of elements; hovering shows the bar under the pointer.
 */
export function barChart(spec: BarChartSpec, sink?: ChartExportSink): HTMLElement {
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
    invert: (px: number) => x.invert(px) - 0.5,
    ticks: () => linearTicks(0, n - 1, Math.min(n - 1, 8)).filter((t) => Number.isInteger(t)),
  });
  const root = chartSvg(`${spec.title}: ${n} bars`);
  // a few bars are named; many are numbered by position
  const short = (t: string): string => (t.length > 14 ? `${t.slice(0, 13)}…` : t);
  root.append(axes(xTicks, y, spec.xLabel, spec.yLabel, (v) => (n <= 8 ? short(spec.bars[v]?.label ?? String(v)) : String(v))));

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
  if (sink !== undefined) {
    const tools = html('div', 'chart-tools');
    tools.setAttribute('role', 'toolbar');
    tools.setAttribute('aria-label', `${spec.title}: chart tools`);
    tools.append(
      ...exportTools(sink, {
        stem: () => fileStem(spec.title),
        csvTitle: 'Save every bar of this chart as CSV…',
        csv: () => barsCsv(spec),
        svg: () => standaloneSvg(root, spec.title, fig.querySelector('ul.legend')),
      }),
    );
    fig.querySelector('figcaption')?.after(tools);
  }
  return fig;
}

/** One row per bar, in drawing order: its label, its value in full, then its fields. */
export function barsCsv(spec: Pick<BarChartSpec, 'bars' | 'csv'>): string {
  const fields = spec.csv.fields ?? [];
  const lines = [[spec.csv.label, spec.csv.value, ...fields].map(csvField).join(',')];
  for (const b of spec.bars) lines.push([csvField(b.label), String(b.value), ...fields.map((f) => csvField(String(b.fields?.[f] ?? '')))].join(','));
  return `${lines.join('\n')}\n`;
}
