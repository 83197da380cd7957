import type { Provider } from './cuda-provider';
import type { Precision } from './precision';

/**
 * What the engine needs from a sentence encoder. The real implementation (ONNX Runtime, BERT family)
 * lives beside this file; the index and retrieval stages depend only on this interface.
 */
export interface Encoder {
  /** Embedding dimension. */
  readonly dim: number;
  /** Changes whenever the vectors would change (weights, pooling, tokenizer, max length). Stored in the index manifest. */
  readonly fingerprint: string;
  /**
   * Identifies the tokenizer alone. Passages are cut by token count, so two encoders sharing a tokenizer
   * (a base model and its fine-tuned copy) share chunk boundaries and only vectors need recomputing.
   */
  readonly tokenizerFingerprint: string;
  /** The graph's numeric precision; stored in the index manifest, which never mixes vectors of two precisions. */
  readonly precision: Precision;
  /** Longest input in tokens; longer inputs are truncated. */
  readonly maxTokens: number;
  /** Token count as the encoder's tokenizer sees it (without special tokens). */
  countTokens(text: string): number;
  /** L2-normalised embeddings, one per text, in order. */
  embed(texts: string[]): Promise<Float32Array[]>;
  /** Releases native resources (ORT sessions, worker threads). */
  dispose(): Promise<void>;
}

/** An encoder running on ONNX Runtime, and on which execution provider. */
export interface RuntimeEncoder extends Encoder {
  readonly provider: Provider;
  /** One line on why 'auto' did not end on CUDA, when a user could act on it; undefined otherwise. */
  readonly fallbackReason: string | undefined;
}
