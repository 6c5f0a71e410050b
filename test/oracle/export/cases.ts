/**
 * The export oracle cases, shared by make_exports.ts (writes the folders gen_fixture.py reads) and
 * test/unit/export/oracle.test.ts (rebuilds them bit for bit and compares with the committed fixture).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../../src-main/engine/models';
import { exportModel, type ExportResult } from '../../../src-main/export';
import { handRun, type HandRunOptions } from '../../unit/export/helpers';

export interface ExportCase {
  name: string;
  arch: string;
  modelSeed: number;
  run: HandRunOptions;
  dtype: 'f32' | 'f16' | 'bf16';
  shardSizeMB?: number;
  /** Prompt token ids (all below every tiny vocabulary). */
  ids: number[];
}

export const EXPORT_CASES: ExportCase[] = [
  { name: 'llama-f32', arch: 'llama', modelSeed: 1, run: { rank: 4, alpha: 8, seed: 11 }, dtype: 'f32', ids: [1, 17, 42, 99, 150, 7, 300, 5] },
  { name: 'qwen3-bf16', arch: 'qwen3', modelSeed: 2, run: { rank: 8, alpha: 16, rslora: true, seed: 12 }, dtype: 'bf16', ids: [3, 250, 8, 77, 401, 12, 64, 9] },
  // GPT-2: Conv1D weights (fan_in_fan_out), sharded output.
  { name: 'gpt2-f32-sharded', arch: 'gpt2', modelSeed: 3, run: { rank: 4, alpha: 4, rslora: true, seed: 13 }, dtype: 'f32', shardSizeMB: 0.1, ids: [2, 33, 120, 6, 400, 18, 77, 250] },
];

export interface BuiltCase {
  base: string;
  run: string;
  merged: string;
  peft: string;
  mergedResult: ExportResult;
  peftResult: ExportResult;
}

/** root/<name>/{base, run, merged, peft}. */
export async function buildCase(c: ExportCase, root: string): Promise<BuiltCase> {
  const dir = path.join(root, c.name);
  const base = path.join(dir, 'base'), run = path.join(dir, 'run'), merged = path.join(dir, 'merged'), peft = path.join(dir, 'peft');
  await createTinyModel(c.arch, base, { seed: c.modelSeed });
  mkdirSync(run, { recursive: true });
  await handRun(base, run, c.run);
  const mergedResult = await exportModel({ format: 'merged', model: base, adapter: run, out: merged, dtype: c.dtype, shardSizeMB: c.shardSizeMB, baseModelName: `tiny-${c.arch}` });
  const peftResult = await exportModel({ format: 'peft', model: base, adapter: run, out: peft, baseModelName: `tiny-${c.arch}` });
  return { base, run, merged, peft, mergedResult, peftResult };
}
