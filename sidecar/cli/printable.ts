/**
 * Text from a repository on a terminal: file names and code may hold newlines (which split one result into two),
 * escape sequences (which move the cursor or recolour the screen) and bidirectional overrides (which reorder what is
 * printed around them). These helpers escape them, JSON-style, before anything is printed as text.
 */
const UNPRINTABLE = /[\0-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, 'g');
const SHORT: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\b': '\\b', '\f': '\\f' };

const escape = (c: string) => SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with control characters (but tab), line separators and bidirectional controls escaped. */
export function escapeControls(text: string): string {
  return text.replace(UNPRINTABLE_ALL, escape);
}

/** A path as is, or as a quoted JSON string with those characters escaped, so the escaped form cannot be mistaken. */
export function printablePath(file: string): string {
  return UNPRINTABLE.test(file) ? JSON.stringify(file).replace(UNPRINTABLE_ALL, escape) : file;
}
