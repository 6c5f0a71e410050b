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
import { lit, type KernelBuilder, type Ref } from '../wgsl';
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

/** Outputs per thread (TM rows × TN columns): 1×1 = the plain 16×16 tile, 4×4 = 64×64 register-blocked tiles. */
export interface GemmTile { TM: number; TN: number }

/**
 * The K loop every tiled kernel runs (plain, K-segmented, grouped): per step of 16, stage a (16·TM)×16 tile of
 * A' (`a(row, ka)`) and a 16×(16·TN) tile of B' (`b(kb, col)`) in workgroup memory (As, Bs), then add each
 * thread's TM×TN products into `acc` (k in order 0..K−1). Needs `K`, `row0`, `col0`, `li`, `lid` in scope.
 */
function kLoop(o: { M: number; N: number; TM: number; TN: number; acc: string; a: (row: string, ka: string) => string; b: (kb: string, col: string) => string; side?: SideProduct }): string {
  const T = GEMM_TILE, BM = T * o.TM, BN = T * o.TN, { M, N, TM, TN, acc, side } = o;
  const r = side?.r ?? 0;
  // the side product (x·P over the staged tile of A' = x): P's 16×r tile in Ps, each thread its elements of the [BM, r] block
  const stageP = side ? `
    for (var t = li; t < ${T * r}u; t = t + ${T * T}u) {
      let kb = k0 + t / ${r}u;
      let j = t % ${r}u;
      var pv = 0.0;
      if (kb < K) { pv = ${side.p('kb', 'j')}; }
      Ps[t] = pv;
    }` : '';
  const sideSum = side ? `
    for (var q = 0u; q < ${sideSlots(BM, r)}u; q = q + 1u) {
      let e = li + q * ${T * T}u;
      if (e < ${BM * r}u) {
        let i = e / ${r}u;
        let j = e % ${r}u;
        for (var kk = 0u; kk < ${T}u; kk = kk + 1u) { sacc[q] = sacc[q] + As[i * ${T}u + kk] * Ps[kk * ${r}u + j]; }
      }
    }` : '';
  return `for (var k0 = 0u; k0 < K; k0 = k0 + ${T}u) {
    for (var t = li; t < ${BM * T}u; t = t + ${T * T}u) {
      let row = row0 + t / ${T}u;
      let ka = k0 + t % ${T}u;
      var av = 0.0;
      if (row < ${M}u && ka < K) { av = ${o.a('row', 'ka')}; }
      As[t] = av;
    }
    for (var t = li; t < ${T * BN}u; t = t + ${T * T}u) {
      let kb = k0 + t / ${BN}u;
      let col = col0 + t % ${BN}u;
      var bv = 0.0;
      if (kb < K && col < ${N}u) { bv = ${o.b('kb', 'col')}; }
      Bs[t] = bv;
    }${stageP}
    workgroupBarrier();
    for (var kk = 0u; kk < ${T}u; kk = kk + 1u) {
      for (var i = 0u; i < ${TM}u; i = i + 1u) {
        let av = As[(lid.y + i * ${T}u) * ${T}u + kk];
        for (var j = 0u; j < ${TN}u; j = j + 1u) { ${acc}[i * ${TN}u + j] = ${acc}[i * ${TN}u + j] + av * Bs[kk * ${BN}u + lid.x + j * ${T}u]; }
      }
    }${sideSum}
    workgroupBarrier();
  }`;
}

/** The store loop of the tiled kernels: each thread's TM×TN outputs inside the matrix; `store(ij)` gets the accumulator index. */
function storeLoop(o: { M: number; N: number; TM: number; TN: number }, store: (ij: string) => string): string {
  const T = GEMM_TILE, { M, N, TM, TN } = o;
  return `for (var i = 0u; i < ${TM}u; i = i + 1u) {
    for (var j = 0u; j < ${TN}u; j = j + 1u) {
      let row = row0 + lid.y + i * ${T}u;
      let col = col0 + lid.x + j * ${T}u;
      if (row < ${M}u && col < ${N}u) { ${store(`i * ${TN}u + j`)} }
    }
  }`;
}

