/**
 * The .vsix a user installs (`npm run package`), unpacked: it holds every file the production
 * build writes for the extension, and its own dist/worker.js, driven through the protocol as the
 * extension host drives it, streams the bundled example's images through a decoding thread with
 * the Rust decoder it ships, and with jpeg-js/pngjs once that decoder is taken away.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import type { RunReport } from '../../src/core/progress.ts';
import { WorkerHarness } from './processes.ts';

const repo = resolve(import.meta.dirname, '..', '..');
const scratch = mkdtempSync(join(tmpdir(), 'layerwise-vsix-'));
/** The unpacked package's extension/ folder (what VS Code installs). */
const extension = join(scratch, 'unpacked', 'extension');
const RUST_BINARY = 'node_modules/@napi-rs/image-linux-x64-gnu/image.linux-x64-gnu.node';
const onLinuxX64 = process.platform === 'linux' && process.arch === 'x64';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split('\\').join('/'))
    .sort();
}

before(() => {
  const vsix = join(scratch, 'layerwise.vsix');
  // the same command a user runs (it rebuilds dist/ for production first)
  execFileSync('npm', ['run', '--silent', 'package', '--', '--out', vsix], { cwd: repo, stdio: 'pipe' });
  execFileSync('unzip', ['-q', vsix, '-d', join(scratch, 'unpacked')]);
});

after(() => rmSync(scratch, { recursive: true, force: true }));

test('the .vsix ships every file the production build writes, but the CLI', () => {
  const shipped = filesUnder(join(extension, 'dist'));
  const missing = filesUnder(join(repo, 'dist')).filter((f) => f !== 'cli.js' && !shipped.includes(f));
  assert.deepEqual(missing, [], 'built but not packaged: allow them in .vscodeignore');
  // what the worker starts or loads at run time, by name (so a build that stops writing one fails too)
  const atRunTime = ['worker.js', 'decode-thread.js', 'kernels/thread.js', 'kernels/kernels.wasm', 'kernels/kernels-shared.wasm',
    'wasm/tfjs-backend-wasm.wasm', 'wasm/tfjs-backend-wasm-simd.wasm', 'wasm/tfjs-backend-wasm-threaded-simd.wasm'];
  if (onLinuxX64) atRunTime.push('kernels/kernels-linux-x64-avx2.node', 'node_modules/@napi-rs/image/index.js', RUST_BINARY);
  for (const f of atRunTime) assert.ok(shipped.includes(f), `dist/${f} is in the .vsix`);
  if (onLinuxX64) assert.match(readFileSync(join(scratch, 'unpacked', 'extension.vsixmanifest'), 'utf8'), /TargetPlatform="linux-x64"/);
});

/** One run of the packaged worker on a copy of the packaged example, its training images streamed. */
async function trainWithPackagedWorker(name: string): Promise<RunReport> {
  const ws = join(scratch, name);
  cpSync(join(extension, 'examples', 'fashion'), ws, { recursive: true });
  const planFile = join(ws, 'layerwise.json');
  const text = readFileSync(planFile, 'utf8');
  // the fewest epochs gradual unfreezing allows; augmentation makes the engine stream the training
  // images through its decoding threads
  const plan = text.replace('"epochs": 6', '"epochs": 4').replace('"format": "imagefolder"', '"format": "imagefolder", "augment": { "horizontalFlip": true }');
  assert.equal(plan.split('\n').length, text.split('\n').length);
  assert.ok(plan.includes('"epochs": 4') && plan.includes('"horizontalFlip"'), 'the example plan changed: update this test');
  writeFileSync(planFile, plan);

  const env = { ...process.env };
  delete env['NODE_PATH'];
  const w = new WorkerHarness(join(extension, 'dist', 'worker.js'), { env });
  try {
    await w.waitFor((m) => m.type === 'ready');
    const done = await w.ask({ type: 'train', id: name, planFile, workspaceRoot: ws, backend: 'auto', progressIntervalMs: 0, outDir: join(ws, 'runs', name) });
    assert.ok(done.type === 'trained', JSON.stringify(done));
    assert.equal(done.report.stopped, 'completed');
    return done.report;
  } finally {
    w.kill();
  }
}

test('the packaged worker streams images through a decoding thread with the Rust decoder it ships, else with jpeg-js/pngjs', { timeout: 180_000 }, async () => {
  const shipsRust = existsSync(join(extension, 'dist', RUST_BINARY));
  const withRust = await trainWithPackagedWorker('shipped');
  assert.equal(withRust.data?.mode, 'stream', withRust.data?.reason);
  assert.ok((withRust.data?.decodeThreads ?? 0) >= 1, 'decoded by dist/decode-thread.js, not on the training thread');
  assert.equal(withRust.data?.decoder, shipsRust || onLinuxX64 ? 'image-rs' : 'js');

  // without the copied modules nothing resolves @napi-rs/image from the install folder: the run still works
  rmSync(join(extension, 'dist', 'node_modules'), { recursive: true, force: true });
  const withoutRust = await trainWithPackagedWorker('without-rust');
  assert.equal(withoutRust.data?.decoder, 'js');
  assert.ok((withoutRust.data?.decodeThreads ?? 0) >= 1);
});
