import * as vscode from 'vscode';
import type { StatusParams } from '../sidecar/server/protocol';
import { log } from './log';
import { showWithLog } from './notify';
import { notice } from './untrusted-text';

/**
 * Tells the user, once per sidecar run, that the configured encoder could not be loaded and search fell back to
 * BM25: which model, why, and how to fix it.
 */
export class EncoderFallbackNotice {
  private shown: string | undefined;

  update(status: StatusParams): void {
    const fallback = status.encoderFallback;
    // Every status of a sidecar whose encoder failed carries the fallback: one without it (a restart, a fixed
    // setting) means the next failure is news again.
    if (!fallback) {
      this.shown = undefined;
      return;
    }
    const key = `${fallback.model}\n${fallback.reason}`;
    if (key === this.shown) return;
    this.shown = key;
    log.warn(`Encoder ${fallback.model} could not be loaded; searching lexically: ${fallback.reason}`);
    void showWithLog(
      'warning',
      notice`REPLUG: the encoder "${fallback.model}" could not be loaded (${fallback.reason}). Indexing and search use BM25 (lexical) only until it can: set "REPLUG › Encoder: Model" to a model folder or hub id, or clear it.`,
      'Open Settings',
    ).then((choice) => choice && vscode.commands.executeCommand('workbench.action.openSettings', 'replugCode.encoder.model'));
  }
}
