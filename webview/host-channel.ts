/**
 * The webview's only door to the extension host. `acquireVsCodeApi` exists only inside a VS Code
 * webview; tests load the same bundle with a fake that records what the panel posts.
 */
import type { WebviewToHost } from '../src/protocol/webview.ts';

interface VsCodeApi {
  postMessage(message: unknown): void;
  getState(): unknown;
  setState(state: unknown): void;
}

declare global {
  // Provided by VS Code to webview scripts; may be called once per page.
  function acquireVsCodeApi(): VsCodeApi;
}

export interface HostChannel {
  post(message: WebviewToHost): void;
  /** What `saveUiState` stored before the webview was hidden or VS Code reloaded. */
  loadUiState(): unknown;
  saveUiState(state: unknown): void;
}

export function vscodeChannel(): HostChannel {
  const api = acquireVsCodeApi();
  return {
    post: (message) => api.postMessage(message),
    loadUiState: () => api.getState(),
    saveUiState: (state) => api.setState(state),
  };
}
