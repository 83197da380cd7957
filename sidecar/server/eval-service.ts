import type { Encoder } from '../encoder/encoder';
import { loadEncoder, type Device } from '../encoder/ort-encoder';
import { candidateIndexFor, evaluateRetrievers, retrieverPrecision, type EvalReport, type Retriever } from '../eval/evaluate';
import type { VectorHit } from '../index/workspace-index';
import { WorkspaceIndex } from '../index/workspace-index';
import { LmError } from '../lm/lm-error';
import { LmScorer } from '../lm/scorer';
import { DEFAULT_LSR_SETTINGS } from '../lsr/lsr-trainer';
import { readyTeacher } from '../lsr/fit-queries';
import { DEFAULT_QUERY_SOURCE, loadQueries } from '../lsr/query-source';
import { AbstentionHead } from '../retrieve/abstention';
import { lmFailureMessage } from './lm-failure';
import type { CompareParams, CompareResult, EvaluateParams, WireHit } from './protocol';

export interface EvalServiceOptions {
  indexDir: string;
  baseModel: string | undefined;
  device?: Device;
  /** The index service's encoder, shared rather than loaded twice. */
  baseEncoder(): Promise<Encoder | undefined>;
  /** Why the configured encoder is not in use, if it could not be loaded. */
  encoderProblem(): string | undefined;
}

const DEFAULTS = { k: 10, ensembleK: 10, compareK: 5 };

/**
 * Base-vs-tuned evaluation and side-by-side comparison. Each call opens the index read-only, so it neither waits
 * for nor blocks index jobs; the last tuned encoder stays loaded because compare is asked again and again.
 */
export class EvalService {
  private tuned: { model: string; encoder: Promise<Encoder> } | undefined;

  constructor(private readonly opts: EvalServiceOptions) {}

  /** `say`: what the teacher supports and which budgets were chosen, for the log. */
  async evaluate(params: EvaluateParams, onProgress: (done: number, total: number) => void, say: (line: string) => void): Promise<EvalReport> {
    return this.withRetrievers(params.tuned, async (index, retrievers) => {
      const source = { ...DEFAULT_QUERY_SOURCE, ...params.queries, split: 'eval' as const };
      const sampled = (await loadQueries(index.passages(), source)).slice(0, params.maxQueries);
      if (sampled.length === 0) {
        throw new Error(`No held-out queries: none of the indexed files fell into the evaluation share (${source.evalFraction}). Raise replugCode.eval.fileShare, lower replugCode.training.trainFileShare (evaluation files come from the rest), or index more files.`);
      }
      const scorer = new LmScorer({ baseUrl: params.lm.baseUrl, model: params.lm.model, apiKey: params.lm.apiKey, concurrency: params.lm.concurrency });
      // The first LM call is the teacher's probe: a wrong URL or model fails there, and gets the same advice.
      const run = async () => {
        const { queries } = await readyTeacher(scorer, sampled, say);
        return evaluateRetrievers({
          index,
          retrievers,
          scorer,
          queries,
          k: params.k ?? DEFAULTS.k,
          ensembleK: params.ensembleK ?? DEFAULTS.ensembleK,
          gamma: params.gamma ?? DEFAULT_LSR_SETTINGS.gamma,
          onProgress,
        });
      };
      return run().catch((err: unknown) => {
        throw err instanceof LmError ? new Error(lmFailureMessage(err, params.lm)) : err;
      });
    });
  }

  async compare(params: CompareParams): Promise<CompareResult> {
    const k = params.k ?? DEFAULTS.compareK;
    return this.withRetrievers(params.tuned, async (index, retrievers) => {
      const [base, tuned] = await Promise.all(
        retrievers.map(async (r) => {
          const [vector] = await r.encoder.embed([params.query]);
          return (await candidateIndexFor(r, index)).search(vector, k, () => false).map(toWireHit);
        }),
      );
      return { base, tuned };
    });
  }

  async close(): Promise<void> {
    const tuned = this.tuned;
    this.tuned = undefined;
    await (await tuned?.encoder.catch(() => undefined))?.dispose();
  }

  private async withRetrievers<T>(tunedModel: string | undefined, use: (index: WorkspaceIndex, retrievers: Retriever[]) => Promise<T>): Promise<T> {
    const baseEncoder = await this.opts.baseEncoder();
    if (!baseEncoder || !this.opts.baseModel) {
      const problem = this.opts.encoderProblem();
      throw new Error(problem ? `Evaluation compares dense retrievers, but ${problem}.` : 'Evaluation compares dense retrievers: set replugCode.encoder.model and index the workspace first.');
    }
    const retrievers: Retriever[] = [{ name: 'base', model: this.opts.baseModel, encoder: baseEncoder, abstention: await AbstentionHead.load(this.opts.baseModel) }];
    if (tunedModel) {
      retrievers.push({ name: 'tuned', model: tunedModel, encoder: await this.tunedEncoder(tunedModel), abstention: await AbstentionHead.load(tunedModel) });
    }
    const index = await WorkspaceIndex.open(this.opts.indexDir, { encoder: baseEncoder, encoderSpec: this.opts.baseModel, readOnly: true });
    try {
      return await use(index, retrievers);
    } finally {
      await index.close();
    }
  }

  private async tunedEncoder(model: string): Promise<Encoder> {
    if (this.tuned?.model !== model) {
      await this.close();
      const stored = (await WorkspaceIndex.readManifest(this.opts.indexDir))?.encoder;
      this.tuned = { model, encoder: loadEncoder({ model, device: this.opts.device, precision: retrieverPrecision(model, stored) }) };
      this.tuned.encoder.catch(() => (this.tuned = undefined));
    }
    return this.tuned!.encoder;
  }
}

function toWireHit(hit: VectorHit): WireHit {
  const { id, path, startLine, endLine, text } = hit.passage;
  return { id, path, startLine, endLine, text, score: hit.similarity };
}
