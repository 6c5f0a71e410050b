import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, unlinkSync, truncateSync, statSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Tokenizer } from 'tokenizers';
import {
  createTinyModel, inspectModelFolder, validateModelFolder, openModel, parseModelConfig, ropeInvFreq, TINY_ARCHS,
  weightsLayout, type TinyArch,
} from '../../../../src-main/engine/models';
import { ModelWeights } from '../../../../src-main/engine/safetensors';
import { UserError } from '../../../../src-main/util/progress';
import { commands } from '../../../../src-main/cli/commands/model';
import type { CliContext } from '../../../../src-main/cli/types';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'lathe-models-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

async function caught(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

describe('config.json parsing', () => {
  const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 100 };

  it('normalizes Llama, Mistral, Qwen2, Qwen3, SmolLM3 and GPT-2 configs', () => {
    const llama = parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], num_key_value_heads: 2 });
    expect(llama).toMatchObject({ family: 'llama', numKvHeads: 2, headDim: 16, qkvBias: false, tieWordEmbeddings: false, norm: 'rms' });
    const qwen2 = parseModelConfig({ ...base, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true });
    expect(qwen2).toMatchObject({ family: 'qwen2', qkvBias: true, oBias: false, mlpBias: false, tieWordEmbeddings: true, numKvHeads: 4 });
    const qwen3 = parseModelConfig({ ...base, architectures: ['Qwen3ForCausalLM'], head_dim: 32 });
    expect(qwen3).toMatchObject({ family: 'qwen3', qkNorm: true, headDim: 32, qkvBias: false });
    const mistral = parseModelConfig({ ...base, model_type: 'mistral', sliding_window: 4096 });
    expect(mistral).toMatchObject({ family: 'mistral', slidingWindow: 4096 });
    // SmolLM3: every 4th layer NoPE by default; an explicit list wins; 1 means "uses RoPE".
    expect(parseModelConfig({ ...base, architectures: ['SmolLM3ForCausalLM'] }).ropeLayers).toEqual([true, true, true, false]);
    expect(parseModelConfig({ ...base, architectures: ['SmolLM3ForCausalLM'], no_rope_layers: [0, 1, 1, 1] }).ropeLayers).toEqual([false, true, true, true]);
    expect(parseModelConfig({ ...base, architectures: ['SmolLM3ForCausalLM'] }).tieWordEmbeddings).toBe(true);
    const gpt2 = parseModelConfig({ architectures: ['GPT2LMHeadModel'], n_embd: 64, n_layer: 2, n_head: 4, vocab_size: 300, n_positions: 128 });
    expect(gpt2).toMatchObject({ family: 'gpt2', intermediateSize: 256, norm: 'layer', positions: 'learned', activation: 'gelu_new', tieWordEmbeddings: true, rope: null });
    const l3 = parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], eos_token_id: [1, 2],
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(l3.rope?.scaling).toEqual({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
    expect(l3.eosTokenIds).toEqual([1, 2]);
    // Newer transformers write RoPE settings under rope_parameters, and dtype instead of torch_dtype.
    const v5 = parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], dtype: 'bfloat16',
      rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    expect(v5.rope).toEqual({ theta: 500000, scaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } });
    expect(v5.torchDtype).toBe('bfloat16');
    expect(parseModelConfig({ ...base, architectures: ['Qwen3ForCausalLM'], rope_parameters: { rope_type: 'default', rope_theta: 1e6 } }).rope).toEqual({ theta: 1e6, scaling: null });
  });

  it('computes llama3-scaled inverse frequencies as HF does', () => {
    const cfg = parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } });
    const inv = ropeInvFreq(cfg);
    const plain = Array.from({ length: 8 }, (_, i) => 1 / 500000 ** ((2 * i) / 16));
    expect(inv[0]).toBeCloseTo(plain[0]!, 12); // wavelength 6.3 < 16: unchanged
    const wl1 = (2 * Math.PI) / plain[1]!; // ~32.5: between 16 and 64, smoothed
    const smooth = (64 / wl1 - 1) / (4 - 1);
    expect(inv[1]).toBeCloseTo((1 - smooth) * plain[1]! / 8 + smooth * plain[1]!, 12);
    for (let i = 2; i < 8; i++) expect(inv[i]).toBeCloseTo(plain[i]! / 8, 12); // wavelength > 64: divided
  });

  it('refuses unsupported architectures and bad fields by name', () => {
    expect(() => parseModelConfig({ architectures: ['MixtralForCausalLM'], model_type: 'mixtral' })).toThrow(/Mixtral/);
    try { parseModelConfig({ architectures: ['PhiForCausalLM'] }); } catch (e) { expect((e as UserError).code).toBe('model-unsupported'); expect((e as UserError).hint).toMatch(/Qwen3/); }
    expect(() => parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], num_key_value_heads: 3 })).toThrow(/num_key_value_heads.*divisor/);
    expect(() => parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], hidden_size: 'big' })).toThrow(/hidden_size/);
    expect(() => parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/yarn/);
  });
});

