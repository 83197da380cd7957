import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { LaunchedLm } from '../sidecar/lm/launcher';
import { Llama2cTokenizer } from '../sidecar/lm/llama2c/tokenizer';
import { Llama2cReference } from './fixtures/lm/llama2c-reference';
import { isRunning } from './fixtures/lm/process';
import { launchStoriesServer, needsStories, repoRoot, storiesModel, storiesTokenizer } from './fixtures/lm/stories';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', path.join(repoRoot, 'sidecar', 'cli', 'main.ts')];

describe('CLI: serve-lm (child process) + score over real HTTP', needsStories, () => {
  let lm: LaunchedLm;
  let dir: string;
  const files = { doc: '', context: '', continuation: '' };
  const texts = { doc: 'Lily had a big red ball. She loved her ball.', context: 'One day, Lily went to the park with her', continuation: ' big red ball. She was very happy.' };

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'replug-lm-cli-'));
    for (const key of ['doc', 'context', 'continuation'] as const) {
      files[key] = path.join(dir, `${key}.txt`);
      writeFileSync(files[key], texts[key]);
    }
    lm = await launchStoriesServer();
  });
  after(async () => {
    await lm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('serve-lm lists the checkpoint under its file name', () => {
    assert.deepEqual(lm.models, ['stories260K']);
  });

  test('score --json matches the reference forward pass of the llama2.c model to 1e-4 per token', async () => {
    const { stdout } = await run(process.execPath, [...CLI, 'score', '--lm-url', lm.baseUrl, '--lm-model', 'stories260K', '--doc', files.doc, '--context', files.context, '--continuation', files.continuation, '--json']);
    const result = JSON.parse(stdout);
    const reference = Llama2cReference.load(storiesModel);
    const tokenizer = new Llama2cTokenizer(storiesTokenizer, reference.config.vocabSize);
    const prefix = `${texts.doc}\n${texts.context}`;
    const prefixIds = tokenizer.encode(prefix, true);
    const whole = tokenizer.encode(prefix + texts.continuation, true);
    assert.deepEqual(whole.slice(0, prefixIds.length), prefixIds, 'test texts meet at a token boundary');
    const dists = reference.logProbs(whole);
    const want = whole.slice(prefixIds.length).map((id, k) => dists[prefixIds.length + k - 1][id]);
    assert.equal(result.tokens, want.length);
    want.forEach((lp, k) => assert.ok(Math.abs(result.perToken[k] - lp) < 1e-4, `token ${k}: ${result.perToken[k]} vs ${lp}`));
    assert.ok(Math.abs(result.logProb - want.reduce((a, b) => a + b, 0)) < 1e-4 * want.length);
    assert.ok(Math.abs(result.meanLogProb - result.logProb / result.tokens) < 1e-9);
    assert.equal(result.server.tokenize, true);

    const text = await run(process.execPath, [...CLI, 'score', '--lm-url', lm.baseUrl, '--lm-model', 'stories260K', '--doc', files.doc, '--context', files.context, '--continuation', files.continuation]);
    assert.match(text.stdout, new RegExp(`^log P\\(continuation \\| doc, context\\) = ${result.logProb.toFixed(4)} over ${result.tokens} tokens \\(mean ${result.meanLogProb.toFixed(4)} per token`));
    const noDoc = await run(process.execPath, [...CLI, 'score', '--lm-url', lm.baseUrl, '--lm-model', 'stories260K', '--context', files.context, '--continuation', files.continuation]);
    assert.match(noDoc.stdout, /^log P\(continuation \| context\) = /, 'without --doc the output names no doc');
  });

  test('score fails with exit code 1 and a clear message for a wrong model or a missing file', async () => {
    await assert.rejects(
      run(process.execPath, [...CLI, 'score', '--lm-url', lm.baseUrl, '--lm-model', 'llama-70b', '--context', files.context, '--continuation', files.continuation]),
      (err: { code: number; stderr: string }) => err.code === 1 && /model "llama-70b" not served .* served models: "stories260K"; pass one of them with --lm-model/.test(err.stderr),
    );
    await assert.rejects(
      run(process.execPath, [...CLI, 'score', '--lm-url', lm.baseUrl, '--lm-model', 'stories260K', '--context', path.join(dir, 'nope.txt'), '--continuation', files.continuation]),
      (err: { code: number; stderr: string }) => err.code === 1 && /cannot read --context .*nope\.txt/.test(err.stderr),
    );
  });

  test('stopping serve-lm leaves no process behind', async () => {
    await lm.stop();
    assert.equal(isRunning(lm.pid), false);
  });
});
