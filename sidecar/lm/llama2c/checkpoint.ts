import { readFileSync } from 'node:fs';

/** Hyper-parameters from the seven-int32 header of a llama2.c checkpoint. */
export interface Llama2cConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
}

/** Weights as views into the checkpoint buffer, per layer, in llama2.c's row-major (out, in) layout. */
export interface Llama2cWeights {
  tokenEmbedding: Float32Array; // (vocab, dim)
  layers: {
    rmsAtt: Float32Array; // (dim)
    wq: Float32Array; // (dim, dim)
    wk: Float32Array; // (kvDim, dim)
    wv: Float32Array; // (kvDim, dim)
    wo: Float32Array; // (dim, dim)
    rmsFfn: Float32Array; // (dim)
    w1: Float32Array; // (hidden, dim)
    w2: Float32Array; // (dim, hidden)
    w3: Float32Array; // (hidden, dim)
  }[];
  rmsFinal: Float32Array; // (dim)
  classifier: Float32Array; // (vocab, dim); the token embedding when shared
}

const HEADER_BYTES = 7 * 4;

/**
 * Reads a llama2.c "legacy" (version 0) checkpoint. A negative vocab size in the header means the classifier
 * has its own weights after the RoPE tables; positive means it shares the token embedding.
 */
export function loadCheckpoint(file: string): { config: Llama2cConfig; weights: Llama2cWeights } {
  const bytes = readFileSync(file);
  if (bytes.length < HEADER_BYTES) throw new Error(`${file} is too short to be a llama2.c checkpoint`);
  const header = new Int32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + HEADER_BYTES));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = header;
  const config: Llama2cConfig = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), seqLen };
  const sane = [dim, hiddenDim, nLayers, nHeads, nKvHeads, seqLen].every((v) => v > 0 && v < 1 << 20);
  if (!sane || dim % nHeads !== 0 || nHeads % nKvHeads !== 0) {
    throw new Error(`${file}: header ${Array.from(header).join(',')} is not a llama2.c checkpoint (dim, hidden, layers, heads, kv heads, vocab, seq)`);
  }
  // Copy once into an aligned buffer: Float32Array views need 4-byte alignment, which a Buffer slice may lack.
  const floats = new Float32Array(bytes.buffer.slice(bytes.byteOffset + HEADER_BYTES, bytes.byteOffset + bytes.length));
  const headSize = dim / nHeads;
  const kvDim = (dim * nKvHeads) / nHeads;
  let offset = 0;
  const take = (count: number): Float32Array => {
    if (offset + count > floats.length) throw new Error(`${file} ends early: the header promises more weights than the file holds`);
    const view = floats.subarray(offset, offset + count);
    offset += count;
    return view;
  };
  const perLayer = (count: number) => Array.from({ length: nLayers }, () => take(count));
  const tokenEmbedding = take(config.vocabSize * dim);
  const rmsAtt = perLayer(dim);
  const wq = perLayer(dim * dim);
  const wk = perLayer(kvDim * dim);
  const wv = perLayer(kvDim * dim);
  const wo = perLayer(dim * dim);
  const rmsFfn = perLayer(dim);
  const w1 = perLayer(hiddenDim * dim);
  const w2 = perLayer(dim * hiddenDim);
  const w3 = perLayer(hiddenDim * dim);
  const rmsFinal = take(dim);
  take(seqLen * headSize); // freq_cis_real and freq_cis_imag: unused, RoPE is recomputed exactly as run.c does
  const classifier = rawVocab > 0 ? tokenEmbedding : take(config.vocabSize * dim);
  const layers = rmsAtt.map((_, l) => ({
    rmsAtt: rmsAtt[l], wq: wq[l], wk: wk[l], wv: wv[l], wo: wo[l], rmsFfn: rmsFfn[l], w1: w1[l], w2: w2[l], w3: w3[l],
  }));
  return { config, weights: { tokenEmbedding, layers, rmsFinal, classifier } };
}