describe('tiny models', () => {
  it.each(TINY_ARCHS.map((a) => [a]))('%s: writes a valid HF folder whose tokenizer loads and fits', async (arch) => {
    const out = path.join(dir, arch);
    const res = await createTinyModel(arch, out, { seed: 1, dtype: arch === 'qwen3' ? 'bf16' : arch === 'mistral' ? 'f16' : 'f32' });
    const ins = await validateModelFolder(out);
    expect(ins.problems).toEqual([]);
    expect(ins.config.architecture).toBe(res.config.architecture);
    expect(ins.tokenizer.hasChatTemplate).toBe(true);
    expect(ins.hasGenerationConfig).toBe(true);
    expect(ins.dtype).toBe(arch === 'qwen3' ? 'BF16' : arch === 'mistral' ? 'F16' : 'F32');
    expect(ins.warnings.filter((w) => !w.includes('sliding window'))).toEqual([]);
    // Parameter count from the config equals the number of stored values.
    expect(Object.values(ins.dtypes).reduce((a, b) => a + b, 0)).toBe(ins.parameters);
    const tok = Tokenizer.fromFile(path.join(out, 'tokenizer.json'));
    const enc = await tok.encode('<|im_start|>user\nHello there<|im_end|>');
    expect(enc.getIds()[0]).toBe(1);
    expect(enc.getIds().at(-1)).toBe(2);
    expect(tok.getVocabSize(true)).toBe(ins.tokenizer.vocabSize);
    expect(ins.tokenizer.vocabSize!).toBeLessThanOrEqual(ins.config.vocabSize);
    const { weights, layout } = await openModel(out);
    try {
      const e = await weights.readF32(layout.embed);
      expect(e.length).toBe(ins.config.vocabSize * ins.config.hiddenSize);
      expect(e.every(Number.isFinite)).toBe(true);
    } finally {
      await weights.close();
    }
  });

  it('is deterministic per seed and differs across seeds', async () => {
    await createTinyModel('llama', path.join(dir, 'd1'), { seed: 7 });
    await createTinyModel('llama', path.join(dir, 'd2'), { seed: 7 });
    await createTinyModel('llama', path.join(dir, 'd3'), { seed: 8 });
    const read = (d: string): Buffer => readFileSync(path.join(dir, d, 'model.safetensors'));
    expect(read('d1').equals(read('d2'))).toBe(true);
    expect(read('d1').equals(read('d3'))).toBe(false);
  });

  it('bf16 models hold the bf16 rounding of the f32 model', async () => {
    await createTinyModel('smollm2', path.join(dir, 'f32'), { seed: 3 });
    await createTinyModel('smollm2', path.join(dir, 'bf16'), { seed: 3, dtype: 'bf16' });
    const a = await ModelWeights.open(path.join(dir, 'f32'));
    const b = await ModelWeights.open(path.join(dir, 'bf16'));
    try {
      const x = await a.readF32('model.layers.0.mlp.up_proj.weight');
      const y = await b.readF32('model.layers.0.mlp.up_proj.weight');
      for (let i = 0; i < x.length; i++) expect(Math.abs(x[i]! - y[i]!)).toBeLessThanOrEqual(Math.abs(x[i]!) * 2 ** -8);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('writes sharded models that load', async () => {
    const out = path.join(dir, 'sharded');
    const res = await createTinyModel('qwen2', out, { seed: 2, maxShardBytes: 100_000 });
    expect(res.files.length).toBeGreaterThan(2);
    const ins = await validateModelFolder(out);
    expect(ins.sharded).toBe(true);
    expect(ins.weightFiles).toEqual(res.files);
  });

  it('refuses an unknown tiny architecture and an occupied folder', async () => {
    expect((await caught(createTinyModel('falcon', path.join(dir, 'x')))).hint).toMatch(/llama, llama3/);
    expect((await caught(createTinyModel('llama', path.join(dir, 'd1')))).code).toBe('tiny-out-exists');
  });
});

describe('validation reports problems before any work starts', () => {
  async function fresh(name: string, arch: TinyArch = 'llama', opts = {}): Promise<string> {
    const out = path.join(dir, 'v-' + name);
    await createTinyModel(arch, out, { seed: 5, ...opts });
    return out;
  }

  it('missing and truncated shards', async () => {
    const out = await fresh('shards', 'llama', { maxShardBytes: 60_000 });
    const index = JSON.parse(readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    const files = [...new Set(Object.values(index.weight_map) as string[])].sort();
    const second = path.join(out, files[1]!);
    truncateSync(second, statSync(second).size - 100);
    let err = await caught(validateModelFolder(out));
    expect(err.code).toBe('safetensors-truncated');
    expect(err.message).toContain(files[1]);
    unlinkSync(second);
    err = await caught(validateModelFolder(out));
    expect(err.code).toBe('model-shard-missing');
    expect(err.message).toContain(files[1]);
  });

  it('shape mismatch names the tensor, expected and found', async () => {
    const out = await fresh('shape');
    const cfgPath = path.join(out, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, intermediate_size: 96 }));
    const ins = await inspectModelFolder(out);
    const mism = ins.problems.filter((p) => p.code === 'model-shape-mismatch');
    expect(mism.length).toBe(6); // gate, up, down x 2 layers
    expect(mism[0]!.message).toMatch(/"model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[128, 64\] but config\.json implies \[96, 64\]/);
    const err = await caught(validateModelFolder(out));
    expect(err.message).toMatch(/6 problems/);
  });

  it('missing tensors (wrong architecture for the weights) are listed', async () => {
    const out = await fresh('missing', 'llama');
    const cfgPath = path.join(out, 'config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
    writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3' }));
    const err = await caught(validateModelFolder(out));
    expect(err.code).toBe('model-tensor-missing');
    expect(err.message).toMatch(/4 weights are missing.*q_norm/);
  });

  it('missing tokenizer, tokenizer bigger than the embedding, unsupported architecture', async () => {
    const out = await fresh('tok', 'gpt2');
    cpSync(path.join(out, 'tokenizer.json'), path.join(dir, 'tok-backup.json'));
    unlinkSync(path.join(out, 'tokenizer.json'));
    writeFileSync(path.join(out, 'tokenizer.model'), 'x');
    let err = await caught(validateModelFolder(out));
    expect(err.code).toBe('model-tokenizer-missing');
    expect(err.message).toMatch(/tokenizer\.model.*needs tokenizer\.json/);
    const tok = JSON.parse(readFileSync(path.join(dir, 'tok-backup.json'), 'utf8'));
    tok.added_tokens.push({ id: 5000, content: '<extra>', special: true });
    writeFileSync(path.join(out, 'tokenizer.json'), JSON.stringify(tok));
    err = await caught(validateModelFolder(out));
    expect(err.code).toBe('model-tokenizer-mismatch');
    expect(err.message).toMatch(/5001 token ids.*only 424 embedding rows/);
    const cfgPath = path.join(out, 'config.json');
    writeFileSync(cfgPath, JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, 'utf8')), architectures: ['FalconForCausalLM'] }));
    err = await caught(inspectModelFolder(out));
    expect(err.code).toBe('model-unsupported');
    expect(err.message).toContain('FalconForCausalLM');
    err = await caught(inspectModelFolder(path.join(dir, 'nowhere')));
    expect(err.code).toBe('model-folder-missing');
  });

  it('a tied model carrying an lm_head copy loads quietly; unknown tensors are a warning', async () => {
    const out = await fresh('extra', 'smollm2');
    const mw = await ModelWeights.open(out);
    const tensors = [];
    for (const n of mw.names()) tensors.push({ name: n, dtype: 'F32' as const, shape: mw.entry(n).shape, data: await mw.readF32(n) });
    await mw.close();
    const embed = tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
    tensors.push({ ...embed, name: 'lm_head.weight' });
    tensors.push({ name: 'model.layers.0.self_attn.rotary_emb.inv_freq', dtype: 'F32' as const, shape: [8], data: new Float32Array(8) });
    tensors.push({ name: 'model.layers.0.self_attn.q_proj.bias', dtype: 'F32' as const, shape: [64], data: new Float32Array(64) });
    const { writeSafetensors } = await import('../../../../src-main/engine/safetensors');
    await writeSafetensors(path.join(out, 'model.safetensors'), tensors);
    const ins = await validateModelFolder(out);
    expect(ins.warnings).toEqual(['1 tensor in the files will not be used: model.layers.0.self_attn.q_proj.bias.']);
  });

  it('GPT-2 checkpoints without the "transformer." prefix and with mask buffers load', async () => {
    const out = await fresh('gpt2-old', 'gpt2');
    const mw = await ModelWeights.open(out);
    const names = mw.names();
    const tensors = [];
    for (const n of names) tensors.push({ name: n.replace(/^transformer\./, ''), dtype: 'F32' as const, shape: mw.entry(n).shape, data: await mw.readF32(n) });
    await mw.close();
    tensors.push({ name: 'h.0.attn.bias', dtype: 'F32' as const, shape: [1, 1, 2, 2], data: new Float32Array([1, 0, 1, 1]) });
    const { writeSafetensors } = await import('../../../../src-main/engine/safetensors');
    await writeSafetensors(path.join(out, 'model.safetensors'), tensors);
    const ins = await validateModelFolder(out);
    expect(ins.layout.embed).toBe('wte.weight');
    expect(ins.layout.layers[1]!.qkv).toEqual({ weight: 'h.1.attn.c_attn.weight', bias: 'h.1.attn.c_attn.bias', inOut: true });
    expect(ins.warnings).toEqual([]);
    expect(weightsLayout(ins.config).embed).toBe('transformer.wte.weight');
  });
});

