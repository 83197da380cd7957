/** "1 file", "2 files": a count with its noun in the right number (nouns that take an s). */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
