/** The colour arithmetic the palette tests rely on, against published reference values. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closestPair, contrast, deltaE2000, parseCssColor, simulate, toLab, type Lab } from './colour.ts';

const near = (actual: number, expected: number, tol: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} vs ${expected}`);

test('CIEDE2000 matches Sharma, Wu & Dalal (2005) test data', () => {
  const pairs: Array<[Lab, Lab, number]> = [
    [[50, 2.6772, -79.7751], [50, 0, -82.7485], 2.0425], // pair 1
    [[50, 0, 0], [50, -1, 2], 2.3669], // pair 7
    [[50, 2.49, -0.001], [50, -2.49, 0.0009], 7.1792], // pair 12: hue mean across 0°
    [[50, 2.49, -0.001], [50, -2.49, 0.0011], 7.2195], // pair 14
    [[50, 2.5, 0], [73, 25, -18], 27.1492], // pair 17
    [[60.2574, -34.0099, 36.2677], [60.4626, -34.1751, 39.4387], 1.2644], // pair 25
  ];
  for (const [p, q, d] of pairs) {
    near(deltaE2000(p, q), d, 1e-4, `${p} / ${q}`);
    near(deltaE2000(q, p), d, 1e-4, 'symmetric');
  }
});

test('sRGB to CIELAB, WCAG contrast, deficiency simulation', () => {
  const white = parseCssColor('#ffffff');
  const red = parseCssColor('rgb(255, 0, 0)');
  const [l, a, b] = toLab(red);
  near(l, 53.2408, 1e-3, 'L of red');
  near(a, 80.0925, 2e-3, 'a of red');
  near(b, 67.2032, 2e-3, 'b of red');
  near(toLab(white)[0], 100, 1e-4, 'L of white');
  near(contrast(white, parseCssColor('#000000')), 21, 1e-9, 'white on black');
  // the lightest grey with 4.5:1 on white
  near(contrast(white, parseCssColor('#767676')), 4.54, 0.01, '#767676 on white');
  // every simulation matrix keeps grey axis grey: white stays white
  for (const kind of ['protanopia', 'deuteranopia', 'tritanopia'] as const) {
    for (const c of simulate(white, kind)) near(c, 1, 1e-3, `${kind} white`);
  }
  // red and green, far apart for most people, come close for someone without green cones
  const green = parseCssColor('#00a000');
  assert.ok(deltaE2000(toLab(red), toLab(green)) > 60);
  assert.ok(deltaE2000(toLab(simulate(red, 'deuteranopia')), toLab(simulate(green, 'deuteranopia'))) < 25);
  const pair = closestPair([white, red, parseCssColor('#fe0000')]);
  assert.deepEqual([pair.i, pair.j], [1, 2]);
});