describe('lathe model CLI', () => {
  function ctx(args: string[], flags: CliContext['flags'], json = true): { c: CliContext; out: string[] } {
    const out: string[] = [];
    return { c: { args, flags, json, out: (t) => out.push(t), err: () => undefined, signal: new AbortController().signal }, out };
  }
  const cmd = (name: string) => commands.find((c) => c.path.join(' ') === `model ${name}`)!;

  it('create-tiny then inspect', async () => {
    const out = path.join(dir, 'cli');
    const made = await cmd('create-tiny').run(ctx([], { arch: 'smollm3', out, seed: '4', dtype: 'bf16' }).c) as { parameters: number };
    expect(made.parameters).toBeGreaterThan(0);
    const r = await cmd('inspect').run(ctx([out], {}).c) as Record<string, unknown>;
    expect(r).toMatchObject({ architecture: 'SmolLM3ForCausalLM', dtype: 'BF16', ok: true, parameters: made.parameters });
    expect((r.tokenizer as { chatTemplate: boolean }).chatTemplate).toBe(true);
    const human = ctx([out], {}, false);
    await cmd('inspect').run(human.c);
    expect(human.out.join('\n')).toMatch(/NoPE layers 1[\s\S]*Chat template: found[\s\S]*OK: ready/);
    await expect(cmd('create-tiny').run(ctx([], { arch: 'llama', out: path.join(dir, 'cli2'), dtype: 'f8' }).c)).rejects.toThrow(/f32, f16 or bf16/);
  });
});
