/**
 * "Layerwise: Suggest Multipliers" in a real VS Code (code-server): the suggestion appears in the
 * plan editor before anything changes; Apply is refused while the plan has unsaved edits (it would
 * clobber them), and once they are saved Apply writes the multipliers with the "// tuned by"
 * comment through the editor, every comment — the user's new one included — intact.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { comments, openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  // unsaved edits must stay unsaved: VS Code for the Web would save them after a second
  s = await openSession('tune', { trusted: true, epochs: 6, settings: { 'files.autoSave': 'off' } });
});

after(async () => {
  await s?.close();
});

test('Suggest Multipliers: shown first, refused over unsaved edits, applied with comments intact', { timeout: 600_000 }, async () => {
  const original = s.plan();
  await s.palette('Layerwise: Suggest Multipliers');
  const pick = s.page.locator('.quick-input-list .monaco-list-row', { hasText: 'Relative gradient norm' }).first();
  await pick.waitFor({ timeout: 60_000 });
  await pick.click();
  const frame = await s.panelFrame();
  await frame.locator('table.suggestion-table tr[data-group="block1"]').waitFor({ timeout: 300_000 });
  assert.match((await frame.locator('table.suggestion-table tr[data-group="block1"] td.mult').textContent()) ?? '', /^×0\.0569 → ×[\d.]+$/);
  assert.equal(s.plan(), original, 'nothing changes before Apply');
  await s.page.screenshot({ path: join(shots, 'e2e-suggestion.png') });

  // an unsaved edit in the plan's text editor, opened beside the panel
  await frame.locator('vscode-button', { hasText: 'Open plan file' }).click();
  const lines = s.page.locator('.editor-instance .monaco-editor .view-lines').last();
  await lines.waitFor({ timeout: 60_000 });
  await lines.click();
  await s.page.keyboard.press('Control+End');
  await s.page.keyboard.press('Enter');
  await s.page.keyboard.type('// pending note');
  await until('the plan marked unsaved', async () => (await s.page.locator('.tab.dirty').count()) > 0 || undefined).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-suggestion-dirty-failure.png') });
    throw e;
  });
  await frame.locator('section.suggestion vscode-button', { hasText: 'Apply' }).click();
  await until('the refusal', async () => (await s.notifications()).some((n) => n.includes('unsaved edits')) || undefined).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-suggestion-refusal-failure.png') });
    throw e;
  });
  await s.page.screenshot({ path: join(shots, 'e2e-suggestion-refused.png') });
  assert.doesNotMatch(s.plan(), /tuned by/, 'refused: no multiplier written');
  // the text tab and the plan editor's tab show the same document: both stay dirty
  assert.ok((await s.page.locator('.tab.dirty').count()) >= 1, 'the plan still holds its unsaved edit');
  await frame.locator('table.suggestion-table').waitFor();

  // saved: Apply goes through
  await lines.click();
  await s.page.keyboard.press('Control+S');
  const saved = await until('the note saved', () => (s.plan().includes('// pending note') ? s.plan() : undefined));
  await frame.locator('section.suggestion vscode-button', { hasText: 'Apply' }).click();
  const after = await until('multipliers on disk', () => (/\/\/ tuned by rgn on \d{4}-\d\d-\d\d/.test(s.plan()) ? s.plan() : undefined));
  for (const c of comments(saved)) assert.ok(after.includes(c), `comment kept: ${c}`);
  assert.match(after, /"name": "block1", "layers": \["block1_\*"\], "lrMult": [\d.]+ \}/);
  await frame.locator('section.suggestion').waitFor({ state: 'hidden' });
  await s.page.screenshot({ path: join(shots, 'e2e-suggestion-applied.png') });
});
