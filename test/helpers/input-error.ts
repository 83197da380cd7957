import assert from 'node:assert/strict';
import { CorpusInputError } from '../../sidecar/corpus/corpus-error';

/** Runs `fn`, expecting a CorpusInputError, and returns it. */
export async function inputError(fn: () => Promise<unknown>): Promise<CorpusInputError> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof CorpusInputError, `expected CorpusInputError, got ${err}`);
    return err;
  }
  assert.fail('expected a CorpusInputError');
}
