/**
 * The tiled GEMM skeleton other kernels build on (NF4 dequantized in the tile load: nf4.ts; row-block
 * split weights: split.ts): out[z, m, n] (+)= Σ_k A'[z, m, k] · B'[k, n], f32 accumulate.
 *
 * A T×T workgroup computes a T×T output tile, staging T×T tiles of A' and B' in workgroup memory. The
 * caller says how one element of each operand is loaded (a WGSL expression of the row/column it
 * asks for: a strided f32/f16/bf16 read, or an NF4 code times its block's absmax) and how a finished
 * element is stored (the epilogue: bias, column offset into a wider output, accumulation over K
 * pieces). Dimension letters: M rows of the output, N its columns, K the reduced dimension, z the
 * flattened batch.
 */
import type { KernelBuilder } from '../wgsl';
import { ENTRY, type EmitCtx } from './context';

/** Tile edge (T×T threads per workgroup, 256 = every adapter's minimum maxComputeInvocationsPerWorkgroup). */
export const GEMM_TILE = 16;

export interface TiledGemm {
  /** The kernel with its bindings already declared. */
  k: KernelBuilder;
  M: number;
  N: number;
  K: number;
  /** Batched matrices (grid z, at most 65535). */
  Z?: number;
  /** WGSL statements run once per thread before the loop (may use `z`). */
  prologue?: string;
  /** A'[row, ka] as an f32 expression of the WGSL u32 names `row` and `ka`. */
  a: (row: string, ka: string) => string;
  /** B'[kb, col] as an f32 expression of `kb` and `col`. */
  b: (kb: string, col: string) => string;
  /** The statement storing `acc` (f32) for output element (row, col) of matrix z. */
  store: (row: string, col: string, acc: string) => string;
}

/** Appends the GEMM's dispatch: ⌈N/T⌉ × ⌈M/T⌉ × Z workgroups. */
export function emitTiledGemm(c: EmitCtx, g: TiledGemm): void {
  const T = GEMM_TILE;
  const { k, M, N } = g;
  const Z = g.Z ?? 1;
  if (Z > 65535) throw new Error(`${k.name}: ${Z} batched matrices exceed one dispatch (65535).`);
  k.decl(`var<workgroup> As: array<f32, ${T * T}>;`);
  k.decl(`var<workgroup> Bs: array<f32, ${T * T}>;`);
  const K = k.param(g.K);
  const body = `${ENTRY}(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let row = wid.y * ${T}u + lid.y;
  let col = wid.x * ${T}u + lid.x;
  let z = wid.z;
  ${g.prologue ?? ''}
  var acc = 0.0;
  let K = ${K};
  for (var k0 = 0u; k0 < K; k0 = k0 + ${T}u) {
    let ka = k0 + lid.x;
    var av = 0.0;
    if (row < ${M}u && ka < K) { av = ${g.a('row', 'ka')}; }
    As[lid.y * ${T}u + lid.x] = av;
    let kb = k0 + lid.y;
    var bv = 0.0;
    if (kb < K && col < ${N}u) { bv = ${g.b('kb', 'col')}; }
    Bs[lid.y * ${T}u + lid.x] = bv;
    workgroupBarrier();
    for (var kk = 0u; kk < ${T}u; kk = kk + 1u) { acc = acc + As[lid.y * ${T}u + kk] * Bs[kk * ${T}u + lid.x]; }
    workgroupBarrier();
  }
  if (row < ${M}u && col < ${N}u) { ${g.store('row', 'col', 'acc')} }
}`;
  c.dispatch(k, body, [Math.ceil(N / T), Math.ceil(M / T), Z]);
}
