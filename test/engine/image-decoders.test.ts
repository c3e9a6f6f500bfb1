// The decoders against each other on every PNG mode the header check lets through, as the
// pipeline reads them (1 or 3 channels), and a JPEG cut short named by each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as jpeg from 'jpeg-js';
import { PNG, type ColorType } from 'pngjs';
import { IMAGENET_STD } from '../../src/core/plan.ts';
import { normalization } from '../../src/engine/augment.ts';
import { decodeImageWith, defaultDecoder, ImageDecodeError, jpegHasEnd, probeImage, type DecoderName } from '../../src/engine/image.ts';
import { decodeSample, type SampleRecipe } from '../../src/engine/samples.ts';

const W = 13;
const H = 9;

/** A PNG of colour type `colorType` and `bitDepth` from fixed RGBA pixels (alpha varies). */
function png(colorType: ColorType, bitDepth: 8 | 16): Buffer {
  const p = new PNG({ width: W, height: H });
  for (let i = 0; i < W * H; i++) p.data.set([(i * 37) & 255, (i * 91 + 40) & 255, (i * 13) & 255, (i * 29) & 255], 4 * i);
  return PNG.sync.write(p, { colorType, bitDepth, inputColorType: 6, inputHasAlpha: true });
}

const modes: Array<[string, Buffer]> = [
  ['grey', png(0, 8)],
  ['RGB', png(2, 8)],
  ['grey + alpha', png(4, 8)],
  ['RGBA', png(6, 8)],
  ['RGBA 16-bit', png(6, 16)],
];

const native: DecoderName[] = ['sharp', 'image-rs'];

test('every PNG mode: the native decoders give pngjs\'s samples exactly, read as 1 or 3 channels, resized and normalised', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'layerwise-decoders-'));
  for (const [name, bytes] of modes) {
    const file = path.join(dir, `${name}.png`);
    writeFileSync(file, bytes);
    for (const channels of [1, 3] as const) {
      const recipe = (decoder: DecoderName): SampleRecipe => ({ size: [5, 7], channels, norm: normalization('imagenet', 3), seed: 0, decoder });
      const want = await decodeSample(recipe('js'), file);
      for (const decoder of native) {
        const got = await decodeSample(recipe(decoder), file);
        const what = `${name} as ${channels} channel(s), ${decoder}`;
        // sharp takes 16 bits to 8 through libvips' colour conversion, which rounds some values the other way
        if (decoder === 'sharp' && name.includes('16-bit')) {
          const level = 1 / (255 * Math.min(...IMAGENET_STD));
          assert.ok(got.every((v, i) => Math.abs(v - want[i]!) <= level + 1e-6), what);
        } else assert.deepEqual(got, want, what);
      }
    }
  }
});

test('a JPEG cut short: each decoder names it (the Rust decoder would fill the rest with grey, so its end marker is checked)', async () => {
  const rgba = Buffer.alloc(32 * 32 * 4);
  for (let i = 0; i < 32 * 32; i++) rgba.set([(i * 7) & 255, (i * 3) & 255, 128, 255], 4 * i);
  const whole = Buffer.from(jpeg.encode({ width: 32, height: 32, data: rgba }, 90).data);
  assert.equal(jpegHasEnd(whole), true);
  // bytes after the end marker (some cameras append data) are not a cut
  assert.equal(jpegHasEnd(Buffer.concat([whole, Buffer.from('trailing data')])), true);
  const cut = whole.subarray(0, Math.floor(whole.length * 0.8));
  assert.equal(jpegHasEnd(cut), false);
  for (const decoder of ['js', ...native] as DecoderName[]) {
    await assert.rejects(decodeImageWith(decoder, cut, probeImage(cut)), (e: Error) => e instanceof ImageDecodeError && /JPEG/.test(e.message), decoder);
    const img = await decodeImageWith(decoder, whole, probeImage(whole));
    assert.deepEqual([img.width, img.height, img.channels], [32, 32, 3], decoder);
  }
});

test('the default decoder is the fastest that loads here', () => {
  assert.equal(defaultDecoder(), 'image-rs');
});
