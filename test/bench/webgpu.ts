/**
 * GPU-backend bench (src-main/engine/backends/webgpu): dispatches per train step and GPU bytes allocated
 * by the static buffer plan, by kind (weights in their stored type, constants, state = LoRA params + AdamW
 * moments + gradient accumulator, state outputs, activations/temporaries).
 *   tiny-llama:   the tiny llama test model, B2×T32, LoRA r8 all-linear: planned, then run on the adapter
 *                 found (lavapipe on machines without a GPU: its step time measures lavapipe, not a GPU).
 *   real shapes:  SmolLM2-135M, Qwen2.5-0.5B, Llama-3.2-1B (bf16 weights kept bf16), Llama-3.1-8B QLoRA
 *                 (NF4 codes + scales, dequantized in the GEMM), B1×T2048, LoRA r16 all-linear, each also
 *                 planned under WebGPU's default 128 MiB binding limit (weights split): the plan only (no device, no weights read: the graph references a file that
 *                 need not exist), so these rows are what the backend WOULD allocate as it is today.
 * f16 compute rows: the fused graph with `compute: 'float16'` (f16 weights), planned with and without shader-f16;
 * bf16 compute rows: the same graph over the bf16 weights in place, planned with `halfType: 'bfloat16'`.
 * Each shape twice: `graph: decomposed` (the ONNX path's graph: attention through [G·T, T] scores, the loss
 * and norm backwards as IR ops) and `graph: fused` (what the trainer builds for this backend: flash
 * attention, the lm_head GEMM + cross-entropy by vocabulary chunks, fused norm backwards; graph/ops/fused.ts),
 * and `graph: fused + recompute` (the same with activation recomputation per decoder block).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNewRows, buildLoraLayout, initLoraParams } from '../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../src-main/engine/llm/train-graph';
import { createTinyModel, openModel, parseModelConfig, weightsLayout, type ModelConfig } from '../../src-main/engine/models';
import type { ModelWeights } from '../../src-main/engine/safetensors';
import { adamwScalars } from '../../src-main/engine/nn/layers';
import { hostTensor } from '../../src-main/engine/runtime/tensor';
import { GpuProgram, closeGpu, planGraph, type Plan } from '../../src-main/engine/backends/webgpu';
import { buildStepGraph } from '../../src-main/engine/generate/graph';
import type { CachedNf4, WeightCache } from '../../src-main/engine/weights/cache';
import { pagedSlots } from '../../src-main/engine/memory/paged';
import { buildPreferenceTrainGraph, type PreferenceLoss } from '../../src-main/engine/llm/preference-graph';

const DPO: PreferenceLoss = { method: 'dpo', beta: 0.1, loss: 'sigmoid', labelSmoothing: 0, orpoLambda: 0 };
const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const GiB = 2 ** 30, MiB = 2 ** 20;

/** HF configs of the published models (the fields that matter; as in test/unit/engine/models/real-configs.test.ts). */
export const REAL_SHAPES: Record<string, Record<string, unknown>> = {
  'SmolLM2-135M': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 30,
    num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 49152, max_position_embeddings: 8192, rms_norm_eps: 1e-5,
    rope_theta: 100000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'bfloat16' },
  'Qwen2.5-0.5B': {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', hidden_size: 896, intermediate_size: 4864, num_hidden_layers: 24,
    num_attention_heads: 14, num_key_value_heads: 2, vocab_size: 151936, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
    rope_theta: 1000000.0, sliding_window: 32768, use_sliding_window: false, max_window_layers: 21, tie_word_embeddings: true,
    hidden_act: 'silu', torch_dtype: 'bfloat16' },
  'Llama-3.2-1B': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 2048, intermediate_size: 8192, num_hidden_layers: 16,
    num_attention_heads: 32, num_key_value_heads: 8, head_dim: 64, vocab_size: 128256, max_position_embeddings: 131072,
    rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: true, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    torch_dtype: 'bfloat16' },
  'Llama-3.1-8B': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
    num_attention_heads: 32, num_key_value_heads: 8, vocab_size: 128256, max_position_embeddings: 131072, rms_norm_eps: 1e-5,
    rope_theta: 500000, tie_word_embeddings: false, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    rope_scaling: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
    torch_dtype: 'bfloat16' },
};

/** Models benched as QLoRA (NF4 base linear layers; embeddings, norms and lm_head stay bf16). */
const QLORA = new Set(['Llama-3.1-8B']);

