import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import type { Provider } from './cuda-provider';
import type { RuntimeEncoder } from './encoder';
import type { Precision } from './precision';
import { parseSafetensors, toFloat32 } from './safetensors';

/**
 * A query adapter folder, what LSR trains for an encoder whose weights it cannot change (a plain model.onnx):
 * `adapter.json` names the frozen base encoder, `adapter.safetensors` holds W [dim, dim] and b [dim];
 * queries are embedded as normalize(W·base(q) + b), documents keep the base's vectors.
 */
export const ADAPTER_CONFIG = 'adapter.json';
export const ADAPTER_WEIGHTS = 'adapter.safetensors';

export interface AdapterConfig {
  /** The base encoder, as `loadEncoder` takes it. */
  base: string;
}

export function isAdapterFolder(model: string): boolean {
  return existsSync(path.join(model, ADAPTER_CONFIG));
}

export async function readAdapterConfig(dir: string): Promise<AdapterConfig> {
  const file = path.join(dir, ADAPTER_CONFIG);
  const config = JSON.parse(await readFile(file, 'utf8')) as Partial<AdapterConfig>;
  if (typeof config.base !== 'string' || config.base === '') throw new Error(`${file} must name its base encoder in "base"`);
  return { base: config.base };
}

/** Applies a trained linear query adapter to a frozen encoder's embeddings. */
export class AdaptedEncoder implements RuntimeEncoder {
  private constructor(
    private readonly base: RuntimeEncoder,
    private readonly weight: Float32Array,
    private readonly bias: Float32Array,
    readonly fingerprint: string,
  ) {}

  static async load(dir: string, base: RuntimeEncoder): Promise<AdaptedEncoder> {
    const file = path.join(dir, ADAPTER_WEIGHTS);
    const bytes = await readFile(file);
    const { tensors } = parseSafetensors(bytes, file);
    const w = tensors.get('adapter.weight');
    const b = tensors.get('adapter.bias');
    const dim = base.dim;
    if (!w || !b || w.shape.join() !== `${dim},${dim}` || b.shape.join() !== `${dim}`) {
      throw new Error(`${file} must hold adapter.weight [${dim}, ${dim}] and adapter.bias [${dim}] for its ${dim}-d base encoder`);
    }
    const fingerprint = createHash('sha256').update(base.fingerprint).update(bytes).digest('hex').slice(0, 32);
    return new AdaptedEncoder(base, toFloat32(w, file, 'adapter.weight'), toFloat32(b, file, 'adapter.bias'), fingerprint);
  }

  get dim(): number {
    return this.base.dim;
  }

  get provider(): Provider {
    return this.base.provider;
  }

  get precision(): Precision {
    return this.base.precision;
  }

  get fallbackReason(): string | undefined {
    return this.base.fallbackReason;
  }

  get maxTokens(): number {
    return this.base.maxTokens;
  }

  get tokenizerFingerprint(): string {
    return this.base.tokenizerFingerprint;
  }

  countTokens(text: string): number {
    return this.base.countTokens(text);
  }

  async embed(texts: string[]): Promise<Float32Array[]> {
    return (await this.base.embed(texts)).map((q) => applyAdapter(this.weight, this.bias, q));
  }

  dispose(): Promise<void> {
    return this.base.dispose();
  }
}

/** normalize(W·q + b), W row-major [dim, dim] as a PyTorch linear layer stores it. */
export function applyAdapter(weight: Float32Array, bias: Float32Array, q: Float32Array): Float32Array {
  const dim = q.length;
  const out = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    let s = bias[i];
    for (let j = 0; j < dim; j++) s += weight[i * dim + j] * q[j];
    out[i] = s;
    norm += s * s;
  }
  const inv = 1 / Math.max(Math.sqrt(norm), 1e-12);
  for (let i = 0; i < dim; i++) out[i] *= inv;
  return out;
}
