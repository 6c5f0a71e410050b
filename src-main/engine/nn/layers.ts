/**
 * Small model-building helpers written in IR ops. Dimension letters: N = rows (B·T), C = channels in,
 * O = channels out, V = classes / vocab.
 */
import type { GraphBuilder, Value } from '../graph/graph';
import type { DType } from '../graph/types';

/**
 * y = x wᵀ + b with a PyTorch-layout weight: x [N, C], w [O, C], b [O] -> [N, O].
 * One Gemm (transB) forward; its gradient is two Gemms with transpose flags, no Transpose nodes.
 */
export function linear(g: GraphBuilder, x: Value, w: Value, b: Value | null = null): Value {
  return g.gemm(x, w, b, { transB: true });
}

/**
 * LoRA-adapted linear: x wᵀ + scale · (x aᵀ) bᵀ. x [N, C], w [O, C] (frozen), a [r, C], b [O, r].
 */
export function loraLinear(g: GraphBuilder, x: Value, w: Value, a: Value, b: Value, scale: number, bias: Value | null = null): Value {
  const xa = g.gemm(x, a, null, { transB: true }); // [N, r]
  const base = g.gemm(x, w, bias, { transB: true }); // [N, O]
  return g.gemm(xa, b, base, { transB: true, alpha: scale }); // base + scale · xa bᵀ, one node
}

/**
 * Mean softmax cross-entropy over rows: logits [N, V], targets [N] or [N, 1] (int32/int64 class ids).
 *   loss_i = logsumexp(logits_i) − logits_i[target_i]
 * `weights` [N, 1] (optional) replaces the mean by Σ w_i loss_i (e.g. a prompt mask divided by the
 * count of trained tokens; ignored rows need weight 0 and any valid target id).
 * The backward comes out as softmax·g with −g scattered-added at the targets (no LogSoftmax, no OneHot).
 */
export function softmaxCrossEntropy(g: GraphBuilder, logits: Value, targets: Value, weights: Value | null = null): Value {
  const N = logits.shape[0]!;
  const t = targets.rank === 1 ? g.reshape(targets, [N, 1]) : targets; // [N, 1]
  // GPU backend: one fused node (its backward reads the logits once; graph/ops/fused.ts)
  // (f16 compute: the f16 logits themselves, not their f32 widening: the op's math is f32 and its gradient,
  // then f16, can overwrite the logits in place: one 16-bit [N, V] buffer)
  if (g.fused && weights) return g.apply('SoftmaxCrossEntropy', [narrowed(logits), t, weights])[0]!;
  const lse = g.reduceLogSumExp(logits, [1], true); // [N, 1]
  const picked = g.gatherElements(logits, t, 1); // [N, 1]
  const nll = g.sub(lse, picked); // [N, 1]
  if (weights) return g.reduceSum(g.mul(nll, weights), [0, 1], false);
  return g.reduceMean(nll, [0, 1], false);
}

/** The float16 value a float32 value was widened from by a Cast, or the value itself. */
function narrowed(v: Value): Value {
  const x = v.node?.op === 'Cast' ? v.node.inputs[0] : undefined;
  return x && x.dtype === 'float16' && v.dtype === 'float32' ? x : v;
}

/** Additive causal mask [T, T]: 0 on and below the diagonal, −1e9 above (a constant, no Trilu node). */
export function causalMask(g: GraphBuilder, T: number, dtype: DType): Value {
  const big = dtype === 'float16' ? -6e4 : -1e9;
  const m = new Array<number>(T * T);
  for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) m[i * T + j] = j > i ? big : 0;
  return g.constant(m, dtype, [T, T]);
}

/** AdamW hyper-parameters (PyTorch defaults except lr). */
export interface AdamWConfig {
  /** Learning rate; the schedule may change it every step via adamwScalars. */
  lr: number;
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-8
  weightDecay?: number; // 0.01, decoupled (PyTorch AdamW)
}

/**
 * The three per-step scalars the AdamW graph reads, computed on the host so the graph has no
 * scalar bookkeeping nodes. With bc1 = 1 − β1^t, bc2 = 1 − β2^t (t = 1, 2, ...):
 *   PyTorch:  p ← p·(1 − lr·wd) − lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)
 *   same as:  p ← p·decay − alpha · m / (sqrt(v) + epsHat),  alpha = lr·sqrt(bc2)/bc1, epsHat = eps·sqrt(bc2)
 * Returns [alpha, epsHat, decay] (float64; convert to the graph's type when feeding).
 */
export function adamwScalars(cfg: AdamWConfig, step: number, lr = cfg.lr): Float64Array {
  if (!(step >= 1)) throw new Error(`AdamW step counts from 1, got ${step}.`);
  const b1 = cfg.beta1 ?? 0.9, b2 = cfg.beta2 ?? 0.999, eps = cfg.eps ?? 1e-8, wd = cfg.weightDecay ?? 0.01;
  const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
  return Float64Array.from([(lr * Math.sqrt(bc2)) / bc1, eps * Math.sqrt(bc2), 1 - lr * wd]);
}

/**
 * One AdamW update on (flat) tensors, 14 nodes whatever the size:
 * p, grad, m, v same shape; `scalars` [3] = adamwScalars(...) in p's type.
 */
export function adamw(g: GraphBuilder, p: Value, grad: Value, m: Value, v: Value, scalars: Value,
  cfg: AdamWConfig): { p: Value; m: Value; v: Value } {
  const b1 = cfg.beta1 ?? 0.9, b2 = cfg.beta2 ?? 0.999;
  const [alpha, epsHat, decay] = g.split(scalars, [1, 1, 1], 0); // each [1]
  const m2 = g.add(m, g.mul(g.sub(grad, m), 1 - b1)); // m + (1−β1)(g − m)
  const v2 = g.add(v, g.mul(g.sub(g.mul(grad, grad), v), 1 - b2)); // v + (1−β2)(g² − v)
  const upd = g.mul(g.div(m2, g.add(g.sqrt(v2), epsHat!)), alpha!);
  const p2 = g.sub(g.mul(p, decay!), upd);
  return { p: p2, m: m2, v: v2 };
}

/**
 * cos/sin tables for g.rotary (com.microsoft RotaryEmbedding): [maxPos, D/2] constants with
 * angle(p, j) = p · invFreq[j] (HF: inv_freq = 1 / theta^(2j/D), after any rope scaling).
 */
export function ropeCache(g: GraphBuilder, maxPos: number, invFreq: readonly number[], dtype: DType): { cos: Value; sin: Value } {
  const half = invFreq.length;
  const cos = new Array<number>(maxPos * half), sin = new Array<number>(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let j = 0; j < half; j++) {
      cos[p * half + j] = Math.cos(p * invFreq[j]!);
      sin[p * half + j] = Math.sin(p * invFreq[j]!);
    }
  }
  return { cos: g.constant(cos, dtype, [maxPos, half]), sin: g.constant(sin, dtype, [maxPos, half]) };
}
