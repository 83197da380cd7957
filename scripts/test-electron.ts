/**
 * Runs the same integration tests as scripts/test-vscode.ts, but in a desktop VS Code downloaded by
 * @vscode/test-electron. For developer machines with network access; CI uses the code-server route.
 * Usage: npm run build && node --import tsx scripts/test-electron.ts   (after one test:vscode run bundled the tests)
 */
import { cp, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runTests } from '@vscode/test-electron';

async function main(): Promise<void> {
  const root = resolve(__dirname, '..');
  const workspace = join(await mkdtemp(join(tmpdir(), 'replug-fixture-')), 'workspace');
  await cp(join(root, 'test/fixtures/workspace'), workspace, { recursive: true });
  await runTests({
    extensionDevelopmentPath: root,
    extensionTestsPath: join(root, 'dist/test/vscode/index.js'),
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
