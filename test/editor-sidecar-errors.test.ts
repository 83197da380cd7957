import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setImmediate } from 'node:timers/promises';
import {
  ConnectionError,
  ConnectionErrors,
  createProtocolConnection,
  ErrorCodes,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
} from 'vscode-languageserver-protocol/node';
import { lostConnection, SidecarStoppedError } from '../extension/sidecar-errors';

describe('a request cut off by the sidecar stopping', () => {
  test('the error JSON-RPC gives a pending request when the connection goes away counts as a lost connection', async () => {
    // A request the server never answers before it disappears: a SIGKILLed sidecar, seen from the editor.
    const toServer = new PassThrough();
    const fromServer = new PassThrough();
    const client = createProtocolConnection(new StreamMessageReader(fromServer), new StreamMessageWriter(toServer));
    client.listen();
    const sent = new Promise((resolve) => toServer.on('data', (chunk: Buffer) => chunk.includes('replug/index') && resolve(undefined)));
    const pending = client.sendRequest('replug/index', { roots: ['/w'] }).catch((err: unknown) => err);
    await sent;
    await setImmediate(); // the request counts as pending once its write has completed
    // What the language client does when the sidecar's process is gone.
    client.dispose();
    const err = await pending;
    assert.match(String((err as Error).message), /Pending response rejected since connection got disposed/);
    assert.equal(lostConnection(err), true);
  });

  test('other failures are the sidecar\'s answer, not a lost connection', () => {
    assert.equal(lostConnection(new ResponseError(ErrorCodes.ConnectionInactive, 'Client is not running')), true);
    assert.equal(lostConnection(new ConnectionError(ConnectionErrors.Closed, 'Connection is closed.')), true);
    assert.equal(lostConnection(new ResponseError(ErrorCodes.InternalError, '/w is not a folder')), false);
    assert.equal(lostConnection(new Error('boom')), false);
    assert.equal(lostConnection(undefined), false);
  });

  test('the user reads what happened and what to do, in plain words', () => {
    const restarting = new SidecarStoppedError('evaluating', 3);
    assert.equal(restarting.message, 'the REPLUG sidecar stopped while evaluating; it restarts by itself, so try again in a moment');
    const down = new SidecarStoppedError('indexing', 3, false);
    assert.match(down.message, /was not restarted after repeated crashes; see REPLUG: Show Log, then run REPLUG: Restart Sidecar/);
    for (const err of [restarting, down]) assert.doesNotMatch(err.message, /pending|response|connection|disposed/i);
  });
});
