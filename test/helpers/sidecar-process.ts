import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import {
  createProtocolConnection,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgress,
  type ProgressToken,
  type ProtocolConnection,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageserver-protocol/node';
import { StatusNotification, TrainingStatusNotification, type StatusParams, type TrainingStatus } from '../../sidecar/server/protocol';

const SERVER = resolve(__dirname, '../../sidecar/server/main.ts');

export interface Sidecar {
  connection: ProtocolConnection;
  statuses: StatusParams[];
  trainingStatuses: TrainingStatus[];
  /** Every value of server-initiated work-done progress. */
  progress: { token: ProgressToken; value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd }[];
  logs: string[];
  /** What the process wrote to stderr (also passed through to this process's stderr). */
  stderr: string[];
  initError?: Error;
  /** The sidecar's process, for tests that kill it. */
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts the real sidecar over stdio, as another editor would, and performs the LSP handshake. */
export async function startSidecar(initializationOptions: unknown): Promise<Sidecar> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SERVER, '--stdio'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const connection = createProtocolConnection(new StreamMessageReader(child.stdout!), new StreamMessageWriter(child.stdin!));
  const sidecar: Sidecar = { connection, statuses: [], trainingStatuses: [], progress: [], logs: [], stderr: [], process: child, stop: async () => undefined };
  child.stderr!.on('data', (chunk: Buffer) => {
    sidecar.stderr.push(chunk.toString());
    process.stderr.write(chunk);
  });
  connection.onNotification(StatusNotification.type, (s) => sidecar.statuses.push(s));
  connection.onNotification(TrainingStatusNotification.type, (s) => sidecar.trainingStatuses.push(s));
  connection.onNotification('window/logMessage', (m: { message: string }) => sidecar.logs.push(m.message));
  // Server-initiated progress: listen on each token the sidecar creates (a catch-all `$/progress` handler would
  // take the messages from the per-request listeners tests register).
  connection.onRequest('window/workDoneProgress/create', ({ token }: { token: ProgressToken }) => {
    connection.onProgress(WorkDoneProgress.type, token, (value) => sidecar.progress.push({ token, value }));
    return null;
  });
  connection.listen();
  const exited = new Promise((r) => child.once('exit', r));
  sidecar.stop = async () => {
    try {
      // A killed sidecar never answers: its exit ends the wait.
      const shutdown = connection.sendRequest('shutdown').then(() => connection.sendNotification('exit'));
      await Promise.race([shutdown, exited]);
    } catch {
      child.kill();
    }
    await exited;
    connection.dispose();
  };
  try {
    await connection.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: { window: { workDoneProgress: true } },
      initializationOptions,
    });
    await connection.sendNotification('initialized', {});
  } catch (err) {
    sidecar.initError = err as Error;
  }
  return sidecar;
}
