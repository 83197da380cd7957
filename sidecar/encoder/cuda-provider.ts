import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

export type Device = 'auto' | 'cuda' | 'webgpu' | 'cpu';
export type Provider = 'cuda' | 'webgpu' | 'cpu';
export const DEVICE_CHOICES: readonly Device[] = ['auto', 'cuda', 'webgpu', 'cpu'];

/**
 * How to get the CUDA provider: the npm tarball ships only the CPU and WebGPU providers; onnxruntime-node's
 * install script (script/install.js) fetches the CUDA 12 build from NuGet when ONNXRUNTIME_NODE_INSTALL=cuda12
 * (or `npm install --onnxruntime-node-install=cuda12`). It needs CUDA 12 and cuDNN 9 on the machine.
 */
export const CUDA_HINT =
  "onnxruntime-node's CUDA provider library (libonnxruntime_providers_cuda.so) is not installed; install it with " +
  '`ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js` (needs CUDA 12 and cuDNN 9) or use --device cpu';

/** What the machine offers, found by looking for files (no library is loaded, nothing is printed). */
export interface GpuFacts {
  /** An NVIDIA driver (Linux device nodes, WSL's GPU node, Windows' nvcuda.dll). */
  nvidiaGpu: boolean;
  /** onnxruntime-node's CUDA provider library sits beside its binding (the user installed it). */
  cudaProvider: boolean;
  /** The WebGPU provider can plausibly find an adapter: a GPU, and on Linux the Vulkan loader Dawn needs. */
  webgpu: boolean;
}

let facts: GpuFacts | undefined;

export function gpuFacts(): GpuFacts {
  if (!facts) {
    const nvidiaGpu = nvidiaGpuPresent();
    facts = { nvidiaGpu, cudaProvider: cudaProviderInstalled(), webgpu: nvidiaGpu && (process.platform !== 'linux' || vulkanLoaderPresent()) };
  }
  return facts;
}

/**
 * ORT's own provider list does not fall back (['cuda', 'cpu'] throws when CUDA cannot load): try them one by one.
 * 'auto' tries CUDA when its provider library is installed, then WebGPU when an NVIDIA GPU is there, then the CPU:
 * a CPU-only machine goes straight to the CPU, with no probe and no native log lines. (WebGPU on other GPUs is one
 * `--device webgpu` away; it is not tried unasked because whether it beats the CPU there is unmeasured.)
 */
export function providersFor(device: Device, machine: GpuFacts = gpuFacts()): Provider[] {
  if (device !== 'auto') return [device];
  const providers: Provider[] = [];
  if (machine.cudaProvider) providers.push('cuda');
  if (machine.webgpu) providers.push('webgpu');
  providers.push('cpu');
  return providers;
}

export function cudaProviderInstalled(): boolean {
  const ortBin = path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  const lib = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return existsSync(path.join(ortBin, lib));
}

/**
 * One short line on why 'auto' did not end on CUDA, or undefined when there is nothing a user could act on: on a
 * machine without an NVIDIA GPU the CPU is simply the right choice and nothing is said.
 */
export function cudaFallbackReason(provider: Provider, failures: readonly string[], machine: GpuFacts = gpuFacts()): string | undefined {
  if (provider === 'cuda') return undefined;
  const why: string[] = [];
  const failed = (p: Provider) => failures.find((f) => f.startsWith(`${p}: `))?.slice(p.length + 2);
  const cuda = failed('cuda');
  if (cuda !== undefined) why.push(`CUDA failed (${shortError(cuda)})`);
  else if (machine.nvidiaGpu && !machine.cudaProvider) why.push('NVIDIA GPU found but the CUDA provider is not installed (README › GPU)');
  const webgpu = failed('webgpu');
  if (webgpu !== undefined) why.push(`WebGPU failed (${shortError(webgpu)})`);
  else if (machine.nvidiaGpu && !machine.webgpu) why.push('WebGPU not tried (no Vulkan loader, libvulkan.so.1)');
  return why.length ? `ONNX Runtime on ${provider === 'cpu' ? 'CPU' : 'WebGPU'}: ${why.join('; ')}` : undefined;
}

const noticed = new Set<string>();

/** Writes a provider notice the first time this process sees it (every encoder load would repeat it). */
export function noticeOnce(line: string | undefined, write: (line: string) => void): void {
  if (line === undefined || noticed.has(line)) return;
  noticed.add(line);
  write(line);
}

/** The error for a session that could not start on the requested device. */
export function providerError(device: Device, what: string, failures: readonly string[]): Error {
  if (device === 'cuda' && !cudaProviderInstalled()) return new Error(`--device cuda: ${CUDA_HINT} (${failures.join('; ')})`);
  if (device === 'webgpu' && failures.length === 1) {
    return new Error(`--device webgpu: ONNX Runtime's WebGPU provider could not start for ${what} (${shortError(failures[0].replace(/^webgpu: /, ''))}); use --device cpu`);
  }
  return new Error(`could not start ONNX Runtime for ${what}: ${failures.join('; ')}`);
}

/** The telling part of a native error: what a failed dlopen said, or the sentence after ORT's failed check. */
function shortError(message: string): string {
  const line = message.split('\n')[0];
  const telling = /with error: (.*)$/.exec(line)?.[1] ?? line.split(' was false. ').at(-1)!;
  return telling.length > 100 ? `${telling.slice(0, 99)}…` : telling;
}

function nvidiaGpuPresent(): boolean {
  if (process.platform === 'win32') return existsSync(path.join(process.env.SystemRoot ?? 'C:\\Windows', 'System32', 'nvcuda.dll'));
  // /dev/dxg: WSL 2's GPU paravirtualisation, through which CUDA works without /dev/nvidia*.
  return process.platform === 'linux' && ['/dev/nvidiactl', '/dev/nvidia0', '/dev/dxg'].some((f) => existsSync(f));
}

/**
 * Why the WebGPU provider cannot start here without trying it, or undefined: on Linux its Dawn backend drives the GPU
 * through Vulkan, and without the loader it only prints native warnings and finds no adapter.
 */
export function webgpuMissing(): string | undefined {
  return process.platform === 'linux' && !vulkanLoaderPresent() ? 'no Vulkan loader (libvulkan.so.1), which it needs on Linux' : undefined;
}

/** Whether the dynamic linker can find libvulkan.so.1 (its cache, or LD_LIBRARY_PATH). */
function vulkanLoaderPresent(): boolean {
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (dirs.some((d) => existsSync(path.join(d, 'libvulkan.so.1')))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes('libvulkan.so.1');
  } catch {
    return false;
  }
}
