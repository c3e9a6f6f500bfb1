// Each augmentation against a reference written here from its definition, on fixed inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cropResize,
  drawAugment,
  flip,
  jitter,
  normalization,
  normalize,
  randomCropBox,
  rotateShift,
  sampleRng,
  toModelInput,
} from '../../src/engine/augment.ts';
import { seededRng } from '../../src/core/random.ts';

/** A fixed H×W×C image with distinct values: v = 10·y + x + 100·c (fits 0–255 for small sizes). */
function image(h: number, w: number, c: number): Float32Array {
  const px = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) px[(y * w + x) * c + k] = 10 * y + x + 100 * k;
  return px;
}

const at = (px: Float32Array, w: number, c: number, y: number, x: number, k: number): number => px[(y * w + x) * c + k]!;

function assertClose(actual: Float32Array, expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tol, `${what}: [${i}] ${actual[i]} vs ${expected[i]}`);
  }
}

/** Bilinear sample of a crop box at a continuous point, half-pixel centres, clamped to the box. */
function referenceCropResize(src: Float32Array, w: number, c: number, top: number, left: number, bh: number, bw: number, oh: number, ow: number): number[] {
  const out: number[] = [];
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      // the centre of output pixel (x, y) in box coordinates
      const sy = Math.max(0, Math.min(bh - 1, ((y + 0.5) * bh) / oh - 0.5));
      const sx = Math.max(0, Math.min(bw - 1, ((x + 0.5) * bw) / ow - 0.5));
      const ys = [Math.floor(sy), Math.min(Math.floor(sy) + 1, bh - 1)];
      const xs = [Math.floor(sx), Math.min(Math.floor(sx) + 1, bw - 1)];
      const fy = sy - ys[0]!;
      const fx = sx - xs[0]!;
      for (let k = 0; k < c; k++) {
        const p = (yy: number, xx: number): number => at(src, w, c, top + yy, left + xx, k);
        out.push(
          p(ys[0]!, xs[0]!) * (1 - fy) * (1 - fx) + p(ys[0]!, xs[1]!) * (1 - fy) * fx + p(ys[1]!, xs[0]!) * fy * (1 - fx) + p(ys[1]!, xs[1]!) * fy * fx,
        );
      }
    }
  }
  return out;
}

test('crop and resize: equals cropping the box, then bilinear resizing it (edges clamped at the box)', () => {
  const src = image(7, 9, 3);
  const box = { top: 2, left: 3, height: 4, width: 5 };
  assertClose(cropResize(src, 9, 3, box, 6, 3), referenceCropResize(src, 9, 3, 2, 3, 4, 5, 6, 3), 1e-4, 'downscale width, upscale height');
  // a box of the output size is an exact copy of the box
  const copy = cropResize(src, 9, 3, box, 4, 5);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) for (let k = 0; k < 3; k++) {
    assert.equal(at(copy, 5, 3, y, x, k), at(src, 9, 3, y + 2, x + 3, k));
  }
});

test('random resized crop: boxes keep to torchvision\'s area and ratio ranges and stay inside the image', () => {
  const rng = seededRng(3);
  for (let i = 0; i < 500; i++) {
    const b = randomCropBox(60, 80, [0.3, 0.9], [0.75, 4 / 3], rng);
    assert.ok(b.top >= 0 && b.left >= 0 && b.top + b.height <= 60 && b.left + b.width <= 80, JSON.stringify(b));
    const area = (b.height * b.width) / (60 * 80);
    // rounding the sides to whole pixels moves area and ratio a little
    assert.ok(area > 0.3 - 0.05 && area < 0.9 + 0.05, `area ${area}`);
    const ratio = b.width / b.height;
    assert.ok(ratio > 0.75 * 0.9 && ratio < (4 / 3) * 1.1, `ratio ${ratio}`);
  }
  // no box of the ratio range fits a very wide image at that area: the central fallback
  const fallback = randomCropBox(10, 100, [0.9, 1], [1, 1], seededRng(1));
  assert.deepEqual(fallback, { top: 0, left: 45, height: 10, width: 10 });
});

