/**
 * The op registry: its types and shared helpers. The ops live one family per file next to this one
 * (elementwise, linalg, shape, indexing, reduce, nn); index.ts registers them all.
 *
 * Every IR op is defined in ONE block: its shape/dtype inference, its ONNX lowering and its gradient
 * rule side by side (the builder method in graph.ts is a one-line wrapper).
 *
 * Gradient rules are written in IR ops through the builder `g`. Vocabulary inside a rule:
 *   x[i]  = the node's inputs      y[i]  = its outputs
 *   gy[i] = gradient of output i (null = symbolic zero)    needs(i) = does anyone want input i's gradient
 * A rule returns one entry per input: a Value (in the OUTPUT's broadcast shape is fine: the driver
 * un-broadcasts), a scatter-add contribution (sparse, fused into the accumulated sum), or null.
 * Ops marked `nondiff` stop gradients (comparisons, indices); any other op without a rule throws.
 */
import type { OnnxAttribute } from '../../onnx/spec';
import type { GraphBuilder, Node, Value } from '../graph';
import { type DType, type Dim, isFloat } from '../types';

export type AttrValue = number | string | readonly number[] | readonly Dim[];
export type Attrs = Readonly<Record<string, AttrValue>>;
export interface TypeInfo { dtype: DType; shape: Dim[] }

/** A gradient given as "zeros with `updates` added at `indices` along axis": fused by the driver. */
export interface ScatterAddGrad { kind: 'scatterAdd'; indices: Value; updates: Value; axis: number }
export type Grad = Value | ScatterAddGrad | null;

export interface GradCtx {
  g: GraphBuilder;
  node: Node;
  x: readonly (Value | null)[];
  y: readonly Value[];
  gy: readonly (Value | null)[];
  needs(i: number): boolean;
}

export interface LowerCtx {
  node: Node;
  /** ONNX name of input i ('' when absent). */
  in(i: number): string;
  /** ONNX name of output i ('' when it is optional and unused). */
  out(i: number): string;
  /** A 1-D int64 initializer holding `values` (shared between nodes). */
  ints(values: readonly number[]): string;
  /** A rank-0 initializer of the given type. */
  scalar(value: number, dtype: DType): string;
  tmp(hint: string): string;
  emit(op: string, inputs: string[], outputs: string[], attrs?: Record<string, OnnxAttribute>, domain?: string): void;
}

export interface OpDef {
  name: string;
  infer(x: readonly (Value | null)[], a: Attrs): TypeInfo[];
  lower(c: LowerCtx): void;
  grad?: (c: GradCtx) => Grad[];
  /** Outputs carry no gradient (comparisons, index producers). */
  nondiff?: boolean;
  /** Outputs after the first may be left unnamed when nothing uses them. */
  optionalOutputs?: boolean;
  /**
   * Fan-out gradient sums (autodiff/grad.ts): where node `n`'s result can take a running sum into its own store
   * (a GEMM's C), `can(n)` says so and `with(g, n, sum)` builds the same op with `sum` added to its result, in
   * place of n + sum (one kernel fewer, one tensor less). `can` is false where n has such an input already.
   */
  accumulate?: { can(n: Node): boolean; with(g: GraphBuilder, n: Node, sum: Value): Value };
}

const REGISTRY = new Map<string, OpDef>();

export function def(d: OpDef): void {
  if (REGISTRY.has(d.name)) throw new Error(`Op ${d.name} registered twice.`);
  REGISTRY.set(d.name, d);
}

/** Registers an op from outside this file (model-specific fused ops, tests). Same contract as below. */
export const defineOp = def;

export function getOp(name: string): OpDef {
  const d = REGISTRY.get(name);
  if (!d) throw new Error(`Unknown IR op '${name}'. Registered: ${[...REGISTRY.keys()].join(', ')}.`);
  return d;
}

export function registeredOps(): readonly OpDef[] {
  return [...REGISTRY.values()];
}

export const num = (a: Attrs, k: string): number => a[k] as number;
export const ints = (a: Attrs, k: string): number[] => [...(a[k] as readonly number[])];
export const A = {
  i: (value: number): OnnxAttribute => ({ type: 'int', value }),
  f: (value: number): OnnxAttribute => ({ type: 'float', value }),
  s: (value: string): OnnxAttribute => ({ type: 'string', value }),
  is: (value: number[]): OnnxAttribute => ({ type: 'ints', value }),
};

export function need(x: readonly (Value | null)[], n: number): Value[] {
  const got = x.filter((v) => v).length;
  if (got < n) throw new Error(`expected ${n} inputs, got ${got}`);
  return x as Value[];
}

export function floatIn(v: Value): void {
  if (!isFloat(v.dtype)) throw new Error(`expected a float tensor, got ${v.dtype}`);
}

export function sameType(vs: Value[]): DType {
  const t = vs[0]!.dtype;
  for (const v of vs) if (v.dtype !== t) throw new Error(`input types differ: ${vs.map((u) => u.dtype).join(' vs ')}`);
  return t;
}

/** Plain 1:1 lowering: same inputs and outputs, attributes mapped by `attrs`. */
export function plain(op: string, attrs?: (a: Attrs) => Record<string, OnnxAttribute>, domain?: string) {
  return (c: LowerCtx): void => {
    const n = c.node;
    c.emit(op, n.inputs.map((_, i) => c.in(i)), n.outputs.map((_, i) => c.out(i)), attrs?.(n.attrs), domain);
  };
}

export const ONNX_TYPE_CODE: Record<DType, number> = {
  float32: 1, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11,
};
