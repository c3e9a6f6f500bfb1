/**
 * The panel's data section: an image folder's normalisation (`data.normalize`), what a bad image
 * does (`data.onBadImage`) and the random transforms of training samples (`data.augment`). Like
 * the settings row it holds no copy of the plan: `show` puts the plan's values in the controls,
 * every change posts one `setData` edit, and the host answers with the next state (and, for
 * `augment`, a new strip of augmented samples).
 */
import { DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, type DataField, type DataSpec, type NormalizeSpec, type Plan, type RandomResizedCropSpec } from '../src/core/plan.ts';
import { el } from './dom.ts';
import { formatNumber, parseNumber } from './view-model.ts';

type Post = (field: DataField, value: unknown) => void;

const NORMALIZE: ReadonlyArray<{ value: string; label: string; title: string }> = [
  { value: 'unit', label: 'unit [0, 1]', title: 'pixel / 255 (the default)' },
  { value: 'symmetric', label: 'symmetric [−1, 1]', title: 'pixel / 127.5 − 1 (MobileNet, Inception)' },
  { value: 'imagenet', label: 'ImageNet mean/std', title: '(pixel / 255 − mean) / std with ImageNet’s per-channel mean and std (ResNet, torchvision)' },
  { value: 'custom', label: 'custom mean/std', title: 'Your own mean and std in [0, 1] units: one value, or one per channel' },
];

/** The numeric transforms: their field, label, largest value (the schema's) and what they mean. */
const AMOUNTS: ReadonlyArray<{ field: DataField & `augment.${string}`; key: 'rotation' | 'translate' | 'brightness' | 'contrast'; label: string; max: number; title: string }> = [
  { field: 'augment.rotation', key: 'rotation', label: 'Rotation (°)', max: 180, title: 'Largest rotation, degrees: a random angle in [−r, r]' },
  { field: 'augment.translate', key: 'translate', label: 'Translate', max: 1, title: 'Largest shift, as a fraction of the width and the height' },
  { field: 'augment.brightness', key: 'brightness', label: 'Brightness', max: 1, title: 'Brightness factor drawn in [1 − b, 1 + b]' },
  { field: 'augment.contrast', key: 'contrast', label: 'Contrast', max: 1, title: 'Contrast factor drawn in [1 − c, 1 + c]' },
];

/** Is the plan's data an image folder (the only kind these settings apply to)? Same rule as the engine's. */
export function isImageFolder(data: DataSpec | undefined): boolean {
  if (data === undefined) return false;
  return data.format === undefined ? !/\.csv$/i.test(data.train) : data.format === 'imagefolder';
}

/** One line that says what the section holds while it is folded. */
export function dataSummary(data: DataSpec): string {
  const normalize = typeof data.normalize === 'object' ? 'custom mean/std' : (data.normalize ?? DEFAULTS.normalize);
  const a = data.augment ?? {};
  const on: string[] = [];
  if (a.randomResizedCrop !== undefined && a.randomResizedCrop !== false) on.push('random crop');
  if (a.horizontalFlip === true) on.push('h-flip');
  if (a.verticalFlip === true) on.push('v-flip');
  if ((a.rotation ?? 0) > 0) on.push(`rotation ±${formatNumber(a.rotation ?? 0)}°`);
  if ((a.translate ?? 0) > 0) on.push(`translate ±${formatNumber(a.translate ?? 0)}`);
  if ((a.brightness ?? 0) > 0) on.push(`brightness ±${formatNumber(a.brightness ?? 0)}`);
  if ((a.contrast ?? 0) > 0) on.push(`contrast ±${formatNumber(a.contrast ?? 0)}`);
  return `Data: normalize ${normalize} · augment ${on.length === 0 ? 'off' : on.join(', ')} · bad images: ${data.onBadImage ?? DEFAULTS.onBadImage}`;
}

/** "0.485, 0.456, 0.406" → numbers, or undefined when any part is not a number. */
function parseList(text: string): number[] | undefined {
  const parts = text.split(/[\s,]+/).filter((p) => p !== '');
  const values = parts.map(parseNumber);
  return values.length > 0 && values.every((v): v is number => v !== undefined) ? values : undefined;
}

interface TextControl {
  input: HTMLInputElement;
  /** The plan's value; a field being typed in keeps its text. */
  show(text: string): void;
}

