/**
 * Starts a real VS Code (code-server, which bundles the VS Code server and workbench) and a headless Debian
 * chromium to drive it. Used by scripts/test-vscode.ts (integration tests in the extension host) and
 * scripts/e2e-vscode.ts (clicking through the UI as a person would). See scripts/install-code-server.sh.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const REPO_ROOT = resolve(__dirname, '../../..');
export const CODE_SERVER_BIN =
  process.env.CODE_SERVER_BIN ?? join(REPO_ROOT, '.cache/code-server/node_modules/.bin/code-server');
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** Settings that keep the workbench quiet and offline: no welcome page, tips, telemetry, updates or trust prompt. */
const CLEAN_USER_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'update.mode': 'none',
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'workbench.enableExperiments': false,
  'chat.disableAIFeatures': true,
  // Headless Chromium gives the editor no DOM focus, and VS Code drops the inline suggestions of an unfocused
  // editor unless told to keep them (an internal setting, read from settings.json only).
  'editor.inlineSuggest.keepOnBlur': true,
};

export function codeServerInstalled(): boolean {
  return existsSync(CODE_SERVER_BIN) && existsSync(CHROMIUM_BIN);
}

export interface CodeServer {
  port: number;
  origin: string;
  /** Scratch directory holding user data, extensions and anything the caller puts there. */
  dir: string;
  stop(): Promise<void>;
}

export interface StartOptions {
  folder: string;
  /** Extra environment for the server and thus the extension host. */
  env?: Record<string, string>;
  /** Extensions directory (defaults to an empty one in the scratch dir). */
  extensionsDir?: string;
  userSettings?: Record<string, unknown>;
  /** Ask whether to trust the folder (Restricted Mode when declined); default: trust is off, everything trusted. */
  workspaceTrust?: boolean;
  log?: (line: string) => void;
}

export async function startCodeServer(opts: StartOptions): Promise<CodeServer> {
  const dir = await mkdtemp(join(tmpdir(), 'replug-vscode-'));
  const userData = join(dir, 'user-data');
  await mkdir(join(userData, 'User'), { recursive: true });
  await writeFile(
    join(userData, 'User/settings.json'),
    JSON.stringify({ ...CLEAN_USER_SETTINGS, 'security.workspace.trust.enabled': opts.workspaceTrust === true, ...opts.userSettings }, null, 2),
  );
  const extensionsDir = opts.extensionsDir ?? join(dir, 'extensions');
  await mkdir(extensionsDir, { recursive: true });
  const port = await freePort();
  const args = [
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--user-data-dir', userData,
    '--extensions-dir', extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    ...(opts.workspaceTrust ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    opts.folder,
  ];
  // detached = its own process group, so stop() can kill the server and every process it started.
  const child = spawn(CODE_SERVER_BIN, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, EXTENSIONS_GALLERY: '{}', XDG_CONFIG_HOME: join(dir, 'config'), ...opts.env },
  });
  const log = opts.log ?? (() => undefined);
  child.stdout?.on('data', (d: Buffer) => log(d.toString().trimEnd()));
  child.stderr?.on('data', (d: Buffer) => log(d.toString().trimEnd()));
  const origin = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await killGroup(child);
    await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    await waitForHealth(origin, child, 60_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, origin, dir, stop };
}

/** Installs a .vsix into an extensions directory with code-server's own CLI. */
export async function installVsix(vsix: string, extensionsDir: string): Promise<void> {
  await mkdir(extensionsDir, { recursive: true });
  const child = spawn(CODE_SERVER_BIN, ['--extensions-dir', extensionsDir, '--install-extension', vsix], {
    stdio: 'inherit',
    // Its own config home: code-server otherwise writes a default config into the user's ~/.config.
    env: { ...process.env, EXTENSIONS_GALLERY: '{}', XDG_CONFIG_HOME: join(extensionsDir, '..', 'config') },
  });
  const code = await new Promise<number | null>((res) => child.on('exit', res));
  if (code !== 0) throw new Error(`code-server --install-extension ${vsix} exited with ${code}`);
}

export async function launchBrowser(): Promise<{ browser: Browser; page: Page }> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM_BIN,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  return { browser, page };
}

/**
 * The workbench URL that opens `folder` with an extension under development and (optionally) its tests:
 * code-server refuses --extensionDevelopmentPath on its command line but accepts it in the URL payload.
 */
export function workbenchUrl(server: CodeServer, folder: string, payload: Record<string, string> = {}): string {
  const remote = (p: string) => `vscode-remote://127.0.0.1:${server.port}${p}`;
  const entries = Object.entries(payload).map(([k, v]) => [k, remote(v)]);
  const query = new URLSearchParams({ folder });
  if (entries.length) query.set('payload', JSON.stringify(entries));
  return `${server.origin}/?${query}`;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => res(port));
    });
  });
}

async function waitForHealth(origin: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`code-server exited with ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`${origin}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`code-server did not answer ${origin}/healthz within ${timeoutMs / 1000} s`);
}

async function killGroup(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // group already gone
    }
  };
  signal('SIGTERM');
  const timer = setTimeout(() => signal('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
  signal('SIGKILL'); // stragglers (extension host, sidecar) left in the group
}
