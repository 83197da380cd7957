import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { LmError } from '../sidecar/lm/lm-error';
import { lmFailureMessage } from '../sidecar/server/lm-failure';

const lm = { baseUrl: 'http://127.0.0.1:8000/v1', model: 'codellama' };

describe('LM failures as the editor shows them', () => {
  test('a bare status and body gets the endpoint, the model and what to check', () => {
    assert.equal(
      lmFailureMessage(new LmError('model-not-found', '404 nope', 404), lm),
      'The LM endpoint http://127.0.0.1:8000/v1 (model "codellama") answered: 404 nope. ' +
        "Check replugCode.lm.model (the server's /v1/models lists the names it serves) and that replugCode.lm.baseUrl is the server's OpenAI base URL, ending in /v1.",
    );
  });

  test('a message that names the endpoint already is not given it twice', () => {
    const message = lmFailureMessage(new LmError('connection', 'cannot reach LM server at http://127.0.0.1:8000/v1: ECONNREFUSED'), lm);
    assert.equal(message.split('http://127.0.0.1:8000/v1').length, 2, message);
    assert.match(message, /^With model "codellama": cannot reach .*ECONNREFUSED\. Is the server running\?/);
  });

  test('every kind of LM failure comes with something to do; other errors keep their message', () => {
    for (const kind of ['connection', 'timeout', 'rate-limit', 'server', 'model-not-found', 'context-length', 'bad-request', 'malformed', 'unsupported', 'over-budget'] as const) {
      assert.match(lmFailureMessage(new LmError(kind, 'x'), lm), /answered: x\. \S.{20,}/, kind);
    }
    assert.equal(lmFailureMessage(new Error('No training queries: raise the share.'), lm), 'No training queries: raise the share.');
  });
});
