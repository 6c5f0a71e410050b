/**
 * GGUF export judged by llama.cpp (node-llama-cpp): every tiny architecture to F16 and Q8_0 — llama.cpp loads
 * the file, tokenizes held-out text as Lathe does, and its next-token probabilities equal Lathe's merged model
 * (max |Δp| ≤ 2e-3, same greedy continuation); K-quants on a 256-wide model, each checked against its
 * dequantized F32 twin in llama.cpp (so llama.cpp reads our block layouts as we write them); faults and refusals.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { TINY_ARCHS, createTinyModel } from '../../../../src-main/engine/models/tiny';
import { exportGguf, type GgufResult } from '../../../../src-main/export/gguf/export';
import { GgmlType, GgufType } from '../../../../src-main/export/gguf/format';
import { loadGguf, llamaNextProbs } from '../../../../src-main/export/gguf/llama-cpp';
import { dequantize, quantize } from '../../../../src-main/export/gguf/quant';
import { readGguf, readGgufTensor } from '../../../../src-main/export/gguf/reader';
import { permuteRopeRows } from '../../../../src-main/export/gguf/tensors';
import { GgufFileWriter, type GgufKv } from '../../../../src-main/export/gguf/writer';
import { tempDir } from '../../../helpers/services';
import { handRun } from '../helpers';

/** Tiny model + a hand-made adapter run (B ≠ 0). SmolLM3 gets llama.cpp's NoPE pattern (every 4th layer). */
async function setup(arch: string, overrides?: Record<string, unknown>): Promise<{ model: string; run: string; base: string }> {
  const base = tempDir('lathe-gguf-');
  const model = path.join(base, 'model');
  await createTinyModel(arch, model, { seed: 2, overrides });
  if (arch === 'gemma2' || arch === 'gemma3') gemmaNorms(path.join(model, 'model.safetensors'));
  const run = path.join(base, 'run');
  mkdirSync(run);
  await handRun(model, run);
  return { model, run, base };
}

/**
 * Gemma's norms scale by (1 + w), so a Gemma checkpoint stores w ≈ 0; the tiny generator fills every norm with
 * 1 + N(0, 0.1) (right for the w families), which gives a tiny Gemma an effective scale ≈ 2 on each of its 4-6 norms
 * per layer. Compounded, its distributions get so sharp that rounding its weights to f16 alone moves them by more
 * than the 2e-3 limit (measured inside llama.cpp, F32 vs F16 file of the same 6-layer tiny Gemma 3: 6.3e-3; Llama
 * 7.6e-6). Shifting the stored norms by −1 gives the tiny Gemmas the effective scales 1 + N(0, 0.1) the others have.
 */
function gemmaNorms(file: string): void {
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString()) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  for (const [name, t] of Object.entries(header)) {
    if (name === '__metadata__' || !/norm/.test(name)) continue;
    expect(t.dtype).toBe('F32');
    for (let o = 8 + headerLen + t.data_offsets[0]; o < 8 + headerLen + t.data_offsets[1]; o += 4) buf.writeFloatLE(buf.readFloatLE(o) - 1, o);
  }
  writeFileSync(file, buf);
}

const SMOLLM3_NOPE = { num_hidden_layers: 4, no_rope_layers: [1, 1, 1, 0] };
/**
 * Gemma 3 with llama.cpp's fixed window pattern: layers 0-4 sliding (window 4 < the text), 5 global (RoPE 1e6,
 * linear scaling 8); query_pre_attn_scalar 24 ≠ head_dim 32, folded into the q norm.
 */
const GEMMA3_PATTERN = { num_hidden_layers: 6, sliding_window_pattern: 6, query_pre_attn_scalar: 24 };
/** Phi-3.5 without its tiny 6-token window (refused, see the refusals test); T > 4 still runs the long factors. */
const OVERRIDES: Partial<Record<string, Record<string, unknown>>> = { smollm3: SMOLLM3_NOPE, gemma3: GEMMA3_PATTERN, phi3: { sliding_window: null } };

