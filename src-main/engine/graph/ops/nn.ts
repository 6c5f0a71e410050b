/** Fused nn ops: Softmax, SimplifiedLayerNormalization (RMSNorm), LayerNormalization, RotaryEmbedding. */
import type { Value } from '../graph';
import { def, num, A, need, floatIn, sameType, plain, type Attrs, type TypeInfo, type GradCtx } from './registry';
import { type DType, normAxis, shapeStr } from '../types';

def({
  name: 'Softmax',
  infer: (x) => {
    const v = need(x, 1)[0]!;
    floatIn(v);
    return [{ dtype: v.dtype, shape: [...v.shape] }];
  },
  lower: plain('Softmax', (a) => ({ axis: A.i(num(a, 'axis')) })),
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy) return [null];
    const y = c.y[0]!;
    // dx = y ⊙ (gy − Σ gy⊙y)
    const ax = normAxis(num(c.node.attrs, 'axis'), y.rank, 'Softmax');
    return [c.g.mul(y, c.g.sub(gy, c.g.reduceSum(c.g.mul(gy, y), [ax], true)))];
  },
});

/** The norm ops save their statistics in float32 (stash_type 1; the CPU EP has no other). */
const STAT_TYPE: DType = 'float32';

function normInfer(x: readonly (Value | null)[], a: Attrs, nIn: number, nStats: number): TypeInfo[] {
  const v = need(x, nIn);
  floatIn(v[0]!);
  sameType(v.filter((u) => u));
  if (normAxis(num(a, 'axis'), v[0]!.rank, 'norm') !== v[0]!.rank - 1) throw new Error('only the last axis is supported');
  const last = v[0]!.shape[v[0]!.rank - 1];
  for (const p of v.slice(1)) {
    if (p && (p.rank !== 1 || p.shape[0] !== last)) throw new Error(`scale/bias must be [${last}], got ${shapeStr(p.shape)}`);
  }
  const stat = { dtype: STAT_TYPE, shape: [...v[0]!.shape.slice(0, -1), 1] };
  return [{ dtype: v[0]!.dtype, shape: [...v[0]!.shape] }, ...new Array<TypeInfo>(nStats).fill(stat)];
}

/**
 * The norm statistics [..., 1] in the input's type for the gradient rules.
 * LayerNormalization: its saved Mean/InvStdDev outputs (float32; cast for float16), except for
 * float64 (gradient checks) where a float32 round trip would hide errors: recomputed there.
 * SimplifiedLayerNormalization: always recomputed (4 nodes) because the WebGPU EP (ORT 1.30) writes
 * the row mean, not 1/rms, into its optional second output; the CPU EP is right.
 */
function normStats(c: GradCtx, centered: boolean): { mu: Value | null; r: Value } {
  const x = c.x[0]!;
  const eps = num(c.node.attrs, 'epsilon');
  const { g } = c;
  if (centered && x.dtype !== 'float64') {
    return { mu: g.cast(c.y[1]!, x.dtype), r: g.cast(c.y[2]!, x.dtype) };
  }
  const mu = centered ? g.reduceMean(x, [-1], true) : null;
  const xc = mu ? g.sub(x, mu) : x;
  return { mu, r: g.pow(g.add(g.reduceMean(g.mul(xc, xc), [-1], true), eps), -0.5) };
}

def({
  name: 'SimplifiedLayerNormalization', // RMSNorm: y = x · r · scale, r = 1/sqrt(mean(x²) + eps); outputs y, (r)
  optionalOutputs: true,
  infer: (x, a) => normInfer(x, a, 2, 1),
  lower: (c) => c.emit('SimplifiedLayerNormalization', [c.in(0), c.in(1)], [c.out(0), c.out(1)], {
    axis: A.i(-1), epsilon: A.f(num(c.node.attrs, 'epsilon')),
  }),
  grad: (c) => {
    const { g } = c;
    const [x, s] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return [null, null];
    if (g.fused) {
      // the GPU backend's one-kernel backward (fused.ts); its ONNX lowering is the decomposition below
      const [dx, ds] = g.apply('RMSNormGrad', [x!, s!, gy], { epsilon: num(c.node.attrs, 'epsilon') });
      return [c.needs(0) ? dx! : null, c.needs(1) ? ds! : null];
    }
    const { r } = normStats(c, false); // [..., 1]
    const xh = g.mul(x!, r); // x̂
    const ds = c.needs(1) ? g.mul(gy, xh) : null; // summed over rows by the driver
    let dx: Value | null = null;
    if (c.needs(0)) {
      // dx = r (gx̂ − x̂ · mean(gx̂ ⊙ x̂)),  gx̂ = gy ⊙ scale
      const gxh = g.mul(gy, s!);
      const m = g.reduceMean(g.mul(gxh, xh), [-1], true);
      dx = g.mul(g.sub(gxh, g.mul(xh, m)), r);
    }
    return [dx, ds];
  },
});

