/**
 * Softmax cross-entropy over the vocabulary (fused.ts SoftmaxCrossEntropy / SoftmaxCrossEntropyGrad).
 *  forward   1. one 64-thread workgroup per row: lse = max + log Σ exp(l − max) (two passes over the row);
 *            2. one workgroup: loss = Σ_rows w · (lse − l[t]) (reads one logit per row).
 *  backward  one thread per logit: dl = gy · w · (exp(l − lse) − [col = t]) — the softmax and the one-hot
 *            in one pass that reads the logits once; no [N, V] softmax is stored, and when the backward is
 *            the logits' last reader it overwrites them in place (one [N, V] buffer for logits and gradient).
 * A target outside [0, V) (an ignore label such as −100) makes its row contribute nothing, like weight 0.
 * Shapes: logits [N, V]; targets, weights, lse [N, 1].
 */
import { num } from '../../../graph/ops/registry';
import { KernelBuilder, grid, lit, type Ref } from '../wgsl';
import { ENTRY, dispatchPerElement, inShape, prod, type EmitCtx, type Emitter } from './context';
import { emitGemm, narrowStorage } from './gemm';

/** Threads a row's workgroup (also logprob.ts's). */
export const WG = 64;
/** The most negative f32: the running max before any logit. */
export const NEG = '-3.4028e+38f';

/** The workgroup tree reduction of `${v}_a` into `let ${v}` (combine with op); needs `sh: array<f32, WG>`. */
export const tree = (v: string, comb: (a: string, b: string) => string) => `sh[li] = ${v}_a;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { sh[li] = ${comb('sh[li]', 'sh[li + s]')}; }
    workgroupBarrier();
  }
  let ${v} = sh[0];
  workgroupBarrier();`;

/** The target column of row `row`, or V (none) when out of range. */
export const targetOf = (ldt: string, V: number, row: string) => `select(${V}u, u32(${ldt}(${row})), ${ldt}(${row}) >= 0i && ${ldt}(${row}) < ${V}i)`;

/**
 * A row's logsumexp by its workgroup (one workgroup a row of `V` values `ld(base + j)`): the max pass, then the
 * Σ exp(l − max) pass, each a workgroup tree; leaves `let m` (the max) and `let t` (the sum): lse = m + log(t).
 * Needs `sh` (see tree), `li` and `base`.
 */
export const rowLse = (ld: string, V: number) => `var m_a = ${NEG};
  for (var j = li; j < ${V}u; j = j + ${WG}u) { m_a = max(m_a, ${ld}(base + j)); }
  ${tree('m', (a, b) => `max(${a}, ${b})`)}
  var t_a = 0.0;
  for (var j = li; j < ${V}u; j = j + ${WG}u) { t_a = t_a + exp(${ld}(base + j) - m); }
  ${tree('t', (a, b) => `${a} + ${b}`)}`;

/**
 * Dispatches `k` with one WG-thread workgroup per row of N rows of V values: `body` runs with `row`, `base`
 * (row · V, the row's first value) and `li` (the thread); rows past N return.
 */
