import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AutoTokenizer, env } from '@huggingface/transformers';
import { makeTinyBert } from '../scripts/make-tiny-bert';
import { loadModelFolder } from '../sidecar/encoder/model-folder';
import { EncoderTokenizer } from '../sidecar/encoder/tokenizer';

const CODE_SAMPLES = [
  'export async function loadEncoder(opts: LoadEncoderOptions): Promise<OrtEncoder> {',
  'def _parse_csv_row(self, row: dict[str, str]) -> Passage:\n\treturn Passage(**row)  # TODO: validate',
  'const x = a?.b ?? c; if (x !== undefined && y >= 0x1F) { z <<= 2; }',
  'SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL \'7 days\';',
  '#include <stdio.h>\nint main(void) { printf("héllo, wörld\\n"); return 0; }',
  'let café = "naïve résumé"; // Ünïcödé, 日本語のコメント, emoji 🚀✨',
  'snake_case_identifier camelCaseIdentifier PascalCase SCREAMING_CASE kebab-case-name',
  `url = "https://example.com/path?query=1&other=${'x'.repeat(120)}"`,
  '    \n\n   \t  ',
  '',
];

describe('tokenizer parity with transformers.js AutoTokenizer', () => {
  let dir: string;
  let reference: Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>;
  let ours: EncoderTokenizer;

  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'replug-tok-'));
    await makeTinyBert(path.join(dir, 'real'), { vocab: 'real', hidden: 8, heads: 2, ffn: 8, layers: 1 });
    env.allowRemoteModels = false;
    env.localModelPath = dir;
    reference = await AutoTokenizer.from_pretrained('real');
    const folder = await loadModelFolder(path.join(dir, 'real'));
    ours = new EncoderTokenizer(folder.tokenizer, folder.maxTokens);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('ids with special tokens are identical on code-heavy text', () => {
    for (const text of CODE_SAMPLES) {
      assert.deepEqual(ours.encode(text), reference.encode(text), JSON.stringify(text));
    }
  });

  test('countTokens equals the reference count without special tokens (cached or not)', () => {
    for (const text of CODE_SAMPLES) {
      const expected = reference.encode(text, { add_special_tokens: false }).length;
      assert.equal(ours.countTokens(text), expected, JSON.stringify(text));
      assert.equal(ours.countTokens(text), expected, 'second (cached) call');
    }
  });

  test('truncation keeps [CLS] … [SEP] within max length, as Python tokenizers do', async () => {
    // transformers.js' own truncation slices off the trailing [SEP]; sentence-transformers (Rust tokenizers) keeps it.
    const folder = await loadModelFolder(path.join(dir, 'real'));
    const short = new EncoderTokenizer(folder.tokenizer, 16);
    const long = CODE_SAMPLES.slice(0, 3).join(' ');
    const full = reference.encode(long);
    assert.ok(full.length > 16);
    assert.deepEqual(short.encode(long), [...full.slice(0, 15), full.at(-1)]);
    assert.equal(reference.decode([full.at(-1)!]), '[SEP]');
    assert.deepEqual(short.encode('tiny'), reference.encode('tiny'));
  });

  test('a vocab.txt-only folder tokenizes exactly like the tokenizer.json folder', async () => {
    const txtDir = await makeTinyBert(path.join(dir, 'txt'), { vocab: 'real', hidden: 8, heads: 2, ffn: 8, layers: 1, vocabTxtOnly: true });
    const folder = await loadModelFolder(txtDir);
    const fromTxt = new EncoderTokenizer(folder.tokenizer, folder.maxTokens);
    for (const text of CODE_SAMPLES) assert.deepEqual(fromTxt.encode(text), ours.encode(text), JSON.stringify(text));
    await unlink(path.join(txtDir, 'vocab.txt'));
    await assert.rejects(loadModelFolder(txtDir), /no tokenizer\.json or vocab\.txt/);
  });
});
