import * as vscode from 'vscode';
import type { LmEndpoint, StartLmParams } from '../sidecar/server/protocol';
import type { Config, LmSettingKey } from './config';
import { keyDecision, keyQuestion, originOf, parseStoredKey, serializeKey, settingText, workspaceProvided, type StoredKey } from './lm-trust';
import { log } from './log';
import { notice, revealBidi } from './untrusted-text';

const API_KEY_SECRET = 'replugCode.lm.apiKey';
/** workspaceState: the user's answers about this workspace's LM settings, by setting: the value and the answer. */
const SETTING_DECISIONS = 'replugCode.lm.workspaceSettingDecisions';
/** workspaceState: the user's answers about sending the key to another origin, by `keyQuestion`. */
const KEY_DECISIONS = 'replugCode.lm.apiKeyDecisions';

/** Why a workspace's value of each setting needs the user's approval, in the words of the question. */
const SETTING_PURPOSE: Record<LmSettingKey, string> = {
  'lm.baseUrl': 'REPLUG sends code from this workspace to this LM server',
  'lm.model': 'REPLUG asks the LM server for this model',
  'lm.serverCommand': 'REPLUG: Start LM Server runs this command on your machine',
};

type SettingDecisions = Partial<Record<LmSettingKey, { value: string; allowed: boolean }>>;

/**
 * Everything that gates a language-model call: workspace trust, the endpoint settings (a workspace's own values
 * are used only once the user approved them), and the API key. The key lives in SecretStorage only, bound to the
 * origin it was entered for; it is sent to another origin only when the user says so, and never to the LM server
 * REPLUG starts itself (a local server needs none).
 */
export class LmAccess implements vscode.Disposable {
  /** The managed server's URL while one runs; it takes the place of the base-URL setting. */
  private managedBaseUrl: string | undefined;
  private readonly managedChanged = new vscode.EventEmitter<void>();
  /** Fires when REPLUG's own LM server starts or stops (no setting changes then). */
  readonly onDidChangeManagedServer = this.managedChanged.event;

  constructor(
    private readonly secrets: vscode.SecretStorage,
    private readonly config: Config,
    private readonly workspaceState: vscode.Memento,
  ) {}

