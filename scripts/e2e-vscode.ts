/**
 * End-to-end check as a person would use the extension: packages the .vsix, installs it into a fresh
 * code-server, and drives the UI with playwright-core (palette command, side-panel search, opening a result,
 * hovering an identifier). Screenshots go to test-artifacts/. Usage: npm run e2e:vscode
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
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

async function main(): Promise<number> {
  if (!codeServerInstalled()) {
    console.log('SKIP e2e: code-server or chromium not installed (run scripts/install-code-server.sh)');
    return process.env.REPLUG_REQUIRE_VSCODE === '1' ? 1 : 0;
  }
  execFileSync('npm', ['run', 'package:vsix'], { cwd: REPO_ROOT, stdio: 'inherit' });
  const scratch = await mkdtemp(join(tmpdir(), 'replug-e2e-'));
  const workspace = join(scratch, 'workspace');
  await cp(join(REPO_ROOT, 'test/fixtures/workspace'), workspace, { recursive: true });
  const extensionsDir = join(scratch, 'extensions');
  await installVsix(join(REPO_ROOT, 'dist/replug-code.vsix'), extensionsDir);
  await mkdir(ARTIFACTS, { recursive: true });

  const server = await startCodeServer({ folder: workspace, extensionsDir });
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
      const view = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
      await view.locator('#query').fill('convex hull of points');
      await view.locator('#query').press('Enter');
      await view.locator('.hit').first().waitFor();
      await view.getByText('convex_hull.py').first().waitFor();
    });
    await step(page, '3-open-result', async () => {
      const view = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
      await view.locator('.hit').first().click();
      await page.locator('.tab.active', { hasText: 'convex_hull.py' }).waitFor();
    });
    await step(page, '4-hover', async () => {
      const token = page.locator('.view-lines span', { hasText: /^cross$/ }).first();
      await token.hover();
      await page.locator('.monaco-hover', { hasText: 'REPLUG' }).waitFor();
    });
    console.log(`e2e passed; screenshots in ${ARTIFACTS}`);
    return 0;
  } catch (err) {
    console.error(`e2e failed: ${err instanceof Error ? err.message : String(err)}`);
    await page.screenshot({ path: join(ARTIFACTS, 'failure.png') });
    return 1;
  } finally {
    await browser.close();
    await server.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Runs one UI step and saves what the screen shows after it. */
async function step(page: Page, name: string, run: () => Promise<void>): Promise<void> {
  const started = Date.now();
  await run();
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
  console.log(`ok ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

async function runCommand(page: Page, title: string): Promise<void> {
  await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } });
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor();
  await input.fill(`>${title}`);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
  await input.press('Enter');
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
