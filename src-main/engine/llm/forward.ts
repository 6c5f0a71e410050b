/**
 * The decoder-only forward pass as an IR graph, for every supported family, with LoRA branches.
 *
 * Dimension letters: B batch, T sequence, N = B·T tokens, C hidden, V vocab, H heads, K kv heads,
 * G = H/K queries per kv head, D head dim, F MLP size, r LoRA rank.
 *
 * Formulations chosen for few nodes and WebGPU-friendly ops (see shared notes / engine-spike):
 * - linear layers as 2-D Gemm on [N, C] (transB for HF's [out, in] weights, none for GPT-2 Conv1D);
 * - GQA without repeat_kv: q reshaped to [B, K, G·T, D] so each kv head serves its G query heads in one
 *   batched MatMul, with a constant additive causal mask [G·T, T];
 * - rotate-half RoPE as x·cos + (x·R)·sin with R a constant ±1 permutation matrix [D, D].
 */
import path from 'node:path';
import type { GraphBuilder, Value, ConstData } from '../graph/graph';
import { BYTES } from '../graph/types';
import type { ModelConfig } from '../models/config';
import { ropeCosSin, type RopeParams } from '../models/config';
import type { LayerLayout, LinearWeights, NormWeights, WeightsLayout } from '../models/layout';
import type { ModelWeights } from '../safetensors';
import type { WeightCache } from '../weights/cache';
import { ALL_ROLES, type LoraLayout, type LinearRole, type NewRowsLayout } from './lora';
import { loraDropout, moduleSeedOffset } from './dropout';
import { nf4Linear } from '../quant/linear';
import { softmaxCrossEntropy } from '../nn/layers';

export interface ForwardOptions {
  batch: number; // B
  seqLen: number; // T
  /**
   * Several samples packed per row (SFT): `segments` f32 [B, T] (sample number per token, 0 = padding)
   * keeps attention inside each sample, `positions` int64 [B, T] restarts RoPE positions per sample.
   */
  packing?: { segments: Value; positions: Value };
  /**
   * With trainable new-token rows (lora.newRows): `newIdx` int64 [B, T] (row index into the new rows) and
   * `isNew` f32 [B, T, 1] (1 where the token is a new one); `ids` then hold base-clamped ids (TokenRows.input).
   */
  newTokens?: { newIdx: Value; isNew: Value };
  /** LoRA dropout while training: probability p and the per-step seed input (f32 scalar). */
  dropout?: { p: number; seed: Value };
  /**
   * The previous formulation, kept as the reference tests compare with: a Cast to the compute type per LoRA factor
   * (after the Split) instead of one Cast of the whole flat vector. Same values either way.
   */
  castPerFactor?: boolean;
}

/**
 * Where frozen base weights come from: a model folder's safetensors, referenced in place, or (BF16 models,
 * QLoRA) the weight cache's converted files. Make one with engine/weights/source.ts's openWeightSource.
 */
export interface WeightSource {
  weights: ModelWeights;
  /** Folder external-data locations are relative to (the model folder, or the cache entry with `cache`). */
  dir: string;
  /**
   * Converted and quantized weights (files of the cache entry `dir`): needed for BF16 weights, which
   * neither ORT's Node binding nor WebGPU takes, and for NF4. Weights are never embedded in the .onnx.
   */
  cache?: WeightCache;
  /** 'nf4' (QLoRA): linear-layer weights quantized on load, dequantized in the graph (quant/linear.ts). */
  quantize?: 'none' | 'nf4';
  /**
   * Compute type of the frozen model: 'float16' halves weight memory and uses the GPU's f16 math (GPU EPs;
   * the CPU EP lacks f16 kernels for several ops). LoRA weights, optimizer and loss stay f32.
   */
  compute?: 'float32' | 'float16';
  /**
   * GPU backend only (engine/backends/webgpu): BF16 weights are referenced in the file as they are and
   * unpacked to f32 in the kernels' loads, instead of converted to an f32 copy in host memory. The ONNX
   * lowering refuses graphs built this way.
   */
  bf16InPlace?: boolean;
  /**
   * GPU backend, compute 'float16' planned as bf16 compute (PlanOptions.halfType 'bfloat16': the graph's float16
   * values are bfloat16 there): BF16 weights are read in place as under f32 compute (their Cast to the compute
   * type is a view), not converted to f16.
   */
  bf16Compute?: boolean;
  /**
   * GPU EPs: the vocabulary matrices (embedding, lm_head) are placed as row chunks of at most this many
   * bytes each (vocabRows). Unset: one tensor each (the CPU EP, which needs no chunks).
   */
  vocabChunkBytes?: number;
}

/**
 * The chunk size for the WebGPU EP: 128 MiB, the maxStorageBufferBindingSize every WebGPU adapter allows.
 * onnxruntime binds a tensor beyond that limit as several segments, one storage buffer each, and a shader
 * binds at most 16 (lavapipe; 8 by the spec): Llama-3.1-8B's f32 lm_head [128256, 4096] (2.1 GB) made its
 * Gemm fail with "Too many storage buffers in shader. Current: 17, Max is 16".
 */
export const WEBGPU_VOCAB_CHUNK_BYTES = 128 * 2 ** 20;

