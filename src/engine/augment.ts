/**
 * Training-time augmentation and input normalisation over typed arrays (HWC floats, 0–255), no
 * tensors: decode threads run it. Each sample's random transform is drawn from its own seed
 * (seed, epoch, sample index), so batches are the same whichever thread decodes them.
 *
 * The order is torchvision's usual one: random resized crop (or the plain resize), flips,
 * rotation + translation about the centre, brightness, contrast, then normalisation.
 */
import { assertNever } from '../core/errors.ts';
import { DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, type AugmentSpec, type NormalizeSpec } from '../core/plan.ts';
import { mixSeed, seededRng, type Rng } from '../core/random.ts';

/** An integer box of the source image: the crop that is resized to the output size. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** One sample's drawn transform. */
export interface AugmentDraw {
  crop?: CropBox;
  flipH: boolean;
  flipV: boolean;
  /** Degrees, counter-clockwise as displayed. */
  angle: number;
  /** Output pixels, + moves the content right / down. */
  shiftX: number;
  shiftY: number;
  brightness: number;
  contrast: number;
}

/** Per channel `x × scale + offset` from 0–255 pixel values. */
export interface Normalization {
  scale: number[];
  offset: number[];
}

/**
 * The affine per-channel map of `normalize` (with the legacy `scale` for "unit"). The caller has
 * checked that explicit mean/std have 1 or `channels` values.
 */
export function normalization(spec: NormalizeSpec | undefined, channels: number, unitScale: number = DEFAULTS.imageScale): Normalization {
  const per = (values: number[]): number[] => Array.from({ length: channels }, (_, c) => values[values.length === 1 ? 0 : c]!);
  const meanStd = (mean: number[], std: number[]): Normalization => ({
    scale: per(std).map((s) => 1 / (255 * s)),
    offset: per(mean).map((m, c) => -m / per(std)[c]!),
  });
  const preset = spec ?? DEFAULTS.normalize;
  if (typeof preset === 'object') return meanStd(preset.mean, preset.std);
  switch (preset) {
    case 'unit':
      return { scale: per([unitScale]), offset: per([0]) };
    case 'symmetric':
      return { scale: per([1 / 127.5]), offset: per([-1]) };
    case 'imagenet':
      return meanStd(IMAGENET_MEAN, IMAGENET_STD);
    default:
      return assertNever(preset, 'normalize preset');
  }
}

/** The random stream of one training sample in one epoch. */
export function sampleRng(seed: number, epoch: number, sample: number): Rng {
  return seededRng(mixSeed(seed, epoch, sample));
}

/** Draws one sample's transform for a source of `height × width` and an output of `out`. */
export function drawAugment(spec: AugmentSpec, rng: Rng, height: number, width: number, out: [number, number]): AugmentDraw {
  const crop = spec.randomResizedCrop;
  const draw: AugmentDraw = { flipH: false, flipV: false, angle: 0, shiftX: 0, shiftY: 0, brightness: 1, contrast: 1 };
  if (crop !== undefined && crop !== false) {
    const o = crop === true ? {} : crop;
    draw.crop = randomCropBox(height, width, o.scale ?? DEFAULTS.cropScale, o.ratio ?? DEFAULTS.cropRatio, rng);
  }
  if (spec.horizontalFlip === true) draw.flipH = rng() < 0.5;
  if (spec.verticalFlip === true) draw.flipV = rng() < 0.5;
  const uniform = (max: number): number => (rng() * 2 - 1) * max;
  if ((spec.rotation ?? 0) > 0) draw.angle = uniform(spec.rotation!);
  if ((spec.translate ?? 0) > 0) {
    draw.shiftX = Math.round(uniform(spec.translate!) * out[1]);
    draw.shiftY = Math.round(uniform(spec.translate!) * out[0]);
  }
  if ((spec.brightness ?? 0) > 0) draw.brightness = 1 + uniform(spec.brightness!);
  if ((spec.contrast ?? 0) > 0) draw.contrast = 1 + uniform(spec.contrast!);
  return draw;
}

/**
 * torchvision `RandomResizedCrop.get_params`: ten tries at a box of a random area fraction and a
 * log-uniform aspect ratio, else the largest central box within the ratio range.
 */
