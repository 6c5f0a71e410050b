/**
 * MatMul (batched, batch dims broadcast) and Gemm (transA/transB, alpha, beta·C broadcast) on the
 * device's GEMM (kernels/gemm.ts): the tiled f32-accumulate kernel (16×16 tiles staged in workgroup
 * memory; f16/bf16 weights unpacked in the tile load), or the subgroup-matrix (tensor-core) kernel for
 * GEMMs with a 16-bit weight where the adapter offers it (device.ts's report says which and why).
 * Transposes are strides, never copies.
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, coords, lit, stridesOf, type Ref } from '../wgsl';
import { broadcastStrides, inShape, outShape, prod, type EmitCtx, type Emitter } from './context';
import { emitGemm, narrowStorage } from './gemm';

/** An operand: input `i` of the node, its buffer (null: folded, computed in the load: plan.ts), batch strides, row/column strides. */
interface Operand { i: number; ref: Ref | null; batch: number[]; sRow: number; sCol: number }

/** out[z, m, n] = alpha Σ_k A[z, m, k] B[z, k, n] + beta C[m, n]; `batch` = output batch dims. */
function gemmKernel(c: EmitCtx, name: string, batch: number[], M: number, N: number, K: number,
  A: Operand, B: Operand, C: { i: number; ref: Ref | null; sRow: number; sCol: number } | null, alpha: number, beta: number): void {
  const k = new KernelBuilder(c.epilogue ? `${name}+${c.epilogue.name}` : name);
  const ld = (o: { i: number; ref: Ref | null }) => (o.ref ? k.input(o.ref) : c.load!(o.i, k));
  const ldA = ld(A), ldB = ld(B);
  const ldC = C ? ld(C) : '';
  const put = c.epilogue ? c.epilogue.store(k) : ((st: string) => (idx: string, v: string) => `${st}(${idx}, ${v});`)(k.output(c.out(0)));
  const base = (o: Operand) => o.batch.map((s, d) => (s ? `z${d} * ${s}u` : '')).filter(Boolean).join(' + ') || '0u';
  const mul = (v: string, s: number) => (s === 1 ? v : `${v} * ${s}u`);
  const epilogue = (acc: string) => {
    let e = alpha === 1 ? acc : `${lit(alpha)} * ${acc}`;
    if (C && beta !== 0) e += ` + ${beta === 1 ? '' : `${lit(beta)} * `}${ldC}(${mul('row', C.sRow)} + ${mul('col', C.sCol)})`;
    return e;
  };
  // the weight (B, or A where B is the activation) decides whether the subgroup-matrix path may round to f16
  emitGemm(c, {
    k, M, N, K, Z: prod(batch),
    prologue: `${coords('z', batch, 'z')}
  let aBase = ${base(A)};
  let bBase = ${base(B)};`,
    a: (row, ka) => `${ldA}(aBase + ${mul(row, A.sRow)} + ${mul(ka, A.sCol)})`,
    b: (kb, col) => `${ldB}(bBase + ${mul(kb, B.sRow)} + ${mul(col, B.sCol)})`,
    store: (row, col, acc) => put(`z * ${M * N}u + ${row} * ${N}u + ${col}`, epilogue(acc)),
  }, (!!A.ref && narrowStorage(A.ref)) || (!!B.ref && narrowStorage(B.ref)));
}

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
    const at = c.node.attrs;
    const tA = !!num(at, 'transA'), tB = !!num(at, 'transB');
    const a = inShape(c, 0), [M, N] = outShape(c) as [number, number];
    const K = tA ? a[0]! : a[1]!;
    // A' [M, K]: A [M, K] (row stride K) or A [K, M] read transposed; B' [K, N] likewise
    const A: Operand = { i: 0, ref: operand(c, 0), batch: [], sRow: tA ? 1 : K, sCol: tA ? M : 1 };
    const B: Operand = { i: 1, ref: operand(c, 1), batch: [], sRow: tB ? 1 : N, sCol: tB ? K : 1 };
    let C = null;
    if (c.node.inputs[2]) {
      const s = broadcastStrides(inShape(c, 2), [M, N]);
      C = { i: 2, ref: operand(c, 2), sRow: s[0]!, sCol: s[1]! };
    }
    gemmKernel(c, 'Gemm', [], M, N, K, A, B, C, num(at, 'alpha'), num(at, 'beta'));
  },
};
