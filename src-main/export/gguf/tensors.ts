/**
 * Which GGUF tensors a model becomes, under llama.cpp's names, and how each is derived from the Hugging Face
 * weights; which ggml type each gets for a quantization choice.
 *
 * Names: token_embd, position_embd (GPT-2), blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_qkv (GPT-2),
 * attn_output, attn_q_norm, attn_k_norm (Qwen3; OLMo 2 over the whole projection), post_attention_norm (OLMo 2),
 * ffn_norm, ffn_gate, ffn_up, ffn_down, post_ffw_norm (OLMo 2)}, output_norm, output
 * (absent when tied: llama.cpp then reuses token_embd), rope_freqs (Llama 3.1-style RoPE scaling).
 *
 * Layouts: ggml's ne[0] is the row length, so an nn.Linear [out, in] weight is written as is; GPT-2's Conv1D
 * [in, out] weights are transposed. For the architectures llama.cpp runs with "normal" (GPT-J-style, adjacent
 * pairs) RoPE — llama, mistral (as llama), smollm3, granite — q and k rows are permuted from Hugging Face's rotate-half
 * order: within each head, row half·D/2 + i moves to 2i + half. Qwen2/Qwen3/OLMo 2 use NeoX RoPE (rotate-half)
 * and need no permutation.
 */
import type { ModelConfig } from '../../engine/models/config';
import type { WeightsLayout } from '../../engine/models/layout';
import { BLOCK, GgmlType, MAIN_TYPE, type GgufQuant } from './format';

export type TensorRole = 'embed' | 'pos' | 'norm' | 'bias' | 'q' | 'k' | 'v' | 'qkv' | 'o' | 'gate' | 'up' | 'down' | 'output' | 'rope_freqs' | 'rope_long' | 'rope_short';

export interface PlannedTensor {
  name: string;
  /** GGUF shape, outermost first (ggml ne reversed). */
  shape: number[];
  role: TensorRole;
  layer: number | null;
  /** Source HF tensor (null for rope_freqs, computed from the config). */
  hf: string | null;
  /** Source stored [in, out] (GPT-2 Conv1D): transpose. */
  transpose: boolean;
  /** Permute rows head by head (q/k of normal-RoPE architectures): the number of heads. */
  permuteHeads: number | null;
  /** Gemma: the norm scales by (1 + w); llama.cpp's gemma graphs multiply by the stored weight, so 1 is added. */
  unitOffset: boolean;
  /** Multiply the data by this (the attention-scale fold, see qScaleFold); 1: unchanged. */
  scale: number;
}

/**
 * llama.cpp's gemma2/gemma3 graphs do not read an attention scale from the file: they use 1/√D (1/√(C/H) for the
 * 27B sizes, told by the layer count). A different query_pre_attn_scalar is folded into the weights feeding the
 * scores: q (Gemma 2; RoPE is linear, the soft-cap comes after the scale) or the q norm (Gemma 3, whose q norm
 * would undo a scale on q). Returns 1 when nothing needs folding.
 */
export function qScaleFold(cfg: ModelConfig): number {
  if (cfg.family !== 'gemma2' && cfg.family !== 'gemma3') return 1;
  const is27b = (cfg.family === 'gemma2' && cfg.numLayers === 46) || (cfg.family === 'gemma3' && cfg.numLayers === 62);
  const llamaCppScale = 1 / Math.sqrt(is27b ? cfg.hiddenSize / cfg.numHeads : cfg.headDim);
  return cfg.attnScale / llamaCppScale;
}

/** llama.cpp's architecture name for a family (mistral runs as llama). */
export function ggufArch(cfg: ModelConfig): string {
  switch (cfg.family) {
    case 'mistral': return 'llama';
    default: return cfg.family; // llama, qwen2, qwen3, smollm3, gpt2, granite, olmo2, gemma2, gemma3
  }
}

/** The sliding-window layers llama.cpp's gemma2 (every 2nd layer global) / gemma3 (every 6th) graphs use. */
export function llamaCppWindowLayers(cfg: ModelConfig): boolean[] | null {
  const pattern = cfg.family === 'gemma2' ? 2 : cfg.family === 'gemma3' ? 6 : 0;
  if (!pattern) return null;
  return Array.from({ length: cfg.numLayers }, (_, i) => i % pattern < pattern - 1);
}

/** Whether llama.cpp applies RoPE to adjacent pairs for this architecture (so HF q/k rows are permuted). */
function normalRope(cfg: ModelConfig): boolean {
  return cfg.family === 'llama' || cfg.family === 'mistral' || cfg.family === 'smollm3' || cfg.family === 'granite';
}

