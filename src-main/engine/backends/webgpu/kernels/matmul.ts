/**
 * MatMul (batched, batch dims broadcast) and Gemm (transA/transB, alpha, beta·C broadcast) on the
 * device's GEMM (kernels/gemm.ts): the tiled f32-accumulate kernel (16×16 tiles staged in workgroup
 * memory; f16/bf16 weights unpacked in the tile load), or the subgroup-matrix (tensor-core) kernel for
 * GEMMs with a 16-bit weight where the adapter offers it (device.ts's report says which and why).
 * Transposes are strides, never copies.
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, coords, lit, roundHalf, stridesOf, type Ref } from '../wgsl';
import { broadcastStrides, inShape, outShape, prod, shapeOf, type EmitCtx, type Emitter } from './context';
import { emitGemm, emitTiledGemmSegments, narrowStorage, sideLoad, type GemmProblem, type GemmSegment, type SegmentedGemmProblem, type SideProduct, type TiledGemm } from './gemm';
import { nf4Problem } from './nf4';

/** An operand: input `i` of the node, its buffer (null: folded, computed in the load: plan.ts), batch strides, row/column strides. */
interface Operand { i: number; ref: Ref | null; batch: number[]; sRow: number; sCol: number }

/** out[z, m, n] = alpha Σ_k A[z, m, k] B[z, k, n] + beta C[m, n]; `batch` = output batch dims. */
function gemmKernel(c: EmitCtx, name: string, batch: number[], M: number, N: number, K: number,
  A: Operand, B: Operand, C: { i: number; ref: Ref | null; sRow: number; sCol: number } | null, alpha: number, beta: number): void {
  const k = new KernelBuilder(c.epilogue ? `${name}+${c.epilogue.name}` : name);
  // the weight (B, or A where B is the activation) decides whether the subgroup-matrix path may round to f16
  // (a folded operand by its type: a 16-bit SwiGLU computed in the load holds 16-bit values, as stored)
  const narrow = (o: Operand) => (o.ref ? narrowStorage(o.ref) : c.node.inputs[o.i]?.dtype === 'float16');
  emitGemm(c, gemmSpec(c, k, batch, M, N, K, A, B, C, alpha, beta), narrow(A) || narrow(B));
}

/** `gemmKernel`'s GEMM with its bindings declared in `k` (its own kernel's, or a grouped kernel's: group.ts). */
function gemmSpec(c: EmitCtx, k: KernelBuilder, batch: number[], M: number, N: number, K: number,
  A: Operand, B: Operand, C: { i: number; ref: Ref | null; sRow: number; sCol: number } | null, alpha: number, beta: number): TiledGemm {
  const ld = (o: { i: number; ref: Ref | null }) => (o.ref ? k.input(o.ref) : c.load!(o.i, k));
  const ldA = ld(A), ldB = ld(B);
  const over = inPlaceC(c, k, batch, N, C, beta);
  const ldC = over ? over[0] : C ? ld(C) : '';
  const put = c.epilogue ? c.epilogue.store(k) : ((st: string) => (idx: string, v: string) => `${st}(${idx}, ${v});`)(over ? over[1] : k.output(c.out(0)));
  const base = (o: Operand) => o.batch.map((s, d) => (s ? `z${d} * ${s}u` : '')).filter(Boolean).join(' + ') || '0u';
  const mul = (v: string, s: number) => (s === 1 ? v : `${v} * ${s}u`);
  const epilogue = (acc: string) => {
    let e = alpha === 1 ? acc : `${lit(alpha)} * ${acc}`;
    if (C && beta !== 0) e += ` + ${beta === 1 ? '' : `${lit(beta)} * `}${ldC}(${mul('row', C.sRow)} + ${mul('col', C.sCol)})`;
    return e;
  };
  return {
    k, M, N, K, Z: prod(batch),
    prologue: `${coords('z', batch, 'z')}
  let aBase = ${base(A)};
  let bBase = ${base(B)};`,
    a: (row, ka) => `${ldA}(aBase + ${mul(row, A.sRow)} + ${mul(ka, A.sCol)})`,
    b: (kb, col) => `${ldB}(bBase + ${mul(kb, B.sRow)} + ${mul(col, B.sCol)})`,
    store: (row, col, acc) => put(`z * ${M * N}u + ${row} * ${N}u + ${col}`, epilogue(acc)),
  };
}

