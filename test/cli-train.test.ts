import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadEncoder } from '../sidecar/encoder/ort-encoder';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';
import { startInterposer } from './fixtures/lm/interposer';
import { repoRoot } from './fixtures/lm/stories';
import { buildDenseIndex } from './helpers/dense-index';

const CLI = ['--import', 'tsx', path.join(repoRoot, 'sidecar', 'cli', 'main.ts')];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI asynchronously (the LM server answering it lives in this process); `onStderr` may act on its output. */
function cli(args: string[], env: Record<string, string>, onStderr?: (text: string, kill: (signal: NodeJS.Signals) => void) => void): Promise<Run> {
  const child = spawn(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => {
    stderr += d;
    onStderr?.(stderr, (signal) => child.kill(signal));
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stdout, stderr })));
}

const steps = (output: string) => readFileSync(path.join(output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);

describe('train CLI: output folders, interruption and --resume', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'replug-cli-train-'));
  const server = new LmServer(new CopyLm('copy-lm', 16384));
  const proxies: { close: () => Promise<void> }[] = [];
  let env: Record<string, string>;
  let indexDir: string;
  const flags = ['--steps', '12', '--batch', '2', '-k', '3', '--checkpoint-every', '3', '--lr', '1e-3', '--queries-per-file', '2'];

  before(async () => {
    const model = await makeTinyBert(path.join(dir, 'tiny'), { layers: 1, hidden: 32, heads: 4, ffn: 64, vocab: 'real', maxPos: 128, seed: 5, noShift: true });
    const encoder = await loadEncoder({ model });
    indexDir = path.join(dir, 'index');
    await buildDenseIndex(indexDir, encoder, model);
    await encoder.dispose();
    // Each scoring request waits a little, so a run lasts long enough to be interrupted mid-way.
    const slow = await startInterposer(await server.listen(0), async () => {
      await new Promise((resolve) => setTimeout(resolve, 60));
      return false;
    });
    proxies.push(slow);
    env = { REPLUG_LM_URL: slow.url, REPLUG_LM_MODEL: 'copy-lm', REPLUG_CODE_INDEX_DIR: indexDir };
  });
  after(async () => {
    for (const p of proxies) await p.close();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('Ctrl-C saves a checkpoint and exits 130; --resume alone continues from it, with a metrics log that has each step once', { timeout: 120_000 }, async () => {
    const output = path.join(dir, 'run');
    let interrupted = false;
    const first = await cli(['train', '--output', output, ...flags], env, (text, kill) => {
      if (!interrupted && /^training 2\/12 /m.test(text)) {
        interrupted = true;
        kill('SIGINT');
      }
    });
    assert.equal(first.code, 130, first.stderr);
    assert.match(first.stdout, /stopped at \d+\/12 steps .*\ncheckpoint saved in .*: run the same command with --resume to finish/);
    assert.ok(!existsSync(path.join(output, 'replug-training.json')));

    // An unfinished run is not a model: loading it says how to finish it.
    const search = await cli(['search', 'add numbers', '--model', output], env);
    assert.equal(search.code, 1);
    assert.match(search.stderr, /holds a training run that did not finish \(its last checkpoint is at step \d+\), not a model: finish it with `replug-code train --resume --output /);

    // Flags that change the run are refused; --resume needs none of the original flags.
    const changed = await cli(['train', '--output', output, '--resume', '--lr', '5e-3', '--abstain', '--lm-model', 'other-lm'], env);
    assert.equal(changed.code, 1);
    assert.match(
      changed.stderr,
      /--resume continues the saved run, but these change it: --lr \(the run has 0\.001\); --abstain \(the run has false\); the teacher \(the run was trained by "copy-lm" at .*--allow-new-teacher/,
    );

    const resumed = await cli(['train', '--output', output, '--resume'], { ...env, REPLUG_LM_MODEL: '' });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr, /resuming .* from step \d+ of 12/);
    assert.deepEqual(steps(output), Array.from({ length: 12 }, (_, i) => i + 1));
    assert.ok(existsSync(path.join(output, 'replug-training.json')));
    assert.match(resumed.stdout, /evaluate with `eval --tuned /);
  });

  test('a folder holding a run is never overwritten silently; --overwrite replaces it; a folder of other files is refused', { timeout: 120_000 }, async () => {
    const output = path.join(dir, 'finished');
    const done = await cli(['train', '--output', output, ...flags, '--steps', '3'], env);
    assert.equal(done.code, 0, done.stderr);
    const model = readFileSync(path.join(output, 'model.safetensors'));

    const again = await cli(['train', '--output', output, ...flags, '--steps', '3', '--seed', '7'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds a training run: continue it with --resume, replace it with --overwrite, or choose another --output/);
    assert.deepEqual(readFileSync(path.join(output, 'model.safetensors')), model, 'the finished model is untouched');
    assert.deepEqual(steps(output), [1, 2, 3]);

    const replaced = await cli(['train', '--output', output, ...flags, '--steps', '2', '--overwrite'], env);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.deepEqual(steps(output), [1, 2], 'metrics of the old run are gone, not appended to');

    // Training from the run in OUT into OUT itself: --overwrite would delete the model it starts from.
    const fromItself = await cli(['train', '--output', output, ...flags, '--model', output, '--steps', '2', '--overwrite'], env);
    assert.equal(fromItself.code, 1);
    assert.match(fromItself.stderr, /--overwrite would delete .*, the model this run starts from: choose another --output/);
    assert.deepEqual(steps(output), [1, 2], 'the run is still there');

    const other = path.join(dir, 'notes');
    mkdirSync(other);
    writeFileSync(path.join(other, 'todo.txt'), 'mine');
    const refused = await cli(['train', '--output', other, ...flags, '--overwrite'], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /is not empty and holds no training run/);
    assert.equal(readFileSync(path.join(other, 'todo.txt'), 'utf8'), 'mine');
  });

  test('the LM options say how to give them when missing', async () => {
    const missing = await cli(['train', '--output', path.join(dir, 'x'), ...flags], { ...env, REPLUG_LM_URL: '' });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no LM endpoint: pass --lm-url .* or set \$REPLUG_LM_URL/);
  });
});