export interface ForwardResult {
  /** [N, V] f32 logits. */
  logits: Value;
  /** Nodes in the forward pass. */
  nodes: number;
  /** What activation recomputation needs (see train-graph.ts). */
  blocks: ForwardBlocks;
  /**
   * Fused graphs (the GPU backend) with a frozen lm_head in one piece: the head's input and weight, so the
   * loss can be LinearCrossEntropy (lossOf), which never holds the [N, V] logits. Absent: use `logits`.
   */
  head?: FusedHead;
}

/**
 * The head's input x [N, C], the frozen lm_head W [V, C], its scale and soft-cap; with trainable new-token rows
 * also their finished f32 logits [N, r] (class V + j is row j) and the column bias masking the base columns of
 * re-used ids (−1e9; null when no id < V is re-used): lossOf combines the two without the [N, V + r] logits.
 */
export interface FusedHead { x: Value; w: Value; scale: number; softcap: number; newRows?: { logits: Value; bias: Value | null } }

/** Logits per vocabulary chunk of LinearCrossEntropy on the GPU: at most 64 MiB of f32 logits at a time. */
const LOGITS_CHUNK_BYTES = 64 * 2 ** 20;

/**
 * Σ mask · nll over the rows (scalar): LinearCrossEntropy straight from the head's input when the forward
 * offers it (fused graphs), else the cross-entropy of the logits (their node then feeds the loss).
 */
export function lossOf(g: GraphBuilder, fwd: ForwardResult, targets: Value, mask: Value): Value {
  if (!fwd.head) return softmaxCrossEntropy(g, fwd.logits, targets, mask);
  const h = fwd.head;
  const N = h.x.shape[0] as number;
  const chunk = Math.max(16, Math.floor(LOGITS_CHUNK_BYTES / (4 * N)));
  if (!h.newRows) return g.apply('LinearCrossEntropy', [h.x, h.w, targets, mask], { scale: h.scale, softcap: h.softcap, chunk })[0]!;
  return newRowsLoss(g, h, h.newRows, targets, mask, chunk);
}

/**
 * Σ mask · nll over the V + r classes of a head with trainable new-token rows, never holding [N, V + r] logits:
 * the frozen rows' LinearCrossEntropy (per-row nll of the rows whose target is a base column, and every row's
 * lse_base over the base columns, re-used ids' masked by the bias), the new rows' lse_new over their [N, r]
 * logits, lse = logsumexp(lse_base, lse_new), and per row
 *   base target:  nll_base + (lse − lse_base)      new target V + j:  lse − l_new[j]
 * (the first is lse − l[t]: nll_base = lse_base − l[t]); the gradient reaches x through lse_base as well.
 */
function newRowsLoss(g: GraphBuilder, h: FusedHead, nr: NonNullable<FusedHead['newRows']>, targets: Value, mask: Value, chunk: number): Value {
  const V = h.w.shape[0] as number;
  const vT = g.scalar(V, targets.dtype);
  const isBase = g.less(targets, vT);
  const wBase = g.mul(mask, g.cast(isBase, 'float32')), wNew = g.sub(mask, wBase);
  // a new target is out of W's range: LinearCrossEntropy gives it nothing but its lse
  const [nllBase, lseBase] = g.apply('LinearCrossEntropy', [h.x, h.w, targets, wBase, nr.bias], { scale: h.scale, softcap: h.softcap, chunk, rows: 1 }) as [Value, Value];
  const lseNew = g.reduceLogSumExp(nr.logits, [1], true);
  const lse = g.reduceLogSumExp(g.concat([lseBase, lseNew], 1), [1], true);
  const picked = g.gatherElements(nr.logits, g.where(isBase, g.zerosLike(targets), g.sub(targets, vT)), 1);
  const rows = g.add(g.add(nllBase, g.mul(wBase, g.sub(lse, lseBase))), g.mul(wNew, g.sub(lse, picked)));
  return g.reduceSum(rows, [0, 1], false);
}

/**
 * The per-row nll w · (lse − l[t]) [N, 1] straight from the head's input (LinearCrossEntropy, attr rows), for
 * the preference losses' per-sequence log-probs; null when the forward has no fused head or its head has new-token
 * rows (use the logits).
 */
export function rowNllOf(g: GraphBuilder, fwd: ForwardResult, targets: Value, mask: Value): Value | null {
  if (!fwd.head || fwd.head.newRows) return null;
  const N = fwd.head.x.shape[0] as number;
  const chunk = Math.max(16, Math.floor(LOGITS_CHUNK_BYTES / (4 * N)));
  return g.apply('LinearCrossEntropy', [fwd.head.x, fwd.head.w, targets, mask], { scale: fwd.head.scale, softcap: fwd.head.softcap, chunk, rows: 1 })[0]!;
}

/**
 * The forward pass cut at block boundaries: x[i] enters block i, x[L] leaves the last one; `rebuild`
 * emits block i again from a given input (same weights, masks and dropout seeds), so a backward pass can
 * recompute a block's activations instead of keeping them. `parts` are the flat parameter vector's pieces
 * in order (in the compute type: pieces of its one Cast), each with the values the graph uses it through (LoRA
 * A/B of block `layer`, or new-token rows).
 */
