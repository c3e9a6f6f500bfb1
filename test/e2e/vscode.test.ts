/**
 * End to end in a real VS Code (code-server 4.100 = VS Code 1.100) driven by headless Chromium:
 * the packaged .vsix is installed, the bundled example opened, and a user's path walked —
 * command palette → plan editor → multiplier edit saved to disk with comments intact; a freeze
 * checkbox in the sidebar tree; Train with status-bar progress and results written back (decoded
 * with the Rust image decoder the package ships).
 * Screenshots go to test-results/ as artifacts.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse } from 'jsonc-parser';
import type { RunReport } from '../../src/core/progress.ts';
import { comments, openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  // enough epochs that progress is visible in the status bar for a while
  s = await openSession('trusted', { trusted: true, epochs: 40 });
});

after(async () => {
  await s?.close();
});

test('command palette → Open Plan Editor; a multiplier edit reaches the file on disk on Save, comments intact', { timeout: 180_000 }, async () => {
  const before = s.plan();
  await s.palette('Layerwise: Open Plan Editor');
  const frame = await s.panelFrame();
  const field = frame.locator('[aria-label="LR multiplier of group block2"]');
  await field.waitFor({ timeout: 60_000 });
  await field.click();
  await field.press('Control+A');
  await field.pressSequentially('0.2');
  await field.press('Enter');
  // the plan editor's edits are unsaved like typing (test/e2e/editor.test.ts checks undo and the dirty tab)
  await until('the tab shows unsaved changes', async () => (await s.page.locator('.tabs-container .tab.dirty').count()) > 0 || undefined);
  await s.page.keyboard.press('Control+S');
  const after = await until('block2 lrMult 0.2 on disk', () => {
    const text = s.plan();
    const line = text.split('\n').find((l) => l.includes('"block2_*"'));
    return line !== undefined && /"lrMult":\s*0\.2\b/.test(line) ? text : undefined;
  });
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  await s.page.screenshot({ path: join(shots, 'e2e-panel.png') });
});

test('a freeze checkbox in the sidebar tree writes "frozen" into the plan', { timeout: 120_000 }, async () => {
  await s.page.locator('.activitybar a[aria-label^="Layerwise"]').click();
  const row = s.page.locator('.monaco-list-row[aria-label^="block1"]').first();
  await row.waitFor({ timeout: 60_000 });
  const before = s.plan();
  await row.locator('.custom-view-tree-node-item-checkbox, .monaco-checkbox, input[type=checkbox]').first().click();
  const after = await until('block1 frozen on disk', () => {
    const text = s.plan();
    const line = text.split('\n').find((l) => l.includes('"block1_*"'));
    return line !== undefined && /"frozen":\s*true/.test(line) ? text : undefined;
  });
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  await s.page.screenshot({ path: join(shots, 'e2e-tree.png') });
});

test('Layerwise: Train shows progress in the status bar and writes results into the plan', { timeout: 300_000 }, async () => {
  const before = s.plan();
  assert.ok(!before.includes('"results"'));
  await s.palette('Layerwise: Train');
  const running = await until('status-bar progress', async () => {
    const t = await s.statusText();
    return /stage \d+\/\d+ · epoch \d+\/\d+ · \d+%/.test(t) ? t : undefined;
  }, 120_000);
  assert.match(running, /Layerwise/);
  await s.page.screenshot({ path: join(shots, 'e2e-statusbar.png') });
  const after = await until('results.lastRun in the plan on disk', () => (/"lastRun"/.test(s.plan()) ? s.plan() : undefined), 240_000);
  const final = await until('the outcome in the status bar', async () => {
    const t = await s.statusText();
    return /trained|failed|stopped/.test(t) ? t : undefined;
  });
  assert.match(final, /trained/);
  for (const c of comments(before)) assert.ok(after.includes(c), `comment kept: ${c}`);
  assert.match(after, /"stopped":\s*"completed"/);
  // the installed extension's run decoded the example's PNGs with the Rust decoder the .vsix ships
  const { folder } = (parse(after) as { results: { lastRun: { folder: string } } }).results.lastRun;
  const report = JSON.parse(readFileSync(resolve(s.workspace, folder, 'report.json'), 'utf8')) as RunReport;
  if (process.platform === 'linux' && process.arch === 'x64') assert.equal(report.data?.decoder, 'image-rs');
  await s.panelFrame();
  await s.page.screenshot({ path: join(shots, 'e2e-panel-curves.png') });
});

test('Layerwise: Export Plan… opens the plan as PyTorch code in an unsaved editor', { timeout: 120_000 }, async () => {
  const before = s.plan();
  await s.palette('Layerwise: Export Plan');
  const pick = s.page.locator('.quick-input-list .monaco-list-row', { hasText: 'pytorch' }).first();
  await pick.waitFor({ timeout: 60_000 });
  await pick.click();
  const text = await until('the exported code in an editor', async () => {
    const t = (await s.page.locator('.monaco-editor .view-lines').allTextContents()).join('\n');
    return /exported for plain PyTorch/.test(t.replace(/\u00a0/g, ' ')) ? t : undefined;
  });
  assert.match(text.replace(/\u00a0/g, ' '), /Groups, bottom -> top/);
  assert.equal(s.plan(), before);
  await s.page.screenshot({ path: join(shots, 'e2e-export.png') });
});
