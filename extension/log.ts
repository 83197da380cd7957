import * as vscode from 'vscode';
import { inspect } from 'node:util';

/**
 * The extension's one log, shared with the language client so the sidecar's own messages land beside ours.
 * A LogOutputChannel lets the user pick the level (Developer: Set Log Level).
 */
export const log = vscode.window.createOutputChannel('REPLUG', { log: true });

export function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? err.message;
  return typeof err === 'string' ? err : inspect(err);
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
