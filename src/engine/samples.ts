/**
 * From files to model inputs, for one batch: images read, decoded, augmented (training) and
 * normalised. Pure over its inputs (file bytes, recipe, epoch,
 * sample ids): a decode thread and the calling thread give the same floats, which is what makes
 * batches independent of the thread count.
 */
import { readFileSync } from 'node:fs';
import type { AugmentSpec } from '../core/plan.ts';
import { drawAugment, sampleRng, toModelInput, type Normalization } from './augment.ts';
import { decodeImageWith, ImageDecodeError, luminance, probeImage, type DecoderName } from './image.ts';

/** How every sample of a dataset becomes a model input. Plain data: it is posted to threads. */
export interface SampleRecipe {
  size: [number, number];
  channels: 1 | 3;
  norm: Normalization;
  /** The plan's transforms; used for jobs with `augment: true` only. */
  augment?: AugmentSpec;
  seed: number;
  decoder: DecoderName;
}

export interface DecodeJob {
  files: string[];
  /** Each file's sample id in its dataset: with the epoch, it seeds the sample's augmentation. */
  samples: number[];
  epoch: number;
  augment: boolean;
}

export interface BadSample {
  row: number;
  file: string;
  message: string;
}

export interface DecodedBatch {
  /** files.length rows; a bad file's row is zeros. */
  x: Float32Array;
  bad: BadSample[];
}

export function sampleSize(recipe: Pick<SampleRecipe, 'size' | 'channels'>): number {
  return recipe.size[0] * recipe.size[1] * recipe.channels;
}

/** One batch: the only entry point of the pool and its threads. */
export async function decodeBatch(recipe: SampleRecipe, job: DecodeJob): Promise<DecodedBatch> {
  const size = sampleSize(recipe);
  // shared, not transferred: a transferred buffer of a few MB per batch cost the training thread
  // several ms of garbage collection per step (measured); the thread never touches it again
  const x = new Float32Array(new SharedArrayBuffer(job.files.length * size * Float32Array.BYTES_PER_ELEMENT));
  const bad: BadSample[] = [];
  for (let row = 0; row < job.files.length; row++) {
    const file = job.files[row]!;
    try {
      await decodeSample(recipe, file, job.augment ? { epoch: job.epoch, sample: job.samples[row]! } : undefined, x.subarray(row * size, (row + 1) * size));
    } catch (e) {
      if (e instanceof ImageDecodeError) bad.push({ row, file, message: e.message });
      else if (e instanceof Error && 'code' in e) bad.push({ row, file, message: `cannot read the file (${String((e as NodeJS.ErrnoException).code)})` });
      else throw e;
    }
  }
  return { x, bad };
}

/** One file to one sample (into `out` when given); `at` draws the sample's augmentation for that epoch. */
export async function decodeSample(recipe: SampleRecipe, file: string, at?: { epoch: number; sample: number }, out?: Float32Array): Promise<Float32Array> {
  const bytes = readFileSync(file);
  // the header first: a mode the decoders would misread (CMYK, 12-bit, lossless) is named as such
  const img = await decodeImageWith(recipe.decoder, bytes, probeImage(bytes));
  const draw = at !== undefined && recipe.augment !== undefined
    ? drawAugment(recipe.augment, sampleRng(recipe.seed, at.epoch, at.sample), img.height, img.width, recipe.size)
    : undefined;
  // the decoded bytes are read in place (no float copy of the full-size image), but a colour image
  // read as grey needs its luminance first
  return recipe.channels === 1 && img.channels >= 3
    ? toModelInput(luminance(img), img.height, img.width, 1, recipe.size, recipe.norm, draw, 1, out)
    : toModelInput(img.pixels, img.height, img.width, recipe.channels, recipe.size, recipe.norm, draw, img.channels, out);
}
