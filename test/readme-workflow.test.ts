import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { needsStories, repoRoot, storiesDir } from './fixtures/lm/stories';

/** The shell block under the README's "Try the whole pipeline offline" heading. */
function readmeWorkflow(): string {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.split(/^## Try the whole pipeline offline$/m)[1];
  const block = section && /```sh\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README.md has no ```sh block under "## Try the whole pipeline offline"');
  return block;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Runs the README's offline LSR workflow exactly as written (serve-lm → starter encoder → index → train → resume →
 * eval → compare → complete) in a fresh copy of the checkout, so the README cannot drift from what works. Only the two values a
 * reader sets for their machine change: STORIES (where the model is) and the port (a free one).
 */
test('the README workflow runs as written', { ...needsStories, timeout: 900_000 }, async () => {
  const block = readmeWorkflow();
  assert.match(block, /^STORIES=/m, 'the block sets STORIES first');
  const checkout = mkdtempSync(path.join(tmpdir(), 'replug-readme-'));
  try {
    const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: repoRoot, encoding: 'utf8' }).split('\0').filter(Boolean);
    for (const file of tracked) {
      if (!existsSync(path.join(repoRoot, file))) continue; // deleted in the working tree
      mkdirSync(path.dirname(path.join(checkout, file)), { recursive: true });
      cpSync(path.join(repoRoot, file), path.join(checkout, file));
    }
    symlinkSync(path.join(repoRoot, 'node_modules'), path.join(checkout, 'node_modules'));
    const port = String(await freePort());
    const script = block.replace(/^STORIES=.*$/m, `STORIES=${storiesDir}`).replaceAll('8000', port);
    // The background server belongs to the script's process group, which is ended with it.
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', `trap 'kill $(jobs -p) 2>/dev/null' EXIT\n${script}`], {
        cwd: checkout,
        env: { ...process.env, REPLUG_LM_URL: '', REPLUG_LM_MODEL: '', REPLUG_CODE_INDEX_DIR: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.once('exit', (code) => resolve({ code, out }));
    });
    assert.equal(result.code, 0, result.out.slice(-4000));
    const out = result.out;
    assert.doesNotMatch(out, /\(node:\d+\) \w*Warning/, 'Node printed a process warning');
    assert.match(out, /wrote a starter encoder/);
    assert.match(out, /indexed \d+ files .* embedded/);
    assert.match(out, /LM context 512 tokens; token budgets doc 128, context 128, continuation 128 tokens/);
    assert.match(out, /trained 20\/20 steps \(query-tower\)/);
    assert.match(out, /resuming .*tuned from step 20 of 20/);
    assert.match(out, /tuned − base nDCG@10: [+−]\d\.\d{3} ± \d\.\d{3}/);
    assert.match(out, /base: .*\| tuned: /);
    assert.match(out, /\[\d+ tokens?, \w+, \d+ LM requests; passages: .*\(λ 0\.\d{3}\)/);
    assert.ok(existsSync(path.join(checkout, '.replug', 'tuned', 'replug-training.json')));
  } finally {
    rmSync(checkout, { recursive: true, force: true });
  }
});