export function perRowWorkgroups(c: EmitCtx, k: KernelBuilder, N: number, V: number, body: string): void {
  const { groups, x } = grid(N, 1);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let row = wid.y * ${x}u + wid.x;
  if (row >= ${N}u) { return; }
  let base = row * ${V}u;
  ${body}
}`, groups);
}

/** Vocabulary chunks [start, end) of LinearCrossEntropy's `chunk` attribute (all of V when unset or larger). */
function chunksOf(c: EmitCtx, V: number): [number, number][] {
  const size = Math.max(1, Math.min(V, num(c.node.attrs, 'chunk') || V));
  const out: [number, number][] = [];
  for (let a = 0; a < V; a += size) out.push([a, Math.min(V, a + size)]);
  return out;
}

/**
 * S [N, end − start] = the logits of vocabulary rows [start, end): head(x · W[start:end]ᵀ) (scale, then the
 * soft-cap, then the column bias when given), one GEMM whose epilogue finishes the logits.
 */
function chunkLogits(c: EmitCtx, x: Ref, w: Ref, S: Ref, N: number, C: number, start: number, end: number, bias: Ref | null): void {
  const Vk = end - start;
  const scale = num(c.node.attrs, 'scale'), cap = num(c.node.attrs, 'softcap') || 0;
  const k = new KernelBuilder('LinearCeLogits');
  const ldx = k.input(x), ldw = k.input({ ...w, offset: w.offset + start * C, numel: Vk * C }), st = k.output(S);
  const ldb = bias ? k.input({ ...bias, offset: bias.offset + start, numel: Vk }) : '';
  const logit = (acc: string, col: string) => {
    let v = scale === 1 ? acc : `${lit(scale)} * ${acc}`;
    if (cap) v = `${lit(cap)} * tanh(${v} / ${lit(cap)})`;
    return bias ? `${v} + ${ldb}(${col})` : v;
  };
  emitGemm(c, {
    k, M: N, N: Vk, K: C,
    a: (row, ka) => `${ldx}(${row} * ${C}u + ${ka})`,
    b: (kb, col) => `${ldw}(${col} * ${C}u + ${kb})`,
    store: (row, col, acc) => `${st}(${row} * ${Vk}u + ${col}, ${logit(acc, col)});`,
  }, narrowStorage(w));
}

/**
 * The loss Σ_rows w · (lse − l[t]) in one workgroup (a row whose target is out of range adds nothing): `pick(ld)`
 * reads the row's target logit (`row`, `col`) from `picked` through its loader `ld`.
 */
function lossSum(c: EmitCtx, N: number, V: number, picked: Ref, targets: Ref, weights: Ref, lse: Ref, pick: (ld: string) => string): void {
  const k = new KernelBuilder('CrossEntropyLoss');
  const ldp = k.input(picked), ldt = k.input(targets), ldw = k.input(weights), ldlse = k.input(lse);
  const st = k.output(c.out(0));
  k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(local_invocation_index) li: u32) {
  var a_a = 0.0;
  for (var row = li; row < ${N}u; row = row + ${WG}u) {
    let col = ${targetOf(ldt, V, 'row')};
    if (col < ${V}u) { a_a = a_a + (${ldlse}(row) - ${pick(ldp)}) * ${ldw}(row); }
  }
  ${tree('a', (p, q) => `${p} + ${q}`)}
  if (li == 0u) { ${st}(0u, a); }
}`, [1, 1, 1]);
}

/**
 * The gradient of the logits [N, V] (inputs: logits, targets, weights, lse, gy), one thread per logit:
 * dl = gy · w · (exp(l − lse) − [col = t]) (0 for an ignored target), gy read at `gyAt` ('0u': the scalar
 * loss's, 'row': a per-row nll's); over the logits in place when `inPlace` (the backward is their last reader).
 */
export function logitsGrad(c: EmitCtx, name: string, N: number, V: number, inPlace: boolean, gyAt: string): void {
  const k = new KernelBuilder(name);
  if (inPlace) c.view(0, c.in(0));
  const [ldl, st] = inPlace ? k.inout(c.in(0)) : [k.input(c.in(0)), k.output(c.out(0))];
  const ldt = k.input(c.in(1)), ldw = k.input(c.in(2)), ldlse = k.input(c.in(3)), ldg = k.input(c.in(4));
  dispatchPerElement(c, k, N * V, `  let row = i / ${V}u;
  let col = i % ${V}u;
  let t = ${targetOf(ldt, V, 'row')};
  let wg = select(0.0, ${ldw}(row) * ${ldg}(${gyAt}), t < ${V}u);
  ${st}(i, wg * (exp(${ldl}(i) - ${ldlse}(row)) - select(0.0, 1.0, col == t)));`);
}

