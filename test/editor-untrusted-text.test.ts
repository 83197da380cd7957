import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { notice, quickPickText, quoteUntrusted, revealBidi } from '../extension/untrusted-text';

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

describe('bidi controls (Trojan Source) are shown, not obeyed', () => {
  const controls = [0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c];

  test('each control is shown as [U+XXXX]', () => {
    for (const code of controls) {
      const hex = code.toString(16).toUpperCase().padStart(4, '0');
      assert.equal(revealBidi(`a${String.fromCodePoint(code)}b`), `a[U+${hex}]b`);
    }
  });

  test('a file name that would display as another extension reads as stored', () => {
    assert.equal(revealBidi('invoice\u202Egnp.ts:1-4'), 'invoice[U+202E]gnp.ts:1-4');
    assert.equal(
      revealBidi('/*\u202E } \u2066if (isAdmin)\u2069 \u2066 begin admins only */'),
      '/*[U+202E] } [U+2066]if (isAdmin)[U+2069] [U+2066] begin admins only */',
    );
  });

  test('other text, including right-to-left scripts and emoji, is left alone', () => {
    for (const text of ['const x = 1; // plain', 'שלום עולם', 'مرحبا', '日本語', '👩‍💻', 'tab\tand\u200Bzero-width space']) {
      assert.equal(revealBidi(text), text);
    }
  });

  test('notifications show them too', () => {
    assert.equal(notice`REPLUG: ${'a\u202Eb'}`, 'REPLUG: a[U+202E]b');
  });
});

describe('icon syntax in quick-pick text', () => {
  /** How VS Code 1.100 finds icons in labels (renderLabelWithIcons); an escaped one, `\$(name)`, is shown as text. */
  const ICON = /(\\)?\$\(([A-Za-z0-9-]+(?:~[A-Za-z]+)?)\)/g;
  const icons = (text: string) => [...text.matchAll(ICON)].filter((m) => !m[1]).map((m) => m[2]);

  test('file names and code that spell $(name) draw no icon', () => {
    for (const text of ['src/$(zap)notes.ts:1-20', 'echo "$(whoami)" $(loading~spin)', '$(alert) urgent $(check)']) {
      assert.ok(icons(text).length > 0, 'the text has icon syntax');
      assert.deepEqual(icons(quickPickText(text)), [], quickPickText(text));
    }
  });

  test('text that is not icon syntax is left alone; bidi controls are shown', () => {
    assert.equal(quickPickText('cost = $(price) * 2'), 'cost = \\$(price) * 2');
    assert.equal(quickPickText('$( not an icon ) and $x'), '$( not an icon ) and $x');
    assert.equal(quickPickText('a\u202Eb'), 'a[U+202E]b');
  });
});
