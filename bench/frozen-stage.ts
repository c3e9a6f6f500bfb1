/**
 * Cost of a frozen-base stage relative to a full fine-tune, on the bundled example: one epoch
 * training only the head vs one epoch training every group, with the engine's own step (no
 * gradient is computed below the lowest trainable layer), and the head-only epoch again with
 * the frozen prefix computed once per stage (prefix-cache.ts; the one-off cost is printed
 * apart, as a stage pays it once for all its epochs). Prints seconds and the ratios
 * (goal ≤ 0.25×). Run: npx tsx bench/frozen-stage.ts [plan]
 */
import { resolve } from 'node:path';
import { DEFAULTS } from '../src/core/plan.ts';
import { epochOrder } from '../src/engine/data.ts';
import { lossSpecFor, ModeControl } from '../src/engine/forward.ts';
import { GroupedOptimizer } from '../src/engine/optimizer.ts';
import { buildFrozenPrefix, type FrozenPrefix } from '../src/engine/prefix-cache.ts';
import { prepareRun, trainingParams, type BoundParam } from '../src/engine/session.ts';
import { optimizerSettings, trainStep } from '../src/engine/trainer.ts';

async function main(): Promise<void> {
  const planFile = resolve(process.argv[2] ?? 'examples/fashion/layerwise.json');
  const run = await prepareRun({ planFile, backend: (process.env['BACKEND'] as 'auto' | undefined) ?? 'auto' });
  const lossSpec = lossSpecFor(run.model, run.task);
  const batch = run.plan.training?.batchSize ?? DEFAULTS.batchSize;
  const groups = run.resolution.groups;
  const top = groups[groups.length - 1]?.name;
  const epoch = (trainable: BoundParam[], prefix?: FrozenPrefix): number => {
    const modes = new ModeControl(run.model);
    const layers = new Set(trainable.map((p) => p.layerName));
    modes.trainOnly(layers);
    const opt = new GroupedOptimizer(optimizerSettings(run));
    const order = epochOrder(run.data.train.n, false, 0, 0);
    const t0 = performance.now();
    for (let b = 0; b * batch < order.length; b++) {
      trainStep(run, lossSpec, opt, trainable, prefix?.dataset ?? run.data.train, order.slice(b * batch, (b + 1) * batch), () => 1e-4, false, prefix);
    }
    const s = (performance.now() - t0) / 1000;
    opt.dispose();
    modes.restore();
    return s;
  };
  const all = trainingParams(run.params);
  const head = all.filter((p) => p.audit.group === top);
  const built = buildFrozenPrefix(run.model, new Set(head.map((p) => p.layerName)), run.data.train, batch);
  if (built.cached === undefined) throw new Error(`no frozen prefix to cache: ${built.reason}`);
  const prefix = built.cached;
  epoch(head); // warm-up
  epoch(all);
  epoch(head, prefix);
  const heads: number[] = [];
  const fulls: number[] = [];
  const cachedHeads: number[] = [];
  for (let r = 0; r < 5; r++) {
    // alternating, so drift on a shared machine hits all three alike
    heads.push(epoch(head));
    fulls.push(epoch(all));
    cachedHeads.push(epoch(head, prefix));
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const h = med(heads);
  const f = med(fulls);
  const c = med(cachedHeads);
  console.log(`backend: ${run.backend.name}; plan: ${planFile}; ${run.data.train.n} samples, batch ${batch}`);
  console.log(`  epoch training only "${top}" (${head.length} weights): ${h.toFixed(3)} s`);
  console.log(`  epoch training every group (${all.length} weights): ${f.toFixed(3)} s`);
  console.log(`  epoch training only "${top}", frozen prefix cached: ${c.toFixed(3)} s ` +
    `(+ ${prefix.seconds.toFixed(3)} s once per stage for ${prefix.cachedLayers.length} layers, ${(prefix.bytes / 1024).toFixed(0)} KB)`);
  console.log(`  frozen-base stage / full fine-tune = ${(h / f).toFixed(3)}× without the cache, ${(c / f).toFixed(3)}× with it (goal ≤ 0.25×)`);
  console.log(`  the cache makes a head-only epoch ${(h / c).toFixed(1)}× faster`);
  run.model.dispose();
}

void main();
