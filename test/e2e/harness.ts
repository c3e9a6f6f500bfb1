/**
 * A real VS Code for end-to-end tests: code-server (installed offline by
 * ../shared/tools/code-server-setup.sh), the packaged .vsix installed into it, a copy of the
 * bundled example as the workspace, and headless Chromium driving the workbench.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { applyEdits, modify } from 'jsonc-parser';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';

export const repo = resolve(import.meta.dirname, '..', '..');
export const shots = join(repo, 'test-results');

/** Polls a condition (no fixed sleeps); fails with `what` and the last value seen. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, ms = 60_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? res(a.port) : rej(new Error('no port'))));
    });
  });
}

let entryCache: string | undefined;
function codeServerEntry(): string {
  if (entryCache) return entryCache;
  // the same script scripts/test-setup.sh runs before the tests
  const script = resolve(repo, process.env.LAYERWISE_CODE_SERVER_SETUP ?? join('..', 'shared', 'tools', 'code-server-setup.sh'));
  assert.ok(existsSync(script), `${script} exists (the shared tools folder sits next to the repo, or LAYERWISE_CODE_SERVER_SETUP names it)`);
  entryCache = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 }).trim().split('\n').pop() as string;
  return entryCache;
}

let vsixCache: string | undefined;
/** The packaged extension, exactly what a user installs (built once per test process). */
function packageVsix(dir: string): string {
  if (vsixCache) return vsixCache;
  const vsix = join(dir, 'layerwise.vsix');
  // the same command a user runs to make the .vsix (production bundles, no node_modules)
  execFileSync('npm', ['run', '--silent', 'package', '--', '--out', vsix], { cwd: repo, stdio: 'pipe' });
  vsixCache = vsix;
  return vsix;
}

export interface Session {
  page: Page;
  workspace: string;
  planFile: string;
  plan(): string;
  palette(command: string): Promise<void>;
  panelFrame(): Promise<Frame>;
  statusText(): Promise<string>;
  notifications(): Promise<string[]>;
  close(): Promise<void>;
}

export async function openSession(name: string, opts: { trusted: boolean; epochs: number }): Promise<Session> {
  const entry = codeServerEntry();
  // outside the repository, so VS Code's git extension does not offer to open the parent repo
  const work = join(tmpdir(), `layerwise-e2e-${name}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'user', 'User'), { recursive: true });
  mkdirSync(shots, { recursive: true });
  const vsix = packageVsix(join(tmpdir()));
  const ext = join(work, 'extensions');
  execFileSync(process.execPath, [entry, '--extensions-dir', ext, '--user-data-dir', join(work, 'user'), '--install-extension', vsix], { stdio: 'pipe' });
  writeFileSync(
    join(work, 'user', 'User', 'settings.json'),
    JSON.stringify({
      'security.workspace.trust.enabled': opts.trusted ? false : true,
      'security.workspace.trust.startupPrompt': 'never',
      'security.workspace.trust.untrustedFiles': 'open',
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'extensions.ignoreRecommendations': true,
      'git.openRepositoryInParentFolders': 'never',
    }),
  );
  const workspace = join(work, 'workspace');
  cpSync(join(repo, 'examples', 'fashion'), workspace, { recursive: true, filter: (src) => !src.includes(join('fashion', 'runs')) });
  const planFile = join(workspace, 'layerwise.json');
  const plan = (): string => readFileSync(planFile, 'utf8');
  // the example as a newcomer gets it: without the results a demo run may have written into it
  const fresh = applyEdits(plan(), modify(plan(), ['results'], undefined, {}));
  writeFileSync(planFile, fresh.replace(/"epochs": \d+/, `"epochs": ${opts.epochs}`));

  const port = await freePort();
  let log = '';
  const args = ['--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--user-data-dir', join(work, 'user'), '--extensions-dir', ext, '--disable-telemetry', '--disable-update-check'];
  if (opts.trusted) args.push('--disable-workspace-trust');
  const server: ChildProcess = spawn(process.execPath, [entry, ...args, workspace], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  server.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  await until('code-server to listen', () => log.includes('HTTP server listening') || undefined, 120_000);
  const browser: Browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });
  // the extension activates on workspaceContains:**/layerwise.json: its activity-bar entry appears
  await page.locator('.activitybar a[aria-label^="Layerwise"]').waitFor({ timeout: 120_000 });

  /** Runs a command from the palette; retries while the extension is still activating (its `when` clauses hide commands until then). */
  const palette = async (command: string): Promise<void> => {
    const input = page.locator('.quick-input-widget input');
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: command }).first();
    await until(`"${command}" in the command palette`, async () => {
      await page.keyboard.press('F1');
      await input.waitFor({ state: 'visible' });
      await input.fill(`>${command}`);
      try {
        await row.waitFor({ timeout: 3_000 });
        return true;
      } catch {
        await page.keyboard.press('Escape');
        return undefined;
      }
    }, 90_000).catch(async (e: unknown) => {
      await page.screenshot({ path: join(shots, `e2e-${name}-palette-failure.png`) });
      throw e;
    });
    await page.keyboard.press('Enter');
  };

  const panelFrame = (): Promise<Frame> =>
    until('the plan editor webview', async () => {
      for (const f of page.frames()) {
        if ((await f.locator('#app').count().catch(() => 0)) > 0) return f;
      }
      return undefined;
    });

  const statusText = async (): Promise<string> => {
    const labels = await page.locator('.statusbar-item').evaluateAll((xs) => xs.map((x) => `${x.getAttribute('aria-label') ?? ''} ${x.textContent ?? ''}`));
    return labels.filter((t) => t.includes('Layerwise')).join(' | ');
  };

  const notifications = (): Promise<string[]> =>
    page.locator('.notification-toast .notification-list-item-message').evaluateAll((xs) => xs.map((x) => x.textContent ?? ''));

  return {
    page,
    workspace,
    planFile,
    plan,
    palette,
    panelFrame,
    statusText,
    notifications,
    close: async () => {
      await browser.close();
      server.kill();
    },
  };
}

export const comments = (text: string): string[] => text.match(/\/\/[^\n]*/g) ?? [];
