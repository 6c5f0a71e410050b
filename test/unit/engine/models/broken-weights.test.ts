/**
 * Model folders that are not damaged but cannot be used (quantized checkpoints, Git LFS pointers) are said
 * plainly; weights holding NaN/Inf are found and named instead of giving NaN logits with exit code 0.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel, inspectModelFolder, validateModelFolder } from '../../../../src-main/engine/models';
import { scanNonFinite } from '../../../../src-main/engine/models/finite';
import { computeLogits, evaluatePerplexity } from '../../../../src-main/engine/train/infer';
import { Generator } from '../../../../src-main/engine/generate/generator';
import { train } from '../../../../src-main/engine/train/trainer';
import { UserError } from '../../../../src-main/util/progress';
import { tempDir } from '../../../helpers/services';
import { tinyDataset, rewriteWeights } from '../../../helpers/tiny';

async function caught(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

async function fresh(arch = 'llama'): Promise<string> {
  const out = path.join(tempDir('lathe-broken-'), arch);
  await createTinyModel(arch, out, { seed: 3 });
  return out;
}

/** A safetensors file written byte by byte (our writer only knows the dtypes Lathe reads). */
function rawSafetensors(file: string, tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: number }>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] };
    offset += t.bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(offset)]));
}

describe('quantized checkpoints and LFS pointers are named, not called damaged', () => {
  it('FP8 weights (F8_E4M3) say what they are and what to use instead', async () => {
    const dir = await fresh();
    rawSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'model.embed_tokens.weight', dtype: 'F8_E4M3', shape: [4, 4], bytes: 16 },
      { name: 'model.layers.0.self_attn.q_proj.weight_scale_inv', dtype: 'F32', shape: [1], bytes: 4 },
    ]);
    const err = await caught(validateModelFolder(dir));
    expect(err.code).toBe('model-quantized');
    expect(err.message).toMatch(/model\.safetensors is an FP8-quantized checkpoint \(tensor "model\.embed_tokens\.weight" is stored as F8_E4M3\)/);
    expect(err.message).not.toMatch(/is damaged|download again/i);
    expect(err.hint).toMatch(/bf16\/f16 original/);
    rawSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'x', dtype: 'F8_E5M2', shape: [2], bytes: 2 }]);
    expect((await caught(validateModelFolder(dir))).message).toMatch(/FP8-quantized.*F8_E5M2/);
  });

  it('GPTQ/AWQ and bitsandbytes tensors, or a quantization_config, are recognised', async () => {
    const dir = await fresh();
    rawSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'model.layers.0.self_attn.q_proj.qweight', dtype: 'I32', shape: [8, 64], bytes: 2048 },
      { name: 'model.layers.0.self_attn.q_proj.qzeros', dtype: 'I32', shape: [1, 8], bytes: 32 },
      { name: 'model.layers.0.self_attn.q_proj.scales', dtype: 'F16', shape: [1, 64], bytes: 128 },
    ]);
    let ins = await inspectModelFolder(dir);
    expect(ins.problems.map((p) => p.code)).toEqual(['model-quantized']); // not 20 missing tensors
    expect(ins.problems[0]!.message).toMatch(/GPTQ\/AWQ-quantized checkpoint \(tensor "model\.layers\.0\.self_attn\.q_proj\.qweight" in model\.safetensors/);
    rawSafetensors(path.join(dir, 'model.safetensors'), [
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'U8', shape: [64], bytes: 64 },
      { name: 'model.layers.0.mlp.up_proj.weight.absmax', dtype: 'F32', shape: [4], bytes: 16 },
    ]);
    ins = await inspectModelFolder(dir);
    expect(ins.problems[0]!.message).toMatch(/bitsandbytes/);
    const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...cfg, quantization_config: { quant_method: 'awq', bits: 4 } }));
    const err = await caught(validateModelFolder(dir));
    expect(err.message).toMatch(/AWQ-quantized checkpoint \(config\.json has a quantization_config \(quant_method "awq"\)\)/);
  });

  it('a Git LFS pointer in place of the weights says to run git lfs pull', async () => {
    const dir = await fresh();
    writeFileSync(path.join(dir, 'model.safetensors'),
      'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 988097824\n');
    const err = await caught(validateModelFolder(dir));
    expect(err.code).toBe('model-lfs-pointer');
    expect(err.message).toBe('model.safetensors is a Git LFS pointer (a small text file), not the weights (the real file is 988,097,824 bytes).');
    expect(err.hint).toContain('git lfs pull');
  });
});

describe('non-finite weights', () => {
  it('scans raw bits of every float type', () => {
    const f32 = new Float32Array([1, 2, NaN, Infinity]);
    expect(scanNonFinite('F32', new Uint8Array(f32.buffer))).toEqual({ index: 2, value: 'NaN', count: 2 });
    expect(scanNonFinite('F16', new Uint8Array(new Uint16Array([0x3c00, 0xfc00]).buffer))).toEqual({ index: 1, value: '-Infinity', count: 1 });
    expect(scanNonFinite('BF16', new Uint8Array(new Uint16Array([0x3f80, 0x7fc0]).buffer))).toEqual({ index: 1, value: 'NaN', count: 1 });
    expect(scanNonFinite('BF16', new Uint8Array(new Uint16Array([0x3f80, 0x7f7f]).buffer))).toBeNull(); // largest finite bf16
  });

  it('logits, evaluation and the first training step fail naming the tensor; no checkpoint is promised', async () => {
    const dir = await fresh('llama');
    const dataset = await tinyDataset(dir);
    await rewriteWeights(dir, (name, data) => { if (name === 'model.layers.1.mlp.down_proj.weight') data[5] = NaN; });
    let err = await caught(computeLogits(dir, [1, 2, 3], { ep: 'cpu' }));
    expect(err.code).toBe('model-weights-nonfinite');
    expect(err.message).toMatch(/tensor "model\.layers\.1\.mlp\.down_proj\.weight" in model\.safetensors holds 1 non-finite value \(NaN at element 5\)/);
    err = await caught(evaluatePerplexity(dir, dataset, { ep: 'cpu', maxBlocks: 2 }));
    expect(err.code).toBe('model-weights-nonfinite');
    err = await caught(train({ model: dir, dataset, out: path.join(tempDir(), 'run'), maxSteps: 3, batchSize: 2, evalEvery: 0, ep: 'cpu' }));
    expect(err.code).toBe('model-weights-nonfinite');
    expect(err.message).not.toMatch(/checkpoint/);
    const gen = await Generator.open(dir, { ep: 'cpu' });
    try {
      err = await caught(gen.generate([1, 2, 3], { maxTokens: 2 }));
      expect(err.code).toBe('model-weights-nonfinite');
    } finally {
      await gen.dispose();
    }
  });
});
