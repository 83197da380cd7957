import type { Device } from '../encoder/ort-encoder';
import { readBeirDataset } from '../eval/beir-dataset';
import { BEIR_METRICS, evaluateBeir, type BeirReport, type BeirSystem } from '../eval/beir-eval';
import { candidateIndexFor, type Retriever } from '../eval/evaluate';
import { WorkspaceIndex } from '../index/workspace-index';
import { displayPath } from './index-dir';
import { RunProgress } from './run-progress';

export interface BeirEvalOptions {
  beir: string;
  split: string;
  indexDir: string;
  base?: string;
  tuned?: string;
  device: Device;
  json?: boolean;
}

/** eval's way of opening the index with the base (and tuned) encoder, handed in so both evaluations load them alike. */
type OpenRetrievers = (
  indexDir: string,
  base: string | undefined,
  tuned: string | undefined,
  device: Device,
) => Promise<{ index: WorkspaceIndex; retrievers: Retriever[] }>;

/**
 * `eval --beir DIR`: BM25, the base and the tuned retriever on a BEIR-layout benchmark, judged by its qrels (so no
 * LM is involved). The corpus must be in the index (`index --beir DIR`); the dense retrievers are those of `eval`.
 */
export async function runBeirEval(opts: BeirEvalOptions, openRetrievers: OpenRetrievers): Promise<void> {
  const dataset = await readBeirDataset(opts.beir, opts.split);
  const manifest = await WorkspaceIndex.readManifest(opts.indexDir);
  if (!manifest) throw new Error(`no index at ${opts.indexDir}: run \`replug-code index --beir ${opts.beir} --index-dir ${opts.indexDir} [--model M]\` first`);
  const { index, retrievers } =
    manifest.encoder || opts.base || opts.tuned
      ? await openRetrievers(opts.indexDir, opts.base, opts.tuned, opts.device)
      : { index: await WorkspaceIndex.open(opts.indexDir, { readOnly: true }), retrievers: [] as Retriever[] };
  try {
    const outsideCorpus = (p: { path: string }) => p.path !== dataset.corpusFile;
    const docs = new Set(index.passages().flatMap((p) => (outsideCorpus(p) || p.docId === undefined ? [] : [p.docId])));
    if (docs.size === 0) {
      throw new Error(`the index at ${opts.indexDir} holds nothing of ${dataset.corpusFile}: run \`replug-code index --beir ${opts.beir} --index-dir ${opts.indexDir}\``);
    }
    if (manifest.shard) process.stderr.write(`warning: the index holds shard ${manifest.shard.id} of ${manifest.shard.count} of the corpus; merge the shards (merge-shards) to evaluate on all of it\n`);
    if (manifest.partial) process.stderr.write('warning: the index is unfinished (its last index run stopped early); run index again to complete it\n');
    const systems: BeirSystem[] = [
      { name: 'bm25', search: async (query, k) => (await index.search(query, { k, mode: 'lexical', exclude: outsideCorpus })).map((h) => h.passage) },
    ];
    for (const retriever of retrievers) {
      const candidates = await candidateIndexFor(retriever, index);
      systems.push({
        name: retriever.name,
        search: async (query, k) => {
          const [vector] = await retriever.encoder.embed([query]);
          return candidates.search(vector, k, outsideCorpus).map((h) => h.passage);
        },
      });
    }
    const progress = new RunProgress('evaluating', dataset.queries.length * systems.length);
    progress.start();
    const report = await evaluateBeir(dataset, docs, systems, (done) => progress.update(done, 'queries')).finally(() => progress.stop());
    process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatBeirReport(report));
  } finally {
    await index.close();
    for (const r of retrievers) await r.encoder.dispose();
  }
}

/** One row per retriever and one for tuned − base, each difference with its paired standard error. */
export function formatBeirReport(r: BeirReport): string {
  const width = Math.max(12, ...BEIR_METRICS.map((m) => m.length));
  const nameWidth = Math.max(14, ...r.systems.map((s) => s.name.length + 2));
  const cell = (text: string) => text.padStart(width);
  const lines = [
    `${displayPath(r.dataset)} (qrels/${r.split}.tsv): ${r.queries} judged ${r.queries === 1 ? 'query' : 'queries'}` +
      (r.judgedNotIndexed > 0
        ? `; ${r.judgedNotIndexed} relevant ${r.judgedNotIndexed === 1 ? 'document is' : 'documents are'} not in the index (counted as never retrieved)`
        : ''),
    `${'retriever'.padEnd(nameWidth)}${BEIR_METRICS.map((m) => cell(m)).join(' ')}`,
    ...r.systems.map((s) => `${s.name.padEnd(nameWidth)}${BEIR_METRICS.map((m) => cell(s.metrics[m].toFixed(3))).join(' ')}`),
  ];
  if (r.difference) {
    const d = r.difference;
    const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(3)}`;
    lines.push(
      `${`${d.of} − ${d.minus}`.padEnd(nameWidth)}${BEIR_METRICS.map((m) => cell(`${signed(d.metrics[m].mean)}±${d.metrics[m].stdErr.toFixed(3)}`)).join(' ')}`,
      `(± is the standard error of the per-query differences over the same ${r.queries} queries)`,
    );
  }
  return `${lines.join('\n')}\n`;
}
