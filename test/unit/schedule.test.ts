import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scheduleCurve, scheduleFactor, warmupSteps } from '../../src/core/schedule.ts';
import type { ScheduleSpec } from '../../src/core/plan.ts';

interface FixtureConfig {
  name: string;
  groups: Array<{ name: string; lr: number }>;
  lrs: number[][];
  schedule?: { spec: ScheduleSpec; T: number };
}

interface Fixture {
  caseA: { configs: FixtureConfig[] };
  caseB: {
    plan: { training: { lr: number; schedule: ScheduleSpec }; groups: Array<{ lrMult: number }> };
    steps: number;
    lrs: number[][];
  };
}

const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, '..', 'fixtures', 'torch-reference.json'), 'utf8'),
) as Fixture;

function assertClose(actual: number, expected: number, rel: number, what: string): void {
  const tolerance = expected === 0 ? 1e-15 : rel * Math.abs(expected);
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: got ${actual}, expected ${expected}`);
}

test('scheduleFactor reproduces the LR of every group at every step of the PyTorch runs', () => {
  const scheduled = fixture.caseA.configs.filter((c) => c.schedule !== undefined);
  assert.equal(scheduled.length, 7, 'one fixture run per schedule variant');
  for (const config of scheduled) {
    const { spec, T } = config.schedule!;
    assert.equal(config.lrs.length, T);
    config.lrs.forEach((row, t) => {
      config.groups.forEach((group, g) => {
        assertClose(group.lr * scheduleFactor(spec, t, T), row[g]!, 1e-7, `${config.name} t=${t} ${group.name}`);
      });
    });
  }
});

test('scheduleFactor reproduces the trainer-level reference run (cosine with warm-up, two multipliers)', () => {
  const { plan, steps, lrs } = fixture.caseB;
  // caseB's torch groups are [dense_1 kernel, dense_1 bias, dense_2 kernel, dense_2 bias].
  const mults = [plan.groups[0]!.lrMult, plan.groups[0]!.lrMult, plan.groups[1]!.lrMult, plan.groups[1]!.lrMult];
  lrs.forEach((row, t) => {
    mults.forEach((mult, i) => {
      assertClose(plan.training.lr * mult * scheduleFactor(plan.training.schedule, t, steps), row[i]!, 1e-7, `t=${t} #${i}`);
    });
  });
});

test('stlr matches the ULMFiT formula worked by hand (T=100, cutFrac 0.1, ratio 32: cut = 10)', () => {
  const spec: ScheduleSpec = { type: 'stlr', cutFrac: 0.1, ratio: 32 };
  const at = (t: number) => scheduleFactor(spec, t, 100);
  assertClose(at(0), 1 / 32, 1e-12, 't=0');
  assertClose(at(5), 16.5 / 32, 1e-12, 't=5: p = 0.5');
  assertClose(at(10), 1, 1e-12, 't=10: the peak');
  assertClose(at(55), 0.515625, 1e-12, 't=55: p = 1 − 45/90');
  assertClose(at(99), 121 / 2880, 1e-12, 't=99: p = 1/90');
  assertClose(at(100), 1 / 32, 1e-12, 't=T');
  // The defaults are the paper's.
  assertClose(scheduleFactor({ type: 'stlr' }, 55, 100), 0.515625, 1e-12, 'defaults');
});

test('stlr with a non-whole T·cutFrac rounds the cut down and never goes negative', () => {
  // T=25, cutFrac 0.1: cut = ⌊2.5⌋ = 2; the paper's denominator cut·(1/cutFrac − 1) = 18 would go
  // negative by t=21, the spec's max(1, T − cut) = 23 does not.
  const at = (t: number) => scheduleFactor({ type: 'stlr' }, t, 25);
  assertClose(at(1), 0.515625, 1e-12, 't=1: p = 1/2');
  assertClose(at(2), 1, 1e-12, 't=2: the peak');
  assertClose(at(24), 27 / 368, 1e-12, 't=24: p = 1/23');
  // T=5: ⌊0.5⌋ = 0, so the cut is 1 step.
  assertClose(scheduleFactor({ type: 'stlr' }, 0, 5), 1 / 32, 1e-12, 'T=5 t=0');
  assertClose(scheduleFactor({ type: 'stlr' }, 1, 5), 1, 1e-12, 'T=5 t=1');
  assertClose(scheduleFactor({ type: 'stlr' }, 3, 5), 16.5 / 32, 1e-12, 'T=5 t=3: p = 1 − 2/4');
  // 0.29·100 is 28.999…96 in doubles; the user meant a cut of 29.
  assertClose(scheduleFactor({ type: 'stlr', cutFrac: 0.29 }, 29, 100), 1, 1e-12, 'cut 29 is the peak');
  assertClose(scheduleFactor({ type: 'stlr', cutFrac: 0.29 }, 28, 100), (1 + (28 / 29) * 31) / 32, 1e-12, 'cut 29, t=28');
});