/**
 * Appends the GEMM's dispatch: a 16×16-thread workgroup computes a (16·TM)×(16·TN) output tile, each thread
 * TM×TN outputs (rows lid.y + 16i, columns lid.x + 16j) from one staged A' and B' tile per K step of 16.
 * Every output still sums k in order 0..K−1, so the tile size does not change a result.
 */
export function emitTiledGemm(c: EmitCtx, g: TiledGemm, tile: GemmTile = { TM: 1, TN: 1 }): void {
  const T = GEMM_TILE;
  const { k, M, N } = g;
  const { TM, TN } = tile;
  const BM = T * TM, BN = T * TN;
  const Z = g.Z ?? 1;
  if (Z > 65535) throw new Error(`${k.name}: ${Z} batched matrices exceed one dispatch (65535).`);
  k.decl(`var<workgroup> As: array<f32, ${BM * T}>;`);
  k.decl(`var<workgroup> Bs: array<f32, ${T * BN}>;`);
  const K = k.param(g.K);
  const body = `${ENTRY}(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
  let z = wid.z;
  ${g.prologue ?? ''}
  var acc: array<f32, ${TM * TN}>;
  let K = ${K};
  ${kLoop({ M, N, TM, TN, acc: 'acc', a: g.a, b: g.b })}
  ${storeLoop({ M, N, TM, TN }, (ij) => `let acc = acc[${ij}]; ${g.store('row', 'col', 'acc')}`)}
}`;
  c.dispatch(k, body, [Math.ceil(N / BN), Math.ceil(M / BM), Z]);
}

/** One shape the adapter's subgroup-matrix (tensor-core) units multiply: left M×K, right K×N, result M×N. */
export interface SubgroupMatrixConfig { componentType: string; resultComponentType: string; M: number; N: number; K: number }

/** The GEMM path of a device, with the reason in plain words (shown in the capability report). */
export interface GemmChoice {
  path: 'tiled-f32' | 'subgroup-matrix';
  reason: string;
  /** The config the subgroup-matrix path uses (f16 inputs, f32 result). */
  matrix?: SubgroupMatrixConfig;
  /** Subgroup size the subgroup-matrix kernel's workgroup is made of (one subgroup per workgroup). */
  subgroupSize?: number;
  /** Outputs per thread of the tiled kernel (register blocking). */
  tile?: GemmTile;
}

/**
 * Tiled kernel's outputs per thread from the adapter's subgroup size: GPUs with wide subgroups (NVIDIA 32,
 * AMD 32/64) get 64×64 tiles, 4×4 outputs a thread (16× fewer tile loads per output than 16×16); narrow
 * or unknown subgroups (software rasterisers, some mobile GPUs: small register files) keep 16×16 tiles.
 */
export function tileFor(subgroupSize: number | undefined): { tile: GemmTile; words: string } {
  if (subgroupSize !== undefined && subgroupSize >= 32) return { tile: { TM: 4, TN: 4 }, words: `64×64 tiles, 4×4 outputs a thread (subgroups of ${subgroupSize})` };
  return { tile: { TM: 1, TN: 1 }, words: `16×16 tiles, one output a thread (${subgroupSize === undefined ? 'subgroup size not reported' : `subgroups of ${subgroupSize}`})` };
}

function parseConfig(s: string): SubgroupMatrixConfig | null {
  try {
    const o = JSON.parse(s) as Partial<SubgroupMatrixConfig>;
    return typeof o.componentType === 'string' && typeof o.resultComponentType === 'string' && o.M && o.N && o.K ? (o as SubgroupMatrixConfig) : null;
  } catch {
    return null;
  }
}

/**
 * The GEMM path from what the adapter reports: the subgroup-matrix kernel where
 * chromium-experimental-subgroup-matrix is offered with an f16 × f16 -> f32 config and shader-f16, for
 * GEMMs whose weight is stored in 16 bits or NF4 (their inputs are rounded to f16, as a 16-bit run
 * accepts); otherwise, and for f32 weights, the tiled f32-accumulate kernel. Never silently: the reason
 * says which kernel runs and why.
 */