test('flips: out(y, x) = in(y, W−1−x) and out(y, x) = in(H−1−y, x)', () => {
  const src = image(3, 4, 2);
  const h = src.slice();
  flip(h, 3, 4, 2, true, false);
  const v = src.slice();
  flip(v, 3, 4, 2, false, true);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) for (let k = 0; k < 2; k++) {
    assert.equal(at(h, 4, 2, y, x, k), at(src, 4, 2, y, 3 - x, k));
    assert.equal(at(v, 4, 2, y, x, k), at(src, 4, 2, 2 - y, x, k));
  }
});

test('rotation: 90° turns the image counter-clockwise (out(y, x) = in(x, N−1−y)); 180° reverses both axes', () => {
  const n = 5;
  const src = image(n, n, 1);
  const r90 = rotateShift(src, n, n, 1, 90, 0, 0);
  const r180 = rotateShift(src, n, n, 1, 180, 0, 0);
  for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
    assert.ok(Math.abs(at(r90, n, 1, y, x, 0) - at(src, n, 1, x, n - 1 - y, 0)) < 1e-3, `90° at ${y},${x}`);
    assert.ok(Math.abs(at(r180, n, 1, y, x, 0) - at(src, n, 1, n - 1 - y, n - 1 - x, 0)) < 1e-3, `180° at ${y},${x}`);
  }
});

test('rotation by a small angle: each pixel is the bilinear sample at the inversely rotated point, 0 off the image', () => {
  const h = 6;
  const w = 8;
  const src = image(h, w, 1);
  const deg = 12;
  const got = rotateShift(src, h, w, 1, deg, 0, 0);
  const t = (deg * Math.PI) / 180;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // point relative to the centre, rotated back (clockwise as displayed: y grows downwards)
      const px = x + 0.5 - w / 2;
      const py = y + 0.5 - h / 2;
      const sx = Math.cos(t) * px - Math.sin(t) * py + w / 2 - 0.5;
      const sy = Math.sin(t) * px + Math.cos(t) * py + h / 2 - 0.5;
      let want = 0;
      if (sx >= -0.5 && sx <= w - 0.5 && sy >= -0.5 && sy <= h - 0.5) {
        const cx = Math.min(Math.max(sx, 0), w - 1);
        const cy = Math.min(Math.max(sy, 0), h - 1);
        const x0 = Math.floor(cx);
        const y0 = Math.floor(cy);
        const x1 = Math.min(x0 + 1, w - 1);
        const y1 = Math.min(y0 + 1, h - 1);
        const fx = cx - x0;
        const fy = cy - y0;
        const p = (yy: number, xx: number): number => at(src, w, 1, yy, xx, 0);
        want = p(y0, x0) * (1 - fx) * (1 - fy) + p(y0, x1) * fx * (1 - fy) + p(y1, x0) * (1 - fx) * fy + p(y1, x1) * fx * fy;
      }
      assert.ok(Math.abs(at(got, w, 1, y, x, 0) - want) < 1e-3, `(${y}, ${x}): ${at(got, w, 1, y, x, 0)} vs ${want}`);
    }
  }
});

test('translation by whole pixels: out(y, x) = in(y − dy, x − dx), 0 where nothing moved in', () => {
  const src = image(4, 5, 2);
  const got = rotateShift(src, 4, 5, 2, 0, 2, -1);
  for (let y = 0; y < 4; y++) for (let x = 0; x < 5; x++) for (let k = 0; k < 2; k++) {
    const sy = y + 1;
    const sx = x - 2;
    const want = sy >= 0 && sy < 4 && sx >= 0 && sx < 5 ? at(src, 5, 2, sy, sx, k) : 0;
    assert.equal(at(got, 5, 2, y, x, k), want, `(${y}, ${x}, ${k})`);
  }
});

