/**
 * The gradient-check case table, one or more cases per op with a gradient rule. Shared by the
 * finite-difference check (CPU EP, float64) and the WebGPU-vs-CPU check (float32/float16).
 */
import { GraphBuilder, type Value } from '../../../src-main/engine/graph/graph';
import { type DType, numel } from '../../../src-main/engine/graph/types';

export type Kind = 'any' | 'pos' | 'away';
export interface In { shape: number[]; kind?: Kind; ints?: number[]; dtype?: DType }
export interface Case {
  op: string;
  label?: string;
  dtype?: 'float64' | 'float32';
  inputs: In[];
  build: (g: GraphBuilder, x: Value[]) => Value | Value[];
  /** Why this case cannot run on the WebGPU EP (e.g. float64 inside). */
  notOnGpu?: string;
  /** Why finite differences cannot check this case (it exists for the GPU comparison). */
  gpuOnly?: string;
  /** float32 tolerance of the WebGPU comparison when the graph itself rounds to float16. */
  gpuTol32?: number;
}

const f = (shape: number[], kind: Kind = 'any'): In => ({ shape, kind });
const idx = (shape: number[], ints: number[], dtype: DType = 'int64'): In => ({ shape, ints, dtype });
const mask = (shape: number[], ints: number[]): In => ({ shape, ints, dtype: 'bool' });

/**
 * FlashAttention's RoPE inputs: cos, sin tables of `shape` ([T, D] or [B, T, D], arbitrary values) and forward.ts's
 * rotate-half matrix [D, D] over the first `rotary` dims.
 */
function ropeInputs(g: GraphBuilder, dt: DType, shape: number[], rotary: number): Value[] {
  const n = numel(shape)!, D = shape[shape.length - 1]!;
  const rot = new Float32Array(D * D);
  for (let j = 0; j < rotary / 2; j++) { rot[(j + rotary / 2) * D + j] = -1; rot[j * D + j + rotary / 2] = 1; }
  return [
    g.constant(Float32Array.from({ length: n }, (_, i) => Math.cos(0.37 * i + 0.2)), dt, shape),
    g.constant(Float32Array.from({ length: n }, (_, i) => Math.sin(0.53 * i - 0.4)), dt, shape),
    g.constant(rot, dt, [D, D]),
  ];
}

