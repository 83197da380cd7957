/**
 * End-to-end check as a person would use the extension: packages the .vsix, installs it into a fresh
 * code-server, and drives the UI with playwright-core (palette command, side-panel search, opening a result,
 * hovering an identifier, a short LSR training run against a local copy-LM, base-vs-tuned comparison, and a
 * repository whose settings point the LM at a hostile server that answers with a command link).
 * Screenshots go to test-artifacts/. Usage: npm run e2e:vscode
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from '../test/fixtures/lm/copy-lm';
import { startScriptedLm } from '../test/fixtures/lm/scripted-lm';
import { makeTinyBert } from './make-tiny-bert';
import {
  REPO_ROOT,
  codeServerInstalled,
  installVsix,
  launchBrowser,
  startCodeServer,
  workbenchUrl,
} from '../test/vscode/harness/code-server';

const ARTIFACTS = join(REPO_ROOT, 'test-artifacts');
/** UI steps wait this long: a loaded 2-core machine has taken > 20 s for a hover or a webview once. */
const STEP_TIMEOUT_MS = 60_000;
const API_KEY = 'sk-e2e-0123456789';

async function main(): Promise<number> {
  if (!codeServerInstalled()) {
    console.log('SKIP e2e: code-server or chromium not installed (run scripts/install-code-server.sh)');
    return process.env.REPLUG_REQUIRE_VSCODE === '1' ? 1 : 0;
  }
  execFileSync('npm', ['run', 'package:vsix'], { cwd: REPO_ROOT, stdio: 'inherit' });
  const scratch = await mkdtemp(join(tmpdir(), 'replug-e2e-'));
  const workspace = join(scratch, 'workspace');
  await cp(join(REPO_ROOT, 'test/fixtures/workspace'), workspace, { recursive: true });
  // Empty workspace settings, which a later step fills: an existing file is watched from the start.
  await mkdir(join(workspace, '.vscode'));
  await writeFile(join(workspace, '.vscode/settings.json'), '{}');
  const extensionsDir = join(scratch, 'extensions');
  await installVsix(join(REPO_ROOT, 'dist/replug-code.vsix'), extensionsDir);
  await mkdir(ARTIFACTS, { recursive: true });

  // A tiny random BERT for the dense index and a deterministic copy-LM teacher: a real (if meaningless) LSR run.
  const model = await makeTinyBert(join(scratch, 'tiny-bert'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256 });
  const lm = new LmServer(new CopyLm('copy-lm', 16384));
  const hostile = await startScriptedLm({ status: 400, body: { error: { message: '[click](command:workbench.action.terminal.new)' } } });
  const userSettings = {
    'replugCode.encoder.model': model,
    'replugCode.encoder.device': 'cpu',
    'replugCode.lm.baseUrl': await lm.listen(),
    'replugCode.lm.model': 'copy-lm',
    'replugCode.training.steps': 30,
    'replugCode.training.batchSize': 4,
    'replugCode.training.k': 4,
    'replugCode.training.trainFileShare': 0.5,
    'replugCode.eval.fileShare': 0.5,
    'replugCode.eval.maxQueries': 2,
    'replugCode.training.checkpointEvery': 100,
  };
  const server = await startCodeServer({ folder: workspace, extensionsDir, userSettings });
  const { browser, page } = await launchBrowser();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  try {
    await page.goto(workbenchUrl(server, workspace));
    await page.locator('.monaco-workbench').waitFor();
    await step(page, '1-index-workspace', async () => {
      await runCommand(page, 'REPLUG: Index Workspace');
      await page.getByText(/REPLUG: Indexed \d+ files/).first().waitFor();
    });
    await step(page, '2-side-panel-search', async () => {
      await page.locator('.activitybar [aria-label^="REPLUG"]').first().click();
      // The REPLUG container holds two webview views (Search, Training): find the search one by its input.
      const view = await webviewFrame(page, '#query');
      await view.locator('#query').fill('convex hull of points');
      await view.locator('#query').press('Enter');
      await view.locator('.hit').first().waitFor();
      await view.getByText('convex_hull.py').first().waitFor();
    });
    await step(page, '3-open-result', async () => {
      const view = await webviewFrame(page, '#query');
      await view.locator('.hit').first().click();
      await page.locator('.tab.active', { hasText: 'convex_hull.py' }).waitFor();
    });
    await step(page, '4-hover', async () => {
      const token = page.locator('.view-lines span', { hasText: /^cross$/ }).first();
      await token.hover();
      await page.locator('.monaco-hover', { hasText: 'REPLUG' }).waitFor();
    });
    await step(page, '5-training-view', async () => {
      await runCommand(page, 'REPLUG: Train Retriever (LSR)');
      const view = await webviewFrame(page, '#chart');
      await view.locator('#state', { hasText: /^Trained/ }).waitFor();
      await view.locator('#chart canvas').waitFor();
      await page.mouse.move(1300, 700); // let the hover of the previous step close
      await page.locator('.monaco-hover', { hasText: 'REPLUG' }).waitFor({ state: 'hidden' });
    });
    await step(page, '6-compare-base-vs-tuned', async () => {
      await runCommand(page, 'REPLUG: Compare Base vs Tuned');
      const input = page.locator('.quick-input-widget input');
      await input.fill('convex hull of points');
      await input.press('Enter');
      const view = await webviewFrame(page, '#chart');
      await view.locator('#tuned .hit').first().waitFor();
      await view.locator('#columns').scrollIntoViewIfNeeded();
    });
    await page.locator('.part.statusbar').screenshot({ path: join(ARTIFACTS, '7-status-bar.png') });
    await step(page, '8-set-api-key', async () => {
      await runCommand(page, 'REPLUG: Set LM API Key');
      await page.locator('.quick-input-title', { hasText: '(1/2)' }).waitFor();
      await page.keyboard.press('Enter'); // the base URL in effect, prefilled
      await page.locator('.quick-input-title', { hasText: '(2/2)' }).waitFor();
      await page.locator('.quick-input-widget input').fill(API_KEY);
      await page.keyboard.press('Enter');
      await page.getByText(/LM API key saved; it is sent only to/).first().waitFor();
    });
    // The repository's own settings now point the LM at another server.
    await writeFile(join(workspace, '.vscode/settings.json'), JSON.stringify({ 'replugCode.lm.baseUrl': hostile.url }));
    await step(page, '9-workspace-base-url-asked', async () => {
      await page.waitForTimeout(3_000); // the settings file is picked up by a file watcher
      await runCommand(page, 'REPLUG: Evaluate Retriever');
      await page.locator('.monaco-dialog-box', { hasText: hostile.url }).waitFor();
    });
    await step(page, '10-key-for-another-origin-asked', async () => {
      await dialogButton(page, 'Use This Value').click();
      await page.locator('.monaco-dialog-box', { hasText: `send your LM API key to ${new URL(hostile.url).origin}` }).waitFor();
    });
    await step(page, '11-hostile-error-shown-as-text', async () => {
      await dialogButton(page, "Don't Send Key").click();
      const toast = page.locator('.notifications-toasts .notification-list-item', { hasText: 'evaluation failed' });
      await toast.waitFor();
      await toast.getByText('[click] (command:workbench.action.terminal.new)').waitFor();
      if ((await toast.locator('a[href]').count()) > 0) throw new Error('the error body rendered as a live link');
      if (hostile.seen.length === 0) throw new Error('the approved URL was not used');
      if (hostile.seen.some((r) => r.authorization?.includes(API_KEY))) throw new Error('the API key was sent to another origin');
    });
    await restrictedMode(workspace, extensionsDir);
    console.log(`e2e passed; screenshots in ${ARTIFACTS}`);
    return 0;
  } catch (err) {
    console.error(`e2e failed: ${err instanceof Error ? err.message : String(err)}`);
    await page.screenshot({ path: join(ARTIFACTS, 'failure.png') });
    return 1;
  } finally {
    await browser.close();
    await server.stop();
    await lm.close();
    await hostile.close();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** A second editor on the same folder, whose authors the user does not trust: training is visibly unavailable. */
async function restrictedMode(workspace: string, extensionsDir: string): Promise<void> {
  const server = await startCodeServer({ folder: workspace, extensionsDir, workspaceTrust: true });
  const { browser, page } = await launchBrowser();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  try {
    await page.goto(workbenchUrl(server, workspace));
    await step(page, '12-restricted-mode-train-disabled', async () => {
      await dialogButton(page, "No, I don't trust the authors").click();
      await page.locator('.activitybar [aria-label^="REPLUG"]').first().click();
      const view = await webviewFrame(page, '#chart');
      // Disabled until the extension has said whether the workspace is trusted: wait for what it said.
      const train = view.locator('#train[title*="Restricted Mode"]');
      await train.waitFor();
      if (!(await train.isDisabled())) throw new Error('the Train button is enabled in Restricted Mode');
    });
  } catch (err) {
    await page.screenshot({ path: join(ARTIFACTS, 'failure-restricted-mode.png') });
    throw err;
  } finally {
    await browser.close();
    await server.stop();
  }
}

/** Runs one UI step and saves what the screen shows after it. */
async function step(page: Page, name: string, run: () => Promise<void>): Promise<void> {
  const started = Date.now();
  await run();
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** A button of the modal dialog on screen, by its whole label. */
function dialogButton(page: Page, label: string) {
  return page.locator('.monaco-dialog-box .dialog-buttons .monaco-button').filter({ hasText: new RegExp(`^\\s*${label}\\s*$`) });
}

/** The webview frame holding `selector` (each webview view is an iframe inside an iframe). */
async function webviewFrame(page: Page, selector: string): Promise<Frame> {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      if (await frame.locator(selector).count().catch(() => 0)) return frame;
    }
    await page.waitForTimeout(250);
  }
  throw new Error(`no webview shows ${selector}`);
}

async function runCommand(page: Page, title: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  // The palette lists the commands known when it opens; on a loaded machine the installed extension's may
  // arrive later, so it is reopened until they do.
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  for (;;) {
    await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
    await page.keyboard.press('F1');
    await input.waitFor();
    await input.fill(`>${title}`);
    try {
      await row.waitFor({ timeout: 5_000 });
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await page.keyboard.press('Escape');
    }
  }
  await input.press('Enter');
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
