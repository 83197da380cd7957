import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { launchLm, type LaunchedLm } from '../sidecar/lm/launcher';
import { LmServer } from '../sidecar/lm/serve';
import { CopyLm } from './fixtures/lm/copy-lm';
import { launchStoriesServer, needsStories, repoRoot } from './fixtures/lm/stories';
import { makeTree } from './helpers/temp-tree';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', path.join(repoRoot, 'sidecar', 'cli', 'main.ts')];
const cli = (...args: string[]) => run(process.execPath, [...CLI, ...args]);

/** Feeds `input` to the CLI's stdin. */
function cliWithStdin(input: string, ...args: string[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ stdout, stderr, code }));
    child.stdin.end(input);
  });
}

const WORKSPACE = {
  'math.js': 'function sum(a, b) {\n  return a + b;\n}\n\nfunction product(a, b) {\n  return a * b;\n}\n',
  'strings.js': 'function shout(text) {\n  return text.toUpperCase() + "!";\n}\n',
  'todo.js': 'function add(a, b) {\n  return a',
};

describe('CLI: complete and serve against the copy-LM', () => {
  let tree: { root: string; cleanup: () => void };
  let lm: LmServer;
  let lmUrl: string;
  const indexDir = () => path.join(tree.root, '.index');
  const lmArgs = () => ['--lm-url', lmUrl, '--lm-model', 'copy-lm', '--index-dir', indexDir()];

  before(async () => {
    tree = makeTree(WORKSPACE);
    lm = new LmServer(new CopyLm('copy-lm', 4096));
    lmUrl = await lm.listen(0);
    await cli('index', tree.root, '--index-dir', indexDir());
  });
  after(async () => {
    await lm?.close();
    tree?.cleanup();
  });

  test('complete streams the continuation to stdout and says on stderr what it cost and which passages weighed in', async () => {
    const { stdout, stderr } = await cli('complete', path.join(tree.root, 'todo.js'), '--max-tokens', '2', ...lmArgs());
    assert.equal(stdout, ' + b');
    assert.match(stderr, /^\[2 tokens, length, \d+ LM requests; passages: .*math\.js:1-7 \(λ [01]\.\d{3}\)/);
  });

  test('complete --json lists the passages with their weights, never from the prompt file itself', async () => {
    const { stdout } = await cli('complete', path.join(tree.root, 'todo.js'), '--max-tokens', '3', '-k', '3', '--json', ...lmArgs());
    const result = JSON.parse(stdout);
    assert.equal(result.mode, 'replug');
    assert.equal(result.usage.completionTokens, 3);
    assert.ok(result.passages.length >= 1 && result.passages.every((p: { path: string }) => !p.path.endsWith('todo.js')), JSON.stringify(result.passages));
    assert.ok(Math.abs(result.passages.reduce((s: number, p: { weight: number }) => s + p.weight, 0) - 1) < 1e-9);
    assert.ok(result.requests > 3 * 3);
    // From stdin there is no prompt file: --source names the span to keep out.
    const stdin = await cliWithStdin(WORKSPACE['math.js'].slice(0, 30), 'complete', '--json', '--max-tokens', '1', '--source', `${tree.root}/math.js:1-7`, ...lmArgs());
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.ok(JSON.parse(stdin.stdout).passages.every((p: { path: string }) => !p.path.endsWith('math.js')));
  });

  test('complete --mode none needs no index; errors say what to do', async () => {
    const none = await cliWithStdin('function add(a, b) {\n  return a', 'complete', '--mode', 'none', '--max-tokens', '2', '--lm-url', lmUrl, '--lm-model', 'copy-lm', '--index-dir', path.join(tree.root, 'nowhere'));
    assert.equal(none.code, 0, none.stderr);
    assert.match(none.stderr, /^\[2 tokens, length, \d+ LM requests\]/);
    const noIndex = await cliWithStdin('x', 'complete', '--lm-url', lmUrl, '--lm-model', 'copy-lm', '--index-dir', path.join(tree.root, 'nowhere'));
    assert.equal(noIndex.code, 1);
    assert.match(noIndex.stderr, /no index at .*nowhere.*--mode none needs no index/);
    const down = await cliWithStdin('x', 'complete', '--mode', 'none', '--lm-url', 'http://127.0.0.1:9/v1', '--lm-model', 'copy-lm');
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach the LM server \(GET http:\/\/127\.0\.0\.1:9\/v1\/models/);
    const badSource = await cliWithStdin('x', 'complete', '--source', 'a.js:9-2', ...lmArgs());
    assert.notEqual(badSource.code, 0);
    assert.match(badSource.stderr, /expected path\[:start-end\]/);
  });

  test('serve answers the openai client with REPLUG completions over the index until SIGTERM', async () => {
    const served = await launchLm({
      command: [process.execPath, ...CLI, 'serve', '--port', '{port}', '--name', 'replug-copy', ...lmArgs()],
      readyTimeoutMs: 60_000,
    });
    try {
      assert.deepEqual(served.models, ['replug-copy']);
      const openai = new OpenAI({ baseURL: served.baseUrl, apiKey: 'none', maxRetries: 0 });
      // todo.js is indexed too; the request names it as the prompt's source, so it is not retrieved for itself.
      const request = { model: 'replug-copy', prompt: WORKSPACE['todo.js'], max_tokens: 2, temperature: 0, replug: { source: { path: path.join(tree.root, 'todo.js') } } };
      const completion = await openai.completions.create(request as OpenAI.CompletionCreateParamsNonStreaming);
      assert.equal(completion.choices[0].text, ' + b');
    } finally {
      await served.stop();
    }
  });

  test('serve takes its API key from $REPLUG_SERVE_API_KEY, and --help never prints it', async () => {
    const env = { ...process.env, REPLUG_SERVE_API_KEY: 'k3y-from-env' };
    const help = await run(process.execPath, [...CLI, 'serve', '--help'], { env });
    assert.ok(!help.stdout.includes('k3y-from-env'));
    const child = spawn(process.execPath, [...CLI, 'serve', '--port', '0', ...lmArgs()], { env });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = / at (http:\/\/\S+\/v1) \(Ctrl-C/.exec(out);
          if (m) resolve(m[1]);
        });
        child.on('exit', (code) => reject(new Error(`serve exited (${code}) before listening: ${out}`)));
      });
      assert.equal((await fetch(`${url}/models`)).status, 401);
      const openai = new OpenAI({ baseURL: url, apiKey: 'k3y-from-env', maxRetries: 0 });
      assert.deepEqual((await openai.models.list()).data.map((m) => m.id), ['copy-lm']);
    } finally {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });
});

