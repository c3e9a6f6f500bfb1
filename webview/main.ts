/**
 * Entry of the plan-editor webview bundle (dist/webview.js). The host page holds nothing but
 * the stylesheet and this script; everything else is built here.
 */
import { PanelApp } from './app.ts';
import { vscodeChannel } from './host-channel.ts';

declare global {
  interface Window {
    /** The running panel, for the render benchmark and tests to read timings from. */
    layerwisePanel?: PanelApp;
  }
}

const root = document.getElementById('app') ?? document.body.appendChild(document.createElement('main'));
root.id = 'app';
const app = new PanelApp(root, vscodeChannel());
window.layerwisePanel = app;
window.addEventListener('message', (event: MessageEvent<unknown>) => app.receive(event.data));
app.start();
