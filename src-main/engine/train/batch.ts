/** Dataset rows -> model feeds, and the masked-loss evaluation of a split. Shared by training, eval and export checks. */
import type { DatasetManifest, SplitReader } from '../../data/pack/dataset';
import { hostTensor, type EngineSession, type HostTensor } from '../runtime';
import { UserError } from '../../util/progress';

export interface Batch { ids: BigInt64Array; targets: BigInt64Array; mask: Float32Array; count: number }

/**
 * Rows -> model inputs: ids = row, targets = row shifted by one; the last position of each row (no next
 * token) and, in the final row of a split, the EOS padding past `validTokens` are masked.
 */
export function makeBatch(rows: Uint32Array[], T: number, vocab: number, validTokens: (number | undefined)[] = []): Batch {
  const B = rows.length, N = B * T;
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N);
  let count = 0;
  for (let b = 0; b < B; b++) {
    const row = rows[b]!;
    const valid = validTokens[b] ?? T;
    for (let t = 0; t < T; t++) {
      const id = row[t]!;
      if (id >= vocab) throw new UserError('train.tokenRange', `The dataset has token id ${id}, but the model has only ${vocab} embeddings.`, 'Prepare the dataset with this model\'s tokenizer (or extend the model\'s embeddings first).');
      ids[b * T + t] = BigInt(id);
      if (t + 1 < valid) {
        targets[b * T + t] = BigInt(row[t + 1]!);
        mask[b * T + t] = 1;
        count++;
      }
    }
  }
  return { ids, targets, mask, count };
}

export function feedsOf(batch: Batch, B: number, T: number): Record<string, HostTensor> {
  const N = B * T;
  return {
    ids: hostTensor('int64', [B, T], batch.ids),
    targets: hostTensor('int64', [N, 1], batch.targets),
    mask: hostTensor('float32', [N, 1], batch.mask),
  };
}

export const scalarOf = (t: HostTensor | undefined): number => Number((t?.data as Float32Array | undefined)?.[0] ?? NaN);

/** Validation loss (mean over predicted tokens) and perplexity on up to `maxBlocks` blocks of a split. */
export async function evaluateSplit(session: EngineSession, split: SplitReader, manifest: DatasetManifest, params: HostTensor | null,
  B: number, T: number, vocab: number, maxBlocks: number, onBatch?: (fraction: number) => void): Promise<{ loss: number; ppl: number; tokens: number }> {
  const n = Math.min(split.rows, maxBlocks);
  let sum = 0, count = 0;
  const lastValid = manifest.splits[split.split]?.lastRowTokens;
  for (let start = 0; start < n; start += B) {
    const rows: Uint32Array[] = [], valid: (number | undefined)[] = [];
    for (let b = 0; b < B; b++) {
      const i = start + b;
      if (i < n) { rows.push(split.row(i)); valid.push(i === split.rows - 1 && lastValid ? lastValid : undefined); }
      else { rows.push(new Uint32Array(T)); valid.push(0); } // padding row: fully masked
    }
    const batch = makeBatch(rows, T, vocab, valid);
    const out = await session.run({ ...feedsOf(batch, B, T), ...(params ? { params } : {}) }, ['loss_sum']);
    sum += scalarOf(out['loss_sum']);
    count += batch.count;
    onBatch?.(Math.min(1, (start + B) / n));
  }
  const loss = count > 0 ? sum / count : NaN;
  return { loss, ppl: Math.exp(loss), tokens: count };
}

