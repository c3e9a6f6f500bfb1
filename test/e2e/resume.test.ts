/**
 * A window reload during training, end to end in a real VS Code (code-server): the old extension
 * host goes away, its worker writes a checkpoint at the current batch; the new window offers
 * **Resume** in a notification; resuming finishes the run in the same folder and writes its
 * results into the plan.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSession, shots, until, type Session } from './harness.ts';

let s: Session;

before(async () => {
  s = await openSession('resume', { trusted: true, epochs: 40 });
});

after(async () => {
  await s?.close();
});

test('Developer: Reload Window mid-run → a Resume notification → the run finishes in its folder', { timeout: 600_000 }, async () => {
  const runs = join(s.workspace, 'runs');
  await s.palette('Layerwise: Train');
  await until('training progress in the status bar', async () => (/stage \d+\/\d+ · epoch \d+\/\d+ · \d+%/.test(await s.statusText()) ? true : undefined), 180_000).catch(async (e: unknown) => {
    await s.page.screenshot({ path: join(shots, 'e2e-resume-failure.png') });
    throw e;
  });
  await s.palette('Developer: Reload Window');
  // the old host's worker writes its stop checkpoint and exits; the new host finds it and asks
  const toast = s.page.locator('.notification-toast', { hasText: 'a training run of layerwise.json' });
  await toast.waitFor({ timeout: 180_000 });
  const folder = await until('the run folder with its checkpoint', () => {
    const f = existsSync(runs) ? readdirSync(runs).find((n) => existsSync(join(runs, n, 'checkpoint.json'))) : undefined;
    return f === undefined ? undefined : join(runs, f);
  });
  const checkpoint = JSON.parse(readFileSync(join(folder, 'checkpoint.json'), 'utf8')) as { reason: string; position: { globalStep: number } };
  assert.equal(checkpoint.reason, 'stopped', 'written when the window went away, at the current batch');
  assert.ok(checkpoint.position.globalStep > 0);
  assert.match((await s.notifications()).join('\n'), /a training run of layerwise\.json was (stopped|interrupted .*) at step \d+; its checkpoint is kept/);
  await s.page.screenshot({ path: join(shots, 'e2e-resume-offer.png') });
  await toast.locator('a.monaco-button', { hasText: 'Resume' }).click();
  const plan = await until('results.lastRun of the resumed run in the plan', () => {
    const text = s.plan();
    return /"stopped":\s*"completed"/.test(text) ? text : undefined;
  }, 420_000);
  assert.match(plan, new RegExp(`"folder":\\s*"runs/${folder.split('/').pop()}"`));
  const report = JSON.parse(readFileSync(join(folder, 'report.json'), 'utf8')) as { stopped: string; resumes: Array<{ step: number }>; epochs: unknown[] };
  assert.equal(report.stopped, 'completed');
  assert.equal(report.epochs.length, 40);
  assert.equal(report.resumes[0]?.step, checkpoint.position.globalStep);
  assert.ok(!existsSync(join(folder, 'checkpoint.json')), 'the finished run removed its checkpoint');
});
