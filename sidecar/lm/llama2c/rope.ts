import type { Llama2cConfig } from './checkpoint';

/**
 * RoPE cos/sin per (position, pair within a head), as llama2.c's run.c computes them: pair j of a head turns by
 * pos / 10000^(2j / headSize). Rows are positions, [seqLen, headSize / 2].
 */
export function ropeTables(config: Llama2cConfig): { cos: Float32Array; sin: Float32Array } {
  const headSize = config.dim / config.nHeads;
  const half = headSize / 2;
  const cos = new Float32Array(config.seqLen * half);
  const sin = new Float32Array(config.seqLen * half);
  for (let pos = 0; pos < config.seqLen; pos++) {
    for (let j = 0; j < half; j++) {
      const angle = pos / Math.pow(10000, (2 * j) / headSize);
      cos[pos * half + j] = Math.cos(angle);
      sin[pos * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