function textControl(id: string, label: string, title: string, onCommit: (text: string, input: HTMLInputElement) => boolean): { wrap: HTMLElement; control: TextControl } {
  const wrap = el('label', 'data-field');
  wrap.htmlFor = id;
  const input = el('input', 'num-field');
  input.id = id;
  input.type = 'text';
  input.spellcheck = false;
  input.autocomplete = 'off';
  input.title = title;
  let committed = '';
  const commit = (): void => {
    const text = input.value.trim();
    if (text === committed) return;
    // Enter commits, then leaving the field reports a change too: one edit, not two
    if (onCommit(text, input)) committed = text;
  };
  input.addEventListener('change', commit);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') commit();
    else if (e.key === 'Escape') {
      input.value = committed;
      input.classList.remove('invalid');
      input.removeAttribute('aria-invalid');
    }
  });
  wrap.append(el('span', 'data-label', label), input);
  return {
    wrap,
    control: {
      input,
      show(text) {
        const typing = document.activeElement === input && input.value.trim() !== committed;
        committed = text;
        if (!typing && input.value !== text) input.value = text;
        if (!typing) {
          input.classList.remove('invalid');
          input.removeAttribute('aria-invalid');
        }
      },
    },
  };
}

function invalid(input: HTMLInputElement, problem: string | undefined, hint: string): void {
  input.classList.toggle('invalid', problem !== undefined);
  if (problem === undefined) input.removeAttribute('aria-invalid');
  else input.setAttribute('aria-invalid', 'true');
  input.title = problem ?? hint;
}

function checkbox(id: string, label: string, title: string, onChange: (checked: boolean) => void): { wrap: HTMLElement; box: HTMLInputElement } {
  const wrap = el('label', 'data-check');
  wrap.htmlFor = id;
  wrap.title = title;
  const box = el('input', 'check');
  box.type = 'checkbox';
  box.id = id;
  box.addEventListener('change', () => onChange(box.checked));
  wrap.append(box, el('span', '', label));
  return { wrap, box };
}

function select(id: string, label: string, options: ReadonlyArray<{ value: string; label: string; title?: string }>, onChange: (value: string) => void): { wrap: HTMLElement; sel: HTMLSelectElement } {
  const wrap = el('label', 'data-field');
  wrap.htmlFor = id;
  const sel = el('select', 'data-select');
  sel.id = id;
  for (const o of options) {
    const opt = el('option', '', o.label);
    opt.value = o.value;
    if (o.title !== undefined) opt.title = o.title;
    sel.append(opt);
  }
  sel.addEventListener('change', () => onChange(sel.value));
  wrap.append(el('span', 'data-label', label), sel);
  return { wrap, sel };
}

export class DataSection {
  readonly element: HTMLDetailsElement;
  private readonly summary: HTMLElement;
  private data: DataSpec | undefined;
  private readonly normalize: HTMLSelectElement;
  private readonly mean: TextControl;
  private readonly std: TextControl;
  private readonly custom: HTMLElement;
  private readonly onBadImage: HTMLSelectElement;
  private readonly crop: HTMLInputElement;
  private readonly cropScale: TextControl;
  private readonly cropRatio: TextControl;
  private readonly hflip: HTMLInputElement;
  private readonly vflip: HTMLInputElement;
  private readonly amounts = new Map<string, TextControl>();
  private customPending = false;
  /** Channels the images are read with (data.channels, else the model's input), when known. */
  private channels: number | undefined;