/**
 * A weight cache that only knows sizes: NF4 codes "stored" in a file nobody reads (the plan needs their
 * byte counts only; nothing is quantized).
 */
export function layoutOnlyNf4CacheForTest(cfg: ModelConfig): WeightCache { return layoutOnlyNf4Cache(cfg); }
function layoutOnlyNf4Cache(cfg: ModelConfig): WeightCache {
  const shapes = weightsLayout(cfg).shapes;
  const nf4 = async (name: string): Promise<CachedNf4> => {
    const shape = shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1), nb = Math.ceil(n / 64), nb2 = Math.ceil(nb / 256);
    const at = (length: number) => ({ location: 'nonexistent.nf4', offset: 0, length });
    return { shape, n, nb, nb2, codes: at(nb * 32), absCodes: at(nb), scale2: new Float32Array(nb2), offset: 0 };
  };
  // (f16 compute: the weights that stay unquantized, referenced in the cache as f16)
  const stored = (name: string) => ({ location: 'nonexistent.bin', offset: 0, length: 2 * shapes.get(name)!.reduce((a, b) => a * b, 1) });
  return { nf4, stored } as unknown as WeightCache;
}

/** Weights that exist only as a layout: bf16 (or `dtype`) entries pointing into a file nobody reads (the plan needs shapes only). */
export function layoutOnlyWeights(cfg: ModelConfig, dtype: 'BF16' | 'F16' = 'BF16'): ModelWeights {
  const shapes = weightsLayout(cfg).shapes;
  return {
    entry: (name: string) => {
      const shape = shapes.get(name);
      if (!shape) throw new Error(`no weight ${name}`);
      return { name, dtype, shape, fileOffset: 0, byteLength: 2 * shape.reduce((a, b) => a * b, 1), file: '/nonexistent/model.safetensors' };
    },
  } as unknown as ModelWeights;
}

