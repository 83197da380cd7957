import { readdirSync, readFileSync } from 'node:fs';
import * as vscode from 'vscode';
import type { ReplugApi } from '../../extension/extension';

export const EXTENSION_ID = 'replug-code.replug-code';

/** The throw-away copy of test/fixtures/workspace the harness opened. */
export function workspaceRoot(): string {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) throw new Error('The integration tests need the fixture workspace open (run them with npm run test:vscode).');
  return folder.uri.fsPath;
}

/** Activates the extension and waits until its sidecar runs (awaiting readiness instead of sleeping). */
export async function activateReplug(): Promise<ReplugApi> {
  const ext = vscode.extensions.getExtension<ReplugApi>(EXTENSION_ID);
  if (!ext) throw new Error(`${EXTENSION_ID} is not loaded`);
  const api = await ext.activate();
  await api.whenRunning();
  return api;
}

/** Polls `probe` until it returns a value (events such as file watching have no completion signal to await). */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * The pid of this extension host's sidecar (a child process running dist/server.js), for tests that kill it.
 * Linux only, like the harness.
 */
export function sidecarPid(): number {
  for (const entry of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('dist/server.js')) return Number(entry);
    } catch {
      // the process ended while being read
    }
  }
  throw new Error('no sidecar process found under this extension host');
}

/**
 * Switches the index to the harness's tiny random BERT (plus `settings`, all under replugCode.* in the user
 * settings) and waits for the dense re-index that the encoder change starts. Returns the undo.
 */
export async function withDenseIndex(api: ReplugApi, settings: Record<string, unknown>): Promise<() => Promise<void>> {
  const model = process.env.REPLUG_TEST_TINY_BERT;
  if (!model) throw new Error('REPLUG_TEST_TINY_BERT is not set: run the suite with npm run test:vscode');
  const config = vscode.workspace.getConfiguration('replugCode');
  for (const [key, value] of Object.entries(settings)) await config.update(key, value, vscode.ConfigurationTarget.Global);
  // An encoder setting restarts the sidecar and re-indexes with vectors.
  await config.update('encoder.model', model, vscode.ConfigurationTarget.Global);
  await eventually(async () => {
    // Throws while the sidecar restarts.
    const status = await Promise.resolve().then(() => api.indexStatus()).catch(() => undefined);
    return status?.dense && status.encoder?.includes(model) && status.passages > 0 && !status.busy ? status : undefined;
  }, 'the dense re-index', 90_000);
  return async () => {
    for (const key of [...Object.keys(settings), 'encoder.model']) await config.update(key, undefined, vscode.ConfigurationTarget.Global);
  };
}

/** Opens `uri`, hovers at `position` and returns the markdown of REPLUG's hover, if it showed one. */
export async function replugHover(uri: vscode.Uri, position: vscode.Position): Promise<string | undefined> {
  await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri));
  const hovers = await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, position);
  return hovers
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === 'string' ? c : c.value))
    .find((text) => text.includes('REPLUG'));
}
