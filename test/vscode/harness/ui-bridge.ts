/**
 * Lets a test inside the extension host look at and act on the workbench the way a person would: the test prints
 * one request line on its console (which reaches the harness through the codeAutomationLog hook), the harness does
 * it with playwright and writes the answer to a file the test waits for. Both sides share this file's types;
 * test/vscode/ui.ts is the test side.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

export const UI_REQUEST_PREFIX = '[replug-ui] ';

export type UiRequest = { id: string } & (
  /** Elements matching `selector` in the workbench, or with `frames` in every frame (webviews). */
  | { action: 'elements'; selector: string; frames?: boolean }
  /** Clicks the first element matching `selector` (whose whole text is `text`, when given). */
  | { action: 'click'; selector: string; text?: string }
  /** Types `text` into the first input matching `selector` in any frame, replacing its value; `submit` presses Enter. */
  | { action: 'fill'; selector: string; text: string; submit?: boolean }
  | { action: 'press'; key: string }
  | { action: 'screenshot'; name: string }
);

/** What a person sees of one element: its text, where its links lead, and the icons drawn inside it. */
export interface UiElement {
  text: string;
  links: string[];
  icons: string[];
  /** Content wider than the element (cut off unless scrolled). */
  overflowsX: boolean;
}

export type UiAnswer = { value: unknown } | { error: string };

export class UiBridge {
  constructor(
    private readonly page: Page,
    /** Where answers are written (the test side reads REPLUG_TEST_UI_DIR). */
    readonly answersDir: string,
    private readonly screenshotsDir: string,
  ) {}

  /** Handles a console line if it is a UI request; returns whether it was one. */
  handle(line: string): boolean {
    if (!line.startsWith(UI_REQUEST_PREFIX)) return false;
    const request = JSON.parse(line.slice(UI_REQUEST_PREFIX.length)) as UiRequest;
    void this.perform(request).then(
      (value) => this.answer(request.id, { value }),
      (err: unknown) => this.answer(request.id, { error: err instanceof Error ? err.message : String(err) }),
    );
    return true;
  }

  private async perform(request: UiRequest): Promise<unknown> {
    switch (request.action) {
      case 'elements': {
        const frames = request.frames ? this.page.frames() : [this.page.mainFrame()];
        const found = await Promise.all(frames.map((frame) => frame.locator(request.selector).evaluateAll(describe).catch(() => [])));
        return found.flat();
      }
      case 'click': {
        const target = this.page.locator(request.selector);
        const exact = request.text === undefined ? undefined : new RegExp(`^\\s*${request.text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
        await (exact ? target.filter({ hasText: exact }) : target).first().click();
        return true;
      }
      case 'fill': {
        for (const frame of this.page.frames()) {
          const input = frame.locator(request.selector).first();
          if (!(await input.count().catch(() => 0))) continue;
          await input.fill(request.text);
          if (request.submit) await input.press('Enter');
          return true;
        }
        throw new Error(`no frame shows ${request.selector}`);
      }
      case 'press':
        await this.page.keyboard.press(request.key);
        return true;
      case 'screenshot': {
        await mkdir(this.screenshotsDir, { recursive: true });
        const path = join(this.screenshotsDir, `${request.name}.png`);
        await this.page.screenshot({ path });
        return path;
      }
    }
  }

  private async answer(id: string, answer: UiAnswer): Promise<void> {
    // Written whole, then renamed: the test never reads half an answer.
    const file = join(this.answersDir, `${id}.json`);
    await writeFile(`${file}.tmp`, JSON.stringify(answer));
    await rename(`${file}.tmp`, file);
  }
}

/** The little of the DOM `describe` uses (this project compiles without the DOM library). */
interface PageElement {
  innerText?: string;
  textContent: string | null;
  scrollWidth: number;
  clientWidth: number;
  classList: Iterable<string>;
  getAttribute(name: string): string | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
}

/** Runs in the page: plain data about each element. */
function describe(elements: unknown[]): UiElement[] {
  return (elements as PageElement[]).map((el) => ({
    text: el.innerText ?? el.textContent ?? '',
    links: [...el.querySelectorAll('a[href]')].map((a) => a.getAttribute('href') ?? ''),
    icons: [...el.querySelectorAll('.codicon')].map((icon) => [...icon.classList].find((c) => c.startsWith('codicon-')) ?? 'codicon'),
    overflowsX: el.scrollWidth > el.clientWidth + 1,
  }));
}
