import type { Provider } from './cuda-provider';

/**
 * Numeric precision of the encoder graph the project builds: fp32 (the reference), int8 (dynamically quantised
 * linear layers, for the CPU) or fp16 (for CUDA). A plain model.onnx runs as exported and counts as fp32.
 */
export type Precision = 'fp32' | 'int8' | 'fp16';
export type PrecisionChoice = Precision | 'auto';
export const PRECISION_CHOICES: readonly PrecisionChoice[] = ['auto', 'fp32', 'int8', 'fp16'];

/**
 * What 'auto' means on each provider: int8 on the CPU (about 2× fp32's throughput at embedding cosine ≥ 0.999 to
 * fp32, see README › Encoder precision), fp16 on CUDA (tensor cores), fp32 on WebGPU (whose int8 and fp16 support
 * depends on the adapter).
 */
export function resolvePrecision(choice: PrecisionChoice | undefined, provider: Provider): Precision {
  if (choice && choice !== 'auto') return choice;
  return provider === 'cpu' ? 'int8' : provider === 'cuda' ? 'fp16' : 'fp32';
}

/**
 * A query tower (LSR's query-side encoder) was trained by the fp32 training graph against the index's stored
 * vectors, whatever their precision: embedding queries at fp32 reproduces what its loss optimised, and one query
 * per search costs next to nothing at any precision.
 */
export const QUERY_TOWER_PRECISION: Precision = 'fp32';
