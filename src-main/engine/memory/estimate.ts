/**
 * Memory needed by one LoRA/QLoRA training run, before it starts: a pure function of the model config,
 * the training settings and the execution provider. Used by the configuration wizard (warn before a
 * run that will not fit, and say what to change) and after an out-of-memory error (memory/oom.ts).
 *
 * What the engine holds (src-main/engine/llm, backends/onnx/program.ts), in bytes:
 *   weights     base weights as the device holds them: f32 (F16/BF16 files are widened: the graph computes
 *               in f32), or NF4 for the linear layers (4.127 bits/parameter: codes + double-quantized
 *               absmax) with norms, embeddings and lm_head still f32;
 *   adapters    LoRA A/B as one flat f32 vector (+ its next-step copy, since each step writes a new buffer);
 *   optimizer   AdamW m and v, each f32 [P], in and out of a step, and the gradient; with gradient
 *               accumulation (gradAccum > 1) also the accumulator in and out (llm/train-graph.ts: a run
 *               without accumulation has none); with paged optimizer states m and v live in host memory and
 *               only pass through the device;
 *   activations forward values kept for the backward pass (counted per layer from the graph forward.ts
 *               builds), the logits and cross-entropy tensors, and one layer's backward temporaries;
 *               with recomputation (train config `recompute`, engine/llm/train-graph.ts) one [N, C] block
 *               input per layer is kept plus one layer's full set;
 *   workspace   the runtime itself: for the CPU EP the whole process (Node, onnxruntime, the graph; no
 *               pre-packed weight copies: sessions disable them); for GPU EPs the EP's own buffers; and the
 *               NF4 dequantization transients (one f32 weight at a time).
 * The constants marked "measured" were fitted on this project's CPU-EP runs (test/bench/memory.ts checks
 * the total against peak RSS on other configurations).
 *
 * Dimension letters: B batch, T sequence, N = B·T, C hidden, F MLP size, H/K heads/kv heads, D head dim,
 * V vocab, L layers, r LoRA rank, P LoRA parameters.
 */
import type { ModelConfig } from '../models/config';

export type MemoryEp = 'cpu' | 'webgpu' | 'cuda';

/** The training settings the estimate depends on (a subset of TrainConfig plus the block length). */
export interface MemoryPlan {
  batchSize: number;
  /** Tokens per block (the dataset's block size). */
  seqLen: number;
  lora: { rank: number; targets: 'attention' | 'mlp' | 'all-linear' | readonly string[] };
  /** 'nf4' = QLoRA. */
  quantization?: 'none' | 'nf4';
  /** AdamW moments kept in host memory (optim/paged.ts). */
  pagedOptimizer?: boolean;
  /** Activation recomputation (train config `recompute`). */
  recompute?: boolean;
  /** Micro-batches per optimizer step (train config `gradAccum`, default 1): above 1 the graph holds a gradient accumulator. */
  gradAccum?: number;
}

export interface MemoryBreakdown {
  weights: number;
  adapters: number;
  optimizer: number;
  activations: number;
  workspace: number;
}

export interface MemoryEstimate {
  ep: MemoryEp;
  /** Bytes on the compute device (for the CPU EP: process memory). */
  device: MemoryBreakdown;
  deviceTotal: number;
  /** Host memory beyond the device (GPU EPs: paged optimizer states, weights read while loading). */
  host: number;
  /** The same run's activations with and without recomputation, for comparison. */
  activationsWithRecompute: number;
  activationsWithoutRecompute: number;
  /** Parameters: base linear (quantizable), other base, LoRA. */
  params: { linear: number; other: number; lora: number };
  plan: Required<MemoryPlan>;
  /** The model it was made for (suggestFit re-estimates with changed settings). */
  model: ModelConfig;
}

const F32 = 4;
/** NF4 bytes per parameter: 4 bits + 8-bit absmax per 64 + f32 scale per 64·256 (quant/nf4.ts). */
export const NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256);
/** Runtime floor of a CPU-EP training process: Node + onnxruntime + a tiny graph (measured, Linux x64). */
const CPU_RUNTIME_BYTES = 144 * 2 ** 20;
/** A GPU EP's own allocations beyond the tensors (shader/pipeline caches, staging): measured on lavapipe. */
const GPU_RUNTIME_BYTES = 64 * 2 ** 20;

type Role = 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'down' | 'gate_up';
const PRESETS: Record<string, Role[]> = {
  attention: ['q', 'k', 'v', 'qkv', 'o'],
  mlp: ['gate', 'up', 'down', 'gate_up'],
  'all-linear': ['q', 'k', 'v', 'qkv', 'o', 'gate', 'up', 'down', 'gate_up'],
};