export function chooseGemm(features: readonly string[], configs: readonly string[], subgroupSize?: number): GemmChoice {
  const { tile, words } = tileFor(subgroupSize);
  const tiled = (why: string): GemmChoice => ({ path: 'tiled-f32', tile, reason: `${why}; tiled f32-accumulate GEMM, ${words}, f16/bf16/NF4 weights unpacked in the tile load` });
  if (!features.includes('chromium-experimental-subgroup-matrix')) {
    return tiled('subgroup-matrix (tensor-core) GEMM not available on this adapter: it does not offer chromium-experimental-subgroup-matrix');
  }
  if (configs.length === 0) return tiled('subgroup-matrix GEMM not available on this adapter: no subgroup-matrix configs reported');
  const parsed = configs.map(parseConfig);
  const m = parsed.find((c) => c?.componentType === 'f16' && c.resultComponentType === 'f32');
  if (!m) return tiled(`subgroup-matrix GEMM not available on this adapter: none of its configs (${configs.join(', ')}) multiplies f16 into f32`);
  if (!features.includes('shader-f16')) return tiled('subgroup-matrix GEMM not available on this adapter: it has an f16 config but no shader-f16');
  return {
    path: 'subgroup-matrix', matrix: m, subgroupSize: subgroupSize ?? 32, tile,
    reason: `subgroup-matrix (tensor-core) GEMM, f16 ${m.M}×${m.N}×${m.K} -> f32, for GEMMs whose weight is stored in 16 bits or NF4; tiled f32-accumulate GEMM (${words}) for f32 weights`,
  };
}

/**
 * The subgroup-matrix (tensor-core) variant of `emitTiledGemm`: one subgroup per workgroup computes an
 * M×N output tile of the config; each K step stages an M×K tile of A' and a K×N tile of B' in workgroup
 * memory as f16 (loaded through the same operand expressions, so f16/bf16/NF4 weights work alike),
 * multiplies them with subgroupMatrixMultiplyAccumulate into an f32 result, and the epilogue stores the
 * result through the caller's store expression. Dawn's WGSL: subgroup_matrix_left<T, K, M> (columns,
 * rows), subgroup_matrix_right<T, N, K>, subgroup_matrix_result<T, N, M>.
 */
export function emitSubgroupMatrixGemm(c: EmitCtx, g: TiledGemm, choice: GemmChoice): void {
  const cfg = choice.matrix;
  if (choice.path !== 'subgroup-matrix' || !cfg) throw new Error(`${g.k.name}: the subgroup-matrix GEMM needs a subgroup-matrix config (${choice.reason}).`);
  const { k, M, N } = g;
  const S = choice.subgroupSize ?? 32;
  const Z = g.Z ?? 1;
  if (Z > 65535) throw new Error(`${k.name}: ${Z} batched matrices exceed one dispatch (65535).`);
  const TM = cfg.M, TN = cfg.N, TK = cfg.K;
  k.decl('enable f16;');
  k.decl('enable chromium_experimental_subgroup_matrix;');
  k.decl(`var<workgroup> Am: array<f16, ${TM * TK}>;`);
  k.decl(`var<workgroup> Bm: array<f16, ${TK * TN}>;`);
  k.decl(`var<workgroup> Cm: array<f32, ${TM * TN}>;`);
  const K = k.param(g.K);
  const body = `${ENTRY}(${S}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
  let z = wid.z;
  ${g.prologue ?? ''}
  let K = ${K};
  var acc = subgroup_matrix_result<f32, ${TN}, ${TM}>();
  for (var k0 = 0u; k0 < K; k0 = k0 + ${TK}u) {
    for (var t = li; t < ${TM * TK}u; t = t + ${S}u) {
      let row = row0 + t / ${TK}u;
      let ka = k0 + t % ${TK}u;
      var av = 0.0;
      if (row < ${M}u && ka < K) { av = ${g.a('row', 'ka')}; }
      Am[t] = f16(av);
    }
    for (var t = li; t < ${TK * TN}u; t = t + ${S}u) {
      let kb = k0 + t / ${TN}u;
      let col = col0 + t % ${TN}u;
      var bv = 0.0;
      if (kb < K && col < ${N}u) { bv = ${g.b('kb', 'col')}; }
      Bm[t] = f16(bv);
    }
    workgroupBarrier();
    let l = subgroupMatrixLoad<subgroup_matrix_left<f16, ${TK}, ${TM}>>(&Am, 0u, false, ${TK}u);
    let r = subgroupMatrixLoad<subgroup_matrix_right<f16, ${TN}, ${TK}>>(&Bm, 0u, false, ${TN}u);
    acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
    workgroupBarrier();
  }
  subgroupMatrixStore(&Cm, 0u, acc, false, ${TN}u);
  workgroupBarrier();
  for (var t = li; t < ${TM * TN}u; t = t + ${S}u) {
    let row = row0 + t / ${TN}u;
    let col = col0 + t % ${TN}u;
    if (row < ${M}u && col < ${N}u) { let acc = Cm[t]; ${g.store('row', 'col', 'acc')} }
  }
}`;
  c.dispatch(k, body, [Math.ceil(N / TN), Math.ceil(M / TM), Z]);
}