function row(name: string, shape: string, plan: Plan, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const b = plan.bytes;
  const gib = (x: number) => (x / GiB).toFixed(3);
  const largest = Math.max(...plan.buffers.map((x) => x.bytes));
  return {
    model: name, shape, nodes: plan.nodes, dispatches: plan.dispatches.length,
    'weights GiB': gib(b.weight), 'consts GiB': gib(b.const), 'state GiB': gib(b.state + b.output), 'activations GiB': gib(b.temp + b.input),
    'total GiB': gib(Object.values(b).reduce((p, q) => p + q, 0)), 'largest buffer MiB': (largest / MiB).toFixed(1),
    'buffers > 1 GiB': plan.buffers.filter((x) => x.bytes > GiB).length, ...extra,
  };
}

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  // tiny model: planned and run
  const dir = join(mkdtempSync(join(tmpdir(), 'lathe-gpu-bench-')), 'llama');
  await createTinyModel('llama', dir, { seed: 1 });
  const { config, layout, weights } = await openModel(dir);
  const lora = buildLoraLayout(config, layout, { rank: 8, alpha: 16, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
  const B = 2, T = 32, N = B * T, P = lora.size;
  const tg = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T, fused: true }, optim);
  const decomposed = await buildTrainGraph(config, layout, { weights, dir }, lora, { batch: B, seqLen: T }, optim);
  const planOf = (t: typeof tg) => planGraph(t.graph, { outputs: [...t.fetch, ...t.state.map((s) => s.output)], state: t.state.map((s) => s.input) });
  report(row('tiny llama (plan)', `B${B}×T${T}`, planOf(decomposed), { graph: 'decomposed' }));
  try {
    const prog = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir });
    const z = () => hostTensor('float32', [P], new Float32Array(P));
    await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 1)), m: z(), v: z(), gacc: z() });
    const ids = new BigInt64Array(N).map((_, i) => BigInt(3 + ((i * 5) % 40)));
    const feeds = {
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], ids), mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
      apply: hostTensor('bool', [], new Uint8Array([1])), invCount: hostTensor('float32', [], new Float32Array([1 / N])),
      adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, 1))),
    };
    await prog.step(feeds); // warm-up
    const t0 = performance.now();
    const steps = 5;
    for (let s = 0; s < steps; s++) await prog.step(feeds);
    const ms = (performance.now() - t0) / steps;
    report(row('tiny llama (run)', `B${B}×T${T}`, prog.plan, { graph: 'fused', 'step ms': ms.toFixed(1), pipelines: prog.info.pipelines }));
    await prog.dispose();
  } catch (e) {
    report(row('tiny llama (plan only)', `B${B}×T${T}`, planOf(tg), { graph: 'fused', 'not run': (e as Error).message.split('\n')[0] }));
  } finally {
    await weights.close();
    await closeGpu();
  }

  // real shapes: the plan only
  for (const [name, hf] of Object.entries(REAL_SHAPES)) {
    const cfg = parseModelConfig(hf);
    const lay = weightsLayout(cfg);
    const lr = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    const qlora = QLORA.has(name);
    const src = { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true, ...(qlora ? { quantize: 'nf4' as const, cache: layoutOnlyNf4Cache(cfg) } : {}) };
    const label = `${name}${qlora ? ' QLoRA' : ''}`;
    // recompute: activation recomputation per decoder block (train-graph.ts recomputedGradient)
    for (const [fused, recompute] of [[false, false], [true, false], [true, true]] as const) {
      const g = await buildTrainGraph(cfg, lay, src, lr, { batch: 1, seqLen: 2048, fused, recompute }, optim);
      const opts = { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) };
      const plan = planGraph(g.graph, opts);
      const graph = fused ? (recompute ? 'fused + recompute' : 'fused') : 'decomposed';
      report(row(label, 'B1×T2048', plan, { graph, 'LoRA params': lr.size, 'AdamWStep dispatches': plan.byKernel.AdamWStep ?? 0, 'Nf4Gemm dispatches': plan.byKernel.Nf4Gemm ?? 0 }));
      if (!fused) continue;
      // the paged optimizer: m and v in host upload buffers, copied into the pool before the optimizer
      const ps = pagedSlots(g);
      const paged = planGraph(g.graph, { outputs: [...ps.fetch, ...ps.state.map((s) => s.output)], state: ps.state.map((s) => s.input), late: ps.hostInputs });
      const total = (x: Plan) => Object.values(x.bytes).reduce((p, q) => p + q, 0);
      report({ model: label, shape: 'B1×T2048, fused, paged optimizer', 'total GiB': (total(paged) / GiB).toFixed(3), 'GPU MiB saved': ((total(plan) - total(paged)) / MiB).toFixed(1), '2·4P MiB': (8 * lr.size / MiB).toFixed(1) });
      // grouped GEMM dispatches (backends/webgpu/group.ts, on by default): GEMM dispatches per layer, one per GEMM
      // (noGrouping) and grouped under WebGPU's default 8 storage buffers a shader (the plan above) and under 16 (most GPUs)
      const perLayer = (p: Plan) => (Object.entries(p.byKernel).filter(([k]) => /Gemm|MatMul/.test(k)).reduce((a, [, n]) => a + n, 0) / cfg.numLayers).toFixed(1);
      const off = planGraph(g.graph, { ...opts, noGrouping: true }), g8 = plan, wide = planGraph(g.graph, { ...opts, maxStorageBuffers: 16 });
      report({ model: label, shape: 'B1×T2048, fused, GEMM groups', 'GEMM dispatches/layer ungrouped': perLayer(off), 'grouped (8 bindings)': perLayer(g8),
        'grouped (16 bindings)': perLayer(wide), 'dispatches ungrouped / 8 / 16': `${off.dispatches.length} / ${g8.dispatches.length} / ${wide.dispatches.length}`,
        'activations GiB ungrouped / 8 / 16': [off, g8, wide].map((p) => ((p.bytes.temp + p.bytes.input) / GiB).toFixed(3)).join(' / ') });
      // WebGPU's default 128 MiB binding limit: weights above it are split into row blocks (the embedding, lm_head)
      const limit = 128 * MiB;
      const split = planGraph(g.graph, { ...opts, maxBinding: limit });
      const parts = split.buffers.filter((b) => / \[part \d+\/\d+\]$/.test(b.label));
      report({ model: label, shape: `B1×T2048, 128 MiB bindings, ${graph}`, 'weight parts': parts.length, 'split weights': new Set(parts.map((b) => b.label.replace(/ \[part.*$/, ''))).size,
        'activations over the limit': split.buffers.filter((b) => b.bytes > limit && b.kind === 'temp').length,
        // the flat LoRA vectors (params, m, v, gacc: P f32 each, and AdamW's outputs) are state, not activations
        'state over the limit': split.buffers.filter((b) => b.bytes > limit && (b.kind === 'state' || b.kind === 'output')).length, dispatches: split.dispatches.length });
    }
    // generation on the backend (generate/gpu-step.ts): the decode (Tc 1) and prefill (Tc 128) programs, cache S 2048
    for (const chunk of [1, 128]) {
      const sg = await buildStepGraph(cfg, lay, src, lr, { chunk, capacity: 2048, gpu: true });
      const plan = planGraph(sg.graph, { outputs: ['logits', ...sg.cache.map((c) => c.output), 'params_out'], state: [...sg.cache.map((c) => c.input), 'params'] });
      report(row(label, `generate Tc${chunk}, S2048`, plan, { graph: chunk === 1 ? 'decode' : 'prefill', 'cache + adapter GiB': (plan.bytes.state / GiB).toFixed(3) }));
    }
    // an extended tokenizer: 3 trainable new-token rows (one re-using id 7, two past the vocabulary), fused +
    // recompute: the loss combines the frozen head's LinearCrossEntropy with the rows' [N, 3] logits (no [N, V + 3])
    {
      const V = cfg.vocabSize;
      const g = await buildTrainGraph(cfg, lay, src, addNewRows(lr, cfg, [7, V, V + 1]), { batch: 1, seqLen: 2048, fused: true, recompute: true }, optim);
      const plan = planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) });
      report(row(label, 'B1×T2048, 3 new-token rows', plan, { graph: 'fused + recompute' }));
    }
    // preference tuning (DPO: policy + reference forward), one pair = 2 rows of 1024 tokens, decomposed vs fused
    if (qlora) continue;
    for (const fused of [false, true]) {
      const g = await buildPreferenceTrainGraph(cfg, lay, src, lr, { pairs: 1, seqLen: 1024, fused }, DPO, optim);
      const plan = planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) });
      report(row(label, 'DPO 1 pair × T1024', plan, { graph: fused ? 'fused' : 'decomposed' }));
    }
  }

  // f16 compute (fused graph; f16 weights, f16 activations, f32 LoRA masters and AdamW): the plan on a device
  // with shader-f16 (array<f16> activations) and without it (f16r: f32 words holding f16 values)
  for (const [name, hf] of Object.entries(REAL_SHAPES)) {
    const cfg = parseModelConfig(hf);
    const lay = weightsLayout(cfg);
    const lr = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    // (QLoRA: f16 activations over the NF4 base weights)
    const qlora = QLORA.has(name) ? { quantize: 'nf4' as const, cache: layoutOnlyNf4Cache(cfg) } : {};
    const g = await buildTrainGraph(cfg, lay, { weights: layoutOnlyWeights(cfg, 'F16'), dir: '/nonexistent', compute: 'float16', ...qlora }, lr, { batch: 1, seqLen: 2048, fused: true }, optim);
    const opts = { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) };
    for (const shaderF16 of [true, false]) {
      report(row(`${name}${QLORA.has(name) ? ' QLoRA' : ''}`, 'B1×T2048', planGraph(g.graph, { ...opts, shaderF16 }), { graph: `fused, f16 compute (${shaderF16 ? 'array<f16>' : 'f16r: no shader-f16'})`, 'LoRA params': lr.size }));
    }
    // bf16 compute: the same f16-compute graph over the bf16 weights read in place, its float16 values planned as bf16
    const gb = await buildTrainGraph(cfg, lay, { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', compute: 'float16', bf16InPlace: true, bf16Compute: true, ...qlora }, lr, { batch: 1, seqLen: 2048, fused: true }, optim);
    const bopts = { outputs: [...gb.fetch, ...gb.state.map((s) => s.output)], state: gb.state.map((s) => s.input), shaderF16: true, halfType: 'bfloat16' as const };
    report(row(`${name}${QLORA.has(name) ? ' QLoRA' : ''}`, 'B1×T2048', planGraph(gb.graph, bopts), { graph: 'fused, bf16 compute (bf16 bits in array<f16>)', 'LoRA params': lr.size }));
  }
  await likeForLike(report);
}

