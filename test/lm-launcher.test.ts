import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { launchLm } from '../sidecar/lm/launcher';
import { LmScorer } from '../sidecar/lm/scorer';
import { isRunning } from './fixtures/lm/process';
import { repoRoot } from './fixtures/lm/stories';

describe('LM server launcher', () => {
  test('starts a server command, streams its log, waits for /v1/models, and stops the whole process group', async () => {
    const lines: string[] = [];
    // sh stays the parent (it has work after node), so the server is a grandchild: only a group kill reaches it.
    const lm = await launchLm({
      command: ['sh', '-c', 'node --import tsx test/fixtures/lm/serve-copy-lm.ts --port {port}; echo server exited'],
      cwd: repoRoot,
      onLog: (line) => lines.push(line),
      readyTimeoutMs: 60_000,
    });
    try {
      assert.deepEqual(lm.models, ['copy-lm']);
      assert.match(lm.baseUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      const [score] = await new LmScorer({ baseUrl: lm.baseUrl, model: 'copy-lm' }).score([{ doc: 'a b c', context: 'x', continuation: ' a b c' }]);
      assert.ok(Number.isFinite(score.logProb) && score.logProb < 0);
      assert.ok(lines.some((line) => line.startsWith('serving copy-lm at ')));
    } finally {
      await lm.stop();
    }
    const serverPid = Number(/^pid (\d+)$/m.exec(lines.join('\n'))?.[1]);
    assert.ok(serverPid > 0, 'the server logged its pid');
    assert.equal(isRunning(lm.pid), false, 'shell still running');
    assert.equal(isRunning(serverPid), false, 'server (grandchild) orphaned');
  });

  test('fails fast with the exit code and last output when the command dies before answering', async () => {
    await assert.rejects(
      launchLm({ command: ['node', '-e', 'console.error("CUDA out of memory"); process.exit(3)'], readyTimeoutMs: 120_000 }),
      /exited \(code 3\) before answering .*\/v1\/models; last output:\nCUDA out of memory/s,
    );
  });

  test('gives up after the ready timeout and SIGKILLs a server that ignores SIGTERM', async () => {
    const lines: string[] = [];
    const script = 'process.on("SIGTERM", () => console.log("ignoring SIGTERM")); console.log("pid " + process.pid); setInterval(() => {}, 1000)';
    await assert.rejects(
      launchLm({ command: ['node', '-e', script], readyTimeoutMs: 1500, stopGraceMs: 500, onLog: (line) => lines.push(line) }),
      /did not answer .* within 1500 ms/,
    );
    const pid = Number(/^pid (\d+)$/m.exec(lines.join('\n'))?.[1]);
    assert.ok(pid > 0);
    assert.ok(lines.includes('ignoring SIGTERM'), 'SIGTERM was sent first');
    assert.equal(isRunning(pid), false);
  });

  test('the default command is vLLM and needs a model', async () => {
    await assert.rejects(launchLm({}), /needs a model/);
  });
});
