/**
 * Image decoding and the two adaptations a pre-trained model's input needs: channel count and
 * size. Pure JS over typed arrays (no tensors), so datasets load before and independent of the
 * backend.
 */
import { createRequire } from 'node:module';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { assertNever } from '../core/errors.ts';

export interface RgbaImage {
  width: number;
  height: number;
  /** 8-bit RGBA, row-major. Grayscale sources have R = G = B. */
  rgba: Uint8Array;
}

export class ImageDecodeError extends Error {}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Decodes a PNG or JPEG by its content (not its extension). */
export function decodeImage(bytes: Uint8Array): RgbaImage {
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) {
    let png: { width: number; height: number; data: Buffer };
    try {
      png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      throw new ImageDecodeError(`corrupt or truncated PNG (${(e as Error).message})`);
    }
    return { width: png.width, height: png.height, rgba: new Uint8Array(png.data) };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    try {
      // tolerantDecoding (jpeg-js's default) would return garbage pixels for a damaged file
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, tolerantDecoding: false });
      return { width: img.width, height: img.height, rgba: img.data };
    } catch (e) {
      throw new ImageDecodeError(`corrupt JPEG (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  throw new ImageDecodeError('not a PNG or JPEG file');
}

/**
 * RGBA → `channels` floats per pixel: 3 keeps RGB (alpha dropped), 1 takes the luminance
 * Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as PIL's "L" mode); gray sources have R = G = B,
 * so gray → RGB is repetition and gray → gray is the identity.
 */
export function toChannels(img: RgbaImage, channels: 1 | 3): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(n * channels);
  const p = img.rgba;
  for (let i = 0; i < n; i++) {
    const r = p[4 * i]!;
    const g = p[4 * i + 1]!;
    const b = p[4 * i + 2]!;
    if (channels === 3) {
      out[3 * i] = r;
      out[3 * i + 1] = g;
      out[3 * i + 2] = b;
    } else {
      out[i] = r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
    }
  }
  return out;
}

/**
 * Bilinear resize with half-pixel centres and edge clamping, no antialiasing: the same as
 * `tf.image.resizeBilinear(x, size, false, true)`. HWC layout.
 */
export function resizeBilinear(
  src: Float32Array,
  height: number,
  width: number,
  channels: number,
  outHeight: number,
  outWidth: number,
): Float32Array {
  if (height === outHeight && width === outWidth) return src.slice();
  const out = new Float32Array(outHeight * outWidth * channels);
  const sy = height / outHeight;
  const sx = width / outWidth;
  for (let y = 0; y < outHeight; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, height - 1);
    const wy = fy - y0;
    for (let x = 0; x < outWidth; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, width - 1);
      const wx = fx - x0;
      for (let c = 0; c < channels; c++) {
        const a = src[(y0 * width + x0) * channels + c]!;
        const b = src[(y0 * width + x1) * channels + c]!;
        const d = src[(y1 * width + x0) * channels + c]!;
        const e = src[(y1 * width + x1) * channels + c]!;
        const top = a + (b - a) * wx;
        const bottom = d + (e - d) * wx;
        out[(y * outWidth + x) * channels + c] = top + (bottom - top) * wy;
      }
    }
  }
  return out;
}

/** Decoded, channel-adapted, resized and scaled: the floats one sample holds. */
export function imageToSample(
  bytes: Uint8Array,
  size: [number, number],
  channels: 1 | 3,
  scale: number,
): Float32Array {
  const img = decodeImage(bytes);
  const px = resizeBilinear(toChannels(img, channels), img.height, img.width, channels, size[0], size[1]);
  for (let i = 0; i < px.length; i++) px[i] = px[i]! * scale;
  return px;
}

// ---------------------------------------------------------------- header checks and decoders

/** What the header says, read without decoding the pixels. */
export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
}

/**
 * Checks an image file's header: a PNG's IHDR, or a JPEG's markers up to its frame header. Throws
 * `ImageDecodeError` for a file that is not an image, is cut short before its header ends, or has
 * a mode the decoders do not read (a CMYK or 12-bit JPEG, an unknown PNG colour type).
 */
export function probeImage(head: Uint8Array): ImageHeader {
  if (PNG_MAGIC.every((b, i) => head[i] === b)) {
    if (head.length < 33) throw new ImageDecodeError('truncated PNG: the header is cut short');
    const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
    if (String.fromCharCode(...head.subarray(12, 16)) !== 'IHDR') throw new ImageDecodeError('corrupt PNG: the first chunk is not IHDR');
    const width = view.getUint32(16);
    const height = view.getUint32(20);
    const depth = head[24]!;
    const colour = head[25]!;
    if (width === 0 || height === 0) throw new ImageDecodeError(`corrupt PNG: size ${width}×${height}`);
    const depths: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
    if (!(depths[colour]?.includes(depth) ?? false)) {
      throw new ImageDecodeError(`unsupported PNG mode: colour type ${colour} at bit depth ${depth}`);
    }
    return { format: 'png', width, height };
  }
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) {
    let i = 2;
    while (i + 4 <= head.length) {
      if (head[i] !== 0xff) throw new ImageDecodeError('corrupt JPEG: a marker was expected');
      const marker = head[i + 1]!;
      if (marker === 0xff) {
        i += 1;
        continue;
      }
      const length = (head[i + 2]! << 8) | head[i + 3]!;
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): the frame header
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        if (i + 10 > head.length) break;
        const precision = head[i + 4]!;
        const height = (head[i + 5]! << 8) | head[i + 6]!;
        const width = (head[i + 7]! << 8) | head[i + 8]!;
        const components = head[i + 9]!;
        if (marker !== 0xc0 && marker !== 0xc1 && marker !== 0xc2) {
          throw new ImageDecodeError(`unsupported JPEG mode: ${marker === 0xc3 || marker === 0xc7 ? 'lossless' : 'arithmetic-coded'} (SOF ${marker - 0xc0})`);
        }
        if (precision !== 8) throw new ImageDecodeError(`unsupported JPEG mode: ${precision}-bit samples (8-bit only)`);
        if (components !== 1 && components !== 3) {
          throw new ImageDecodeError(`unsupported JPEG mode: ${components} colour components${components === 4 ? ' (CMYK)' : ''}; save it as RGB or grey`);
        }
        if (width === 0 || height === 0) throw new ImageDecodeError(`corrupt JPEG: size ${width}×${height}`);
        return { format: 'jpeg', width, height };
      }
      if (marker === 0xd9 || marker === 0xda) throw new ImageDecodeError('corrupt JPEG: no frame header before the image data');
      i += 2 + length;
    }
    throw new ImageDecodeError('truncated JPEG: the file ends before its frame header');
  }
  if (head.length === 0) throw new ImageDecodeError('empty file');
  throw new ImageDecodeError('not a PNG or JPEG file');
}

/** `js`: jpeg-js and pngjs (always there). `sharp`: libvips (libjpeg-turbo, libpng) when it loads. */
export type DecoderName = 'sharp' | 'js';

interface SharpRaw {
  data: Buffer;
  info: { width: number; height: number; channels: number };
}
type SharpFactory = (input: Uint8Array, options: { failOn: 'warning' }) => {
  toColourspace(space: 'srgb'): ReturnType<SharpFactory>;
  ensureAlpha(): ReturnType<SharpFactory>;
  raw(options: { depth: 'uchar' }): ReturnType<SharpFactory>;
  toBuffer(options: { resolveWithObject: true }): Promise<SharpRaw>;
};

let sharpModule: SharpFactory | null | undefined;

/** sharp if its native part loads here (it is an optional dependency), else undefined. */
export function loadSharp(): SharpFactory | undefined {
  if (sharpModule === undefined) {
    try {
      const m = createRequire(__filename)('sharp') as SharpFactory & { concurrency(n: number): number };
      // one libvips thread per decoding thread: the pool provides the parallelism
      m.concurrency(1);
      sharpModule = m;
    } catch {
      sharpModule = null;
    }
  }
  return sharpModule ?? undefined;
}

/** Decodes with the named decoder; both give 8-bit RGBA with grey as R = G = B. */
export async function decodeImageWith(decoder: DecoderName, bytes: Uint8Array): Promise<RgbaImage> {
  switch (decoder) {
    case 'js':
      return decodeImage(bytes);
    case 'sharp': {
      const sharp = loadSharp();
      if (sharp === undefined) return decodeImage(bytes);
      const kind = PNG_MAGIC.every((b, i) => bytes[i] === b) ? 'PNG' : bytes[0] === 0xff && bytes[1] === 0xd8 ? 'JPEG' : undefined;
      if (kind === undefined) throw new ImageDecodeError('not a PNG or JPEG file');
      let raw: SharpRaw;
      try {
        raw = await sharp(bytes, { failOn: 'warning' }).toColourspace('srgb').ensureAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      } catch (e) {
        throw new ImageDecodeError(`${kind === 'PNG' ? 'corrupt or truncated PNG' : 'corrupt JPEG'} (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
      }
      if (raw.info.channels !== 4) throw new ImageDecodeError(`decoded to ${raw.info.channels} channels, expected RGBA`);
      return { width: raw.info.width, height: raw.info.height, rgba: new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength) };
    }
    default:
      return assertNever(decoder, 'decoder');
  }
}
