/**
 * A prepared dataset (data/pack shards) as Parquet, the way Hugging Face trainers read pre-tokenized data:
 * one row per Lathe block, INT32 list columns of blockSize values each
 *
 *   input_ids       the block's token ids (new-token ids included)
 *   labels          the id where Lathe computes a loss predicting it, else -100 (transformers shifts by one)
 *   attention_mask  1 on real tokens, 0 on padding (SFT rows' segment 0)
 *   position_ids    restarting at 0 at each packed sample (SFT), 0..T-1 (pretraining)
 *   segment_ids     SFT only: the packed sample each token belongs to (0 = padding); attention stays inside it
 *
 * Labels reproduce engine/train/batch.ts exactly: pretraining predicts every next token except the EOS
 * padding of a split's final row; SFT predicts token t when it is an assistant token of the same sample as t-1.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { openDataset, type SplitReader } from '../data/pack/dataset';
import { writeFileAtomicSync } from '../util/atomic';
import { throwIfCancelled, UserError, type WorkOptions } from '../util/progress';

export const IGNORE_INDEX = -100;
/** Tokens per Parquet file (bounds the memory of one file's columns). */
const TOKENS_PER_FILE = 1 << 21;

export interface ParquetSplit { files: string[]; rows: number; lossTokens: number }
export interface ParquetData { kind: 'pretrain' | 'sft'; blockSize: number; splits: Record<string, ParquetSplit> }

export interface BlockColumns { input_ids: Int32Array; labels: Int32Array; attention_mask: Int32Array; position_ids: Int32Array; segment_ids?: Int32Array }

/** Row i of a split as the five columns (see the header). `validTokens`: real tokens of a pretraining row. */
export function blockColumns(reader: SplitReader, i: number, validTokens: number): BlockColumns {
  const T = reader.blockSize;
  const labels = new Int32Array(T).fill(IGNORE_INDEX);
  const attention = new Int32Array(T);
  const positions = new Int32Array(T);
  if (reader.manifest.kind === 'pretrain') {
    const ids = reader.row(i);
    for (let t = 0; t < T; t++) {
      positions[t] = t;
      attention[t] = 1;
      if (t >= 1 && t < validTokens) labels[t] = ids[t]!;
    }
    return { input_ids: Int32Array.from(ids), labels, attention_mask: attention, position_ids: positions };
  }
  const r = reader.sftRow(i);
  for (let t = 0; t < T; t++) {
    positions[t] = r.positions[t]!;
    attention[t] = r.segments[t] !== 0 ? 1 : 0;
    if (t >= 1 && r.segments[t] !== 0 && r.segments[t] === r.segments[t - 1] && r.mask[t]) labels[t] = r.ids[t]!;
  }
  return { input_ids: Int32Array.from(r.ids), labels, attention_mask: attention, position_ids: positions, segment_ids: Int32Array.from(r.segments) };
}

function listSchema(names: string[]): Record<string, unknown>[] {
  return [
    { name: 'schema', num_children: names.length },
    ...names.flatMap((name) => [
      { name, repetition_type: 'REQUIRED', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', type: 'INT32', repetition_type: 'REQUIRED' },
    ]),
  ];
}

/** Preference-pair datasets (DPO/ORPO) have no translation for the other trainers yet: said before any file is written. */
export function refusePreference(kind: string, datasetDir: string): asserts kind is 'pretrain' | 'sft' {
  if (kind === 'pretrain' || kind === 'sft') return;
  throw new UserError('handoff.preference', `${datasetDir} holds ${kind === 'preference' ? 'preference pairs (DPO/ORPO)' : `a "${kind}" dataset`}; a hand-off can carry pretraining and SFT datasets only.`,
    'Train preference tuning in Lathe, or hand off the SFT stage and run DPO/ORPO here on the imported adapter.');
}

/** Writes every split of the dataset in `datasetDir` to `<outDir>/<split>-NNNNN.parquet`. */
export async function writeParquetDataset(datasetDir: string, outDir: string, work: WorkOptions = {}): Promise<ParquetData> {
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const ds = openDataset(datasetDir);
  const { kind, blockSize } = ds.manifest;
  refusePreference(kind, datasetDir);
  mkdirSync(outDir, { recursive: true });
  const names = ['input_ids', 'labels', 'attention_mask', 'position_ids', ...(kind === 'sft' ? ['segment_ids'] : [])];
  const rowsPerFile = Math.max(1, Math.floor(TOKENS_PER_FILE / blockSize));
  const splits: Record<string, ParquetSplit> = {};
  for (const [split, info] of Object.entries(ds.manifest.splits)) {
    const reader = ds.split(split);
    const out: ParquetSplit = { files: [], rows: reader.rows, lossTokens: 0 };
    try {
      for (let start = 0; start < reader.rows; start += rowsPerFile) {
        throwIfCancelled(work.signal);
        const end = Math.min(reader.rows, start + rowsPerFile);
        const cols: Record<string, Int32Array[]> = Object.fromEntries(names.map((n) => [n, []]));
        for (let i = start; i < end; i++) {
          const c = blockColumns(reader, i, i === reader.rows - 1 && info.lastRowTokens ? info.lastRowTokens : blockSize);
          for (const n of names) cols[n]!.push(c[n as keyof BlockColumns]!);
          for (const l of c.labels) if (l !== IGNORE_INDEX) out.lossTokens++;
        }
        const file = `${split}-${String(out.files.length).padStart(5, '0')}.parquet`;
        const buf = parquetWriteBuffer({
          // plain uncompressed INT32 lists: readable by pyarrow, datasets, pandas and hyparquet alike
          columnData: names.map((n) => ({ name: n, data: cols[n]!.map((a) => Array.from(a)), encoding: 'PLAIN' as const })),
          schema: listSchema(names) as never,
          codec: 'UNCOMPRESSED',
          statistics: false,
          createdBy: 'Lathe hand-off',
        });
        writeFileAtomicSync(path.join(outDir, file), new Uint8Array(buf));
        out.files.push(file);
        work.onProgress?.({ stage: 'Writing Parquet shards', message: `${split}: ${end.toLocaleString('en-US')} of ${reader.rows.toLocaleString('en-US')} rows`, fraction: end / reader.rows });
      }
    } finally {
      reader.close();
    }
    splits[split] = out;
  }
  const data: ParquetData = { kind, blockSize, splits };
  writeFileAtomicSync(path.join(outDir, 'index.json'), JSON.stringify(data, null, 2) + '\n');
  return data;
}
