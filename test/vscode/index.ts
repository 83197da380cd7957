/**
 * Mocha runner loaded by the extension host through `extensionTestsPath` (bundled to dist/test/vscode/index.js).
 * The host calls run(); its console reaches the harness through the workbench's codeAutomationLog hook.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

export function run(): Promise<void> {
  // Generous timeouts: the first index, the sidecar start and hovers are slow on a loaded 2-core machine.
  // REPLUG_VSCODE_GREP=<text> runs only the tests whose titles contain it (the environment reaches the host).
  const mocha = new Mocha({ ui: 'tdd', color: false, timeout: 120_000, reporter: 'spec', grep: process.env.REPLUG_VSCODE_GREP });
  for (const file of readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()) {
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