function expectAgreement(r: GgufResult, quant: string): void {
  const c = r.check!;
  expect(c.passed, c.reason ?? '').toBe(true);
  if (c.heldOut.source === 'built-in') expect(c.heldOut.note).toContain('/nonexistent/dataset is not there'); // handRun's runs name no real dataset
  expect(c.tokenizationEqual).toBe(true);
  expect(c.positions).toBeGreaterThan(60);
  if (quant === 'f16') {
    expect(c.maxAbsProbDiff).toBeLessThanOrEqual(2e-3);
    expect(c.greedyEqual).toBe(true);
    expect(Math.abs(c.perplexityIncrease)).toBeLessThan(1e-3);
  } else {
    expect(Math.abs(c.perplexityIncrease)).toBeLessThan(0.01);
  }
}

/** llama.cpp's architecture name for each written tiny model (Mistral and Mistral-Nemo run as llama). */
function llamaCppArch(arch: string): string {
  if (arch === 'phi4mini') return 'phi3';
  return ['llama', 'llama3', 'tinyllama', 'smollm2', 'mistral', 'mistral-nemo'].includes(arch) ? 'llama' : arch;
}

describe('GGUF export, checked by llama.cpp', () => {
  it.each(TINY_ARCHS.map((a) => [a]))('%s: F16 and Q8_0 load in llama.cpp and agree with Lathe', async (arch) => {
    const { model, run, base } = await setup(arch, OVERRIDES[arch]);
    // llama.cpp's vocab loader special-cases models whose general.name says "phi3" and looks up Phi-3's "<|end|>"
    // token, which the tiny GPT-2 tokenizer lacks (measured: "error loading model vocabulary"); a real Phi-3 has it.
    const stem = arch === 'phi3' ? 'tiny-p3' : `tiny-${arch}`;
    const out = path.join(base, 'out');
    for (const quant of ['f16', 'q8_0'] as const) {
      const r = await exportGguf({ model, adapter: run, out, quant, name: stem });
      expectAgreement(r, quant);
      expect(path.basename(r.file)).toBe(`${stem}-${quant.toUpperCase()}.gguf`);
      const g = await readGguf(r.file);
      const v = (k: string): unknown => g.metadata.get(k)?.value;
      const names = new Set(g.tensors.map((t) => t.name));
      expect(v('general.architecture')).toBe(llamaCppArch(arch));
      if (arch === 'mistral-nemo') { // head size 32, not hidden / heads = 16: llama.cpp reads it from key/value_length
        expect([v('llama.attention.key_length'), v('llama.attention.value_length'), v('llama.rope.dimension_count')]).toEqual([32, 32, 32]);
      }
      if (arch === 'granite') { // the tiny config's multipliers; llama.cpp divides the logits by logit_scale
        expect(v('granite.embedding_scale')).toBeCloseTo(12, 5);
        expect(v('granite.residual_scale')).toBeCloseTo(0.22, 6);
        expect(v('granite.attention.scale')).toBeCloseTo(0.15, 6);
        expect(v('granite.logit_scale')).toBeCloseTo(8, 5);
      }
      if (arch === 'gemma2') { // llama.cpp reads the caps and the window; its graph scales by 1/√D (24^-½ folded into q)
        expect([v('gemma2.attn_logit_softcapping'), v('gemma2.final_logit_softcapping'), v('gemma2.attention.sliding_window')]).toEqual([2, 3, 4]);
        expect(v('gemma2.attention.key_length')).toBe(32);
      }
      if (arch === 'gemma3') { // the window, the local layers' RoPE base, the global layers' linear scaling; no caps
        expect([v('gemma3.attention.sliding_window'), v('gemma3.rope.freq_base_swa'), v('gemma3.rope.freq_base')]).toEqual([4, 10000, 1000000]);
        expect([v('gemma3.rope.scaling.type'), v('gemma3.rope.scaling.factor')]).toEqual(['linear', 8]);
        expect(v('gemma3.final_logit_softcapping')).toBeUndefined();
        expect(['blk.5.attn_q_norm.weight', 'blk.5.post_ffw_norm.weight'].every((n) => names.has(n))).toBe(true);
      }
      if (arch === 'phi3' || arch === 'phi4mini') { // fused q|k|v and gate|up, both longrope factor sets, rotary dims
        expect(['blk.0.attn_qkv.weight', 'blk.0.ffn_up.weight', 'rope_factors_long.weight', 'rope_factors_short.weight'].every((n) => names.has(n))).toBe(true);
        expect(names.has('blk.0.ffn_gate.weight')).toBe(false);
        expect(g.tensors.find((t) => t.name === 'blk.0.ffn_up.weight')!.shape).toEqual([256, 64]);
        expect(v('phi3.rope.dimension_count')).toBe(arch === 'phi4mini' ? 12 : 16);
        expect(v('phi3.rope.scaling.original_context_length')).toBe(arch === 'phi4mini' ? 256 : 4);
        expect(r.warnings.some((w) => w.includes('long-context RoPE factors'))).toBe(true);
      }
      if (arch === 'olmo2') { // post-norms only; q/k norms over the whole projection (H·D, K·D)
        expect(['blk.0.post_attention_norm.weight', 'blk.0.post_ffw_norm.weight'].every((n) => names.has(n))).toBe(true);
        expect(names.has('blk.0.attn_norm.weight') || names.has('blk.0.ffn_norm.weight')).toBe(false);
        expect(g.tensors.find((t) => t.name === 'blk.0.attn_q_norm.weight')!.shape).toEqual([64]);
        expect(g.tensors.find((t) => t.name === 'blk.0.attn_k_norm.weight')!.shape).toEqual([32]);
      }
      expect(v('tokenizer.ggml.model')).toBe('gpt2');
      expect(v('tokenizer.ggml.pre')).toBe('gpt-2'); // the tiny tokenizer is GPT-2's byte-level BPE with its regex
      expect(v('tokenizer.chat_template')).toContain('<|im_start|>');
      const embd = g.tensors.find((t) => t.name === 'token_embd.weight')!;
      expect((v('tokenizer.ggml.tokens') as string[]).length).toBe(embd.shape[0]);
      expect(embd.type).toBe(quant === 'f16' ? GgmlType.F16 : GgmlType.Q8_0);
      expect(g.tensors.filter((t) => t.shape.length === 1).every((t) => t.type === GgmlType.F32)).toBe(true);
      expect(readdirSync(out).filter((f) => f.includes('.tmp') || f.includes('.failed'))).toEqual([]);
    }
    const mf = readFileSync(path.join(out, 'Modelfile'), 'utf8');
    expect(mf).toContain(`FROM ./${stem}-Q8_0.gguf`);
    expect(mf).toContain('<|im_start|>{{ .Role }}');
    expect(mf).toContain('PARAMETER stop "<|im_end|>"');
  });

  it('K-quants (256-wide rows): the q4_k_m/q5_k_m mixes, and llama.cpp reads each file as its dequantized F32 twin', async () => {
    const { model, run, base } = await setup('llama', { hidden_size: 256, intermediate_size: 256, num_hidden_layers: 8 });
    const out = path.join(base, 'out');
    for (const quant of ['q6_k', 'q5_k_m', 'q4_k_m'] as const) {
      const r = await exportGguf({ model, adapter: run, out, quant, name: 'wide' });
      expect(r.check!.passed, r.check!.reason ?? '').toBe(true);
      expect(r.check!.perplexityIncrease).toBeLessThan(0.05);
      const g = await readGguf(r.file);
      const type = (n: string): GgmlType => g.tensors.find((t) => t.name === n)!.type;
      const main = quant === 'q6_k' ? GgmlType.Q6_K : quant === 'q5_k_m' ? GgmlType.Q5_K : GgmlType.Q4_K;
      const more = quant === 'q6_k' ? GgmlType.Q6_K : GgmlType.Q6_K;
      expect(type('blk.1.attn_q.weight')).toBe(main);
      expect(type('output.weight')).toBe(more);
      // useMoreBits(i, 8): layers 0, 3 (i - 1 ≡ 2 mod 3), 6 and 7 get Q6_K for attn_v and ffn_down.
      for (let i = 0; i < 8; i++) {
        expect(type(`blk.${i}.attn_v.weight`)).toBe([0, 3, 6, 7].includes(i) ? more : main);
        expect(type(`blk.${i}.ffn_down.weight`)).toBe([0, 3, 6, 7].includes(i) ? more : main);
      }
      // The twin: same metadata, every tensor dequantized by OUR reading of the layout, written as F32.
      const twin = path.join(base, `twin-${quant}.gguf`);
      const kvs: GgufKv[] = [...g.metadata].map(([key, m]) => (m.type === GgufType.ARRAY
        ? { key, type: GgufType.ARRAY, elemType: m.elemType as never, value: m.value as never }
        : { key, type: m.type as never, value: m.value as never }));
      const w = await GgufFileWriter.create(twin, kvs, g.tensors.map((t) => ({ name: t.name, shape: t.shape, type: GgmlType.F32 })));
      for (const t of g.tensors) {
        const n = t.shape.reduce((a, b) => a * b, 1);
        await w.writeTensor(quantize(GgmlType.F32, dequantize(t.type, await readGgufTensor(r.file, t), n), t.shape[t.shape.length - 1]!));
      }
      await w.finish();
      const ids = [0, ...Array.from({ length: 40 }, (_, i) => 3 + ((i * 37) % 400))];
      const pq = await probs(r.file, ids), pt = await probs(twin, ids);
      let maxDiff = 0;
      for (let t = 0; t < ids.length; t++) for (let v = 0; v < pq[t]!.length; v++) maxDiff = Math.max(maxDiff, Math.abs(pq[t]![v]! - pt[t]![v]!));
      // llama.cpp's quantized matmuls also round the activations (to 8 bits), hence not exactly 0.
      expect(maxDiff).toBeLessThan(5e-4);
    }
  }, 300_000);

  it('an extended tokenizer keeps the gpt-2 pre-tokenizer, carries its new tokens and merges, and llama.cpp tokenizes the run\'s validation text as Lathe', async () => {
    const { trainDomainTokenizer, extendTokenizerDir } = await import('../../../../src-main/tokenizer/service');
    const { readExtensionManifest } = await import('../../../../src-main/tokenizer/extend');
    const { prepareCorpus } = await import('../../../../src-main/data/prepare');
    const { train } = await import('../../../../src-main/engine/train/trainer');
    const base = tempDir('lathe-gguf-ext-');
    const model = path.join(base, 'model');
    await createTinyModel('llama', model, { seed: 1 });
    const corpus = path.join(base, 'corpus');
    mkdirSync(corpus);
    const words = ['spindle', 'tailstock', 'headstock', 'faceplate', 'chuck', 'gouge', 'skew', 'the', 'a', 'turn'];
    let s = 7;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let d = 0; d < 12; d++) writeFileSync(path.join(corpus, `d${d}.txt`), Array.from({ length: 150 }, () => words[Math.floor(rnd() * words.length)]).join(' ') + '.\n');
    const cands = await trainDomainTokenizer({ baseDir: model, corpus: [corpus], maxCandidates: 30 });
    const tok = path.join(base, 'tok');
    await extendTokenizerDir({ baseDir: model, candidates: cands, topN: 4, outDir: tok });
    const newTokens = readExtensionManifest(tok).newTokens;
    const dataset = path.join(base, 'ds');
    await prepareCorpus({ inputs: [corpus], out: dataset, tokenizerDir: tok, blockSize: 32, seed: 1, valFraction: 0.1 });
    const run = path.join(base, 'run');
    await train({ model, dataset, out: run, tokenizer: tok, maxSteps: 3, batchSize: 2, optim: { lr: 1e-2 }, evalEvery: 0, ep: 'cpu', lora: { targets: 'attention' } });
    // No held-out text given: the check reads the run's validation split back as text.
    const r = await exportGguf({ model, adapter: run, out: path.join(base, 'out'), quant: 'f16' });
    expectAgreement(r, 'f16');
    expect(r.check!.heldOut).toMatchObject({ source: 'validation', note: expect.stringContaining(`split "val-domain" of ${dataset}`) });
    const { heldOutText } = await import('../../../../src-main/export/gguf/held-out');
    const { LatheTokenizer } = await import('../../../../src-main/tokenizer/tokenizer');
    const held = await heldOutText(dataset, LatheTokenizer.fromDir(tok), tok);
    const text = held.text;
    expect(text.length).toBeGreaterThan(200);
    expect(text.split(/[\s.]+/).filter(Boolean).every((w) => words.includes(w))).toBe(true); // the corpus's words, decoded back
    // The base tokenizer did not make this dataset: the built-in paragraph, saying why.
    expect(await heldOutText(dataset, LatheTokenizer.fromDir(model), model)).toMatchObject({ source: 'built-in', note: expect.stringContaining('another tokenizer') });
    const g = await readGguf(r.file);
    const tokens = g.metadata.get('tokenizer.ggml.tokens')!.value as string[];
    const merges = g.metadata.get('tokenizer.ggml.merges')!.value as string[];
    for (const t of newTokens) expect(tokens[t.id]).toBe(t.token);
    const tj = JSON.parse(readFileSync(path.join(tok, 'tokenizer.json'), 'utf8')) as { model: { merges: Array<string | string[]> } };
    expect(merges.length).toBe(tj.model.merges.length);
    expect(g.metadata.get('tokenizer.ggml.pre')!.value).toBe('gpt-2');
    // The new tokens really occur in the held-out tokenization llama.cpp agreed with.
    const ids = (await LatheTokenizer.fromDir(tok).encode(text, { addSpecialTokens: false })).ids;
    expect(ids.some((id) => newTokens.some((t) => t.id === id))).toBe(true);
  });
});

