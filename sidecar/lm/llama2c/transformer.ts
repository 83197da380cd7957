import type { Llama2cConfig, Llama2cWeights } from './checkpoint';

/** out = W x for a row-major (rows, cols) matrix W. */
function matmul(out: Float32Array, x: Float32Array, w: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += w[base + c] * x[c];
    out[r] = sum;
  }
}

function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const scale = 1 / Math.sqrt(ss / x.length + 1e-5);
  for (let i = 0; i < x.length; i++) out[i] = weight[i] * x[i] * scale;
}

function logSoftmaxInPlace(v: Float32Array): void {
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i] > max) max = v[i];
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += Math.exp(v[i] - max);
  const logZ = max + Math.log(sum);
  for (let i = 0; i < v.length; i++) v[i] -= logZ;
}

/**
 * The llama2.c forward pass (RMSNorm, RoPE, grouped-query attention, SwiGLU, shared or separate classifier)
 * in plain Float32Arrays, run position by position over a KV cache so one call scores a whole prompt.
 */
export class Llama2cTransformer {
  private readonly headSize: number;
  private readonly kvDim: number;

  /** RoPE cos/sin per (position, pair within a head), computed once instead of per token and layer. */
  private readonly ropeCos: Float32Array;
  private readonly ropeSin: Float32Array;

  constructor(readonly config: Llama2cConfig, private readonly weights: Llama2cWeights) {
    this.headSize = config.dim / config.nHeads;
    this.kvDim = (config.dim * config.nKvHeads) / config.nHeads;
    const half = this.headSize / 2;
    this.ropeCos = new Float32Array(config.seqLen * half);
    this.ropeSin = new Float32Array(config.seqLen * half);
    for (let pos = 0; pos < config.seqLen; pos++) {
      for (let j = 0; j < half; j++) {
        const angle = pos / Math.pow(10000, (2 * j) / this.headSize);
        this.ropeCos[pos * half + j] = Math.cos(angle);
        this.ropeSin[pos * half + j] = Math.sin(angle);
      }
    }
  }

  /** Log-softmax of the next-token distribution after each prefix of `ids` (result[i] predicts ids[i + 1]). */
  logProbs(ids: number[]): Float32Array[] {
    const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen } = this.config;
    if (ids.length > seqLen) throw new Error(`sequence of ${ids.length} tokens exceeds the model's context of ${seqLen}`);
    const { headSize, kvDim, weights } = this;
    const n = ids.length;
    const keyCache = Array.from({ length: nLayers }, () => new Float32Array(n * kvDim));
    const valueCache = Array.from({ length: nLayers }, () => new Float32Array(n * kvDim));
    const x = new Float32Array(dim);
    const xb = new Float32Array(dim);
    const xb2 = new Float32Array(dim);
    const q = new Float32Array(dim);
    const hb = new Float32Array(hiddenDim);
    const hb2 = new Float32Array(hiddenDim);
    const att = new Float32Array(n);
    const groupSize = nHeads / nKvHeads;
    const invSqrtHead = 1 / Math.sqrt(headSize);
    const out: Float32Array[] = [];
    for (let pos = 0; pos < n; pos++) {
      const token = ids[pos];
      if (!Number.isInteger(token) || token < 0 || token >= vocabSize) throw new Error(`token id ${token} is outside the vocabulary (0..${vocabSize - 1})`);
      x.set(weights.tokenEmbedding.subarray(token * dim, (token + 1) * dim));
      for (let l = 0; l < nLayers; l++) {
        const layer = weights.layers[l];
        rmsnorm(xb, x, layer.rmsAtt);
        const k = keyCache[l].subarray(pos * kvDim, (pos + 1) * kvDim);
        const v = valueCache[l].subarray(pos * kvDim, (pos + 1) * kvDim);
        matmul(q, xb, layer.wq, dim, dim);
        matmul(k, xb, layer.wk, kvDim, dim);
        matmul(v, xb, layer.wv, kvDim, dim);
        // RoPE: rotate pairs of each head by a position-dependent angle; keys only span kvDim.
        const ropeBase = pos * (headSize / 2);
        for (let i = 0; i < dim; i += 2) {
          const j = ropeBase + ((i % headSize) >> 1);
          const cos = this.ropeCos[j];
          const sin = this.ropeSin[j];
          const q0 = q[i], q1 = q[i + 1];
          q[i] = q0 * cos - q1 * sin;
          q[i + 1] = q0 * sin + q1 * cos;
          if (i < kvDim) {
            const k0 = k[i], k1 = k[i + 1];
            k[i] = k0 * cos - k1 * sin;
            k[i + 1] = k0 * sin + k1 * cos;
          }
        }
        const keys = keyCache[l];
        const values = valueCache[l];
        for (let h = 0; h < nHeads; h++) {
          const qOff = h * headSize;
          const kvOff = Math.floor(h / groupSize) * headSize; // GQA: several query heads share one kv head
          let max = -Infinity;
          for (let t = 0; t <= pos; t++) {
            const kBase = t * kvDim + kvOff;
            let score = 0;
            for (let i = 0; i < headSize; i++) score += q[qOff + i] * keys[kBase + i];
            score *= invSqrtHead;
            att[t] = score;
            if (score > max) max = score;
          }
          let sum = 0;
          for (let t = 0; t <= pos; t++) {
            att[t] = Math.exp(att[t] - max);
            sum += att[t];
          }
          xb.fill(0, qOff, qOff + headSize);
          for (let t = 0; t <= pos; t++) {
            const a = att[t] / sum;
            const vBase = t * kvDim + kvOff;
            for (let i = 0; i < headSize; i++) xb[qOff + i] += a * values[vBase + i];
          }
        }
        matmul(xb2, xb, layer.wo, dim, dim);
        for (let i = 0; i < dim; i++) x[i] += xb2[i];
        rmsnorm(xb, x, layer.rmsFfn);
        matmul(hb, xb, layer.w1, hiddenDim, dim);
        matmul(hb2, xb, layer.w3, hiddenDim, dim);
        for (let i = 0; i < hiddenDim; i++) {
          const g = hb[i];
          hb[i] = (g / (1 + Math.exp(-g))) * hb2[i]; // SwiGLU: silu(w1 x) * (w3 x)
        }
        matmul(xb, hb, layer.w2, dim, hiddenDim);
        for (let i = 0; i < dim; i++) x[i] += xb[i];
      }
      rmsnorm(xb, x, weights.rmsFinal);
      const logits = new Float32Array(vocabSize);
      matmul(logits, xb, weights.classifier, vocabSize, dim);
      logSoftmaxInPlace(logits);
      out.push(logits);
    }
    return out;
  }
}