export function randomCropBox(height: number, width: number, scale: [number, number], ratio: [number, number], rng: Rng): CropBox {
  const area = height * width;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const target = area * (scale[0] + rng() * (scale[1] - scale[0]));
    const aspect = Math.exp(logLo + rng() * (logHi - logLo));
    const w = Math.round(Math.sqrt(target * aspect));
    const h = Math.round(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const top = Math.floor(rng() * (height - h + 1));
      const left = Math.floor(rng() * (width - w + 1));
      return { top, left, height: h, width: w };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) h = Math.round(w / ratio[0]);
  else if (inRatio > ratio[1]) w = Math.round(h * ratio[1]);
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * Bilinear resize of `box` (half-pixel centres, clamped at the box's edges, no antialiasing) —
 * the whole image as the box is `tf.image.resizeBilinear(x, size, false, true)`.
 */
export function cropResize(
  src: Float32Array | Uint8Array,
  width: number,
  channels: number,
  box: CropBox,
  outHeight: number,
  outWidth: number,
  /** Values per source pixel: see `resample`. */
  pixelStride: number = channels,
): Float32Array {
  return resample(src, width, pixelStride, channels, box, outHeight, outWidth, false, false, undefined, new Float32Array(outHeight * outWidth * channels));
}

/**
 * `cropResize`, mirrored as `flip` would, and normalised as `normalize` would when `norm` is
 * given — one pass, the same floats as the three steps (each value is rounded to float32 where
 * the steps would store it) — into `out`. A source pixel holds `pixelStride` values: with 3 or more, output
 * channel c reads value c (so RGB reads straight from RGBA); with fewer it is grey (+ alpha), and
 * its first value feeds every output channel.
 */
function resample(
  src: Float32Array | Uint8Array,
  width: number,
  pixelStride: number,
  channels: number,
  box: CropBox,
  outHeight: number,
  outWidth: number,
  flipH: boolean,
  flipV: boolean,
  norm: Normalization | undefined,
  out: Float32Array,
): Float32Array {
  const sy = box.height / outHeight;
  const sx = box.width / outWidth;
  // per output column: where its two source pixels start, and the weight of the right one
  const left = new Int32Array(outWidth);
  const right = new Int32Array(outWidth);
  const wxs = new Float64Array(outWidth);
  for (let x = 0; x < outWidth; x++) {
    const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), box.width - 1);
    const x0 = Math.floor(fx);
    left[x] = (box.left + x0) * pixelStride;
    right[x] = (box.left + Math.min(x0 + 1, box.width - 1)) * pixelStride;
    wxs[x] = fx - x0;
  }
  const grey = pixelStride < 3;
  const scale = norm?.scale ?? [];
  const offset = norm?.offset ?? [];
  const rgb = channels === 3 && !grey && norm !== undefined;
  const [s0, s1, s2] = [scale[0] ?? 1, scale[1] ?? 1, scale[2] ?? 1];
  const [f0, f1, f2] = [offset[0] ?? 0, offset[1] ?? 0, offset[2] ?? 0];
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), box.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, box.height - 1);
    const wy = fy - y0;
    const r0 = (box.top + y0) * width * pixelStride;
    const r1 = (box.top + y1) * width * pixelStride;
    const row = (flipV ? outHeight - 1 - y : y) * outWidth;
    for (let x = 0; x < outWidth; x++) {
      const wx = wxs[x]!;
      const i0 = r0 + left[x]!;
      const i1 = r0 + right[x]!;
      const i2 = r1 + left[x]!;
      const i3 = r1 + right[x]!;
      const o = (row + (flipH ? outWidth - 1 - x : x)) * channels;
      if (rgb) {
        // the common case written out (about twice as fast as the loop below): RGB to normalised floats
        let top = src[i0]! + (src[i1]! - src[i0]!) * wx;
        let bottom = src[i2]! + (src[i3]! - src[i2]!) * wx;
        out[o] = Math.fround(top + (bottom - top) * wy) * s0 + f0;
        top = src[i0 + 1]! + (src[i1 + 1]! - src[i0 + 1]!) * wx;
        bottom = src[i2 + 1]! + (src[i3 + 1]! - src[i2 + 1]!) * wx;
        out[o + 1] = Math.fround(top + (bottom - top) * wy) * s1 + f1;
        top = src[i0 + 2]! + (src[i1 + 2]! - src[i0 + 2]!) * wx;
        bottom = src[i2 + 2]! + (src[i3 + 2]! - src[i2 + 2]!) * wx;
        out[o + 2] = Math.fround(top + (bottom - top) * wy) * s2 + f2;
        continue;
      }
      for (let c = 0; c < channels; c++) {
        const k = grey ? 0 : c;
        const a = src[i0 + k]!;
        const b = src[i1 + k]!;
        const d = src[i2 + k]!;
        const e = src[i3 + k]!;
        const top = a + (b - a) * wx;
        const bottom = d + (e - d) * wx;
        const v = top + (bottom - top) * wy;
        out[o + c] = norm === undefined ? v : Math.fround(v) * scale[c]! + offset[c]!;
      }
    }
  }
  return out;
}

/** Mirrors in place: left–right and/or top–bottom. */
export function flip(px: Float32Array, height: number, width: number, channels: number, horizontal: boolean, vertical: boolean): void {
  if (!horizontal && !vertical) return;
  const src = px.slice();
  for (let y = 0; y < height; y++) {
    const sy = vertical ? height - 1 - y : y;
    for (let x = 0; x < width; x++) {
      const sx = horizontal ? width - 1 - x : x;
      for (let c = 0; c < channels; c++) px[(y * width + x) * channels + c] = src[(sy * width + sx) * channels + c]!;
    }
  }
}