/**
 * Plans at a published PyTorch run's settings, for a like-for-like memory row (issue 18 item 7):
 *   Llama-3.1-8B QLoRA at torchtune's llama3_1/8B_qlora_single_device config (batch 2 × 2048 packed tokens,
 *   LoRA r8 α16 on q, k, v, o + the MLP = all-linear, no lm_head LoRA, activation checkpointing, chunked CE):
 *   fused + recompute, f32 and f16 compute (f16 activations over the NF4 weights);
 *   Llama-3.2-1B B1×T2048 r16 all-linear, fused + recompute, f32, f16 and bf16 compute (16-bit activations in array<f16> slots).
 * torchtune keeps its activations, LoRA weights and AdamW states in bf16; ours are f32 except f16 activations.
 * torchtune's README gives its figures "without gradient accumulation": planned as the trainer builds gradAccum = 1
 * (no gradient accumulator state, train-graph.ts `accumulate`); the accumulating graph's total beside it.
 */
export async function likeForLike(report: (row: Record<string, unknown>) => void): Promise<void> {
  const runs: { name: string; batch: number; rank: number; seqLen?: number; peer?: string }[] = [
    { name: 'Llama-3.1-8B', batch: 2, rank: 8 },
    { name: 'Llama-3.2-1B', batch: 1, rank: 16 },
    // Unsloth's published context-length table (docs.unsloth.ai "Unsloth Benchmarks": Llama 3.1 8B Instruct, 4-bit
    // QLoRA on all linear layers, r32, batch 1): the longest sequence that fit a GPU of 8 / 12 / 16 GB, for Unsloth and
    // for Hugging Face + FA2 (PyTorch + PEFT + bitsandbytes)
    { name: 'Llama-3.1-8B', batch: 1, rank: 32, seqLen: 932, peer: 'HF+FA2 fits 932 tokens in 12 GB (OOM in 8 GB)' },
    { name: 'Llama-3.1-8B', batch: 1, rank: 32, seqLen: 2551, peer: 'HF+FA2 fits 2,551 tokens in 16 GB' },
    { name: 'Llama-3.1-8B', batch: 1, rank: 32, seqLen: 2972, peer: 'Unsloth fits 2,972 tokens in 8 GB' },
  ];
  for (const r of runs) {
    const T = r.seqLen ?? 2048;
    const cfg = parseModelConfig(REAL_SHAPES[r.name]!);
    const lay = weightsLayout(cfg);
    const lr = buildLoraLayout(cfg, lay, { rank: r.rank, alpha: 2 * r.rank, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    const qlora = QLORA.has(r.name);
    for (const kind of ['float32', 'float16', 'bfloat16'] as const) {
      // f16 compute: the trainer's weight cache holds the bf16 weights converted to f16 (same bytes): planned as F16 files;
      // bf16 compute: the f16-compute graph over the bf16 weights in place, planned with halfType bfloat16
      const compute = kind === 'float32' ? 'float32' as const : 'float16' as const;
      const lw = layoutOnlyWeights(cfg);
      const weights: ModelWeights = kind === 'float16' ? Object.assign(Object.create(lw) as ModelWeights, { entry: (n: string) => ({ ...lw.entry(n), dtype: 'F16' as const }) }) : lw;
      const src = { weights, dir: '/nonexistent', bf16InPlace: true, compute, bf16Compute: kind === 'bfloat16', ...(qlora ? { quantize: 'nf4' as const, cache: layoutOnlyNf4Cache(cfg) } : {}) };
      const g = await buildTrainGraph(cfg, lay, src, lr, { batch: r.batch, seqLen: T, fused: true, recompute: true, accumulate: false }, optim);
      const half = kind === 'bfloat16' ? { halfType: kind } : {};
      const plan = planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input), shaderF16: true, ...half });
      // gradAccum > 1: the same step with the gradient accumulator (gacc state)
      const ga = await buildTrainGraph(cfg, lay, src, lr, { batch: r.batch, seqLen: T, fused: true, recompute: true }, optim);
      const withAcc = planGraph(ga.graph, { outputs: [...ga.fetch, ...ga.state.map((s) => s.output)], state: ga.state.map((s) => s.input), shaderF16: true, ...half });
      // the paged optimizer (m, v on the host, in dead activations' buffers on the GPU from the optimizer on)
      const ps = pagedSlots(g);
      const paged = planGraph(g.graph, { outputs: [...ps.fetch, ...ps.state.map((s) => s.output)], state: ps.state.map((s) => s.input), late: ps.hostInputs, shaderF16: true, ...half });
      report(row(`${r.name}${qlora ? ' QLoRA' : ''} (like-for-like)`, `B${r.batch}×T${T}, r${r.rank} all-linear`, plan,
        { graph: `fused + recompute, ${{ float32: 'f32', float16: 'f16', bfloat16: 'bf16' }[kind]} compute`, 'LoRA params': lr.size,
          'total GiB, paged optimizer': (Object.values(paged.bytes).reduce((p, q) => p + q, 0) / GiB).toFixed(3),
          'total GiB with an accumulator (gradAccum > 1)': (Object.values(withAcc.bytes).reduce((p, q) => p + q, 0) / GiB).toFixed(3), ...(r.peer ? { 'published peer': r.peer } : {}) }));
    }
  }
}
