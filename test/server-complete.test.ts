import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CancellationTokenSource, LSPErrorCodes, ResponseError } from 'vscode-languageserver-protocol/node';
import { LmServer } from '../sidecar/lm/serve';
import { CompleteRequest, IndexRequest } from '../sidecar/server/protocol';
import { CopyLm } from './fixtures/lm/copy-lm';
import { startInterposer } from './fixtures/lm/interposer';
import { startSidecar } from './helpers/sidecar-process';
import { makeTree } from './helpers/temp-tree';

const FILES = {
  'math.js': 'function sum(a, b) {\n  return a + b;\n}\n\nfunction product(a, b) {\n  return a * b;\n}\n',
  'todo.js': '// more arithmetic\n\nfunction add(a, b) {\n  return a',
};

test('replug/complete: a completion from the LM over the sidecar’s index, never from the prompt’s own lines; cancellable; refused untrusted', async () => {
  const tree = makeTree(FILES);
  const lm = new LmServer(new CopyLm('copy-lm', 4096));
  const proxy = await startInterposer(await lm.listen(0), () => false);
  const endpoint = { baseUrl: proxy.url, model: 'copy-lm' };
  const sidecar = await startSidecar({ indexDir: join(tree.root, '.index') });
  try {
    assert.equal(sidecar.initError, undefined);
    await sidecar.connection.sendRequest(IndexRequest.type, { roots: [tree.root] });
    const todo = join(tree.root, 'todo.js');
    const result = await sidecar.connection.sendRequest(CompleteRequest.type, { lm: endpoint, prompt: FILES['todo.js'], path: todo, promptLines: [1, 4], maxTokens: 2 });
    assert.equal(result.text, ' + b');
    assert.equal(result.finishReason, 'length');
    assert.ok(result.passages.length > 0 && result.passages.every((p) => p.path !== todo), JSON.stringify(result.passages.map((p) => p.path)));
    assert.ok(result.passages[0].path.endsWith('math.js'));
    assert.ok(Math.abs(result.passages.reduce((s, p) => s + p.weight, 0) - 1) < 1e-9);

    // A long completion, cancelled as typing would cancel it: the sidecar stops asking the LM.
    const cts = new CancellationTokenSource();
    const long = sidecar.connection.sendRequest(CompleteRequest.type, { lm: endpoint, prompt: FILES['todo.js'], path: todo, maxTokens: 500 }, cts.token);
    await new Promise((r) => setTimeout(r, 400));
    cts.cancel();
    await assert.rejects(long, (err: unknown) => err instanceof ResponseError && err.code === LSPErrorCodes.RequestCancelled);
    await new Promise((r) => setTimeout(r, 300));
    const settled = proxy.counts.get('/v1/completions');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(proxy.counts.get('/v1/completions'), settled, 'no LM request after the cancellation settled');
  } finally {
    await sidecar.stop();
    await proxy.close();
    await lm.close();
  }

  const untrusted = await startSidecar({ indexDir: join(tree.root, '.index'), workspaceTrusted: false });
  try {
    await assert.rejects(untrusted.connection.sendRequest(CompleteRequest.type, { lm: endpoint, prompt: 'x' }), /Restricted Mode/);
  } finally {
    await untrusted.stop();
    tree.cleanup();
  }
});
