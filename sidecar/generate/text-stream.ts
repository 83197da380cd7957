/**
 * Turns the growing text of a completion into safe deltas and applies stop sequences, as vLLM's own streaming does:
 * text that might still become a stop sequence, and a trailing U+FFFD (half of a multi-byte character whose other
 * bytes are in the next token), is held back until the next token settles it.
 */
export class TextStream {
  private emitted = '';
  private finalText: string | undefined;
  private stopHit = false;

  constructor(private readonly stops: readonly string[] = []) {
    if (stops.some((s) => s === '')) throw new Error('a stop sequence must not be empty');
  }

  /** The completion's text so far (ignored once stopped); returns the delta that is now safe to show. */
  update(text: string): string {
    if (this.finalText !== undefined) return '';
    const cut = this.firstStop(text);
    if (cut !== undefined) {
      this.finalText = text.slice(0, cut);
      return this.advance(this.finalText);
    }
    return this.advance(text.slice(0, text.length - this.heldBack(text)));
  }

  /** Ends the stream (no stop sequence occurred): whatever was held back is released. */
  finish(text: string): string {
    if (this.finalText !== undefined) return '';
    this.finalText = text;
    return this.advance(text);
  }

  /** Whether a stop sequence ended the text. */
  get stopped(): boolean {
    return this.stopHit;
  }

  get text(): string {
    return this.finalText ?? this.emitted;
  }

  private firstStop(text: string): number | undefined {
    let first: number | undefined;
    for (const stop of this.stops) {
      const at = text.indexOf(stop);
      if (at >= 0 && (first === undefined || at < first)) first = at;
    }
    if (first !== undefined) this.stopHit = true;
    return first;
  }

  /** Length of the longest tail of `text` that is the start of a stop sequence, or a trailing replacement character. */
  private heldBack(text: string): number {
    let hold = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, text.length); n > hold; n--) {
        if (text.endsWith(stop.slice(0, n))) {
          hold = n;
          break;
        }
      }
    }
    if (text.endsWith('\uFFFD')) hold = Math.max(hold, 1);
    return hold;
  }

  /** Emits what `safe` adds to the text already shown (a decoder may rewrite a held-back tail, never shown text). */
  private advance(safe: string): string {
    if (!safe.startsWith(this.emitted) || safe.length <= this.emitted.length) return '';
    const delta = safe.slice(this.emitted.length);
    this.emitted = safe;
    return delta;
  }
}
