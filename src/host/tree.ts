/**
 * The Layers view: maps the pure tree model (core/tree-model.ts) onto VS Code tree items, and
 * turns checkbox toggles into freeze edits. Checked = trains; unchecked = frozen.
 */
import * as vscode from 'vscode';
import type { Advice } from '../core/advice.ts';
import { buildPlanTree, type TreeNode } from '../core/tree-model.ts';
import type { PlanEntry, PlanStore } from './plans.ts';

export class LayerTreeProvider implements vscode.TreeDataProvider<TreeNode>, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<TreeNode | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  /** Built trees by plan key, rebuilt when the plan changes. */
  private readonly built = new Map<string, TreeNode>();
  private readonly parents = new Map<string, TreeNode>();
  private readonly byId = new Map<string, TreeNode>();
  private readonly subscription: vscode.Disposable;

  /** `adviceOf`: the last run's advice for a plan, marked on the groups it names. */
  constructor(
    private readonly store: PlanStore,
    private readonly adviceOf: (planKey: string) => readonly Advice[] | undefined = () => undefined,
  ) {
    this.subscription = store.onDidChange((entry) => {
      if (entry === undefined) this.built.clear();
      else this.built.delete(entry.key);
      // a whole refresh keeps it simple: ids are stable, so expansion and selection survive
      this.changed.fire(undefined);
    });
  }

  async getChildren(element?: TreeNode): Promise<TreeNode[]> {
    if (element !== undefined) return element.children;
    // the view shows its progress bar until the workspace has been searched, then the welcome if empty
    await this.store.ready();
    this.byId.clear();
    this.parents.clear();
    const roots = this.store.list().map((e) => this.treeOf(e));
    for (const r of roots) this.index(r, undefined);
    return roots;
  }

  getParent(element: TreeNode): TreeNode | undefined {
    return this.parents.get(element.id);
  }

  getTreeItem(node: TreeNode): vscode.TreeItem {
    const state = node.children.length === 0
      ? vscode.TreeItemCollapsibleState.None
      : node.expanded === true
        ? vscode.TreeItemCollapsibleState.Expanded
        : vscode.TreeItemCollapsibleState.Collapsed;
    const item = new vscode.TreeItem(node.label, state);
    item.id = node.id;
    item.description = node.description;
    item.contextValue = node.contextValue;
    if (node.icon !== undefined) item.iconPath = new vscode.ThemeIcon(node.icon);
    if (node.tooltipMarkdown !== undefined) {
      const md = new vscode.MarkdownString(node.tooltipMarkdown, true);
      md.isTrusted = false;
      item.tooltip = md;
    }
    if (node.checkbox !== undefined) {
      item.checkboxState = {
        state: node.checkbox === 'checked' ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked,
        tooltip: node.checkbox === 'checked' ? 'Trains — uncheck to freeze' : 'Frozen — check to train',
        accessibilityInformation: { label: `${node.label}: ${node.checkbox === 'checked' ? 'trains' : 'frozen'}` },
      };
    }
    if (node.target.kind === 'location' && (node.kind === 'problem' || node.kind === 'warning')) {
      item.command = { command: 'layerwise.revealProblem', title: 'Show in Plan', arguments: [node] };
    } else if (node.kind === 'plan') {
      item.resourceUri = vscode.Uri.parse(node.target.planKey);
    }
    return item;
  }

  /** The node behind an id, as last built (commands receive nodes; checkbox events too). */
  node(id: string): TreeNode | undefined {
    return this.byId.get(id);
  }

  private treeOf(entry: PlanEntry): TreeNode {
    const hit = this.built.get(entry.key);
    if (hit !== undefined) return hit;
    const advice = this.adviceOf(entry.key);
    const root = buildPlanTree({ planKey: entry.key, label: entry.label, plan: entry.plan, problems: entry.problems, model: entry.model, ...(advice === undefined ? {} : { advice }) });
    this.built.set(entry.key, root);
    return root;
  }

  private index(node: TreeNode, parent: TreeNode | undefined): void {
    this.byId.set(node.id, node);
    if (parent !== undefined) this.parents.set(node.id, parent);
    for (const c of node.children) this.index(c, node);
  }

  dispose(): void {
    this.subscription.dispose();
    this.changed.dispose();
  }
}
