import { test } from 'node:test';
import assert from 'node:assert/strict';
import { explanationText } from '../extension/file-explanation';

test('every answer to "why isn\'t this file indexed?" names the file and the reason, and points at the setting that decides it', () => {
  const cases: [Parameters<typeof explanationText>[1], RegExp, string?][] = [
    [{ state: 'indexed', passages: 3 }, /src\/a\.ts is indexed \(3 passages\)/],
    [{ state: 'skipped', reason: 'too-large', detail: '2000000 bytes (limit 1000000)' }, /not indexed: it is larger than the size limit for one file \(2000000 bytes \(limit 1000000\)\)/],
    [{ state: 'skipped', reason: 'lock-file' }, /not indexed: it is a dependency lock file\.$/],
    [{ state: 'excluded', by: 'gitignore' }, /a \.gitignore \(or \.git\/info\/exclude\) ignores it/],
    [{ state: 'excluded', by: 'default-exclude', pattern: '**/.vscode/**' }, /the built-in exclude \*\*\/\.vscode\/\*\* leaves out/],
    [{ state: 'excluded', by: 'exclude', pattern: 'docs/**' }, /the exclude pattern docs\/\*\* \(REPLUG › Exclude or Files: Exclude\)/, 'replugCode.exclude'],
    [{ state: 'excluded', by: 'include' }, /matches none of the REPLUG › Include patterns/, 'replugCode.include'],
    [{ state: 'outside-roots' }, /outside the workspace folders/],
    [{ state: 'not-indexed' }, /not indexed yet; REPLUG: Index Workspace picks it up/],
    [{ state: 'missing' }, /there is no file src\/a\.ts/],
  ];
  for (const [why, expected, settings] of cases) {
    const answer = explanationText('src/a.ts', why);
    assert.match(answer.text, expected, JSON.stringify(why));
    assert.equal(answer.settings, settings, JSON.stringify(why));
  }
});

test('a file name that spells a link is quoted as text', () => {
  const { text } = explanationText('[x](command:workbench.action.terminal.new).ts', { state: 'indexed', passages: 1 });
  assert.ok(text.includes('[x] (command:workbench.action.terminal.new).ts'), text);
});
