import { launchLm, type LaunchedLm } from '../lm/launcher';
import type { LmServerStatus, StartLmParams } from './protocol';

/** The one LM server the sidecar may launch for the user; stopped with the sidecar, so none is orphaned. */
export class ManagedLm {
  private server: LaunchedLm | undefined;

  constructor(private readonly onLog: (line: string) => void) {}

  status(): LmServerStatus {
    const s = this.server;
    return s ? { running: true, baseUrl: s.baseUrl, models: s.models, pid: s.pid } : { running: false };
  }

  async start(params: StartLmParams): Promise<LmServerStatus> {
    await this.stop();
    this.server = await launchLm({
      command: params.command?.length ? params.command : undefined,
      model: params.model || undefined,
      port: params.port,
      cwd: params.cwd,
      onLog: (line) => this.onLog(line),
    });
    return this.status();
  }

  async stop(): Promise<LmServerStatus> {
    const server = this.server;
    this.server = undefined;
    await server?.stop();
    return this.status();
  }
}
