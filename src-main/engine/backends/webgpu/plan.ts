/**
 * IR graph -> a static schedule of WGSL dispatches and a buffer plan, with no device involved (so the
 * plan of a model too big for this machine can still be measured: test/bench/webgpu.ts).
 *
 *  - Only nodes that feed a wanted output are scheduled, in the graph's (topological) order.
 *  - Every tensor is a reference into a buffer: weights and constants (uploaded once, in their stored
 *    type), inputs (fed per run), state (resident between runs), temporaries.
 *  - Views cost nothing: Reshape/Squeeze/Unsqueeze/Identity, contiguous Slice/Split pieces, f16->f32
 *    Casts of stored f16 weights (the kernels unpack them on load).
 *  - Temporaries come from a pool by liveness: a buffer returns to the pool after the last reader of
 *    every tensor in it has been scheduled; a new tensor takes the smallest free buffer that fits, or
 *    grows the largest free one (sizes are virtual until the plan is realised), or adds a buffer. The
 *    step's whole working set is therefore known, and allocated once, before the first run.
 *  - Graph outputs stay where they are computed (their buffers are never returned to the pool).
 *  - Independent GEMMs are moved together and computed by one dispatch (group.ts; `noGrouping` turns it off).
 */
import type { GraphBuilder, Node, Value } from '../../graph/graph';
import type { OnnxTensorData } from '../../onnx/spec';
import { sameShape, shapeStr, staticShape, type DType } from '../../graph/types';
import { KERNELS } from './kernels';
import { fusedElementwise, fusibleExpr } from './kernels/elementwise';
import type { EmitCtx } from './kernels/context';
import type { GemmChoice } from './kernels/gemm';
import { groupGemms } from './group';
import { KernelBuilder, storageBytes, storageOf, type Binding, type BufferKind, type BufferSlot, type Ref, type Storage } from './wgsl';

export interface PlannedDispatch {
  /** Kernel name (op or fused kernel) for counts and errors. */
  name: string;
  /** IR node it implements. */
  node: string;
  wgsl: string;
  bindings: Binding[];
  groups: [number, number, number];
}

export interface PlannedTensor { name: string; dtype: DType; shape: number[]; ref: Ref }

/** A constant's buffer: from the IR value's constData, or `data` (bytes a node carries: NF4 codes) as they are. */
export interface PlannedConst { value: Value; ref: Ref; data?: OnnxTensorData }

export interface Plan {
  buffers: BufferSlot[];
  dispatches: PlannedDispatch[];
  /** Graph inputs by name (per-run feeds and state). */
  inputs: Map<string, PlannedTensor>;
  outputs: Map<string, PlannedTensor>;
  consts: PlannedConst[];
  /** u32 run-time parameters of all kernels (loop bounds), uploaded once into `paramsRef`. */
  params: number[];
  paramsRef: Ref;
  /** Bytes per buffer kind. */
  bytes: Record<BufferKind, number>;
  /** Dispatches per kernel name. */
  byKernel: Record<string, number>;
  /** IR nodes scheduled. */
  nodes: number;
}

/** Most tensors one fused elementwise kernel reads (the storage-binding limit is 8 by default). */
const MAX_LEAVES = 6;

export interface PlanOptions {
  /** Off: one dispatch per elementwise op (for comparisons). */
  noFusion?: boolean;
  /** Graph outputs to compute (default: all). */
  outputs?: string[];
  /** Graph inputs that hold state between runs (resident buffers). */
  state?: string[];
  /**
   * Largest storage binding in bytes (the adapter's maxStorageBufferBindingSize / maxBufferSize): weights
   * above it are split by row blocks into several buffers (128k/152k-vocab embeddings and lm_head).
   */
  maxBinding?: number;
  /** The device's GEMM path (device.ts's report); default the tiled f32-accumulate kernel. */
  gemm?: GemmChoice;
  /** Off: one dispatch per GEMM (group.ts's grouped GEMM dispatches are the default; the reference for tests). */
  noGrouping?: boolean;
  /** Storage buffers one kernel may bind (the adapter's maxStorageBuffersPerShaderStage; default 8): caps a GEMM group. */
  maxStorageBuffers?: number;
}

