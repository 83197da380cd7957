/**
 * Mocha runner loaded by the extension host through `extensionTestsPath` (bundled to dist/test/vscode/index.js).
 * The host calls run(); its console reaches the harness through the workbench's codeAutomationLog hook.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  // Generous timeouts: the first index, the sidecar start and hovers are slow on a loaded 2-core machine.
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 120_000, reporter: 'spec', grep: process.env.REPLUG_TEST_GREP || undefined });
  // In the order of their number prefix: suites leave state (settings, index) the next ones start from.
  const number = (file: string) => Number.parseInt(file, 10);
  for (const file of readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort((a, b) => number(a) - number(b))) {
    mocha.addFile(join(__dirname, file));
  }
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      console.log(`${runner.stats?.passes ?? 0} passed, ${failures} failed`);
      if (failures > 0) reject(new Error(`${failures} test(s) failed`));
      else resolve();
    });
  });
}
