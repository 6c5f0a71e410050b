/**
 * Seeded dropout on the LoRA branch's input, computed in the graph from a per-step seed, so that
 *  - no [N, in] mask is ever uploaded (for a 1B model that would be ~10⁹ floats per step), and
 *  - a resumed run draws exactly the masks an uninterrupted run would (the seed is a function of the step).
 *
 * The random source is a classic float hash, u = frac(sin(r·a + c·b + s) · 43758.5453), over the row and
 * column of each element: cheap, elementwise, and made of ops every EP runs (Sin, Floor). It is not a
 * cryptographic generator; dropout needs only masks that are independent-looking and unbiased (tested).
 * Masks differ between EPs (sin is implemented differently), so with dropout > 0 the CPU and WebGPU curves
 * are statistically, not bitwise, equal.
 */
import type { GraphBuilder, Value } from '../graph/graph';
import { defineOp } from '../graph/ops/registry';

const A = 12.9898, B = 78.233, K = 43758.5453;

// HashUniform(rows [N, 1], cols [1, M], seed []) -> u [N, M] in [0, 1). A random source: no gradient.
defineOp({
  name: 'HashUniform',
  nondiff: true,
  infer: (x) => [{ dtype: 'float32', shape: [x[0]!.shape[0]!, x[1]!.shape[1]!] }],
  lower: (c) => {
    const ra = c.tmp('ra'), cb = c.tmp('cb'), sum = c.tmp('sum'), arg = c.tmp('arg'), s = c.tmp('sin'), h = c.tmp('h'), fl = c.tmp('fl');
    c.emit('Mul', [c.in(0), c.scalar(A, 'float32')], [ra]);
    c.emit('Mul', [c.in(1), c.scalar(B, 'float32')], [cb]);
    c.emit('Add', [ra, cb], [sum]);
    c.emit('Add', [sum, c.in(2)], [arg]);
    c.emit('Sin', [arg], [s]);
    c.emit('Mul', [s, c.scalar(K, 'float32')], [h]);
    c.emit('Floor', [h], [fl]);
    c.emit('Sub', [h, fl], [c.out(0)]);
  },
});

/** Per-module seed offsets keep the masks of different layers apart. */
export function moduleSeedOffset(layer: number, roleIndex: number): number {
  return (layer * 8 + roleIndex) * 7.3137;
}

/** x [N, M] -> x · mask / (1 − p), mask = u ≥ p with u from the hash of (row, col, seed + offset). */
export function loraDropout(g: GraphBuilder, x: Value, p: number, seed: Value, offset: number): Value {
  const N = x.shape[0] as number, M = x.shape[1] as number;
  const rows = g.constant(Float32Array.from({ length: N }, (_, i) => i), 'float32', [N, 1]);
  const cols = g.constant(Float32Array.from({ length: M }, (_, i) => i), 'float32', [1, M]);
  const u = g.apply('HashUniform', [rows, cols, g.add(seed, offset)])[0]!;
  return g.where(g.less(u, p), 0, g.mul(x, 1 / (1 - p)));
}

/** The per-step seed the trainer feeds: a function of (run seed, optimizer step, micro-batch) only. */
export function dropoutSeed(runSeed: number, step: number, micro: number): number {
  // keep it small: the hash argument must stay where f32 sin is still precise enough
  return ((runSeed * 31 + step * 17 + micro * 7) % 997) + 0.5;
}
