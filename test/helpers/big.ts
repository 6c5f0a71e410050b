/**
 * Big bf16 models for memory tests, made fast: the tiny model of `arch` (tokenizer, config) with config
 * overrides, and weights that repeat one random block of bf16 values (norms 1, biases 0). Not for parity:
 * for tests of what happens when weights are GBs (conversion, external data, memory).
 */
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel, parseModelConfig, weightsLayout } from '../../src-main/engine/models';
import { Rng } from '../../src-main/engine/models/rng';
import { f32ToBf16Bits, writeModelWeights } from '../../src-main/engine/safetensors';
import { tempDir } from './services';

const BLOCK = 4099; // prime: rows of a matrix do not repeat in step

export interface BigModelOptions {
  scale?: number;
  edit?: (name: string, bits: Uint16Array) => void;
  /** Largest shard (writeModelWeights' default unless told). */
  maxShardBytes?: number;
}

export async function bigBf16Model(arch: string, overrides: Record<string, unknown>, opts: BigModelOptions = {}): Promise<string> {
  const dir = path.join(tempDir('lathe-big-'), 'model');
  await writeBigBf16Model(dir, arch, overrides, opts);
  return dir;
}

/** bigBf16Model into the folder `dir` (made here; its parent must exist): the tiny model's files go to `dir`.tiny first. */
export async function writeBigBf16Model(dir: string, arch: string, overrides: Record<string, unknown>, opts: BigModelOptions = {}): Promise<void> {
  const tiny = `${dir}.tiny`;
  await createTinyModel(arch, tiny, { seed: 1, dtype: 'bf16' });
  mkdirSync(dir);
  for (const f of ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(path.join(tiny, f), path.join(dir, f));
  const hf = { ...JSON.parse(readFileSync(path.join(tiny, 'config.json'), 'utf8')), ...overrides, torch_dtype: 'bfloat16' };
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(hf, null, 2));
  const layout = weightsLayout(parseModelConfig(hf));
  const rng = new Rng(5);
  const scale = opts.scale ?? 0.05;
  const block = Uint16Array.from({ length: BLOCK }, () => f32ToBf16Bits((rng.next() * 2 - 1) * scale));
  const specs = [...layout.shapes].map(([name, shape]) => ({ name, dtype: 'BF16' as const, shape }));
  await writeModelWeights(dir, specs, (s) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(n);
    if (/norm[^.]*\.weight$|ln_\w+\.weight$/.test(s.name)) out.fill(f32ToBf16Bits(1));
    else if (!s.name.endsWith('.bias')) {
      out.set(block.subarray(0, Math.min(BLOCK, n)));
      for (let filled = Math.min(BLOCK, n); filled < n; filled *= 2) out.copyWithin(filled, 0, Math.min(filled, n - filled));
    }
    opts.edit?.(s.name, out);
    return out;
  }, { maxShardBytes: opts.maxShardBytes });
  rmSync(tiny, { recursive: true, force: true });
}