/** The tensors in file order, with their sources. `vocab` = rows of the (possibly grown) embedding. */
export function planTensors(cfg: ModelConfig, layout: WeightsLayout, vocab: number): PlannedTensor[] {
  const out: PlannedTensor[] = [];
  const C = cfg.hiddenSize;
  const add = (name: string, shape: number[], role: TensorRole, layer: number | null, hf: string | null,
    o: { transpose?: boolean; permuteHeads?: number | null; unitOffset?: boolean; scale?: number } = {}): void => {
    out.push({ name, shape, role, layer, hf, transpose: o.transpose ?? false, permuteHeads: o.permuteHeads ?? null,
      unitOffset: o.unitOffset ?? false, scale: o.scale ?? 1 });
  };
  const shapeOf = (hf: string): number[] => layout.shapes.get(hf)!;
  const lin = (name: string, role: TensorRole, layer: number, w: { weight: string; bias: string | null; inOut: boolean } | null,
    permuteHeads: number | null = null, scale = 1): void => {
    if (!w) return;
    const s = shapeOf(w.weight);
    add(`${name}.weight`, w.inOut ? [s[1]!, s[0]!] : s, role, layer, w.weight, { transpose: w.inOut, permuteHeads, scale });
    if (w.bias) add(`${name}.bias`, shapeOf(w.bias), 'bias', layer, w.bias, { permuteHeads, scale });
  };
  const norm = (name: string, layer: number | null, n: { weight: string; bias: string | null } | null, scale = 1): void => {
    if (!n) return;
    add(`${name}.weight`, shapeOf(n.weight), 'norm', layer, n.weight, { unitOffset: cfg.normUnitOffset, scale });
    if (n.bias) add(`${name}.bias`, shapeOf(n.bias), 'bias', layer, n.bias);
  };
  add('token_embd.weight', [vocab, C], 'embed', null, layout.embed);
  if (layout.positions) add('position_embd.weight', shapeOf(layout.positions), 'pos', null, layout.positions);
  const perm = normalRope(cfg);
  const fold = qScaleFold(cfg);
  layout.layers.forEach((l, i) => {
    const p = `blk.${i}`;
    norm(`${p}.attn_norm`, i, l.attnNorm);
    lin(`${p}.attn_q`, 'q', i, l.q, perm ? cfg.numHeads : null, l.qNorm ? 1 : fold);
    lin(`${p}.attn_k`, 'k', i, l.k, perm ? cfg.numKvHeads : null);
    lin(`${p}.attn_v`, 'v', i, l.v);
    lin(`${p}.attn_qkv`, 'qkv', i, l.qkv);
    norm(`${p}.attn_q_norm`, i, l.qNorm, fold);
    norm(`${p}.attn_k_norm`, i, l.kNorm);
    lin(`${p}.attn_output`, 'o', i, l.o);
    norm(`${p}.post_attention_norm`, i, l.postAttnNorm);
    norm(`${p}.ffn_norm`, i, l.mlpNorm);
    lin(`${p}.ffn_gate`, 'gate', i, l.gate);
    lin(`${p}.ffn_up`, 'up', i, l.up);
    lin(`${p}.ffn_up`, 'up', i, l.gateUp); // Phi-3: gate | up in one matrix, as llama.cpp's phi3 reads ffn_up
    lin(`${p}.ffn_down`, 'down', i, l.down);
    norm(`${p}.post_ffw_norm`, i, l.postMlpNorm);
  });
  norm('output_norm', null, layout.finalNorm);
  if (layout.lmHead) add('output.weight', [vocab, C], 'output', null, layout.lmHead);
  if (cfg.rope?.scaling?.type === 'llama3') add('rope_freqs.weight', [cfg.headDim / 2], 'rope_freqs', null, null);
  if (cfg.rope?.scaling?.type === 'longrope') { // Phi-3: both factor sets; llama.cpp picks one by the context size
    const half = (cfg.rope.rotaryDim ?? cfg.headDim) / 2;
    add('rope_factors_long.weight', [half], 'rope_long', null, null);
    add('rope_factors_short.weight', [half], 'rope_short', null, null);
  }
  return out;
}

/** Rows of a [rows, cols] matrix (cols = 1 for a bias) reordered from rotate-half to adjacent-pair RoPE order. */
export function permuteRopeRows(data: Float32Array, heads: number, cols: number): Float32Array {
  const rows = data.length / cols;
  const D = rows / heads;
  const half = D / 2;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let s = 0; s < 2; s++) {
        const from = h * D + s * half + i, to = h * D + 2 * i + s;
        out.set(data.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/**
 * llama.cpp's "use more bits" pattern for the _M mixes: the first and last eighth of the layers, and every
 * third layer between (i − n/8) % 3 == 2.
 */
export function useMoreBits(i: number, n: number): boolean {
  return i < n / 8 || i >= (7 * n) / 8 || (i - Math.floor(n / 8)) % 3 === 2;
}

/** K-quants need rows that split into 256-value super-blocks; llama.cpp's fallbacks otherwise. */
const FALLBACK: Partial<Record<GgmlType, GgmlType>> = {
  [GgmlType.Q4_K]: GgmlType.Q5_0, [GgmlType.Q5_K]: GgmlType.Q5_1, [GgmlType.Q6_K]: GgmlType.Q8_0, [GgmlType.Q8_0]: GgmlType.F16,
};

/**
 * The type of one tensor (our rule, following llama.cpp's llama_tensor_get_type for these mixes):
 * - 1-D tensors (norms, biases, rope_freqs): F32 always.
 * - f16 / bf16 / q8_0 / q6_k: every matrix in that type.
 * - q5_k_m / q4_k_m: Q5_K / Q4_K, except Q6_K for the output matrix (or token_embd when it doubles as the output),
 *   and for attn_v, attn_qkv and ffn_down in the layers useMoreBits picks.
 * - A type whose block does not divide the row length falls back: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *   Q8_0 -> F16 (the tiny models' 64-wide rows take the fallbacks).
 */
export function tensorType(t: PlannedTensor, quant: GgufQuant, cfg: ModelConfig, tied: boolean): GgmlType {
  if (t.shape.length === 1) return GgmlType.F32;
  let type = MAIN_TYPE[quant];
  if (quant === 'q4_k_m' || quant === 'q5_k_m') {
    const isOutput = t.role === 'output' || (tied && t.role === 'embed');
    const more = t.layer !== null && (t.role === 'v' || t.role === 'qkv' || t.role === 'down') && useMoreBits(t.layer, cfg.numLayers);
    if (isOutput || more) type = GgmlType.Q6_K;
  }
  const rowLen = t.shape[t.shape.length - 1]!;
  while (rowLen % BLOCK[type].size !== 0) type = FALLBACK[type] ?? GgmlType.F32;
  return type;
}
