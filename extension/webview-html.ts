import { randomBytes } from 'node:crypto';
import type * as vscode from 'vscode';

/**
 * A webview page under a strict CSP: nothing remote and no inline code; only the given stylesheets and the
 * nonce'd scripts (all under the view's localResourceRoots) may load.
 */
export function webviewPage(webview: vscode.Webview, page: { title: string; styles: vscode.Uri[]; scripts: vscode.Uri[]; body: string }): string {
  const nonce = randomBytes(16).toString('base64url');
  const csp = `default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${nonce}';`;
  const styles = page.styles.map((uri) => `<link href="${webview.asWebviewUri(uri)}" rel="stylesheet">`).join('\n  ');
  const scripts = page.scripts.map((uri) => `<script nonce="${nonce}" src="${webview.asWebviewUri(uri)}"></script>`).join('\n  ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <meta http-equiv="Content-Security-Policy" content="${csp}">
  <meta name="viewport" content="width=device-width, initial-scale=1.0">
  ${styles}
  <title>${page.title}</title>
</head>
<body>
${page.body}
  ${scripts}
</body>
</html>`;
}
