/** MatMul and Gemm. */
import type { Value } from '../graph';
import { def, num, A, need, floatIn, sameType, plain } from './registry';
import { broadcastShapes } from '../types';

const swapLast = (v: Value): number[] => {
  const p = v.shape.map((_, i) => i);
  [p[p.length - 2], p[p.length - 1]] = [p[p.length - 1]!, p[p.length - 2]!];
  return p;
};

def({
  name: 'MatMul', // [..., M, K] @ [..., K, N] -> [..., M, N], batch dims broadcast
  infer: (x) => {
    const [a, b] = need(x, 2);
    floatIn(a!);
    sameType([a!, b!]);
    if (a!.rank < 2 || b!.rank < 2) throw new Error('MatMul needs rank >= 2 on both sides (reshape vectors first).');
    const k1 = a!.shape[a!.rank - 1], k2 = b!.shape[b!.rank - 2];
    if (k1 !== k2) throw new Error(`inner dims differ: ${k1} vs ${k2}`);
    const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2), 'MatMul batch');
    return [{ dtype: a!.dtype, shape: [...batch, a!.shape[a!.rank - 2]!, b!.shape[b!.rank - 1]!] }];
  },
  lower: plain('MatMul'),
  grad: (c) => {
    const { g } = c;
    const [a, b] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null, null];
    if (a!.rank === 2 && b!.rank === 2) {
      // y = a b:  da = gy bᵀ,  db = aᵀ gy  (Gemm flags instead of Transpose nodes)
      return [
        c.needs(0) ? g.gemm(gy, b!, null, { transB: true }) : null,
        c.needs(1) ? g.gemm(a!, gy, null, { transA: true }) : null,
      ];
    }
    const da = c.needs(0) ? g.matmul(gy, g.transpose(b!, swapLast(b!))) : null;
    let db: Value | null = null;
    if (c.needs(1)) {
      if (b!.rank === 2) {
        // shared 2-D weight: fold the batch into rows, one Gemm: [M', K]ᵀ [M', N]
        const K = a!.shape[a!.rank - 1]!, N = gy.shape[gy.rank - 1]!;
        db = g.gemm(g.reshape(a!, [-1, K]), g.reshape(gy, [-1, N]), null, { transA: true });
      } else {
        db = g.matmul(g.transpose(a!, swapLast(a!)), gy); // driver sums broadcast batch dims
      }
    }
    return [da, db];
  },
});

def({
  name: 'Gemm', // alpha A' B' + beta C, A' = transA ? Aᵀ : A
  infer: (x, at) => {
    const [a, b] = need(x, 2);
    const cc = x[2] ?? null;
    floatIn(a!);
    sameType(cc ? [a!, b!, cc] : [a!, b!]);
    if (a!.rank !== 2 || b!.rank !== 2) throw new Error('Gemm needs 2-D A and B.');
    const [m, k1] = num(at, 'transA') ? [a!.shape[1]!, a!.shape[0]!] : [a!.shape[0]!, a!.shape[1]!];
    const [k2, n] = num(at, 'transB') ? [b!.shape[1]!, b!.shape[0]!] : [b!.shape[0]!, b!.shape[1]!];
    if (k1 !== k2) throw new Error(`inner dims differ: ${k1} vs ${k2}`);
    if (cc) broadcastShapes([m, n], cc.shape, 'Gemm C');
    return [{ dtype: a!.dtype, shape: [m, n] }];
  },
  lower: plain('Gemm', (a) => ({
    transA: A.i(num(a, 'transA')), transB: A.i(num(a, 'transB')), alpha: A.f(num(a, 'alpha')), beta: A.f(num(a, 'beta')),
  })),
  grad: (c) => {
    const { g } = c;
    const [a, b] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    const tA = !!num(c.node.attrs, 'transA'), tB = !!num(c.node.attrs, 'transB');
    const alpha = num(c.node.attrs, 'alpha'), beta = num(c.node.attrs, 'beta');
    // Y = A' B':  dA' = gY B'ᵀ,  dB' = A'ᵀ gY; then transpose back through the flags.
    const da = !c.needs(0) ? null : tA
      ? g.gemm(b!, gy, null, { transA: tB, transB: true, alpha }) // dA = B' gYᵀ
      : g.gemm(gy, b!, null, { transB: !tB, alpha }); // dA = gY B'ᵀ
    const db = !c.needs(1) ? null : tB
      ? g.gemm(gy, a!, null, { transA: true, transB: tA, alpha }) // dB = gYᵀ A'
      : g.gemm(a!, gy, null, { transA: !tA, alpha }); // dB = A'ᵀ gY
    if (c.x.length < 3) return [da, db];
    const dc = c.needs(2) ? (beta === 1 ? gy : g.mul(gy, Math.fround(beta))) : null; // ONNX float attribute
    return [da, db, dc];
  },
  // a Gemm without C takes a sum as its C: Gemm(a, b, C=sum) instead of Gemm + Add
  accumulate: {
    can: (n) => n.inputs.length === 2,
    with: (g, n, sum) => g.apply('Gemm', [n.inputs[0]!, n.inputs[1]!, sum], { ...n.attrs, beta: 1 })[0]!,
  },
});
