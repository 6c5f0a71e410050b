/**
 * AdamWStep (nn/adamw-step.ts) in one pass: one thread per parameter reads params, m, v and the summed
 * gradient once, applies the mean scale, global-norm clip, AdamW and the non-finite guard, and writes
 * params', m', v' and the cleared accumulator. Each result is written IN PLACE over its input (params over
 * params, m over m, v over v, gacc' over gsum; gacc' not at all where nothing reads it: a train graph
 * without an accumulator, whose gsum is the step's gradient) wherever the plan says nothing later reads that input
 * (EmitCtx.overwritable: the train graph's state and paged feeds, the gradient sum): each thread reads and
 * writes only its own element, so this is race-free, and a state slot's output is then its input buffer
 * (GpuProgram copies nothing). Results that cannot be written in place go into the op's packed [4P] output
 * (views of it), as do all four when that output is read: at most 10 storage bindings, one dispatch.
 * The arithmetic is the ONNX lowering's, op for op, in f32.
 */
import { KernelBuilder, lit, type Ref } from '../wgsl';
import { dispatchPerElement, inShape, type Emitter } from './context';

export const ADAMW: Record<string, Emitter> = {
  AdamWStep: (c) => {
    const a = c.node.attrs;
    const b1 = a.beta1 as number, b2 = a.beta2 as number, maxNorm = a.maxGradNorm as number;
    const P = inShape(c, 0)[0]!;
    const k = new KernelBuilder('AdamWStep');
    // result j (params', m', v', gacc') over input j (params, m, v, gsum) where allowed
    const inPlace = [0, 1, 2, 3].map((j) => !c.used(4) && !!c.overwritable?.(j) && c.in(j).storage === 'f32');
    // gacc' unread (no accumulator state): gsum is only read, and its result neither stored nor allocated
    const skip = [false, false, false, !c.used(3) && !c.used(4)];
    const lds: string[] = [], sts: string[] = [];
    inPlace.forEach((yes, j) => {
      if (!yes || skip[j]) { lds.push(k.input(c.in(j))); return; }
      const r = c.in(j);
      c.view(j, r);
      const [ld, st] = k.inout(r);
      lds.push(ld);
      sts[j] = st;
    });
    const rest = inPlace.flatMap((yes, j) => (yes || skip[j] ? [] : [j]));
    if (rest.length) {
      const packed: Ref = c.out(4);
      const st = k.output(packed);
      for (const j of rest) {
        c.view(j, { ...packed, offset: packed.offset + j * P, numel: P });
        sts[j] = `st_${j}`;
        k.decl(`fn st_${j}(e: u32, v: f32) { ${st}(${j * P}u + e, v); }`);
      }
    }
    const [ldp, ldm, ldv, ldg] = lds as [string, string, string, string];
    const [ldi, ldn, lda, ldc] = [4, 5, 6, 7].map((i) => k.input(c.in(i))) as string[];
    const [stp, stm, stv] = sts as [string, string, string];
    const stg = sts[3];
    const clip = maxNorm > 0 ? `  g = g * min(${lit(maxNorm)} / (nrm + ${lit(1e-6)}), 1.0);\n` : '';
    dispatchPerElement(c, k, P, `  let gs = ${ldg}(i);
  let nrm = ${ldn}(0u);
  var g = gs * ${ldi}(0u);
${clip}  let pp = ${ldp}(i);
  let mm = ${ldm}(i);
  let vv = ${ldv}(i);
  let m2 = mm + (g - mm) * ${lit(1 - b1)};
  let v2 = vv + (g * g - vv) * ${lit(1 - b2)};
  let upd = (m2 / (sqrt(v2) + ${ldc}(1u))) * ${ldc}(0u);
  let p2 = pp * ${ldc}(2u) - upd;
  let apply = ${lda}(0u) != 0u;
  // the non-finite guard: an inf or NaN norm (exponent bits all ones) skips the update
  let ok = apply && (bitcast<u32>(nrm) & 0x7f800000u) != 0x7f800000u;
  ${stp}(i, select(pp, p2, ok));
  ${stm}(i, select(mm, m2, ok));
  ${stv}(i, select(vv, v2, ok));
${stg === undefined ? '' : `  ${stg}(i, select(gs, 0.0, apply));`}`);
  },
};
