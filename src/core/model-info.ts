/**
 * What the core needs to know about a model, without tfjs: its layers in depth order (input →
 * output) with their weights. The engine builds this from a tfjs LayersModel; a plan-only
 * PyTorch checkpoint builds it from parameter names (pytorch-model.ts).
 */
export interface WeightInfo {
  /** Full weight name as the model stores it, e.g. `conv2d_1/kernel`. */
  name: string;
  /** Short name within the layer: `kernel`, `bias`, `gamma`, `moving_mean`, … */
  shortName: string;
  shape: number[];
  /** False for statistics such as BatchNorm's moving mean/variance. */
  trainable: boolean;
}

export interface LayerInfo {
  name: string;
  /** tfjs class name (`Dense`, `Conv2D`, `BatchNormalization`, …). */
  className: string;
  /** 0-based position in the model's layer list (input → output). */
  depth: number;
  weights: WeightInfo[];
  /** True for layers added by the plan's `head`. */
  isNewHead?: boolean;
  /** The layer's output shape with the batch dimension (tfjs models; unknown sizes are null). */
  outputShape?: Array<number | null>;
}

export interface ModelInfo {
  /** Where it came from (for messages). */
  source: string;
  kind: 'tfjs' | 'pytorch';
  layers: LayerInfo[];
  inputShape?: Array<number | null>;
  outputShape?: Array<number | null>;
}

const NORM_CLASSES = new Set([
  'BatchNormalization',
  'LayerNormalization',
  'GroupNormalization',
  'UnitNormalization',
]);

/** Classes the PyTorch reader (pytorch-model.ts) infers from module names: it never sees the modules. */
const GUESSED_NORM_CLASSES = new Set(['BatchNorm', 'LayerNorm', 'GroupNorm', 'RMSNorm', 'Norm']);

export function isNormLayer(layer: Pick<LayerInfo, 'className' | 'name'>): boolean {
  return NORM_CLASSES.has(layer.className) || GUESSED_NORM_CLASSES.has(layer.className) || (layer.className === '' && /norm/i.test(layer.name));
}

export function isBatchNorm(layer: Pick<LayerInfo, 'className'>): boolean {
  return layer.className === 'BatchNormalization' || layer.className === 'BatchNorm';
}

export function weightSize(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

export function layerParamCount(layer: LayerInfo): number {
  return layer.weights.reduce((n, w) => n + weightSize(w.shape), 0);
}