/**
 * The result written over C in place where this Gemm is C's last reader and C is a full [M, N] tensor of the
 * result's type (QLoRA: a projection's LoRA term added to its Nf4Gemm base result, which is then not held beside
 * it): each element of C is read and written by the one thread that computes it, after its K loop, so the
 * values are those of a separate output. [load, store] of the one read_write binding, or null.
 */
function inPlaceC(c: EmitCtx, k: KernelBuilder, batch: number[], N: number, C: { i: number; ref: Ref | null; sRow: number; sCol: number } | null, beta: number): [string, string] | null {
  if (!C?.ref || beta === 0 || c.epilogue || batch.length || C.sRow !== N || C.sCol !== 1) return null;
  const x = c.node.inputs[C.i], y = c.node.outputs[0];
  if (!x || !y || x.dtype !== y.dtype || C.ref.storage === 'f16' || C.ref.storage === 'bf16' || c.lastUse?.(C.i) !== true) return null;
  c.view(0, C.ref);
  return k.inout(C.ref);
}

/** Is input i of a chained Gemm the side product computed in its dispatch (plan.ts loraSides: never bound)? */
const sideRead = (c: EmitCtx, i: number): boolean => i === 0 && !!c.chained?.side && c.node.inputs[0] === c.chained.side.node.outputs[0];

/** Input i's buffer, or null where the plan folded it into this kernel's loads (`EmitCtx.load`). */
const operand = (c: EmitCtx, i: number): Ref | null => (c.folded?.(i) ? null : c.in(i));

/** Element strides of an operand's batch dims as read for the output batch `outBatch` (0 = broadcast). */
function batchStrides(shape: number[], outBatch: number[]): number[] {
  const full = stridesOf(shape);
  const b = shape.slice(0, -2);
  const off = outBatch.length - b.length;
  return outBatch.map((d, k) => {
    const j = k - off;
    return j < 0 || (b[j] === 1 && d !== 1) ? 0 : full[j]!;
  });
}

export const MATMUL: Record<string, Emitter> = {
  MatMul: (c) => {
    const a = inShape(c, 0), b = inShape(c, 1), o = outShape(c);
    const M = o[o.length - 2]!, N = o[o.length - 1]!, K = a[a.length - 1]!;
    const batch = o.slice(0, -2);
    gemmKernel(c, 'MatMul', batch, M, N, K,
      { i: 0, ref: operand(c, 0), batch: batchStrides(a, batch), sRow: K, sCol: 1 },
      { i: 1, ref: operand(c, 1), batch: batchStrides(b, batch), sRow: N, sCol: 1 }, null, 1, 0);
  },
  Gemm: (c) => {
    // chained: C is the other Gemm's result, computed in this dispatch (never stored)
    const g = gemmParts(c.node, (i) => (c.chained && (i === 2 || sideRead(c, i)) ? null : operand(c, i)));
    if (c.chained) {
      const ch = c.chained;
      chainedGemmKernel(c, g, chainedParts(ch));
      return;
    }
    gemmKernel(c, 'Gemm', [], g.M, g.N, g.K, g.A, g.B, g.C, g.alpha, g.beta);
  },
  // QLoRA's base GEMM (kernels/nf4.ts: the weight dequantized in the tile load); chained: its C (input 8) is the
  // other GEMM's result, computed in this dispatch (the backward's dx sum: dy·W_nf4 + (dy·B)·A of the previous pair)
  Nf4Gemm: (c) => {
    if (c.chained) {
      chainedGemmKernel(c, null, chainedParts(c.chained));
      return;
    }
    const k = new KernelBuilder('Nf4Gemm');
    emitGemm(c, { k, ...nf4Problem(c, k, 'nf4w') }, true);
  },
};

