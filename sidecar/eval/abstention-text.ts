import type { EvalReport } from './evaluate';

/** Two lines per retriever trained with --abstain: how often it abstains, and the ensemble and loss with ∅ in them. */
export function abstentionLines(r: EvalReport): string[] {
  const percent = (x: number | undefined) => (x === undefined ? '–' : `${(100 * x).toFixed(0)}%`);
  const nothing = r.nothingHelps ?? 0;
  return r.retrievers.flatMap((s) => {
    const a = s.abstention;
    if (!a) return [];
    return [
      `${s.name} abstains on ${percent(a.rate)} of ${r.queries} queries: ${percent(a.rateWhereNothingHelps)} of the ${nothing} where no passage helps the LM, ` +
        `${percent(a.rateWhereRetrievalHelps)} of the ${r.queries - nothing} where one does`,
      `${s.name} with ∅ in the ensemble: bits/byte ${a.bitsPerByte.toFixed(3)} (without ${s.bitsPerByte.toFixed(3)}), mean P_R(∅) ${a.weight.toFixed(3)}, ` +
        `held-out loss ${a.loss.toFixed(3)} (passages only ${s.loss?.toFixed(3) ?? '–'})`,
    ];
  });
}
