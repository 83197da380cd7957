import * as vscode from 'vscode';
import type { WireHit } from '../sidecar/server/protocol';
import type { Config } from './config';
import { hitLabel, openHit } from './locations';
import { quickPickText, quoteUntrusted } from './untrusted-text';
import type { SidecarClient } from './sidecar-client';

/** Pause after the last keystroke before searching, so typing a query costs one request, not one per key. */
const TYPING_DEBOUNCE_MS = 200;

type HitItem = vscode.QuickPickItem & { hit: WireHit };

/** Search Code: a quick pick that searches as you type and opens the chosen passage at its lines. */
export async function searchQuickPick(sidecar: SidecarClient, config: Config, initialQuery = ''): Promise<void> {
  const pick = vscode.window.createQuickPick<HitItem>();
  pick.title = 'REPLUG: Search Code';
  pick.placeholder = 'Describe the code you are looking for';
  pick.matchOnDescription = false;
  pick.value = initialQuery;
  let timer: NodeJS.Timeout | undefined;
  let cts: vscode.CancellationTokenSource | undefined;

  const run = async (query: string) => {
    cts?.cancel();
    const mine = (cts = new vscode.CancellationTokenSource());
    if (!query.trim()) {
      pick.items = [];
      return;
    }
    pick.busy = true;
    try {
      const hits = await sidecar.search({ query, k: config.k, mode: config.mode }, mine.token);
      if (mine.token.isCancellationRequested) return;
      // alwaysShow: the ranking is the sidecar's; the quick pick must not filter it again by label.
      pick.items = hits.map((hit) => ({
        label: quickPickText(hitLabel(hit)),
        description: `score ${hit.score.toFixed(3)}`,
        detail: quickPickText(firstCodeLine(hit.text)),
        alwaysShow: true,
        hit,
      }));
    } catch (err) {
      if (!mine.token.isCancellationRequested) pick.items = [];
      pick.placeholder = `Search failed: ${quoteUntrusted(err)}`;
    } finally {
      if (cts === mine) pick.busy = false;
    }
  };

  pick.onDidChangeValue((value) => {
    clearTimeout(timer);
    timer = setTimeout(() => void run(value), TYPING_DEBOUNCE_MS);
  });
  pick.onDidAccept(() => {
    const chosen = pick.selectedItems[0];
    pick.hide();
    if (chosen) void openHit(chosen.hit);
  });
  pick.onDidHide(() => {
    clearTimeout(timer);
    cts?.cancel();
    pick.dispose();
  });
  pick.show();
  if (initialQuery) await run(initialQuery);
}

function firstCodeLine(text: string): string {
  return text.split('\n').find((line) => line.trim())?.trim() ?? '';
}
