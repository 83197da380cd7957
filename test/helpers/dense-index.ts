import * as path from 'node:path';
import type { Passage } from '../../sidecar/corpus/passage';
import type { Encoder } from '../../sidecar/encoder/encoder';
import { WorkspaceIndex } from '../../sidecar/index/workspace-index';

/** The small real-code fixture workspace the training tests index. */
export const FIXTURE_WORKSPACE = path.resolve(__dirname, '..', 'fixtures', 'workspace');

/** Builds a dense + lexical index of `roots` in `indexDir` with `encoder` (recorded as `model`); returns its passages. */
export async function buildDenseIndex(indexDir: string, encoder: Encoder, model: string, roots = [FIXTURE_WORKSPACE]): Promise<Passage[]> {
  const writer = await WorkspaceIndex.open(indexDir, { encoder, encoderSpec: model });
  try {
    await writer.update(roots);
    return writer.passages();
  } finally {
    await writer.close();
  }
}