/** The linear layers of one decoder layer as [role, in, out]. */
function linears(m: ModelConfig): [Role, number, number][] {
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F } = m;
  const fused = m.family === 'gpt2' || m.family === 'phi3'; // one q|k|v projection (Phi-3 also one gate|up)
  const attn: [Role, number, number][] = fused
    ? [['qkv', C, H * D + 2 * K * D], ['o', H * D, C]]
    : [['q', C, H * D], ['k', C, K * D], ['v', C, K * D], ['o', H * D, C]];
  const mlp: [Role, number, number][] = m.family === 'phi3' ? [['gate_up', C, 2 * F], ['down', F, C]]
    : m.gatedMlp ? [['gate', C, F], ['up', C, F], ['down', F, C]] : [['up', C, F], ['down', F, C]];
  return [...attn, ...mlp];
}

/** Parameters: linear layers (what NF4 quantizes), the rest (embeddings, head, norms, biases), LoRA. */
export function countParams(m: ModelConfig, plan: Pick<MemoryPlan, 'lora'>): MemoryEstimate['params'] {
  const roles = new Set<string>(typeof plan.lora.targets === 'string' ? PRESETS[plan.lora.targets] ?? [] : plan.lora.targets);
  let linear = 0, lora = 0;
  for (const [role, i, o] of linears(m)) {
    linear += i * o;
    if (roles.has(role)) lora += plan.lora.rank * (i + o);
  }
  const C = m.hiddenSize;
  const embed = m.vocabSize * C * (m.tieWordEmbeddings ? 1 : 2) + (m.positions === 'learned' ? m.maxPositions * C : 0);
  const perLayer = m.normPlacement === 'sandwich' ? 4 : 2;
  const qk = !m.qkNorm ? 0 : m.qkNormScope === 'all' ? (m.numHeads + m.numKvHeads) * m.headDim : 2 * m.headDim;
  const norms = (perLayer * m.numLayers + 1) * C * (m.norm === 'layer' ? 2 : 1) + qk * m.numLayers;
  return { linear: linear * m.numLayers, other: embed + norms, lora: lora * m.numLayers };
}

/**
 * f32 values per token that one layer keeps for the backward pass, counted from forward.ts's graph:
 * 8·C (norms, residuals, o and down outputs), 9·H·D (q with its LoRA sum, transposes, RoPE terms,
 * attention output), 10·K·D (k, v likewise), 7·F (gate/up with LoRA sums, activation, product), and
 * 4·H·T attention scores (scores, scaled, masked, softmax); Gemma's extra norms and soft-capping on top
 * (counted, not measured).
 */
function layerFloatsPerToken(m: ModelConfig, T: number): number {
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: F } = m;
  const mlp = m.gatedMlp ? 7 * F : 5 * F;
  const rope = m.rope ? 0 : -4 * (H * D + K * D); // no RoPE terms for GPT-2
  // Gemma: two more norm outputs per layer; soft-capping keeps 3 more score tensors (÷cap, tanh, ×cap)
  const extra = (m.normPlacement === 'pre' ? 0 : 2 * C) + (m.attnSoftcap !== null ? 3 * H * T : 0);
  return 8 * C + 9 * H * D + 10 * K * D + mlp + 4 * H * T + rope + (m.qkNorm ? 2 * (H * D + K * D) : 0) + extra;
}

/**
 * Share of the counted per-layer values alive at the peak (onnxruntime's planner frees and reuses buffers
 * as the backward pass walks down the layers), and logits-sized f32 tensors alive at the peak (logits,
 * their exponentials, the softmax gradient, ...): fitted on the real-size CPU-EP runs of test/bench/realsize.ts
 * (SmolLM2-135M and Qwen2.5-0.5B shapes; checked on Llama-3.2-1B, BENCHMARKS.md "Real-size models").
 */
const LAYER_LIVE = 0.31;
const HEAD_LIVE = 4.8;

function activationBytes(m: ModelConfig, B: number, T: number, recompute: boolean): number {
  const N = B * T;
  const perLayer = layerFloatsPerToken(m, T) * N * F32;
  const head = HEAD_LIVE * N * m.vocabSize * F32;
  // kept for the backward pass, plus one layer's backward temporaries on top; with recomputation only
  // each block's input [N, C] is kept, and one block is rebuilt at a time
  return recompute
    ? m.numLayers * N * m.hiddenSize * F32 + LAYER_LIVE * 2 * perLayer + head
    : LAYER_LIVE * (m.numLayers + 1) * perLayer + head;
}