test('brightness and contrast: torchvision ColorJitter formulas, clamped to 0–255', () => {
  const src = Float32Array.from([10, 200, 30, 250, 0, 128]); // two RGB pixels
  const b = src.slice();
  jitter(b, 3, 1.2, 1);
  assertClose(b, [12, 240, 36, 255, 0, 153.6], 1e-4, 'brightness 1.2');
  const c = src.slice();
  jitter(c, 3, 1, 0.5);
  // mean grey = mean over pixels of 0.299 R + 0.587 G + 0.114 B
  const grey = (0.299 * 10 + 0.587 * 200 + 0.114 * 30 + 0.299 * 250 + 0.587 * 0 + 0.114 * 128) / 2;
  assertClose(c, [...src].map((v) => Math.min(255, Math.max(0, (v - grey) * 0.5 + grey))), 1e-4, 'contrast 0.5');
  const g = Float32Array.from([0, 100, 250]);
  jitter(g, 1, 1, 2);
  const m = 350 / 3;
  assertClose(g, [0, 100, 250].map((v) => Math.min(255, Math.max(0, (v - m) * 2 + m))), 1e-4, 'grey contrast 2');
});

test('normalisation presets: unit [0, 1], symmetric [-1, 1], imagenet mean/std, explicit mean/std', () => {
  const px = Float32Array.from([0, 127.5, 255, 51, 102, 204]);
  const apply = (n: ReturnType<typeof normalization>): Float32Array => {
    const out = px.slice();
    normalize(out, 3, n);
    return out;
  };
  assertClose(apply(normalization(undefined, 3)), [...px].map((v) => v / 255), 1e-7, 'default = unit');
  assertClose(apply(normalization('unit', 3, 1)), [...px], 0, 'unit with data.scale 1');
  assertClose(apply(normalization('symmetric', 3)), [-1, 0, 1, 51 / 127.5 - 1, 102 / 127.5 - 1, 204 / 127.5 - 1], 1e-6, 'symmetric');
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  assertClose(apply(normalization('imagenet', 3)), [...px].map((v, i) => (v / 255 - mean[i % 3]!) / std[i % 3]!), 1e-5, 'imagenet');
  assertClose(apply(normalization({ mean: [0.5], std: [0.25] }, 3)), [...px].map((v) => (v / 255 - 0.5) / 0.25), 1e-5, 'one mean/std for every channel');
});

test('draws depend only on (seed, epoch, sample): the same key gives the same transform, others differ', () => {
  const spec = { randomResizedCrop: true, horizontalFlip: true, rotation: 15, translate: 0.1, brightness: 0.3, contrast: 0.3 } as const;
  const a = drawAugment(spec, sampleRng(7, 2, 41), 50, 60, [32, 32]);
  const b = drawAugment(spec, sampleRng(7, 2, 41), 50, 60, [32, 32]);
  assert.deepEqual(a, b);
  const others = [sampleRng(7, 3, 41), sampleRng(7, 2, 42), sampleRng(8, 2, 41)].map((r) => drawAugment(spec, r, 50, 60, [32, 32]));
  for (const o of others) assert.notDeepEqual(o, a);
  assert.ok(Math.abs(a.angle) <= 15 && Math.abs(a.shiftX) <= 3.2 + 0.5 && a.brightness >= 0.7 && a.brightness <= 1.3);
});

test('without a draw (validation) the input is the plain resize: no transform leaks in', () => {
  const src = image(6, 6, 3);
  const n = normalization('unit', 3, 1);
  const plain = toModelInput(src, 6, 6, 3, [3, 3], n);
  assertClose(plain, referenceCropResize(src, 6, 3, 0, 0, 6, 6, 3, 3), 1e-4, 'validation sample');
  const flipped = toModelInput(src, 6, 6, 3, [3, 3], n, { flipH: true, flipV: false, angle: 0, shiftX: 0, shiftY: 0, brightness: 1, contrast: 1 });
  assert.notDeepEqual(flipped, plain);
});