/** Is this tensor stored in 16 bits or fewer (an f16/bf16 weight, NF4 codes, f16 activations): the subgroup-matrix path's GEMMs. */
export const narrowStorage = (r: Ref): boolean => r.storage === 'f16' || r.storage === 'bf16' || r.storage === 'h16' || r.storage === 'f16r';

/** The device's GEMM for `g`: subgroup-matrix where chosen and the weight is narrow, else tiled f32. */
export function emitGemm(c: EmitCtx, g: TiledGemm, narrowWeight: boolean): void {
  if (c.gemm?.path === 'subgroup-matrix' && narrowWeight) emitSubgroupMatrixGemm(c, g, c.gemm);
  else emitTiledGemm(c, g, c.gemm?.tile);
}

/** One K segment of a segmented GEMM: its length and its operands' element loads (k counted from the segment's start). */
export interface GemmSegment { K: number; a: (row: string, ka: string) => string; b: (kb: string, col: string) => string }

/**
 * `emitTiledGemm` over several K segments, each summed into its own accumulator (in k order, as the
 * segment's own GEMM would): `store(row, col, accs)` gets one f32 per segment. Chained GEMMs (plan.ts) run
 * a base GEMM and its LoRA term this way, giving the results of the two GEMMs they replace (one rounding
 * per sum, the same order) in one dispatch.
 */
export function emitTiledGemmSegments(c: EmitCtx, g: { k: KernelBuilder; M: number; N: number; segments: GemmSegment[]; store: (row: string, col: string, accs: string[]) => string },
  tile: GemmTile = { TM: 1, TN: 1 }): void {
  const T = GEMM_TILE;
  const { k, M, N } = g;
  const { TM, TN } = tile;
  const BM = T * TM, BN = T * TN;
  k.decl(`var<workgroup> As: array<f32, ${BM * T}>;`);
  k.decl(`var<workgroup> Bs: array<f32, ${T * BN}>;`);
  declareSide(k, [g], BM);
  const body = `${ENTRY}(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row0 = wid.y * ${BM}u;
  let col0 = wid.x * ${BN}u;
${segmentLoops(k, { M, N, TM, TN }, g)}
  ${storeLoop({ M, N, TM, TN }, (ij) => g.store('row', 'col', g.segments.map((_, q) => `acc${q}[${ij}]`)))}
}`;
  c.dispatch(k, body, [Math.ceil(N / BN), Math.ceil(M / BM), 1]);
}

/** One problem of a grouped GEMM (`emitGroupedGemm`): a `TiledGemm` of one matrix (no batch) in a shared kernel. */
export type GemmProblem = Omit<TiledGemm, 'k' | 'Z'>;

/**
 * A grouped problem made of K segments, each summed into its own accumulator (in k order, as
 * `emitTiledGemmSegments` does): chained GEMMs (plan.ts: a base GEMM and its LoRA term) in a group.
 */
export interface SegmentedGemmProblem {
  M: number;
  N: number;
  prologue?: string;
  segments: GemmSegment[];
  store: (row: string, col: string, accs: string[]) => string;
  /** A rank-r product of segment `side.seg`'s A' computed in its K loop (a LoRA projection's x·A: plan.ts loraSides). */
  side?: SideProduct;
}

