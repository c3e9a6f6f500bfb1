/**
 * Activation cost of the extension host bundle: the time to load dist/extension.js and run
 * `activate` with a stub `vscode` module and a fake context, in fresh processes (so nothing is
 * cached). Goal: ≤ 50 ms. Also checks that activation did not load tfjs or start a worker.
 *
 *   npm run build && npx tsx bench/activation.ts [runs]
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import Module from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const bundle = path.join(root, 'dist', 'extension.js');

/** Anything: every property is another stub, calling or constructing one returns a stub. */
function stub(name: string): unknown {
  const fn = function () {
    return undefined;
  };
  return new Proxy(fn, {
    get(_t, prop) {
      if (prop === 'then') return undefined; // not a promise
      if (prop === Symbol.toPrimitive) return () => name;
      if (prop === Symbol.iterator) return function* () {};
      if (prop === 'dispose') return () => undefined;
      return stub(`${name}.${String(prop)}`);
    },
    set: () => true,
    apply: () => stub(`${name}()`),
    construct: () => stub(`new ${name}`) as object,
  });
}

/** The namespaces and classes the host uses; a bundle copies the module's own keys, so list them. */
const VSCODE_NAMES = [
  'commands', 'languages', 'window', 'workspace', 'env', 'extensions', 'Diagnostic', 'DiagnosticSeverity',
  'Disposable', 'EventEmitter', 'MarkdownString', 'ProgressLocation', 'Range', 'Position', 'StatusBarAlignment',
  'ThemeColor', 'ThemeIcon', 'TreeItem', 'TreeItemCheckboxState', 'TreeItemCollapsibleState', 'Uri', 'ViewColumn',
  'WorkspaceEdit',
];

function child(): void {
  const vscode = Object.fromEntries(VSCODE_NAMES.map((n) => [n, stub(`vscode.${n}`)]));
  const load = (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load;
  const loaded: string[] = [];
  (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load = function (request: string, ...rest: unknown[]) {
    loaded.push(request);
    if (request === 'vscode') return vscode;
    return load.call(this, request, ...rest);
  };
  const forks: string[] = [];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const cp = require('node:child_process') as typeof import('node:child_process');
  const realFork = cp.fork;
  cp.fork = ((...args: Parameters<typeof realFork>) => {
    forks.push(String(args[0]));
    return realFork(...args);
  }) as typeof realFork;

  const subscriptions: Array<{ dispose(): unknown }> = [];
  const context = {
    subscriptions,
    extensionUri: stub('extensionUri'),
    extensionPath: root,
    asAbsolutePath: (p: string) => path.join(root, p),
  };
  const t0 = performance.now();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require(bundle) as { activate(ctx: unknown): void };
  const t1 = performance.now();
  ext.activate(context);
  const t2 = performance.now();
  const tfjs = loaded.filter((r) => r.includes('@tensorflow'));
  process.stdout.write(JSON.stringify({ loadMs: t1 - t0, activateMs: t2 - t1, subscriptions: subscriptions.length, tfjs, forks }) + '\n');
  process.exit(0);
}

interface Sample {
  loadMs: number;
  activateMs: number;
  subscriptions: number;
  tfjs: string[];
  forks: string[];
}

function main(): void {
  if (!existsSync(bundle)) {
    process.stderr.write('dist/extension.js is missing: run `npm run build` first\n');
    process.exit(1);
  }
  const runs = Number(process.argv[2] ?? 7);
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child'], { encoding: 'utf8' });
    if (r.status !== 0) {
      process.stderr.write(r.stderr);
      process.exit(1);
    }
    samples.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as Sample);
  }
  const total = samples.map((s) => s.loadMs + s.activateMs).sort((a, b) => a - b);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const first = samples[0]!;
  process.stdout.write(
    `activation of dist/extension.js over ${runs} fresh processes:\n` +
      `  load bundle  median ${median(samples.map((s) => s.loadMs)).toFixed(1)} ms\n` +
      `  activate()   median ${median(samples.map((s) => s.activateMs)).toFixed(1)} ms\n` +
      `  total        median ${median(total).toFixed(1)} ms, max ${total[total.length - 1]!.toFixed(1)} ms (goal ≤ 50 ms)\n` +
      `  ${first.subscriptions} disposables registered; tfjs modules loaded: ${first.tfjs.length}; workers forked: ${first.forks.length}\n`,
  );
  if (first.tfjs.length > 0 || first.forks.length > 0 || median(total) > 50) process.exitCode = 1;
}

if (process.argv.includes('--child')) child();
else main();