  constructor(private readonly post: Post) {
    this.element = el('details', 'data-section');
    this.element.hidden = true;
    this.summary = el('summary', 'data-summary');
    this.element.append(this.summary);

    const norm = select('data-normalize', 'Normalize', NORMALIZE, (v) => this.pickNormalize(v));
    this.normalize = norm.sel;
    norm.wrap.title = 'data.normalize: how 0–255 pixels become the model’s inputs; it must match how the model was pre-trained';
    const mean = textControl('data-mean', 'Mean', 'Per-channel mean in [0, 1] units: one value, or one per channel (e.g. 0.485, 0.456, 0.406)', () => this.commitCustom());
    const std = textControl('data-std', 'Std', 'Per-channel std in [0, 1] units: one value, or one per channel (e.g. 0.229, 0.224, 0.225)', () => this.commitCustom());
    this.mean = mean.control;
    this.std = std.control;
    this.custom = el('span', 'data-custom');
    this.custom.append(mean.wrap, std.wrap);
    const bad = select(
      'data-onBadImage',
      'Bad image',
      [
        { value: 'skip', label: 'skip it (default)', title: 'A corrupt or unsupported image is left out and named in the log' },
        { value: 'error', label: 'stop the run', title: 'A corrupt or unsupported image stops the run, naming the file' },
      ],
      (v) => this.post('onBadImage', v === DEFAULTS.onBadImage && this.data?.onBadImage === undefined ? null : v),
    );
    this.onBadImage = bad.sel;
    bad.wrap.title = 'data.onBadImage';
    const inputs = el('div', 'data-row');
    inputs.setAttribute('role', 'group');
    inputs.setAttribute('aria-label', 'Inputs');
    inputs.append(norm.wrap, this.custom, bad.wrap);

    const crop = checkbox('data-crop', 'Random resized crop', 'data.augment.randomResizedCrop: a random box of the image (a fraction of its area in scale, an aspect ratio in ratio), resized to data.size', (on) =>
      this.post('augment.randomResizedCrop', on ? (this.cropValue() ?? true) : null),
    );
    this.crop = crop.box;
    const scale = textControl('data-crop-scale', 'scale', `Smallest and largest fraction of the image area, in [0, 1] (default ${DEFAULTS.cropScale.join(', ')})`, (t, i) => this.commitCrop(i, t));
    const ratio = textControl('data-crop-ratio', 'ratio', `Smallest and largest aspect ratio width/height (default ${DEFAULTS.cropRatio.map(formatNumber).join(', ')})`, (t, i) => this.commitCrop(i, t));
    this.cropScale = scale.control;
    this.cropRatio = ratio.control;
    const hflip = checkbox('data-hflip', 'Horizontal flip', 'data.augment.horizontalFlip: mirror left–right with probability 0.5', (on) => this.post('augment.horizontalFlip', on ? true : null));
    const vflip = checkbox('data-vflip', 'Vertical flip', 'data.augment.verticalFlip: mirror top–bottom with probability 0.5', (on) => this.post('augment.verticalFlip', on ? true : null));
    this.hflip = hflip.box;
    this.vflip = vflip.box;
    const augment = el('div', 'data-row');
    augment.setAttribute('role', 'group');
    augment.setAttribute('aria-label', 'Augmentation of training samples');
    augment.append(el('span', 'data-heading', 'Augment (training samples only):'), crop.wrap, scale.wrap, ratio.wrap, hflip.wrap, vflip.wrap);
    for (const a of AMOUNTS) {
      const field = textControl(`data-${a.key}`, a.label, `data.${a.field}: ${a.title}; 0 or empty: off`, (t, input) => this.commitAmount(a, t, input));
      this.amounts.set(a.key, field.control);
      augment.append(field.wrap);
    }
    this.element.append(inputs, augment);
  }

  /** The plan's data settings in the controls; hidden when the plan has no image folder. */
  show(plan: Plan | undefined, modelChannels?: number | null): void {
    const data = plan?.data;
    this.data = data;
    this.element.hidden = !isImageFolder(data);
    if (data === undefined || this.element.hidden) return;
    this.channels = data.channels ?? modelChannels ?? undefined;
    this.summary.textContent = dataSummary(data);
    const n: NormalizeSpec = data.normalize ?? DEFAULTS.normalize;
    // ImageNet's mean and std are per RGB channel: not offered for grey images (the run would refuse it)
    const imagenet = this.normalize.querySelector<HTMLOptionElement>('option[value="imagenet"]');
    if (imagenet !== null) {
      imagenet.disabled = this.channels === 1 && n !== 'imagenet';
      imagenet.title = imagenet.disabled ? 'ImageNet’s mean and std are for 3 channels; these images are read with 1' : NORMALIZE.find((o) => o.value === 'imagenet')!.title;
    }
    // "custom" picked but its numbers not written yet stays picked
    this.normalize.value = typeof n === 'object' || this.customPending ? 'custom' : n;
    this.custom.hidden = this.normalize.value !== 'custom';
    this.mean.show(typeof n === 'object' ? n.mean.join(', ') : '');
    this.std.show(typeof n === 'object' ? n.std.join(', ') : '');
    this.onBadImage.value = data.onBadImage ?? DEFAULTS.onBadImage;
    const a = data.augment ?? {};
    const crop = a.randomResizedCrop;
    this.crop.checked = crop !== undefined && crop !== false;
    const cropSpec: RandomResizedCropSpec = typeof crop === 'object' ? crop : {};
    this.cropScale.show(cropSpec.scale?.join(', ') ?? '');
    this.cropRatio.show(cropSpec.ratio?.join(', ') ?? '');
    this.cropScale.input.placeholder = DEFAULTS.cropScale.join(', ');
    this.cropRatio.input.placeholder = DEFAULTS.cropRatio.map(formatNumber).join(', ');
    for (const input of [this.cropScale.input, this.cropRatio.input]) input.disabled = !this.crop.checked;
    this.hflip.checked = a.horizontalFlip === true;
    this.vflip.checked = a.verticalFlip === true;
    for (const spec of AMOUNTS) {
      const v = a[spec.key];
      const control = this.amounts.get(spec.key);
      control?.show(v === undefined ? '' : String(v));
      if (control) control.input.placeholder = 'off';
    }
  }