/**
 * Elements per part when a [rows, ...] weight is split into row blocks of at most `max` bytes (the last
 * part takes the rest; 16-bit parts hold an even count so no word straddles two buffers).
 */
export function splitRows(shape: readonly number[], storage: Storage, max: number, label: string): number[] {
  const n = shape.reduce((a, b) => a * b, 1);
  const row = shape.length > 1 ? n / shape[0]! : 1;
  let rows = Math.floor(max / storageBytes(storage, row));
  if ((storage === 'f16' || storage === 'bf16') && row % 2 === 1 && rows % 2 === 1) rows -= 1;
  if (rows < 1 || storageBytes(storage, rows * row) > max) {
    throw new Error(`GPU plan: one row of ${label} (${storageBytes(storage, row)} bytes) does not fit a storage binding of ${max} bytes.`);
  }
  const parts: number[] = [];
  for (let at = 0; at < n; at += rows * row) parts.push(Math.min(rows * row, n - at));
  return parts;
}

/** Storage a constant or weight keeps on the GPU: its own type (f16 and bf16 stay 16-bit); int64 narrows to int32. */
function constStorage(v: Value): Storage {
  if (v.constData?.kind === 'external' && v.constData.stored === 'bfloat16') return 'bf16';
  if (v.dtype === 'float16') return 'f16';
  return storageOf(v.dtype);
}