test('warmupSteps: a fraction of T rounded up, or a step count', () => {
  assert.equal(warmupSteps({ type: 'cosine' }, 100), 0);
  assert.equal(warmupSteps({ type: 'cosine', warmup: 0 }, 100), 0);
  assert.equal(warmupSteps({ type: 'cosine', warmup: 0.1 }, 24), 3, '⌈2.4⌉');
  assert.equal(warmupSteps({ type: 'cosine', warmup: 0.3 }, 6), 2, '⌈1.8⌉');
  assert.equal(warmupSteps({ type: 'cosine', warmup: 0.3 }, 10), 3, '0.3·10 = 3.0000000000000004 in doubles');
  assert.equal(warmupSteps({ type: 'cosine', warmup: 5 }, 100), 5);
  assert.equal(warmupSteps({ type: 'cosine', warmup: 1 }, 100), 1, '1 is a step count, not 100%');
});

test('linear, cosine and constant worked by hand', () => {
  const linear: ScheduleSpec = { type: 'linear', warmup: 2 };
  assert.deepEqual([0, 1, 2, 6, 10, 12].map((t) => scheduleFactor(linear, t, 10)), [0, 0.5, 1, 0.5, 0, 0]);
  const cosine: ScheduleSpec = { type: 'cosine' };
  assertClose(scheduleFactor(cosine, 0, 10), 1, 1e-12, 'cosine t=0');
  assertClose(scheduleFactor(cosine, 5, 10), 0.5, 1e-12, 'cosine halfway');
  assert.ok(Math.abs(scheduleFactor(cosine, 10, 10)) < 1e-15, 'cosine at T');
  // Hugging Face's formula climbs back to 0.5 at 1.5·T; the curve stays at its end instead.
  assert.ok(Math.abs(scheduleFactor(cosine, 15, 10)) < 1e-15, 'cosine past T');
  assert.deepEqual([0, 1, 3, 4, 50].map((t) => scheduleFactor({ type: 'constant', warmup: 4 }, t, 10)), [0, 0.25, 0.75, 1, 1]);
  assert.equal(scheduleFactor({ type: 'constant' }, 0, 10), 1);
  assert.equal(scheduleFactor(undefined, 3, 10), 1, 'no schedule');
});

test('onecycle worked by hand: start at 1/div, peak at pct·T − 1, end at 1/(div·finalDiv)', () => {
  const spec: ScheduleSpec = { type: 'onecycle' };
  assertClose(scheduleFactor(spec, 0, 100), 1 / 25, 1e-12, 't=0');
  assertClose(scheduleFactor(spec, 24, 100), 1, 1e-12, 'peak at 0.25·100 − 1');
  assertClose(scheduleFactor(spec, 12, 100), 1 / 25 + (1 - 1 / 25) / 2, 1e-12, 'halfway up: cos(π/2)');
  assertClose(scheduleFactor(spec, 99, 100), 1 / 25 / 1e4, 1e-9, 'last step');
  assertClose(scheduleFactor(spec, 150, 100), 1 / 25 / 1e4, 1e-9, 'past T rests at the end');
});

test('every schedule stays finite and non-negative, also past T and for tiny T', () => {
  const specs: ScheduleSpec[] = [
    { type: 'constant', warmup: 0.5 },
    { type: 'linear', warmup: 3 },
    { type: 'cosine', warmup: 0.1 },
    { type: 'stlr' },
    { type: 'stlr', cutFrac: 0.9, ratio: 4 },
    { type: 'onecycle' },
    { type: 'onecycle', pctStart: 0.9 },
    { type: 'onecycle', pctStart: 0.01 },
  ];
  for (const spec of specs) {
    for (const T of [0, 1, 2, 3, 7, 40]) {
      for (let t = 0; t <= 3 * T + 2; t++) {
        const s = scheduleFactor(spec, t, T);
        assert.ok(Number.isFinite(s) && s >= 0, `${JSON.stringify(spec)} T=${T} t=${t}: ${s}`);
      }
    }
  }
});

test('scheduleCurve is s(0) … s(T−1)', () => {
  const spec: ScheduleSpec = { type: 'linear', warmup: 2 };
  assert.deepEqual(scheduleCurve(spec, 4), [0, 0.5, 1, 0.5]);
  assert.deepEqual(scheduleCurve(spec, 0), []);
  assert.deepEqual(scheduleCurve(undefined, 3), [1, 1, 1]);
});
