import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import { LmServer } from '../../sidecar/lm/serve';
import type { TrainingStatus, TrainStarted } from '../../sidecar/server/protocol';
import { CopyLm } from '../fixtures/lm/copy-lm';
import { activateReplug, eventually, withDenseIndex } from './helpers';

/** A tiny run on the six fixture files: every file gives queries, 4 passages scored per query. */
const TRAINING_SETTINGS: Record<string, unknown> = {
  'lm.model': 'copy-lm',
  'training.steps': 5,
  'training.batchSize': 2,
  'training.k': 4,
  'training.checkpointEvery': 100,
  'training.trainFileShare': 1,
  'training.queriesPerFile': 2,
};

suite('LSR training from the editor', () => {
  let lm: LmServer;
  let undoSettings: () => Promise<void>;

  suiteSetup(async () => {
    const api = await activateReplug();
    lm = new LmServer(new CopyLm('copy-lm', 16384));
    undoSettings = await withDenseIndex(api, { ...TRAINING_SETTINGS, 'lm.baseUrl': await lm.listen() });
  });

  suiteTeardown(async () => {
    await undoSettings?.();
    await lm?.close();
  });

  test('"Train Retriever (LSR)" trains against the local LM and its status reaches done', async () => {
    const api = await activateReplug();
    const statuses: TrainingStatus[] = [];
    const listener = api.onDidChangeTraining((s) => statuses.push(s));
    try {
      const started = await vscode.commands.executeCommand<TrainStarted | undefined>('replugCode.trainRetriever');
      assert.ok(started, 'the command returns the started run');
      assert.ok(started.queries > 0);
      const done = await eventually(async () => (['done', 'failed'].includes(api.training.state) ? api.training : undefined), 'training to end', 60_000);
      assert.equal(done.state, 'done', done.message);
      assert.equal(done.step, 5);
      assert.deepEqual([...new Set(statuses.filter((s) => s.state === 'running' && s.loss !== undefined).map((s) => s.step))], [1, 2, 3, 4, 5]);
    } finally {
      listener.dispose();
    }
  });

  test('"Stop Training" cancels a long run, which ends cancelled with a checkpoint', async () => {
    const api = await activateReplug();
    const config = vscode.workspace.getConfiguration('replugCode');
    await config.update('training.steps', 100_000, vscode.ConfigurationTarget.Global);
    const started = await vscode.commands.executeCommand<TrainStarted | undefined>('replugCode.trainRetriever');
    assert.ok(started);
    await eventually(async () => (api.training.runId === started.runId && api.training.step >= 1 ? true : undefined), 'a first step');
    const final = await vscode.commands.executeCommand<TrainingStatus | undefined>('replugCode.stopTraining');
    assert.equal(final?.state, 'cancelled');
    assert.equal(final.checkpointStep, final.step);
    assert.ok(final.step < 100_000);
  });
});
