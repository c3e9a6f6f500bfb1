/**
 * Cost of a frozen-base stage relative to a full fine-tune, on the bundled example: one epoch
 * training only the head vs one epoch training every group, with the engine's own step (no
 * gradient is computed below the lowest trainable layer). Prints seconds and the ratio
 * (goal ≤ 0.25×). Run: npx tsx bench/frozen-stage.ts [plan]
 */
import { resolve } from 'node:path';
import { DEFAULTS } from '../src/core/plan.ts';
import { epochOrder } from '../src/engine/data.ts';
import { lossSpecFor, ModeControl } from '../src/engine/forward.ts';
import { GroupedOptimizer } from '../src/engine/optimizer.ts';
import { prepareRun, type BoundParam } from '../src/engine/session.ts';
import { optimizerSettings, trainStep } from '../src/engine/trainer.ts';

async function main(): Promise<void> {
  const planFile = resolve(process.argv[2] ?? 'examples/fashion/layerwise.json');
  const run = await prepareRun({ planFile, backend: (process.env['BACKEND'] as 'auto' | undefined) ?? 'auto' });
  const lossSpec = lossSpecFor(run.model, run.task);
  const batch = run.plan.training?.batchSize ?? DEFAULTS.batchSize;
  const groups = run.resolution.groups;
  const top = groups[groups.length - 1]?.name;
  const epoch = (trainable: BoundParam[]): number => {
    const modes = new ModeControl(run.model);
    const layers = new Set(trainable.map((p) => p.layerName));
    modes.setInferenceLayers(run.info.layers.filter((l) => !layers.has(l.name)).map((l) => l.name));
    const opt = new GroupedOptimizer(optimizerSettings(run));
    const order = epochOrder(run.data.train.n, false, 0, 0);
    const t0 = performance.now();
    for (let b = 0; b * batch < order.length; b++) {
      trainStep(run, lossSpec, opt, trainable, run.data.train, order.slice(b * batch, (b + 1) * batch), () => 1e-4, false);
    }
    const s = (performance.now() - t0) / 1000;
    opt.dispose();
    modes.restore();
    return s;
  };
  const all = run.params.filter((p) => p.audit.trainable && !p.audit.frozen);
  const head = all.filter((p) => p.audit.group === top);
  epoch(head); // warm-up
  epoch(all);
  const heads: number[] = [];
  const fulls: number[] = [];
  for (let r = 0; r < 3; r++) {
    heads.push(epoch(head));
    fulls.push(epoch(all));
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const h = med(heads);
  const f = med(fulls);
  console.log(`backend: ${run.backend.name}; plan: ${planFile}; ${run.data.train.n} samples, batch ${batch}`);
  console.log(`  epoch training only "${top}" (${head.length} weights): ${h.toFixed(3)} s`);
  console.log(`  epoch training every group (${all.length} weights): ${f.toFixed(3)} s`);
  console.log(`  frozen-base stage / full fine-tune = ${(h / f).toFixed(3)}× (goal ≤ 0.25×)`);
  run.model.dispose();
}

void main();
