/**
 * The one way the extension changes a plan file: compute the new text from the editor's current
 * text, apply the difference as a WorkspaceEdit (undoable, and it sees unsaved changes), then —
 * for `save: 'ifClean'` — save, but only when the document had no unsaved changes before, so
 * the user's own pending work is never written for them. The plan editor passes `'never'`: its
 * edits stay unsaved like typing, and its tab shows them. Edits to one plan are queued so a second click computes from
 * the text the first one left.
 */
import * as vscode from 'vscode';
import { isLayerwiseError } from '../core/errors.ts';
import { minimalChange } from './plan-requests.ts';

export class PlanEditor {
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(private readonly log: vscode.LogOutputChannel) {}

  /**
   * Applies `compute(text)` to the plan. Resolves true when the plan changed, false when there
   * was nothing to change or the edit failed (the user has been told why).
   */
  edit(uri: vscode.Uri, what: string, compute: (text: string) => string, save: 'ifClean' | 'never' = 'ifClean'): Promise<boolean> {
    const key = uri.toString();
    const previous = this.queues.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.apply(uri, what, compute, save));
    const settled = next.catch(() => false);
    this.queues.set(key, settled);
    void settled.then(() => {
      if (this.queues.get(key) === settled) this.queues.delete(key);
    });
    return settled;
  }

  private async apply(uri: vscode.Uri, what: string, compute: (text: string) => string, save: 'ifClean' | 'never'): Promise<boolean> {
    const doc = await vscode.workspace.openTextDocument(uri);
    const wasDirty = doc.isDirty;
    const before = doc.getText();
    let after: string;
    try {
      after = compute(before);
    } catch (e) {
      const message = isLayerwiseError(e) ? e.message : e instanceof Error ? e.message : String(e);
      this.log.warn(`${what}: ${message}`);
      void vscode.window.showErrorMessage(`Layerwise: cannot ${what}: ${message}`);
      return false;
    }
    const change = minimalChange(before, after);
    if (change === undefined) return false;
    const edit = new vscode.WorkspaceEdit();
    edit.replace(uri, new vscode.Range(doc.positionAt(change.offset), doc.positionAt(change.offset + change.length)), change.content, {
      label: `Layerwise: ${what}`,
      needsConfirmation: false,
    });
    const ok = await vscode.workspace.applyEdit(edit);
    if (!ok) {
      this.log.warn(`${what}: the editor refused the edit`);
      void vscode.window.showErrorMessage(`Layerwise: cannot ${what}: the editor refused the edit`);
      return false;
    }
    this.log.info(`${vscode.workspace.asRelativePath(uri)}: ${what}`);
    if (save === 'ifClean' && !wasDirty) await doc.save();
    return true;
  }
}
