/**
 * Onboarding in a real VS Code: the walkthrough's "Open Example" copies the bundled example into
 * a folder chosen in VS Code's own folder dialog, opens it, and Train works there.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  s = await openSession('onboarding', { trusted: true, epochs: 2 });
});

after(async () => {
  await s?.close();
});

test('the walkthrough\'s Open Example yields a workspace where Train works', { timeout: 420_000 }, async () => {
  try {
    await openExampleAndTrain();
  } catch (e) {
    await s.page.screenshot({ path: join(shots, 'e2e-onboarding-failure.png') });
    throw e;
  }
});

async function openExampleAndTrain(): Promise<void> {
  const parent = mkdtempSync(join(tmpdir(), 'layerwise-e2e-example-'));
  await s.palette('Welcome: Open Walkthrough...');
  await s.page.locator('.quick-input-list .monaco-list-row', { hasText: 'Fine-tune with a learning rate per module' }).first().click();
  const button = s.page.getByRole('button', { name: 'Open Example', exact: true }).first();
  await button.waitFor({ timeout: 60_000 });
  await s.page.screenshot({ path: join(shots, 'e2e-walkthrough.png') });
  await button.click();

  // VS Code's own folder dialog (a quick input in the browser): type the folder, accept
  const input = s.page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 30_000 });
  // the dialog fills in its default folder first; typing before that is overwritten
  await until('the folder dialog ready', async () => ((await input.inputValue()).length > 0 ? true : undefined), 30_000);
  await input.fill(parent + '/');
  await until('the dialog to take the typed folder', async () => ((await input.inputValue()) === parent + '/' ? true : undefined), 10_000);
  // an accept before the dialog has moved into the typed folder only moves it there (a loaded
  // machine lost the click that way): wait for the listing of the new, empty folder — just ".."
  const rows = s.page.locator('.quick-input-widget .quick-input-list .monaco-list-row');
  await until('the dialog to list the typed folder', async () => {
    // by aria-label: a reused row keeps the hidden description of an earlier quick pick
    const labels = await rows.evaluateAll((xs) => xs.map((x) => x.getAttribute('aria-label')));
    return labels.length === 1 && labels[0] === '..' ? true : undefined;
  }, 30_000);
  await s.page.locator('.quick-input-widget .monaco-button', { hasText: 'Copy the Example Here' }).click();
  const target = join(parent, 'layerwise-example');
  await until('the example copied', () => existsSync(join(target, 'layerwise.json')) || undefined, 60_000);
  // the notification comes once the copy is complete, run folders and results removed (the file
  // exists a moment before, with whatever results a demo run left in the bundled example)
  await s.page.locator('.notification-toast', { hasText: 'the example is in' }).first().waitFor({ timeout: 60_000 });
  const copied = readFileSync(join(target, 'layerwise.json'), 'utf8');
  assert.doesNotMatch(copied, /"results"/, 'the copy starts without results');
  assert.ok(existsSync(join(target, 'model', 'model.json')));

  await s.page.locator('.notification-toast .monaco-button', { hasText: /^Open$/ }).first().click();
  // the window reloads onto the new folder
  await until('the example folder open', async () => (s.page.url().includes(encodeURIComponent('layerwise-example')) || s.page.url().includes('layerwise-example') ? true : undefined), 60_000);
  await s.page.locator('.monaco-workbench').waitFor({ timeout: 120_000 });
  await s.page.locator('.activitybar a[aria-label^="Layerwise"]').waitFor({ timeout: 120_000 });
  await s.palette('Layerwise: Train');
  const planFile = join(target, 'layerwise.json');
  const after = await until('results.lastRun in the copied plan', () => {
    const text = readFileSync(planFile, 'utf8');
    return /"lastRun"/.test(text) ? text : undefined;
  }, 300_000);
  assert.match(after, /"stopped":\s*"completed"/);
  await s.page.screenshot({ path: join(shots, 'e2e-example-trained.png') });
}
