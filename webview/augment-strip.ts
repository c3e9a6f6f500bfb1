/**
 * The panel's strip of augmented training samples (data.augment): per class, the image as the
 * model sees it unaugmented, then a few random draws. The host sends the pictures as data: URLs
 * (the worker renders them); this file only lays them out.
 */
import type { AugmentPreview } from '../src/protocol/worker.ts';

export class AugmentStrip {
  /** Open until the user folds it (its summary stays, so the tree and charts can move up). */
  readonly element: HTMLDetailsElement;
  private readonly body: HTMLElement;
  /** The preview on screen, so an unchanged state does not rebuild the images. */
  private shown: AugmentPreview | undefined;

  constructor() {
    this.element = document.createElement('details');
    this.element.className = 'augment-strip';
    this.element.open = true;
    this.element.setAttribute('aria-label', 'Augmented training samples');
    this.element.hidden = true;
    const title = document.createElement('summary');
    title.className = 'augment-title';
    title.textContent = 'Augmented training samples (data.augment)';
    this.body = document.createElement('div');
    this.element.append(title, this.body);
  }

  show(preview: AugmentPreview | undefined): void {
    if (preview === this.shown) return;
    this.shown = preview;
    this.element.hidden = preview === undefined || preview.samples.length === 0;
    if (preview === undefined) {
      this.body.replaceChildren();
      return;
    }
    const note = document.createElement('p');
    note.className = 'augment-note';
    note.textContent = 'First: as the model sees the image without augmentation. Then: random draws, one per epoch. Validation images are never augmented.';
    const rows = preview.samples.map((s) => {
      const row = document.createElement('div');
      row.className = 'augment-row';
      const label = document.createElement('span');
      label.className = 'augment-label';
      label.textContent = s.label;
      label.title = s.file;
      row.append(label);
      s.images.forEach((src, i) => {
        const img = document.createElement('img');
        img.src = src;
        img.width = Math.min(96, preview.width);
        img.height = Math.round((img.width * preview.height) / preview.width);
        img.alt = i === 0 ? `${s.label}: unaugmented` : `${s.label}: augmented draw ${i}`;
        if (i === 0) img.className = 'augment-plain';
        row.append(img);
      });
      return row;
    });
    this.body.replaceChildren(note, ...rows);
  }
}
