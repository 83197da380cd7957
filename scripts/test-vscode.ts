/**
 * Runs test/vscode/*.test.ts inside a real VS Code extension host (code-server + headless chromium).
 * Usage: npm run test:vscode   (REPLUG_REQUIRE_VSCODE=1 turns "code-server not installed" into a failure;
 * REPLUG_TEST_GREP=text runs only the tests whose full title contains it)
 */
import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { format } from 'node:util';
import { build } from 'esbuild';
import {
  REPO_ROOT,
  codeServerInstalled,
  launchBrowser,
  startCodeServer,
  workbenchUrl,
} from '../test/vscode/harness/code-server';
import { UiBridge } from '../test/vscode/harness/ui-bridge';
import { makeTinyBert } from './make-tiny-bert';

/** Covers code-server start, workbench load, extension activation, a first index and the suite itself. */
const RUN_TIMEOUT_MS = Number(process.env.REPLUG_VSCODE_TIMEOUT_MS ?? 300_000);

/** Workbench chatter that reaches the same hook as the extension host's console. */
const WORKBENCH_NOISE =
  /^(Ignoring fetching additional builtin extensions|Updating additional builtin extensions cache|ChatSessionStore:|\[Service Worker\]|Creating a socket|Resolv(ing|ed) connection token)/;

async function main(): Promise<number> {
  if (!codeServerInstalled()) {
    const msg = 'SKIP vscode integration tests: code-server or chromium not installed (run scripts/install-code-server.sh)';
    console.log(msg);
    return process.env.REPLUG_REQUIRE_VSCODE === '1' ? 1 : 0;
  }
  const started = Date.now();
  execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: REPO_ROOT, stdio: 'inherit' });
  await bundleTests();

  // Tests edit files of the fixture workspace, so they get a throw-away copy.
  const scratch = await mkdtemp(join(tmpdir(), 'replug-fixture-'));
  const workspace = join(scratch, 'workspace');
  await cp(join(REPO_ROOT, 'test/fixtures/workspace'), workspace, { recursive: true });
  // The training tests switch the index to a tiny random BERT (real ORT sessions, milliseconds per step).
  const tinyBert = await makeTinyBert(join(scratch, 'tiny-bert'), { layers: 2, hidden: 64, heads: 4, ffn: 128, vocab: 'real', maxPos: 256 });
  const uiAnswers = join(scratch, 'ui-answers');
  await mkdir(uiAnswers);
  const serverLog: string[] = [];
  const server = await startCodeServer({
    folder: workspace,
    env: {
      REPLUG_TEST_WORKSPACE: workspace,
      REPLUG_TEST_TINY_BERT: tinyBert,
      REPLUG_TEST_UI_DIR: uiAnswers,
      REPLUG_TEST_GREP: process.env.REPLUG_TEST_GREP ?? '',
    },
    log: (line) => serverLog.push(line),
  });
  const { browser, page } = await launchBrowser();
  const bridge = new UiBridge(page, uiAnswers, join(REPO_ROOT, 'test-artifacts'));
  const output: string[] = [];
  try {
    let exited: (code: number) => void = () => undefined;
    const exitCode = new Promise<number>((res) => (exited = res));
    await page.exposeFunction('codeAutomationExit', (code: number) => exited(code));
    await page.exposeFunction('codeAutomationLog', (type: string, args: unknown[]) => {
      const line = format(...args);
      if (bridge.handle(line)) return;
      output.push(line);
      if (WORKBENCH_NOISE.test(line)) return;
      (type === 'error' ? console.error : console.log)(line);
    });
    await page.goto(
      workbenchUrl(server, workspace, {
        extensionDevelopmentPath: REPO_ROOT,
        extensionTestsPath: join(REPO_ROOT, 'dist/test/vscode/index.js'),
      }),
    );
    const code = await Promise.race([
      exitCode,
      new Promise<number>((res) => setTimeout(() => res(-1), RUN_TIMEOUT_MS)),
    ]);
    if (code === -1) {
      console.error(`Timed out after ${RUN_TIMEOUT_MS / 1000} s waiting for the extension tests. code-server said:`);
      console.error(serverLog.slice(-40).join('\n'));
    }
    const summary = output.map((l) => /(\d+) passed, (\d+) failed/.exec(l)).filter(Boolean).pop();
    const passed = summary?.[1] ?? '0';
    const failed = summary?.[2] ?? (code === 0 ? '0' : '?');
    console.log(`vscode integration: ${passed} passed, ${failed} failed (exit ${code}, ${((Date.now() - started) / 1000).toFixed(1)} s)`);
    return code === 0 ? 0 : 1;
  } finally {
    await browser.close();
    await server.stop();
    await rm(scratch, { recursive: true, force: true });
  }
}

/** Each test file is its own CommonJS bundle beside the mocha runner; vscode and mocha stay external. */
async function bundleTests(): Promise<void> {
  const dir = join(REPO_ROOT, 'test/vscode');
  const outdir = join(REPO_ROOT, 'dist/test/vscode');
  await rm(outdir, { recursive: true, force: true }); // no stale bundles of deleted tests
  const tests = (await readdir(dir)).filter((f) => f.endsWith('.test.ts')).map((f) => join(dir, f));
  await build({
    entryPoints: [join(dir, 'index.ts'), ...tests],
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    sourcemap: 'inline',
    external: ['vscode', 'mocha'],
    logLevel: 'warning',
  });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
