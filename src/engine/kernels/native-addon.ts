/**
 * The engine's kernels compiled natively (native/napi.c → dist/kernels/kernels-linux-x64-avx2.node,
 * built by scripts/build-wasm.mjs): the same C as the wasm modules, with the products' inner
 * blocks in AVX2 + FMA, twice the width of wasm SIMD and one instruction per multiply-add. Used on
 * linux-x64 when the CPU has AVX2 and FMA, unless LAYERWISE_NATIVE=0; the wasm kernels everywhere
 * else, and whenever the addon cannot load (the reason is kept for the backend's note).
 *
 * A binding has the wasm module's exports' shape (same names, same arguments, pointers as byte
 * offsets into one memory), so every caller stays the same; each call passes the memory's address,
 * taken again whenever its buffer changes (tfjs's heap may move when it grows).
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export const ADDON_FILE = 'kernels-linux-x64-avx2.node';

/** What napi.c exports. */
export interface KernelAddon {
  /** Kernel `index` (of `names`) with its arguments: offsets from `base`, ints and floats. */
  call(index: number, base: number, args: Float64Array): number;
  /** The address of a typed array's first byte. */
  address(view: ArrayBufferView): number;
  names: string[];
}

export type AddonStatus = { loaded: true; file: string; addon: KernelAddon } | { loaded: false; problem: string };

/** Beside the bundle (dist/kernels), or dist/kernels of the checkout when run from source. */
function candidates(): string[] {
  return [path.join(__dirname, 'kernels', ADDON_FILE), path.join(__dirname, '..', '..', '..', 'dist', 'kernels', ADDON_FILE)];
}

/** Why this machine cannot run the addon, or undefined when it can. */
export function addonUnsupported(env: NodeJS.ProcessEnv = process.env, platform = process.platform, arch = process.arch,
  cpuinfo = (): string => readFileSync('/proc/cpuinfo', 'utf8')): string | undefined {
  if (env['LAYERWISE_NATIVE'] === '0') return 'native kernels switched off (LAYERWISE_NATIVE=0)';
  if (platform !== 'linux' || arch !== 'x64') return `no native kernels for ${platform}-${arch} (linux-x64 only)`;
  let flags: Set<string>;
  try {
    const line = cpuinfo().split('\n').find((l) => l.startsWith('flags'));
    flags = new Set((line ?? '').split(':')[1]?.trim().split(/\s+/) ?? []);
  } catch (e) {
    return `could not read /proc/cpuinfo (${e instanceof Error ? e.message : String(e)})`;
  }
  const missing = ['avx2', 'fma'].filter((f) => !flags.has(f));
  return missing.length > 0 ? `the CPU lacks ${missing.join(' and ')}` : undefined;
}

/** Loads the addon from `file` (any thread); throws when it cannot. */
export function loadAddon(file: string): KernelAddon {
  const holder = { exports: {} as KernelAddon };
  process.dlopen(holder, file);
  const addon = holder.exports;
  if (typeof addon.call !== 'function' || typeof addon.address !== 'function' || !Array.isArray(addon.names)) {
    throw new Error(`${file} is not the engine's kernel addon`);
  }
  return addon;
}

let status: AddonStatus | undefined;

/** The addon when this machine runs it (loaded once); else why not. Never throws. */
export function addonStatus(): AddonStatus {
  if (status === undefined) {
    const unsupported = addonUnsupported();
    const file = candidates().find((f) => existsSync(f));
    if (unsupported !== undefined) status = { loaded: false, problem: unsupported };
    else if (file === undefined) status = { loaded: false, problem: `${ADDON_FILE} not built (npm run build)` };
    else {
      try {
        status = { loaded: true, file, addon: loadAddon(file) };
      } catch (e) {
        status = { loaded: false, problem: `${file} failed to load (${e instanceof Error ? e.message : String(e)})` };
      }
    }
  }
  return status;
}

let enabled = true;

/** Switches the addon off (the wasm kernels run) and back on: tests check both, benches compare them. */
export function useNativeAddon(on: boolean): void {
  enabled = on;
}

/** The addon when it is loaded and switched on. */
export function activeAddon(): KernelAddon | undefined {
  const s = addonStatus();
  return enabled && s.loaded ? s.addon : undefined;
}

const bindings = new WeakSet<object>();

/** Whether `exports` is an addon binding (its kernel threads must run the addon too). */
export function isAddonBinding(exports: object): boolean {
  return bindings.has(exports);
}

/**
 * The addon's kernels as functions over `memory` (the memory must stay the one the offsets point
 * into): `{ name(...args) }` for every kernel, as the wasm module exports them.
 */
export function bindAddon(addon: KernelAddon, memory: () => ArrayBuffer | SharedArrayBuffer): Record<string, (...args: number[]) => number> {
  const args = new Float64Array(32);
  let buffer: ArrayBuffer | SharedArrayBuffer | undefined;
  let base = 0;
  const binding: Record<string, (...args: number[]) => number> = {};
  addon.names.forEach((name, index) => {
    binding[name] = (...values: number[]): number => {
      const now = memory();
      if (now !== buffer) {
        buffer = now;
        base = addon.address(new Uint8Array(now, 0, 1));
      }
      args.set(values);
      return addon.call(index, base, args);
    };
  });
  bindings.add(binding);
  return binding;
}
