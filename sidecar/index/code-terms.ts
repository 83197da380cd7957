/**
 * Terms for lexical search over code: an identifier matches both whole (`parseCsvRow`) and by its parts
 * (`parse`, `csv`, `row`), so a natural-language query finds code and an exact identifier ranks its definition first.
 */
const WORD = /[\p{L}\p{N}_$]+/gu;
const PART = /[\p{Lu}]?[\p{Ll}]+|[\p{Lu}]+(?![\p{Ll}])|\p{N}+|[\p{Lo}]+/gu;
const MAX_TERM = 64;

export function codeTerms(text: string): string[] {
  const terms: string[] = [];
  for (const [word] of text.matchAll(WORD)) {
    if (word.length > MAX_TERM) continue;
    const lower = word.toLowerCase();
    const parts = word.match(PART) ?? [];
    if (parts.length !== 1 || parts[0].toLowerCase() !== lower.replace(/^[_$]+|[_$]+$/g, '')) {
      terms.push(lower);
    }
    for (const part of parts) terms.push(part.toLowerCase());
  }
  return terms;
}