export const CROSS_ENTROPY: Record<string, Emitter> = {
  /**
   * LinearCrossEntropy (graph/ops/fused.ts): per vocabulary chunk, the chunk's logits (one GEMM into a
   * scratch [N, chunk] buffer) and a pass that folds the chunk's logsumexp into the running one (online
   * logsumexp) and keeps the target's logit when it falls in the chunk; then the weighted sum. The [N, V]
   * logits never exist.
   */
  LinearCrossEntropy: (c) => {
    const [N, C] = inShape(c, 0) as [number, number];
    const V = inShape(c, 1)[0]!;
    const chunks = chunksOf(c, V);
    const S = c.scratch!(N * (chunks[0]![1] - chunks[0]![0]), 'logits chunk');
    const picked = c.scratch!(N, 'target logits');
    const lse = c.out(1);
    const bias = c.node.inputs[4] ? c.in(4) : null;
    chunks.forEach(([a, b], i) => {
      chunkLogits(c, c.in(0), c.in(1), S, N, C, a, b, bias);
      const Vk = b - a;
      const k = new KernelBuilder('LinearCeLse');
      const lds = k.input(S), ldt = k.input(c.in(2));
      const [ldl, stl] = i === 0 ? ['', k.output(lse)] : k.inout(lse);
      const stp = k.output(picked);
      k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
      const lo = k.param(a);
      perRowWorkgroups(c, k, N, Vk, `${rowLse(lds, Vk)}
  if (li == 0u) {
    let chunk = m + log(t);
    ${i === 0 ? `${stl}(row, chunk);` : `let prev = ${ldl}(row);
    let hi = max(prev, chunk);
    ${stl}(row, hi + log(exp(prev - hi) + exp(chunk - hi)));`}
    let col = ${targetOf(ldt, V, 'row')};
    if (col >= ${lo} && col < ${lo} + ${Vk}u) { ${stp}(row, ${lds}(base + col - ${lo})); }
  }`);
    });
    if (!c.used(0)) return;
    if (c.node.attrs.rows) {
      // per-row nll (the preference losses sum it per sequence): w (lse − l[t]), 0 for an ignored target
      const kr = new KernelBuilder('LinearCeRows');
      const ldp = kr.input(picked), ldt = kr.input(c.in(2)), ldw = kr.input(c.in(3)), ldlse = kr.input(lse);
      const st = kr.output(c.out(0));
      dispatchPerElement(c, kr, N, `  let col = ${targetOf(ldt, V, 'i')};
  ${st}(i, select(0.0, (${ldlse}(i) - ${ldp}(i)) * ${ldw}(i), col < ${V}u));`);
      return;
    }
    lossSum(c, N, V, picked, c.in(2), c.in(3), lse, (ldp) => `${ldp}(row)`);
  },
  /**
   * LinearCrossEntropyGrad: per vocabulary chunk, the chunk's logits again (GEMM), turned in place into
   * their gradient gy · w · (exp(l − lse) − onehot) (· (1 − (l / cap)²) · scale), then dx (+)= dl · W[chunk]
   * (a second GEMM accumulating over the chunks). With the lse's own gradient glse (input 6) the softmax term
   * takes gy · w + glse; with a column bias (input 7) the softmax reads l + bias (the soft-cap's derivative
   * the logit before it).
   */
  LinearCrossEntropyGrad: (c) => {
    const [N, C] = inShape(c, 0) as [number, number];
    const V = inShape(c, 1)[0]!;
    const scale = num(c.node.attrs, 'scale'), cap = num(c.node.attrs, 'softcap') || 0;
    const chunks = chunksOf(c, V);
    const S = c.scratch!(N * (chunks[0]![1] - chunks[0]![0]), 'logits chunk');
    const dx = c.out(0);
    chunks.forEach(([a, b], i) => {
      const Vk = b - a;
      chunkLogits(c, c.in(0), c.in(1), S, N, C, a, b, null);
      const k = new KernelBuilder('LinearCeGradChunk');
      const [lds, sts] = k.inout(S);
      const ldt = k.input(c.in(2)), ldw = k.input(c.in(3)), ldlse = k.input(c.in(4)), ldg = k.input(c.in(5));
      const ldgl = c.node.inputs[6] ? k.input(c.in(6)) : '';
      const ldb = c.node.inputs[7] ? k.input(c.in(7)) : '';
      const lo = k.param(a);
      const gyAt = prod(inShape(c, 5)) === 1 ? '0u' : 'row'; // per-row gy [N, 1] (attr rows) or the scalar's
      const lb = ldb ? `l + ${ldb}(col)` : 'l';
      let d = ldgl ? `((wg + ${ldgl}(row)) * exp(${lb} - ${ldlse}(row)) - select(0.0, wg, col == t))` : `wg * (exp(${lb} - ${ldlse}(row)) - select(0.0, 1.0, col == t))`;
      if (cap) d = `${d} * (1.0 - (l / ${lit(cap)}) * (l / ${lit(cap)}))`;
      if (scale !== 1) d = `${d} * ${lit(scale)}`;
      dispatchPerElement(c, k, N * Vk, `  let row = i / ${Vk}u;
  let col = ${lo} + i % ${Vk}u;
  let t = ${targetOf(ldt, V, 'row')};
  let wg = select(0.0, ${ldw}(row) * ${ldg}(${gyAt}), t < ${V}u);
  let l = ${lds}(i);
  ${sts}(i, ${d});`);
      const g = new KernelBuilder('LinearCeGradDx');
      const ldd = g.input(S), ldW = g.input({ ...c.in(1), offset: c.in(1).offset + a * C, numel: Vk * C });
      const [ldx, stx] = i === 0 ? ['', g.output(dx)] : g.inout(dx);
      emitGemm(c, {
        k: g, M: N, N: C, K: Vk,
        a: (row, ka) => `${ldd}(${row} * ${Vk}u + ${ka})`,
        b: (kb, col) => `${ldW}(${kb} * ${C}u + ${col})`,
        store: (row, col, acc) => (i === 0 ? `${stx}(${row} * ${C}u + ${col}, ${acc});` : `${stx}(${row} * ${C}u + ${col}, ${ldx}(${row} * ${C}u + ${col}) + ${acc});`),
      }, narrowStorage(c.in(1)));
    });
  },
  SoftmaxCrossEntropy: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    // 1. lse per row
    const k = new KernelBuilder('CrossEntropyLse');
    const ldl = k.input(c.in(0));
    const stl = k.output(c.out(1));
    k.decl(`var<workgroup> sh: array<f32, ${WG}>;`);
    perRowWorkgroups(c, k, N, V, `${rowLse(ldl, V)}
  if (li == 0u) { ${stl}(row, m + log(t)); }`);
    if (!c.used(0)) return;
    // 2. the weighted sum of the rows' losses
    lossSum(c, N, V, c.in(0), c.in(1), c.in(2), c.out(1), (ldl) => `${ldl}(row * ${V}u + col)`);
  },
  SoftmaxCrossEntropyGrad: (c) => {
    const [N, V] = inShape(c, 0) as [number, number];
    // the logits' last reader: the gradient overwrites them in place (one [N, V] buffer, not two)
    // (f16 logits in f16 storage: the f16 gradient takes the same storage)
    const st0 = c.in(0).storage;
    const inPlace = c.lastUse?.(0) === true && (st0 === 'f32' || ((st0 === 'h16' || st0 === 'f16r' || st0 === 'hb16' || st0 === 'b16r') && c.node.outputs[0]!.dtype === 'float16'));
    logitsGrad(c, 'CrossEntropyGrad', N, V, inPlace, '0u');
  },
};
