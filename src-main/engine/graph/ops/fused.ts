/**
 * Fused ops for the GPU backend's dedicated kernels (engine/backends/webgpu/kernels/attention.ts,
 * cross-entropy.ts, norm.ts). Each is ONE IR node there and lowers to ONNX as the decomposition it stands
 * for (composite.ts), so the CPU EP runs the same math. Graph builders emit them only when
 * `GraphBuilder.fused` is set (the GPU backend's graphs); ONNX graphs keep today's decomposed form.
 *
 * Letters: B batch, T sequence, H query heads, K kv heads, G = H/K, D head dim, N rows, V vocab.
 */
import type { GraphBuilder, Value } from '../graph';
import { lowerAsDecomposition } from './composite';
import { def, num, need, floatIn, sameType, type Attrs } from './registry';
import { type DType, shapeStr, staticShape } from '../types';

/** Additive mask value (exp underflows to exactly 0), as forward.ts uses. */
const negInf = (dt: DType): number => (dt === 'float16' ? -6e4 : -1e9);

interface AttnDims { B: number; H: number; K: number; G: number; T: number; D: number }

function attnDims(q: Value, k: Value, v: Value): AttnDims {
  const [B, H, T, D] = staticShape(q.shape, 'attention q');
  const [Bk, K, Tk, Dk] = staticShape(k.shape, 'attention k');
  if (q.rank !== 4 || k.rank !== 4) throw new Error(`q must be [B, H, T, D] and k, v [B, K, T, D]; got ${shapeStr(q.shape)}, ${shapeStr(k.shape)}`);
  if (Bk !== B || Tk !== T || Dk !== D || H! % K! !== 0) throw new Error(`q ${shapeStr(q.shape)} and k ${shapeStr(k.shape)} do not match (H must be a multiple of K)`);
  if (!v.shape.every((d, i) => d === k.shape[i])) throw new Error(`v ${shapeStr(v.shape)} must have k's shape ${shapeStr(k.shape)}`);
  return { B: B!, H: H!, K: K!, G: H! / K!, T: T!, D: D! };
}

/**
 * The additive mask [B|1, 1, G·T, T] of the grouped layout: causal, within `window` (0: none), and
 * within the same segment id when `segments` [B, T] is given (packed samples). Same formula as forward.ts.
 */
function attnMask(g: GraphBuilder, segments: Value | null, d: AttnDims, window: number, dt: DType): Value {
  const { B, G, T } = d;
  const m = new Float32Array((segments ? 1 : G) * T * T);
  for (let gi = 0; gi < (segments ? 1 : G); gi++) {
    for (let t = 0; t < T; t++) for (let s = 0; s < T; s++) m[(gi * T + t) * T + s] = s <= t && (!window || t - s < window) ? 0 : negInf(dt);
  }
  if (!segments) return g.constant(m, dt, [G * T, T]);
  const same = g.equal(g.reshape(segments, [B, T, 1]), g.reshape(segments, [B, 1, T]));
  const bias = g.where(same, g.constant(m, dt, [T, T]), negInf(dt));
  return g.reshape(g.expand(g.reshape(bias, [B, 1, 1, T, T]), [B, 1, G, T, T]), [B, 1, G * T, T]);
}

/**
 * Masked, scaled scores z [B, K, G·T, T] of the decomposition, soft-capped (cap · tanh(s / cap), Gemma 2)
 * when `cap` > 0; `th` = tanh(s / cap) for the backward.
 */
function scores(g: GraphBuilder, q: Value, k: Value, seg: Value | null, d: AttnDims, a: Attrs): { qf: Value; z: Value; th: Value | null } {
  const qf = g.reshape(q, [d.B, d.K, d.G * d.T, d.D]);
  let s = g.mul(g.matmul(qf, g.transpose(k, [0, 1, 3, 2])), num(a, 'scale'));
  const cap = num(a, 'softcap') || 0;
  const th = cap ? g.tanh(g.div(s, cap)) : null;
  if (th) s = g.mul(th, cap);
  return { qf, th, z: g.add(s, attnMask(g, seg, d, num(a, 'window'), q.dtype)) };
}

/** Where the optional inputs start: segments, then RoPE's cos, sin, rot (FlashAttention 3, its gradient 6). */
const segAt = (grad: boolean): number => (grad ? 6 : 3);

