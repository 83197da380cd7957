import { ConnectionError, ErrorCodes } from 'vscode-languageserver-protocol';

/**
 * Whether a request failed because the connection to the sidecar went away (a crash, a kill, a restart) rather
 * than on its own: JSON-RPC then rejects it with "Pending response rejected since connection got disposed".
 */
export function lostConnection(err: unknown): boolean {
  if (err instanceof ConnectionError) return true;
  const code = (err as { code?: unknown } | undefined)?.code;
  return code === ErrorCodes.PendingResponseRejected || code === ErrorCodes.ConnectionInactive;
}

/** A request cut off by the sidecar stopping, said in plain words instead of JSON-RPC's. */
export class SidecarStoppedError extends Error {
  constructor(
    /** What the request was doing, as in "while indexing". */
    readonly what: string,
    /** The sidecar run the request went to (see SidecarClient), to wait for the next one. */
    readonly run: number,
    restarted = true,
  ) {
    super(
      restarted
        ? `the REPLUG sidecar stopped while ${what}; it restarts by itself, so try again in a moment`
        : `the REPLUG sidecar stopped while ${what} and was not restarted after repeated crashes; see REPLUG: Show Log, then run REPLUG: Restart Sidecar`,
    );
    this.name = 'SidecarStoppedError';
  }
}
