// Compiles the engine's own wasm kernels (src/engine/kernels/native/*.c) with Debian's clang +
// lld into dist/kernels/*.wasm. The engine loads them at run time and falls back to its composed
// kernels when a file is missing; the build, though, fails loudly without clang, so a broken
// toolchain never ships a package that is silently slower.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = join(root, 'src', 'engine', 'kernels', 'native');
const out = join(root, 'dist', 'kernels');

const CLANG = process.env.CLANG ?? 'clang';

const FLAGS = [
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

function fail(message) {
  console.error(`build-wasm: ${message}`);
  process.exit(1);
}

const probe = spawnSync(CLANG, ['--version'], { encoding: 'utf8' });
if (probe.error || probe.status !== 0) {
  fail(`"${CLANG}" not found or not working (${probe.error?.message ?? probe.stderr.trim()}). ` +
    'The wasm training kernels need clang and lld with the wasm32 target: apt-get install clang lld ' +
    '(or set CLANG to a clang that has them).');
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

mkdirSync(out, { recursive: true });
const files = readdirSync(sources).filter((f) => f.endsWith('.c')).sort().map((f) => join(sources, f));

/**
 * One module from all the sources, twice: `kernels.wasm` imports the tfjs heap (a plain memory)
 * and runs on the thread tfjs runs on; `kernels-shared.wasm` imports a shared memory and runs
 * in the engine's kernel thread (threads.ts), which works on copies of its share of the batch.
 */
const VARIANTS = [
  { name: 'kernels.wasm', flags: [] },
  { name: 'kernels-shared.wasm', flags: ['-matomics', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296'] },
];

for (const variant of VARIANTS) {
  const target = join(out, variant.name);
  const r = spawnSync(CLANG, [...FLAGS, ...variant.flags, '-o', target, ...files], { encoding: 'utf8' });
  if (r.status !== 0) {
    const hint = /wasm-ld|unable to execute|No such file/.test(r.stderr) ? ' (is lld installed? apt-get install lld)' : '';
    fail(`compiling ${variant.name} from ${files.map((f) => basename(f)).join(', ')} failed${hint}:\n${r.stderr}`);
  }
  const DATA_SECTION = 11;
  if (sectionIds(readFileSync(target)).includes(DATA_SECTION)) {
    fail(`${variant.name} compiled to a module with static data, which would overwrite the tfjs heap it shares`);
  }
}