  private pickNormalize(value: string): void {
    this.custom.hidden = value !== 'custom';
    this.customPending = value === 'custom' && typeof this.data?.normalize !== 'object';
    if (value === 'custom') {
      // nothing to write until there are numbers; ImageNet's as a start (averaged over the channels for grey images)
      const start = (values: number[]): string =>
        this.channels === 1 ? String(Number((values.reduce((a, v) => a + v, 0) / values.length).toFixed(3))) : values.join(', ');
      if (this.mean.input.value === '') this.mean.input.value = start(IMAGENET_MEAN);
      if (this.std.input.value === '') this.std.input.value = start(IMAGENET_STD);
      this.mean.input.focus();
      return;
    }
    const current = this.data?.normalize;
    if (current === value) return;
    this.post('normalize', value === DEFAULTS.normalize && current === undefined ? null : value);
  }

  private commitCustom(): boolean {
    const mean = parseList(this.mean.input.value);
    const std = parseList(this.std.input.value);
    // one value for every channel, or one per channel, as the run requires
    const counts = this.channels === undefined ? undefined : this.channels === 1 ? [1] : [1, this.channels];
    const problem = (what: string, values: number[] | undefined): string | undefined =>
      values === undefined
        ? `${what}: numbers separated by commas`
        : counts !== undefined && !counts.includes(values.length)
          ? `${what}: ${counts.join(' or ')} value(s) for images read with ${this.channels} channel(s), not ${values.length}`
          : undefined;
    const meanProblem = problem('Mean', mean);
    const stdProblem = problem('Std', std);
    invalid(this.mean.input, meanProblem, 'Per-channel mean in [0, 1] units');
    invalid(this.std.input, stdProblem, 'Per-channel std in [0, 1] units');
    if (mean === undefined || std === undefined || meanProblem !== undefined || stdProblem !== undefined) return false;
    this.customPending = false;
    this.post('normalize', { mean, std });
    return true;
  }

  /** The crop's object from its two fields, undefined when both are empty (plain `true`). */
  private cropValue(): RandomResizedCropSpec | undefined {
    const spec: RandomResizedCropSpec = {};
    const scale = parseList(this.cropScale.input.value);
    const ratio = parseList(this.cropRatio.input.value);
    if (scale?.length === 2) spec.scale = [scale[0]!, scale[1]!];
    if (ratio?.length === 2) spec.ratio = [ratio[0]!, ratio[1]!];
    return spec.scale === undefined && spec.ratio === undefined ? undefined : spec;
  }

  private commitCrop(input: HTMLInputElement, text: string): boolean {
    const pair = text === '' ? [] : parseList(text);
    const problem = pair === undefined || (pair.length !== 0 && pair.length !== 2) ? 'two numbers: smallest, largest' : undefined;
    invalid(input, problem, input.title);
    if (problem !== undefined || !this.crop.checked) return false;
    this.post('augment.randomResizedCrop', this.cropValue() ?? true);
    return true;
  }

  private commitAmount(spec: (typeof AMOUNTS)[number], text: string, input: HTMLInputElement): boolean {
    const hint = `data.${spec.field}: ${spec.title}; 0 or empty: off`;
    if (text === '' || text === '0') {
      invalid(input, undefined, hint);
      this.post(spec.field, null);
      return true;
    }
    const v = parseNumber(text);
    const problem = v === undefined ? 'not a number' : v < 0 || v > spec.max ? `must be between 0 and ${spec.max}` : undefined;
    invalid(input, problem === undefined ? undefined : `${spec.label} ${problem}`, hint);
    if (v === undefined || problem !== undefined) return false;
    this.post(spec.field, v);
    return true;
  }
}
