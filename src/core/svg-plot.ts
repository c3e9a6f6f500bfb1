/**
 * A small, dependency-free SVG line chart with a log-scale x axis: the LR range test's curve
 * file. Pure string building so it runs in the CLI, the worker and tests alike.
 */
export interface Series {
  label: string;
  x: number[];
  y: number[];
  color: string;
}

export interface Marker {
  x: number;
  label: string;
  color: string;
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  logX?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceNumber(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-2 ? v.toExponential(0) : Number(v.toPrecision(3)).toString();
}

export function linePlotSvg(series: Series[], markers: Marker[], opts: PlotOptions): string {
  const width = opts.width ?? 640;
  const height = opts.height ?? 400;
  const m = { left: 64, right: 20, top: 36, bottom: 48 };
  const fx = opts.logX === false ? (x: number) => x : (x: number) => Math.log10(x);
  const xs = series.flatMap((s) => s.x.filter((x) => x > 0 || opts.logX === false).map(fx));
  const ys = series.flatMap((s) => s.y.filter(Number.isFinite));
  const xMin = Math.min(...xs);
  const xMax = Math.max(...xs);
  // clip the y range to the interesting part: losses explode at the end of a sweep
  const sortedY = [...ys].sort((a, b) => a - b);
  const yMin = sortedY[0] ?? 0;
  const yHi = sortedY[Math.floor(sortedY.length * 0.95)] ?? 1;
  const yMax = Math.max(yHi, (sortedY[0] ?? 0) * 1.5, yMin + 1e-9);
  const px = (x: number) => m.left + ((fx(x) - xMin) / Math.max(xMax - xMin, 1e-12)) * (width - m.left - m.right);
  const py = (y: number) => {
    const c = Math.min(Math.max(y, yMin), yMax);
    return height - m.bottom - ((c - yMin) / Math.max(yMax - yMin, 1e-12)) * (height - m.top - m.bottom);
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="100%" height="100%" fill="white"/>`);
  out.push(`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`);
  // axes and ticks
  out.push(`<line x1="${m.left}" y1="${height - m.bottom}" x2="${width - m.right}" y2="${height - m.bottom}" stroke="#333"/>`);
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${height - m.bottom}" stroke="#333"/>`);
  if (opts.logX !== false && Number.isFinite(xMin) && Number.isFinite(xMax)) {
    for (let d = Math.ceil(xMin); d <= Math.floor(xMax); d++) {
      const x = px(Math.pow(10, d));
      out.push(`<line x1="${x}" y1="${height - m.bottom}" x2="${x}" y2="${height - m.bottom + 5}" stroke="#333"/>`);
      out.push(`<text x="${x}" y="${height - m.bottom + 18}" text-anchor="middle">1e${d}</text>`);
    }
  }
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    const y = py(v);
    out.push(`<line x1="${m.left - 5}" y1="${y}" x2="${m.left}" y2="${y}" stroke="#333"/>`);
    out.push(`<text x="${m.left - 8}" y="${y + 4}" text-anchor="end">${niceNumber(v)}</text>`);
  }
  out.push(`<text x="${width / 2}" y="${height - 10}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(`<text transform="translate(16 ${height / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`);
  for (const s of series) {
    const pts = s.x
      .map((x, i) => [x, s.y[i] ?? NaN] as const)
      .filter(([x, y]) => Number.isFinite(y) && (x > 0 || opts.logX === false))
      .map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    out.push(`<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.join(' ')}"><title>${esc(s.label)}</title></polyline>`);
  }
  markers.forEach((mk, i) => {
    const x = px(mk.x);
    out.push(`<line x1="${x}" y1="${m.top}" x2="${x}" y2="${height - m.bottom}" stroke="${mk.color}" stroke-dasharray="4 3"/>`);
    out.push(`<text x="${x + 4}" y="${m.top + 14 + i * 14}" fill="${mk.color}">${esc(mk.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
