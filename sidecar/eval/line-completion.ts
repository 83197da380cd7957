import { distance } from 'fastest-levenshtein';

/**
 * RepoEval's line-completion metrics, as RepoCoder computes them: both texts reduced to their non-blank lines,
 * each stripped, the prediction cut to as many lines as the target.
 */
function comparable(target: string, prediction: string): { target: string[]; prediction: string[] } {
  const lines = (text: string) => text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const t = lines(target);
  return { target: t, prediction: lines(prediction).slice(0, t.length) };
}

/** 1 when the prediction's lines equal the target's, else 0. */
export function exactMatch(target: string, prediction: string): number {
  const c = comparable(target, prediction);
  return c.target.length === c.prediction.length && c.target.every((line, i) => line === c.prediction[i]) ? 1 : 0;
}

/** 1 − Levenshtein distance / the longer length, over the lines joined by newlines. */
export function editSimilarity(target: string, prediction: string): number {
  const c = comparable(target, prediction);
  const [t, p] = [c.target.join('\n'), c.prediction.join('\n')];
  const longer = Math.max(t.length, p.length);
  return longer === 0 ? 1 : 1 - distance(t, p) / longer;
}
