/**
 * QLoRA's NF4 weights on the GPU: the packed codes and the double-quantized block scales are uploaded
 * as they are (4 bits a parameter + ~0.13 for the scales) and dequantized inside the GEMM's tile load;
 * no f32 copy of the weight exists on the GPU, not even a transient one (the ONNX lowering in
 * quant/graph.ts materialises W per Gemm).
 *
 *   Nf4Const  the node's code bytes -> a weight buffer read as u32 words (4 bytes, 8 codes a word), placed by
 *             plan.ts before scheduling (no kernel: a constant, bound wherever a GEMM reading it runs)
 *   Nf4Gemm   y [N, out] = x [N, in] · W' (+ bias | + C), W' = Wᵀ (transB) or W; W [rows, cols] row-major:
 *               w_e = NF4[code_e] · (DYN[acode_b] · scale2_{b/256} + offset),  b = e / 64
 *             code_e = nibble e of the code bytes (low nibble first), acode_b = byte b of the absmax codes.
 * The same arithmetic as quant/nf4.ts's dequantizeNf4 (f32 products, rounded once each). Under f16 compute
 * (x float16) w_e is rounded to f16 as well, and x, y are 16-bit activations (h16 or f16r storage). Nf4Gemm's
 * kernel, alone or chained with a LoRA term, is emitted in kernels/matmul.ts with the other GEMMs.
 */
import { ABSMAX_BLOCK, NF4_BLOCK, NF4_VALUES } from '../../../quant/nf4';
import type { Node } from '../../../graph/graph';
import { sameShape } from '../../../graph/types';
import { KernelBuilder, lit, roundHalf, type Ref } from '../wgsl';
import { shapeOf, type EmitCtx } from './context';
import type { GemmProblem } from './gemm';

export const NF4_TABLE = `var<private> NF4: array<f32, 16> = array<f32, 16>(${NF4_VALUES.map((v) => lit(v)).join(', ')});`;

/**
 * Is this Nf4Gemm's weight one packed buffer on the GPU (plan.ts packs it where the codes and absmax codes are
 * Nf4Const nodes and scale2, offset constants: always, for the graphs quant/graph.ts builds)? Then its kernel
 * binds the weight once: x, the packed weight (with its copy of the dynamic map), the bias if any.
 */
export function nf4Packed(n: Node): boolean {
  const [, codes, abs, scale2, offset, , dyn] = n.inputs;
  return n.op === 'Nf4Gemm' && codes?.node?.op === 'Nf4Const' && abs?.node?.op === 'Nf4Const' && !!scale2 && !scale2.node && !!offset && !offset.node
    && !!dyn && !dyn.node && [scale2, offset, dyn].every((v) => v.dtype === 'float32') && sameShape(dyn.shape, [DYN_ENTRIES]);
}

/**
 * The layout of one NF4 weight's packed buffer, in u32 words: the code bytes (8 codes a word), the absmax codes
 * (4 a word), scale2 [nb2], the offset and the dynamic map [256] (f32 bits): what `nf4Problem` reads and program.ts
 * uploads (each piece a constant of the plan at its word offset). The bytes of the four buffers it replaces plus a
 * copy of the 1 KiB map (one binding less: the chained down projection with its residual epilogue fits 8).
 */
export function nf4PackLayout(codeBytes: number, absBytes: number, nb2: number): { codes: number; abs: number; scale2: number; offset: number; dyn: number; words: number } {
  const cw = Math.max(1, Math.ceil(codeBytes / 4)), aw = Math.max(1, Math.ceil(absBytes / 4));
  const offset = cw + aw + nb2;
  return { codes: 0, abs: cw, scale2: cw + aw, offset, dyn: offset + 1, words: offset + 1 + DYN_ENTRIES };
}

/** Entries of the dynamic map the absmax codes index (quant/nf4.ts dynamicMap). */
const DYN_ENTRIES = 256;

/** How a kernel reads one GEMM node's inputs (its own, or those of the GEMM chained into it: plan.ts operandsOf). */
export interface Nf4Operands { node: Node; in(i: number): Ref; folded?(i: number): boolean; load?(i: number, k: KernelBuilder): string }

