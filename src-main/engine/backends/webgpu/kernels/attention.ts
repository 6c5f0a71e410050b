/**
 * Flash attention (fused.ts FlashAttention / FlashAttentionGrad): causal, grouped-query (query head h
 * reads kv head ⌊h/G⌋, K/V never repeated), packed samples (a query attends only to keys with its segment
 * id), sliding window, soft-capped scores (Gemma 2). No T×T matrix exists: each thread owns one query row (forward, dQ) or one key row
 * (dK/dV) and walks tiles of the other side staged in workgroup memory.
 *
 *  forward   one thread per query row: online softmax (running max m and sum l, the output accumulator
 *            rescaled when m grows), o = acc / l, lse = m + log l saved for the backward.
 *  backward  1. one thread per query row: delta = rowsum(dO ∘ o), then over its keys
 *               p = exp(s − lse), ds = p (dO·v − delta), dq += ds k;
 *            2. one thread per key row of kv head k: over the G query heads and the queries that see it,
 *               dv += p dO, dk += ds q (P recomputed per tile from the saved lse).
 * Shapes: q, o [B, H, T, D]; k, v [B, K, T, D]; lse, delta [B, H, T]; segments [B, T].
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, lit } from '../wgsl';
import { ENTRY, inShape, type EmitCtx, type Emitter } from './context';

/** Rows (threads) per workgroup. */
const WG = 64;
/** Workgroup memory the tiles may use (WebGPU's guaranteed minimum is 16 KiB). */
const SHARED_BYTES = 16384 - 512;
const NEG = '-3.4028e+38f';

interface Dims { B: number; H: number; K: number; G: number; T: number; D: number; scale: string; W: number; tile: number; cap: number }

function dims(c: EmitCtx): Dims {
  const [B, H, T, D] = inShape(c, 0);
  const K = inShape(c, 1)[1]!;
  // two [tile, D] f32 tiles and a few per-row scalars
  let tile = 1;
  while (tile < WG && 2 * tile * (8 * D! + 12) <= SHARED_BYTES) tile *= 2;
  return { B: B!, H: H!, K, G: H! / K, T: T!, D: D!, scale: lit(num(c.node.attrs, 'scale')), W: num(c.node.attrs, 'window') || 0, tile, cap: num(c.node.attrs, 'softcap') || 0 };
}

/**
 * The load function of input i: its buffer, or where the plan folded a Transpose into this node (plan.ts
 * foldedLoads: the [B, T, H, D] projections and gradients read in place), a function reading it through the
 * permuted strides; either takes the element index in input i's own [B, H, T, D] layout.
 */
function loadOf(c: EmitCtx, k: KernelBuilder, i: number): string {
  return c.folded?.(i) && c.load ? c.load(i, k) : k.input(c.in(i));
}

/** RoPE inside the kernel (the node's cos, sin inputs): WGSL load functions of rotated q / k elements and the rotation back. */
interface Rope {
  /** Declares `fn name(rb, b, t, dd) -> f32`: element dd of the row starting at rb (position t, batch b) of `ld`, rotated. */
  load(name: string, ld: string): string;
  /** WGSL: stores the private row `arr` (a gradient w.r.t. the rotated row) rotated back, st(base + d, ·), position t. */
  storeBack(arr: string, st: string, base: string, t: string): string;
}

/**
 * The node's RoPE (fused.ts: cos, sin [T, D] or per row [B, T, D] after the segments; attr rotary = the rotated
 * dims R): rotated x[d] = x[d]·cos + r(x)[d]·sin with r(x)[d] = −x[d + R/2] (d < R/2), x[d − R/2] (d < R), else 0,
 * which is x·rot for forward.ts's rotate-half matrix; rotated back: g[d]·cos[d] + Σ_j g[j] sin[j] rot[d, j].
 */
