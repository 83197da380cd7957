/**
 * The tokenizer.json configuration Hugging Face writes for a BertTokenizerFast, built from a vocab.txt word list.
 * This is configuration for @huggingface/tokenizers' own WordPiece implementation, used for model folders that ship
 * only vocab.txt (and by the test-model generator).
 */
const SPECIALS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

export function bertTokenizerJson(vocab: readonly string[], lowercase: boolean): Record<string, unknown> {
  const ids = new Map<string, number>();
  vocab.forEach((token, id) => {
    if (!ids.has(token)) ids.set(token, id);
  });
  for (const s of ['[UNK]', '[CLS]', '[SEP]']) {
    if (!ids.has(s)) throw new Error(`vocabulary has no ${s} token; it is not a BERT WordPiece vocabulary`);
  }
  const special = (token: string) => ({ id: token, ids: [ids.get(token)], tokens: [token] });
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const tok = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: SPECIALS.filter((s) => ids.has(s)).map((content) => ({
      id: ids.get(content),
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0)],
      pair: [tok('[CLS]', 0), seq('A', 0), tok('[SEP]', 0), seq('B', 1), tok('[SEP]', 1)],
      special_tokens: { '[CLS]': special('[CLS]'), '[SEP]': special('[SEP]') },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(ids),
    },
  };
}

/** tokenizer_config.json for the same tokenizer (transformers.js and tokenizers.js read it beside tokenizer.json). */
export function bertTokenizerConfig(lowercase: boolean, maxLength: number): Record<string, unknown> {
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: lowercase,
    model_max_length: maxLength,
    clean_up_tokenization_spaces: true,
    cls_token: '[CLS]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    unk_token: '[UNK]',
    mask_token: '[MASK]',
  };
}