export function planGraph(g: GraphBuilder, opts: PlanOptions = {}): Plan {
  const wanted = opts.outputs ? opts.outputs.map((n) => {
    const o = g.outputs.find((x) => x.name === n);
    if (!o) throw new Error(`GPU plan: "${n}" is not a graph output (outputs: ${g.outputs.map((x) => x.name).join(', ')}).`);
    return o;
  }) : g.outputs;
  const stateNames = new Set(opts.state ?? []);
  const pinned = new Set(wanted.map((o) => o.value));

  // live nodes: everything a wanted output depends on
  const live = new Set<Node>();
  const stack = wanted.map((o) => o.value);
  const seen = new Set<Value>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (v.node && !live.has(v.node)) {
      live.add(v.node);
      for (const x of v.node.inputs) if (x) stack.push(x);
    }
  }
  const order = g.nodes.filter((n) => live.has(n));
  const remaining = new Map<Value, number>();
  for (const n of order) for (const x of n.inputs) if (x) remaining.set(x, (remaining.get(x) ?? 0) + 1);

  // Elementwise chains: a fusible producer whose only reader is a fusible node of the same shape is computed
  // inside that node's kernel (no dispatch, no buffer). At most MAX_LEAVES tensors are read by one kernel.
  const inlined = new Set<Node>();
  if (!opts.noFusion) {
    const leaves = new Map<Node, number>();
    for (const n of order) {
      if (!fusibleExpr(n as never) || n.outputs.length !== 1) continue;
      let count = n.inputs.length;
      for (const x of n.inputs) {
        const m = x?.node;
        if (!m || !x || !leaves.has(m) || remaining.get(x) !== 1 || pinned.has(x)) continue;
        if (!sameShape(x.shape, n.outputs[0]!.shape) || n.inputs.filter((y) => y === x).length !== 1) continue;
        if (count - 1 + leaves.get(m)! > MAX_LEAVES) continue;
        inlined.add(m);
        count += leaves.get(m)! - 1;
      }
      leaves.set(n, count);
    }
  }

  const buffers: BufferSlot[] = [];
  const slot = (kind: BufferKind, bytes: number, label: string): BufferSlot => {
    const b: BufferSlot = { id: buffers.length, kind, bytes, label };
    buffers.push(b);
    return b;
  };
  const refOf = new Map<Value, Ref>();
  const inputs = new Map<string, PlannedTensor>();
  const consts: PlannedConst[] = [];

  for (const v of g.inputs) {
    if (!seen.has(v)) continue;
    const shape = staticShape(v.shape, `GPU plan: input ${v.name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const storage = storageOf(v.dtype);
    const ref: Ref = { buf: slot(stateNames.has(v.name!) ? 'state' : 'input', storageBytes(storage, n), v.name!), offset: 0, numel: n, storage };
    refOf.set(v, ref);
    inputs.set(v.name!, { name: v.name!, dtype: v.dtype, shape, ref });
  }
  for (const v of g.consts) {
    if (!seen.has(v)) continue;
    const shape = staticShape(v.shape, `GPU plan: constant ${v}`);
    if (v.dtype === 'float64') throw new Error(`GPU plan: constant ${v} is float64; the GPU backend computes in float32.`);
    const n = shape.reduce((a, b) => a * b, 1);
    const storage = constStorage(v);
    const bytes = storageBytes(storage, n);
    const kind: BufferKind = v.name ? 'weight' : 'const';
    const label = v.name ?? `const%${v.id}`;
    let ref: Ref;
    if (opts.maxBinding !== undefined && bytes > opts.maxBinding) {
      const parts = splitRows(shape, storage, opts.maxBinding, label);
      const bufs = parts.map((e, p) => slot(kind, storageBytes(storage, e), `${label} [part ${p + 1}/${parts.length}]`));
      ref = { buf: bufs[0]!, offset: 0, numel: n, storage, parts: { bufs, elems: parts[0]!, total: n } };
    } else {
      ref = { buf: slot(kind, bytes, label), offset: 0, numel: n, storage };
    }
    refOf.set(v, ref);
    consts.push({ value: v, ref });
  }

  // ---- the temporary pool ----
  const free: BufferSlot[] = [];
  const holders = new Map<BufferSlot, number>(); // live tensors per temp buffer
  const take = (bytes: number, kind: BufferKind, label: string): BufferSlot => {
    if (kind === 'temp' && free.length) {
      free.sort((a, b) => a.bytes - b.bytes);
      const fit = free.find((b) => b.bytes >= bytes);
      const b = fit ?? free[free.length - 1]!;
      free.splice(free.indexOf(b), 1);
      b.bytes = Math.max(b.bytes, bytes);
      return b;
    }
    return slot(kind, bytes, label);
  };
  const hold = (b: BufferSlot) => { if (b.kind === 'temp') holders.set(b, (holders.get(b) ?? 0) + 1); };
  const drop = (v: Value) => {
    const r = refOf.get(v);
    if (!r || r.buf.kind !== 'temp' || pinned.has(v)) return;
    const left = holders.get(r.buf)! - 1;
    holders.set(r.buf, left);
    if (left === 0) free.push(r.buf);
  };

  const params: number[] = [];
  const paramsRef: Ref = { buf: slot('const', 4, 'kernel params'), offset: 0, numel: 1, storage: 'u32' };
  const dispatches: PlannedDispatch[] = [];
  /** Releases a node's inputs after it ran (through inlined producers, whose inputs the fused kernel read). */
  const consumed = (node: Node): void => {
    for (const x of node.inputs) {
      if (!x) continue;
      if (x.node && inlined.has(x.node)) { consumed(x.node); continue; }
      const left = remaining.get(x)! - 1;
      remaining.set(x, left);
      if (left === 0) drop(x);
    }
  };
  // independent GEMMs scheduled together, one dispatch per group (group.ts)
  const grouping = opts.noGrouping ? null : groupGemms(order, { maxBindings: opts.maxStorageBuffers, gemm: opts.gemm, bindingsOf: (v) => refOf.get(v)?.parts?.bufs.length ?? 1 });
  for (const node of grouping?.order ?? order) {
    if (inlined.has(node)) continue; // computed inside its reader's kernel
    const fused = node.inputs.some((x) => x?.node && inlined.has(x.node));
    const emit = grouping?.emitter(node) ?? (fused ? (c: EmitCtx) => fusedElementwise(c, inlined, (v) => refOf.get(v)!) : KERNELS[node.op]);
    if (!emit) throw new Error(`GPU backend: no kernel for op ${node.op} (${node}). Ops with kernels: ${Object.keys(KERNELS).sort().join(', ')}.`);
    const used = (i: number) => (remaining.get(node.outputs[i]!) ?? 0) > 0 || pinned.has(node.outputs[i]!);
    const c: EmitCtx = {
      node,
      ...(opts.gemm ? { gemm: opts.gemm } : {}),
      in: (i) => {
        const v = node.inputs[i];
        const r = v ? refOf.get(v) : undefined;
        if (!r) throw new Error(`GPU plan: ${node} input ${i} has no tensor.`);
        return r;
      },
      out: (i) => {
        const v = node.outputs[i]!;
        let r = refOf.get(v);
        if (r) return r;
        const shape = staticShape(v.shape, `GPU plan: ${node} output ${i}`);
        const n = shape.reduce((a, b) => a * b, 1);
        const storage = storageOf(v.dtype);
        const buf = take(storageBytes(storage, n), pinned.has(v) ? 'output' : 'temp', `${node.op}#${node.id}`);
        hold(buf);
        r = { buf, offset: 0, numel: n, storage };
        refOf.set(v, r);
        return r;
      },
      constant: (i, data, bytes) => {
        const v = node.outputs[i]!;
        const words = Math.max(1, Math.ceil(bytes / 4));
        const r: Ref = { buf: slot('weight', 4 * words, `${node.op}#${node.id}`), offset: 0, numel: words, storage: 'u32' };
        refOf.set(v, r);
        consts.push({ value: v, ref: r, data });
        return r;
      },
      view: (i, ref) => {
        refOf.set(node.outputs[i]!, ref);
        hold(ref.buf);
      },
      used,
      lastUse: (i) => {
        const v = node.inputs[i];
        if (!v || pinned.has(v) || remaining.get(v) !== 1 || node.inputs.filter((x) => x === v).length !== 1) return false;
        const r = refOf.get(v);
        return !!r && r.buf.kind === 'temp' && r.offset === 0 && holders.get(r.buf) === 1;
      },
      dispatch: (k: KernelBuilder, body: string, groups) => {
        // each dispatch's params start at a 256-byte boundary (the storage binding offset alignment)
        const base = Math.ceil(params.length / 64) * 64;
        while (params.length < base) params.push(0);
        params.push(...k.params);
        const mine: Ref = { ...paramsRef, offset: base, numel: k.params.length };
        const bindings = k.bindings.map((b, i) => (i === k.paramBinding ? { ref: mine, write: false } : b));
        dispatches.push({ name: k.name, node: String(node), wgsl: k.source(body), bindings, groups });
      },
    };
    try {
      emit(c);
    } catch (e) {
      const args = node.inputs.map((v) => (v ? `${v.dtype}${shapeStr(v.shape)}` : '-')).join(', ');
      throw new Error(`GPU backend, ${node} (${args}): ${(e as Error).message}`);
    }
    node.outputs.forEach((v, i) => {
      if (!refOf.has(v) && used(i)) throw new Error(`GPU backend: the ${node.op} kernel left output ${i} of ${node} unset.`);
      if (refOf.has(v) && !used(i)) drop(v);
    });
    for (const n of grouping?.finished(node) ?? [node]) consumed(n);
  }

  paramsRef.numel = Math.max(1, params.length);
  paramsRef.buf.bytes = 4 * paramsRef.numel;
  const outputs = new Map<string, PlannedTensor>();
  for (const o of wanted) {
    const ref = refOf.get(o.value);
    if (!ref) throw new Error(`GPU plan: output ${o.name} was not computed.`);
    if (ref.buf.kind === 'temp') ref.buf.kind = 'output';
    outputs.set(o.name, { name: o.name, dtype: o.value.dtype, shape: staticShape(o.value.shape, `output ${o.name}`), ref });
  }
  const bytes: Record<BufferKind, number> = { weight: 0, const: 0, input: 0, state: 0, output: 0, temp: 0 };
  for (const b of buffers) bytes[b.kind] += b.bytes;
  const byKernel: Record<string, number> = {};
  for (const d of dispatches) byKernel[d.name] = (byKernel[d.name] ?? 0) + 1;
  return { buffers, dispatches, inputs, outputs, consts, params, paramsRef, bytes, byKernel, nodes: order.length };
}
