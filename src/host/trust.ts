import * as vscode from 'vscode';

/**
 * True (after telling the user why, with a way to trust the folder) when the workspace is not
 * trusted: everything that runs the workspace's model, data or code asks here first.
 */
export async function refusedInRestrictedMode(what: string, why: string): Promise<boolean> {
  if (vscode.workspace.isTrusted) return false;
  const choice = await vscode.window.showWarningMessage(
    `Layerwise: ${what} is disabled in Restricted Mode: ${why}. Trust this workspace to run it.`,
    'Manage Workspace Trust',
  );
  if (choice !== undefined) void vscode.commands.executeCommand('workbench.trust.manage');
  return true;
}