function ropeIn(c: EmitCtx, k: KernelBuilder, d: Dims, at: number): Rope | null {
  if (!c.node.inputs[at]) return null;
  const ldc = k.input(c.in(at)), lds = k.input(c.in(at + 1));
  const perRow = inShape(c, at).length === 3;
  const R = num(c.node.attrs, 'rotary'), h = R / 2;
  const ti = (b: string, t: string, dd: string) => `${perRow ? `(${b} * ${d.T}u + ${t})` : t} * ${d.D}u + ${dd}`;
  return {
    load: (name, ld) => {
      k.decl(`fn ${name}(rb: u32, b: u32, t: u32, dd: u32) -> f32 { let ti = ${ti('b', 't', 'dd')}; var r = 0.0; ` +
        `if (dd < ${h}u) { r = -${ld}(rb + dd + ${h}u); } else if (dd < ${R}u) { r = ${ld}(rb + dd - ${h}u); } return ${ld}(rb + dd) * ${ldc}(ti) + r * ${lds}(ti); }`);
      return name;
    },
    storeBack: (arr, st, base, t) => overD(d, `let ti = ${ti('b', t, 'd')}; var r = 0.0; ` +
      `if (d < ${h}u) { r = ${arr}[d + ${h}u] * ${lds}(ti + ${h}u); } else if (d < ${R}u) { r = -(${arr}[d - ${h}u] * ${lds}(ti - ${h}u)); } ${st}(${base} + d, ${arr}[d] * ${ldc}(ti) + r);`),
  };
}

/** WGSL: `for d in 0..D` over a private/shared row. */
const overD = (d: Dims, body: string) => `for (var d = 0u; d < ${d.D}u; d = d + 1u) { ${body} }`;

/**
 * WGSL statements: the score `x` of the dot product `dot` (scaled, soft-capped when the op is), and `dcap`,
 * the soft-cap's derivative 1 − tanh² (1 without one).
 */
function score(d: Dims): string {
  if (!d.cap) return `let x = dot * ${d.scale}; let dcap = 1.0;`;
  // tanh's argument clamped as in the elementwise kernels (tanh(±15) = ±1 in f32)
  return `let th = tanh(clamp(dot * ${d.scale} / ${lit(d.cap)}, -15.0, 15.0)); let x = ${lit(d.cap)} * th; let dcap = 1.0 - th * th;`;
}

/** Is key s visible from query t (both < T)? Causal, window, segment. */
function visible(d: Dims, t: string, s: string, segT: string | null, segS: string | null): string {
  const terms = [`${s} <= ${t}`];
  if (d.W) terms.push(`${t} - ${s} < ${d.W}u`);
  if (segT && segS) terms.push(`${segT} == ${segS}`);
  return terms.join(' && ');
}

/**
 * A query-row kernel's start (forward and dQ, one thread per query row t of head h): the K/V tiles'
 * workgroup memory, the entry point, and the row's indices — `row` into [B, H, T], `qb` its first element,
 * `kb` the first element of its kv head, `segq` its segment id.
 */
function queryRowStart(k: KernelBuilder, d: Dims, lds: string | null): string {
  const { T, D, tile } = d;
  k.decl(`var<workgroup> ks: array<f32, ${tile * D}>;`);
  k.decl(`var<workgroup> vs: array<f32, ${tile * D}>;`);
  if (lds) k.decl(`var<workgroup> sk: array<f32, ${tile}>;`);
  return `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let h = wid.y;
  let t0 = wid.x * ${WG}u;
  let t = t0 + li;
  let valid = t < ${T}u;
  let tq = min(t, ${T - 1}u);
  let row = (b * ${d.H}u + h) * ${T}u + tq;
  let qb = row * ${D}u;
  let kb = (b * ${d.K}u + h / ${d.G}u) * ${T * D}u;
  ${lds ? `let segq = ${lds}(b * ${T}u + tq);` : ''}`;
}

/**
 * WGSL: a query-row kernel's walk over the keys query t may see (forward and dQ): tiles of K and V (and their
 * segment ids) staged in workgroup memory, then `body` for each visible key s, row j of the tile.
 */
function overVisibleKeys(d: Dims, ldk: string, ldv: string, lds: string | null, body: string, ropeK: string | null = null): string {
  const { T, D, tile } = d;
  return `let tEnd = min(t0 + ${WG}u, ${T}u);
  ${d.W ? `let sStart = select(0u, t0 + 1u - ${d.W}u, t0 + 1u > ${d.W}u);` : 'let sStart = 0u;'}
  for (var s0 = sStart; s0 < tEnd; s0 = s0 + ${tile}u) {
    for (var e = li; e < ${tile * D}u; e = e + ${WG}u) {
      let s = min(s0 + e / ${D}u, ${T - 1}u);
      ks[e] = ${ropeK ? `${ropeK}(kb + s * ${D}u, b, s, e % ${D}u)` : `${ldk}(kb + s * ${D}u + e % ${D}u)`};
      vs[e] = ${ldv}(kb + s * ${D}u + e % ${D}u);
    }
    ${lds ? `if (li < ${tile}u) { sk[li] = ${lds}(b * ${T}u + min(s0 + li, ${T - 1}u)); }` : ''}
    workgroupBarrier();
    if (valid) {
      for (var j = 0u; j < ${tile}u; j = j + 1u) {
        let s = s0 + j;
        if (s > t) { break; }
        if (!(${visible(d, 't', 's', lds ? 'segq' : null, lds ? 'sk[j]' : null)})) { continue; }${body}
      }
    }
    workgroupBarrier();
  }`;
}

