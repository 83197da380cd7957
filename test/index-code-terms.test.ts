import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codeTerms } from '../sidecar/index/code-terms';

test('identifiers yield the whole name and its camelCase, snake_case and acronym parts', () => {
  assert.deepEqual(codeTerms('parseCsvRow'), ['parsecsvrow', 'parse', 'csv', 'row']);
  assert.deepEqual(codeTerms('HTTPServer'), ['httpserver', 'http', 'server']);
  assert.deepEqual(codeTerms('max_file_bytes'), ['max_file_bytes', 'max', 'file', 'bytes']);
});

test('plain words and dunder names are not duplicated', () => {
  assert.deepEqual(codeTerms('the quick fox'), ['the', 'quick', 'fox']);
  assert.deepEqual(codeTerms('__init__'), ['init']);
});

test('punctuation separates terms and non-Latin words survive', () => {
  assert.deepEqual(codeTerms('a.b(c);'), ['a', 'b', 'c']);
  assert.deepEqual(codeTerms('café 日本語'), ['café', '日本語']);
});
