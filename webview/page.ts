/**
 * The panel's HTML page, as a pure string function so the extension host and the webview tests
 * serve the same page under the same Content-Security-Policy: scripts only with the nonce (the
 * bundle itself), styles only from the extension's own files (lit's constructable stylesheets
 * need no exception), no inline handlers, no eval.
 */
export interface PanelPageOptions {
  /** `webview.cspSource` in VS Code; the test server's origin in tests. */
  cspSource: string;
  /** A fresh random value per page load. */
  nonce: string;
  scriptUri: string;
  styleUri: string;
  title?: string;
  /** Extra stylesheets from `cspSource` (tests add VS Code's theme variables this way). */
  extraStyleUris?: string[];
  /** Scripts that must run before the bundle (tests: the fake `acquireVsCodeApi`); get the nonce. */
  inlineScripts?: string[];
}

export function panelCsp(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `img-src ${cspSource} data:`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
  ].join('; ');
}

const attr = (s: string): string => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

export function panelHtml(o: PanelPageOptions): string {
  const styles = [...(o.extraStyleUris ?? []), o.styleUri].map((u) => `<link rel="stylesheet" href="${attr(u)}">`);
  const inline = (o.inlineScripts ?? []).map((s) => `<script nonce="${attr(o.nonce)}">${s.replace(/<\/script/gi, '<\\/script')}</script>`);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${attr(panelCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${attr(o.title ?? 'Layerwise')}</title>
${inline.join('\n')}
${styles.join('\n')}
</head>
<body>
<main id="app"></main>
<script nonce="${attr(o.nonce)}" src="${attr(o.scriptUri)}"></script>
</body>
</html>
`;
}