export interface ForwardBlocks {
  x: Value[];
  rebuild: (x: Value, i: number) => Promise<Value>;
  parts: { flat: Value; used: Value; layer: number | 'embed' | 'head' }[];
}

const NEG_INF = -1e9; // additive mask value: exp() underflows to exactly 0 in f32
/** The same for f16 (its largest finite value is 65504). */
const NEG_INF_F16 = -6e4;
const negInf = (dt: 'float32' | 'float16'): number => (dt === 'float16' ? NEG_INF_F16 : NEG_INF);
/** The compute type of a forward pass. */
export const computeType = (src: WeightSource): 'float32' | 'float16' => src.compute ?? 'float32';

/** Weights already placed in a graph, so a tied embedding / lm_head is one initializer used twice. */
const placed = new WeakMap<GraphBuilder, Map<string, Value>>();

/** A frozen weight as an f32 value: referenced in the safetensors file (f32 as is, f16 through a Cast). */
export async function baseWeight(g: GraphBuilder, src: WeightSource, name: string): Promise<Value> {
  let cache = placed.get(g);
  if (!cache) placed.set(g, (cache = new Map()));
  const hit = cache.get(name);
  if (hit) return hit;
  const v = await placeWeight(g, src, name);
  cache.set(name, v);
  return v;
}

async function placeWeight(g: GraphBuilder, src: WeightSource, name: string): Promise<Value> {
  const e = src.weights.entry(name);
  const dt = computeType(src);
  if (e.dtype === 'BF16' && src.bf16InPlace && (dt === 'float32' || src.bf16Compute)) {
    // the GPU backend reads bf16 in place (unpacked in its kernels' loads; under bf16 compute the Cast is a view)
    return g.cast(g.weight(name, 'float32', e.shape, { kind: 'external', location: path.relative(src.dir, e.file), offset: e.fileOffset, length: e.byteLength, stored: 'bfloat16' }), dt);
  }
  const ref = weightRef(src, name);
  return g.cast(g.weight(name, ref.dtype, e.shape, ref.data), dt); // the Cast is a no-op when the file holds the compute type
}

/** Where the bytes of frozen weight `name` are (the model file, or the weight cache) and their type. */
function weightRef(src: WeightSource, name: string): { dtype: 'float32' | 'float16'; data: ConstData & { kind: 'external' } } {
  const e = src.weights.entry(name);
  if (e.dtype === 'F32' || e.dtype === 'F16') {
    const data = src.cache
      ? { kind: 'external' as const, ...src.cache.stored(name) }
      : { kind: 'external' as const, location: path.relative(src.dir, e.file), offset: e.fileOffset, length: e.byteLength };
    return { dtype: e.dtype === 'F32' ? 'float32' : 'float16', data };
  }
  if (e.dtype === 'BF16') {
    // converted once into the cache (f16: range-checked), referenced there; never embedded in the model
    if (!src.cache) throw new Error(`Weight ${name} is BF16: build the WeightSource with openWeightSource (engine/weights/source.ts) so it is converted into the weight cache.`);
    const dt = computeType(src);
    return { dtype: dt, data: { kind: 'external', ...src.cache.converted(name, dt) } };
  }
  throw new Error(`Weight ${name} has dtype ${e.dtype}; Lathe reads F32, F16 and BF16 weights.`);
}

/** Rows [start, end) of a frozen [V, C] matrix, placed as a weight of their own (compute type). */
export interface VocabRows { w: Value; start: number; end: number }

/**
 * The frozen vocabulary matrix `name` ([V, C]: embedding or lm_head) as row chunks of at most
 * src.vocabChunkBytes bytes (in the file's type and in the compute type), each an initializer over its
 * own byte range of the same file; one chunk (the baseWeight) when no limit is set or it fits.
 */
export async function vocabRows(g: GraphBuilder, src: WeightSource, name: string): Promise<VocabRows[]> {
  const e = src.weights.entry(name);
  const limit = src.vocabChunkBytes;
  const [V, C] = e.shape as [number, number];
  const whole = async () => [{ w: await baseWeight(g, src, name), start: 0, end: V }];
  if (!limit || e.shape.length !== 2 || (e.dtype === 'BF16' && src.bf16InPlace)) return whole();
  const dt = computeType(src);
  const ref = weightRef(src, name);
  const rowBytes = C * Math.max(BYTES[ref.dtype], BYTES[dt]);
  const per = Math.max(1, Math.floor(limit / rowBytes));
  if (per >= V) return whole();
  const count = Math.ceil(V / per), size = Math.ceil(V / count); // balanced chunks
  let cache = placed.get(g);
  if (!cache) placed.set(g, (cache = new Map()));
  const out: VocabRows[] = [];
  for (let start = 0; start < V; start += size) {
    const end = Math.min(V, start + size);
    const key = `${name}.rows${start}_${end}`;
    let w = cache.get(key);
    if (!w) {
      const bytes = C * BYTES[ref.dtype];
      const data = { ...ref.data, offset: ref.data.offset + start * bytes, length: (end - start) * bytes };
      cache.set(key, (w = g.cast(g.weight(key, ref.dtype, [end - start, C], data), dt)));
    }
    out.push({ w, start, end });
  }
  return out;
}

