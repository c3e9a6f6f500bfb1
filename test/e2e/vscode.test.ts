/**
 * End to end in a real VS Code (code-server 4.100 = VS Code 1.100) driven by headless Chromium:
 * the packaged .vsix is installed, the bundled example opened, and a user's path walked —
 * command palette → plan editor → multiplier edit on disk with comments intact; a freeze
 * checkbox in the sidebar tree; Train with status-bar progress and results written back.
 * Screenshots go to test-results/ as artifacts.
 *
 * Needs: code-server (../shared/tools/code-server-setup.sh installs it; this test runs it),
 * Chromium at /usr/bin/chromium, and the bundles built (`npm test` builds first).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium, type Browser, type Frame, type Page } from 'playwright-core';

const repo = resolve(import.meta.dirname, '..', '..');
// outside the repository, so VS Code's git extension does not offer to open the parent repo
const work = join(tmpdir(), 'layerwise-e2e');
const shots = join(repo, 'test-results');
const ws = join(work, 'workspace');
const planFile = join(ws, 'layerwise.json');

let server: ChildProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let serverLog = '';

/** Polls a condition (no fixed sleeps); fails with `what` and the last value seen. */
async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, ms = 60_000): Promise<T> {
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

function codeServerEntry(): string {
  const script = resolve(repo, '..', 'shared', 'tools', 'code-server-setup.sh');
  assert.ok(existsSync(script), `${script} exists (the shared tools folder sits next to the repo)`);
  return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 20 * 60_000 }).trim().split('\n').pop() as string;
}

const plan = (): string => readFileSync(planFile, 'utf8');
const comments = (text: string): string[] => text.match(/\/\/[^\n]*/g) ?? [];

/** Runs a command from the palette; retries while the extension is still activating (its `when` clauses hide commands until then). */
async function palette(command: string): Promise<void> {
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
    await page.screenshot({ path: join(shots, 'e2e-palette-failure.png') });
    throw e;
  });
  await page.keyboard.press('Enter');
}

async function panelFrame(): Promise<Frame> {
  return until('the plan editor webview', async () => {
    for (const f of page.frames()) {
      if ((await f.locator('#app').count().catch(() => 0)) > 0) return f;
    }
    return undefined;
  });
}

async function statusText(): Promise<string> {
  const labels = await page.locator('.statusbar-item').evaluateAll((xs) => xs.map((x) => `${x.getAttribute('aria-label') ?? ''} ${x.textContent ?? ''}`));
  return labels.filter((t) => t.includes('Layerwise')).join(' | ');
}

before(async () => {
  const entry = codeServerEntry();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'user', 'User'), { recursive: true });
  mkdirSync(shots, { recursive: true });
  // the packaged extension, exactly what a user installs
  const vsix = join(work, 'layerwise.vsix');
  execFileSync(process.execPath, [join(repo, 'node_modules', '@vscode', 'vsce', 'vsce'), 'package', '--no-dependencies', '--out', vsix], { cwd: repo, stdio: 'pipe' });
  const ext = join(work, 'extensions');
  execFileSync(process.execPath, [entry, '--extensions-dir', ext, '--user-data-dir', join(work, 'user'), '--install-extension', vsix], { stdio: 'pipe' });
  writeFileSync(
    join(work, 'user', 'User', 'settings.json'),
    JSON.stringify({ 'security.workspace.trust.enabled': false, 'workbench.startupEditor': 'none', 'workbench.tips.enabled': false, 'extensions.ignoreRecommendations': true, 'git.openRepositoryInParentFolders': 'never' }),
  );
  // the bundled example, with enough epochs that progress is visible in the status bar
  cpSync(join(repo, 'examples', 'fashion'), ws, { recursive: true, filter: (src) => !src.includes(`${join('fashion', 'runs')}`) });
  writeFileSync(planFile, plan().replace(/"epochs": \d+/, '"epochs": 40'));
  const port = await freePort();
  server = spawn(process.execPath, [entry, '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`, '--user-data-dir', join(work, 'user'), '--extensions-dir', ext, '--disable-telemetry', '--disable-update-check', '--disable-workspace-trust', ws], { stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout?.on('data', (d: Buffer) => (serverLog += d.toString()));
  server.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()));
  await until('code-server to listen', () => serverLog.includes('HTTP server listening') || undefined, 120_000);
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await page.goto(`http://127.0.0.1:${port}/?folder=${encodeURIComponent(ws)}`);
  await page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });
  // the extension activates on workspaceContains:**/layerwise.json: its activity-bar entry appears
  await page.locator('.activitybar a[aria-label^="Layerwise"]').waitFor({ timeout: 120_000 });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

test('command palette → Open Plan Editor; a multiplier edit reaches the file on disk, comments intact', { timeout: 180_000 }, async () => {
  const before = plan();
  await palette('Layerwise: Open Plan Editor');
  const frame = await panelFrame();
  const field = frame.locator('[aria-label="LR multiplier of group block2"]');
  await field.waitFor({ timeout: 60_000 });
  await field.click();
  await field.press('Control+A');
  await field.pressSequentially('0.2');
  await field.press('Enter');
  const after = await until('block2 lrMult 0.2 on disk', () => {
    const text = plan();
    const line = text.split('\n').find((l) => l.includes('"block2_*"'));
    return line !== undefined && /"lrMult":\s*0\.2\b/.test(line) ? text : undefined;
  });
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  await page.screenshot({ path: join(shots, 'e2e-panel.png') });
});

test('a freeze checkbox in the sidebar tree writes "frozen" into the plan', { timeout: 120_000 }, async () => {
  await page.locator('.activitybar a[aria-label^="Layerwise"]').click();
  const row = page.locator('.monaco-list-row[aria-label^="block1"]').first();
  await row.waitFor({ timeout: 60_000 });
  const before = plan();
  await row.locator('.custom-view-tree-node-item-checkbox, .monaco-checkbox, input[type=checkbox]').first().click();
  const after = await until('block1 frozen on disk', () => {
    const text = plan();
    const line = text.split('\n').find((l) => l.includes('"block1_*"'));
    return line !== undefined && /"frozen":\s*true/.test(line) ? text : undefined;
  });
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  await page.screenshot({ path: join(shots, 'e2e-tree.png') });
});

test('Layerwise: Train shows progress in the status bar and writes results into the plan', { timeout: 300_000 }, async () => {
  const before = plan();
  assert.ok(!before.includes('"results"'));
  await palette('Layerwise: Train');
  const running = await until('status-bar progress', async () => {
    const s = await statusText();
    return /stage \d+\/\d+ · epoch \d+\/\d+ · \d+%/.test(s) ? s : undefined;
  }, 120_000);
  assert.match(running, /Layerwise/);
  await page.screenshot({ path: join(shots, 'e2e-statusbar.png') });
  const after = await until('results.lastRun in the plan on disk', () => (/"lastRun"/.test(plan()) ? plan() : undefined), 240_000);
  const final = await until('the outcome in the status bar', async () => {
    const s = await statusText();
    return /trained|failed|stopped/.test(s) ? s : undefined;
  });
  assert.match(final, /trained/);
  // block1 was frozen above: the run must say so and the plan kept its comments
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  assert.match(after, /"stopped":\s*"completed"/);
  const frame = await panelFrame().catch(() => undefined);
  if (frame) await page.screenshot({ path: join(shots, 'e2e-panel-curves.png') });
  await page.screenshot({ path: join(shots, 'e2e-after-train.png') });
});