/**
 * A 2-D MatMul or a Gemm as one problem of a grouped kernel `k` (backends/webgpu/group.ts), with what the plan
 * gave it (`c.chained`: two K segments; `c.folded` operands; `c.epilogue`): the same operand loads, sums and
 * store as its own dispatch, so grouped results equal ungrouped ones bit for bit. `k` binds each tensor once
 * (group.ts's kernel deduplicates `input`).
 */
export function gemmProblem(c: EmitCtx, k: KernelBuilder): GemmProblem | SegmentedGemmProblem {
  if (c.node.op === 'Nf4Gemm') return c.chained ? chainedSpec(c, k, null, chainedParts(c.chained)) : nf4Problem(c, k, nf4Name(k));
  if (c.node.op === 'MatMul') {
    const a = inShape(c, 0), [M, N] = outShape(c) as [number, number], K = a[1]!;
    if (a.length !== 2) throw new Error(`MatMul: a grouped GEMM takes 2-D operands (got ${a.length}-D).`);
    return oneMatrix(gemmSpec(c, k, [], M, N, K, { i: 0, ref: operand(c, 0), batch: [], sRow: K, sCol: 1 }, { i: 1, ref: operand(c, 1), batch: [], sRow: N, sCol: 1 }, null, 1, 0));
  }
  const g = gemmParts(c.node, (i) => (c.chained && (i === 2 || sideRead(c, i)) ? null : operand(c, i)));
  if (c.chained) {
    const ch = c.chained;
    return chainedSpec(c, k, g, chainedParts(ch));
  }
  return oneMatrix(gemmSpec(c, k, [], g.M, g.N, g.K, g.A, g.B, g.C, g.alpha, g.beta));
}

/** A one-matrix TiledGemm as a grouped problem (its kernel and batch count belong to the group). */
export const oneMatrix = (t: TiledGemm): GemmProblem => ({ M: t.M, N: t.N, K: t.K, a: t.a, b: t.b, store: t.store, ...(t.prologue ? { prologue: t.prologue } : {}) });

/** The chained GEMM's parts (null: an Nf4Gemm, QLoRA's base GEMM: chainedSpec builds its segment from kernels/nf4.ts). */
function chainedParts(ch: NonNullable<EmitCtx['chained']>): GemmParts | null {
  if (ch.node.op === 'Nf4Gemm') return null;
  return gemmParts(ch.node, (i) => (ch.folded(i) || (i === 0 && ch.node.inputs[0] === ch.side?.node.outputs[0]) ? null : ch.in(i)));
}

/** NF4 dequantizing loads declared in a kernel so far (a group holds several NF4 GEMMs, each its own load function). */
const nf4Loads = new WeakMap<KernelBuilder, number>();

/** A fresh name for one more NF4 load in `k`. */
function nf4Name(k: KernelBuilder): string {
  const n = nf4Loads.get(k) ?? 0;
  nf4Loads.set(k, n + 1);
  return `nf4w${n}`;
}

interface GemmParts { M: number; N: number; K: number; A: Operand; B: Operand; C: { i: number; ref: Ref | null; sRow: number; sCol: number } | null; alpha: number; beta: number }

