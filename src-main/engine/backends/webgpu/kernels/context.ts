/**
 * What a kernel module sees while the compiler walks the graph: the node, its inputs as tensor
 * references, and ways to produce its outputs (a fresh buffer from the plan, or a view of an input).
 */
import type { Node, Value } from '../../../graph/graph';
import { staticShape } from '../../../graph/types';
import { grid, type KernelBuilder, type Ref } from '../wgsl';
import type { GemmChoice } from './gemm';

export interface EmitCtx {
  node: Node;
  /** Input i's tensor (its storage may be f16/bf16 for weights). */
  in(i: number): Ref;
  /** Output i in a fresh buffer of the plan (allocated on first call). */
  out(i: number): Ref;
  /** Output i is `ref` itself: no dispatch, no memory. */
  view(i: number, ref: Ref): void;
  /** The device's GEMM path (kernels/gemm.ts; absent: the tiled f32 kernel). */
  gemm?: GemmChoice;
  /** Does anything read output i (optional outputs: norm statistics). */
  used(i: number): boolean;
  /**
   * Is this node the last reader of input i, alone in a temporary buffer of its own? Then an output may
   * take the buffer over (`view(o, in(i))`) and the kernel overwrite it in place (KernelBuilder.inout).
   */
  lastUse?(i: number): boolean;
  /**
   * May this node overwrite input i's buffer (a temporary, a per-run feed or a state input)? True when no
   * later dispatch reads it (the input, a view of it, a fused reader) and no fetched output lives in it: a
   * per-element kernel then writes its result there (each thread reads and writes only its own element).
   * A state input so overwritten must be the state its slot carries forward (GpuProgram checks the slots).
   */
  overwritable?(i: number): boolean;
  /**
   * A temporary f32 buffer of `numel` elements that lives only while this node runs (its dispatches'
   * working memory: one vocabulary chunk of logits in LinearCrossEntropy).
   */
  scratch?(numel: number, label: string): Ref;
  /**
   * The elementwise work a GEMM's store computes over its result (plan.ts: GEMM epilogue fusion); absent:
   * the GEMM stores its result in `out(0)`. Only MatMul and Gemm read it.
   */
  epilogue?: GemmEpilogue;
  /**
   * Is input i folded (plan.ts: a Transpose or elementwise chain no kernel stores, computed where it is
   * loaded)? Then it has no `in(i)`; `load(i, k)` declares what it reads in `k` and returns the name of its
   * WGSL load function `(e: u32) -> f32` (e = element index in input i's own layout). Only MatMul, Gemm and
   * the attention kernels are given folded inputs (elementwise chains read them through the fused kernel).
   */
  folded?(i: number): boolean;
  load?(i: number, k: KernelBuilder): string;
  /**
   * A Gemm whose result is only this Gemm's C, computed in the same dispatch (plan.ts: chained GEMMs,
   * kernels/matmul.ts): its node and its inputs as `in` / `folded` / `load` give them for this node's.
   */
  chained?: { node: Node; in(i: number): Ref; folded(i: number): boolean; load(i: number, k: KernelBuilder): string; side?: ChainSide };
  /**
   * A tensor of output 0's shape that the kernel adds to output 0 as it stores it (plan.ts normAccumulates: a
   * norm backward's dx plus the residual stream's other gradient, the Add computed in the dx store). Only the
   * norm backwards are given one.
   */
  accumulate?: Ref;
  /** Appends a dispatch of the kernel `k` with `body` (the entry point) over `groups` workgroups. */
  dispatch(k: KernelBuilder, body: string, groups: [number, number, number]): void;
}

/**
 * A rank-r Gemm G0 = x·P computed in a chained pair's dispatch (plan.ts loraSides): one of the pair (the base)
 * reads x as its A, the other (the LoRA term) reads G0's result as its A. `out()` is G0's result buffer, or
 * null where nothing but the pair reads it (then it is never stored).
 */
export interface ChainSide { node: Node; in(i: number): Ref; folded(i: number): boolean; load(i: number, k: KernelBuilder): string; out(): Ref | null }

export type Emitter = (c: EmitCtx) => void;

/** A GEMM's fused store: `store(k)` declares what it reads and writes in `k` and returns (flat output index, value) -> WGSL statement. */
export interface GemmEpilogue {
  /** Added to the kernel's name (dispatch counts by kernel). */
  name: string;
  store(k: KernelBuilder): (idx: string, value: string) => string;
}

export const shapeOf = (v: Value): number[] => staticShape(v.shape, `The GPU backend (${v})`);
export const inShape = (c: EmitCtx, i: number): number[] => shapeOf(c.node.inputs[i]!);
export const outShape = (c: EmitCtx, i = 0): number[] => shapeOf(c.node.outputs[i]!);
export const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/** Strides (per output dim) reading an input of shape `s` broadcast to `out` (right-aligned; 0 where broadcast). */
export function broadcastStrides(s: readonly number[], out: readonly number[]): number[] {
  const off = out.length - s.length;
  const own = new Array<number>(s.length).fill(1);
  for (let i = s.length - 2; i >= 0; i--) own[i] = own[i + 1]! * s[i + 1]!;
  return out.map((d, k) => {
    const j = k - off;
    if (j < 0) return 0;
    return s[j] === 1 && d !== 1 ? 0 : own[j]!;
  });
}

export const ENTRY = '@compute @workgroup_size';

/** Threads per workgroup of the one-thread-per-element kernels. */
const WG = 256;

/**
 * Dispatches `k` with one thread per element i < n (workgroups laid out by `grid`): the entry point,
 * the index `i` and its bounds check around `body`, WGSL lines that use `i`.
 */
export function dispatchPerElement(c: EmitCtx, k: KernelBuilder, n: number, body: string): void {
  const { groups, x } = grid(n, WG);
  c.dispatch(k, `${ENTRY}(${WG}) fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let i = (wid.y * ${x}u + wid.x) * ${WG}u + li;
  if (i >= ${n}u) { return; }
${body}
}`, groups);
}
