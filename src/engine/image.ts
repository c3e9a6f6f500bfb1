/**
 * Image decoding to 8-bit pixels (typed arrays, no tensors, so datasets load before and
 * independent of the backend), and the header check that names a file the decoders cannot read.
 */
import { createRequire } from 'node:module';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { assertNever } from '../core/errors.ts';

/** Decoded 8-bit pixels, row-major: `channels` values per pixel — 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA. */
export interface DecodedImage {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  pixels: Uint8Array;
}

export class ImageDecodeError extends Error {}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Decodes a PNG or JPEG by its content (not its extension) with pngjs (RGBA) or jpeg-js (RGB). */
export function decodeImage(bytes: Uint8Array): DecodedImage {
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) {
    let png: { width: number; height: number; data: Buffer };
    try {
      png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    } catch (e) {
      throw new ImageDecodeError(`corrupt or truncated PNG (${(e as Error).message})`);
    }
    return { width: png.width, height: png.height, channels: 4, pixels: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
  }
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    try {
      // tolerantDecoding (jpeg-js's default) would return garbage pixels for a damaged file
      const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false });
      return { width: img.width, height: img.height, channels: 3, pixels: img.data };
    } catch (e) {
      throw new ImageDecodeError(`corrupt JPEG (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  throw new ImageDecodeError('not a PNG or JPEG file');
}

/**
 * The luminance of each pixel as floats: Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, as PIL's
 * "L" mode) of a colour pixel with R, G, B not all equal, else its grey value.
 */
export function luminance(img: DecodedImage): Float32Array {
  const n = img.width * img.height;
  const out = new Float32Array(n);
  const p = img.pixels;
  const k = img.channels;
  for (let i = 0; i < n; i++) {
    if (k < 3) {
      out[i] = p[k * i]!;
      continue;
    }
    const r = p[k * i]!;
    const g = p[k * i + 1]!;
    const b = p[k * i + 2]!;
    out[i] = r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
  }
  return out;
}

// ---------------------------------------------------------------- header checks and decoders

/** What the header says, read without decoding the pixels. */
export interface ImageHeader {
  format: 'png' | 'jpeg';
  width: number;
  height: number;
  /** Bits per sample: a PNG's 1–16; 8 for a JPEG (the only depth read). */
  depth: number;
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
    return { format: 'png', width, height, depth };
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
          throw new ImageDecodeError(`unsupported JPEG mode: ${jpegModeName(marker)} (SOF ${marker - 0xc0})`);
        }
        if (precision !== 8) throw new ImageDecodeError(`unsupported JPEG mode: ${precision}-bit samples (8-bit only)`);
        if (components !== 1 && components !== 3) {
          throw new ImageDecodeError(`unsupported JPEG mode: ${components} colour components${components === 4 ? ' (CMYK)' : ''}; save it as RGB or grey`);
        }
        if (width === 0 || height === 0) throw new ImageDecodeError(`corrupt JPEG: size ${width}×${height}`);
        return { format: 'jpeg', width, height, depth: 8 };
      }
      if (marker === 0xd9 || marker === 0xda) throw new ImageDecodeError('corrupt JPEG: no frame header before the image data');
      i += 2 + length;
    }
    throw new ImageDecodeError('truncated JPEG: the file ends before its frame header');
  }
  if (head.length === 0) throw new ImageDecodeError('empty file');
  throw new ImageDecodeError('not a PNG or JPEG file');
}

/** What a frame marker other than baseline, extended and progressive Huffman (SOF 0–2) is. */
function jpegModeName(marker: number): string {
  const sof = marker - 0xc0;
  const parts: string[] = [];
  // SOF 5–7 and 13–15 are hierarchical; 3, 7, 11, 15 lossless; 9–11 and 13–15 arithmetic-coded
  if ((sof >= 5 && sof <= 7) || sof >= 13) parts.push('hierarchical');
  if (sof % 4 === 3) parts.push('lossless');
  if (sof >= 9) parts.push('arithmetic-coded');
  return parts.join(', ');
}

/**
 * Whether a JPEG's entropy-coded data ends: an end-of-image marker after the first start-of-scan.
 * A file cut short lacks it (0xFF 0xD9 cannot occur inside scan data, where 0xFF is stuffed).
 */
export function jpegHasEnd(bytes: Uint8Array): boolean {
  let i = 2;
  while (i + 4 <= bytes.length && bytes[i] === 0xff) {
    const marker = bytes[i + 1]!;
    if (marker === 0xff) {
      i += 1;
      continue;
    }
    if (marker === 0xda) {
      const eoi = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).lastIndexOf(EOI);
      return eoi > i;
    }
    i += 2 + ((bytes[i + 2]! << 8) | bytes[i + 3]!);
  }
  return false;
}

const EOI = Buffer.from([0xff, 0xd9]);

/**
 * `image-rs`: @napi-rs/image (the Rust image crate, prebuilt) when it loads. `sharp`: libvips
 * (libjpeg-turbo, libpng) when it loads. `js`: jpeg-js and pngjs (always there).
 */
export type DecoderName = 'image-rs' | 'sharp' | 'js';

type NapiImage = { Transformer: new (input: Uint8Array) => { rawPixelsSync(): Buffer } };

interface SharpRaw {
  data: Buffer;
  info: { width: number; height: number; channels: number };
}
interface SharpPipeline {
  toColourspace(space: 'srgb'): SharpPipeline;
  ensureAlpha(): SharpPipeline;
  raw(options: { depth: 'uchar' }): SharpPipeline;
  toBuffer(options: { resolveWithObject: true }): Promise<SharpRaw>;
}
type SharpFactory = (input: Uint8Array, options: { failOn: 'warning' }) => SharpPipeline;

/** An optional dependency's module if its native part loads here, else null; required once. */
function optional<T>(name: string, setUp: (m: T) => void = () => undefined): () => T | undefined {
  let m: T | null | undefined;
  return () => {
    if (m === undefined) {
      try {
        m = createRequire(__filename)(name) as T;
        setUp(m);
      } catch {
        m = null;
      }
    }
    return m ?? undefined;
  };
}

const loadNapiImage = optional<NapiImage>('@napi-rs/image');

/** sharp if its native part loads here (it is an optional dependency), else undefined. */
export const loadSharp = optional<SharpFactory & { concurrency(n: number): number; cache(on: boolean): unknown }>('sharp', (m) => {
  // one libvips thread per decoding thread: the pool provides the parallelism
  m.concurrency(1);
  // each file is decoded once per epoch: libvips' operation cache (up to 50 MB of results) would
  // hold memory for nothing (its CPU effect was within the noise)
  m.cache(false);
});

/** The fastest decoder that loads here. */
export function defaultDecoder(): DecoderName {
  return loadNapiImage() !== undefined ? 'image-rs' : loadSharp() !== undefined ? 'sharp' : 'js';
}

/**
 * Decodes with the named decoder (the pure-JS one when it does not load); `header` is the file's
 * `probeImage`. Every decoder gives the file's own channels at 8 bits, alpha kept (callers drop it).
 */
export async function decodeImageWith(decoder: DecoderName, bytes: Uint8Array, header: ImageHeader): Promise<DecodedImage> {
  const kind = header.format === 'png' ? 'corrupt or truncated PNG' : 'corrupt JPEG';
  const failed = (e: unknown): ImageDecodeError => new ImageDecodeError(`${kind} (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`);
  switch (decoder) {
    case 'js':
      return decodeImage(bytes);
    case 'image-rs': {
      const napi = loadNapiImage();
      // a 16-bit PNG would come out at 16 bits: pngjs scales it
      if (napi === undefined || header.depth > 8) return decodeImage(bytes);
      // the Rust decoder fills a cut-short JPEG with grey instead of failing
      if (header.format === 'jpeg' && !jpegHasEnd(bytes)) throw new ImageDecodeError('truncated JPEG: the file ends before its end-of-image marker');
      let pixels: Buffer;
      try {
        pixels = new napi.Transformer(bytes).rawPixelsSync();
      } catch (e) {
        throw failed(e);
      }
      return withChannels(header, pixels);
    }
    case 'sharp': {
      const sharp = loadSharp();
      if (sharp === undefined) return decodeImage(bytes);
      let raw: SharpRaw;
      try {
        const pipeline = sharp(bytes, { failOn: 'warning' });
        // 8-bit sources come out as they are; a 16-bit PNG is converted to 8-bit sRGB + alpha
        raw = await (header.depth > 8 ? pipeline.toColourspace('srgb').ensureAlpha() : pipeline).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
      } catch (e) {
        throw failed(e);
      }
      return withChannels(header, raw.data);
    }
    default:
      return assertNever(decoder, 'decoder');
  }
}

/** 8-bit pixels of the header's size, their channel count read from their length. */
function withChannels(header: ImageHeader, pixels: Buffer): DecodedImage {
  const channels = pixels.length / (header.width * header.height);
  if (channels !== 1 && channels !== 2 && channels !== 3 && channels !== 4) {
    throw new ImageDecodeError(`decoded to ${pixels.length} bytes, not 1–4 per pixel of ${header.width}×${header.height}`);
  }
  return { width: header.width, height: header.height, channels, pixels: new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength) };
}
