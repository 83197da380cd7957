import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cudaFallbackReason, noticeOnce, providersFor, type GpuFacts } from '../sidecar/encoder/cuda-provider';
import { resolvePrecision } from '../sidecar/encoder/precision';

const cpuOnly: GpuFacts = { nvidiaGpu: false, cudaProvider: false, webgpu: false };
const gpuNoCudaProvider: GpuFacts = { nvidiaGpu: true, cudaProvider: false, webgpu: true };
const gpuWithCuda: GpuFacts = { nvidiaGpu: true, cudaProvider: true, webgpu: true };

describe('execution providers', () => {
  test('auto goes straight to the CPU on a machine without a GPU: nothing is probed', () => {
    assert.deepEqual(providersFor('auto', cpuOnly), ['cpu']);
    assert.deepEqual(providersFor('auto', gpuNoCudaProvider), ['webgpu', 'cpu']);
    assert.deepEqual(providersFor('auto', gpuWithCuda), ['cuda', 'webgpu', 'cpu']);
    // An installed CUDA provider is the user's choice: tried even where no NVIDIA device node was found.
    assert.deepEqual(providersFor('auto', { nvidiaGpu: false, cudaProvider: true, webgpu: false }), ['cuda', 'cpu']);
    assert.deepEqual(providersFor('webgpu', cpuOnly), ['webgpu']);
    assert.deepEqual(providersFor('cpu', gpuWithCuda), ['cpu']);
  });

  test('the fallback notice is one short line, and only when a user could act on it', () => {
    assert.equal(cudaFallbackReason('cpu', [], cpuOnly), undefined);
    assert.equal(cudaFallbackReason('cuda', [], gpuWithCuda), undefined);
    const noProvider = cudaFallbackReason('webgpu', [], gpuNoCudaProvider);
    assert.equal(noProvider, 'ONNX Runtime on WebGPU: NVIDIA GPU found but the CUDA provider is not installed (README › GPU)');
    const webgpuError =
      '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:136 onnxruntime::webgpu::WebGpuContext::Initialize(...)::<lambda()> ' +
      'adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters\n';
    const cudaError =
      'Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: No such file or directory';
    assert.equal(
      cudaFallbackReason('cpu', [`cuda: ${cudaError}`, `webgpu: ${webgpuError}`], gpuWithCuda),
      'ONNX Runtime on CPU: CUDA failed (libcudnn.so.9: cannot open shared object file: No such file or directory); WebGPU failed (Failed to get a WebGPU adapter: No supported adapters)',
    );
    assert.equal(
      cudaFallbackReason('cpu', [], { nvidiaGpu: true, cudaProvider: false, webgpu: false }),
      'ONNX Runtime on CPU: NVIDIA GPU found but the CUDA provider is not installed (README › GPU); WebGPU not tried (no Vulkan loader, libvulkan.so.1)',
    );
    const long = cudaFallbackReason('cpu', [`cuda: ${'x'.repeat(500)}\nsecond line`], gpuWithCuda)!;
    assert.ok(!long.includes('\n') && long.length < 140, long);
  });

  test('a notice is written once per process', () => {
    const lines: string[] = [];
    for (let i = 0; i < 3; i++) noticeOnce('ONNX Runtime on CPU: test notice', (l) => lines.push(l));
    noticeOnce(undefined, (l) => lines.push(l));
    assert.deepEqual(lines, ['ONNX Runtime on CPU: test notice']);
  });

  test('auto precision follows the provider; an explicit one is kept', () => {
    assert.equal(resolvePrecision('auto', 'cpu'), 'fp32');
    assert.equal(resolvePrecision('int8', 'cpu'), 'int8');
    assert.equal(resolvePrecision(undefined, 'cuda'), 'fp16');
    assert.equal(resolvePrecision('auto', 'webgpu'), 'fp32');
    assert.equal(resolvePrecision('fp32', 'cpu'), 'fp32');
  });
});