/**
 * The side product of a segmented GEMM (plan.ts loraSides: a LoRA projection's x·A, or dy·B backward, where
 * the base GEMM already loads x): over segment `seg`'s K loop every workgroup also sums Σ_k A'[row, k]·P[k, j]
 * for its BM rows and the r columns of P (from the A' tile it stages anyway; P's 16×r tile in workgroup memory,
 * `Ps`), k in order 0..K−1 as P's own GEMM would; then `alpha`·sum goes to workgroup memory (`Xs`, [BM, r]),
 * where another segment's A' loads it (`sideLoad`), and the first column tile of each row block stores it
 * (`store`, absent where nothing else reads it). The K loop of `seg` runs first.
 */
export interface SideProduct {
  seg: number;
  r: number;
  /** P[kb, j] as an f32 expression. */
  p: (kb: string, j: string) => string;
  alpha: number;
  /**
   * The WGSL function rounding alpha·sum to the compute type (roundF16 / roundBF16, declared by the caller) where x·P
   * is a 16-bit tensor (f16/bf16 compute): the value kept in `Xs` and stored is then the one its own GEMM's store
   * writes and the LoRA term's load reads back.
   */
  round?: string;
  /** The statement storing value `v` (f32) of element (row, j) of x·P. */
  store?: (row: string, j: string, v: string) => string;
}

/** A' of a segment that reads the side product: element (row, ka) of the [BM, r] block in workgroup memory. */
export const sideLoad = (r: number) => (row: string, ka: string): string => `Xs[(${row} - row0) * ${r}u + ${ka}]`;

/** Side-product elements a thread sums ([BM, r] over the workgroup's 256 threads). */
const sideSlots = (BM: number, r: number): number => Math.ceil((BM * r) / (GEMM_TILE * GEMM_TILE));

/** Workgroup memory (bytes) of a kernel with side products of rank up to `r` (Xs, Ps) besides the As/Bs tiles. */
export function segmentedWorkgroupBytes(tile: GemmTile, r: number): number {
  const T = GEMM_TILE, BM = T * tile.TM, BN = T * tile.TN;
  return 4 * (BM * T + T * BN + (r ? BM * r + T * r : 0));
}

/** The Xs and Ps arrays of the problems' side products, once per kernel (sized for the largest rank). */
function declareSide(k: KernelBuilder, problems: readonly (GemmProblem | SegmentedGemmProblem)[], BM: number): void {
  const r = Math.max(0, ...problems.map((p) => ('side' in p && p.side ? p.side.r : 0)));
  if (!r) return;
  k.decl(`var<workgroup> Xs: array<f32, ${BM * r}>;`);
  k.decl(`var<workgroup> Ps: array<f32, ${GEMM_TILE * r}>;`);
}

/**
 * A segmented problem's accumulators and K loops (the side product's segment first, then the others in order:
 * each sums into its own accumulator, so the order of the loops changes no result). Needs row0, col0, li, lid.
 */
function segmentLoops(k: KernelBuilder, o: { M: number; N: number; TM: number; TN: number }, g: SegmentedGemmProblem): string {
  const T = GEMM_TILE, BM = T * o.TM, side = g.side;
  const order = g.segments.map((_, q) => q);
  if (side) order.sort((a, b) => (a === side.seg ? -1 : b === side.seg ? 1 : a - b));
  const parts = g.segments.map((_, q) => `    var acc${q}: array<f32, ${o.TM * o.TN}>;`);
  if (side) parts.push(`    var sacc: array<f32, ${sideSlots(BM, side.r)}>;`);
  for (const q of order) {
    const s = g.segments[q]!;
    const mine = side && q === side.seg ? side : undefined;
    parts.push(`    {
    let K = ${k.param(s.K)};
    ${kLoop({ ...o, acc: `acc${q}`, a: s.a, b: s.b, ...(mine ? { side: mine } : {}) })}
    }`);
    if (mine) {
      const r = mine.r;
      const scaled = mine.alpha === 1 ? 'sacc[q]' : `${lit(mine.alpha)} * sacc[q]`;
      const v = mine.round ? `${mine.round}(${scaled})` : scaled;
      parts.push(`    for (var q = 0u; q < ${sideSlots(BM, r)}u; q = q + 1u) {
      let e = li + q * ${T * T}u;
      if (e < ${BM * r}u) {
        let v = ${v};
        Xs[e] = v;
        let row = row0 + e / ${r}u;
        let j = e % ${r}u;
        ${mine.store ? `if (col0 == 0u && row < ${o.M}u) { ${mine.store('row', 'j', 'v')} }` : ''}
      }
    }
    workgroupBarrier();`);
    }
  }
  return parts.join('\n');
}

