import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { WorkspaceIndex } from '../index/workspace-index';
import { TRAINING_RECORD, type TrainingRecord } from '../lsr/lsr-trainer';
import type { ModelInfo } from './protocol';

/** The run folders under `modelsDir` (finished models and stopped, resumable runs), newest first. */
export async function listModels(modelsDir: string, indexDir: string): Promise<ModelInfo[]> {
  if (!existsSync(modelsDir)) return [];
  const fingerprint = (await WorkspaceIndex.readManifest(indexDir))?.encoder?.fingerprint;
  const entries = await readdir(modelsDir, { withFileTypes: true });
  const models = await Promise.all(
    entries
      .filter((e) => e.isDirectory())
      .map(async (e): Promise<ModelInfo | undefined> => {
        const dir = join(modelsDir, e.name);
        const record = await readRecord(dir);
        if (!record && !existsSync(join(dir, 'checkpoints'))) return undefined;
        return {
          path: dir,
          runId: e.name,
          trained: record !== undefined,
          mode: record?.mode,
          step: record?.step,
          steps: record?.settings.steps,
          fitsIndex: record !== undefined && fitsIndex(record, fingerprint),
          modified: (await stat(dir)).mtime.toISOString(),
        };
      }),
  );
  return models.filter((m) => m !== undefined).sort((a, b) => b.modified.localeCompare(a.modified));
}

/**
 * Throws, saying what to do, unless `model` is a query tower trained against the vectors stored in `indexDir`
 * (only such a model can embed search queries without re-embedding every passage).
 */
export async function assertQueryTowerFor(model: string, indexDir: string): Promise<void> {
  const record = await readRecord(model);
  if (!record) throw new Error(`${model} is not a finished LSR model (no ${TRAINING_RECORD}); finish or resume its training first.`);
  if (record.mode !== 'query-tower') {
    throw new Error(`${model} was trained in shared mode, so documents must be re-embedded with it: set replugCode.encoder.model to it and rebuild the index.`);
  }
  const fingerprint = (await WorkspaceIndex.readManifest(indexDir))?.encoder?.fingerprint;
  if (!fitsIndex(record, fingerprint)) {
    throw new Error(`${model} was trained against another index's vectors (the encoder changed since): train again on this index.`);
  }
}

function fitsIndex(record: TrainingRecord, fingerprint: string | undefined): boolean {
  return record.mode === 'query-tower' && fingerprint !== undefined && record.documentEncoder?.fingerprint === fingerprint;
}

async function readRecord(dir: string): Promise<TrainingRecord | undefined> {
  const file = join(dir, TRAINING_RECORD);
  return existsSync(file) ? (JSON.parse(await readFile(file, 'utf8')) as TrainingRecord) : undefined;
}
