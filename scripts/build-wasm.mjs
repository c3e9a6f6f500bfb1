// The engine's own kernels (src/engine/kernels/native/*.c) in dist/kernels/: wasm modules
// (*.wasm), which the engine loads at run time (it falls back to its composed kernels when a file
// is missing), and the same C as a Node-API addon for x86-64 with AVX2 and FMA
// (kernels-linux-x64-avx2.node, from napi.c), which the engine prefers on such machines.
//
// The built binaries are committed in src/engine/kernels/prebuilt/ with the clang version and a
// hash of the sources they came from, so a machine with only Node and npm builds and trains
// without a C toolchain:
//   node scripts/build-wasm.mjs            clang + lld present: compile from source (and say when
//                                          the committed binaries are stale); absent: copy the
//                                          committed ones, refusing if the sources changed since
//   node scripts/build-wasm.mjs --check    compile and require byte-identity with the committed ones
//                                          (part of `npm test`)
//   node scripts/build-wasm.mjs --update   compile and refresh the committed ones
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = join(root, 'src', 'engine', 'kernels', 'native');
const out = join(root, 'dist', 'kernels');
const prebuilt = join(root, 'src', 'engine', 'kernels', 'prebuilt');
const infoFile = join(prebuilt, 'build-info.json');
const mode = process.argv.includes('--check') ? 'check' : process.argv.includes('--update') ? 'update' : 'build';

const CLANG = process.env.CLANG ?? 'clang';

const WASM_FLAGS = [
  '--target=wasm32',
  '-O3',
  '-msimd128',
  // loops that zero or copy become memory.fill / memory.copy instead of calls to a libc we do not link
  '-mbulk-memory',
  '-nostdlib',
  // jump tables would be static data in the heap we borrow
  '-fno-jump-tables',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wl,--no-entry',
  // the kernels run inside the tfjs wasm module's memory (see conv.c)
  '-Wl,--import-memory',
  // no shadow stack: a use of one would wrap below address 0 and trap rather than corrupt the heap
  '-Wl,-z,stack-size=0',
  '-Wl,--stack-first',
  '-Wl,--strip-all',
];

/**
 * The addon: freestanding (no libc, no node headers: napi.c declares the Node-API functions it
 * calls, which resolve from the node binary at load), so any clang with lld builds the same
 * bytes on any host; no build id, so the committed binary can be checked byte for byte.
 */
const NATIVE_FLAGS = [
  '--target=x86_64-linux-gnu',
  '-O3',
  '-mavx2',
  '-mfma',
  // FMA only where the products' blocks ask for it, so the other kernels round as in wasm
  '-ffp-contract=off',
  '-fno-math-errno',
  '-ffreestanding',
  '-nostdlib',
  '-fPIC',
  '-fvisibility=hidden',
  '-shared',
  '-fuse-ld=lld',
  '-Wall',
  '-Wextra',
  '-Werror',
  '-Wl,--build-id=none',
  '-Wl,--strip-all',
];

function fail(message) {
  console.error(`build-wasm: ${message}`);
  process.exit(1);
}

