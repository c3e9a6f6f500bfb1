/**
 * Restricted Mode in a real VS Code: with workspace trust on and the folder not trusted, the
 * layer tree still works, but Train is refused with a message and nothing is written.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  s = await openSession('restricted', { trusted: false, epochs: 2 });
});

after(async () => {
  await s?.close();
});

test('untrusted workspace: the tree is browsable, Train is refused, the plan and workspace untouched', { timeout: 240_000 }, async () => {
  await until('Restricted Mode indicator', async () => ((await s.page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).count()) > 0 ? true : undefined), 60_000);
  await s.page.locator('.activitybar a[aria-label^="Layerwise"]').click();
  await s.page.locator('.monaco-list-row[aria-label^="block1"]').first().waitFor({ timeout: 60_000 });
  const before = s.plan();
  await s.palette('Layerwise: Train');
  const message = await until('the refusal', async () => (await s.notifications()).find((n) => /Restricted Mode/.test(n)), 60_000);
  assert.match(message, /Training is disabled in Restricted Mode/);
  await s.page.screenshot({ path: join(shots, 'e2e-restricted.png') });
  assert.equal(s.plan(), before);
  assert.equal(existsSync(join(s.workspace, 'runs')), false);
  assert.doesNotMatch(await s.statusText(), /stage \d+\/\d+ · epoch/);
});
