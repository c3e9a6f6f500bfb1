// Makes the .vsix a user installs (`npm run package`; arguments go to `vsce package`, e.g.
// `-- --out layerwise.vsix`): the production build, then vsce for this machine's platform when the
// package carries native parts built for it — @napi-rs/image's binary (dist/node_modules, copied
// by build.mjs from what loads here) and the kernels addon (linux-x64 and alpine-x64 only).
// Nothing is downloaded.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));

function run(args) {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

/** VS Code's name for this platform (`vsce package --target`); alpine is Linux with musl. */
function vscodeTarget() {
  let os = process.platform;
  if (os === 'linux') {
    process.report.excludeNetwork = true;
    if (!process.report.getReport().header.glibcVersionRuntime) os = 'alpine';
  }
  const arch = process.arch === 'arm' ? 'armhf' : process.arch;
  return `${os}-${arch}`;
}

run([join(root, 'scripts', 'build.mjs'), '--production']);

const target = vscodeTarget();
// the addon is freestanding x86-64 code with AVX2 (no libc): it runs on glibc and musl Linux alike
const addon = join(root, 'dist', 'kernels', 'kernels-linux-x64-avx2.node');
if (target !== 'linux-x64' && target !== 'alpine-x64') rmSync(addon, { force: true });
const native = existsSync(join(root, 'dist', 'node_modules')) || existsSync(addon);

const vsce = join(dirname(require.resolve('@vscode/vsce/package.json')), 'vsce');
run([vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--no-rewrite-relative-links',
  ...(native ? ['--target', target] : []), ...process.argv.slice(2)]);
