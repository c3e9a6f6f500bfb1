/**
 * `layerwise export`: the plan carried to engines that outgrow one machine. Pure generators from
 * (plan, resolution, stages) to source text; the CLI writes the file.
 */
import { assertNever } from '../errors.ts';
import { exportHfTrainer } from './hf-trainer.ts';
import { exportMmengine } from './mmengine.ts';
import { exportPytorch } from './pytorch.ts';
import type { ExportInput, ExportTarget } from './python.ts';

export { EXPORT_TARGETS, type ExportInput, type ExportTarget } from './python.ts';

export function exportPlan(target: ExportTarget, input: ExportInput): string {
  switch (target) {
    case 'pytorch':
      return exportPytorch(input);
    case 'hf-trainer':
      return exportHfTrainer(input);
    case 'mmengine':
      return exportMmengine(input);
    default:
      return assertNever(target, 'export target');
  }
}