/**
 * An Nf4Gemm's GEMM with its bindings declared in `k` (its own kernel's, or a grouped kernel's: group.ts, where
 * each NF4 problem names its dequantizing load `fn` apart). `o`: whose inputs (default the node being emitted;
 * kernels/matmul.ts passes the chained Nf4Gemm of a base + LoRA pair, whose result it takes from `value`, the
 * stored value: the sum plus the bias or C). `chainedC`: the Nf4Gemm is the second of a chained pair
 * (kernels/matmul.ts chainedSpec), whose store is the chain's: its C (input 8, computed in the same dispatch) and its
 * output are not bound, nor C added by `value`/`store`.
 */
export function nf4Problem(c: EmitCtx, k: KernelBuilder, fn: string, o: Nf4Operands = c, chainedC = false): GemmProblem & { value: (row: string, col: string, acc: string) => string } {
  const at = o.node.attrs;
  const rows = at.rows as number, cols = at.cols as number, transB = !!at.transB;
  const [M, K] = shapeOf(o.node.inputs[0]!) as [number, number];
  const N = shapeOf(o.node.outputs[0]!)[1]!;
  const ldx = o.folded?.(0) ? o.load!(0, k) : k.input(o.in(0)); // x may be a folded Transpose or SwiGLU (plan.ts)
  const bias = o.node.inputs[7] ? k.input(o.in(7)) : null;
  const ldc = o.node.inputs[8] && !chainedC ? k.input(o.in(8)) : null; // C [M, N] (a gradient sum: quant/graph.ts), never beside a bias
  let code: string, acode: string, scale2: string, offset: string, dyn: string;
  if (nf4Packed(o.node)) {
    // one binding: the packed weight's words, its pieces at their word offsets
    const q = o.in(1);
    const ldw = k.input({ buf: q.buf, offset: 0, numel: q.buf.bytes / 4, storage: 'u32' });
    const off = (r: Ref) => (r.offset ? `${k.param(r.offset)} + ` : '');
    code = `${ldw}(${off(q)}(e >> 3u))`;
    acode = `${ldw}(${off(o.in(2))}(b >> 2u))`;
    scale2 = `bitcast<f32>(${ldw}(${off(o.in(3))}b / ${ABSMAX_BLOCK}u))`;
    offset = `bitcast<f32>(${ldw}(${k.param(o.in(4).offset)}))`;
    dyn = `bitcast<f32>(${ldw}(${k.param(o.in(4).offset + 1)} + acode))`;
  } else {
    dyn = `${k.input(o.in(6))}(acode)`;
    const ldq = k.input(o.in(1)), lda = k.input(o.in(2)), lds = k.input(o.in(3)), ldo = k.input(o.in(4));
    code = `${ldq}(e >> 3u)`;
    acode = `${lda}(b >> 2u)`;
    scale2 = `${lds}(b / ${ABSMAX_BLOCK}u)`;
    offset = `${ldo}(0u)`;
  }
  k.decl(NF4_TABLE);
  // f16 compute: the weight rounded to f16 (as the ONNX lowering's Cast and bitsandbytes' dequantize into the
  // compute type), x and y in 16-bit storage, the products summed in f32
  const half = o.node.inputs[0]!.dtype === 'float16' ? roundHalf() : null; // (bf16 compute: rounded to bf16)
  if (half) k.decl(half.decl);
  k.decl(`fn ${fn}(e: u32) -> f32 {
  let code = (${code} >> ((e & 7u) * 4u)) & 15u;
  let b = e / ${NF4_BLOCK}u;
  let acode = (${acode} >> ((b & 3u) * 8u)) & 255u;
  let absmax = ${dyn} * ${scale2} + ${offset};
  return ${half ? `${half.fn}(NF4[code] * absmax)` : 'NF4[code] * absmax'};
}`);
  if (transB ? cols !== K || rows !== N : rows !== K || cols !== N) throw new Error(`Nf4Gemm: weight [${rows}, ${cols}] does not fit x [${M}, ${K}] -> [${M}, ${N}].`);
  const st = o === c && !chainedC ? k.output(c.out(0)) : '';
  const value = (r: string, col: string, acc: string) => (bias ? `${acc} + ${bias}(${col})` : ldc ? `${acc} + ${ldc}(${r} * ${N}u + ${col})` : acc);
  return {
    M, N, K,
    a: (r, ka) => `${ldx}(${r} * ${K}u + ${ka})`,
    b: (kb, col) => (transB ? `${fn}(${col} * ${cols}u + ${kb})` : `${fn}(${kb} * ${cols}u + ${col})`),
    value,
    store: (r, col, acc) => `${st}(${r} * ${N}u + ${col}, ${value(r, col, acc)});`,
  };
}