function forward(c: EmitCtx): void {
  const d = dims(c);
  const seg = c.node.inputs[3] ? 3 : -1;
  const k = new KernelBuilder('FlashAttention');
  const ldq = loadOf(c, k, 0), ldk = loadOf(c, k, 1), ldv = loadOf(c, k, 2);
  const lds = seg >= 0 ? k.input(c.in(seg)) : null;
  const rope = ropeIn(c, k, d, 4);
  const rq = rope?.load('rope_q', ldq), rk = rope?.load('rope_k', ldk) ?? null;
  const sto = k.output(c.out(0));
  const stl = c.used(1) ? k.output(c.out(1)) : null;
  const { T, D } = d;
  c.dispatch(k, `${queryRowStart(k, d, lds)}
  var q: array<f32, ${D}>;
  var acc: array<f32, ${D}>;
  ${overD(d, `q[d] = ${rq ? `${rq}(qb, b, tq, d)` : `${ldq}(qb + d)`}; acc[d] = 0.0;`)}
  var m = ${NEG};
  var l = 0.0;
  ${overVisibleKeys(d, ldk, ldv, lds, `
        var dot = 0.0;
        ${overD(d, `dot = dot + q[d] * ks[j * ${D}u + d];`)}
        ${score(d)}
        if (x > m) {
          let cr = exp(m - x);
          l = l * cr;
          ${overD(d, 'acc[d] = acc[d] * cr;')}
          m = x;
        }
        let p = exp(x - m);
        l = l + p;
        ${overD(d, `acc[d] = acc[d] + p * vs[j * ${D}u + d];`)}
`, rk)}
  if (valid) {
    let inv = 1.0 / l;
    ${overD(d, `${sto}(qb + d, acc[d] * inv);`)}
    ${stl ? `${stl}(row, m + log(l));` : ''}
  }
}`, [Math.ceil(T / WG), d.H, d.B]);
}

