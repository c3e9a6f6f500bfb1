/**
 * A strip of augmented training samples for the plan editor: the first image of a few classes,
 * each as the model sees it without augmentation and under a few draws of the plan's
 * `data.augment` (the draws of sample i in epochs 0, 1, …). Pixels before normalisation, as
 * small JPEG data URLs (the panel's CSP allows data: images).
 */
import * as jpeg from 'jpeg-js';
import * as path from 'node:path';
import { augmentIsOn, DEFAULTS, type Plan } from '../core/plan.ts';
import { resolvePlanPath } from '../core/paths.ts';
import type { AugmentPreview } from '../protocol/worker.ts';
import { normalization } from './augment.ts';
import { listClassFolders, listImages } from './data.ts';
import { defaultDecoder } from './image.ts';
import { decodeSample, type SampleRecipe } from './samples.ts';

const CLASSES_SHOWN = 4;
const DRAWS = 4;

/** Undefined when the plan has no image folder or no augmentation switched on. */
export async function augmentPreview(plan: Plan, planFile: string, workspaceRoot: string, inputShape: Array<number | null>): Promise<AugmentPreview | undefined> {
  const spec = plan.data;
  if (spec === undefined || !augmentIsOn(spec.augment) || spec.format === 'csv') return undefined;
  const root = resolvePlanPath(planFile, spec.train, 'data.train', workspaceRoot);
  if (path.extname(root).toLowerCase() === '.csv') return undefined;
  const [, mh, mw, mc] = inputShape;
  const size: [number, number] | undefined = spec.size ?? (mh != null && mw != null ? [mh, mw] : undefined);
  const channels = spec.channels ?? mc;
  if (size === undefined || (channels !== 1 && channels !== 3)) return undefined;
  // 0–255 pixels: the preview shows what augmentation does, not the normalised numbers
  const recipe: SampleRecipe = {
    size, channels, norm: normalization('unit', channels, 1), augment: spec.augment!, seed: spec.seed ?? DEFAULTS.seed,
    decoder: defaultDecoder(),
  };
  const samples: AugmentPreview['samples'] = [];
  let sampleId = 0;
  for (const cls of listClassFolders(root, planFile, 'data.train')) {
    const files = listImages(path.join(root, cls), 'data.train');
    if (samples.length < CLASSES_SHOWN) {
      const file = files[0]!;
      try {
        const images = [await decodeSample(recipe, file)];
        for (let epoch = 0; epoch < DRAWS; epoch++) images.push(await decodeSample(recipe, file, { epoch, sample: sampleId }));
        samples.push({ label: cls, file: path.relative(workspaceRoot, file), images: images.map((px) => toJpegDataUrl(px, size, channels)) });
      } catch {
        // an unreadable first image: the run reports it; the preview shows the other classes
      }
    }
    sampleId += files.length;
  }
  return { width: size[1], height: size[0], samples };
}

function toJpegDataUrl(px: Float32Array, size: [number, number], channels: number): string {
  const [h, w] = size;
  const rgba = Buffer.alloc(w * h * 4);
  for (let i = 0; i < w * h; i++) {
    for (let c = 0; c < 3; c++) rgba[4 * i + c] = Math.round(Math.min(255, Math.max(0, px[i * channels + (channels === 3 ? c : 0)]!)));
    rgba[4 * i + 3] = 255;
  }
  return `data:image/jpeg;base64,${Buffer.from(jpeg.encode({ width: w, height: h, data: rgba }, 85).data).toString('base64')}`;
}
