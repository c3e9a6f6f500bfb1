import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliWorkspaceRoot, isInside, resolveInside, resolvePlanPath } from '../../src/core/paths.ts';
import { LayerwiseError } from '../../src/core/errors.ts';

/** A scratch tree: <tmp>/ws/exp/layerwise.json, <tmp>/ws/models/m/, <tmp>/outside/ */
function scratch(): { top: string; ws: string; plan: string; outside: string; done: () => void } {
  // realpath: macOS's tmpdir is itself behind a symlink
  const top = realpathSync(mkdtempSync(join(tmpdir(), 'layerwise-paths-')));
  const ws = join(top, 'ws');
  mkdirSync(join(ws, 'exp'), { recursive: true });
  mkdirSync(join(ws, 'models', 'm'), { recursive: true });
  mkdirSync(join(top, 'outside'));
  writeFileSync(join(top, 'outside', 'secret.txt'), 'x');
  const plan = join(ws, 'exp', 'layerwise.json');
  writeFileSync(plan, '{}');
  return { top, ws, plan, outside: join(top, 'outside'), done: () => rmSync(top, { recursive: true, force: true }) };
}

function rejects(fn: () => unknown, file: string, field: string, problem: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof LayerwiseError, String(e));
    assert.equal(e.file, file);
    assert.equal(e.field, field);
    assert.match(e.problem, problem);
    return true;
  });
}

test('paths resolve against the plan folder', () => {
  const s = scratch();
  try {
    assert.equal(resolvePlanPath(s.plan, 'data/train.csv', 'data.train', s.ws), join(s.ws, 'exp', 'data', 'train.csv'));
    assert.equal(resolvePlanPath(s.plan, './runs', 'output', s.ws), join(s.ws, 'exp', 'runs'));
    // `..` is fine while it stays inside the workspace
    assert.equal(resolvePlanPath(s.plan, '../models/m/model.json', 'model', s.ws), join(s.ws, 'models', 'm', 'model.json'));
    assert.equal(resolvePlanPath(s.plan, 'a/../b', 'data.train', join(s.ws, 'exp')), join(s.ws, 'exp', 'b'));
  } finally {
    s.done();
  }
});

