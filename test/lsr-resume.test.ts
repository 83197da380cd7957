import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { Llama2cModel } from '../sidecar/lm/llama2c/model';
import { LmServer } from '../sidecar/lm/serve';
import { needsStories, repoRoot, storiesModel, storiesTokenizer } from './fixtures/lm/stories';
import { buildDenseIndex } from './helpers/dense-index';

const CLI = ['--import', 'tsx', path.join(repoRoot, 'sidecar', 'cli', 'main.ts')];

function run(args: string[]): { done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>; kill: () => void } {
  // Async spawn: the LM server answering this child runs in this process's event loop.
  const child = spawn(process.execPath, [...CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { done, kill: () => child.kill('SIGKILL') };
}

test('LSR against the stories260K server: checkpoints, is killed, resumes and finishes', { ...needsStories, timeout: 300_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-lsr-resume-'));
  const lm = await Llama2cModel.load(storiesModel, storiesTokenizer);
  const server = new LmServer(lm);
  try {
    const model = path.join(dir, 'tiny');
    await makeTinyBert(model, { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 128, seed: 3 });
    const encoder = await loadEncoder({ model });
    await buildDenseIndex(path.join(dir, 'index'), encoder, model);
    await encoder.dispose();
    const url = await server.listen(0);

    const output = path.join(dir, 'out');
    const args = [
      'train', '--index-dir', path.join(dir, 'index'), '--output', output, '--lm-url', url, '--lm-model', 'stories260K',
      // The LM's 512-token context takes the default budgets (128 each): no budget flags needed.
      '--steps', '6', '--batch', '2', '-k', '3', '--checkpoint-every', '2', '--queries-per-file', '3', '--lr', '1e-3',
    ];
    const first = run(args);
    const current = path.join(output, 'checkpoints', 'CURRENT');
    const deadline = Date.now() + 120_000;
    while (!existsSync(current) && Date.now() < deadline) await sleep(50);
    assert.ok(existsSync(current), 'a checkpoint was written');
    first.kill();
    const killed = await first.done;
    assert.equal(killed.signal, 'SIGKILL', `the first run was still going: ${killed.stderr}`);
    assert.ok(!existsSync(path.join(output, 'replug-training.json')), 'the killed run did not finish');
    const stepsBefore = readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').length;

    const resumed = await run(['train', '--output', output, '--resume']).done;
    assert.equal(resumed.code, 0, resumed.stderr);
    const resumedFrom = Number(/from step (\d+) of 6/.exec(resumed.stderr)?.[1]);
    assert.ok(resumedFrom >= 2 && resumedFrom % 2 === 0 && resumedFrom <= stepsBefore, `resumed from step ${resumedFrom} after ${stepsBefore} logged steps`);
    // The resumed run redoes the steps logged after its checkpoint: the log has each step once, in order.
    const steps = readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
    const record = JSON.parse(readFileSync(path.join(output, 'replug-training.json'), 'utf8'));
    assert.equal(record.step, 6);
    assert.equal(record.mode, 'query-tower');
    const tuned = await loadEncoder({ model: output });
    assert.equal((await tuned.embed(['const x = 1;']))[0].length, 32);
    await tuned.dispose();
  } finally {
    await server.close();
    await lm.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
