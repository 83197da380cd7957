import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { CorpusInputError } from './corpus-error';

const NEWLINE = 0x0a;

/**
 * A corpus file read as a stream of chunks, for inputs far larger than memory. Each chunk is checked to be UTF-8
 * before anyone parses it (an invalid file is an error naming its line, never text with replacement characters),
 * and the bytes that parsers may still ask about are kept, so byte offsets can be turned into 1-based line numbers.
 * Questions move forward only (`lineAt` with growing offsets): chunks wholly before the last offset asked about are
 * dropped, so memory stays at the parser's read-ahead.
 */
export class StreamedFile {
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  /** Chunks from `base` on, not yet passed by the line cursor. */
  private readonly kept: Buffer[] = [];
  private base = 0;
  private cursor = 0;
  private line = 1;
  /** Newlines in all chunks read so far, and the end of the previous chunk's last line (at most 3 bytes: one UTF-8 character). */
  private newlinesRead = 0;
  private tail: Buffer = Buffer.alloc(0);

  constructor(readonly file: string) {}

  /** The file's chunks, each checked and kept for `lineAt`/`byteAt`. */
  async *chunks(): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(this.file)) {
      this.check(chunk as Buffer);
      this.kept.push(chunk as Buffer);
      this.newlinesRead += countNewlines(chunk as Buffer, 0, (chunk as Buffer).length);
      yield chunk as Buffer;
    }
    try {
      this.decoder.decode();
    } catch {
      throw this.invalid(this.newlinesRead + 1);
    }
  }

  /** The byte at `offset`, or undefined past what has been read. `offset` must not lie before the last `lineAt`. */
  byteAt(offset: number): number | undefined {
    let start = this.base;
    for (const chunk of this.kept) {
      if (offset < start + chunk.length) return chunk[offset - start];
      start += chunk.length;
    }
    return undefined;
  }

  /** 1-based line of the byte at `offset` (lines end at \n). Offsets must not decrease from call to call. */
  lineAt(offset: number): number {
    if (offset < this.cursor) throw new Error(`lineAt(${offset}) after lineAt(${this.cursor}): offsets must not decrease`);
    while (this.cursor < offset && this.kept.length > 0) {
      const chunk = this.kept[0];
      const end = Math.min(offset - this.base, chunk.length);
      this.line += countNewlines(chunk, this.cursor - this.base, end);
      this.cursor = this.base + end;
      if (end === chunk.length) {
        this.kept.shift();
        this.base += chunk.length;
      }
    }
    return this.line;
  }

  private check(chunk: Buffer): void {
    try {
      this.decoder.decode(chunk, { stream: true });
    } catch {
      throw this.invalid(this.newlinesRead + firstInvalidLine(Buffer.concat([this.tail, chunk])));
    }
    const lastNewline = chunk.lastIndexOf(NEWLINE);
    const lineEnd = lastNewline < 0 ? Buffer.concat([this.tail, chunk]) : chunk.subarray(lastNewline + 1);
    this.tail = lineEnd.subarray(Math.max(0, lineEnd.length - 3));
  }

  private invalid(line: number): CorpusInputError {
    return new CorpusInputError('the file is not valid UTF-8; re-save it as UTF-8', this.file, line);
  }
}

function countNewlines(bytes: Buffer, from: number, to: number): number {
  let n = 0;
  for (let i = bytes.indexOf(NEWLINE, from); i >= 0 && i < to; i = bytes.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/**
 * 1-based line (within `bytes`) of the first invalid UTF-8, where `bytes` may begin inside a character that an
 * earlier chunk started. A multi-byte character never contains a newline byte, so each line is checked on its own;
 * the last line may end inside a character the next chunk completes, so it is blamed only when no earlier line is.
 */
function firstInvalidLine(bytes: Buffer): number {
  let start = 0;
  while (start < bytes.length && start < 3 && (bytes[start] & 0xc0) === 0x80) start++;
  let line = 1;
  for (;;) {
    const nl = bytes.indexOf(NEWLINE, start);
    if (nl < 0) return line;
    if (!isUtf8(bytes.subarray(start, nl))) return line;
    start = nl + 1;
    line++;
  }
}
