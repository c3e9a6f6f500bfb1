/**
 * A chart as a file of its own, for the line and bar charts alike: the drawing with its computed
 * colours written onto each element (the theme's classes do not travel), the title above and the
 * legend below, on the theme's background — as SVG text or as PNG bytes; and the toolbar buttons
 * that post CSV, SVG and PNG to the host (which asks where to save them).
 */
import type { ChartExport, ChartExportFormat } from '../src/protocol/webview.ts';
import { H, M, svg, W } from './charts.ts';
import { el } from './dom.ts';

/** Where a chart's exports go (the panel posts them to the host). */
export type ChartExportSink = (file: ChartExport) => void;

const STYLE_PROPS = ['stroke', 'stroke-width', 'stroke-dasharray', 'stroke-linecap', 'stroke-linejoin', 'fill', 'fill-opacity', 'opacity', 'font-family', 'font-size', 'font-weight'];

export interface ChartFile {
  text: string;
  width: number;
  height: number;
}

/** `Loss per epoch` → `loss-per-epoch`. */
export function fileStem(title: string): string {
  return (
    title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'chart'
  );
}

/**
 * `root` (a W×H chart) as a standalone SVG file under `title`, with the entries of `legend` (the
 * chart's legend list: a swatch and a label per item) below it when there are two or more.
 */
export function standaloneSvg(root: SVGSVGElement, title: string, legend: HTMLElement | null): ChartFile {
  const clone = root.cloneNode(true) as SVGSVGElement;
  const from = root.querySelectorAll('*');
  const to = clone.querySelectorAll('*');
  from.forEach((src, i) => {
    const dst = to[i];
    if (!(dst instanceof SVGElement)) return;
    const cs = getComputedStyle(src);
    for (const prop of STYLE_PROPS) dst.style.setProperty(prop, cs.getPropertyValue(prop));
  });
  for (const e of clone.querySelectorAll('.cursor, .zoom-selection, .hover, title')) e.remove();
  const entries = legend === null ? [] : [...legend.querySelectorAll('li')].map((li) => ({ swatch: li.querySelector('.swatch'), label: li.textContent ?? '' }));
  const top = 24;
  const legendRow = 16;
  const height = top + H + (entries.length > 1 ? legendRow : 0) + 4;
  const page = getComputedStyle(document.body);
  const out = svg('svg', { xmlns: 'http://www.w3.org/2000/svg', viewBox: `0 0 ${W} ${height}`, width: W, height });
  const bg = svg('rect', { width: W, height });
  bg.style.setProperty('fill', page.backgroundColor);
  const heading = svg('text', { x: M.left, y: 16 }, title);
  heading.style.setProperty('fill', page.color);
  heading.style.setProperty('font', `600 13px ${page.fontFamily}`);
  const chart = svg('g', { transform: `translate(0 ${top})` });
  clone.removeAttribute('tabindex');
  chart.append(...Array.from(clone.childNodes));
  out.append(bg, heading, chart);
  if (entries.length > 1) {
    let lx = M.left;
    for (const { swatch, label } of entries) {
      const colour = swatch === null ? page.color : getComputedStyle(swatch).color;
      const sw = svg('rect', { x: lx, y: top + H + 4, width: 14, height: 3 });
      sw.style.setProperty('fill', colour);
      const t = svg('text', { x: lx + 19, y: top + H + 9 }, label);
      t.style.setProperty('fill', page.color);
      t.style.setProperty('font', `11px ${page.fontFamily}`);
      out.append(sw, t);
      lx += 19 + 7 * label.length + 16;
    }
  }
  return { text: `<?xml version="1.0" encoding="UTF-8"?>\n${new XMLSerializer().serializeToString(out)}\n`, width: W, height };
}

/** A standalone SVG drawn at twice its size into a canvas, as PNG bytes in base64. */
export async function pngOf({ text, width, height }: ChartFile): Promise<string> {
  const img = new Image();
  const loaded = new Promise<void>((resolve, reject) => {
    img.onload = () => resolve();
    img.onerror = () => reject(new Error('the chart could not be drawn as an image'));
  });
  img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  await loaded;
  const canvas = document.createElement('canvas');
  canvas.width = width * 2;
  canvas.height = height * 2;
  const ctx = canvas.getContext('2d');
  if (ctx === null) throw new Error('no 2D canvas');
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  return canvas.toDataURL('image/png').replace(/^data:image\/png;base64,/, '');
}

/** A chart toolbar button. */
export function tool(label: string, title: string, onClick: () => void): HTMLButtonElement {
  const b = el('button', 'chart-tool', label);
  b.type = 'button';
  b.title = title;
  b.addEventListener('click', onClick);
  return b;
}

/** The CSV, SVG and PNG buttons of a chart: each posts `<stem>.<format>` to `sink`. */
export function exportTools(sink: ChartExportSink, what: { stem(): string; csvTitle: string; csv(): string; svg(): ChartFile }): HTMLButtonElement[] {
  const post = async (format: ChartExportFormat): Promise<void> => {
    const fileName = `${what.stem()}.${format}`;
    switch (format) {
      case 'csv':
        sink({ fileName, format, content: what.csv() });
        return;
      case 'svg':
        sink({ fileName, format, content: what.svg().text });
        return;
      case 'png':
        sink({ fileName, format, content: await pngOf(what.svg()) });
        return;
    }
  };
  return (['csv', 'svg', 'png'] as const).map((format) => {
    const b = tool(format.toUpperCase(), format === 'csv' ? what.csvTitle : `Save this chart as ${format.toUpperCase()}…`, () => void post(format));
    b.dataset['tool'] = format;
    return b;
  });
}
