/**
 * AdamWStep (nn/adamw-step.ts) in one pass: one thread per parameter reads params, m, v and the summed
 * gradient once, applies the mean scale, global-norm clip, AdamW and the non-finite guard, and writes
 * params', m', v' and the cleared accumulator into ONE packed [4P] buffer (the op's four results are
 * views of it): 10 storage bindings instead of 13, and one dispatch instead of the ~20-op chain.
 * The arithmetic is the ONNX lowering's, op for op, in f32.
 */
import { KernelBuilder, lit } from '../wgsl';
import { dispatchPerElement, inShape, type Emitter } from './context';

export const ADAMW: Record<string, Emitter> = {
  AdamWStep: (c) => {
    const a = c.node.attrs;
    const b1 = a.beta1 as number, b2 = a.beta2 as number, maxNorm = a.maxGradNorm as number;
    const P = inShape(c, 0)[0]!;
    const packed = c.out(4);
    for (let j = 0; j < 4; j++) c.view(j, { ...packed, offset: packed.offset + j * P, numel: P });
    const k = new KernelBuilder('AdamWStep');
    const [ldp, ldm, ldv, ldg, ldi, ldn, lda, ldc] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => k.input(c.in(i))) as string[];
    const st = k.output(packed);
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
  ${st}(i, select(pp, p2, ok));
  ${st}(${P}u + i, select(mm, m2, ok));
  ${st}(${2 * P}u + i, select(vv, v2, ok));
  ${st}(${3 * P}u + i, select(gs, 0.0, apply));`);
  },
};