function backward(c: EmitCtx): void {
  const d = dims(c);
  const { T, D, tile, G } = d;
  const hasSeg = !!c.node.inputs[6];
  // ---- 1. dq and delta, one thread per query row ----
  {
    const k = new KernelBuilder('FlashAttentionGradQ');
    const ldq = loadOf(c, k, 0), ldk = loadOf(c, k, 1), ldv = loadOf(c, k, 2), ldo = loadOf(c, k, 3), ldl = loadOf(c, k, 4), ldg = loadOf(c, k, 5);
    const lds = hasSeg ? k.input(c.in(6)) : null;
    const rope = ropeIn(c, k, d, 7);
    const rq = rope?.load('rope_q', ldq), rk = rope?.load('rope_k', ldk) ?? null;
    const stq = c.used(0) ? k.output(c.out(0)) : null;
    const std = k.output(c.out(3));
    c.dispatch(k, `${queryRowStart(k, d, lds)}
  var q: array<f32, ${D}>;
  var go: array<f32, ${D}>;
  var dq: array<f32, ${D}>;
  var delta = 0.0;
  ${overD(d, `q[d] = ${rq ? `${rq}(qb, b, tq, d)` : `${ldq}(qb + d)`}; go[d] = ${ldg}(qb + d); dq[d] = 0.0; delta = delta + go[d] * ${ldo}(qb + d);`)}
  let lse = ${ldl}(row);
  ${overVisibleKeys(d, ldk, ldv, lds, `
        var dot = 0.0;
        var dp = 0.0;
        ${overD(d, `dot = dot + q[d] * ks[j * ${D}u + d]; dp = dp + go[d] * vs[j * ${D}u + d];`)}
        ${score(d)}
        let p = exp(x - lse);
        let ds = p * (dp - delta) * dcap * ${d.scale};
        ${overD(d, `dq[d] = dq[d] + ds * ks[j * ${D}u + d];`)}
`, rk)}
  if (valid) {
    ${!stq ? '' : rope ? rope.storeBack('dq', stq, 'qb', 'tq') : overD(d, `${stq}(qb + d, dq[d]);`)}
    ${std}(row, delta);
  }
}`, [Math.ceil(T / WG), d.H, d.B]);
  }
  if (!c.used(1) && !c.used(2)) return;
  // ---- 2. dk and dv, one thread per key row of kv head kh ----
  const k = new KernelBuilder('FlashAttentionGradKV');
  const ldq = loadOf(c, k, 0), ldk = loadOf(c, k, 1), ldv = loadOf(c, k, 2), ldl = loadOf(c, k, 4), ldg = loadOf(c, k, 5);
  const lds = hasSeg ? k.input(c.in(6)) : null;
  const rope = ropeIn(c, k, d, 7);
  const rq = rope?.load('rope_q', ldq), rk = rope?.load('rope_k', ldk);
  const ldd = k.input(c.out(3));
  const stk = c.used(1) ? k.output(c.out(1)) : null;
  const stv = c.used(2) ? k.output(c.out(2)) : null;
  k.decl(`var<workgroup> qs: array<f32, ${tile * D}>;`);
  k.decl(`var<workgroup> gs: array<f32, ${tile * D}>;`);
  k.decl(`var<workgroup> ls: array<f32, ${tile}>;`);
  k.decl(`var<workgroup> dls: array<f32, ${tile}>;`);
  if (lds) k.decl(`var<workgroup> sq: array<f32, ${tile}>;`);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wid.z;
  let kh = wid.y;
  let s0w = wid.x * ${WG}u;
  let s = s0w + li;
  let valid = s < ${T}u;
  let sk = min(s, ${T - 1}u);
  let kb = ((b * ${d.K}u + kh) * ${T}u + sk) * ${D}u;
  ${lds ? `let segk = ${lds}(b * ${T}u + sk);` : ''}
  var kr: array<f32, ${D}>;
  var vr: array<f32, ${D}>;
  var dk: array<f32, ${D}>;
  var dv: array<f32, ${D}>;
  ${overD(d, `kr[d] = ${rk ? `${rk}(kb, b, sk, d)` : `${ldk}(kb + d)`}; vr[d] = ${ldv}(kb + d); dk[d] = 0.0; dv[d] = 0.0;`)}
  ${d.W ? `let tEnd = min(s0w + ${WG - 1 + d.W}u, ${T}u);` : `let tEnd = ${T}u;`}
  for (var gi = 0u; gi < ${G}u; gi = gi + 1u) {
    let rb = (b * ${d.H}u + kh * ${G}u + gi) * ${T}u;
    for (var t0 = s0w; t0 < tEnd; t0 = t0 + ${tile}u) {
      for (var e = li; e < ${tile * D}u; e = e + ${WG}u) {
        let t = min(t0 + e / ${D}u, ${T - 1}u);
        qs[e] = ${rq ? `${rq}((rb + t) * ${D}u, b, t, e % ${D}u)` : `${ldq}((rb + t) * ${D}u + e % ${D}u)`};
        gs[e] = ${ldg}((rb + t) * ${D}u + e % ${D}u);
      }
      if (li < ${tile}u) {
        let t = min(t0 + li, ${T - 1}u);
        ls[li] = ${ldl}(rb + t);
        dls[li] = ${ldd}(rb + t);
        ${lds ? `sq[li] = ${lds}(b * ${T}u + t);` : ''}
      }
      workgroupBarrier();
      if (valid) {
        for (var j = 0u; j < ${tile}u; j = j + 1u) {
          let t = t0 + j;
          if (t >= tEnd) { break; }
          if (!(${visible(d, 't', 's', lds ? 'sq[j]' : null, lds ? 'segk' : null)})) { continue; }
          var dot = 0.0;
          var dp = 0.0;
          ${overD(d, `dot = dot + qs[j * ${D}u + d] * kr[d]; dp = dp + gs[j * ${D}u + d] * vr[d];`)}
          ${score(d)}
          let p = exp(x - ls[j]);
          let ds = p * (dp - dls[j]) * dcap * ${d.scale};
          ${overD(d, `dv[d] = dv[d] + p * gs[j * ${D}u + d]; dk[d] = dk[d] + ds * qs[j * ${D}u + d];`)}
        }
      }
      workgroupBarrier();
    }
  }
  if (valid) {
    ${!stk ? '' : rope ? rope.storeBack('dk', stk, 'kb', 'sk') : overD(d, `${stk}(kb + d, dk[d]);`)}
    ${stv ? overD(d, `${stv}(kb + d, dv[d]);`) : ''}
  }
}`, [Math.ceil(T / WG), d.K, d.B]);
}

export const ATTENTION: Record<string, Emitter> = {
  FlashAttention: forward,
  FlashAttentionGrad: backward,
};
