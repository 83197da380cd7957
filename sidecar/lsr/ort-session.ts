import * as ort from 'onnxruntime-node';
import type { Device } from '../encoder/ort-encoder';

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: 'cuda' | 'cpu';
  /** Why CUDA was not used with device 'auto'; undefined when it was not tried or works. */
  fallbackReason: string | undefined;
}

/**
 * Opens a session on the requested device. ORT's own provider list does not fall back (`['cuda', 'cpu']` throws
 * when the CUDA provider cannot load), so 'auto' tries CUDA alone, then the CPU.
 */
export async function openSession(model: Uint8Array, device: Device, threads: number): Promise<OpenedSession> {
  const failures: string[] = [];
  for (const provider of device === 'auto' ? (['cuda', 'cpu'] as const) : [device]) {
    try {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: [provider],
        intraOpNumThreads: threads,
        graphOptimizationLevel: 'all',
        logSeverityLevel: provider === 'cuda' ? 4 : 3,
      });
      return { session, provider, fallbackReason: failures.length ? `CUDA unavailable, using CPU (${failures.join('; ')})` : undefined };
    } catch (err) {
      failures.push(`${provider}: ${(err as Error).message}`);
    }
  }
  throw new Error(
    `could not start ONNX Runtime for the training graph (${failures.join('; ')}); ` +
      (device === 'cuda' ? "install onnxruntime-node's CUDA provider or use device cpu" : 'check the onnxruntime-node installation'),
  );
}
