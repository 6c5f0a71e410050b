/**
 * Growing the embedding matrix [V, H] (and lm_head [V, H], same layout) for an extended tokenizer.
 * Pure math on row-major Float32Arrays; the engine and export code call this.
 *
 * V may already exceed the tokenizer's vocab (Qwen pads 151,665 tokens to 151,936 rows). New ids that fall
 * inside [0, V) reuse those untrained padding rows; ids at or past V grow the matrix. Either way every new
 * token's row is initialised.
 */
import { UserError } from '../util/progress';

export type EmbeddingInitMode =
  /** Mean of the rows of the base tokens the new token replaces (default): it starts as "what it spelled". */
  | 'mean-of-subtokens'
  /** Mean of all base rows: a neutral start. */
  | 'global-mean';

export interface NewTokenRows {
  id: number;
  /** Base token ids it replaces (from the extension manifest). */
  baseIds: number[];
}

export interface ResizeOptions {
  /** Rows to average for 'global-mean' (the real tokens, not padding): rows [0, meanRows). Default V. */
  meanRows?: number;
}

/**
 * matrix: [V, H] row-major. Returns a new [V', H] matrix, V' = max(V, largest new id + 1): old rows copied,
 * each new token's row set by `mode`.
 */
export function resizeEmbeddings(matrix: Float32Array, V: number, H: number, newTokens: NewTokenRows[],
  mode: EmbeddingInitMode = 'mean-of-subtokens', opts: ResizeOptions = {}): { matrix: Float32Array; rows: number } {
  if (matrix.length !== V * H) {
    throw new UserError('embedding-shape', `The embedding matrix has ${matrix.length} values, not V×H = ${V}×${H} = ${V * H}.`,
      'Pass the matrix with its real row count V and hidden size H.');
  }
  let rows = V;
  for (const t of newTokens) rows = Math.max(rows, t.id + 1);
  const out = new Float32Array(rows * H);
  out.set(matrix);

  // Sum in float64 so means of many rows are not rounded at every step.
  const acc = new Float64Array(H);
  let globalMean: Float64Array | undefined;
  if (mode === 'global-mean') {
    const n = opts.meanRows ?? V;
    if (n <= 0 || n > V) throw new UserError('embedding-shape', `meanRows must be in 1..${V}, got ${n}.`, 'Pass the base vocabulary size.');
    globalMean = new Float64Array(H);
    for (let r = 0; r < n; r++) for (let h = 0; h < H; h++) globalMean[h]! += matrix[r * H + h]!;
    for (let h = 0; h < H; h++) globalMean[h]! /= n;
  } else if (mode !== 'mean-of-subtokens') {
    throw new UserError('embedding-mode', `Unknown embedding init mode ${JSON.stringify(mode)}.`, 'Use "mean-of-subtokens" or "global-mean".');
  }

  // New tokens are initialised in id order; a base id must be an old row (not another new token).
  const newIds = new Set(newTokens.map((t) => t.id));
  for (const t of newTokens) {
    let src: Float64Array;
    if (globalMean) {
      src = globalMean;
    } else {
      if (t.baseIds.length === 0) {
        throw new UserError('embedding-no-subtokens', `New token id ${t.id} lists no base tokens to average.`,
          'Use the extension manifest written by `lathe tokenizer extend`, or the global-mean mode.');
      }
      acc.fill(0);
      for (const b of t.baseIds) {
        if (b < 0 || b >= V || newIds.has(b)) {
          throw new UserError('embedding-bad-subtoken', `New token id ${t.id} lists base id ${b}, which is not a row of the base matrix (0..${V - 1}).`,
            'The manifest and the model do not match; extend the tokenizer of this model again.');
        }
        for (let h = 0; h < H; h++) acc[h]! += matrix[b * H + h]!;
      }
      for (let h = 0; h < H; h++) acc[h]! /= t.baseIds.length;
      src = acc;
    }
    for (let h = 0; h < H; h++) out[t.id * H + h] = src[h]!;
  }
  return { matrix: out, rows };
}
