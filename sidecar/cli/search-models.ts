import type { IndexManifest } from '../index/manifest';
import { isQueryTowerFor } from '../lsr/lsr-trainer';

export interface SearchModels {
  /** Embeds documents: must be the encoder the index's vectors came from for dense search. */
  model?: string;
  /** Embeds queries instead of `model`: a query tower trained against the index's vectors. */
  queryModel?: string;
}

/**
 * Which encoders search an index when `requested` (a --model option) or, by default, the index's own encoder is
 * asked for. Dense queries must be embedded by the encoder the index was built with — or by a query tower trained
 * against its vectors (`train --mode query-tower`), which embeds queries while the stored vectors stay.
 */
export function searchModels(manifest: IndexManifest, requested: string | undefined): SearchModels {
  const wanted = requested ?? manifest.encoder?.model;
  const queryTower = wanted !== undefined && manifest.encoder !== undefined && isQueryTowerFor(wanted, manifest.encoder.fingerprint);
  return queryTower ? { model: manifest.encoder!.model, queryModel: wanted } : { model: wanted };
}