/** Embedding lookup over row chunks: rows [..., C] of `ids` (int64), each read from the chunk holding it. */
export function gatherRows(g: GraphBuilder, rows: VocabRows[], ids: Value): Value {
  if (rows.length === 1) return g.gather(rows[0]!.w, ids);
  // No int64 arithmetic (the WebGPU EP has none): small f32 tables indexed by the id give its chunk and
  // its row inside the chunk (exact in f32 below 2^24 rows; cast to int32 for the chunk Gathers). Every
  // chunk is read at that row (clamped for a shorter last chunk); the id's own chunk wins in a Where.
  const V = rows[rows.length - 1]!.end;
  const chunkOf = new Float32Array(V), local = new Float32Array(V);
  rows.forEach((r, k) => { for (let id = r.start; id < r.end; id++) { chunkOf[id] = k; local[id] = id - r.start; } });
  const which = g.gather(g.constant(chunkOf, 'float32', [V, 1]), ids); // [..., 1]
  const at = (table: Float32Array) => g.cast(g.gather(g.constant(table, 'float32', [V]), ids), 'int32'); // [...]
  const row = at(local);
  let x: Value | null = null;
  for (let k = rows.length - 1; k >= 0; k--) {
    const r = rows[k]!, n = r.end - r.start;
    const inRange = rows.every((q) => q.end - q.start <= n);
    const part = g.gather(r.w, inRange ? row : at(local.map((l) => Math.min(l, n - 1))));
    x = x === null ? part : g.where(g.equal(which, k), part, x);
  }
  return x!;
}

/** x [N, C] · Wᵀ over row chunks of W [V, C]: logits [N, V] (one Gemm per chunk, concatenated). */
export function headLogits(g: GraphBuilder, x: Value, rows: VocabRows[]): Value {
  const parts = rows.map((r) => g.gemm(x, r.w, null, { transB: true }));
  return parts.length === 1 ? parts[0]! : g.concat(parts, 1);
}

/** Exported with linear/norm/activation/ropeTables/rope for the KV-cache graphs in engine/generate. */
export interface Ctx {
  g: GraphBuilder;
  cfg: ModelConfig;
  src: WeightSource;
  lora: LoraLayout | null;
  /** LoRA tensors by "layer:role": A [r, in], B [out, r]. */
  loraTensors: Map<string, { a: Value; b: Value }>;
  N: number;
  /** Training with LoRA dropout: probability and the per-step seed input. */
  dropout?: { p: number; seed: Value } | null;
}

export async function linear(c: Ctx, x: Value, w: LinearWeights, layer: number, role: LinearRole): Promise<Value> {
  const { g } = c;
  const bias = w.bias ? await baseWeight(g, c.src, w.bias) : null;
  // y [N, out] = x [N, in] · Wᵀ (nn.Linear [out, in]) or x · W (Conv1D [in, out]) (+ b)
  const y = c.src.quantize === 'nf4'
    ? await nf4Linear(g, c.src, x, w.weight, bias, !!w.inOut)
    : g.gemm(x, await baseWeight(g, c.src, w.weight), bias, { transB: !w.inOut });
  const l = c.loraTensors.get(`${layer}:${role}`);
  if (!l || !c.lora) return y;
  // y + scale · (dropout(x) Aᵀ) Bᵀ : [N, in]·[in, r] -> [N, r], then one Gemm adds [N, r]·[r, out] onto y
  const xin = c.dropout ? loraDropout(g, x, c.dropout.p, c.dropout.seed, moduleSeedOffset(layer, ALL_ROLES.indexOf(role))) : x;
  const xa = g.gemm(xin, l.a, null, { transB: true });
  return g.gemm(xa, l.b, y, { transB: true, alpha: c.lora.scale });
}

export async function norm(c: Ctx, x: Value, n: NormWeights): Promise<Value> {
  const w = await baseWeight(c.g, c.src, n.weight);
  // Gemma: x·rsqrt(mean(x²) + eps)·(1 + w)
  const scale = c.cfg.normUnitOffset ? c.g.add(w, 1) : w;
  if (c.cfg.norm === 'rms') return c.g.rmsNorm(x, scale, c.cfg.normEps);
  const bias = n.bias ? await baseWeight(c.g, c.src, n.bias) : null;
  return c.g.layerNorm(x, scale, bias, c.cfg.normEps);
}

export function activation(c: Ctx, x: Value): Value {
  switch (c.cfg.activation) {
    case 'silu': return c.g.silu(x);
    case 'gelu': return c.g.gelu(x, 'none');
    case 'gelu_new':
    case 'gelu_pytorch_tanh': return c.g.gelu(x, 'tanh');
    case 'relu': return c.g.relu(x);
  }
}

/** cos/sin tables [T, D] for positions 0..T-1 (HF: emb = cat(freqs, freqs); see ropeCosSin). */
export function ropeTables(g: GraphBuilder, cfg: ModelConfig, params: RopeParams, T: number, dt: 'float32' | 'float16' = 'float32'): { cos: Value; sin: Value; rot: Value } {
  const D = cfg.headDim;
  const { cos, sin } = ropeCosSin(cfg, params, Array.from({ length: T }, (_, t) => t), T);
  return { cos: g.constant(cos, dt, [T, D]), sin: g.constant(sin, dt, [T, D]), rot: ropeRot(g, cfg, dt) };
}