/** The working clang's version line, or undefined when there is none. */
function clangVersion() {
  const probe = spawnSync(CLANG, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return undefined;
  return probe.stdout.split('\n')[0].trim();
}

/** Section ids of a wasm binary, to check that the module owns no static data. */
function sectionIds(bytes) {
  const ids = [];
  let at = 8;
  while (at < bytes.length) {
    const id = bytes[at++];
    let size = 0;
    let shift = 0;
    let byte;
    do {
      byte = bytes[at++];
      size |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80);
    ids.push(id);
    at += size;
  }
  return ids;
}

const sourceFiles = readdirSync(sources).filter((f) => f.endsWith('.c') || f.endsWith('.h')).sort();
/** napi.c is the addon's one translation unit: it includes every kernel file. */
const ADDON_SOURCE = 'napi.c';
const kernelFiles = sourceFiles.filter((f) => f.endsWith('.c') && f !== ADDON_SOURCE);
const files = kernelFiles.map((f) => join(sources, f));
const missingFromAddon = kernelFiles.filter((f) => !readFileSync(join(sources, ADDON_SOURCE), 'utf8').includes(`#include "${f}"`));
if (missingFromAddon.length > 0) {
  fail(`src/engine/kernels/native/${ADDON_SOURCE} does not include ${missingFromAddon.join(', ')}: ` +
    'add the #include and its kernels to the KERNELS table');
}

/** One hash over every source file's name and bytes: what the committed binaries were built from. */
function sourcesHash() {
  const h = createHash('sha256');
  for (const f of sourceFiles) h.update(f).update('\0').update(readFileSync(join(sources, f))).update('\0');
  return h.digest('hex');
}

/**
 * One module from all the sources, twice: `kernels.wasm` imports the tfjs heap (a plain memory)
 * and runs on the thread tfjs runs on; `kernels-shared.wasm` imports a shared memory and runs
 * in the engine's kernel thread (threads.ts), which works on copies of its share of the batch.
 * And the addon (native-addon.ts), for linux-x64 with AVX2 and FMA.
 */
const VARIANTS = [
  { name: 'kernels.wasm', args: [...WASM_FLAGS, ...files] },
  {
    name: 'kernels-shared.wasm',
    args: [...WASM_FLAGS, '-matomics', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296', ...files],
  },
  { name: 'kernels-linux-x64-avx2.node', args: [...NATIVE_FLAGS, join(sources, ADDON_SOURCE)] },
].map((v) => ({ wasm: v.name.endsWith('.wasm'), ...v }));

function compileInto(dir) {
  mkdirSync(dir, { recursive: true });
  for (const variant of VARIANTS) {
    const target = join(dir, variant.name);
    const r = spawnSync(CLANG, [...variant.args, '-o', target], { encoding: 'utf8' });
    if (r.status !== 0) {
      const hint = /wasm-ld|ld\.lld|unable to execute|No such file|invalid linker/.test(r.stderr) ? ' (is lld installed? apt-get install lld)' : '';
      fail(`compiling ${variant.name} failed${hint}:\n${r.stderr}`);
    }
    const DATA_SECTION = 11;
    if (variant.wasm && sectionIds(readFileSync(target)).includes(DATA_SECTION)) {
      fail(`${variant.name} compiled to a module with static data, which would overwrite the tfjs heap it shares`);
    }
  }
}

function readInfo() {
  return existsSync(infoFile) ? JSON.parse(readFileSync(infoFile, 'utf8')) : undefined;
}

/** The names of the variants whose compiled bytes in `dir` differ from the committed ones. */
function differingFromPrebuilt(dir) {
  return VARIANTS.map((v) => v.name).filter((name) => {
    const committed = join(prebuilt, name);
    return !existsSync(committed) || !readFileSync(committed).equals(readFileSync(join(dir, name)));
  });
}

const clang = clangVersion();
const info = readInfo();
const hash = sourcesHash();
const noClang = `"${CLANG}" not found or not working`;

if (mode === 'update') {
  if (clang === undefined) fail(`${noClang}: --update compiles the kernels; apt-get install clang lld`);
  compileInto(out);
  mkdirSync(prebuilt, { recursive: true });
  for (const v of VARIANTS) copyFileSync(join(out, v.name), join(prebuilt, v.name));
  writeFileSync(infoFile, JSON.stringify({ clang, sources: hash, files: sourceFiles }, null, 2) + '\n');
  console.log(`build-wasm: src/engine/kernels/prebuilt/ refreshed (${clang})`);
} else if (mode === 'check') {
  if (clang === undefined) fail(`${noClang}: --check rebuilds the kernels to compare them with the committed ones; apt-get install clang lld`);
  const scratch = mkdtempSync(join(tmpdir(), 'layerwise-wasm-check-'));
  try {
    compileInto(scratch);
    const differing = differingFromPrebuilt(scratch);
    const problems = [];
    if (info?.sources !== hash) problems.push('the C sources changed since the committed binaries were built');
    if (differing.length > 0) problems.push(`a rebuild of ${differing.join(', ')} is not byte-identical to the committed one`);
    if (problems.length > 0) {
      fail(`${problems.join('; ')} (committed: ${info?.clang ?? 'no build-info.json'}; here: ${clang}). ` +
        'Run `node scripts/build-wasm.mjs --update` and commit src/engine/kernels/prebuilt/.');
    }
    console.log(`build-wasm: a rebuild with ${clang} is byte-identical to src/engine/kernels/prebuilt/`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
} else if (clang !== undefined) {
  compileInto(out);
  if (info?.sources !== hash || differingFromPrebuilt(out).length > 0) {
    console.warn('build-wasm: the committed kernels in src/engine/kernels/prebuilt/ differ from this build; ' +
      'run `node scripts/build-wasm.mjs --update` and commit them (npm test checks this)');
  }
} else {
  // no C toolchain (a machine with only Node and npm): the committed binaries, if they match the sources
  if (info === undefined) fail(`${noClang}, and src/engine/kernels/prebuilt/ has no build-info.json: apt-get install clang lld`);
  if (info.sources !== hash) {
    fail(`${noClang}, and the kernels' C sources changed since the committed binaries were built: ` +
      'install clang and lld (apt-get install clang lld) to compile them');
  }
  mkdirSync(out, { recursive: true });
  for (const v of VARIANTS) copyFileSync(join(prebuilt, v.name), join(out, v.name));
  console.log(`build-wasm: no clang here; using the committed kernels (src/engine/kernels/prebuilt/, built with ${info.clang})`);
}