test('escapes, absolute paths and NUL bytes are rejected, naming the plan and the field', () => {
  const s = scratch();
  const planDir = join(s.ws, 'exp');
  try {
    rejects(() => resolvePlanPath(s.plan, '../x', 'data.train', planDir), s.plan, 'data.train', /^"\.\.\/x" resolves outside the workspace folder .*exp; paths must stay inside it$/);
    rejects(() => resolvePlanPath(s.plan, 'a/../../b', 'output', planDir), s.plan, 'output', /resolves outside the workspace folder/);
    rejects(() => resolvePlanPath(s.plan, '../../outside/secret.txt', 'model', s.ws), s.plan, 'model', /resolves outside/);
    rejects(() => resolvePlanPath(s.plan, '/etc/passwd', 'model', s.ws), s.plan, 'model', /^"\/etc\/passwd" is an absolute path; write it relative to the plan's folder$/);
    rejects(() => resolvePlanPath(s.plan, 'C:\\data\\x.csv', 'data.train', s.ws), s.plan, 'data.train', /is an absolute path/);
    rejects(() => resolvePlanPath(s.plan, '\\\\server\\share', 'data.train', s.ws), s.plan, 'data.train', /is an absolute path/);
    rejects(() => resolvePlanPath(s.plan, 'data\0.csv', 'data.train', s.ws), s.plan, 'data.train', /must not contain a NUL byte/);
    rejects(() => resolvePlanPath(s.plan, '', 'data.train', s.ws), s.plan, 'data.train', /must not be an empty path/);
    rejects(() => resolvePlanPath(s.plan, '..\\..\\outside', 'data.train', s.ws), s.plan, 'data.train', /use "\/" as the separator/);
  } finally {
    s.done();
  }
});

test('a folder whose name extends the workspace name is not inside it', () => {
  const s = scratch();
  try {
    mkdirSync(join(s.top, 'ws2'));
    rejects(() => resolvePlanPath(s.plan, '../../ws2/x', 'data.train', s.ws), s.plan, 'data.train', /resolves outside/);
    assert.equal(isInside('/a/ws', '/a/ws2'), false);
    assert.equal(isInside('/a/ws', '/a/ws/..x'), true);
    assert.equal(isInside('/a/ws', '/a/ws'), true);
  } finally {
    s.done();
  }
});

test('a symlink cannot lead out of the workspace', () => {
  const s = scratch();
  try {
    symlinkSync(s.outside, join(s.ws, 'exp', 'link'));
    rejects(() => resolvePlanPath(s.plan, 'link/secret.txt', 'data.train', s.ws), s.plan, 'data.train', /resolves outside/);
    // not yet existing files below the link, e.g. an output folder
    rejects(() => resolvePlanPath(s.plan, 'link/new/run', 'output', s.ws), s.plan, 'output', /resolves outside/);
    // a dangling link: whatever is created through it lands outside
    symlinkSync(join(s.outside, 'not-yet'), join(s.ws, 'exp', 'dangling'));
    rejects(() => resolvePlanPath(s.plan, 'dangling/run', 'output', s.ws), s.plan, 'output', /resolves outside/);
    // a link that stays inside is fine
    symlinkSync(join(s.ws, 'models'), join(s.ws, 'exp', 'models-link'));
    assert.equal(resolvePlanPath(s.plan, 'models-link/m/model.json', 'model', s.ws), join(s.ws, 'exp', 'models-link', 'm', 'model.json'));
  } finally {
    s.done();
  }
});

test('weight shards must stay inside the model folder', () => {
  const s = scratch();
  const modelDir = join(s.ws, 'models', 'm');
  const modelJson = join(modelDir, 'model.json');
  try {
    assert.equal(resolveInside(modelDir, 'group1-shard1of1.bin', 'weight shard', modelJson, 'weightsManifest[0].paths[0]'), join(modelDir, 'group1-shard1of1.bin'));
    const field = 'weightsManifest[0].paths[1]';
    rejects(() => resolveInside(modelDir, '../other/w.bin', 'weight shard', modelJson, field), modelJson, field, /^weight shard "\.\.\/other\/w\.bin" resolves outside .*m; it must stay inside that folder$/);
    rejects(() => resolveInside(modelDir, '/etc/passwd', 'weight shard', modelJson, field), modelJson, field, /^weight shard "\/etc\/passwd" is an absolute path/);
    rejects(() => resolveInside(modelDir, 'w\0.bin', 'weight shard', modelJson, field), modelJson, field, /NUL byte/);
    symlinkSync(join(s.outside, 'secret.txt'), join(modelDir, 'shard.bin'));
    rejects(() => resolveInside(modelDir, 'shard.bin', 'weight shard', modelJson, field), modelJson, field, /resolves outside/);
  } finally {
    s.done();
  }
});

test('the CLI workspace is the plan folder unless --workspace names a folder above it', () => {
  const s = scratch();
  try {
    assert.equal(cliWorkspaceRoot(s.plan), join(s.ws, 'exp'));
    assert.equal(cliWorkspaceRoot(s.plan, s.ws), s.ws);
    assert.equal(cliWorkspaceRoot(s.plan, join(s.ws, 'exp')), join(s.ws, 'exp'));
    const notAbove = (dir: string, problem: RegExp): void =>
      assert.throws(() => cliWorkspaceRoot(s.plan, dir), (e: unknown) => e instanceof LayerwiseError && e.field === '--workspace' && problem.test(e.problem));
    notAbove(s.outside, /must be the plan's folder or a folder above it/);
    notAbove(join(s.ws, 'models'), /must be the plan's folder or a folder above it/);
    notAbove(join(s.top, 'missing'), /is not a folder/);
  } finally {
    s.done();
  }
});
