/**
 * Test models for the runtime: a tiny least-squares SGD step written directly in ONNX nodes, so runtime
 * tests do not depend on the IR/autodiff side.
 *   X: [N, D] features, y: [N] targets, w: [D] weights (state), step: [1] counter (state)
 *   r = X·w − y;  loss = mean(r²);  g = (2/N)·rᵀX;  w' = w − lr·g;  step' = step + 1
 */
import type { OnnxDataType, OnnxModel } from '../../../../../src-main/engine/onnx/spec';
import { rawTensor } from '../../../../../src-main/engine/onnx/pack';
import { mulberry32 } from '../../../../../src-main/util/random';

export function sgdModel(N: number, D: number, type: OnnxDataType = 'float32'): OnnxModel {
  return {
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name: 'sgd',
      inputs: [
        { name: 'X', type, shape: [N, D] }, { name: 'y', type, shape: [N] }, { name: 'lr', type, shape: [1] },
        { name: 'w', type, shape: [D] }, { name: 'step', type, shape: [1] },
      ],
      outputs: [{ name: 'loss', type, shape: [] }, { name: 'w_next', type, shape: [D] }, { name: 'step_next', type, shape: [1] }],
      initializers: [rawTensor('two_over_n', type, [], [2 / N]), rawTensor('one', type, [1], [1])],
      nodes: [
        { op: 'MatMul', inputs: ['X', 'w'], outputs: ['p'] }, // [N]
        { op: 'Sub', inputs: ['p', 'y'], outputs: ['r'] },
        { op: 'Mul', inputs: ['r', 'r'], outputs: ['r2'] },
        { op: 'ReduceMean', inputs: ['r2'], outputs: ['loss'], attributes: { keepdims: { type: 'int', value: 0 } } },
        { op: 'MatMul', inputs: ['r', 'X'], outputs: ['g0'] }, // [D]
        { op: 'Mul', inputs: ['g0', 'two_over_n'], outputs: ['g'] },
        { op: 'Mul', inputs: ['g', 'lr'], outputs: ['dw'] },
        { op: 'Sub', inputs: ['w', 'dw'], outputs: ['w_next'] },
        { op: 'Add', inputs: ['step', 'one'], outputs: ['step_next'] },
      ],
    },
  };
}

export const sgdState = [
  { name: 'w', input: 'w', output: 'w_next' },
  { name: 'step', input: 'step', output: 'step_next' },
];

/** Deterministic pseudo-random numbers in [-1, 1) (mulberry32). */
export function rand(seed: number, n: number): number[] {
  const r = mulberry32(seed);
  return Array.from({ length: n }, () => r() * 2 - 1);
}

/** The same SGD in float64 JS: losses per step and the final w. */
export function sgdReference(X: number[], y: number[], w0: number[], lr: number, steps: number, N: number, D: number) {
  const w = [...w0];
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const r = Array.from({ length: N }, (_, n) => w.reduce((acc, wd, d) => acc + X[n * D + d]! * wd, 0) - y[n]!);
    losses.push(r.reduce((a, b) => a + b * b, 0) / N);
    for (let d = 0; d < D; d++) w[d]! -= lr * (2 / N) * r.reduce((acc, rn, n) => acc + rn * X[n * D + d]!, 0);
  }
  return { losses, w };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
