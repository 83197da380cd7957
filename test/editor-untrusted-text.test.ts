import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { notice, quoteUntrusted } from '../extension/untrusted-text';

/**
 * How VS Code 1.100 finds links in notification text (parseLinkedText in vs/base/common/linkedText.ts, as bundled
 * in the workbench the real-VS-Code tests run): whatever matches becomes a clickable <a>.
 */
const NOTIFICATION_LINK = /\[([^\]]+)\]\(((?:https?:\/\/|command:|file:)[^\)\s]+)(?: (["'])(.+?)(\3))?\)/gi;

const links = (text: string) => [...text.matchAll(NOTIFICATION_LINK)].map((m) => m[2]);

describe('untrusted text in notifications', () => {
  const payloads = [
    '[click](command:workbench.action.terminal.new)',
    'LM server at http://x/v1 rejected the request (400): [click](command:workbench.action.terminal.new)',
    '[docs](https://evil.example/steal "Open the docs")',
    '[passwd](file:///etc/passwd)',
    '[[nested](command:a)](command:b)',
    'x'.repeat(290) + '[click](command:workbench.action.terminal.new)',
  ];

  for (const payload of payloads) {
    test(`no live link survives: ${JSON.stringify(payload.slice(-60))}`, () => {
      assert.ok(links(payload).length > 0, 'the payload is a link as VS Code parses it');
      const shown = notice`REPLUG: evaluation failed: ${payload}`;
      assert.deepEqual(links(shown), [], shown);
    });
  }

  test('the payload stays readable: the link text and its target are both shown', () => {
    const shown = notice`REPLUG: evaluation failed: ${new Error('[click](command:workbench.action.terminal.new)')}`;
    assert.equal(shown, 'REPLUG: evaluation failed: [click] (command:workbench.action.terminal.new)');
  });

  test('a link cannot be formed across a value and the literal text after it', () => {
    const shown = notice`model ${'[x]'}(command:workbench.action.terminal.new)`;
    assert.deepEqual(links(shown), []);
  });

  test('long text is cut with a pointer to the log; whitespace runs fold to one space', () => {
    const quoted = quoteUntrusted(`${'word '.repeat(200)}\n\n  end`);
    assert.ok(quoted.length < 360, `${quoted.length} characters`);
    assert.match(quoted, /… \(full text in the log\)$/);
    assert.doesNotMatch(quoted, /\s{2}|\n/);
  });

  test('the extension\'s own words pass through unchanged', () => {
    assert.equal(notice`REPLUG: indexed ${6} files (${2} changed).`, 'REPLUG: indexed 6 files (2 changed).');
  });
});
