/**
 * A small run for the resume and fault tests: the mlp fixture (Dense → BatchNorm → Dense) with a
 * new head, two groups unfrozen gradually, AdamW with a warm-up cosine, shuffled data and a
 * validation split, so a resume has to restore weights, BatchNorm statistics, Adam moments, the
 * stage, the schedule position, the data order and the best-so-far state to match.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const repo = resolve(import.meta.dirname, '..', '..');

/** Deterministic samples: 6 features, 3 classes decided by a rule with noise. */
export function writeData(file: string, n: number, seed = 7): void {
  let s = seed;
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648;
  };
  const rows = ['f1,f2,f3,f4,f5,f6,species'];
  for (let i = 0; i < n; i++) {
    const f = Array.from({ length: 6 }, () => rand() * 4 - 2);
    const score = (f[0] as number) + 0.5 * (f[1] as number) - (f[2] as number) + (rand() - 0.5);
    const label = score < -0.7 ? 'alpha' : score < 0.7 ? 'beta' : 'gamma';
    rows.push([...f.map((v) => v.toFixed(3)), label].join(','));
  }
  writeFileSync(file, rows.join('\n') + '\n');
}

export interface PlanOptions {
  epochs?: number;
  batchSize?: number;
  earlyStopping?: boolean;
  /** body's multiplier (0.38): far lower gives an update-ratio advice for body. */
  bodyLrMult?: number;
}

export function planText(o: PlanOptions = {}): string {
  return `// resume fixture
{
  "model": "model/model.json",
  "head": { "cut": "batch_normalization", "outputs": "auto" },
  "data": { "train": "data/train.csv", "label": "species", "validationSplit": 0.2, "seed": 3 },
  "training": {
    "epochs": ${o.epochs ?? 4},
    "batchSize": ${o.batchSize ?? 8},
    "lr": 0.01,
    "optimizer": "adamw",
    "schedule": { "type": "cosine", "warmup": 0.1, "scope": "run" }${o.earlyStopping ? ',\n    "earlyStopping": { "patience": 50 }' : ''},
    "diagnosticsEvery": 3
  },
  "groups": [
    { "name": "body", "layers": ["dense", "batch_normalization"], "lrMult": ${o.bodyLrMult ?? 0.38} },
    { "name": "head", "layers": ["head_*"] }
  ],
  "unfreeze": { "mode": "gradual" },
  "output": "runs"
}
`;
}

export function workspace(samples: number, o: PlanOptions = {}): { ws: string; planFile: string } {
  const ws = mkdtempSync(join(tmpdir(), 'layerwise-resume-'));
  cpSync(join(repo, 'test', 'fixtures', 'models', 'mlp'), join(ws, 'model'), { recursive: true });
  cpSync(join(repo, 'test', 'fixtures', 'data', 'mlp'), join(ws, 'data'), { recursive: true });
  writeData(join(ws, 'data', 'train.csv'), samples);
  const planFile = join(ws, 'layerwise.json');
  writeFileSync(planFile, planText(o));
  return { ws, planFile };
}

/** The saved model's weights file, byte for byte. */
export function weightsOf(runFolder: string): Buffer {
  return readFileSync(join(runFolder, 'weights.bin'));
}
