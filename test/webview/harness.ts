/**
 * Loads the real webview bundle in headless Chromium, in the page the host serves (same CSP),
 * with a fake `acquireVsCodeApi` that records what the panel posts and stores its UI state.
 * Host messages are dispatched with `window.postMessage`, as VS Code delivers them.
 */
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { panelHtml } from '../../webview/page.ts';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const resultsDir = join(repoRoot, 'test-results');

let bundle: Promise<string> | undefined;

/** The webview bundle, built as scripts/build.mjs builds it (browser IIFE), kept in memory. */
export function webviewBundle(): Promise<string> {
  bundle ??= esbuild
    .build({
      absWorkingDir: repoRoot,
      entryPoints: ['webview/main.ts'],
      bundle: true,
      platform: 'browser',
      format: 'iife',
      target: 'es2022',
      write: false,
      sourcemap: false,
      minify: true,
      logLevel: 'silent',
      plugins: [
        {
          name: 'webview-room',
          setup(build) {
            build.onResolve({ filter: /^(vscode$|node:|@tensorflow\/)/ }, (args) => ({
              errors: [{ text: `the webview bundle must not import "${args.path}" (from ${args.importer})` }],
            }));
          },
        },
      ],
    })
    .then((r) => {
      const out = r.outputFiles[0];
      if (!out) throw new Error('esbuild produced no webview bundle');
      return out.text;
    });
  return bundle;
}

const fakeHost = (persisted: unknown): string => `(() => {
  window.__posted = [];
  window.__violations = [];
  window.__uiState = ${JSON.stringify(persisted ?? null)} ?? undefined;
  document.addEventListener('securitypolicyviolation', (e) => {
    window.__violations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
  });
  let acquired = false;
  window.acquireVsCodeApi = () => {
    if (acquired) throw new Error('acquireVsCodeApi may be called only once');
    acquired = true;
    // structured clone, as VS Code's postMessage does: what cannot be cloned fails here too
    const clone = (m) => structuredClone(m);
    return {
      postMessage: (m) => { window.__posted.push(clone(m)); },
      getState: () => window.__uiState,
      setState: (s) => { window.__uiState = clone(s); },
    };
  };
})();`;

export const NONCE = 'dGVzdC1ub25jZS0xMjM0NTY3OA';

export interface PanelPage {
  page: Page;
  /** Console errors and uncaught exceptions of the page. */
  errors: string[];
  posted(): Promise<unknown[]>;
  send(message: unknown): Promise<void>;
  violations(): Promise<string[]>;
  uiState(): Promise<unknown>;
  close(): Promise<void>;
}

export interface Harness {
  browser: Browser;
  origin: string;
  open(opts?: { persisted?: unknown; width?: number; height?: number }): Promise<PanelPage>;
  close(): Promise<void>;
}

/** The harness of one test file: started (and the results folder made) before its tests, closed after. */
export function useHarness(): Pick<Harness, 'open'> {
  let harness: Harness | undefined;
  before(async () => {
    harness = await startHarness();
    mkdirSync(resultsDir, { recursive: true });
  });
  after(async () => {
    await harness?.close();
  });
  return {
    open: (opts) => {
      if (harness === undefined) throw new Error('the webview harness is not started: open pages inside tests');
      return harness.open(opts);
    },
  };
}

export type Posted = Array<{ type: string; [k: string]: unknown }>;

/** Waits until the page has posted `n` messages to the host; returns them all. */
export async function waitForPosts(p: PanelPage, n: number): Promise<Posted> {
  await p.page.waitForFunction((count) => (window as unknown as { __posted: unknown[] }).__posted.length >= count, n);
  return (await p.posted()) as Posted;
}

export async function startHarness(): Promise<Harness> {
  const js = await webviewBundle();
  const css = readFileSync(join(repoRoot, 'media', 'webview.css'), 'utf8');
  const theme = readFileSync(join(repoRoot, 'test', 'webview', 'vscode-dark.css'), 'utf8');
  const pages = new Map<string, string>();
  let origin = '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const send = (type: string, body: string): void => {
      res.writeHead(200, { 'content-type': `${type}; charset=utf-8`, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/webview.js') return send('text/javascript', js);
    if (url.pathname === '/webview.css') return send('text/css', css);
    if (url.pathname === '/vscode-dark.css') return send('text/css', theme);
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    const html = pages.get(url.pathname);
    if (html !== undefined) return send('text/html', html);
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('test server has no port');
  origin = `http://127.0.0.1:${address.port}`;

  const browser = await chromium.launch({
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });

  let n = 0;
  return {
    browser,
    origin,
    async open(opts = {}) {
      const path = `/panel-${++n}.html`;
      pages.set(
        path,
        panelHtml({
          cspSource: origin,
          nonce: NONCE,
          scriptUri: `${origin}/webview.js`,
          styleUri: `${origin}/webview.css`,
          extraStyleUris: [`${origin}/vscode-dark.css`],
          inlineScripts: [fakeHost(opts.persisted)],
        }),
      );
      const page = await browser.newPage({ viewport: { width: opts.width ?? 1280, height: opts.height ?? 900 } });
      const errors: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`${origin}${path}`);
      return {
        page,
        errors,
        posted: () => page.evaluate(() => (window as unknown as { __posted: unknown[] }).__posted),
        send: (message) =>
          page.evaluate((m) => {
            window.postMessage(m, '*');
          }, message),
        violations: () => page.evaluate(() => (window as unknown as { __violations: string[] }).__violations),
        uiState: () => page.evaluate(() => (window as unknown as { __uiState: unknown }).__uiState),
        close: () => page.close(),
      };
    },
    async close() {
      await browser.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