function attnInfer(x: readonly (Value | null)[], grad: boolean, a: Attrs): AttnDims {
  const [q, k, v] = need(x, 3);
  floatIn(q!);
  sameType([q!, k!, v!]);
  const at = segAt(grad);
  const seg = x[at];
  if (seg && (seg.rank !== 2 || seg.shape[0] !== q!.shape[0] || seg.shape[1] !== q!.shape[2])) throw new Error(`segments must be [B, T], got ${shapeStr(seg.shape)}`);
  const d = attnDims(q!, k!, v!);
  const [cos, sin, rot] = [x[at + 1], x[at + 2], x[at + 3]];
  if (cos || sin || rot) {
    const table = (t: Value | null | undefined) => !!t && t.shape.length >= 2 && t.shape.length <= 3 && t.shape[t.rank - 2] === d.T && t.shape[t.rank - 1] === d.D && (t.rank === 2 || t.shape[0] === d.B);
    if (!table(cos) || !table(sin) || cos!.rank !== sin!.rank) throw new Error(`RoPE tables cos, sin must both be [T, D] or [B, T, D] (T ${d.T}, D ${d.D}); got ${cos ? shapeStr(cos.shape) : '-'}, ${sin ? shapeStr(sin.shape) : '-'}`);
    if (!rot || rot.rank !== 2 || rot.shape[0] !== d.D || rot.shape[1] !== d.D) throw new Error(`RoPE's rotate-half matrix must be [D, D] (D ${d.D})`);
    const r = num(a, 'rotary');
    if (!(r > 0 && r <= d.D && r % 2 === 0)) throw new Error(`attr rotary (the rotated dims) must be even and in (0, ${d.D}], got ${r}`);
  }
  return d;
}

/** RoPE's inputs of an attention node (cos, sin [T, D] or [B, T, D], rot [D, D]) when it has them. */
function ropeOf(x: readonly (Value | null)[], grad: boolean): { cos: Value; sin: Value; rot: Value } | null {
  const at = segAt(grad);
  const [cos, sin, rot] = [x[at + 1], x[at + 2], x[at + 3]];
  return cos && sin && rot ? { cos, sin, rot } : null;
}

/** cos/sin broadcast over the heads of [B, H, T, D]: [T, D] as it is, [B, T, D] -> [B, 1, T, D]. */
const overHeads = (g: GraphBuilder, t: Value, d: AttnDims): Value => (t.rank === 3 ? g.reshape(t, [d.B, 1, d.T, d.D]) : t);

/** RoPE as forward.ts `rope` builds it: x·cos + (x·rot)·sin. */
function ropeApply(g: GraphBuilder, x: Value, r: { cos: Value; sin: Value; rot: Value }, d: AttnDims): Value {
  return g.add(g.mul(x, overHeads(g, r.cos, d)), g.mul(g.matmul(x, r.rot), overHeads(g, r.sin, d)));
}

/** The gradient through ropeApply, as autodiff builds it: gy·cos + (gy·sin)·rotᵀ. */
function ropeBack(g: GraphBuilder, gy: Value, r: { cos: Value; sin: Value; rot: Value }, d: AttnDims): Value {
  return g.add(g.mul(gy, overHeads(g, r.cos, d)), g.matmul(g.mul(gy, overHeads(g, r.sin, d)), g.transpose(r.rot, [1, 0])));
}

