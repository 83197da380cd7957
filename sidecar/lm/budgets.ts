import { LmError } from './lm-error';

/** Token budgets of one scored prompt d ⊕ separator ⊕ x ⊕ y, counted by the LM's own tokenizer. */
export interface TokenBudgets {
  doc: number;
  context: number;
  continuation: number;
}

/** REPLUG's 128-token documents and contexts; continuations get as much. */
export const DEFAULT_BUDGETS: Readonly<TokenBudgets> = Object.freeze({ doc: 128, context: 128, continuation: 128 });

/** Tokens of a prompt outside the three parts: BOS, the separator (a token or two), and one generated token. */
export const RESERVED_TOKENS = 4;

/** The CLI flag that sets each budget, for messages. */
const FLAGS: Record<keyof TokenBudgets, string> = { doc: '--doc-tokens', context: '--context-tokens', continuation: '--continuation-tokens' };

/** A budget shrunk below this leaves too little text to score meaningfully. */
const MIN_BUDGET = 16;

export interface ResolvedBudgets {
  budgets: TokenBudgets;
  /** The LM's context length when the server said it. */
  contextLength?: number;
  /** One line for the user: what was chosen and why. */
  summary: string;
}

/**
 * Budgets that fit the served model: the ones the user set are kept exactly (an error names them when they cannot
 * fit); unset ones default to 128 tokens and, when the model's context is shorter, shrink in proportion until
 * the whole prompt fits. Nothing the user did not set is ever enlarged.
 */
export function resolveBudgets(requested: Partial<TokenBudgets>, contextLength: number | undefined): ResolvedBudgets {
  const parts = Object.keys(DEFAULT_BUDGETS) as (keyof TokenBudgets)[];
  for (const part of parts) {
    const v = requested[part];
    if (v !== undefined && (!Number.isInteger(v) || v < 0)) throw new Error(`${part} token budget must be a non-negative integer (got ${v})`);
  }
  const unset = parts.filter((p) => requested[p] === undefined);
  const budgets: TokenBudgets = { ...DEFAULT_BUDGETS };
  for (const p of parts) budgets[p] = requested[p] ?? DEFAULT_BUDGETS[p];
  const describe = (b: TokenBudgets) => `doc ${b.doc}, context ${b.context}, continuation ${b.continuation} tokens`;
  if (contextLength === undefined) {
    return { budgets, summary: `token budgets ${describe(budgets)} (the server does not say its context length)` };
  }
  const total = (b: TokenBudgets) => b.doc + b.context + b.continuation + RESERVED_TOKENS;
  if (total(budgets) <= contextLength) {
    return { budgets, contextLength, summary: `LM context ${contextLength} tokens; token budgets ${describe(budgets)}` };
  }
  const fixed = parts.filter((p) => !unset.includes(p)).reduce((sum, p) => sum + budgets[p], 0);
  const room = contextLength - RESERVED_TOKENS - fixed;
  const wanted = unset.reduce((sum, p) => sum + DEFAULT_BUDGETS[p], 0);
  const shrunk = { ...budgets };
  for (const p of unset) shrunk[p] = Math.floor((room * DEFAULT_BUDGETS[p]) / wanted);
  if (unset.length === 0 || unset.some((p) => shrunk[p] < MIN_BUDGET)) {
    const set = parts.filter((p) => !unset.includes(p)).map((p) => `${FLAGS[p]} ${budgets[p]}`);
    throw new LmError(
      'context-length',
      `the LM's context is ${contextLength} tokens, too short for ${describe(budgets)} plus ${RESERVED_TOKENS} reserved` +
        (set.length ? `; lower ${set.join(', ')}` : ''),
    );
  }
  return {
    budgets: shrunk,
    contextLength,
    summary: `LM context ${contextLength} tokens; token budgets ${describe(shrunk)} (${unset.join(', ')} shrunk from the default ${DEFAULT_BUDGETS.doc} to fit)`,
  };
}

/** The context length in a server's "prompt too long" message (vLLM: "This model's maximum context length is 512 tokens"). */
export function contextLengthFromError(message: string): number | undefined {
  const m = /maximum context length is (\d+)/i.exec(message) ?? /max_model_len[^\d]{0,20}(\d+)/i.exec(message);
  return m ? Number(m[1]) : undefined;
}
