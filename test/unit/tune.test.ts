/**
 * The pure half of `tune`: the edit that applies a suggestion (comments intact, byte-identical
 * outside the edited members, one `// tuned by` line per group however often applied), the RGN
 * normalisation, and the search candidates (every one a valid plan).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGroups } from '../../src/core/groups.ts';
import type { Plan } from '../../src/core/plan.ts';
import { resolveStages } from '../../src/core/timeline.ts';
import { applyTuneResult, groupRgn, planWithChanges, rgnSuggestion, searchCandidates, type TuneResult } from '../../src/core/tune.ts';
import { validatePlanValue } from '../../src/core/validate.ts';
import { layer, model } from './model-builders.ts';

const PLAN = `// my plan
{
  "model": "m/model.json",
  "groups": [
    { "name": "low", "layers": ["a_*"] },   // general
    {
      // the middle
      "name": "mid",
      "layers": ["b_*"],
      "lrMult": 0.5 // hand-picked
    },
    { "name": "ice", "layers": ["c"], "frozen": true },
    { "name": "top", "layers": ["d"] }
  ],
  "discriminative": { "type": "ulmfit" }, // keep
  "training": { "lr": 0.01, "schedule": { "type": "stlr", "cutFrac": 0.2 } },
  "unfreeze": { "mode": "gradual" }
}
`;

const RGN: TuneResult = {
  method: 'rgn',
  date: '2026-12-05T04:00:00.000Z',
  steps: 5,
  seconds: 1,
  groups: [
    { name: 'default', current: 1, lrMult: 0.7, why: 'implicit: no plan entry' },
    { name: 'low', current: 0.148, lrMult: 0.25, why: '' },
    { name: 'mid', current: 0.5, lrMult: 0.4, why: '' },
    { name: 'ice', current: 1, lrMult: 1, frozen: true, why: 'frozen' },
    { name: 'top', current: 1, lrMult: 1, why: '' },
  ],
};

test('apply: explicit lrMults with a comment naming the method; frozen and implicit groups untouched; the rest byte-identical', () => {
  const out = applyTuneResult(PLAN, RGN, 'layerwise.json');
  assert.equal(
    out,
    `// my plan
{
  "model": "m/model.json",
  "groups": [
    // tuned by rgn on 2026-12-05
    { "name": "low", "layers": ["a_*"], "lrMult": 0.25 },   // general
    {
      // the middle
      "name": "mid",
      "layers": ["b_*"],
      // tuned by rgn on 2026-12-05
      "lrMult": 0.4 // hand-picked
    },
    { "name": "ice", "layers": ["c"], "frozen": true },
    // tuned by rgn on 2026-12-05
    { "name": "top", "layers": ["d"], "lrMult": 1 }
  ],
  "discriminative": { "type": "ulmfit" }, // keep
  "training": { "lr": 0.01, "schedule": { "type": "stlr", "cutFrac": 0.2 } },
  "unfreeze": { "mode": "gradual" }
}
`,
  );
  // applied again (another day, another method): the comment is replaced, not stacked
  const again = applyTuneResult(out, { ...RGN, method: 'search', date: '2026-12-06T00:00:00Z' });
  assert.equal(again.match(/tuned by/g)?.length, 3);
  assert.equal(again, out.replaceAll('tuned by rgn on 2026-12-05', 'tuned by search on 2026-12-06'));
});

test('apply: a search winner also writes its factor, unfreezing, epochs and schedule, in the layout of each member', () => {
  const out = applyTuneResult(PLAN, {
    ...RGN,
    method: 'search',
    groups: [],
    changes: { label: 'x', discriminative: { type: 'ulmfit', factor: 1.6 }, unfreezing: 'all', unfreeze: null, epochs: 4, schedule: { type: 'cosine' } },
  });
  assert.equal(
    out,
    PLAN.replace('{ "type": "ulmfit" }', '{ "type": "ulmfit", "factor": 1.6 }')
      .replace('"type": "stlr", "cutFrac": 0.2 } }', '"type": "cosine" }, "epochs": 4 }')
      .replace(',\n  "unfreeze": { "mode": "gradual" }', ''),
  );
});

test('apply: CRLF files keep CRLF, a group unfrozen by --include-frozen loses its frozen flag', () => {
  const crlf = PLAN.replace(/\n/g, '\r\n');
  const out = applyTuneResult(crlf, { ...RGN, groups: [{ name: 'ice', current: 1, lrMult: 0.3, why: '' }] });
  assert.ok(!/[^\r]\n/.test(out));
  assert.match(out, /\r\n {4}\/\/ tuned by rgn on 2026-12-05\r\n {4}\{ "name": "ice", "layers": \["c"\], "lrMult": 0\.3 \}/);
});

test('rgn: the group figure is ‖g‖/‖θ‖ of its tensors as one vector; the largest group gets 1', () => {
  assert.equal(groupRgn([{ gradSq: 9, weightSq: 16 }, { gradSq: 16, weightSq: 9 }]), 1);
  assert.equal(groupRgn([{ gradSq: 4, weightSq: 0 }]), undefined);
  const info = model(['a_1', 'd'].map((name) => layer(name, 'Dense', [['kernel', [2, 2]]])));
  const resolution = resolveGroups(info, { model: 'm', groups: [{ name: 'low', layers: ['a_*'] }, { name: 'top', layers: ['d'] }] });
  const s = rgnSuggestion(resolution, new Map([['low', 0.002], ['top', 0.008]]), 5);
  assert.deepEqual(s.map((g) => [g.name, g.lrMult]), [['low', 0.25], ['top', 1]]);
  assert.match(s[0]?.why ?? '', /2\.00e-3 \(mean of 5 batches\) = 0\.25 × top/);
});

test('search candidates: the plan as it is first, then every combination, each a valid plan', () => {
  const info = model(['a_1', 'b_1', 'c', 'd'].map((name) => layer(name, 'Dense', [['kernel', [2, 2]]])));
  const plan = validatePlanValue(JSON.parse(PLAN.replace(/\/\/.*$/gm, '')), 'p.json') as Plan;
  plan.training = { ...plan.training, epochs: 6 };
  const resolution = resolveGroups(info, plan);
  const stages = resolveStages(plan, resolution);
  const c = searchCandidates(plan, resolution, stages, false);
  assert.equal(c[0]?.plan, plan);
  assert.equal(c.length, 1 + 4 * 3 * 2);
  for (const x of c.slice(1)) {
    validatePlanValue(x.plan, 'p.json');
    // explicit group multipliers give way to the factor; the frozen group stays frozen
    assert.equal(x.plan.groups?.[1]?.lrMult, undefined);
    assert.equal(x.plan.groups?.[2]?.frozen, true);
    const r = resolveGroups(info, x.plan);
    assert.doesNotThrow(() => resolveStages(x.plan, r));
  }
  // with the BatchNorm policy as a dimension: twice the variants, each still valid
  const bn = searchCandidates(plan, resolution, stages, true);
  assert.equal(bn.length, 1 + 4 * 3 * 2 * 2);
  for (const x of bn.slice(1)) assert.equal(validatePlanValue(x.plan, 'p.json').batchNorm, x.changes?.batchNorm);
  const lpft = c.find((x) => x.changes?.unfreezing === 'lpft');
  assert.deepEqual(lpft?.changes?.unfreeze, { stages: [{ epochs: 2, train: ['top'] }, { epochs: 4, train: 'all' }] });
  // too few epochs for gradual unfreezing of 3 trainable groups: not a candidate
  const short = { ...plan, unfreeze: undefined, training: { ...plan.training, epochs: 2 } };
  assert.ok(!searchCandidates(short, resolution, resolveStages(short, resolution), false).some((x) => x.changes?.unfreezing === 'gradual'));
  // planWithChanges never touches the original
  planWithChanges(plan, lpft?.changes ?? assert.fail());
  assert.equal(plan.groups?.[1]?.lrMult, 0.5);
});

test('protocol: a tune request and its result are checked on arrival', async () => {
  const { isHostToWorker, isWorkerToHost } = await import('../../src/protocol/worker.ts');
  const { isHostToWebview } = await import('../../src/protocol/webview.ts');
  const target = { planFile: '/w/layerwise.json', workspaceRoot: '/w', backend: 'cpu' };
  assert.equal(isHostToWorker({ type: 'tune', id: 't', ...target, method: 'rgn' }), true);
  assert.equal(isHostToWorker({ type: 'tune', id: 't', ...target, method: 'search', budget: 300, includeFrozen: true }), true);
  assert.equal(isHostToWorker({ type: 'tune', id: 't', ...target, method: 'magic' }), false);
  assert.equal(isHostToWorker({ type: 'tune', id: 't', ...target, method: 'search', budget: '300' }), false);
  assert.equal(isWorkerToHost({ type: 'tuned', id: 't', result: RGN }), true);
  assert.equal(isWorkerToHost({ type: 'tuned', id: 't', result: { ...RGN, groups: [{ name: 'x', lrMult: 'big' }] } }), false);
  assert.equal(isHostToWebview({ type: 'suggestion', suggestion: { state: 'ready', result: RGN } }), true);
  assert.equal(isHostToWebview({ type: 'suggestion', suggestion: { state: 'running', method: 'guess' } }), false);
});
