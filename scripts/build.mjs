// Bundles the four entry points with esbuild and enforces the one-way doors between rooms:
// the extension host must never load tfjs; the worker, CLI and webview must never load vscode.
import * as esbuild from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

/** Fails the build when a bundle imports a module its room must not touch. */
function forbid(label, patterns) {
  return {
    name: `forbid-${label}`,
    setup(build) {
      for (const pattern of patterns) {
        build.onResolve({ filter: pattern }, (args) => ({
          errors: [{ text: `${label} bundle must not import "${args.path}" (from ${args.importer})` }],
        }));
      }
    },
  };
}

const common = {
  bundle: true,
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
  target: 'node20',
  platform: 'node',
  format: 'cjs',
  absWorkingDir: root,
  // tfjs-node is optional: loaded at run time only when it is installed
  external: ['@tensorflow/tfjs-node', 'sharp'],
  // jsonc-parser's "main" is a UMD build that loads its parts with a require() esbuild cannot
  // follow (the bundle fails at run time with "Cannot find module './impl/format'")
  alias: { 'jsonc-parser': require.resolve('jsonc-parser/lib/esm/main.js') },
};

const builds = [
  {
    ...common,
    entryPoints: { cli: 'src/cli/main.ts' },
    outdir: 'dist',
    plugins: [forbid('cli', [/^vscode$/])],
  },
  {
    ...common,
    entryPoints: { worker: 'src/engine/worker.ts' },
    outdir: 'dist',
    plugins: [forbid('worker', [/^vscode$/])],
  },
  {
    ...common,
    // a kernel thread (src/engine/kernels/threads.ts starts it beside whichever bundle trains)
    entryPoints: { 'kernels/thread': 'src/engine/kernels/thread.ts' },
    outdir: 'dist',
    plugins: [forbid('kernel thread', [/^vscode$/, /^@tensorflow\//])],
  },
  {
    ...common,
    // an image decoding thread (src/engine/decode-pool.ts starts it beside the cli or worker bundle)
    entryPoints: { 'decode-thread': 'src/engine/decode-thread.ts' },
    outdir: 'dist',
    plugins: [forbid('decode thread', [/^vscode$/, /^@tensorflow\//])],
  },
];

const hasEntry = (p) => existsSync(join(root, p));

if (hasEntry('src/host/extension.ts')) {
  builds.push({
    ...common,
    entryPoints: { extension: 'src/host/extension.ts' },
    outdir: 'dist',
    external: ['vscode'],
    plugins: [forbid('extension-host', [/^@tensorflow\//, /src\/engine\//, /\.\.?\/engine\//])],
  });
}
if (hasEntry('webview/main.ts')) {
  builds.push({
    ...common,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    external: [],
    entryPoints: { webview: 'webview/main.ts' },
    outdir: 'dist',
    plugins: [forbid('webview', [/^vscode$/, /^@tensorflow\//, /^node:/])],
  });
}

// a production build (what `npm run package` ships) starts from an empty dist/: nothing stale is packaged
if (production) rmSync(join(root, 'dist'), { recursive: true, force: true });

// VS Code validates plan files against this copy (package.json contributes.jsonValidation)
mkdirSync(join(root, 'dist'), { recursive: true });
cpSync(join(root, 'src', 'core', 'plan.schema.json'), join(root, 'dist', 'plan.schema.json'));

// the wasm backend's binaries must sit next to the bundles that load them
const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'));
mkdirSync(join(root, 'dist', 'wasm'), { recursive: true });
for (const f of readdirSync(join(wasmDir, 'dist')).filter((f) => f.endsWith('.wasm'))) {
  cpSync(join(wasmDir, 'dist', f), join(root, 'dist', 'wasm', f));
}

/** The folder of the npm package that holds `file` (its nearest package.json). */
function packageDirOf(file) {
  let dir = dirname(file);
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

// @napi-rs/image (the Rust image decoder; src/engine/image.ts requires it at run time, so it is not
// bundled) with the platform binary that loads here, in dist/node_modules: the .vsix has no
// node_modules, and a require from dist/worker.js or dist/decode-thread.js looks there first.
// Where it does not load, the engine decodes with jpeg-js and pngjs.
const shippedModules = join(root, 'dist', 'node_modules');
rmSync(shippedModules, { recursive: true, force: true });
try {
  const napiImage = require('@napi-rs/image');
  if (napiImage.__napiBindingTarget !== 'native') throw new Error(`it loaded its ${napiImage.__napiBindingTarget} build, not a native one`);
  const binary = Object.keys(require.cache).find((f) => f.endsWith('.node') && f.includes(`${sep}@napi-rs${sep}image`));
  if (binary === undefined) throw new Error('its native binary is not among the loaded modules');
  const dirs = new Set([packageDirOf(require.resolve('@napi-rs/image')), packageDirOf(binary)]);
  for (const dir of dirs) {
    const name = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name;
    cpSync(dir, join(shippedModules, ...name.split('/')), { recursive: true, dereference: true });
  }
} catch (e) {
  console.warn(`build: @napi-rs/image is not shipped beside the bundles (${String(e instanceof Error ? e.message : e).split('\n')[0]}); ` +
    'they decode images with jpeg-js and pngjs');
}

// the engine's own SIMD kernels (dist/kernels/*.wasm); fails the build when clang/lld are missing
await import('./build-wasm.mjs');

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
