/**
 * Which prompt tokens belong to the continuation y. One rule for both request styles: a token counts toward y
 * when any of its text lies inside y, so a token straddling the junction (the prefix's last characters merged
 * with y's first ones) is scored as part of y: its probability is the model's prediction of y's first characters.
 */

/**
 * Token-id requests: y starts at the first position where tokenize(prefix) and tokenize(prefix ⊕ y) differ.
 * When the junction is a clean token boundary that is exactly prefix.length; when a token straddles it, that
 * token (and any the tokenizer re-merged before it) is y's first.
 */
export function continuationStartByIds(prefixIds: readonly number[], wholeIds: readonly number[]): number {
  let i = 0;
  while (i < prefixIds.length && i < wholeIds.length && prefixIds[i] === wholeIds[i]) i++;
  return i;
}

/**
 * String prompts: from the echoed `text_offset`s, the half-open token range [start, end) of y, where y occupies
 * characters [yStart, promptLength) of the prompt. Tokens at or past promptLength were generated (the
 * max_tokens=1 fallback) and are excluded; a token's end is the next token's offset.
 */
export function continuationRangeByOffsets(textOffsets: readonly number[], promptLength: number, yStart: number): { start: number; end: number } {
  let end = 0;
  while (end < textOffsets.length && textOffsets[end] < promptLength) end++;
  let start = 0;
  // Skip tokens wholly before y. A token at or after yStart is y's even when zero-width (one byte of a
  // multi-byte character shares its character's offset).
  while (start < end && textOffsets[start] < yStart && Math.min(textOffsets[start + 1] ?? promptLength, promptLength) <= yStart) start++;
  return { start, end };
}
