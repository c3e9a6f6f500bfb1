/**
 * Writes examples/bert-seed/parameters.json: the `named_parameters()` names and shapes of the
 * seed's model — `AutoModel.from_pretrained('bert-base-uncased')` (a BertModel: embeddings, 12
 * encoder layers, pooler) with the seed's `classifier` (fc1 768→128, ReLU, fc2 128→2) attached
 * as `model.classifier`. Names and shapes only: no weights, nothing downloaded.
 *
 *   npx tsx scripts/make-bert-names.ts [--prefix bert.]
 *
 * The sizes are bert-base-uncased's config.json: vocab 30522, hidden 768, 12 layers,
 * intermediate 3072, 512 positions, 2 token types. `--prefix bert.` gives the names of
 * BertForSequenceClassification-style models instead (`bert.embeddings.…`).
 */
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';

const VOCAB = 30522;
const HIDDEN = 768;
const LAYERS = 12;
const INTERMEDIATE = 3072;
const POSITIONS = 512;
const TOKEN_TYPES = 2;
const CLASSIFIER_HIDDEN = 128;
const CLASSES = 2;

export interface NamedShape {
  name: string;
  shape: number[];
}

/** In the order BertModel registers them, which is the order named_parameters() yields. */
export function bertParameters(prefix = ''): NamedShape[] {
  const out: NamedShape[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name: prefix + name, shape });
  const linear = (name: string, inFeatures: number, outFeatures: number) => {
    add(`${name}.weight`, outFeatures, inFeatures);
    add(`${name}.bias`, outFeatures);
  };
  const layerNorm = (name: string) => {
    add(`${name}.weight`, HIDDEN);
    add(`${name}.bias`, HIDDEN);
  };
  add('embeddings.word_embeddings.weight', VOCAB, HIDDEN);
  add('embeddings.position_embeddings.weight', POSITIONS, HIDDEN);
  add('embeddings.token_type_embeddings.weight', TOKEN_TYPES, HIDDEN);
  layerNorm('embeddings.LayerNorm');
  for (let i = 0; i < LAYERS; i++) {
    const l = `encoder.layer.${i}`;
    linear(`${l}.attention.self.query`, HIDDEN, HIDDEN);
    linear(`${l}.attention.self.key`, HIDDEN, HIDDEN);
    linear(`${l}.attention.self.value`, HIDDEN, HIDDEN);
    linear(`${l}.attention.output.dense`, HIDDEN, HIDDEN);
    layerNorm(`${l}.attention.output.LayerNorm`);
    linear(`${l}.intermediate.dense`, HIDDEN, INTERMEDIATE);
    linear(`${l}.output.dense`, INTERMEDIATE, HIDDEN);
    layerNorm(`${l}.output.LayerNorm`);
  }
  linear('pooler.dense', HIDDEN, HIDDEN);
  // the seed's head, attached as model.classifier (outside any prefix)
  out.push({ name: 'classifier.fc1.weight', shape: [CLASSIFIER_HIDDEN, HIDDEN] }, { name: 'classifier.fc1.bias', shape: [CLASSIFIER_HIDDEN] });
  out.push({ name: 'classifier.fc2.weight', shape: [CLASSES, CLASSIFIER_HIDDEN] }, { name: 'classifier.fc2.bias', shape: [CLASSES] });
  return out;
}

/** One parameter per line, so a diff shows which one changed. */
export function renderParameterList(params: readonly NamedShape[]): string {
  return `[\n${params.map((p) => `  ${JSON.stringify({ name: p.name, shape: p.shape })}`).join(',\n')}\n]\n`;
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(import.meta.filename)) {
  const i = process.argv.indexOf('--prefix');
  const prefix = i >= 0 ? (process.argv[i + 1] ?? '') : '';
  const out = path.join(import.meta.dirname, '..', 'examples', 'bert-seed', prefix === '' ? 'parameters.json' : `parameters.${prefix.replace(/\W+$/, '')}.json`);
  const params = bertParameters(prefix);
  writeFileSync(out, renderParameterList(params));
  const total = params.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
  process.stderr.write(`wrote ${path.relative(process.cwd(), out)}: ${params.length} parameters, ${total} values\n`);
}
