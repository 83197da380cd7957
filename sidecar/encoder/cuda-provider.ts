import { existsSync } from 'node:fs';
import * as path from 'node:path';

export type Device = 'auto' | 'cuda' | 'cpu';
export type Provider = 'cuda' | 'cpu';

/**
 * How to get the CUDA provider: the npm tarball ships only the CPU and WebGPU providers; onnxruntime-node's
 * install script (script/install.js) fetches the CUDA 12 build from NuGet when ONNXRUNTIME_NODE_INSTALL=cuda12
 * (or `npm install --onnxruntime-node-install=cuda12`). It needs CUDA 12 and cuDNN 9 on the machine.
 */
export const CUDA_HINT =
  "onnxruntime-node's CUDA provider library (libonnxruntime_providers_cuda.so) is not installed; install it with " +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` (needs CUDA 12 and cuDNN 9) or use --device cpu';

/** ORT's own provider list does not fall back (['cuda', 'cpu'] throws when CUDA cannot load): try them one by one. */
export function providersFor(device: Device): Provider[] {
  return device === 'auto' ? ['cuda', 'cpu'] : [device];
}

export function cudaProviderInstalled(): boolean {
  const ortBin = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(path.join(ortBin, lib));
}

/** Why 'auto' ended on the CPU, in words; undefined when CUDA was not tried or worked. */
export function cudaFallbackReason(provider: Provider, failures: readonly string[]): string | undefined {
  if (provider !== 'cpu' || failures.length === 0) return undefined;
  return `CUDA unavailable, using CPU (${cudaProviderInstalled() ? failures.join('; ') : CUDA_HINT})`;
}

/** The error for a session that could not start on the requested device. */
export function providerError(device: Device, what: string, failures: readonly string[]): Error {
  if (device === 'cuda' && !cudaProviderInstalled()) return new Error(`--device cuda: ${CUDA_HINT} (${failures.join('; ')})`);
  return new Error(`could not start ONNX Runtime for ${what}: ${failures.join('; ')}`);
}
