/**
 * MatMul (batched, batch dims broadcast) and Gemm (transA/transB, alpha, beta·C broadcast) as one
 * tiled kernel: a 16×16 workgroup computes a 16×16 output tile, staging 16×16 tiles of A and B in
 * workgroup memory; f32 accumulate whatever the inputs' storage (f16/bf16 weights are unpacked in the
 * tile load). Transposes are strides, never copies. This is the portable path; register blocking and
 * subgroup-matrix (tensor-core) variants come later (see device.ts's report for the choice).
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, coords, lit, stridesOf, type Ref } from '../wgsl';
import { ENTRY, broadcastStrides, inShape, outShape, prod, type EmitCtx, type Emitter } from './context';

const T = 16;

interface Operand { ref: Ref; batch: number[]; sRow: number; sCol: number }

/** out[z, m, n] = alpha Σ_k A[z, m, k] B[z, k, n] + beta C[m, n]; `batch` = output batch dims. */
function gemmKernel(c: EmitCtx, name: string, batch: number[], M: number, N: number, K: number,
  A: Operand, B: Operand, C: { ref: Ref; sRow: number; sCol: number } | null, alpha: number, beta: number): void {
  const k = new KernelBuilder(name);
  const ldA = k.input(A.ref), ldB = k.input(B.ref);
  const ldC = C ? k.input(C.ref) : '';
  const st = k.output(c.out(0));
  k.decl(`var<workgroup> As: array<f32, ${T * T}>;`);
  k.decl(`var<workgroup> Bs: array<f32, ${T * T}>;`);
  const base = (o: Operand) => o.batch.map((s, d) => (s ? `z${d} * ${s}u` : '')).filter(Boolean).join(' + ') || '0u';
  const mul = (v: string, s: number) => (s === 1 ? v : `${v} * ${s}u`);
  let epilogue = alpha === 1 ? 'acc' : `${lit(alpha)} * acc`;
  if (C && beta !== 0) epilogue += ` + ${beta === 1 ? '' : `${lit(beta)} * `}${ldC}(${mul('row', C.sRow)} + ${mul('col', C.sCol)})`;
  const kRun = k.param(K);
  const body = `${ENTRY}(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * ${T}u + lid.y;
  let col = wid.x * ${T}u + lid.x;
  let z = wid.z;
  ${coords('z', batch, 'z')}
  let aBase = ${base(A)};
  let bBase = ${base(B)};
  var acc = 0.0;
  let K = ${kRun};
  for (var k0 = 0u; k0 < K; k0 = k0 + ${T}u) {
    let ka = k0 + lid.x;
    var av = 0.0;
    if (row < ${M}u && ka < K) { av = ${ldA}(aBase + ${mul('row', A.sRow)} + ${mul('ka', A.sCol)}); }
    As[lid.y * ${T}u + lid.x] = av;
    let kb = k0 + lid.y;
    var bv = 0.0;
    if (kb < K && col < ${N}u) { bv = ${ldB}(bBase + ${mul('kb', B.sRow)} + ${mul('col', B.sCol)}); }
    Bs[lid.y * ${T}u + lid.x] = bv;
    workgroupBarrier();
    for (var kk = 0u; kk < ${T}u; kk = kk + 1u) { acc = acc + As[lid.y * ${T}u + kk] * Bs[kk * ${T}u + lid.x]; }
    workgroupBarrier();
  }
  if (row < ${M}u && col < ${N}u) { ${st}(z * ${M * N}u + row * ${N}u + col, ${epilogue}); }
}`;
  const Z = prod(batch);
  if (Z > 65535) throw new Error(`${name}: ${Z} batched matrices exceed one dispatch (65535).`);
  c.dispatch(k, body, [Math.ceil(N / T), Math.ceil(M / T), Z]);
}

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
      { ref: c.in(0), batch: batchStrides(a, batch), sRow: K, sCol: 1 },
      { ref: c.in(1), batch: batchStrides(b, batch), sRow: N, sCol: 1 }, null, 1, 0);
  },
  Gemm: (c) => {
    const at = c.node.attrs;
    const tA = !!num(at, 'transA'), tB = !!num(at, 'transB');
    const a = inShape(c, 0), [M, N] = outShape(c) as [number, number];
    const K = tA ? a[0]! : a[1]!;
    // A' [M, K]: A [M, K] (row stride K) or A [K, M] read transposed; B' [K, N] likewise
    const A: Operand = { ref: c.in(0), batch: [], sRow: tA ? 1 : K, sCol: tA ? M : 1 };
    const B: Operand = { ref: c.in(1), batch: [], sRow: tB ? 1 : N, sCol: tB ? K : 1 };
    let C = null;
    if (c.node.inputs[2]) {
      const s = broadcastStrides(inShape(c, 2), [M, N]);
      C = { ref: c.in(2), sRow: s[0]!, sCol: s[1]! };
    }
    gemmKernel(c, 'Gemm', [], M, N, K, A, B, C, num(at, 'alpha'), num(at, 'beta'));
  },
};