def({
  // o = softmax(q·kᵀ·scale + mask) v per query head h, reading kv head ⌊h/G⌋; lse = the row's logsumexp
  // inputs q [B, H, T, D], k, v [B, K, T, D], segments f32 [B, T] (optional); attrs scale, window (0: none),
  // softcap (optional, 0: none: scores cap · tanh(s / cap) before the mask, Gemma 2). Optional RoPE (forward.ts
  // `rope`, applied to q and k first): cos, sin [T, D] or per row [B, T, D], rot [D, D] (ropeRot: rotate-half over
  // the first `rotary` dims), attr rotary; the GPU kernel rotates q and k as it loads them
  name: 'FlashAttention',
  optionalOutputs: true,
  infer: (x, a) => {
    const d = attnInfer(x, false, a);
    return [{ dtype: x[0]!.dtype, shape: [d.B, d.H, d.T, d.D] }, { dtype: 'float32', shape: [d.B, d.H, d.T] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, x) => {
    const [q0, k0, v, seg] = x as [Value, Value, Value, Value | null];
    const d = attnDims(q0, k0, v);
    const r = ropeOf(x, false);
    const [q, k] = r ? [ropeApply(g, q0, r, d), ropeApply(g, k0, r, d)] : [q0, k0];
    const { z } = scores(g, q, k, seg ?? null, d, c.node.attrs);
    const o = g.reshape(g.matmul(g.softmax(z, -1), v), [d.B, d.H, d.T, d.D]);
    return [o, g.cast(g.reshape(g.reduceLogSumExp(z, [-1], true), [d.B, d.H, d.T]), 'float32')];
  }),
  grad: (c) => {
    if (c.gy[1]) throw new Error('FlashAttention: its logsumexp output is for the backward only and has no gradient');
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const [q, k, v, seg] = c.x;
    const r = ropeOf(c.x, false);
    const [dq, dk, dv] = c.g.apply('FlashAttentionGrad', [q!, k!, v!, c.y[0]!, c.y[1]!, gy, seg ?? null, ...(r ? [r.cos, r.sin, r.rot] : [])], c.node.attrs);
    // no gradient into the segment ids or the RoPE tables (constants of the graph)
    return [c.needs(0) ? dq! : null, c.needs(1) ? dk! : null, c.needs(2) ? dv! : null, ...c.x.slice(3).map(() => null)];
  },
});

def({
  // dq, dk, dv of FlashAttention from q, k, v, o, lse, dO (, segments, cos, sin, rot), and delta = rowsum(dO ∘ o)
  // [B, H, T]; with RoPE, dq and dk are the gradients of the unrotated q and k (the kernel rotates back as it stores)
  name: 'FlashAttentionGrad',
  nondiff: true, // a backward op: no second-order gradients (nothing differentiates a gradient)
  optionalOutputs: true,
  infer: (x, a) => {
    const d = attnInfer(x, true, a);
    const [q, k, v] = x as Value[];
    return [{ dtype: q!.dtype, shape: [...q!.shape] }, { dtype: k!.dtype, shape: [...k!.shape] }, { dtype: v!.dtype, shape: [...v!.shape] },
      { dtype: 'float32', shape: [d.B, d.H, d.T] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, x) => {
    const [q0, k0, v, o, lse, dO, seg] = x as [Value, Value, Value, Value, Value, Value, Value | null];
    const d = attnDims(q0, k0, v);
    const r = ropeOf(x, true);
    const [q, k] = r ? [ropeApply(g, q0, r, d), ropeApply(g, k0, r, d)] : [q0, k0];
    const scale = num(c.node.attrs, 'scale');
    const { qf, z, th } = scores(g, q, k, seg ?? null, d, c.node.attrs);
    const rows = [d.B, d.K, d.G * d.T, 1];
    const p = g.exp(g.sub(z, g.reshape(g.cast(lse, q.dtype), rows))); // P recomputed from the saved logsumexp
    const dOf = g.reshape(dO, [d.B, d.K, d.G * d.T, d.D]);
    const dv = g.matmul(g.transpose(p, [0, 1, 3, 2]), dOf); // Σ over the G query heads of kv head k
    const dp = g.matmul(dOf, g.transpose(v, [0, 1, 3, 2]));
    const delta = g.reduceSum(g.mul(dOf, g.reshape(o, [d.B, d.K, d.G * d.T, d.D])), [-1], true); // = rowsum(dP ∘ P)
    let ds = g.mul(p, g.sub(dp, delta));
    if (th) ds = g.mul(ds, g.sub(1, g.mul(th, th))); // through the soft-cap: d(cap·tanh(s/cap))/ds = 1 − tanh²
    ds = g.mul(ds, scale);
    const dq = g.reshape(g.matmul(ds, k), [d.B, d.H, d.T, d.D]);
    const dk = g.matmul(g.transpose(ds, [0, 1, 3, 2]), qf);
    return [r ? ropeBack(g, dq, r, d) : dq, r ? ropeBack(g, dk, r, d) : dk, dv, g.cast(g.reshape(delta, [d.B, d.H, d.T]), 'float32')];
  }),
});

function swigluInfer(x: readonly (Value | null)[]): { dtype: DType; shape: (number | string)[] } {
  const [gate, up] = need(x, 2);
  floatIn(gate!);
  sameType([gate!, up!]);
  if (!sameShapeOf(gate!, up!)) throw new Error(`gate ${shapeStr(gate!.shape)} and up ${shapeStr(up!.shape)} must have one shape`);
  return { dtype: gate!.dtype, shape: [...gate!.shape] };
}
const sameShapeOf = (a: Value, b: Value): boolean => a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);

def({
  // h = silu(gate) · up = (gate · σ(gate)) · up, the gated MLP's activation (forward.ts mlpResidual with silu):
  // one kernel instead of three, and σ(gate), silu(gate) are never stored (the backward recomputes them)
  name: 'SwiGLU',
  infer: (x) => [swigluInfer(x)],
  lower: (c) => lowerAsDecomposition(c, (g, [gate, up]) => [g.mul(g.silu(gate!), up!)]),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null, null];
    const [dgate, dup] = c.g.apply('SwiGLUGrad', [c.x[0]!, c.x[1]!, gy]);
    return [c.needs(0) ? dgate! : null, c.needs(1) ? dup! : null];
  },
});