  /** The endpoint with the key it may carry, or undefined after telling the user what is missing or declined. */
  async endpoint(what: string): Promise<LmEndpoint | undefined> {
    if (!this.trusted(what)) return undefined;
    const endpoint = this.config.lmEndpoint();
    if (this.managedBaseUrl) endpoint.baseUrl = this.managedBaseUrl;
    if (!endpoint.baseUrl || !endpoint.model) {
      // Not awaited: the caller learns at once that there is no endpoint, whether or not the toast is closed.
      void vscode.window
        .showWarningMessage(`REPLUG: ${what} needs an LM endpoint: set "REPLUG › Lm: Base Url" and "Model", or run "REPLUG: Start LM Server".`, 'Open Settings')
        .then((choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', 'replugCode.lm'));
      return undefined;
    }
    if (this.managedBaseUrl) return endpoint;
    if (!(await this.approveWorkspaceSettings(what, ['lm.baseUrl', 'lm.model']))) return undefined;
    const apiKey = await this.apiKeyFor(endpoint.baseUrl);
    return apiKey === null ? undefined : { ...endpoint, apiKey };
  }

  /** What Start LM Server runs, once the workspace's command and model (if it sets them) are approved. */
  async serverParams(cwd: string | undefined): Promise<StartLmParams | undefined> {
    const what = 'Starting an LM server';
    if (!this.trusted(what) || !(await this.approveWorkspaceSettings(what, ['lm.serverCommand', 'lm.model']))) return undefined;
    return this.config.lmServer(cwd);
  }

  useManagedServer(baseUrl: string | undefined): void {
    this.managedBaseUrl = baseUrl;
    this.managedChanged.fire();
  }

  dispose(): void {
    this.managedChanged.dispose();
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

  /** Asks for the server the key is for (the base URL in effect, to confirm or change), then the key. */
  async promptApiKey(): Promise<void> {
    const server = await vscode.window.showInputBox({
      title: 'REPLUG: LM API Key (1/2)',
      prompt: 'The LM server this key is for (its OpenAI base URL). REPLUG sends the key to this server only.',
      value: this.config.lmEndpoint().baseUrl,
      ignoreFocusOut: true,
      validateInput: (url) => (originOf(url.trim()) ? undefined : 'An http:// or https:// URL, e.g. https://llm.example.com/v1'),
    });
    if (server === undefined) return;
    const origin = originOf(server.trim())!;
    const key = await vscode.window.showInputBox({
      title: 'REPLUG: LM API Key (2/2)',
      prompt: `The key for ${origin}, kept in the editor's secret storage; leave empty to remove the key.`,
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined) return;
    if (key) await this.secrets.store(API_KEY_SECRET, serializeKey({ key, origin }));
    else await this.secrets.delete(API_KEY_SECRET);
    void vscode.window.showInformationMessage(key ? notice`REPLUG: LM API key saved; it is sent only to ${origin}.` : 'REPLUG: LM API key removed.');
  }

  /**
   * Approves the values this workspace sets for `keys` (asked once per value, answer remembered per workspace);
   * false when one was declined now or before, or the question dismissed.
   */
  private async approveWorkspaceSettings(what: string, keys: LmSettingKey[]): Promise<boolean> {
    for (const key of keys) {
      const value = workspaceProvided(this.config.lmSettingLayers(key));
      if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) continue;
      const text = settingText(value);
      const decisions = this.workspaceState.get<SettingDecisions>(SETTING_DECISIONS, {});
      let allowed = decisions[key]?.value === text ? decisions[key]!.allowed : undefined;
      if (allowed === undefined) {
        const use = 'Use This Value';
        const choice = await ask(
          `REPLUG: this workspace's settings set replugCode.${key}. Use it?`,
          `${text}\n\nThe value comes from the workspace (its .vscode/settings.json), not from your user settings; ${SETTING_PURPOSE[key]}.`,
          "Don't Use",
          use,
        );
        if (choice === undefined) return false;
        allowed = choice === use;
        await this.workspaceState.update(SETTING_DECISIONS, { ...decisions, [key]: { value: text, allowed } });
        log.info(`Workspace value of replugCode.${key} ${allowed ? 'approved' : 'declined'}: ${text}`);
      }
      if (!allowed) {
        void vscode.window
          .showWarningMessage(notice`REPLUG: ${what} stopped: you chose not to use this workspace's replugCode.${key} (${text}).`, 'Ask Again', 'Open Settings')
          .then(async (choice) => {
            if (choice === 'Ask Again') await this.forgetSettingDecision(key);
            if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openWorkspaceSettings', `replugCode.${key}`);
          });
        return false;
      }
    }
    return true;
  }

  private async forgetSettingDecision(key: LmSettingKey): Promise<void> {
    const { [key]: _forgotten, ...rest } = this.workspaceState.get<SettingDecisions>(SETTING_DECISIONS, {});
    await this.workspaceState.update(SETTING_DECISIONS, rest);
  }

  /**
   * The key to send to `baseUrl`: the stored key when it was entered for that origin; for another origin only when
   * the user says so (asked once per workspace). Undefined: send none; null: the user dismissed the question.
   */
  private async apiKeyFor(baseUrl: string): Promise<string | undefined | null> {
    const stored = parseStoredKey(await this.secrets.get(API_KEY_SECRET));
    const decisions = this.workspaceState.get<Record<string, boolean>>(KEY_DECISIONS, {});
    const decision = keyDecision(stored, baseUrl, (question) => decisions[question]);
    if (decision === 'send') return stored!.key;
    if (decision === 'none') return undefined;
    const target = originOf(baseUrl)!;
    const send = 'Send Key';
    const choice = await ask(
      `REPLUG: send your LM API key to ${target}?`,
      `${stored!.origin ? `The key was saved for ${stored!.origin}.` : 'The key was saved before REPLUG bound keys to the server they are for.'} ` +
        `The LM base URL is now ${baseUrl}${workspaceProvided(this.config.lmSettingLayers('lm.baseUrl')) ? ' (from the workspace settings)' : ''}. ` +
        'Send the key only to a server you trust with it; without it, requests go out with no key.',
      "Don't Send Key",
      send,
    );
    if (choice === undefined) return null;
    if (choice === send && !stored!.origin) {
      // A key from before binding: bound now to the first server the user sends it to.
      await this.secrets.store(API_KEY_SECRET, serializeKey({ key: stored!.key, origin: target } satisfies StoredKey));
    } else {
      await this.workspaceState.update(KEY_DECISIONS, { ...decisions, [keyQuestion(stored!, target)]: choice === send });
    }
    log.info(`LM API key ${choice === send ? 'sent' : 'withheld'}: ${keyQuestion(stored!, target)}`);
    return choice === send ? stored!.key : undefined;
  }
}

/**
 * A modal question showing `detail` exactly (dialogs draw it as plain text), the cautious answer first (the button
 * Enter presses); undefined when dismissed, or when no dialog can be shown (VS Code refuses them while running
 * extension tests).
 */
async function ask(question: string, detail: string, ...buttons: string[]): Promise<string | undefined> {
  try {
    return await vscode.window.showWarningMessage(question, { modal: true, detail: revealBidi(detail) }, ...buttons);
  } catch (err) {
    log.warn(`Could not ask "${question}": ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}
