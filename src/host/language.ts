/**
 * Language features on plan files: Quick Fixes for the problems the store publishes, completion
 * of layer names, patterns and group names, a hover on a pattern showing what it matches, and a
 * CodeLens above `groups` (Train · Find LR · Open Plan Editor). The logic is in
 * core/plan-problems.ts and core/plan-language.ts; this file only speaks VS Code, and reads the
 * model's layers from the store (described by the worker — tfjs is never loaded here).
 */
import * as vscode from 'vscode';
import { fixedText } from '../core/plan-problems.ts';
import { codeLensOffset, completionsAt, groupNamesIn, patternHover, spotAt, type PlanCompletion } from '../core/plan-language.ts';
import { minimalChange } from './plan-requests.ts';
import { DIAGNOSTIC_SOURCE, type PlanEntry, type PlanStore } from './plans.ts';

export const PLAN_SELECTOR: vscode.DocumentSelector = [
  { scheme: 'file', pattern: '**/layerwise.json' },
  { scheme: 'file', pattern: '**/*.layerwise.json' },
];

export function registerLanguageFeatures(store: PlanStore): vscode.Disposable[] {
  const entryOf = (doc: vscode.TextDocument): PlanEntry | undefined => store.get(doc.uri.toString());
  const lenses = new vscode.EventEmitter<void>();
  return [
    lenses,
    store.onDidChange(() => lenses.fire()),
    vscode.languages.registerCodeActionsProvider(PLAN_SELECTOR, new PlanQuickFixes(entryOf), { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] }),
    vscode.languages.registerCompletionItemProvider(PLAN_SELECTOR, { provideCompletionItems: (doc, pos) => completions(doc, pos, entryOf(doc)) }, '"', '_', '.'),
    vscode.languages.registerHoverProvider(PLAN_SELECTOR, { provideHover: (doc, pos) => hover(doc, pos, entryOf(doc)) }),
    vscode.languages.registerCodeLensProvider(PLAN_SELECTOR, {
      onDidChangeCodeLenses: lenses.event,
      provideCodeLenses: (doc) => {
        const at = doc.positionAt(codeLensOffset(doc.getText()));
        const range = new vscode.Range(at, at);
        return [
          new vscode.CodeLens(range, { title: '$(play) Train', command: 'layerwise.train', arguments: [doc.uri] }),
          new vscode.CodeLens(range, { title: '$(graph-line) Find LR', command: 'layerwise.findLr', arguments: [doc.uri] }),
          new vscode.CodeLens(range, { title: '$(layers) Open Plan Editor', command: 'layerwise.openPlanEditor', arguments: [doc.uri] }),
        ];
      },
    }),
  ];
}

class PlanQuickFixes implements vscode.CodeActionProvider {
  constructor(private readonly entryOf: (doc: vscode.TextDocument) => PlanEntry | undefined) {}

  provideCodeActions(doc: vscode.TextDocument, _range: vscode.Range, context: vscode.CodeActionContext): vscode.CodeAction[] {
    const entry = this.entryOf(doc);
    if (entry === undefined || entry.text !== doc.getText()) return [];
    const text = doc.getText();
    const actions: vscode.CodeAction[] = [];
    for (const d of context.diagnostics) {
      if (d.source !== DIAGNOSTIC_SOURCE) continue;
      const start = doc.offsetAt(d.range.start);
      const finding = entry.diagnostics.find((f) => f.code === d.code && f.offset === start && f.message === d.message);
      finding?.fixes.forEach((fix, i) => {
        let after: string;
        try {
          after = fixedText(text, fix);
        } catch {
          return;
        }
        const change = minimalChange(text, after);
        if (change === undefined) return;
        const action = new vscode.CodeAction(fix.title, vscode.CodeActionKind.QuickFix);
        action.diagnostics = [d];
        action.isPreferred = i === 0 && finding.fixes.length === 1;
        action.edit = new vscode.WorkspaceEdit();
        action.edit.replace(doc.uri, new vscode.Range(doc.positionAt(change.offset), doc.positionAt(change.offset + change.length)), change.content);
        actions.push(action);
      });
    }
    return actions;
  }
}

const ITEM_KIND: Record<PlanCompletion['kind'], vscode.CompletionItemKind> = {
  layer: vscode.CompletionItemKind.Field,
  pattern: vscode.CompletionItemKind.Folder,
  group: vscode.CompletionItemKind.Module,
};

function completions(doc: vscode.TextDocument, pos: vscode.Position, entry: PlanEntry | undefined): vscode.CompletionItem[] {
  const text = doc.getText();
  const spot = spotAt(text, doc.offsetAt(pos));
  if (spot === undefined) return [];
  const model = entry?.model.state === 'ready' ? entry.model.model : undefined;
  // the text between the quotes is replaced, so a half-typed pattern is filtered as a whole
  const closedString = spot.length >= 2 && text[spot.offset + spot.length - 1] === '"';
  const range = new vscode.Range(doc.positionAt(spot.offset + 1), doc.positionAt(spot.offset + spot.length - (closedString ? 1 : 0)));
  return completionsAt(spot, groupNamesIn(text), model).map((c) => {
    const item = new vscode.CompletionItem({ label: c.value, description: c.detail }, ITEM_KIND[c.kind]);
    item.range = range;
    item.detail = c.detail;
    item.sortText = c.sortText;
    return item;
  });
}

function hover(doc: vscode.TextDocument, pos: vscode.Position, entry: PlanEntry | undefined): vscode.Hover | undefined {
  const spot = spotAt(doc.getText(), doc.offsetAt(pos));
  if (spot?.kind !== 'pattern' || entry?.plan === undefined || entry.model.state !== 'ready') return undefined;
  const md = new vscode.MarkdownString(patternHover(spot, entry.plan, entry.model.model));
  md.isTrusted = false;
  return new vscode.Hover(md, new vscode.Range(doc.positionAt(spot.offset), doc.positionAt(spot.offset + spot.length)));
}