/** A Gemm node's sizes and operands (`ref(i)`: input i's buffer, null where folded). */
function gemmParts(node: EmitCtx['node'], ref: (i: number) => Ref | null): GemmParts {
  const at = node.attrs;
  const tA = !!num(at, 'transA'), tB = !!num(at, 'transB');
  const a = shapeOf(node.inputs[0]!), [M, N] = shapeOf(node.outputs[0]!) as [number, number];
  const K = tA ? a[0]! : a[1]!;
  // A' [M, K]: A [M, K] (row stride K) or A [K, M] read transposed; B' [K, N] likewise
  const A: Operand = { i: 0, ref: ref(0), batch: [], sRow: tA ? 1 : K, sCol: tA ? M : 1 };
  const B: Operand = { i: 1, ref: ref(1), batch: [], sRow: tB ? 1 : N, sCol: tB ? K : 1 };
  let C = null;
  if (node.inputs[2]) {
    const s = broadcastStrides(shapeOf(node.inputs[2]), [M, N]);
    C = { i: 2, ref: ref(2), sRow: s[0]!, sCol: s[1]! };
  }
  return { M, N, K, A, B, C, alpha: num(at, 'alpha'), beta: num(at, 'beta') };
}

/**
 * Two chained Gemms in one dispatch (plan.ts: the first's result is only the second's C, e.g. a base
 * projection and its LoRA term): out = α₂·(A₂B₂) + β₂·(α₁·(A₁B₁) + β₁·C₁), the two products summed into
 * separate accumulators over their own K (kernels/gemm.ts emitTiledGemmSegments), so each is the sum the
 * separate GEMM would form and the store rounds as the two stores did (a 16-bit first result rounded to the
 * compute type before it is added, where its own store would have). The first may be an Nf4Gemm (QLoRA's
 * base GEMM, `g1` null: x·W_nf4 (+ bias) through kernels/nf4.ts's dequantizing load). Tiled f32 kernel only (the
 * plan does not chain on the subgroup-matrix path).
 */
function chainedGemmKernel(c: EmitCtx, g2: GemmParts | null, g1: GemmParts | null): void {
  const base = c.chained?.side ? 'LoraGemm' : 'Gemm+Gemm';
  const k = new KernelBuilder(c.epilogue ? `${base}+${c.epilogue.name}` : base);
  emitTiledGemmSegments(c, { k, ...chainedSpec(c, k, g2, g1) }, c.gemm?.tile);
}

/**
 * `chainedGemmKernel`'s two K segments and store, declared in `k`. `g2` null: this node (G2) is QLoRA's Nf4Gemm,
 * its C (input 8) G1's result (the backward's dx sum, when G1 is the previous pair's LoRA term).
 */