def({
  name: 'LayerNormalization', // y = (x − μ) r · scale + bias; outputs y, μ, r
  optionalOutputs: true,
  infer: (x, a) => normInfer(x, a, 2, 2),
  lower: (c) => c.emit('LayerNormalization', c.node.inputs.map((_, i) => c.in(i)), [c.out(0), c.out(1), c.out(2)], {
    axis: A.i(-1), epsilon: A.f(num(c.node.attrs, 'epsilon')),
  }),
  grad: (c) => {
    const { g } = c;
    const [x, s] = c.x as Value[];
    const gy = c.gy[0];
    if (!gy) return c.x.map(() => null);
    if (g.fused) {
      const [dx, ds, db] = g.apply('LayerNormGrad', [x!, s!, gy], { epsilon: num(c.node.attrs, 'epsilon') });
      const out = [c.needs(0) ? dx! : null, c.needs(1) ? ds! : null, c.needs(2) ? db! : null];
      return c.x.length < 3 ? out.slice(0, 2) : out;
    }
    const { mu, r } = normStats(c, true);
    const xh = g.mul(g.sub(x!, mu!), r);
    const ds = c.needs(1) ? g.mul(gy, xh) : null;
    const db = c.needs(2) ? gy : null;
    let dx: Value | null = null;
    if (c.needs(0)) {
      // dx = r (gx̂ − mean(gx̂) − x̂ · mean(gx̂ ⊙ x̂))
      const gxh = g.mul(gy, s!);
      const m1 = g.reduceMean(gxh, [-1], true);
      const m2 = g.reduceMean(g.mul(gxh, xh), [-1], true);
      dx = g.mul(g.sub(g.sub(gxh, m1), g.mul(xh, m2)), r);
    }
    return c.x.length < 3 ? [dx, ds] : [dx, ds, db];
  },
});

def({
  name: 'RotaryEmbedding', // com.microsoft, rotate-half (interleaved 0) or pairs (1): x [B, N, S, H], pos [B, S] int64, cos/sin [P, H/2]
  infer: (x) => {
    const [v, pos, cos, sin] = need(x, 4);
    floatIn(v!);
    sameType([v!, cos!, sin!]);
    if (v!.rank !== 4) throw new Error(`x must be [B, heads, S, head_dim], got ${shapeStr(v!.shape)}`);
    if (pos!.dtype !== 'int64' || pos!.rank !== 2) throw new Error(`position ids must be int64 [B, S], got ${pos}`);
    const half = v!.shape[3];
    if (typeof half === 'number' && (cos!.shape[1] !== half / 2 || sin!.shape[1] !== half / 2)) {
      throw new Error(`cos/sin must be [positions, ${half / 2}], got ${shapeStr(cos!.shape)} and ${shapeStr(sin!.shape)}`);
    }
    return [{ dtype: v!.dtype, shape: [...v!.shape] }];
  },
  lower: (c) => {
    const heads = c.node.inputs[0]!.shape[1];
    c.emit('RotaryEmbedding', [c.in(0), c.in(1), c.in(2), c.in(3)], [c.out(0)], {
      interleaved: A.i(num(c.node.attrs, 'interleaved')),
      ...(typeof heads === 'number' ? { num_heads: A.i(heads) } : {}),
    }, 'com.microsoft');
  },
  grad: (c) => {
    const gy = c.gy[0];
    if (!gy || !c.needs(0)) return [null, null, null, null];
    // a rotation's transpose is the rotation by −θ: same op with −sin (folded when sin is a constant)
    const [, pos, cos, sin] = c.x as Value[];
    return [c.g.apply('RotaryEmbedding', [gy, pos!, cos!, c.g.neg(sin!)], c.node.attrs)[0]!, null, null, null];
  },
});