/** Output tiles of a problem (workgroups of the tiled kernel): [column tiles, row tiles]. */
export function gemmTiles(p: { M: number; N: number }, tile: GemmTile = { TM: 1, TN: 1 }): [number, number] {
  return [Math.ceil(p.N / (GEMM_TILE * tile.TN)), Math.ceil(p.M / (GEMM_TILE * tile.TM))];
}

/**
 * Several independent GEMM problems in ONE dispatch of the tiled kernel (backends/webgpu/group.ts picks
 * them): the workgroups are numbered tile by tile, problem after problem; a workgroup finds its problem by
 * its number (a workgroup-uniform branch, so the barriers stay legal), then runs exactly the tile loop of
 * `emitTiledGemm` with that problem's sizes, operand loads and store. Each output sums k in order 0..K−1
 * as in the problem's own dispatch, so grouped and ungrouped results are equal bit for bit. `k` holds
 * every problem's bindings (the caller declared them: shared operands once). A `SegmentedGemmProblem` (a
 * chained GEMM) runs `emitTiledGemmSegments`'s loops in its arm.
 */
export function emitGroupedGemm(c: EmitCtx, k: KernelBuilder, problems: readonly (GemmProblem | SegmentedGemmProblem)[], tile: GemmTile = { TM: 1, TN: 1 }): void {
  const T = GEMM_TILE;
  const { TM, TN } = tile;
  const BM = T * TM, BN = T * TN;
  if (problems.length === 0) throw new Error(`${k.name}: a grouped GEMM needs at least one problem.`);
  k.decl(`var<workgroup> As: array<f32, ${BM * T}>;`);
  k.decl(`var<workgroup> Bs: array<f32, ${T * BN}>;`);
  declareSide(k, problems, BM);
  let start = 0;
  const arms = problems.map((g) => {
    const [tn, tm] = gemmTiles(g, tile);
    const first = start;
    start += tn * tm;
    const { M, N } = g;
    const head = `if (wt < ${start}u) {
    let tp = wt - ${first}u;
    let row0 = (tp / ${tn}u) * ${BM}u;
    let col0 = (tp % ${tn}u) * ${BN}u;
    ${g.prologue ?? ''}`;
    if ('segments' in g) {
      // a chained GEMM: the loops of emitTiledGemmSegments, one accumulator per segment
      return `${head}
${segmentLoops(k, { M, N, TM, TN }, g)}
    ${storeLoop({ M, N, TM, TN }, (ij) => g.store('row', 'col', g.segments.map((_, q) => `acc${q}[${ij}]`)))}
  }`;
    }
    const K = k.param(g.K);
    return `${head}
    var acc: array<f32, ${TM * TN}>;
    let K = ${K};
    ${kLoop({ M, N, TM, TN, acc: 'acc', a: g.a, b: g.b })}
    ${storeLoop({ M, N, TM, TN }, (ij) => `let acc = acc[${ij}]; ${g.store('row', 'col', 'acc')}`)}
  }`;
  });
  // workgroups beyond the last tile (the grid is x·y) match no arm and do nothing
  const x = Math.min(start, 65535);
  const body = `${ENTRY}(${T}, ${T}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let wt = wid.y * ${x}u + wid.x;
  let z = 0u; // one matrix a problem (the stores of MatMul/Gemm name the batch index)
  ${arms.join(' else ')}
}`;
  c.dispatch(k, body, [x, Math.ceil(start / x), 1]);
}
