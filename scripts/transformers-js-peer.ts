/**
 * The benchmarks' peer: transformers.js's feature-extraction pipeline (mean pooling, normalised) on an fp32 ONNX
 * export of the same weights (our graph with a last_hidden_state output, in transformers.js's folder layout), run
 * as a user would run it: its own session defaults (ORT's, with spinning threads) at the given thread count.
 */
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { env, pipeline, type FeatureExtractionPipeline } from '@huggingface/transformers';
import { buildBertEncoder } from '../sidecar/encoder/graph/bert-graph';
import type { BertFolder } from '../sidecar/encoder/model-folder';
import { disableOrtTelemetry } from '../sidecar/encoder/ort-environment';

export async function transformersJsPeer(bert: BertFolder, workDir: string, threads: number): Promise<FeatureExtractionPipeline> {
  disableOrtTelemetry(); // transformers.js opens its session in this thread
  const modelDir = path.join(workDir, 'tfjs', 'model');
  await mkdir(path.join(modelDir, 'onnx'), { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) await copyFile(path.join(bert.dir, f), path.join(modelDir, f));
  await writeFile(path.join(modelDir, 'onnx', 'model.onnx'), buildBertEncoder(bert.config, bert.weights, { pooling: bert.pooling, output: 'last_hidden_state' }));
  env.allowRemoteModels = false;
  env.localModelPath = path.join(workDir, 'tfjs');
  return pipeline('feature-extraction', 'model', { dtype: 'fp32', session_options: { intraOpNumThreads: threads } });
}

/** The peer's embeddings of `texts`, mean-pooled and normalised, one Float32Array per text. */
export async function peerEmbed(peer: FeatureExtractionPipeline, texts: string[]): Promise<Float32Array[]> {
  const out = await peer(texts, { pooling: 'mean', normalize: true });
  const data = out.data as Float32Array;
  const dim = out.dims[out.dims.length - 1];
  return texts.map((_, i) => data.slice(i * dim, (i + 1) * dim));
}