/**
 * The rotate-half matrix R [D, D] over the rotary dims R·D (all of D but for partial rotary):
 * rotate_half(x) = cat(-x2, x1) = x · R, out[j] = -x[j + R/2], out[j + R/2] = x[j]; pass-through dims map to 0.
 */
export function ropeRot(g: GraphBuilder, cfg: ModelConfig, dt: 'float32' | 'float16' = 'float32'): Value {
  const D = cfg.headDim, Rd = cfg.rope?.rotaryDim ?? D;
  const R = new Float32Array(D * D);
  for (let j = 0; j < Rd / 2; j++) {
    R[(j + Rd / 2) * D + j] = -1;
    R[j * D + j + Rd / 2] = 1;
  }
  return g.constant(R, dt, [D, D]);
}

/** cap · tanh(x / cap) (Gemma 2's attention and final logit soft-capping). */
export function softcap(g: GraphBuilder, x: Value, cap: number): Value {
  return g.mul(g.tanh(g.div(x, cap)), cap);
}

/** Attention scores q·kᵀ · attnScale, soft-capped where the model does, plus the additive mask. */
export function attentionScores(c: Ctx, q: Value, kT: Value, mask: Value): Value {
  const { g, cfg } = c;
  let s = g.mul(g.matmul(q, kT), cfg.attnScale);
  if (cfg.attnSoftcap !== null) s = softcap(g, s, cfg.attnSoftcap);
  return g.add(s, mask);
}

/** x + out, with the sub-block output normed first (Gemma, OLMo 2) and scaled (Granite's residual_multiplier). */
export async function residualAdd(c: Ctx, x: Value, out: Value, post: NormWeights | null): Promise<Value> {
  let y = post ? await norm(c, out, post) : out;
  if (c.cfg.residualScale !== 1) y = c.g.mul(y, c.cfg.residualScale);
  return c.g.add(x, y);
}

/** Embedding rows times the model's embedding scale (Gemma √C, Granite embedding_multiplier). */
export function scaleEmbedding(c: Ctx, x: Value): Value {
  return c.cfg.embedScale === 1 ? x : c.g.mul(x, c.cfg.embedScale);
}

/** Logits as the model outputs them: Granite divides by logits_scaling, Gemma 2 soft-caps. */
export function finishLogits(c: Ctx, logits: Value): Value {
  let y = c.cfg.logitScale === 1 ? logits : c.g.mul(logits, c.cfg.logitScale);
  if (c.cfg.finalSoftcap !== null) y = softcap(c.g, y, c.cfg.finalSoftcap);
  return y;
}

/** Whether layer i attends within the sliding window (and, for Gemma 3, uses the local RoPE). */
export function isWindowLayer(cfg: ModelConfig, i: number): boolean {
  return cfg.slidingWindow !== null && cfg.windowLayers[i] === true;
}

/** The RoPE of layer i: Gemma 3's sliding layers use `localRope`, every other layer `rope`. */
export function layerRope(cfg: ModelConfig, i: number): RopeParams | null {
  return cfg.localRope && cfg.windowLayers[i] ? cfg.localRope : cfg.rope;
}

export function rope(g: GraphBuilder, x: Value, t: { cos: Value; sin: Value; rot: Value }, cos = t.cos, sin = t.sin): Value {
  // x [..., T, D]: x·cos + rotate_half(x)·sin (cos/sin broadcast: [T, D], or per row [B, 1, (1,) T, D])
  return g.add(g.mul(x, cos), g.mul(g.matmul(x, t.rot), sin));
}

/**
 * Per-row attention bias for packed samples [B, 1, G·T, T]: causal and within the same segment.
 * Built in the graph from the segment ids (a few nodes) instead of uploading B·G·T² floats.
 */
function packedMask(g: GraphBuilder, segments: Value, B: number, G: number, T: number, window: number | null, dt: 'float32' | 'float16' = 'float32'): Value {
  const same = g.equal(g.reshape(segments, [B, T, 1]), g.reshape(segments, [B, 1, T])); // [B, T, T] bool
  const causal = causalMask(g, 1, T, window, dt); // [T, T] additive
  const bias = g.where(same, causal, negInf(dt)); // [B, T, T]
  const grouped = g.expand(g.reshape(bias, [B, 1, 1, T, T]), [B, 1, G, T, T]);
  return g.reshape(grouped, [B, 1, G * T, T]);
}

/** Additive causal (and sliding-window) mask [G·T, T] for the grouped layout. */
function causalMask(g: GraphBuilder, G: number, T: number, window: number | null, dt: 'float32' | 'float16' = 'float32'): Value {
  const m = new Float32Array(G * T * T);
  for (let gi = 0; gi < G; gi++) {
    for (let t = 0; t < T; t++) {
      for (let s = 0; s < T; s++) {
        const allowed = s <= t && (window === null || t - s < window);
        m[(gi * T + t) * T + s] = allowed ? 0 : negInf(dt);
      }
    }
  }
  return g.constant(m, dt, [G * T, T]);
}

