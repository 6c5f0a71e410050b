/**
 * Issue 17's families (Granite 3, Mistral-Nemo, OLMo 2, Gemma 2, Gemma 3 text, Phi-3/3.5/Phi-4-mini): config
 * reading (defaults, layer patterns, longrope), refusals, `lathe model inspect`, and proof that each tiny
 * model's PyTorch fixture actually exercises the feature it is there for (turn the feature off in the
 * independent float64 reference and the fixture's logits no longer match).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTinyModel, describeArchitecture, openModel, parseModelConfig, ropeCosSin, type ModelConfig } from '../../../../src-main/engine/models';
import { ropeRows } from '../../../../src-main/engine/generate';
import { UserError } from '../../../../src-main/util/progress';
import { commands } from '../../../../src-main/cli/commands/model';
import { inspectModel } from '../../../../src-main/services/models';
import type { CliContext } from '../../../../src-main/cli/types';
import { fixturePath, readModelFixture, relativeError } from './fixture';
import { referenceForward } from './cpu-reference';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'lathe-families-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

const base = { hidden_size: 64, intermediate_size: 128, num_attention_heads: 4, num_key_value_heads: 2, vocab_size: 100 };

describe('config.json of the newer families', () => {
  it('Gemma 2: caps 50/30, (1 + w) sandwich norms, √C embeddings, every other layer windowed, head_dim 256 by default', () => {
    const c = parseModelConfig({ ...base, architectures: ['Gemma2ForCausalLM'], num_hidden_layers: 4, sliding_window: 4096, hidden_activation: 'gelu_pytorch_tanh' });
    expect(c).toMatchObject({ family: 'gemma2', attnSoftcap: 50, finalSoftcap: 30, normPlacement: 'sandwich', normUnitOffset: true,
      activation: 'gelu_pytorch_tanh', headDim: 256, tieWordEmbeddings: true, slidingWindow: 4096, localRope: null });
    expect(c.windowLayers).toEqual([true, false, true, false]);
    expect(c.embedScale).toBeCloseTo(8, 12);
    expect(c.attnScale).toBeCloseTo(1 / 16, 12); // query_pre_attn_scalar 256
    expect(parseModelConfig({ ...base, architectures: ['Gemma2ForCausalLM'], num_hidden_layers: 2, query_pre_attn_scalar: 144, attn_logit_softcapping: null }))
      .toMatchObject({ attnSoftcap: null, attnScale: 1 / 12 });
    expect(() => parseModelConfig({ ...base, architectures: ['Gemma2ForCausalLM'], num_hidden_layers: 2, hidden_activation: 'relu' })).toThrow(/hidden_activation/);
  });

  it('Gemma 3: 5 of every 6 layers local (own RoPE base, unscaled), global layers rope_theta with scaling, q/k norms; layer_types wins', () => {
    const raw = { ...base, architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', num_hidden_layers: 12, sliding_window: 512,
      rope_theta: 1e6, rope_local_base_freq: 1e4, rope_scaling: { rope_type: 'linear', factor: 8 } };
    const c = parseModelConfig(raw);
    expect(c).toMatchObject({ family: 'gemma3', qkNorm: true, qkNormScope: 'head', attnSoftcap: null, finalSoftcap: null,
      rope: { theta: 1e6, scaling: { type: 'linear', factor: 8 } }, localRope: { theta: 1e4, scaling: null } });
    expect(c.windowLayers.map((w, i) => (w ? -1 : i)).filter((i) => i >= 0)).toEqual([5, 11]);
    const listed = parseModelConfig({ ...raw, num_hidden_layers: 3, layer_types: ['full_attention', 'sliding_attention', 'full_attention'] });
    expect(listed.windowLayers).toEqual([false, true, false]);
    // transformers >= 4.57: RoPE per layer type under rope_parameters
    const v5 = parseModelConfig({ ...raw, rope_theta: undefined, rope_scaling: undefined, rope_local_base_freq: undefined, rope_parameters: {
      full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } });
    expect(v5.rope).toEqual({ theta: 1e6, scaling: { type: 'linear', factor: 8 } });
    expect(v5.localRope).toEqual({ theta: 1e4, scaling: null });
    // the multimodal Gemma 3 (4B+) is another architecture: refused, naming what is supported
    try {
      parseModelConfig({ architectures: ['Gemma3ForConditionalGeneration'], model_type: 'gemma3' });
      expect.unreachable();
    } catch (e) {
      expect((e as UserError).code).toBe('model-unsupported');
      expect((e as UserError).message).toContain('Gemma3ForConditionalGeneration');
      expect((e as UserError).hint).toMatch(/Gemma 3 text \(Gemma3ForCausalLM\)[\s\S]*Phi-3/);
    }
  });

  it('Phi-3.5 / Phi-4-mini: longrope factors and attention factor as HF computes them; partial rotary; bad factor lists named', () => {
    const factors = (n: number, f: number) => Array.from({ length: n }, (_, i) => 1 + f * i);
    const phi35 = parseModelConfig({ ...base, num_key_value_heads: 4, architectures: ['Phi3ForCausalLM'], num_hidden_layers: 2, max_position_embeddings: 131072,
      original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', short_factor: factors(8, 0.01), long_factor: factors(8, 1) } });
    // factor = 131072 / 4096 = 32: sqrt(1 + ln 32 / ln 4096)
    expect(phi35.rope!.scaling).toMatchObject({ type: 'longrope', originalMaxPositions: 4096, attentionFactor: Math.sqrt(1 + Math.log(32) / Math.log(4096)) });
    expect(phi35.rope!.rotaryDim).toBe(16);
    const short = ropeCosSin(phi35, phi35.rope!, [3], 4096).cos[1]!, long = ropeCosSin(phi35, phi35.rope!, [3], 4097).cos[1]!;
    const af = Math.sqrt(1 + Math.log(32) / Math.log(4096));
    expect(short).toBeCloseTo(Math.cos(3 / (1.01 * 10000 ** (2 / 16))) * af, 5);
    expect(long).toBeCloseTo(Math.cos(3 / (2 * 10000 ** (2 / 16))) * af, 5);
    // generation: the factors follow the last position of the step (HF's dynamic longrope)
    expect(ropeRows(phi35, phi35.rope!, [4095]).cos[1]).toBe(ropeCosSin(phi35, phi35.rope!, [4095], 4096).cos[1]);
    expect(ropeRows(phi35, phi35.rope!, [4096]).cos[1]).toBe(ropeCosSin(phi35, phi35.rope!, [4096], 4097).cos[1]);

    const phi4 = parseModelConfig({ ...base, architectures: ['Phi3ForCausalLM'], num_hidden_layers: 2, partial_rotary_factor: 0.75, tie_word_embeddings: true,
      max_position_embeddings: 131072, original_max_position_embeddings: 4096, rope_scaling: { type: 'longrope', short_factor: factors(6, 0), long_factor: factors(6, 1) } });
    expect(phi4).toMatchObject({ tieWordEmbeddings: true, rope: { rotaryDim: 12 } });
    const { cos, sin } = ropeCosSin(phi4, phi4.rope!, [5], 5);
    expect(Array.from(cos.subarray(12))).toEqual([1, 1, 1, 1]); // pass-through dims
    expect(Array.from(sin.subarray(12))).toEqual([0, 0, 0, 0]);
    expect(() => parseModelConfig({ ...base, architectures: ['Phi3ForCausalLM'], num_hidden_layers: 2, original_max_position_embeddings: 4096,
      rope_scaling: { type: 'longrope', short_factor: factors(7, 0), long_factor: factors(8, 1) } })).toThrow(/short_factor and long_factor of 8 numbers/);
    expect(() => parseModelConfig({ ...base, architectures: ['Phi3ForCausalLM'], num_hidden_layers: 2,
      rope_scaling: { type: 'su', short_factor: factors(8, 0), long_factor: factors(8, 1) } })).toThrow(/original_max_position_embeddings/);
  });

  it('OLMo 2 and Granite 3', () => {
    expect(parseModelConfig({ ...base, architectures: ['Olmo2ForCausalLM'], num_hidden_layers: 2 }))
      .toMatchObject({ family: 'olmo2', normPlacement: 'post', qkNorm: true, qkNormScope: 'all', normEps: 1e-5, normUnitOffset: false });
    expect(parseModelConfig({ ...base, architectures: ['GraniteForCausalLM'], num_hidden_layers: 2, embedding_multiplier: 12, residual_multiplier: 0.22,
      attention_multiplier: 0.015625, logits_scaling: 8 })).toMatchObject({ family: 'granite', embedScale: 12, residualScale: 0.22, attnScale: 0.015625, logitScale: 0.125 });
    expect(() => parseModelConfig({ ...base, architectures: ['GraniteForCausalLM'], num_hidden_layers: 2, logits_scaling: 0 })).toThrow(/logits_scaling.*positive/);
  });
});

describe('each new tiny model exercises its features: switched off, the float64 reference leaves the PyTorch logits', () => {
  const cases: [string, [string, (c: ModelConfig) => void][]][] = [
    ['granite', [['embedding multiplier', (c) => { c.embedScale = 1; }], ['attention multiplier', (c) => { c.attnScale = 0.25; }],
      ['residual multiplier', (c) => { c.residualScale = 1; }], ['logits scaling', (c) => { c.logitScale = 1; }]]],
    ['mistral-nemo', []],
    ['olmo2', [['post-norms', (c) => { c.normPlacement = 'pre'; }]]],
    ['gemma2', [['attention soft-cap', (c) => { c.attnSoftcap = null; }], ['final soft-cap', (c) => { c.finalSoftcap = null; }],
      ['sliding window', (c) => { c.slidingWindow = null; }], ['(1 + w) norms', (c) => { c.normUnitOffset = false; }],
      ['embedding scale', (c) => { c.embedScale = 1; }], ['query_pre_attn_scalar', (c) => { c.attnScale = 1 / Math.sqrt(32); }]]],
    ['gemma3', [['local RoPE', (c) => { c.localRope = null; }], ['global RoPE scaling', (c) => { c.rope = { ...c.rope!, scaling: null }; }],
      ['sliding window', (c) => { c.windowLayers = [false, false]; }]]],
    ['phi3', [['longrope', (c) => { c.rope = { ...c.rope!, scaling: null }; }], ['sliding window', (c) => { c.slidingWindow = null; }]]],
    ['phi4mini', [['longrope', (c) => { c.rope = { ...c.rope!, scaling: null }; }]]],
  ];
  it.each(cases)('%s', async (arch, toggles) => {
    const fx = readModelFixture(fixturePath(arch));
    const out = path.join(dir, arch);
    await createTinyModel(arch, out, { seed: fx.header.model.seed });
    const { config, layout, weights } = await openModel(out);
    try {
      const cache = new Map<string, Float32Array>();
      for (const n of weights.names()) cache.set(n, await weights.readF32(n));
      const W = (n: string): Float32Array => cache.get(n)!;
      const { batch: B, time: T } = fx.header;
      const ids = fx.i32('input_ids');
      expect(relativeError(referenceForward(config, layout, W, ids, B, T), fx.f32('logits_base'))).toBeLessThan(1e-5);
      for (const [what, off] of toggles) {
        const c = structuredClone(config);
        off(c);
        // (the OLMo 2 toggle moves the post-norms in front: same weights, pre-norm placement)
        const l = what === 'post-norms' ? { ...layout, layers: layout.layers.map((x) => ({ ...x, attnNorm: x.postAttnNorm, mlpNorm: x.postMlpNorm, postAttnNorm: null, postMlpNorm: null })) } : layout;
        const e = relativeError(referenceForward(c, l, W, ids, B, T), fx.f32('logits_base'));
        expect(e, `${arch} without ${what}`).toBeGreaterThan(1e-3);
      }
      if (arch === 'mistral-nemo') expect(config.headDim * config.numHeads).not.toBe(config.hiddenSize);
    } finally {
      await weights.close();
    }
  });
});

describe('lathe model inspect on the new families', () => {
  const cmd = (name: string) => commands.find((c) => c.path.join(' ') === `model ${name}`)!;
  const ctx = (args: string[], json: boolean): { c: CliContext; out: string[] } => {
    const out: string[] = [];
    return { c: { args, flags: {}, json, out: (t) => out.push(t), err: () => undefined, signal: new AbortController().signal }, out };
  };
  it.each([
    ['gemma2', 'Gemma2ForCausalLM', [/sliding-window attention \(4 tokens\) on 1 of 2 layers/, /attention logits soft-capped at 2/, /final logits soft-capped at 3/, /\(1 \+ w\)/, /4 per layer/, /GeGLU/, /embeddings × 8/]],
    ['gemma3', 'Gemma3ForCausalLM', [/θ=1000000 \(linear scaling, factor 8\) on global layers, θ=10000 on sliding-window layers/, /q\/k RMSNorm per head/]],
    ['phi3', 'Phi3ForCausalLM', [/longrope/, /fused qkv_proj and gate_up_proj/, /sliding-window attention \(6 tokens\) on every layer/]],
    ['phi4mini', 'Phi3ForCausalLM', [/partial rotary: 12 of 16 head dims rotate/]],
    ['olmo2', 'Olmo2ForCausalLM', [/norms after attention and MLP/, /q\/k RMSNorm over the whole projection/]],
    ['granite', 'GraniteForCausalLM', [/embeddings × 12/, /attention scores × 0.15 \(not 1\/√16\)/, /residual branches × 0.22/, /logits ÷ 8/]],
    ['mistral-nemo', 'MistralForCausalLM', [/head dim 32 ≠ hidden 64 \/ 4 heads/]],
  ] as const)('%s: says what it is', async (arch, architecture, facts) => {
    const out = path.join(dir, `inspect-${arch}`);
    await createTinyModel(arch, out);
    const r = await cmd('inspect').run(ctx([out], true).c) as { architecture: string; features: string[]; ok: boolean };
    expect(r).toMatchObject({ architecture, ok: true });
    const human = ctx([out], false);
    await cmd('inspect').run(human.c);
    const text = human.out.join('\n');
    for (const f of facts) {
      expect(r.features.join('\n')).toMatch(f);
      expect(text).toMatch(f);
    }
    expect(describeArchitecture(parseModelConfig({ ...base, architectures: ['LlamaForCausalLM'], num_hidden_layers: 2 }))).toEqual([]);
    // the app's model summary carries the same facts
    expect((await inspectModel(out)).features).toEqual(r.features);
  });
});