/** Memory for a run. Pure: same inputs, same numbers. */
export function estimateMemory(model: ModelConfig, plan: MemoryPlan, ep: MemoryEp): MemoryEstimate {
  const full: Required<MemoryPlan> = {
    quantization: 'none', pagedOptimizer: false, recompute: false, gradAccum: 1, ...plan,
  };
  const params = countParams(model, full);
  const nf4 = full.quantization === 'nf4';
  // CPU EP: weights are mapped external-data files and only touched pages count; an untied embedding is
  // only gathered (a few rows per step), so it costs next to nothing (measured: Llama-3.1-8B-shaped QLoRA)
  const untouched = ep === 'cpu' && !model.tieWordEmbeddings ? model.vocabSize * model.hiddenSize * F32 : 0;
  const weights = (nf4 ? params.linear * NF4_BYTES_PER_PARAM : params.linear * F32) + params.other * F32 - untouched;
  const P = params.lora;
  // params in + out of a step, the gradient, the accumulator in + out (only when micro-batches accumulate)
  const adapters = 2 * P * F32;
  const moments = 4 * P * F32; // m, v in and out
  const accum = (full.gradAccum > 1 ? 3 : 1) * P * F32; // gradient (+ accumulator in and out)
  const paged = full.pagedOptimizer;
  // paged: m, v only pass through the device during a step; on the CPU EP host and device are one
  // memory, so paging adds the host copies instead of saving anything
  const optimizer = accum + (!paged ? moments : ep === 'cpu' ? moments + 2 * P * F32 : 2 * P * F32);
  const withR = activationBytes(model, full.batchSize, full.seqLen, true);
  const withoutR = activationBytes(model, full.batchSize, full.seqLen, false);
  const activations = full.recompute ? withR : withoutR;
  // NF4 dequantization transients. GPU EPs: the largest f32 weight, twice (forward and backward may
  // overlap). CPU EP: fitted on five measured runs (docs/qlora-memory.md): the codes are held twice while
  // the session loads (model bytes + initializer), and the arena keeps slack from the per-weight
  // f32/int32 temporaries: 8 MB + 0.45 × the f32 size of the linear weights + 0.1 × activations. Without the
  // CPU arena (backends/onnx/session.ts) the temporaries are freed weight by weight, so that term stops growing with
  // depth: at most 4 × the largest f32 linear weight (the full 32-layer Llama-3.1-8B shape measured 7,878 MB
  // against 18,974 estimated with the old term; 2 layers: 3,424 vs 3,377 — BENCHMARKS.md "realsize").
  const maxLinear = Math.max(...linears(model).map(([, i, o]) => i * o));
  const withoutRecompute = activationBytes(model, full.batchSize, full.seqLen, false);
  const dequant = !nf4 ? 0 : ep === 'cpu'
    ? 8 * 2 ** 20 + Math.min(0.45 * params.linear, 4 * maxLinear) * F32 + 0.1 * withoutRecompute
    : 2 * maxLinear * F32;
  // CPU EP sessions run without MLAS's pre-packed weight copies (backends/onnx/session.ts): the weights are
  // counted once, as the mapped external-data pages they are
  const workspace = (ep === 'cpu' ? CPU_RUNTIME_BYTES : GPU_RUNTIME_BYTES) + dequant;
  const device: MemoryBreakdown = { weights, adapters, optimizer, activations, workspace };
  const deviceTotal = weights + adapters + optimizer + activations + workspace;
  // host side of a GPU run: paged moments, and the largest base tensor read while loading / quantizing
  const host = ep === 'cpu' ? 0 : (paged ? 2 * P * F32 : 0) + CPU_RUNTIME_BYTES + model.vocabSize * model.hiddenSize * F32;
  return {
    ep, device, deviceTotal, host, activationsWithRecompute: withR, activationsWithoutRecompute: withoutR, params, plan: full, model,
  };
}

/**
 * Memory of a run on Lathe's GPU backend (engine/backends/webgpu), from its buffer plan: planGraph's byte
 * counts by kind are exact (every buffer the program will create) and need no device, so they replace the
 * ONNX-path estimate above for that backend (which counts [N, V] logits and an onnxruntime arena the backend
 * does not have). Device: the planned buffers + the runtime's own allocations. Host: the process, the
 * paged moments (2·P f32) and the largest tensor read while loading (the embedding).
 */
export function estimateFromGpuPlan(model: ModelConfig, bytes: Readonly<Record<string, number>>, paged: { loraParams: number } | null): { device: number; host: number; planned: number } {
  const planned = Object.values(bytes).reduce((a, b) => a + b, 0);
  return {
    planned,
    device: planned + GPU_RUNTIME_BYTES,
    host: CPU_RUNTIME_BYTES + (paged ? 2 * paged.loraParams * F32 : 0) + model.vocabSize * model.hiddenSize * F32,
  };
}

/** The plan of a trainer config (train/config.ts) whose dataset has `seqLen`-token blocks. */
export function planFromTrainConfig(cfg: {
  batchSize: number; quantization?: 'none' | 'nf4'; lora: { rank: number; targets: MemoryPlan['lora']['targets'] };
  pagedOptimizer?: boolean; recompute?: boolean; gradAccum?: number;
}, seqLen: number): MemoryPlan {
  return {
    batchSize: cfg.batchSize, seqLen, lora: { rank: cfg.lora.rank, targets: cfg.lora.targets }, quantization: cfg.quantization ?? 'none',
    pagedOptimizer: cfg.pagedOptimizer ?? false, recompute: cfg.recompute ?? false, gradAccum: cfg.gradAccum ?? 1,
  };
}

/** "1.2 GB" style: decimal units (1 GB = 10⁹ bytes, as the app writes every size), one decimal. */
export function formatBytes(b: number): string {
  const u = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return i === 0 ? `${Math.round(b)} bytes` : `${b.toFixed(1)} ${u[i]}`;
}
