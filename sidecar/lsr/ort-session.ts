import * as ort from 'onnxruntime-node';
import { cudaFallbackReason, providerError, providersFor, type Device, type Provider } from '../encoder/cuda-provider';
import { disableOrtTelemetry } from '../encoder/ort-environment';

export interface OpenedSession {
  session: ort.InferenceSession;
  provider: Provider;
  /** Why CUDA was not used with device 'auto'; undefined when it was not tried or works. */
  fallbackReason: string | undefined;
}

/** Opens the training graph's session on the requested device, trying CUDA alone before the CPU on 'auto'. */
export async function openSession(model: Uint8Array, device: Device, threads: number): Promise<OpenedSession> {
  disableOrtTelemetry(); // before the process's first session, whoever opens it (tests and benchmarks too)
  const failures: string[] = [];
  const logLevel = ort.env.logLevel;
  for (const provider of providersFor(device)) {
    // A failed GPU provider load also prints native error lines; the failure is reported in words instead.
    ort.env.logLevel = provider === 'cpu' ? logLevel : 'fatal';
    try {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: [provider],
        intraOpNumThreads: threads,
        graphOptimizationLevel: 'all',
        // Idle ORT threads sleep instead of spinning: between a step's graphs the optimizer's threads and the LM
        // client need the cores, and the machine is shared with the editor. Measured at MiniLM shape, 4 × 128, on
        // 2 busy cores: the CPU time of a step fell from 725 to 490 ms.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      return { session, provider, fallbackReason: cudaFallbackReason(provider, failures) };
    } catch (err) {
      failures.push(`${provider}: ${(err as Error).message}`);
    } finally {
      ort.env.logLevel = logLevel;
    }
  }
  throw providerError(device, 'the training graph', failures);
}