async function probs(file: string, ids: number[]): Promise<Float32Array[]> {
  const g = await loadGguf(file);
  try {
    const vocab = (await readGguf(file)).tensors.find((t) => t.name === 'token_embd.weight')!.shape[0]!;
    return await llamaNextProbs(g, ids, vocab);
  } finally {
    await g.dispose();
  }
}

describe('GGUF export: faults and refusals', () => {
  afterEach(() => vi.restoreAllMocks());

  it('a file that fails the check is kept as *.failed.gguf with the reason, never under the real name', async () => {
    const { model, run, base } = await setup('llama');
    const out = path.join(base, 'out');
    // q rows of layer 0 left in Hugging Face's rotate-half order (a wrong permutation).
    const err = await exportGguf({ model, adapter: run, out, quant: 'f16', name: 'bad' }, {
      transformTensor: (n, d) => (n === 'blk.0.attn_q.weight' || n === 'blk.0.attn_k.weight' ? permuteRopeRows(d, n.includes('attn_q') ? 4 : 2, 64) : d),
    }).catch((e: unknown) => e as { code: string; message: string });
    expect((err as { code: string }).code).toBe('export.verify-failed');
    expect(existsSync(path.join(out, 'bad-F16.gguf'))).toBe(false);
    expect(existsSync(path.join(out, 'bad-F16.failed.gguf'))).toBe(true);
    expect(readFileSync(path.join(out, 'bad-F16.failed.txt'), 'utf8')).toMatch(/probabilities differ|greedy|perplexity/);
    expect(existsSync(path.join(out, 'Modelfile'))).toBe(false);
  });

  it('refuses an unsupported quant type, a SmolLM3 NoPE pattern or Gemma 2/3 llama.cpp cannot run, and an unknown pre-tokenizer, before writing', async () => {
    const { model, run, base } = await setup('smollm3'); // the tiny default: NoPE on layer 1
    const out = path.join(base, 'out');
    await expect(exportGguf({ model, adapter: run, out, quant: 'q3_k' as never })).rejects.toMatchObject({ code: 'gguf.quant-unsupported', hint: expect.stringContaining('q4_k_m') });
    await expect(exportGguf({ model, adapter: run, out, quant: 'f16' })).rejects.toMatchObject({ code: 'gguf.family-unsupported', message: expect.stringContaining('every 4th layer') });
    expect(existsSync(out)).toBe(false);

    // Gemma 2 as llama.cpp cannot run it: windows on the odd layers; no soft-caps (llama.cpp's gemma2 always caps).
    for (const [overrides, says] of [
      [{ layer_types: ['full_attention', 'sliding_attention'] }, 'window on layers 0; this model on 1'],
      [{ attn_logit_softcapping: null }, 'soft-cap'],
    ] as const) {
      const g = await setup('gemma2', overrides);
      const gOut = path.join(g.base, 'out');
      await expect(exportGguf({ model: g.model, adapter: g.run, out: gOut, quant: 'f16' })).rejects.toMatchObject({ code: 'gguf.family-unsupported', message: expect.stringContaining(says) });
      expect(existsSync(gOut)).toBe(false);
    }
    const g3 = await setup('gemma3'); // the tiny default: every 2nd layer global; llama.cpp's gemma3 has every 6th
    await expect(exportGguf({ model: g3.model, adapter: g3.run, out: path.join(g3.base, 'out'), quant: 'f16' })).rejects.toMatchObject({ code: 'gguf.family-unsupported', message: expect.stringContaining('window on layers 0, 1; this model on 0') });
    expect(existsSync(path.join(g3.base, 'out'))).toBe(false);
    const phi = await setup('phi3'); // the tiny Phi-3.5's 6-token window
    await expect(exportGguf({ model: phi.model, adapter: phi.run, out: path.join(phi.base, 'out'), quant: 'f16' })).rejects.toMatchObject({ code: 'gguf.family-unsupported', message: expect.stringContaining('6-token sliding window') });
    expect(existsSync(path.join(phi.base, 'out'))).toBe(false);

    const l = await setup('llama');
    const tj = JSON.parse(readFileSync(path.join(l.model, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    tj.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: '\\s+|\\p{P}' }, behavior: 'Isolated', invert: false }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] };
    const tokDir = path.join(l.base, 'tok');
    cpSync(l.model, tokDir, { recursive: true });
    writeFileSync(path.join(tokDir, 'tokenizer.json'), JSON.stringify(tj));
    const out2 = path.join(l.base, 'out');
    await expect(exportGguf({ model: l.model, adapter: l.run, out: out2, quant: 'f16', tokenizerDir: tokDir })).rejects.toMatchObject({ code: 'gguf.pre-tokenizer-unknown', hint: expect.stringContaining('llama-bpe') });
    expect(existsSync(out2)).toBe(false);
  });

  it('disk full: plain words, no temp file and no GGUF left', async () => {
    const { model, run, base } = await setup('llama');
    const out = path.join(base, 'out');
    const realOpen = fsp.open;
    vi.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
      const fh = await realOpen(...args);
      if (String(args[0]).endsWith('.tmp') && args[1] === 'w') {
        let writes = 0;
        const realWrite = fh.write.bind(fh) as (...a: unknown[]) => Promise<unknown>;
        (fh as unknown as { write: unknown }).write = async (...a: unknown[]) => {
          if (++writes > 3) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          return realWrite(...a);
        };
      }
      return fh;
    });
    await expect(exportGguf({ model, adapter: run, out, quant: 'q8_0' })).rejects.toMatchObject({ code: 'disk-full', hint: expect.stringContaining('Free some space') });
    expect(readdirSync(out)).toEqual([]);
    rmSync(base, { recursive: true, force: true });
  });
});
