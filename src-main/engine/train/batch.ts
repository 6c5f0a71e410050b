/** Dataset rows -> model feeds, and the masked-loss evaluation of a split. Shared by training, eval and export checks. */
import type { DatasetManifest, SftRow, SplitReader } from '../../data/pack/dataset';
import { hostTensor, type EngineSession, type HostTensor } from '../runtime';
import { UserError } from '../../util/progress';

export interface Batch {
  ids: BigInt64Array;
  targets: BigInt64Array;
  mask: Float32Array;
  /** Predicted tokens that count in the loss. */
  count: number;
  /** Packed SFT rows: segment per token (0 = padding) and positions restarting per sample. */
  segments?: Float32Array;
  positions?: BigInt64Array;
}

function checkId(id: number, vocab: number): void {
  if (id >= vocab) throw new UserError('train.tokenRange', `The dataset has token id ${id}, but the model has only ${vocab} embeddings.`, 'Prepare the dataset with this model\'s tokenizer (or extend the model\'s embeddings first).');
}

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
      checkId(id, vocab);
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

/**
 * Packed SFT rows: position t predicts token t+1 when that token is an assistant token (mask 1) of the same
 * sample. A null row is padding (fully masked).
 */
export function makeSftBatch(rows: (SftRow | null)[], T: number, vocab: number): Batch {
  const B = rows.length, N = B * T;
  const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N);
  const segments = new Float32Array(N), positions = new BigInt64Array(N);
  let count = 0;
  for (let b = 0; b < B; b++) {
    const r = rows[b];
    if (!r) continue;
    for (let t = 0; t < T; t++) {
      const k = b * T + t;
      checkId(r.ids[t]!, vocab);
      ids[k] = BigInt(r.ids[t]!);
      segments[k] = r.segments[t]!;
      positions[k] = BigInt(r.positions[t]!);
      if (t + 1 < T && r.segments[t] !== 0 && r.segments[t + 1] === r.segments[t] && r.mask[t + 1]) {
        targets[k] = BigInt(r.ids[t + 1]!);
        mask[k] = 1;
        count++;
      }
    }
  }
  return { ids, targets, mask, count, segments, positions };
}

/** Rows of a split by index (-1 = padding row) as one batch, for either dataset kind. */
export function readBatch(split: SplitReader, manifest: DatasetManifest, indices: number[], vocab: number): Batch {
  const T = manifest.blockSize;
  if (manifest.kind === 'sft') return makeSftBatch(indices.map((i) => (i < 0 ? null : split.sftRow(i))), T, vocab);
  const lastValid = manifest.splits[split.split]?.lastRowTokens;
  const rows = indices.map((i) => (i < 0 ? new Uint32Array(T) : split.row(i)));
  const valid = indices.map((i) => (i < 0 ? 0 : i === split.rows - 1 && lastValid ? lastValid : undefined));
  return makeBatch(rows, T, vocab, valid);
}

export function feedsOf(batch: Batch, B: number, T: number): Record<string, HostTensor> {
  const N = B * T;
  return {
    ids: hostTensor('int64', [B, T], batch.ids),
    targets: hostTensor('int64', [N, 1], batch.targets),
    mask: hostTensor('float32', [N, 1], batch.mask),
    ...(batch.segments && batch.positions ? {
      segments: hostTensor('float32', [B, T], batch.segments),
      positions: hostTensor('int64', [B, T], batch.positions),
    } : {}),
  };
}

export const scalarOf = (t: HostTensor | undefined): number => Number((t?.data as Float32Array | undefined)?.[0] ?? NaN);

/** Validation loss (mean over predicted tokens) and perplexity on up to `maxBlocks` blocks of a split. */
export async function evaluateSplit(session: EngineSession, split: SplitReader, manifest: DatasetManifest, params: HostTensor | null,
  B: number, T: number, vocab: number, maxBlocks: number, onBatch?: (fraction: number) => void): Promise<{ loss: number; ppl: number; tokens: number }> {
  const n = Math.min(split.rows, maxBlocks);
  let sum = 0, count = 0;
  for (let start = 0; start < n; start += B) {
    const batch = readBatch(split, manifest, Array.from({ length: B }, (_, b) => (start + b < n ? start + b : -1)), vocab);
    const out = await session.run({ ...feedsOf(batch, B, T), ...(params ? { params } : {}) }, ['loss_sum']);
    sum += scalarOf(out['loss_sum']);
    count += batch.count;
    onBatch?.(Math.min(1, (start + B) / n));
  }
  const loss = count > 0 ? sum / count : NaN;
  return { loss, ppl: Math.exp(loss), tokens: count };
}