/**
 * q, k, v projections of a normed block input h [N, C] (fused qkv for GPT-2), as heads: q4 [B, T, H, D],
 * k4 [B, T, K, D] (Qwen3: RMSNorm over D per head, before RoPE) and v [N, K·D]. Shared with generation.
 */
export async function qkvHeads(c: Ctx, h: Value, L: LayerLayout, i: number, B: number, T: number | string): Promise<{ q4: Value; k4: Value; v: Value }> {
  const { g, cfg } = c;
  const { numHeads: H, numKvHeads: K, headDim: D } = cfg;
  let q: Value, k: Value, v: Value;
  if (L.qkv) {
    const qkv = await linear(c, h, L.qkv, i, 'qkv'); // [N, (H + 2K)·D]
    [q, k, v] = g.split(qkv, [H * D, K * D, K * D], 1) as [Value, Value, Value];
  } else {
    q = await linear(c, h, L.q!, i, 'q'); // [N, H·D]
    k = await linear(c, h, L.k!, i, 'k'); // [N, K·D]
    v = await linear(c, h, L.v!, i, 'v'); // [N, K·D]
  }
  if (L.qNorm && L.kNorm && cfg.qkNormScope === 'all') {
    // OLMo 2: one RMSNorm over the whole [N, H·D] (and [N, K·D]) projection
    q = await norm(c, q, L.qNorm);
    k = await norm(c, k, L.kNorm);
  }
  let q4 = g.reshape(q, [B, T, H, D]);
  let k4 = g.reshape(k, [B, T, K, D]);
  if (L.qNorm && L.kNorm && cfg.qkNormScope === 'head') {
    q4 = await norm(c, q4, L.qNorm);
    k4 = await norm(c, k4, L.kNorm);
  }
  return { q4, k4, v };
}

/**
 * x + MLP(norm(x)): gated down(act(gate(h)) · up(h)) (Phi-3: gate and up halves of one gate_up_proj), or
 * GPT-2's c_proj(act(c_fc(h))); the norms where the model has them (residualAdd). Shared with generation.
 */
/** The GPU backend's graphs compute silu(gate) · up as one SwiGLU node (graph/ops/fused.ts: σ and silu recomputed, not stored). */
const swiglu = (c: Ctx): boolean => c.g.fused && c.cfg.activation === 'silu';

export async function mlpResidual(c: Ctx, x: Value, L: LayerLayout, i: number): Promise<Value> {
  const { g, cfg } = c;
  const h = L.mlpNorm ? await norm(c, x, L.mlpNorm) : x;
  let inner: Value;
  if (L.gateUp) {
    const F = cfg.intermediateSize;
    const [gate, up] = g.split(await linear(c, h, L.gateUp, i, 'gate_up'), [F, F], 1) as [Value, Value]; // [N, 2F]
    inner = swiglu(c) ? g.apply('SwiGLU', [gate, up])[0]! : g.mul(activation(c, gate), up);
  } else if (cfg.gatedMlp && L.gate) {
    if (swiglu(c)) inner = g.apply('SwiGLU', [await linear(c, h, L.gate, i, 'gate'), await linear(c, h, L.up!, i, 'up')])[0]!;
    else inner = g.mul(activation(c, await linear(c, h, L.gate, i, 'gate')), await linear(c, h, L.up!, i, 'up'));
  } else {
    inner = activation(c, await linear(c, h, L.up!, i, 'up'));
  }
  return residualAdd(c, x, await linear(c, inner, L.down, i, 'down'), L.postMlpNorm);
}

/**
 * Build the forward pass. `ids` is int64 [B, T]; `loraParams` (optional) is the flat f32 trainable vector
 * laid out by `lora`.
 */
