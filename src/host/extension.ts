/**
 * Activation: wires the rooms together in one cleanup scope (the extension's life) and does no
 * work up front — plans are searched for after activation returns, models are described by a
 * worker only when a view needs them, and tfjs is never loaded in this process.
 */
import * as vscode from 'vscode';
import { ModelDescriber } from './describer.ts';
import { PlanEditor } from './edits.ts';
import { registerCommands } from './commands.ts';
import { registerOnboarding } from './onboarding.ts';
import { lastReportFile, PlanPanels } from './panel.ts';
import { PlanStore } from './plans.ts';
import { TrainingSessions } from './session.ts';
import { TrainingStatusBar } from './status-bar.ts';
import { LayerTreeProvider } from './tree.ts';

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('Layerwise', { log: true });
  const workerScript = context.asAbsolutePath('dist/worker.js');
  const diagnostics = vscode.languages.createDiagnosticCollection('layerwise');
  const describer = new ModelDescriber(workerScript, log);
  const store = new PlanStore(describer, diagnostics, log);
  const editor = new PlanEditor(log);

  const openReport = async (planUri: vscode.Uri): Promise<void> => {
    const entry = await store.open(planUri);
    const file = lastReportFile(entry);
    if (file === undefined) {
      void vscode.window.showInformationMessage(`Layerwise: ${entry.label} has no finished run yet (its "results.lastRun" is empty).`);
      return;
    }
    await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(file));
  };
  const sessions = new TrainingSessions(workerScript, store, editor, log, {
    // called only once a run starts, long after `panels` below exists
    openPanel: (uri) => panels.createOrShow(uri, true),
    openReport: (file) => void vscode.commands.executeCommand('vscode.open', vscode.Uri.file(file)),
  });
  const panels = new PlanPanels({ extensionUri: context.extensionUri, store, sessions, editor, log, openReport });

  const statusBar = new TrainingStatusBar();
  const tree = new LayerTreeProvider(store);
  const treeView = vscode.window.createTreeView('layerwise.layers', {
    treeDataProvider: tree,
    manageCheckboxStateManually: true,
    showCollapseAll: true,
  });

  context.subscriptions.push(
    log,
    diagnostics,
    describer,
    store,
    sessions,
    panels,
    statusBar,
    tree,
    treeView,
    sessions.onDidChangeStatus(({ planKey, status }) => {
      statusBar.show(vscode.Uri.parse(planKey), status);
      void vscode.commands.executeCommand('setContext', 'layerwise.running', sessions.anyRunning());
    }),
    ...registerCommands({ context, log, store, editor, sessions, panels, tree, treeView, describer, openReport }),
    ...registerOnboarding({ context, log, describer }),
  );

  // after activation: find the plans (for the tree, the diagnostics and the `when` clauses)
  setTimeout(() => void store.ready(), 0);
}

export function deactivate(): void {
  // everything lives in context.subscriptions; VS Code disposes it (workers are killed there)
}
