/** The two DOM helpers every part of the panel builds with. */
import type { VscodeButton } from '@vscode-elements/elements/dist/vscode-button/vscode-button.js';

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, className = '', text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className !== '') e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function button(label: string, onClick: () => void, secondary = false): VscodeButton {
  const b = document.createElement('vscode-button');
  b.textContent = label;
  if (secondary) b.setAttribute('secondary', '');
  b.addEventListener('click', () => {
    if (!b.disabled) onClick();
  });
  return b;
}
