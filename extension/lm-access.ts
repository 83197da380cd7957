import * as vscode from 'vscode';
import type { LmEndpoint } from '../sidecar/server/protocol';
import type { Config } from './config';

const API_KEY_SECRET = 'replugCode.lm.apiKey';

/**
 * Everything that gates a language-model call: workspace trust, the endpoint settings, and the API key, which
 * lives in SecretStorage only (sent to the sidecar per request, never written to settings or the log).
 */
export class LmAccess {
  /** The managed server's URL while one runs; it takes the place of the base-URL setting. */
  private managedBaseUrl: string | undefined;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly config: Config,
  ) {}

  /** The endpoint, or undefined after telling the user what is missing (trust, URL or model). */
  async endpoint(what: string): Promise<LmEndpoint | undefined> {
    if (!this.trusted(what)) return undefined;
    const endpoint = this.config.lmEndpoint(await this.secrets.get(API_KEY_SECRET));
    if (this.managedBaseUrl) endpoint.baseUrl = this.managedBaseUrl;
    if (!endpoint.baseUrl || !endpoint.model) {
      const choice = await vscode.window.showWarningMessage(
        `REPLUG: ${what} needs an LM endpoint: set "REPLUG › Lm: Base Url" and "Model", or run "REPLUG: Start LM Server".`,
        'Open Settings',
      );
      if (choice) void vscode.commands.executeCommand('workbench.action.openSettings', 'replugCode.lm');
      return undefined;
    }
    return endpoint;
  }

  useManagedServer(baseUrl: string | undefined): void {
    this.managedBaseUrl = baseUrl;
  }

  /** True in a trusted workspace; otherwise explains why `what` is unavailable. */
  trusted(what: string): boolean {
    if (vscode.workspace.isTrusted) return true;
    void vscode.window
      .showWarningMessage(
        `REPLUG: ${what} is unavailable in Restricted Mode: it calls a language model (or runs a server command), which REPLUG never does in an untrusted workspace.`,
        'Manage Workspace Trust',
      )
      .then((choice) => choice && vscode.commands.executeCommand('workbench.trust.manage'));
    return false;
  }

  async promptApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: 'REPLUG: LM API Key',
      prompt: 'Stored in the editor\'s secret storage; leave empty to remove it.',
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined) return;
    if (key) await this.secrets.store(API_KEY_SECRET, key);
    else await this.secrets.delete(API_KEY_SECRET);
    void vscode.window.showInformationMessage(key ? 'REPLUG: LM API key saved.' : 'REPLUG: LM API key removed.');
  }
}
