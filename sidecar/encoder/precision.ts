import type { Provider } from './cuda-provider';

/**
 * Numeric precision of the encoder graph the project builds: fp32 (the reference), int8 (dynamically quantised
 * linear layers, for the CPU) or fp16 (for CUDA). A plain model.onnx runs as exported and counts as fp32.
 */
export type Precision = 'fp32' | 'int8' | 'fp16';
export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['auto', 'fp32', 'int8', 'fp16'];

/**
 * What 'auto' means on each provider: fp16 on CUDA (tensor cores), fp32 elsewhere. int8 (about 2× fp32's CPU
 * throughput) stays opt-in: its quality has been shown only on a random-weight encoder, not on a trained one, whose
 * outlier activations are what int8 loses on (README › Encoder precision; `npm run check:precision` checks a model).
 */
export function resolvePrecision(choice: PrecisionChoice | undefined, provider: Provider): Precision {
  if (choice && choice !== 'auto') return choice;
  return provider === 'cuda' ? 'fp16' : 'fp32';
}

/**
 * A query tower (LSR's query-side encoder) was trained by the fp32 training graph against the index's stored
 * vectors, whatever their precision: embedding queries at fp32 reproduces what its loss optimised, and one query
 * per search costs next to nothing at any precision.
 */
export const QUERY_TOWER_PRECISION: Precision = 'fp32';
