/** Ctrl-C: the command saved what it had and stopped. Shells expect status 130 (128 + SIGINT) for that. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
}

export const INTERRUPTED_EXIT_CODE = 130;
