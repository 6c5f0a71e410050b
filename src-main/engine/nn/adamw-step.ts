/**
 * The optimizer's update as ONE IR op, so a backend can run it as one pass over the parameters (the GPU
 * backend: kernels/adamw.ts, one dispatch for params, both moments and the accumulator) while the ONNX
 * lowering stays the elementwise chain it always was (same ops, same order: the CPU EP's numbers do not
 * change). The global norm is computed before it (one reduction) and passed in.
 *
 *   AdamWStep(params, m, v, gsum, invCount, norm, apply, adam) -> params', m', v', gacc', packed
 *     g     = gsum · invCount                                   mean gradient of the optimizer step
 *     g     = g · min(1, maxNorm / (norm + 1e-6))               PyTorch clip_grad_norm_ (maxNorm > 0)
 *     m'    = m + (1−β1)(g − m);  v' = v + (1−β2)(g² − v)
 *     p'    = p · decay − α · m' / (√v' + ε̂)                   adam = [α, ε̂, decay] (adamwScalars)
 *     where not apply or norm is not finite: p', m', v' = p, m, v   (the non-finite guard)
 *     gacc' = apply ? 0 : gsum                                  (only where read: a graph without an accumulator
 *                                                                 passes its gradient as gsum and leaves it unused)
 * All [P] f32; invCount, norm [] ; apply bool []; adam [3]. `packed` [4P] is for backends that write the
 * four results into one buffer (the GPU backend binds one output instead of four; the first four outputs
 * are views of it there); the ONNX lowering leaves it unnamed.
 */
import type { GraphBuilder, Value } from '../graph/graph';
import { defineOp } from '../graph/ops/registry';

export interface AdamWStepConfig { beta1: number; beta2: number; maxGradNorm: number }

defineOp({
  name: 'AdamWStep',
  nondiff: true,
  optionalOutputs: true,
  infer: (x) => {
    const p = x[0]!;
    if (p.dtype !== 'float32' || p.rank !== 1) throw new Error(`AdamWStep: params must be flat float32, got ${p.toString()}`);
    const n = p.shape[0] as number;
    return [0, 1, 2, 3].map(() => ({ dtype: 'float32' as const, shape: [n] })).concat([{ dtype: 'float32', shape: [4 * n] }]);
  },
  lower: (c) => {
    const a = c.node.attrs;
    const b1 = a.beta1 as number, b2 = a.beta2 as number, maxNorm = a.maxGradNorm as number;
    const f = (op: string, inputs: string[], hint: string): string => {
      const o = c.tmp(hint);
      c.emit(op, inputs, [o]);
      return o;
    };
    const [p, m, v, gsum, invCount, norm, apply, adam] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => c.in(i)) as [string, string, string, string, string, string, string, string];
    const gmean = f('Mul', [gsum, invCount], 'adam_gmean');
    let g = gmean;
    if (maxNorm > 0) {
      const denom = f('Add', [norm, c.scalar(1e-6, 'float32')], 'adam_nd');
      const ratio = f('Div', [c.scalar(maxNorm, 'float32'), denom], 'adam_ratio');
      g = f('Mul', [gmean, f('Min', [ratio, c.scalar(1, 'float32')], 'adam_clip')], 'adam_g');
    }
    const [alpha, epsHat, decay] = [c.tmp('adam_alpha'), c.tmp('adam_eps'), c.tmp('adam_decay')];
    c.emit('Split', [adam, c.ints([1, 1, 1])], [alpha, epsHat, decay], { axis: { type: 'int', value: 0 } });
    const m2 = f('Add', [m, f('Mul', [f('Sub', [g, m], 'adam_gm'), c.scalar(1 - b1, 'float32')], 'adam_mu')], 'adam_m2');
    const v2 = f('Add', [v, f('Mul', [f('Sub', [f('Mul', [g, g], 'adam_g2'), v], 'adam_gv'), c.scalar(1 - b2, 'float32')], 'adam_vu')], 'adam_v2');
    const upd = f('Mul', [f('Div', [m2, f('Add', [f('Sqrt', [v2], 'adam_sv'), epsHat], 'adam_den')], 'adam_q'), alpha], 'adam_upd');
    const p2 = f('Sub', [f('Mul', [p, decay], 'adam_pd'), upd], 'adam_p2');
    const finite = f('Equal', [f('Sub', [norm, norm], 'adam_nn'), c.scalar(0, 'float32')], 'adam_finite');
    const keep = (next: string, prev: string, k: number) => {
      const inner = f('Where', [finite, next, prev], 'adam_keep');
      c.emit('Where', [apply, inner, prev], [c.out(k)]);
    };
    keep(p2, p, 0);
    keep(m2, m, 1);
    keep(v2, v, 2);
    const gaccOut = c.out(3); // '' when unused (optionalOutputs)
  if (gaccOut) c.emit('Where', [apply, c.scalar(0, 'float32'), gsum], [gaccOut]);
  },
});

/** Builds the op; returns params', m', v', gacc'. */
export function adamwStep(g: GraphBuilder,
  s: { params: Value; m: Value; v: Value; gsum: Value; invCount: Value; norm: Value; apply: Value; adam: Value },
  cfg: AdamWStepConfig): { p: Value; m: Value; v: Value; gacc: Value } {
  const out = g.apply('AdamWStep', [s.params, s.m, s.v, s.gsum, s.invCount, s.norm, s.apply, s.adam],
    { beta1: cfg.beta1, beta2: cfg.beta2, maxGradNorm: cfg.maxGradNorm });
  return { p: out[0]!, m: out[1]!, v: out[2]!, gacc: out[3]! };
}
