/** Dataset rows -> model feeds, and the masked-loss evaluation of a split. Shared by training, eval and export checks. */
import type { DatasetManifest, SftRow, SplitReader } from '../../data/pack/dataset';
import { hostTensor, type EngineSession, type HostTensor } from '../backends/onnx';
import { UserError } from '../../util/progress';
import type { TokenRows } from '../llm/lora';

export interface Batch {
  ids: BigInt64Array;
  targets: BigInt64Array;
  mask: Float32Array;
  /** Predicted tokens that count in the loss. */
  count: number;
  /** Packed SFT rows: segment per token (0 = padding) and positions restarting per sample. */
  segments?: Float32Array;
  positions?: BigInt64Array;
  /** With trainable new-token rows: row index into them and the new-token flag, per token. */
  newIdx?: BigInt64Array;
  isNew?: Float32Array;
}

/** Fills ids (and the new-row inputs) for token k; throws when the model has no row for the id. */
function putId(b: Batch, k: number, id: number, rows: TokenRows): void {
  if (!rows.has(id)) {
    throw new UserError('train.tokenRange', `The dataset has token id ${id}, but the model has only ${rows.baseRows} embeddings${rows.active ? ' plus its new-token rows' : ''}.`,
      'Prepare the dataset with this model\'s tokenizer (or the extended tokenizer you train with).');
  }
  const [base, j, isNew] = rows.input(id);
  b.ids[k] = BigInt(base);
  if (b.newIdx && b.isNew) { b.newIdx[k] = BigInt(j); b.isNew[k] = isNew; }
}

function emptyBatch(N: number, rows: TokenRows): Batch {
  return {
    ids: new BigInt64Array(N), targets: new BigInt64Array(N), mask: new Float32Array(N), count: 0,
    ...(rows.active ? { newIdx: new BigInt64Array(N), isNew: new Float32Array(N) } : {}),
  };
}

/**
 * Rows -> model inputs: ids = row, targets = row shifted by one; the last position of each row (no next
 * token) and, in the final row of a split, the EOS padding past `validTokens` are masked.
 */
export function makeBatch(rowsIn: Uint32Array[], T: number, rows: TokenRows, validTokens: (number | undefined)[] = []): Batch {
  const B = rowsIn.length;
  const batch = emptyBatch(B * T, rows);
  for (let b = 0; b < B; b++) {
    const row = rowsIn[b]!;
    const valid = validTokens[b] ?? T;
    for (let t = 0; t < T; t++) {
      const k = b * T + t;
      putId(batch, k, row[t]!, rows);
      if (t + 1 < valid) {
        batch.targets[k] = BigInt(rows.target(row[t + 1]!));
        batch.mask[k] = 1;
        batch.count++;
      }
    }
  }
  return batch;
}

/**
 * Packed SFT rows: position t predicts token t+1 when that token is an assistant token (mask 1) of the same
 * sample. A null row is padding (fully masked).
 */
export function makeSftBatch(rowsIn: (SftRow | null)[], T: number, rows: TokenRows): Batch {
  const B = rowsIn.length, N = B * T;
  const batch: Batch = { ...emptyBatch(N, rows), segments: new Float32Array(N), positions: new BigInt64Array(N) };
  for (let b = 0; b < B; b++) {
    const r = rowsIn[b];
    if (!r) continue;
    for (let t = 0; t < T; t++) {
      const k = b * T + t;
      putId(batch, k, r.ids[t]!, rows);
      batch.segments![k] = r.segments[t]!;
      batch.positions![k] = BigInt(r.positions[t]!);
      if (t + 1 < T && r.segments[t] !== 0 && r.segments[t + 1] === r.segments[t] && r.mask[t + 1]) {
        batch.targets[k] = BigInt(rows.target(r.ids[t + 1]!));
        batch.mask[k] = 1;
        batch.count++;
      }
    }
  }
  return batch;
}

/** Rows of a split by index (-1 = padding row) as one batch, for either dataset kind. */
export function readBatch(split: SplitReader, manifest: DatasetManifest, indices: number[], rows: TokenRows): Batch {
  const T = manifest.blockSize;
  if (manifest.kind === 'preference') {
    throw new UserError('data.kind', `${split.dir} holds preference pairs (chosen and rejected replies), which have no next-token loss or perplexity.`,
      'Train it with --method dpo or orpo; its held-out reward accuracy is in the run\'s metrics.jsonl (docs/preference.md).');
  }
  if (manifest.kind === 'sft') return makeSftBatch(indices.map((i) => (i < 0 ? null : split.sftRow(i))), T, rows);
  const lastValid = manifest.splits[split.split]?.lastRowTokens;
  const data = indices.map((i) => (i < 0 ? new Uint32Array(T) : split.row(i)));
  const valid = indices.map((i) => (i < 0 ? 0 : i === split.rows - 1 && lastValid ? lastValid : undefined));
  return makeBatch(data, T, rows, valid);
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
    ...(batch.newIdx && batch.isNew ? {
      new_idx: hostTensor('int64', [B, T], batch.newIdx),
      is_new: hostTensor('float32', [B, T, 1], batch.isNew),
    } : {}),
  };
}

export const scalarOf = (t: HostTensor | undefined): number => Number((t?.data as Float32Array | undefined)?.[0] ?? NaN);

/** Validation loss (mean over predicted tokens) and perplexity on up to `maxBlocks` blocks of a split. */
export async function evaluateSplit(session: Pick<EngineSession, 'run'>, split: SplitReader, manifest: DatasetManifest, params: HostTensor | null,
  B: number, T: number, rows: TokenRows, maxBlocks: number, onBatch?: (fraction: number) => void): Promise<{ loss: number; ppl: number; tokens: number }> {
  const n = Math.min(split.rows, maxBlocks);
  let sum = 0, count = 0;
  for (let start = 0; start < n; start += B) {
    const batch = readBatch(split, manifest, Array.from({ length: B }, (_, b) => (start + b < n ? start + b : -1)), rows);
    const out = await session.run({ ...feedsOf(batch, B, T), ...(params ? { params } : {}) }, ['loss_sum']);
    sum += scalarOf(out['loss_sum']);
    count += batch.count;
    onBatch?.(Math.min(1, (start + B) / n));
  }
  const loss = count > 0 ? sum / count : NaN;
  return { loss, ppl: Math.exp(loss), tokens: count };
}

