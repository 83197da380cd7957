import { createHash } from 'node:crypto';
import type { Encoder } from '../../sidecar/encoder/encoder';
import type { Precision } from '../../sidecar/encoder/precision';
import { codeTerms } from '../../sidecar/index/code-terms';

/**
 * Test-only encoder: a bag of hashed code terms, L2-normalised. Texts sharing identifiers get similar vectors,
 * which is all the index tests need; it is deterministic and needs no model files. `calls` counts embedded texts
 * so tests can assert that unchanged passages are not re-embedded.
 */
export class HashingEncoder implements Encoder {
  readonly maxTokens = 512;
  readonly tokenizerFingerprint = 'code-terms';
  embedded = 0;

  constructor(
    readonly dim = 64,
    readonly fingerprint = `hashing-${dim}`,
    readonly precision: Precision = 'fp32',
  ) {}

  countTokens(text: string): number {
    return codeTerms(text).length;
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    this.embedded += texts.length;
    return texts.map((text) => {
      const v = new Float32Array(this.dim);
      for (const term of codeTerms(text)) {
        const h = createHash('md5').update(term).digest();
        v[h.readUInt32LE(0) % this.dim] += h[4] & 1 ? 1 : -1;
      }
      const norm = Math.hypot(...v) || 1;
      return v.map((x) => x / norm);
    });
  }

  async dispose(): Promise<void> {}
}
