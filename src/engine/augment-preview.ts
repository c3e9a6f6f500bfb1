/**
 * A strip of augmented training samples for the plan editor: the first training image of a few
 * classes, each as the model sees it without augmentation and under the draws the run gives it
 * (training sample i in epochs 0, 1, …: the training part listed as the run lists it, after a
 * validationSplit has taken its share). Pixels before normalisation, as small JPEG data URLs (the
 * panel's CSP allows data: images).
 */
import * as jpeg from 'jpeg-js';
import * as path from 'node:path';
import { augmentIsOn, type Plan } from '../core/plan.ts';
import { resolvePlanPath } from '../core/paths.ts';
import type { AugmentPreview } from '../protocol/worker.ts';
import { normalization } from './augment.ts';
import { argmaxRow, loadData, type Dataset } from './data.ts';
import { decodeSample } from './samples.ts';

const CLASSES_SHOWN = 4;
const DRAWS = 4;

/** Undefined when the plan has no image folder or no augmentation switched on. */
export async function augmentPreview(plan: Plan, planFile: string, workspaceRoot: string, inputShape: Array<number | null>): Promise<AugmentPreview | undefined> {
  const spec = plan.data;
  if (spec === undefined || !augmentIsOn(spec.augment) || spec.format === 'csv') return undefined;
  const root = resolvePlanPath(planFile, spec.train, 'data.train', workspaceRoot);
  if (path.extname(root).toLowerCase() === '.csv') return undefined;
  // augmentation streams: this lists the files and labels, it decodes nothing
  const data = await loadData(plan, planFile, workspaceRoot, inputShape, { pipeline: 'stream', decodeThreads: 0 });
  try {
    const stream = data.train.stream;
    if (stream?.kind !== 'images') return undefined;
    // 0–255 pixels: the preview shows what augmentation does, not the normalised numbers
    const recipe = { ...stream.recipe, norm: normalization('unit', stream.recipe.channels, 1) };
    const [height, width] = recipe.size;
    const samples: AugmentPreview['samples'] = [];
    for (const { label, sample } of firstOfEachClass(data.train, CLASSES_SHOWN)) {
      const file = stream.files[sample]!;
      try {
        const images = [await decodeSample(recipe, file)];
        for (let epoch = 0; epoch < DRAWS; epoch++) images.push(await decodeSample(recipe, file, { epoch, sample }));
        samples.push({ label, file: path.relative(workspaceRoot, file), images: images.map((px) => toJpegDataUrl(px, recipe.size, recipe.channels)) });
      } catch {
        // an unreadable first image: the run reports it; the preview shows the other classes
      }
    }
    return { width, height, samples };
  } finally {
    await data.pool?.close();
  }
}

/** The training set's first sample of each of its first `count` classes (class order), by index. */
export function firstOfEachClass(train: Dataset, count: number): Array<{ label: string; sample: number }> {
  const found = new Map<number, number>();
  for (let s = 0; s < train.n; s++) {
    const c = argmaxRow(train.y, s, train.targetSize);
    if (!found.has(c)) found.set(c, s);
  }
  return [...found.entries()]
    .sort((a, b) => a[0] - b[0])
    .slice(0, count)
    .map(([c, sample]) => ({ label: train.classes?.[c] ?? String(c), sample }));
}

export function toJpegDataUrl(px: Float32Array, size: [number, number], channels: number): string {
  const [h, w] = size;
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = Math.round(Math.min(255, Math.max(0, px[i * channels + (channels === 3 ? c : 0)]!)));
    rgba[4 * i + 3] = 255;
  }
  return `data:image/jpeg;base64,${Buffer.from(jpeg.encode({ width: w, height: h, data: rgba }, 85).data).toString('base64')}`;
}
