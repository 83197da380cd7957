/** A corpus or training file the user must fix; `line` is 1-based, `column` names the CSV column (or JSON field) at fault. */
export class CorpusInputError extends Error {
  override readonly name = 'CorpusInputError';
  constructor(
    message: string,
    readonly file: string,
    readonly line: number,
    readonly column?: string,
  ) {
    super(`${file}:${line}: ${message}`);
  }
}