export const CASES: Case[] = [
  { op: 'Add', inputs: [f([2, 3]), f([3])], build: (g, [a, b]) => g.add(a!, b!) },
  { op: 'Add', label: 'both broadcast', inputs: [f([2, 1]), f([1, 3])], build: (g, [a, b]) => g.add(a!, b!) },
  { op: 'Sub', inputs: [f([2, 3]), f([2, 1])], build: (g, [a, b]) => g.sub(a!, b!) },
  { op: 'Mul', inputs: [f([2, 3]), f([3])], build: (g, [a, b]) => g.mul(a!, b!) },
  { op: 'Div', inputs: [f([2, 3]), f([1, 3], 'pos')], build: (g, [a, b]) => g.div(a!, b!) },
  { op: 'Max', inputs: [f([2, 3]), f([3])], build: (g, [a, b]) => g.max(a!, b!) },
  { op: 'Min', inputs: [f([2, 3]), f([2, 3])], build: (g, [a, b]) => g.min(a!, b!) },
  { op: 'Neg', inputs: [f([2, 3])], build: (g, [a]) => g.neg(a!) },
  { op: 'Identity', inputs: [f([2, 3])], build: (g, [a]) => g.identity(a!) },
  { op: 'Exp', inputs: [f([2, 3])], build: (g, [a]) => g.exp(a!) },
  { op: 'Log', inputs: [f([2, 3], 'pos')], build: (g, [a]) => g.log(a!) },
  { op: 'Sqrt', inputs: [f([2, 3], 'pos')], build: (g, [a]) => g.sqrt(a!) },
  { op: 'Reciprocal', inputs: [f([2, 3], 'away')], build: (g, [a]) => g.reciprocal(a!) },
  { op: 'Tanh', inputs: [f([2, 3])], build: (g, [a]) => g.tanh(a!) },
  // Gemma 2's soft-capping as forward.ts builds it: cap · tanh(x / cap), then a masked softmax
  { op: 'Tanh', label: 'soft-cap + masked softmax', inputs: [f([2, 3])], build: (g, [a]) => {
    const capped = g.mul(g.tanh(g.div(a!, 0.7)), 0.7);
    return g.softmax(g.add(capped, g.constant([0, 0, -1e9], a!.dtype, [3])), -1);
  } },
  { op: 'Sigmoid', inputs: [f([2, 3])], build: (g, [a]) => g.sigmoid(a!) },
  { op: 'Softplus', dtype: 'float32', inputs: [f([2, 3])], build: (g, [a]) => g.softplus(a!) },
  { op: 'Erf', dtype: 'float32', inputs: [f([2, 3])], build: (g, [a]) => g.erf(a!) },
  { op: 'Relu', inputs: [f([2, 3], 'away')], build: (g, [a]) => g.relu(a!) },
  { op: 'Abs', inputs: [f([2, 3], 'away')], build: (g, [a]) => g.abs(a!) },
  { op: 'Pow', label: 'x^2.5', inputs: [f([2, 3], 'pos')], build: (g, [a]) => g.pow(a!, 2.5) },
  { op: 'Pow', label: 'x^2', inputs: [f([2, 3])], build: (g, [a]) => g.pow(a!, 2) },
  { op: 'Pow', label: 'x^-1', inputs: [f([2, 3], 'pos')], build: (g, [a]) => g.pow(a!, -1) },
  { op: 'Gelu', label: 'erf', dtype: 'float32', inputs: [f([2, 3])], build: (g, [a]) => g.gelu(a!, 'none') },
  { op: 'Gelu', label: 'tanh', inputs: [f([2, 3])], build: (g, [a]) => g.gelu(a!, 'tanh') },
  {
    op: 'Cast', dtype: 'float32', inputs: [f([2, 3])], notOnGpu: 'float64 inside',
    build: (g, [a]) => g.cast(g.exp(g.cast(a!, 'float64')), 'float32'),
  },
  {
    op: 'Cast', label: 'float16 round trip', dtype: 'float32', inputs: [f([2, 3])], gpuOnly: 'float16 rounding swamps differences', gpuTol32: 1e-3,
    build: (g, [a]) => g.cast(g.exp(g.cast(a!, 'float16')), 'float32'),
  },
  {
    op: 'Where', inputs: [mask([2, 3], [1, 0, 0, 1, 1, 0]), f([2, 3]), f([3])],
    build: (g, [c, a, b]) => g.where(c!, a!, b!),
  },
  { op: 'MatMul', label: '2-D', inputs: [f([3, 4]), f([4, 2])], build: (g, [a, b]) => g.matmul(a!, b!) },
  { op: 'MatMul', label: '3-D x 2-D', inputs: [f([2, 3, 4]), f([4, 5])], build: (g, [a, b]) => g.matmul(a!, b!) },
  {
    op: 'MatMul', label: 'batch broadcast', inputs: [f([2, 2, 3, 4]), f([2, 1, 4, 3])],
    build: (g, [a, b]) => g.matmul(a!, b!),
  },
  ...[false, true].flatMap((tA) => [false, true].map((tB): Case => ({
    op: 'Gemm', label: `transA=${tA} transB=${tB}`,
    inputs: [f(tA ? [4, 3] : [3, 4]), f(tB ? [2, 4] : [4, 2]), f([2])],
    build: (g, [a, b, c]) => g.gemm(a!, b!, c!, { transA: tA, transB: tB, alpha: 0.7, beta: 1.3 }),
  }))),
  { op: 'Gemm', label: 'no C', inputs: [f([3, 4]), f([2, 4])], build: (g, [a, b]) => g.gemm(a!, b!, null, { transB: true }) },
  {
    op: 'LayerNormalization', label: 'no bias', inputs: [f([3, 4]), f([4])],
    build: (g, [x, s]) => g.layerNorm(x!, s!, null, 1e-5),
  },
  { op: 'Reshape', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reshape(a!, [6, -1]) },
  { op: 'Transpose', inputs: [f([2, 3, 4])], build: (g, [a]) => g.transpose(a!, [2, 0, 1]) },
  { op: 'Concat', inputs: [f([2, 1]), f([2, 3]), f([2, 2])], build: (g, x) => g.concat(x, 1) },
  {
    op: 'Split', label: 'one piece unused', inputs: [f([2, 6])],
    build: (g, [a]) => {
      const [p, , r] = g.split(a!, [1, 2, 3], 1);
      return [p!, r!];
    },
  },
  { op: 'Slice', inputs: [f([4, 5])], build: (g, [a]) => g.slice(a!, [1, -3], [3, 100], [0, 1]) },
  { op: 'Pad', inputs: [f([2, 3])], build: (g, [a]) => g.apply('Pad', [a!], { pads: [1, 0, 0, 2] })[0]! },
  { op: 'Squeeze', inputs: [f([2, 1, 3])], build: (g, [a]) => g.squeeze(a!, [1]) },
  { op: 'Unsqueeze', inputs: [f([2, 3])], build: (g, [a]) => g.unsqueeze(a!, [0, 2]) },
  { op: 'Expand', inputs: [f([3, 1])], build: (g, [a]) => g.expand(a!, [2, 3, 4]) },
  { op: 'Trilu', inputs: [f([3, 4])], build: (g, [a]) => g.trilu(a!, true, 1) },
  {
    op: 'Gather', label: 'embedding, repeated ids', inputs: [f([5, 3]), idx([2, 3], [0, 4, 2, 4, 4, 1], 'int32')],
    build: (g, [d, i]) => g.gather(d!, i!, 0),
  },
  {
    op: 'GatherElements', inputs: [f([3, 4]), idx([3, 2], [0, 3, 1, 1, 2, 0])],
    build: (g, [d, i]) => g.gatherElements(d!, i!, 1),
  },
  {
    op: 'ScatterElements', inputs: [f([3, 4]), idx([3, 2], [0, 3, 1, 1, 2, 0]), f([3, 2])],
    build: (g, [d, i, u]) => g.scatterAdd(d!, i!, u!, 1),
  },
  { op: 'ReduceSum', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceSum(a!, [1], false) },
  { op: 'ReduceMean', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceMean(a!, [0, 2], true) },
  { op: 'ReduceMax', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceMax(a!, [-1], false) },
  { op: 'ReduceLogSumExp', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceLogSumExp(a!, [2], true) },
  { op: 'ReduceLogSumExp', label: 'two axes', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceLogSumExp(a!, [0, 2], false) },
  { op: 'ReduceSumSquare', inputs: [f([2, 3, 4])], build: (g, [a]) => g.reduceSumSquare(a!, [0], false) },
  { op: 'Softmax', label: 'last axis', inputs: [f([2, 3, 4])], build: (g, [a]) => g.softmax(a!, -1) },
  { op: 'Softmax', label: 'middle axis', inputs: [f([2, 3, 4])], build: (g, [a]) => g.softmax(a!, 1) },
  {
    op: 'SimplifiedLayerNormalization', inputs: [f([2, 3, 4]), f([4])],
    build: (g, [x, s]) => g.rmsNorm(x!, s!, 1e-5),
  },
  {
    op: 'LayerNormalization', inputs: [f([2, 3, 4]), f([4]), f([4])],
    build: (g, [x, s, b]) => g.layerNorm(x!, s!, b!, 1e-5),
  },
  {
    op: 'SimplifiedLayerNormalization', label: 'float32', dtype: 'float32', inputs: [f([2, 3, 4]), f([4])],
    build: (g, [x, s]) => g.rmsNorm(x!, s!, 1e-5),
  },
  {
    op: 'LayerNormalization', label: 'saved statistics', dtype: 'float32', inputs: [f([2, 3, 4]), f([4]), f([4])],
    build: (g, [x, s, b]) => g.layerNorm(x!, s!, b!, 1e-5),
  },
  // fused ops (graph/ops/fused.ts): the rules' ONNX lowering is the decomposition; on the GPU backend each
  // is one dedicated kernel (kernels.test.ts compares them with this decomposition on the CPU EP)
  {
    op: 'SimplifiedLayerNormalization', label: 'fused backward (RMSNormGrad)', inputs: [f([2, 3, 5]), f([5])],
    build: (g, [x, s]) => { g.fused = true; return g.rmsNorm(x!, s!, 1e-5); },
  },
  {
    op: 'LayerNormalization', label: 'fused backward (LayerNormGrad)', inputs: [f([3, 70]), f([70]), f([70])],
    build: (g, [x, s, b]) => { g.fused = true; return g.layerNorm(x!, s!, b!, 1e-5); },
  },
  {
    // GQA: 2 query heads on 1 kv head; T = 67 spans two 64-row workgroups and several key tiles (kept small:
    // onnxruntime's WebGPU EP runs these cases too, slowly on lavapipe)
    op: 'FlashAttention', label: 'causal GQA, T 67', inputs: [f([1, 2, 67, 3]), f([1, 1, 67, 3]), f([1, 1, 67, 3])],
    build: (g, [q, k, v]) => g.apply('FlashAttention', [q!, k!, v!], { scale: 0.7, window: 0 })[0]!,
  },
  {
    // packed samples (segment ids; 0 = padding) and a sliding window of 3, odd T
    op: 'FlashAttention', label: 'segments + window, T 9', inputs: [f([2, 4, 9, 4]), f([2, 2, 9, 4]), f([2, 2, 9, 4])],
    build: (g, [q, k, v]) => {
      const seg = g.constant([1, 1, 1, 1, 2, 2, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 0, 0], 'float32', [2, 9]);
      return g.apply('FlashAttention', [q!, k!, v!, seg], { scale: 0.5, window: 3 })[0]!;
    },
  },
  {
    // Gemma 2's soft-capped scores (cap · tanh(s / cap) before the mask)
    op: 'FlashAttention', label: 'soft-capped, T 6', inputs: [f([1, 2, 6, 4]), f([1, 2, 6, 4]), f([1, 2, 6, 4])],
    build: (g, [q, k, v]) => g.apply('FlashAttention', [q!, k!, v!], { scale: 1.5, window: 0, softcap: 0.8 })[0]!,
  },
  {
    // RoPE applied inside the kernel (q and k rotated as loaded, dq and dk rotated back as stored): [T, D] tables
    op: 'FlashAttention', label: 'RoPE, causal GQA, T 67', inputs: [f([1, 2, 67, 4]), f([1, 1, 67, 4]), f([1, 1, 67, 4])],
    build: (g, [q, k, v]) => g.apply('FlashAttention', [q!, k!, v!, null, ...ropeInputs(g, q!.dtype, [67, 4], 4)], { scale: 0.7, window: 0, rotary: 4 })[0]!,
  },
  {
    // per-row tables [B, T, D] (packed samples' restarting positions), partial rotary (4 of 6 dims), segments, window
    op: 'FlashAttention', label: 'RoPE per row, partial rotary, segments + window, T 9', inputs: [f([2, 4, 9, 6]), f([2, 2, 9, 6]), f([2, 2, 9, 6])],
    build: (g, [q, k, v]) => {
      const seg = g.constant([1, 1, 1, 1, 2, 2, 3, 3, 3, 1, 1, 2, 2, 2, 2, 2, 0, 0], 'float32', [2, 9]);
      return g.apply('FlashAttention', [q!, k!, v!, seg, ...ropeInputs(g, q!.dtype, [2, 9, 6], 4)], { scale: 0.5, window: 3, rotary: 4 })[0]!;
    },
  },
  { op: 'SwiGLU', inputs: [f([3, 5]), f([3, 5])], build: (g, [a, b]) => g.apply('SwiGLU', [a!, b!])[0]! },
  {
    // gate and up as the two halves of one [N, 2F] projection (phi3's gate_up): views at an offset
    op: 'SwiGLU', label: 'halves of one tensor', inputs: [f([4, 6])],
    build: (g, [x]) => { const [a, b] = g.split(g.mul(x!, 1.5), [3, 3], 1); return g.apply('SwiGLU', [a!, b!])[0]!; },
  },
  {
    op: 'SoftmaxCrossEntropy', label: 'masked rows', inputs: [f([5, 70])],
    build: (g, [l]) => {
      const t = g.constant([3, 0, 69, 12, 40], 'int64', [5, 1]);
      const w = g.constant([0.5, 0, 1, 0.25, 1], l!.dtype, [5, 1]);
      // logits computed in the graph (a temporary): the GPU's backward then overwrites them in place
      return g.apply('SoftmaxCrossEntropy', [g.mul(l!, 1.5), t, w])[0]!;
    },
  },
  {
    // per-row nll (the preference losses' per-token log-probs): each row gets its own incoming gradient
    op: 'SoftmaxCrossEntropyRows', label: 'masked rows, per-row gradient', inputs: [f([5, 70])],
    build: (g, [l]) => {
      const t = g.constant([3, 0, 69, 12, 40], 'int64', [5, 1]);
      const w = g.constant([0.5, 0, 1, 0.25, 1], l!.dtype, [5, 1]);
      const nll = g.apply('SoftmaxCrossEntropyRows', [g.mul(l!, 1.5), t, w])[0]!;
      return g.mul(nll, g.constant([1, -2, 0.5, 3, -1], l!.dtype, [5, 1]));
    },
  },
  {
    // the lm_head GEMM + cross-entropy (frozen head W [70, 6], a constant): 5 vocabulary chunks of 16 (the
    // last one 6 rows) on the GPU backend, scaled and soft-capped logits (Granite, Gemma 2), a masked row
    op: 'LinearCrossEntropy', label: 'chunked, scaled, soft-capped', inputs: [f([5, 6])],
    build: (g, [x]) => {
      const w = g.constant(Array.from({ length: 70 * 6 }, (_, i) => Math.sin(0.37 * i + 0.1) * 1.3), x!.dtype, [70, 6]);
      const t = g.constant([3, 0, 69, 17, 40], 'int64', [5, 1]);
      const m = g.constant([0.5, 0, 1, 0.25, 1], 'float32', [5, 1]);
      return g.apply('LinearCrossEntropy', [x!, w, t, m], { scale: 0.7, softcap: 3, chunk: 16 })[0]!;
    },
  },
  {
    op: 'LinearCrossEntropy', label: 'one chunk', inputs: [f([4, 3])],
    build: (g, [x]) => {
      const w = g.constant(Array.from({ length: 33 * 3 }, (_, i) => Math.cos(0.71 * i)), x!.dtype, [33, 3]);
      const t = g.constant([32, 1, 7, 0], 'int64', [4, 1]);
      const m = g.constant([1, 1, 0.5, 1], 'float32', [4, 1]);
      return g.apply('LinearCrossEntropy', [x!, w, t, m], { scale: 1, softcap: 0, chunk: 0 })[0]!;
    },
  },
  {
    // per-row nll (rows: 1, the preference losses' per-token log-probs): 3 chunks, soft-capped, each row with
    // its own incoming gradient
    op: 'LinearCrossEntropy', label: 'rows, chunked, per-row gradient', inputs: [f([5, 6])],
    build: (g, [x]) => {
      const w = g.constant(Array.from({ length: 40 * 6 }, (_, i) => Math.sin(0.53 * i + 0.2) * 1.1), x!.dtype, [40, 6]);
      const t = g.constant([3, 0, 39, 17, 25], 'int64', [5, 1]);
      const m = g.constant([0.5, 0, 1, 0.25, 1], 'float32', [5, 1]);
      const nll = g.apply('LinearCrossEntropy', [x!, w, t, m], { scale: 0.9, softcap: 4, chunk: 16, rows: 1 })[0]!;
      return g.mul(nll, g.constant([1, -2, 0.5, 3, -1], nll.dtype, [5, 1]));
    },
  },
  {
    // trainable new-token rows' form (forward.ts newRowsLoss): a column bias masking two columns (−1e9), targets
    // outside W (a new row's class 42, an ignore label −100: no nll, only their lse), and the lse output itself
    // differentiated (its gradient adds softmax · glse to the logits' gradient)
    op: 'LinearCrossEntropy', label: 'column bias, differentiated lse, targets outside W', inputs: [f([5, 6])],
    build: (g, [x]) => {
      const lt = x!.dtype === 'float64' ? 'float64' : 'float32';
      const w = g.constant(Array.from({ length: 40 * 6 }, (_, i) => Math.sin(0.41 * i + 0.3) * 1.2), x!.dtype, [40, 6]);
      const bias = g.constant(Array.from({ length: 40 }, (_, i) => (i === 5 || i === 33 ? -1e9 : 0)), lt, [40]);
      const t = g.constant([3, 42, 39, -100, 17], 'int64', [5, 1]);
      const m = g.constant([0.5, 1, 1, 0.25, 1], 'float32', [5, 1]);
      const [nll, lse] = g.apply('LinearCrossEntropy', [x!, w, t, m, bias], { scale: 0.8, softcap: 5, chunk: 16, rows: 1 });
      return g.add(g.mul(nll!, g.constant([1, -2, 0.5, 3, -1], lt, [5, 1])), g.mul(lse!, g.constant([0.3, 1, -0.7, 2, 0.1], lt, [5, 1])));
    },
  },
  {
    // only the lse output used (the nll's gradient a zero)
    op: 'LinearCrossEntropy', label: 'lse only', inputs: [f([3, 4])],
    build: (g, [x]) => {
      const w = g.constant(Array.from({ length: 20 * 4 }, (_, i) => Math.cos(0.29 * i + 0.5)), x!.dtype, [20, 4]);
      const t = g.constant([1, 2, 3], 'int64', [3, 1]);
      const m = g.constant([1, 1, 1], 'float32', [3, 1]);
      return g.apply('LinearCrossEntropy', [x!, w, t, m], { scale: 1, softcap: 0, chunk: 8 })[1]!;
    },
  },
  {
    op: 'RotaryEmbedding', dtype: 'float32', inputs: [f([2, 2, 3, 4]), idx([2, 3], [0, 1, 2, 3, 4, 5])],
    build: (g, [x, pos]) => {
      // cos/sin tables [6, 2] for 6 positions, theta 10000
      const cos: number[] = [], sin: number[] = [];
      for (let p = 0; p < 6; p++) for (let j = 0; j < 2; j++) {
        const th = p * 10000 ** (-j / 2);
        cos.push(Math.cos(th));
        sin.push(Math.sin(th));
      }
      return g.rotary(x!, pos!, g.constant(cos, x!.dtype, [6, 2]), g.constant(sin, x!.dtype, [6, 2]));
    },
  },
  {
    op: 'composite', label: 'transpose of a constant (folded at build time)', inputs: [f([2, 3])],
    build: (g, [a]) => g.mul(a!, g.transpose(g.constant([1, 2, 3, 4, 5, 6], a!.dtype, [3, 2]))),
  },
  // composites: fan-out accumulation and scatter folded into a dense sum
  {
    op: 'composite', label: 'gather reused + dense path', inputs: [f([4, 3]), idx([3], [1, 3, 1], 'int32')],
    build: (g, [d, i]) => g.add(g.mul(g.gather(d!, i!, 0), g.reduceSum(d!, [0], true)), g.sum3(d!)),
  },
];

// a tiny extra builder helper for the composite above (keeps the case table one line each)
declare module '../../../src-main/engine/graph/graph' {
  interface GraphBuilder { sum3(x: Value): Value }
}
GraphBuilder.prototype.sum3 = function (this: GraphBuilder, x: Value): Value {
  return this.reduceSum(this.slice(x, [0], [3], [0]), [0], true);
};

export function gen(r: () => number, inp: In): number[] {
  if (inp.ints) return inp.ints;
  const n = numel(inp.shape)!;
  return Array.from({ length: n }, () => {
    const u = r() * 2 - 1;
    if (inp.kind === 'pos') return 0.5 + 1.5 * r();
    if (inp.kind === 'away') return Math.sign(u || 1) * (0.2 + 0.8 * Math.abs(u));
    return u;
  });
}

