/**
 * QLoRA's NF4 weights on the GPU: the packed codes and the double-quantized block scales are uploaded
 * as they are (4 bits a parameter + ~0.13 for the scales) and dequantized inside the GEMM's tile load;
 * no f32 copy of the weight exists on the GPU, not even a transient one (the ONNX lowering in
 * quant/graph.ts materialises W per Gemm).
 *
 *   Nf4Const  the node's code bytes -> a weight buffer read as u32 words (4 bytes, 8 codes a word)
 *   Nf4Gemm   y [N, out] = x [N, in] · W' (+ bias), W' = Wᵀ (transB) or W; W [rows, cols] row-major:
 *               w_e = NF4[code_e] · (DYN[acode_b] · scale2_{b/256} + offset),  b = e / 64
 *             code_e = nibble e of the code bytes (low nibble first), acode_b = byte b of the absmax codes.
 * The same arithmetic as quant/nf4.ts's dequantizeNf4 (f32 products, rounded once each). Under f16 compute
 * (x float16) w_e is rounded to f16 as well, and x, y are 16-bit activations (h16 or f16r storage).
 */
import { nf4ConstData } from '../../../quant/graph';
import { ABSMAX_BLOCK, NF4_BLOCK, NF4_VALUES } from '../../../quant/nf4';
import { KernelBuilder, lit, roundHalf } from '../wgsl';
import { inShape, outShape, type EmitCtx, type Emitter } from './context';
import { emitGemm, type GemmProblem } from './gemm';

export const NF4_TABLE = `var<private> NF4: array<f32, 16> = array<f32, 16>(${NF4_VALUES.map((v) => lit(v)).join(', ')});`;

export const NF4: Record<string, Emitter> = {
  Nf4Const: (c) => {
    const { data, bytes } = nf4ConstData(c.node);
    c.constant(0, data, bytes);
  },
  Nf4Gemm: (c) => {
    const k = new KernelBuilder('Nf4Gemm');
    emitGemm(c, { k, ...nf4Problem(c, k, 'nf4w') }, true);
  },
};

/**
 * An Nf4Gemm's GEMM with its bindings declared in `k` (its own kernel's, or a grouped kernel's: group.ts, where
 * each NF4 problem names its dequantizing load `fn` apart).
 */
export function nf4Problem(c: EmitCtx, k: KernelBuilder, fn: string): GemmProblem {
  const at = c.node.attrs;
  const rows = at.rows as number, cols = at.cols as number, transB = !!at.transB;
  const [M, K] = inShape(c, 0) as [number, number];
  const N = outShape(c)[1]!;
  const ldx = c.folded?.(0) ? c.load!(0, k) : k.input(c.in(0)); // x may be a folded Transpose (plan.ts)
  const ldq = k.input(c.in(1)), lda = k.input(c.in(2)), lds = k.input(c.in(3)), ldo = k.input(c.in(4));
  const ldd = k.input(c.in(6));
  const bias = c.node.inputs[7] ? k.input(c.in(7)) : null;
  const st = k.output(c.out(0));
  k.decl(NF4_TABLE);
  // f16 compute: the weight rounded to f16 (as the ONNX lowering's Cast and bitsandbytes' dequantize into the
  // compute type), x and y in 16-bit storage, the products summed in f32
  const half = c.node.inputs[0]!.dtype === 'float16' ? roundHalf() : null; // (bf16 compute: rounded to bf16)
  if (half) k.decl(half.decl);
  k.decl(`fn ${fn}(e: u32) -> f32 {
  let code = (${ldq}(e >> 3u) >> ((e & 7u) * 4u)) & 15u;
  let b = e / ${NF4_BLOCK}u;
  let acode = (${lda}(b >> 2u) >> ((b & 3u) * 8u)) & 255u;
  let absmax = ${ldd}(acode) * ${lds}(b / ${ABSMAX_BLOCK}u) + ${ldo}(0u);
  return ${half ? `${half.fn}(NF4[code] * absmax)` : 'NF4[code] * absmax'};
}`);
  if (transB ? cols !== K || rows !== N : rows !== K || cols !== N) throw new Error(`Nf4Gemm: weight [${rows}, ${cols}] does not fit x [${M}, ${K}] -> [${M}, ${N}].`);
  return {
    M, N, K,
    a: (r, ka) => `${ldx}(${r} * ${K}u + ${ka})`,
    b: (kb, col) => (transB ? `${fn}(${col} * ${cols}u + ${kb})` : `${fn}(${kb} * ${cols}u + ${col})`),
    store: (r, col, acc) => `${st}(${r} * ${N}u + ${col}, ${bias ? `${acc} + ${bias}(${col})` : acc});`,
  };
}
