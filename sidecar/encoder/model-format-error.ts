/** A model file or folder that cannot be used as it is; the message names the file and what is wrong. */
export class ModelFormatError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFormatError';
  }
}