function chainedSpec(c: EmitCtx, k: KernelBuilder, g2: GemmParts | null, g1: GemmParts | null): SegmentedGemmProblem {
  const ch = c.chained!;
  const side = ch.side;
  // which of the pair reads the side product x·P as its A (2: this node, 1: the chained one, 0: none)
  const y0 = side?.node.outputs[0];
  const lora = !y0 ? 0 : c.node.inputs[0] === y0 ? 2 : ch.node.inputs[0] === y0 ? 1 : 0;
  if (side && !lora) throw new Error(`${k.name}: neither chained Gemm reads the side product ${side.node} (plan.ts loraSides).`);
  if (!g2 && lora === 2) throw new Error(`${k.name}: the Nf4Gemm ${c.node} cannot read a side product.`);
  const ld2 = (o: { i: number; ref: Ref | null }) => (o.ref ? k.input(o.ref) : c.load!(o.i, k));
  const ld1 = (o: { i: number; ref: Ref | null }) => (o.ref ? k.input(o.ref) : ch.load(o.i, k));
  const put = c.epilogue ? c.epilogue.store(k) : ((st: string) => (idx: string, v: string) => `${st}(${idx}, ${v});`)(k.output(c.out(0)));
  const mul = (v: string, s: number) => (s === 1 ? v : `${v} * ${s}u`);
  const scaled = (f: number, e: string) => (f === 1 ? e : `${lit(f)} * ${e}`);
  const seg = (g: GemmParts, la: string, lb: string) => ({
    K: g.K,
    a: (row: string, ka: string) => `${la}(${mul(row, g.A.sRow)} + ${mul(ka, g.A.sCol)})`,
    b: (kb: string, col: string) => `${lb}(${mul(kb, g.B.sRow)} + ${mul(col, g.B.sCol)})`,
  });
  // G2's K segment, sizes and scales (an Nf4Gemm: its dequantizing load, its C left to the store below)
  let seg2: GemmSegment, M: number, N: number, alpha2 = 1, beta2 = 1;
  if (g2) {
    seg2 = seg(g2, lora === 2 ? '' : ld2(g2.A), ld2(g2.B));
    ({ M, N, alpha: alpha2, beta: beta2 } = g2);
  } else {
    const p = nf4Problem(c, k, nf4Name(k), c, true);
    seg2 = { K: p.K, a: p.a, b: p.b };
    ({ M, N } = p);
  }
  // G1's K segment and its result as its own store computes it (a Gemm: alpha·sum + beta·C; QLoRA's Nf4Gemm: the
  // sum of its dequantizing load, + bias or + C)
  let seg1: GemmSegment, first: (row: string, col: string, acc: string) => string;
  if (g1) {
    const a1 = lora === 1 ? '' : ld1(g1.A), b1 = ld1(g1.B);
    const c1 = g1.C && g1.beta !== 0 ? ld1(g1.C) : '';
    seg1 = seg(g1, a1, b1);
    first = (row, col, acc) => `${scaled(g1.alpha, acc)}${c1 ? ` + ${scaled(g1.beta, `${c1}(${mul(row, g1.C!.sRow)} + ${mul(col, g1.C!.sCol)})`)}` : ''}`;
  } else {
    if (lora === 1) throw new Error(`${k.name}: the chained Nf4Gemm ${ch.node} cannot read a side product.`);
    const p = nf4Problem(c, k, nf4Name(k), ch);
    if (p.M !== M || p.N !== N) throw new Error(`${k.name}: the chained Nf4Gemm ${ch.node} gives [${p.M}, ${p.N}], not [${M}, ${N}].`);
    seg1 = { K: p.K, a: p.a, b: p.b };
    first = (row, col, acc) => p.value(row, col, acc);
  }
  const segments = [seg1, seg2];
  // a 16-bit G1 result (f16/bf16 compute) rounded to the compute type, as G1's own store rounds it (taken while the plan is made)
  const r1 = ch.node.outputs[0]!.dtype === 'float16' ? roundHalf() : null;
  if (r1) k.decl(r1.decl);
  let sideProduct: SideProduct | undefined;
  if (side) {
    // x·P summed in the base's K loop (the other segment), its [BM, r] block the LoRA term's A
    const gs = gemmParts(side.node, (i) => (side.folded(i) ? null : side.in(i)));
    const r = gs.N;
    const lp = gs.B.ref ? k.input(gs.B.ref) : side.load(1, k);
    const out = side.out();
    const st = out ? k.output(out) : '';
    segments[lora - 1]!.a = sideLoad(r);
    // a 16-bit x·P (f16/bf16 compute) rounded to the compute type where it is kept and stored, as its own GEMM's store rounds it
    const rs = side.node.outputs[0]!.dtype === 'float16' ? roundHalf() : null;
    if (rs) k.decl(rs.decl);
    sideProduct = {
      seg: 2 - lora, r, alpha: gs.alpha, ...(rs ? { round: rs.fn } : {}),
      p: (kb, j) => `${lp}(${mul(kb, gs.B.sRow)} + ${mul(j, gs.B.sCol)})`,
      ...(st ? { store: (row: string, j: string, v: string) => `${st}(${row} * ${r}u + ${j}, ${v});` } : {}),
    };
  }
  return {
    M, N, segments, ...(sideProduct ? { side: sideProduct } : {}),
    store: (row, col, [acc1, acc2]) => {
      // G1's result as its own store computed it, then G2's epilogue over it (an Nf4Gemm's: its sum + C)
      const sum = first(row, col, acc1!);
      return put(`${row} * ${N}u + ${col}`, `${scaled(alpha2, acc2!)} + ${scaled(beta2, r1 ? `${r1.fn}(${sum})` : `(${sum})`)}`);
    },
  };
}
