/**
 * What the panel's per-state extras cost next to the work every state already does, in one
 * process on the render bench's 1,000-layer fixture: resolving the plan and building the tree
 * model (every state), against finding the active preset (every state) and filtering (per key).
 *
 *   node --import tsx bench/panel-logic.ts [layers] [repeats]
 */
import { resolveGroups } from '../src/core/groups.ts';
import { activePresets } from '../src/core/presets.ts';
import { bigModel, bigPlan } from '../test/webview/fixtures.ts';
import { buildTreeModel, filterTree } from '../webview/view-model.ts';

const layers = Number(process.argv[2] ?? 1000);
const repeats = Number(process.argv[3] ?? 30);
const model = bigModel(layers);
const plan = bigPlan();

function time(f: () => unknown): number {
  for (let i = 0; i < 5; i++) f();
  const t0 = performance.now();
  for (let i = 0; i < repeats; i++) f();
  return (performance.now() - t0) / repeats;
}

const resolution = resolveGroups(model, plan);
const tree = buildTreeModel(resolution, plan);
const resolve = time(() => resolveGroups(model, plan));
const build = time(() => buildTreeModel(resolution, plan));
const active = time(() => activePresets(plan, model, resolution));
const filter = time(() => filterTree(tree, 'normalization block_3/'));
const base = resolve + build;
const pct = (x: number): string => `${((x / base) * 100).toFixed(1)}%`;
console.log(`panel logic, ${layers} layers in ${plan.groups?.length ?? 0} groups, mean of ${repeats}`);
console.log(`  every state: resolve ${resolve.toFixed(2)} ms + tree model ${build.toFixed(2)} ms`);
console.log(`  active preset ${active.toFixed(2)} ms (${pct(active)} of that) · filter ${filter.toFixed(2)} ms (${pct(filter)})`);
