/**
 * Text the extension did not write itself — code and file names from the repository, LM server error bodies and
 * output, model names, sidecar errors that quote any of these — reaches the editor's UI only through these
 * functions. Pure (no `vscode` import), so they are unit-tested directly.
 */

/**
 * Bidirectional-text controls (embeddings, overrides, isolates, marks): invisible, they reorder what follows
 * them, so code or a file name can display as something it is not (Trojan Source, CVE-2021-42574).
 */
const BIDI_CONTROLS = /[\u202A-\u202E\u2066-\u2069\u200E\u200F\u061C]/g;

/** Shows each bidi control as `[U+202E]`, as the editor does, so text reads in the order it is stored. */
export function revealBidi(text: string): string {
  return text.replace(BIDI_CONTROLS, (c) => `[U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}]`);
}

/** Most characters of one untrusted value quoted in a notification or a placeholder; the log has all of it. */
const QUOTE_CHARS = 300;

/**
 * One untrusted value made safe for a line of UI text (notifications, placeholders). VS Code renders `[label](command:…)` (also `https:`, `file:`)
 * in notification text as a live link — one click runs the command — so `](` is split; bidi controls are shown;
 * whitespace runs fold to one space and long text is cut.
 */
export function quoteUntrusted(value: unknown): string {
  const text = revealBidi(value instanceof Error ? value.message : String(value)).replace(/\s+/g, ' ').trim();
  return unlink(text.length > QUOTE_CHARS ? `${text.slice(0, QUOTE_CHARS)}… (full text in the log)` : text);
}

/**
 * Tag for notification text: the template's literal parts are the extension's own words, every interpolated value
 * is untrusted and quoted with `quoteUntrusted`. `notice\`REPLUG: indexing failed: ${err}\``
 */
export function notice(strings: TemplateStringsArray, ...values: unknown[]): string {
  // Split again as a whole: a value ending in `[label]` before literal text starting with `(` would link too.
  return unlink(strings.reduce((out, literal, i) => out + quoteUntrusted(values[i - 1]) + literal));
}

/** `[label](target)` with the bracket and parenthesis apart, which no renderer links. */
function unlink(text: string): string {
  return text.replace(/\]\s*\(/g, '] (');
}

/** VS Code's icon syntax, `$(name)` or `$(name~spin)` (iconNameExpression and iconModifierExpression in its source). */
const ICON = /\$\([A-Za-z0-9-]+(?:~[A-Za-z]+)?\)/g;

/**
 * Untrusted text for quick-pick labels, descriptions and details, which draw `$(name)` as an icon: escaped as
 * `\$(name)`, which they show literally. Bidi controls are shown too.
 */
export function quickPickText(text: string): string {
  return revealBidi(text).replace(ICON, '\\$&');
}