def({
  // dgate, dup of SwiGLU from gate, up, dh, as autodiff differentiates its decomposition: s = σ(gate),
  // dsilu = dh · up, dup = dh · (gate · s), dgate = dsilu · s + (dsilu · gate) · (s · (1 − s))
  name: 'SwiGLUGrad',
  nondiff: true,
  optionalOutputs: true,
  infer: (x) => {
    const t = swigluInfer(x);
    const dh = x[2];
    if (!dh || !sameShapeOf(dh, x[0]!)) throw new Error(`dh must have gate's shape ${shapeStr(x[0]!.shape)}`);
    return [t, { ...t, shape: [...t.shape] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [gate, up, dh]) => {
    const s = g.sigmoid(gate!);
    const dsilu = g.mul(dh!, up!);
    return [g.add(g.mul(dsilu, s), g.mul(g.mul(dsilu, gate!), g.mul(s, g.sub(1, s)))), g.mul(dh!, g.mul(gate!, s))];
  }),
});

def({
  // loss = Σ_i w_i (logsumexp(logits_i) − logits_i[t_i]) (scalar); lse [N, 1] for the backward.
  // inputs logits [N, V], targets int [N, 1], weights f32 [N, 1] (0 = masked row: contributes nothing)
  name: 'SoftmaxCrossEntropy',
  optionalOutputs: true,
  infer: (x) => {
    const [l, t, w] = need(x, 3);
    floatIn(l!);
    if (l!.rank !== 2 || t!.rank !== 2 || t!.shape[1] !== 1 || w!.rank !== 2 || t!.shape[0] !== l!.shape[0] || w!.shape[0] !== l!.shape[0]) {
      throw new Error(`expected logits [N, V], targets [N, 1], weights [N, 1]; got ${shapeStr(l!.shape)}, ${shapeStr(t!.shape)}, ${shapeStr(w!.shape)}`);
    }
    // f16 logits (f16 compute): the loss and logsumexp are f32 (the kernel's math is f32 either way)
    return [{ dtype: wide(l!.dtype), shape: [] }, { dtype: wide(l!.dtype), shape: [l!.shape[0]!, 1] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [l16, t, w]) => {
    const l = widen(g, l16!);
    const lse = g.reduceLogSumExp(l, [1], true);
    return [g.reduceSum(g.mul(g.sub(lse, g.gatherElements(l, t!, 1)), widen(g, w!)), [0, 1], false), lse];
  }),
  grad: (c) => {
    const gy = c.gy[0];
    if (c.gy[1]) throw new Error('SoftmaxCrossEntropy: its logsumexp output has no gradient');
    if (!gy) return [null, null, null];
    const [l, t, w] = c.x as Value[];
    const dl = c.needs(0) ? c.g.apply('SoftmaxCrossEntropyGrad', [l!, t!, w!, c.y[1]!, gy])[0]! : null;
    const dw32 = c.needs(2) ? c.g.mul(c.g.sub(c.y[1]!, widen(c.g, c.g.gatherElements(l!, t!, 1))), gy) : null;
    // (f16 logits and weights: the loss is f32; the weights' gradient goes back to their type)
    const dw = dw32 && w!.dtype !== dw32.dtype ? c.g.cast(dw32, w!.dtype) : dw32;
    return [dl, null, dw];
  },
});

def({
  // dlogits [N, V] = gy · w · (softmax(logits) − onehot(t)), reading the logits once (exp(l − lse))
  name: 'SoftmaxCrossEntropyGrad',
  nondiff: true, // a backward op: no second-order gradients (nothing differentiates a gradient)
  infer: (x) => {
    const [l] = need(x, 5);
    return [{ dtype: l!.dtype, shape: [...l!.shape] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [l, t, w, lse, gy]) => {
    const wg = g.mul(widen(g, w!), widen(g, gy!)); // [N, 1] (f16 weights: f32 math like the logits)
    const dl = g.scatterAdd(g.mul(g.exp(g.sub(widen(g, l!), lse!)), wg), t!, g.neg(wg), 1);
    return [l!.dtype === 'float16' ? g.cast(dl, 'float16') : dl]; // (f16 logits: f32 math, the gradient in f16)
  }),
});

/** float16 -> float32 (the type fused ops compute a float16 input's statistics in); others as they are. */
const wide = (t: DType): DType => (t === 'float16' ? 'float32' : t);
const widen = (g: GraphBuilder, v: Value): Value => (v.dtype === 'float16' ? g.cast(v, 'float32') : v);

/** Norm-gradient inference: dx like x, dscale (and dbias) like scale, the row statistic [..., 1] f32. */
function normGradInfer(x: readonly (Value | null)[], outs: number, stats: number) {
  const [v, s, gy] = need(x, 3);
  floatIn(v!);
  sameType([v!, s!, gy!]);
  if (!gy!.shape.every((d, i) => d === v!.shape[i])) throw new Error(`gy ${shapeStr(gy!.shape)} must have x's shape ${shapeStr(v!.shape)}`);
  const stat = { dtype: 'float32' as DType, shape: [...v!.shape.slice(0, -1), 1] };
  return [{ dtype: v!.dtype, shape: [...v!.shape] }, ...new Array(outs).fill({ dtype: v!.dtype, shape: [...s!.shape] }), ...new Array(stats).fill(stat)];
}

def({
  // RMSNorm backward: x, scale, gy -> dx, dscale [D] (summed over rows), r = 1/rms [..., 1]
  name: 'RMSNormGrad',
  nondiff: true, // a backward op: no second-order gradients (nothing differentiates a gradient)
  optionalOutputs: true,
  infer: (x) => normGradInfer(x, 1, 1),
  lower: (c) => lowerAsDecomposition(c, (g, [x, s, gy]) => {
    // the same nodes as SimplifiedLayerNormalization's decomposed rule (nn.ts)
    const r = g.pow(g.add(g.reduceMean(g.mul(x!, x!), [-1], true), num(c.node.attrs, 'epsilon')), -0.5);
    const xh = g.mul(x!, r);
    const gxh = g.mul(gy!, s!);
    const dx = g.mul(g.sub(gxh, g.mul(xh, g.reduceMean(g.mul(gxh, xh), [-1], true))), r);
    const lead = x!.shape.slice(0, -1).map((_, i) => i);
    return [dx, g.reduceSum(g.mul(gy!, xh), lead, false), g.cast(r, 'float32')];
  }),
});

def({
  // LayerNorm backward: x, scale, gy -> dx, dscale, dbias [D] (summed over rows), μ and r = 1/std [..., 1]
  name: 'LayerNormGrad',
  nondiff: true, // a backward op: no second-order gradients (nothing differentiates a gradient)
  optionalOutputs: true,
  infer: (x) => normGradInfer(x, 2, 2),
  lower: (c) => lowerAsDecomposition(c, (g, [x, s, gy]) => {
    const mu = g.reduceMean(x!, [-1], true);
    const xc = g.sub(x!, mu);
    const r = g.pow(g.add(g.reduceMean(g.mul(xc, xc), [-1], true), num(c.node.attrs, 'epsilon')), -0.5);
    const xh = g.mul(xc, r);
    const gxh = g.mul(gy!, s!);
    const dx = g.mul(g.sub(g.sub(gxh, g.reduceMean(gxh, [-1], true)), g.mul(xh, g.reduceMean(g.mul(gxh, xh), [-1], true))), r);
    const lead = x!.shape.slice(0, -1).map((_, i) => i);
    return [dx, g.reduceSum(g.mul(gy!, xh), lead, false), g.reduceSum(gy!, lead, false), g.cast(mu, 'float32'), g.cast(r, 'float32')];
  }),
});

/**
 * The lm_head logits of the decomposition: cast to f32, times `scale` (Granite's 1/logits_scaling),
 * soft-capped (cap · tanh(l / cap), Gemma 2) when `softcap` > 0 — forward.ts's headLogits + finishLogits.
 */
function headLogitsOf(g: GraphBuilder, x: Value, w: Value, a: Attrs): Value {
  let l = g.cast(g.gemm(x, w, null, { transB: true }), lossType(x));
  const scale = num(a, 'scale'), cap = num(a, 'softcap') || 0;
  if (scale !== 1) l = g.mul(l, scale);
  if (cap) l = g.mul(g.tanh(g.div(l, cap)), cap);
  return l;
}

/** The loss is computed in f32 (float64 inputs, for the gradient checks, stay float64). */
const lossType = (x: Value): DType => (x.dtype === 'float64' ? 'float64' : 'float32');

function linearCeInfer(x: readonly (Value | null)[], biasAt: number): { N: number; C: number; V: number } {
  const [h, w, t, wt] = need(x, 4);
  floatIn(h!);
  floatIn(w!);
  const [N, C] = staticShape(h!.shape, 'hidden states');
  if (h!.rank !== 2 || w!.rank !== 2 || w!.shape[1] !== C || t!.rank !== 2 || t!.shape[0] !== N || t!.shape[1] !== 1 || wt!.rank !== 2 || wt!.shape[0] !== N) {
    throw new Error(`expected x [N, C], lm_head [V, C], targets [N, 1], weights [N, 1]; got ${shapeStr(h!.shape)}, ${shapeStr(w!.shape)}, ${shapeStr(t!.shape)}, ${shapeStr(wt!.shape)}`);
  }
  const V = w!.shape[0] as number;
  const bias = x[biasAt];
  if (bias && (bias.dtype !== lossType(h!) || bias.rank !== 1 || bias.shape[0] !== V)) {
    throw new Error(`expected a column bias ${lossType(h!)} [${V}] (one value per lm_head row); got ${bias.dtype} ${shapeStr(bias.shape)}`);
  }
  return { N: N!, C: C!, V };
}

/**
 * Targets outside [0, V) contribute nothing: `inRange` [N, 1] (1 or 0, of type `dt`) and the targets with those
 * replaced by column 0 (`tc`: GatherElements / ScatterElements refuse an index out of range).
 */
function targetsIn(g: GraphBuilder, t: Value, V: number, dt: DType): { tc: Value; inRange: Value } {
  const lo = g.greater(t, g.constant([-1], t.dtype, [])), hi = g.less(t, g.constant([V], t.dtype, []));
  const zero = g.zerosLike(t);
  return { tc: g.where(lo, g.where(hi, t, zero), zero), inRange: g.mul(g.cast(lo, dt), g.cast(hi, dt)) };
}

/** The logits with the optional column bias added after the soft-cap (a masked column: −1e9). */
const biased = (g: GraphBuilder, l: Value, bias: Value | null): Value => (bias ? g.add(l, bias) : l);

def({
  // The lm_head GEMM and the softmax cross-entropy in one op, so the GPU backend never holds the [N, V]
  // logits: loss = Σ_i w_i (logsumexp(l_i) − l_i[t_i]) with l = head(x · Wᵀ) (headLogitsOf) + bias, lse [N, 1].
  // inputs x [N, C], lm_head W [V, C] (frozen), targets int [N, 1], weights f32 [N, 1], optional bias f32 [V]
  // (added to every row's logits after the soft-cap: −1e9 takes a column out of the softmax, as forward.ts
  // masks the base columns of re-used token ids);
  // attrs scale, softcap (0: none), chunk (vocabulary rows per chunk on the GPU: kernels/cross-entropy.ts),
  // rows (1: the per-row nll w_i (lse_i − l_i[t_i]) [N, 1] instead of its sum, for the preference losses; the
  // gradient then takes a per-row gy [N, 1]).
  // A target outside [0, V) contributes nothing (weight 0): forward.ts's trainable new-token rows put their
  // columns outside W and combine their logsumexp with this op's lse output, which therefore has a gradient
  // (d lse_i / d l_i = softmax(l_i)).
  name: 'LinearCrossEntropy',
  optionalOutputs: true,
  infer: (x, a) => {
    const { N } = linearCeInfer(x, 4);
    const dtype = lossType(x[0]!);
    return [{ dtype, shape: a.rows ? [N, 1] : [] }, { dtype, shape: [N, 1] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [x, w, t, wt, bias]) => {
    const V = w!.shape[0] as number;
    const l = biased(g, headLogitsOf(g, x!, w!, c.node.attrs), bias ?? null);
    const lse = g.reduceLogSumExp(l, [1], true);
    const { tc, inRange } = targetsIn(g, t!, V, l.dtype);
    const nll = g.mul(g.mul(g.sub(lse, g.gatherElements(l, tc, 1)), g.cast(wt!, l.dtype)), inRange);
    return [c.node.attrs.rows ? nll : g.reduceSum(nll, [0, 1], false), lse];
  }),
  grad: (c) => {
    const [gy, glse] = c.gy;
    const none = c.x.map(() => null);
    if (!gy && !glse) return none;
    if (c.needs(1)) throw new Error('LinearCrossEntropy: the lm_head weight is frozen here (trainable head rows use their own GEMM: forward.ts)');
    if (c.needs(3) || c.needs(4)) throw new Error('LinearCrossEntropy: the loss weights and the column bias have no gradient here');
    const [x, w, t, wt, bias] = c.x as (Value | null)[];
    const g0 = gy ?? c.g.scalar(0, c.y[0]!.dtype); // only the lse's gradient: the nll's part is 0
    const dx = c.needs(0) ? c.g.apply('LinearCrossEntropyGrad', [x!, w!, t!, wt!, c.y[1]!, g0, glse ?? null, bias ?? null], c.node.attrs)[0]! : null;
    return [dx, ...none.slice(1)];
  },
});

def({
  // dx [N, C] of LinearCrossEntropy from x, W, targets, weights, lse, gy, and optionally glse [N, 1] (the lse
  // output's gradient) and the column bias [V]: dl = (gy · w + glse) · softmax(l) − gy · w · onehot(t) (no
  // one-hot for a target outside [0, V)), through the soft-cap (1 − (l / cap)², l before the bias) and the
  // scale, then dx = dl · W; the GPU recomputes l one vocabulary chunk at a time
  name: 'LinearCrossEntropyGrad',
  nondiff: true, // a backward op: no second-order gradients (nothing differentiates a gradient)
  infer: (x) => {
    linearCeInfer(x, 7);
    need(x, 6);
    const glse = x[6];
    if (glse && (glse.rank !== 2 || glse.shape[0] !== x[0]!.shape[0] || glse.shape[1] !== 1)) throw new Error(`expected the lse gradient [N, 1]; got ${shapeStr(glse.shape)}`);
    return [{ dtype: x[0]!.dtype, shape: [...x[0]!.shape] }];
  },
  lower: (c) => lowerAsDecomposition(c, (g, [x, w, t, wt, lse, gy, glse, bias]) => {
    const V = w!.shape[0] as number;
    const l = headLogitsOf(g, x!, w!, c.node.attrs);
    const { tc, inRange } = targetsIn(g, t!, V, l.dtype);
    const wg = g.mul(g.mul(g.cast(wt!, l.dtype), gy!), inRange); // [N, 1]
    const ws = glse ? g.add(wg, glse) : wg;
    let dl = g.scatterAdd(g.mul(g.exp(g.sub(biased(g, l, bias ?? null), lse!)), ws), tc, g.neg(wg), 1);
    const scale = num(c.node.attrs, 'scale'), cap = num(c.node.attrs, 'softcap') || 0;
    if (cap) dl = g.mul(dl, g.sub(1, g.mul(g.div(l, cap), g.div(l, cap))));
    if (scale !== 1) dl = g.mul(dl, scale);
    return [g.matmul(g.cast(dl, x!.dtype), g.cast(w!, x!.dtype))];
  }),
});
