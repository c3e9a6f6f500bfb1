/**
 * Image decoding and the two adaptations a pre-trained model's input needs: channel count and
 * size. Pure JS over typed arrays (no tensors), so datasets load before and independent of the
 * backend.
 */
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';

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