describe('CLI: complete against stories260K served by serve-lm', needsStories, () => {
  let lm: LaunchedLm;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'replug-complete-stories-'));
    writeFileSync(path.join(dir, 'lily.txt'), 'Lily had a big red ball. She loved her ball very much.\nEvery day Lily played with her ball in the park.\n');
    writeFileSync(path.join(dir, 'tom.txt'), 'Tom had a small blue boat. He sailed his boat on the pond.\n');
    await cli('index', dir, '--index-dir', path.join(dir, '.index'));
    lm = await launchStoriesServer();
  });
  after(async () => {
    await lm?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('replug, concat and none each continue a story token-exactly; replug with one passage equals concat with it', async () => {
    const prompt = path.join(dir, 'prompt.txt');
    writeFileSync(prompt, 'One day, Lily went to the park with her');
    const complete = async (...extra: string[]) =>
      JSON.parse((await cli('complete', prompt, '--json', '--max-tokens', '6', '--lm-url', lm.baseUrl, '--lm-model', 'stories260K', '--index-dir', path.join(dir, '.index'), ...extra)).stdout);
    const replug = await complete('-k', '1');
    const concat = await complete('-k', '1', '--mode', 'concat');
    const none = await complete('--mode', 'none');
    assert.equal(replug.text, concat.text);
    assert.ok(replug.passages[0].path.endsWith('lily.txt'));
    for (const r of [replug, concat, none]) {
      assert.equal(r.usage.completionTokens, 6);
      assert.ok(r.text.trim().length > 0, JSON.stringify(r.text));
    }
    const two = await complete('-k', '2');
    assert.equal(two.passages.length, 2);
    assert.ok(two.text.trim().length > 0);
  });
});
