/**
 * A model's layer tree as Markdown, for browsing a model before any plan exists ("Inspect Layers"
 * on a model.json): every layer with its class, weights and parameter count, and the groups
 * `init` would propose for it, so the user sees what a plan would start from.
 */
import { autoGroups } from './autogroup.ts';
import { resolveGroups } from './groups.ts';
import { layerParamCount, type ModelInfo } from './model-info.ts';

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} K` : String(n);
}

/** Pipes and backticks would break a Markdown table cell. */
function cell(s: string): string {
  return s.replace(/[|`]/g, (c) => `\\${c}`);
}

export function modelOutline(model: ModelInfo, modelPath: string): string {
  const groups = autoGroups(model);
  const resolution = resolveGroups(model, { model: modelPath, groups });
  const groupOf = new Map(resolution.groups.flatMap((g) => g.layers.map((l) => [l.name, g.name] as const)));
  const total = model.layers.reduce((a, l) => a + layerParamCount(l), 0);
  const weighted = model.layers.filter((l) => l.weights.length > 0).length;
  const lines = [
    `# ${cell(modelPath)}`,
    '',
    `${model.layers.length} layers (${weighted} with weights), ${count(total)} parameters` +
      (model.inputShape ? `; input ${JSON.stringify(model.inputShape)}` : '') +
      (model.outputShape ? `, output ${JSON.stringify(model.outputShape)}` : '') + '.',
    '',
    `**Groups a new plan would start from** (bottom → top): ${groups.map((g) => `\`${cell(g.name)}\``).join(' → ') || 'none'}. ` +
      'Run *Layerwise: Create Plan from Model…* to write them into a plan you can edit.',
    '',
    '| # | layer | class | weights | parameters | group |',
    '|---:|---|---|---|---:|---|',
  ];
  for (const layer of model.layers) {
    const weights = layer.weights.map((w) => `${w.shortName} ${w.shape.join('×')}${w.trainable ? '' : ' (statistic)'}`).join(', ');
    const params = layerParamCount(layer);
    lines.push(`| ${layer.depth} | ${cell(layer.name)} | ${cell(layer.className)} | ${cell(weights) || '–'} | ${params > 0 ? count(params) : '–'} | ${cell(groupOf.get(layer.name) ?? '–')} |`);
  }
  return lines.join('\n') + '\n';
}
