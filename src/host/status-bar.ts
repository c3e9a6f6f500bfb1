/**
 * The status bar item, drawn from one TrainingStatus by the pure `statusBarView`. A click opens
 * the plan editor of the plan it describes.
 */
import * as vscode from 'vscode';
import { statusBarView, type TrainingStatus } from '../core/status.ts';

export class TrainingStatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;

  constructor() {
    this.item = vscode.window.createStatusBarItem('layerwise.status', vscode.StatusBarAlignment.Left, 10);
    this.item.name = 'Layerwise Training';
  }

  show(planUri: vscode.Uri | undefined, status: TrainingStatus): void {
    const view = statusBarView(status);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.item.backgroundColor = view.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.accessibilityInformation = { label: view.text.replace(/\$\([^)]*\)\s*/g, ''), role: 'button' };
    this.item.command = planUri === undefined
      ? undefined
      : { command: 'layerwise.openPlanEditor', title: 'Open Plan Editor', arguments: [planUri] };
    if (view.visible) this.item.show();
    else this.item.hide();
  }

  dispose(): void {
    this.item.dispose();
  }
}
