/**
 * The test side of the UI bridge (see harness/ui-bridge.ts): what the workbench shows, read and driven through
 * playwright by the harness, for assertions about what a person sees rather than what the API returned.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as vscode from 'vscode';
import { UI_REQUEST_PREFIX, type UiAnswer, type UiElement, type UiRequest } from './harness/ui-bridge';

export type { UiElement };

type Request = UiRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

async function ask<T>(request: Request, timeoutMs = 30_000): Promise<T> {
  const dir = process.env.REPLUG_TEST_UI_DIR;
  if (!dir) throw new Error('REPLUG_TEST_UI_DIR is not set: run the suite with npm run test:vscode');
  const id = randomUUID();
  console.log(`${UI_REQUEST_PREFIX}${JSON.stringify({ id, ...request })}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(join(dir, `${id}.json`), 'utf8').catch(() => undefined);
    if (text !== undefined) {
      const answer = JSON.parse(text) as UiAnswer;
      if ('error' in answer) throw new Error(`UI ${request.action} failed: ${answer.error}`);
      return answer.value as T;
    }
    if (Date.now() > deadline) throw new Error(`UI ${request.action} got no answer within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const ui = {
  elements: (selector: string, frames = false) => ask<UiElement[]>({ action: 'elements', selector, frames }),
  click: (selector: string, text?: string) => ask<boolean>({ action: 'click', selector, text }),
  fill: (selector: string, text: string, submit = false) => ask<boolean>({ action: 'fill', selector, text, submit }),
  press: (key: string) => ask<boolean>({ action: 'press', key }),
  /** Saves what the screen shows to test-artifacts/vscode-NAME.png. */
  screenshot: (name: string) => ask<string>({ action: 'screenshot', name: `vscode-${name}` }),
  /** The notification toasts now on screen. */
  notifications: () => ask<UiElement[]>({ action: 'elements', selector: '.notifications-toasts .notification-list-item' }),
};

/**
 * Searches in the Search panel as a person would (typing into its box) until a result whose text includes
 * `expected` is shown; the search is typed again while the panel's webview is still loading.
 */
export async function searchInPanel(query: string, expected: string): Promise<UiElement> {
  await vscode.commands.executeCommand('replugCode.searchView.focus');
  const deadline = Date.now() + 30_000;
  for (;;) {
    await ui.fill('#query', query, true).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 500));
    const hit = (await ui.elements('.hit', true)).find((h) => h.text.includes(expected));
    if (hit) return hit;
    if (Date.now() > deadline) {
      await ui.screenshot('search-panel-timeout');
      throw new Error(`The Search panel showed no result with ${expected} for ${query}`);
    }
  }
}

/** Waits for a notification toast whose text `matches`; a timeout says which toasts were on screen instead. */
export async function notificationShown(matches: (text: string) => boolean, what: string, timeoutMs = 30_000): Promise<UiElement> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const toasts = await ui.notifications();
    const found = toasts.find((n) => matches(n.text));
    if (found) return found;
    if (Date.now() > deadline) {
      await ui.screenshot(`timeout-${what.replace(/\W+/g, '-')}`);
      throw new Error(`No notification of ${what}; on screen: ${JSON.stringify(toasts.map((n) => n.text))}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Dismisses every toast and waits until none is drawn: at most three show at once, and one that arrives while the
 * others are still leaving is queued, not shown.
 */
export async function clearNotifications(): Promise<void> {
  await vscode.commands.executeCommand('notifications.clearAll');
  const deadline = Date.now() + 10_000;
  while ((await ui.notifications()).length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}