export async function buildForward(
  g: GraphBuilder,
  cfg: ModelConfig,
  layout: WeightsLayout,
  src: WeightSource,
  ids: Value,
  opts: ForwardOptions,
  lora: LoraLayout | null = null,
  loraParams: Value | null = null,
): Promise<ForwardResult> {
  const start = g.nodes.length;
  const { batch: B, seqLen: T } = opts;
  const N = B * T;
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D } = cfg;
  const G = H / K;
  const dt = computeType(src);
  const toDt = (v: Value) => g.cast(v, dt);
  const loraTensors = new Map<string, { a: Value; b: Value }>();
  let newRows: { embed: Value; head: Value; layout: NewRowsLayout } | null = null;
  const parts: ForwardBlocks['parts'] = [];
  if (lora && loraParams) {
    // one Split node cuts the flat vector into every A and B, then Reshapes give them their shapes
    const sizes: number[] = [];
    for (const m of lora.modules) sizes.push(lora.rank * m.inFeatures, m.outFeatures * lora.rank);
    // (on WebGPU the runtime rewrites this wide Split into a tree: backends/onnx/patches.ts)
    const nr = lora.newRows;
    const rowSizes = nr ? [nr.ids.length * nr.hidden, ...(nr.headOffset !== null ? [nr.ids.length * nr.hidden] : [])] : [];
    // compute type: ONE Cast of the factors' f32 masters, before the Split (its pieces are views of it), instead of
    // a Cast per factor; the gradient is then one Concat of the 16-bit pieces and one widening Cast (a view on the GPU
    // backend). Elementwise, so every factor holds the values a Cast of its own gave. New-token rows stay f32 pieces
    // (Cast where used), so the gradients of their two uses (tied embedding and head) are still summed in f32.
    let flat: Value[];
    if (opts.castPerFactor || dt === 'float32') flat = g.split(loraParams, [...sizes, ...rowSizes], 0);
    else if (!nr) flat = g.split(toDt(loraParams), sizes, 0);
    else {
      const [factors, ...rows] = g.split(loraParams, [sizes.reduce((a, b) => a + b, 0), ...rowSizes], 0);
      flat = [...g.split(toDt(factors!), sizes, 0), ...rows];
    }
    lora.modules.forEach((m, i) => {
      const t = { a: g.reshape(flat[2 * i]!, [lora.rank, m.inFeatures]), b: g.reshape(flat[2 * i + 1]!, [m.outFeatures, lora.rank]) };
      loraTensors.set(`${m.layer}:${m.role}`, { a: toDt(t.a), b: toDt(t.b) }); // f32 masters, compute-type use
      parts.push({ flat: flat[2 * i]!, used: t.a, layer: m.layer }, { flat: flat[2 * i + 1]!, used: t.b, layer: m.layer });
    });
    if (nr) {
      const k = 2 * lora.modules.length, r = nr.ids.length;
      const embedRows = g.reshape(flat[k]!, [r, nr.hidden]); // [r, C]
      // tied models read the same rows in the head: through an Identity, so the head's use is a value of its own
      const head = nr.headOffset !== null ? g.reshape(flat[k + 1]!, [r, nr.hidden]) : g.identity(embedRows);
      newRows = { embed: embedRows, head, layout: nr };
      parts.push({ flat: flat[k]!, used: embedRows, layer: 'embed' });
      if (nr.headOffset !== null) parts.push({ flat: flat[k + 1]!, used: head, layer: 'head' });
      else parts.push({ flat: flat[k]!, used: head, layer: 'head' });
    }
  }
  if (lora?.newRows && !opts.newTokens) throw new Error('buildForward: the layout has new-token rows but no newTokens inputs were given.');
  const c: Ctx = { g, cfg, src, lora, loraTensors, N, dropout: opts.dropout && opts.dropout.p > 0 ? opts.dropout : null };

  // embeddings: x [N, C]
  const wte = await vocabRows(g, src, layout.embed);
  // gather with the [B, T] ids as they are: a Reshape of int64 data has no WebGPU kernel
  let x = g.reshape(gatherRows(g, wte, ids), [N, C]);
  if (newRows && opts.newTokens) {
    // new tokens take their row from the trainable [r, C] rows: x + isNew · (rows[newIdx] − x)
    const xn = g.reshape(g.gather(toDt(newRows.embed), opts.newTokens.newIdx), [N, C]);
    x = g.add(x, g.mul(toDt(g.reshape(opts.newTokens.isNew, [N, 1])), g.sub(xn, x)));
  }
  x = scaleEmbedding(c, x);
  if (layout.positions) {
    const wpe = await baseWeight(g, src, layout.positions);
    // [T, C] for plain rows; [B, T, C] gathered by per-sample positions for packed rows
    const pos = opts.packing ? g.gather(wpe, opts.packing.positions) : g.slice(wpe, [0], [T], [0]);
    x = g.reshape(g.add(g.reshape(x, [B, T, C]), pos), [N, C]);
  }

  const pk = opts.packing;
  // masks and RoPE tables per kind of layer (global / sliding window; Gemma 3's local RoPE), made once
  const masks = new Map<boolean, Value>();
  const maskFor = (i: number): Value => {
    const w = isWindowLayer(cfg, i);
    let m = masks.get(w);
    if (!m) {
      const win = w ? cfg.slidingWindow : null;
      m = pk ? packedMask(g, pk.segments, B, G, T, win, dt) : causalMask(g, G, T, win, dt);
      masks.set(w, m);
    }
    return m;
  };
  // per-row RoPE tables when positions restart inside a row: [B, T, D] gathered from the [T, D] tables
  type RopeUse = { t: { cos: Value; sin: Value; rot: Value }; rows: { qCos: Value; qSin: Value; kCos: Value; kSin: Value } | null };
  const ropes = new Map<RopeParams, RopeUse>();
  const ropeFor = (i: number): RopeUse | null => {
    const params = cfg.ropeLayers[i] ? layerRope(cfg, i) : null;
    if (!params) return null;
    let r = ropes.get(params);
    if (!r) {
      const t = ropeTables(g, cfg, params, T, dt);
      let rows: RopeUse['rows'] = null;
      if (pk) {
        const cosR = g.gather(t.cos, pk.positions), sinR = g.gather(t.sin, pk.positions); // [B, T, D]
        rows = {
          qCos: g.reshape(cosR, [B, 1, 1, T, D]), qSin: g.reshape(sinR, [B, 1, 1, T, D]),
          kCos: g.reshape(cosR, [B, 1, T, D]), kSin: g.reshape(sinR, [B, 1, T, D]),
        };
      }
      ropes.set(params, (r = { t, rows }));
    }
    return r;
  };

  const block = async (x: Value, i: number): Promise<Value> => {
    const L = layout.layers[i]!;
    // ---- attention ----
    const { q4, k4, v } = await qkvHeads(c, L.attnNorm ? await norm(c, x, L.attnNorm) : x, L, i, B, T);
    // q [B, T, K, G, D] -> [B, K, G, T, D]; k [B, T, K, D] -> [B, K, T, D]
    let qg = g.transpose(g.reshape(q4, [B, T, K, G, D]), [0, 2, 3, 1, 4]);
    let kt = g.transpose(k4, [0, 2, 1, 3]);
    const ro = ropeFor(i);
    if (ro && !g.fused) { // fused: FlashAttention rotates q and k itself (its RoPE inputs below)
      qg = ro.rows ? rope(g, qg, ro.t, ro.rows.qCos, ro.rows.qSin) : rope(g, qg, ro.t);
      kt = ro.rows ? rope(g, kt, ro.t, ro.rows.kCos, ro.rows.kSin) : rope(g, kt, ro.t);
    }
    const vT = () => g.transpose(g.reshape(v, [B, T, K, D]), [0, 2, 1, 3]); // [B, K, T, D]
    let att: Value; // [B, K, G·T, D] = [B, H, T, D]
    if (g.fused) {
      // GPU backend: one flash-attention node (graph/ops/fused.ts), no [G·T, T] scores or mask in memory
      const window = isWindowLayer(cfg, i) ? cfg.slidingWindow! : 0;
      // RoPE in the kernel: the [T, D] tables, or per row [B, T, D]; rot and `rotary` as ropeRot builds them
      const ropeIn = !ro ? [] : [...(ro.rows ? [g.reshape(ro.rows.kCos, [B, T, D]), g.reshape(ro.rows.kSin, [B, T, D])] : [ro.t.cos, ro.t.sin]), ro.t.rot];
      const qkv = [g.reshape(qg, [B, H, T, D]), kt, vT(), ...(pk ? [pk.segments] : ro ? [null] : []), ...ropeIn];
      att = g.apply('FlashAttention', qkv, {
        scale: cfg.attnScale, window, ...(cfg.attnSoftcap !== null ? { softcap: cfg.attnSoftcap } : {}), ...(ro ? { rotary: cfg.rope?.rotaryDim ?? D } : {}),
      })[0]!;
    } else {
      const qf = g.reshape(qg, [B, K, G * T, D]);
      // scores [B, K, G·T, T] = q · kᵀ · scale (soft-capped) + mask
      const p = g.softmax(attentionScores(c, qf, g.transpose(kt, [0, 1, 3, 2]), maskFor(i)), -1);
      att = g.matmul(p, vT());
    }
    // back to [N, H·D] with head h = k·G + g (HF's repeat_kv order)
    const merged = g.reshape(g.transpose(g.reshape(att, [B, K, G, T, D]), [0, 3, 1, 2, 4]), [N, H * D]);
    x = await residualAdd(c, x, await linear(c, merged, L.o, i, 'o'), L.postAttnNorm);

    // ---- MLP ----
    return mlpResidual(c, x, L, i);
  };
  const xs: Value[] = [x];
  for (let i = 0; i < cfg.numLayers; i++) xs.push((x = await block(x, i)));

  x = await norm(c, x, layout.finalNorm);
  const head = await vocabRows(g, src, layout.lmHead ?? layout.embed); // [V, C] (row chunks on GPU EPs)
  let logits = headLogits(g, x, head); // [N, V]
  // the trainable rows' logits [N, r] (f32, scaled and soft-capped like the base ones); re-used ids (id < V) take
  // their trainable row, so their base column is masked out (−1e9)
  const newLogits = newRows ? finishLogits(c, g.cast(g.gemm(x, toDt(newRows.head), null, { transB: true }), 'float32')) : null;
  let colMask: Value | null = null;
  if (newRows) {
    const V = newRows.layout.baseRows;
    const reused = newRows.layout.ids.filter((id) => id < V);
    if (reused.length) {
      const m = new Float32Array(V);
      for (const id of reused) m[id] = NEG_INF;
      colMask = g.constant(m, 'float32', [V]);
    }
  }
  // [N, V + r] with new rows: the base logits, then the trainable rows' appended
  logits = finishLogits(c, g.cast(logits, 'float32')); // the loss is always computed in f32
  if (colMask) logits = g.add(logits, colMask);
  if (newLogits) logits = g.concat([logits, newLogits], 1);
  // fused graphs: the loss may skip the logits (lossOf), new-token rows included (their [N, r] logits beside)
  const fusedHead: FusedHead | undefined = g.fused && head.length === 1
    ? { x, w: head[0]!.w, scale: cfg.logitScale, softcap: cfg.finalSoftcap ?? 0, ...(newRows ? { newRows: { logits: newLogits!, bias: colMask } } : {}) }
    : undefined;
  return { logits, nodes: g.nodes.length - start, blocks: { x: xs, rebuild: block, parts }, ...(fusedHead ? { head: fusedHead } : {}) };
}
