import * as vscode from 'vscode';
import { errorMessage, log } from './log';
import { notice } from './untrusted-text';

const SHOW_LOG = 'Show Log';

/**
 * A toast with `actions` and a "Show Log" button that opens the log; resolves with the other action chosen, if any.
 * `message` must be the extension's own text, with anything untrusted quoted through `notice`.
 */
export async function showWithLog(severity: 'error' | 'warning' | 'info', message: string, ...actions: string[]): Promise<string | undefined> {
  const show =
    severity === 'error' ? vscode.window.showErrorMessage : severity === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
  const choice = await show(message, ...actions, SHOW_LOG);
  if (choice === SHOW_LOG) log.show();
  return choice === SHOW_LOG ? undefined : choice;
}

/** Logs the whole error, then tells the user what failed, quoting the error safely (see `showWithLog`). */
export function reportFailure(what: string, err: unknown, ...actions: string[]): Promise<string | undefined> {
  log.error(`${what} failed: ${errorMessage(err)}`);
  return showWithLog('error', notice`REPLUG: ${what} failed: ${err}`, ...actions);
}
