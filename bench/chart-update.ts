/**
 * What a live loss curve costs per training step, before and after the charts were kept and
 * updated in place: a 20,000-step series in headless Chromium (the panel's page, CSS and CSP),
 * then one step appended at a time. "Before" is the old drawing path (bench/legacy-charts.ts,
 * a new SVG with every point per update); "after" is webview/line-chart.ts. Both run in the
 * same browser, taking turns, and the ratios are printed.
 *
 *   node --import tsx bench/chart-update.ts [points=20000] [appends=200] [rounds=3]
 *
 * "chart code" is the chart's own work (building the SVG, or updating it); "sync" adds moving it
 * into the page and style and layout (forced); "paint" runs to after the next frame,
 * with Chromium's frame-rate limit off so it measures the work and not the wait for vsync.
 */
import * as esbuild from 'esbuild';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { panelHtml } from '../webview/page.ts';
import { repoRoot } from '../test/webview/harness.ts';
import type { CaseResult } from './chart-update-page.ts';

const NONCE = 'YmVuY2gtY2hhcnQtdXBkYXRl';

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

async function main(): Promise<void> {
  const [points = 20000, appends = 200, rounds = 3] = process.argv.slice(2).map(Number);
  const js = (
    await esbuild.build({ absWorkingDir: repoRoot, entryPoints: ['bench/chart-update-page.ts'], bundle: true, platform: 'browser', format: 'iife', target: 'es2022', write: false, minify: true, logLevel: 'silent' })
  ).outputFiles[0]?.text;
  if (js === undefined) throw new Error('esbuild produced no bench bundle');
  const css = readFileSync(join(repoRoot, 'media', 'webview.css'), 'utf8');
  const theme = readFileSync(join(repoRoot, 'test', 'webview', 'vscode-dark.css'), 'utf8');
  let origin = '';
  const server = createServer((req, res) => {
    const body: Record<string, [string, string]> = {
      '/bench.js': ['text/javascript', js],
      '/webview.css': ['text/css', css],
      '/theme.css': ['text/css', theme],
      '/': ['text/html', panelHtml({ cspSource: origin, nonce: NONCE, scriptUri: `${origin}/bench.js`, styleUri: `${origin}/webview.css`, extraStyleUris: [`${origin}/theme.css`] })],
    };
    if (req.url === '/favicon.ico') return void res.writeHead(204).end();
    const hit = body[req.url ?? ''];
    if (hit === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': `${hit[0]}; charset=utf-8` }).end(hit[1]);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  origin = `http://127.0.0.1:${address.port}`;
  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-frame-rate-limit', '--disable-gpu-vsync', '--no-first-run', '--disable-background-networking'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${origin}/`);
    await page.waitForFunction(() => 'chartBench' in window);
    const results: Record<'before' | 'after', CaseResult[]> = { before: [], after: [] };
    // taking turns, so a slower moment of the shared machine falls on both
    for (let r = 0; r < rounds; r++) {
      for (const kind of ['before', 'after'] as const) {
        results[kind].push(await page.evaluate(([k, n, a]) => window.chartBench.run(k, n, a), [kind, points, appends] as const));
      }
    }
    if (errors.length > 0) throw new Error(`page errors: ${errors.join('; ')}`);
    const stats = (kind: 'before' | 'after') => {
      const rs = results[kind];
      const chart = rs.flatMap((r) => r.appendChart);
      const sync = rs.flatMap((r) => r.appendSync);
      const paint = rs.flatMap((r) => r.appendPaint);
      return {
        chartMean: mean(chart),
        chartP95: quantile(chart, 0.95),
        syncMean: mean(sync),
        syncP95: quantile(sync, 0.95),
        syncMax: Math.max(...sync),
        paintMean: mean(paint),
        paintP95: quantile(paint, 0.95),
        paintMax: Math.max(...paint),
        firstSync: mean(rs.map((r) => r.firstSync)),
        firstPaint: mean(rs.map((r) => r.firstPaint)),
        vertices: rs[rs.length - 1]?.vertices ?? 0,
        pathChars: rs[rs.length - 1]?.pathChars ?? 0,
      };
    };
    const before = stats('before');
    const after = stats('after');
    const f = (v: number): string => v.toFixed(2).padStart(8);
    console.log(`chart update: ${points}-step loss curve, then ${appends} steps appended one at a time; ${rounds} rounds each, taking turns (ms)`);
    console.log(`${''.padEnd(34)}${'before'.padStart(8)}${'after'.padStart(8)}   before/after`);
    const row = (label: string, b: number, a: number): void => console.log(`${label.padEnd(34)}${f(b)}${f(a)}   ×${(b / a).toFixed(1)}`);
    row('append 1 step: chart code mean', before.chartMean, after.chartMean);
    row('append 1 step: chart code p95', before.chartP95, after.chartP95);
    row('append 1 step: sync mean', before.syncMean, after.syncMean);
    row('append 1 step: sync p95', before.syncP95, after.syncP95);
    row('append 1 step: sync max', before.syncMax, after.syncMax);
    row('append 1 step: to painted mean', before.paintMean, after.paintMean);
    row('append 1 step: to painted p95', before.paintP95, after.paintP95);
    row('append 1 step: to painted max', before.paintMax, after.paintMax);
    row('full draw from nothing: sync', before.firstSync, after.firstSync);
    row('full draw from nothing: painted', before.firstPaint, after.firstPaint);
    console.log(`path drawn: before ${before.vertices} vertices (${before.pathChars} chars), after ${after.vertices} vertices (${after.pathChars} chars)`);
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
