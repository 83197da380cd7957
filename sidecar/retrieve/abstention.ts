import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { writeFileAtomic } from '../index/atomic-file';
import { encodeSafetensors, parseSafetensors, toFloat32, type Float32Tensor } from '../encoder/safetensors';

/**
 * Abstention ("no retrieval", as in RLCoder): LSR trained with `--abstain` puts an empty passage ∅ among each
 * query's k candidates. Its score is one learned number τ on the cosine scale, so P_R = softmax([cos(q, d_i), τ]/γ)
 * and the LM teacher scores ∅ as the context alone.
 *
 * τ is query-independent on purpose. REPLUG's softmax ignores a shift of every cosine, so plain LSR never fixes
 * their level; against a fixed τ it must: the query encoder learns to keep every cosine below τ where no passage
 * helps, and to lift the useful ones above it where one does. A query-dependent score (u·q with a learned vector u)
 * would duplicate that with `dim` more parameters, which Adam moves about √dim times faster in score units than τ.
 *
 * The retriever abstains on a query when ∅ outranks every passage: τ above the best passage's cosine. That is
 * independent of γ and k, unlike P_R(∅), which eval reports beside it.
 */
export const ABSTAIN_FILE = 'abstain.safetensors';
/** τ, shape [1]; a bias, so AdamW does not decay it. */
export const ABSTAIN_SCORE = 'abstain.bias';

/** τ = 0 (an unrelated passage's cosine): ∅ starts below the passages that look related. */
export function initialAbstention(): Map<string, Float32Tensor> {
  return new Map([[ABSTAIN_SCORE, { shape: [1], data: new Float32Array(1) }]]);
}

/** The abstention weights saved in `dir`, or undefined when it has none (a model trained without --abstain). */
export async function readAbstention(dir: string): Promise<Map<string, Float32Tensor> | undefined> {
  const file = path.join(dir, ABSTAIN_FILE);
  if (!existsSync(file)) return undefined;
  const { tensors } = parseSafetensors(await readFile(file), file);
  const t = tensors.get(ABSTAIN_SCORE);
  if (!t || t.shape.join() !== '1') throw new Error(`${file} must hold ${ABSTAIN_SCORE} of shape [1]: train the model again with --abstain`);
  const data = toFloat32(t, file, ABSTAIN_SCORE);
  if (!Number.isFinite(data[0])) throw new Error(`${file} holds a score of ${data[0]}: train the model again with --abstain`);
  return new Map([[ABSTAIN_SCORE, { shape: [1], data }]]);
}

/** Writes the abstention tensors of `weights` (other names are left out) into `dir`. */
export async function writeAbstention(dir: string, weights: ReadonlyMap<string, Float32Tensor>): Promise<void> {
  const score = weights.get(ABSTAIN_SCORE);
  if (!score) throw new Error(`no ${ABSTAIN_SCORE} to save`);
  await writeFileAtomic(path.join(dir, ABSTAIN_FILE), encodeSafetensors(new Map([[ABSTAIN_SCORE, score]])));
}

/** Whether `name` is one of the abstention weights (kept apart from the encoder's or adapter's own file). */
export function isAbstentionWeight(name: string): boolean {
  return name === ABSTAIN_SCORE;
}

/** A trained model's ∅ score, for search, completions and evaluation. */
export class AbstentionHead {
  private constructor(readonly score: number) {}

  /** The head of the model folder `dir`, or undefined when it was trained without --abstain (or is no folder). */
  static async load(dir: string): Promise<AbstentionHead | undefined> {
    const weights = await readAbstention(dir);
    return weights && new AbstentionHead(weights.get(ABSTAIN_SCORE)!.data[0]);
  }

  /** Whether ∅ outranks a ranking whose best passage has cosine `topSimilarity` (an empty ranking: it does). */
  abstains(topSimilarity: number | undefined): boolean {
    return topSimilarity === undefined || this.score > topSimilarity;
  }
}