/**
 * Rotation by `angle` degrees (counter-clockwise as displayed) about the centre, then a shift of
 * (shiftX, shiftY) pixels; bilinear, and 0 where the source is off the image.
 */
export function rotateShift(px: Float32Array, height: number, width: number, channels: number, angle: number, shiftX: number, shiftY: number): Float32Array {
  const out = new Float32Array(px.length);
  const t = (angle * Math.PI) / 180;
  const cos = Math.cos(t);
  const sin = Math.sin(t);
  const cx = width / 2;
  const cy = height / 2;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const dx = x + 0.5 - cx - shiftX;
      const dy = y + 0.5 - cy - shiftY;
      const fx = cos * dx - sin * dy + cx - 0.5;
      const fy = sin * dx + cos * dy + cy - 0.5;
      if (fx < -0.5 || fx > width - 0.5 || fy < -0.5 || fy > height - 0.5) continue;
      const gx = Math.min(Math.max(fx, 0), width - 1);
      const gy = Math.min(Math.max(fy, 0), height - 1);
      const x0 = Math.floor(gx);
      const y0 = Math.floor(gy);
      const x1 = Math.min(x0 + 1, width - 1);
      const y1 = Math.min(y0 + 1, height - 1);
      const wx = gx - x0;
      const wy = gy - y0;
      for (let c = 0; c < channels; c++) {
        const a = px[(y0 * width + x0) * channels + c]!;
        const b = px[(y0 * width + x1) * channels + c]!;
        const d = px[(y1 * width + x0) * channels + c]!;
        const e = px[(y1 * width + x1) * channels + c]!;
        const top = a + (b - a) * wx;
        out[(y * width + x) * channels + c] = top + (d + (e - d) * wx - top) * wy;
      }
    }
  }
  return out;
}

/**
 * torchvision ColorJitter's brightness (scale by b) then contrast (blend with the mean grey level
 * by c), each clamped to 0–255, in place.
 */
export function jitter(px: Float32Array, channels: number, brightness: number, contrast: number): void {
  if (brightness !== 1) for (let i = 0; i < px.length; i++) px[i] = Math.min(Math.max(px[i]! * brightness, 0), 255);
  if (contrast === 1) return;
  const pixels = px.length / channels;
  let sum = 0;
  for (let i = 0; i < pixels; i++) {
    sum += channels === 3 ? 0.299 * px[3 * i]! + 0.587 * px[3 * i + 1]! + 0.114 * px[3 * i + 2]! : px[i]!;
  }
  const mean = sum / pixels;
  for (let i = 0; i < px.length; i++) px[i] = Math.min(Math.max((px[i]! - mean) * contrast + mean, 0), 255);
}

/** In place: `x × scale[c] + offset[c]`. */
export function normalize(px: Float32Array, channels: number, n: Normalization): void {
  for (let i = 0; i < px.length; i++) {
    const c = i % channels;
    px[i] = px[i]! * n.scale[c]! + n.offset[c]!;
  }
}

/**
 * One decoded image (0–255: channel-adapted floats, or 8-bit values with `pixelStride` per pixel,
 * see `resample`) to a model input: the drawn transform when given (training), else the plain
 * resize (validation, inference), then normalisation. Written into `out` when given (a batch's
 * row), else into a new array.
 */
export function toModelInput(
  src: Float32Array | Uint8Array,
  height: number,
  width: number,
  channels: number,
  size: [number, number],
  norm: Normalization,
  draw?: AugmentDraw,
  pixelStride: number = channels,
  out: Float32Array = new Float32Array(size[0] * size[1] * channels),
): Float32Array {
  const [oh, ow] = size;
  const box = draw?.crop ?? { top: 0, left: 0, height, width };
  const moves = draw !== undefined && (draw.angle !== 0 || draw.shiftX !== 0 || draw.shiftY !== 0);
  const jitters = draw !== undefined && (draw.brightness !== 1 || draw.contrast !== 1);
  // crop, resize, flips and normalisation are one pass; rotation and jitter work on the resized floats
  if (!moves && !jitters) return resample(src, width, pixelStride, channels, box, oh, ow, draw?.flipH ?? false, draw?.flipV ?? false, norm, out);
  let px = resample(src, width, pixelStride, channels, box, oh, ow, draw!.flipH, draw!.flipV, undefined, out);
  if (moves) px = rotateShift(px, oh, ow, channels, draw!.angle, draw!.shiftX, draw!.shiftY);
  jitter(px, channels, draw!.brightness, draw!.contrast);
  normalize(px, channels, norm);
  if (px !== out) out.set(px);
  return out;
}
