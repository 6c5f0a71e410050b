/**
 * IR graph -> a static schedule of WGSL dispatches and a buffer plan, with no device involved (so the
 * plan of a model too big for this machine can still be measured: test/bench/webgpu.ts).
 *
 *  - Only nodes that feed a wanted output are scheduled, in the graph's (topological) order.
 *  - Every tensor is a reference into a buffer: weights and constants (uploaded once, in their stored
 *    type), inputs (fed per run), state (resident between runs), temporaries.
 *  - Views cost nothing: Reshape/Squeeze/Unsqueeze/Identity, contiguous Slice/Split pieces, f16->f32
 *    Casts of stored f16 weights (the kernels unpack them on load).
 *  - Temporaries are placed by liveness once the whole schedule is known (assignTemporaries): each
 *    computed tensor lives from the dispatch that writes it to the last reader of it and of its views;
 *    tensors whose lifetimes do not overlap share a buffer (one tensor per buffer at a time, at offset 0,
 *    so no dispatch binds one buffer twice), placed largest first into the smallest buffer free for the
 *    whole lifetime. The step's whole working set is therefore known, and allocated once, before the
 *    first run.
 *  - Graph outputs stay where they are computed (their buffers are never returned to the pool).
 *  - Independent GEMMs may be moved together and computed by one dispatch (group.ts; on unless `noGrouping`).
 */
import type { GraphBuilder, Node, Value } from '../../graph/graph';
import type { OnnxTensorData } from '../../onnx/spec';
import { normAxis, sameShape, shapeStr, staticShape, type DType } from '../../graph/types';
import { KERNELS } from './kernels';
import { swigluGradEpilogue, swigluLoad } from './kernels/swiglu';
import { chainLoad, contiguousSlice, fusedElementwise, fusibleExpr, gemmEpilogue, transposeLoad, type Source } from './kernels/elementwise';
import type { EmitCtx } from './kernels/context';
import { segmentedWorkgroupBytes, type GemmChoice, type GemmTile } from './kernels/gemm';
import { nf4PackLayout, nf4Packed } from './kernels/nf4';
import { nf4ConstData } from '../../quant/graph';
import { DEFAULT_MAX_BINDINGS, MAX_GROUP_BINDINGS, boundInputs, groupGemms, groupableGemm, type GemmUnit } from './group';
import { KernelBuilder, activationStorage, halfType, storageBytes, storageOf, withHalfType, type Binding, type BufferKind, type BufferSlot, type Ref, type Storage } from './wgsl';

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
  /** Inputs in PlanOptions.late: uploaded into their pool buffer before dispatch `at` (in order). */
  late?: { name: string; at: number }[];
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
  /**
   * The device has WGSL's f16 type (feature shader-f16): float16 values kernels compute are stored as
   * array<f16> (`h16`, half the bytes); without it as f32 words rounded to f16 (`f16r`). Graph inputs and
   * outputs keep f16r either way (fed and read as f32 words).
   */
  shaderF16?: boolean;
  /**
   * What the graph's float16 values stand for: 'float16' (default), or 'bfloat16' (bf16 compute: the f16-compute
   * graph with its activations stored as bf16, `hb16` with shader-f16 else `b16r`, f32 math inside kernels).
   */
  halfType?: 'float16' | 'bfloat16';
  /**
   * Graph inputs kept in host memory (the paged optimizer's m and v): no buffer of their own; each takes a
   * temporary from the pool at its first reader and is copied in just before it (Plan.late).
   */
  late?: string[];
  /** Off: one dispatch per GEMM (group.ts's grouped GEMM dispatches are the default; the reference for tests). */
  noGrouping?: boolean;
  /** Grouped GEMM dispatches (group.ts): on unless false (or `noGrouping`). */
  grouping?: boolean;
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
  if (opts.halfType === 'bfloat16' && halfType() !== 'bfloat16') return withHalfType('bfloat16', () => planGraph(g, opts));
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

  const epilogues = opts.noFusion ? new Map<Node, Node>() : gemmEpilogues(order, remaining, pinned, inlined, opts.maxBinding);
  const deferred = new Set(epilogues.values());
  const folded = opts.noFusion ? new Set<Node>() : foldedLoads(order, pinned, inlined, epilogues);
  const expand = new Set<Node>([...inlined, ...folded]); // nodes whose inputs their readers' kernels read
  const chains = opts.noFusion || opts.gemm?.path === 'subgroup-matrix' ? new Map<Node, Node>() : gemmChains(order, remaining, pinned, epilogues, folded, inlined);
  for (const g1 of chains.values()) deferred.add(g1);
  // storage buffers one fused GEMM kernel may bind: the adapter's, at most what a group binds
  const limit = Math.min(opts.maxStorageBuffers ?? DEFAULT_MAX_BINDINGS, MAX_GROUP_BINDINGS);
  if (!opts.noFusion) {
    for (const [root, gm] of swigluGradEpilogues(order, remaining, pinned, epilogues, deferred, chains, folded, inlined, limit, opts.maxBinding)) { epilogues.set(root, gm); deferred.add(gm); }
  }
  const sides = opts.noFusion || opts.gemm?.path === 'subgroup-matrix' ? new Map<Node, Node>()
    : loraSides(order, chains, epilogues, remaining, pinned, expand, opts.gemm?.tile ?? { TM: 1, TN: 1 }, limit);
  const schedule = sides.size ? sideSchedule(order, sides, chains, epilogues) : order; // (drops pairs it cannot order)
  for (const g0 of sides.values()) deferred.add(g0);
  const placed = opts.noFusion ? new Map<Value, Placement>() : concatPlacements(order, remaining, pinned, expand);
  const accumulates = opts.noFusion ? new Map<Node, Node>() : normAccumulates(order, remaining, pinned, new Set([...expand, ...deferred, ...epilogues.keys()]));
  const accumulated = new Set<Node>(); // Adds a norm backward computed in its dx store

  const buffers: BufferSlot[] = [];
  const slot = (kind: BufferKind, bytes: number, label: string): BufferSlot => {
    const b: BufferSlot = { id: buffers.length, kind, bytes, label };
    buffers.push(b);
    return b;
  };
  const refOf = new Map<Value, Ref>();
  const inputs = new Map<string, PlannedTensor>();
  const consts: PlannedConst[] = [];
  const lateNames = new Set(opts.late ?? []);
  const late: { name: string; at: number }[] = [];

  for (const v of g.inputs) {
    if (!seen.has(v) || lateNames.has(v.name!)) continue;
    const shape = staticShape(v.shape, `GPU plan: input ${v.name}`);
    const n = shape.reduce((a, b) => a * b, 1);
    const storage = storageOf(v.dtype);
    const ref: Ref = { buf: slot(stateNames.has(v.name!) ? 'state' : 'input', storageBytes(storage, n), v.name!), offset: 0, numel: n, storage };
    refOf.set(v, ref);
    inputs.set(v.name!, { name: v.name!, dtype: v.dtype, shape, ref });
  }
  // NF4 weights (QLoRA): one buffer each, its codes, absmax codes, scale2 and offset at word offsets (kernels/nf4.ts
  // nf4PackLayout): an Nf4Gemm binds its weight once. The pieces stay constants of their own (uploaded at their offsets).
  const packed = new Map<Value, Ref | null>();
  for (const n of order) {
    if (!nf4Packed(n) || packed.has(n.inputs[1]!)) continue;
    const [, codes, abs, scale2, offset] = n.inputs as Value[];
    const nb2 = (scale2.shape as number[]).reduce((a, b) => a * b, 1);
    const lay = nf4PackLayout(nf4ConstData(codes.node!).bytes, nf4ConstData(abs.node!).bytes, nb2);
    const buf = slot('weight', 4 * lay.words, `${String(codes.node!.attrs.key).replace(/\.nf4_codes$/, '')}.nf4`);
    packed.set(codes, { buf, offset: lay.codes, numel: lay.abs - lay.codes, storage: 'u32' });
    packed.set(abs, { buf, offset: lay.abs, numel: lay.scale2 - lay.abs, storage: 'u32' });
    packed.set(scale2, { buf, offset: lay.scale2, numel: nb2, storage: 'f32' });
    packed.set(offset, { buf, offset: lay.offset, numel: 1, storage: 'f32' });
    const dyn = n.inputs[6]!; // (the graph's one dynamic map: a copy in every packed weight)
    consts.push({ value: dyn, ref: { buf, offset: lay.dyn, numel: (dyn.shape as number[]).reduce((a, b) => a * b, 1), storage: 'f32' } });
  }
  // the dynamic map's own buffer only where an unpacked Nf4Gemm reads it
  const unpackedDyn = new Set(order.filter((m) => m.op === 'Nf4Gemm' && !nf4Packed(m)).map((m) => m.inputs[6]));
  for (const n of order) if (nf4Packed(n) && !unpackedDyn.has(n.inputs[6])) packed.set(n.inputs[6]!, null);
  for (const v of g.consts) {
    if (!seen.has(v)) continue;
    const piece = packed.get(v);
    if (piece === null) continue; // (copied into the packed weights)
    if (piece) { refOf.set(v, piece); consts.push({ value: v, ref: piece }); continue; }
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

  // NF4 code bytes (Nf4Const nodes: constants the node carries) placed here, not at the node's place in the schedule,
  // so a grouped GEMM moved up before that place (group.ts) binds them as the weights they are: a piece of the packed
  // weight, or a buffer of their own (u32 words) uploaded once from the node's data as they are
  const nodeConsts = new Set<Node>();
  for (const n of order) {
    if (n.op !== 'Nf4Const') continue;
    const v = n.outputs[0]!, { data, bytes } = nf4ConstData(n);
    const piece = packed.get(v);
    const words = Math.max(1, Math.ceil(bytes / 4));
    const ref: Ref = piece ?? { buf: slot('weight', 4 * words, `${n.op}#${n.id}`), offset: 0, numel: words, storage: 'u32' };
    refOf.set(v, ref);
    consts.push({ value: v, ref, data });
    nodeConsts.add(n);
  }

  // bf16 compute: a bf16 weight read in place is already the compute type, so its Cast is a view (kernels/elementwise.ts
  // Cast), resolved here rather than at the Cast's place in the schedule: a grouped GEMM that moves up before that place
  // (q/k/v, each weight's Cast just before its GEMM) reads the weight as the bound constant it is
  const weightViews = new Set<Node>();
  if (halfType() === 'bfloat16') {
    for (const n of order) {
      const w = n.inputs[0], y = n.outputs[0];
      if (n.op !== 'Cast' || !w || w.node || !y || w.dtype !== 'float32' || y.dtype !== 'float16' || refOf.get(w)?.storage !== 'bf16') continue;
      refOf.set(y, refOf.get(w)!);
      weightViews.add(n);
    }
  }

  // ---- temporaries: one virtual buffer per computed tensor while scheduling; assignTemporaries maps them
  // onto shared buffers by lifetime once the schedule is complete ----
  let now = 0; // index of the node being scheduled
  const lifetimes: Lifetime[] = [];
  const lifeOf = new Map<BufferSlot, Lifetime>();
  const holders = new Map<BufferSlot, number>(); // live tensors (the tensor and its views) per temp buffer
  const take = (bytes: number, kind: BufferKind, label: string): BufferSlot => {
    if (kind !== 'temp' && kind !== 'output') return slot(kind, bytes, label); // (outputs: placed by lifetime too, live to the end)
    const b: BufferSlot = { id: -1, kind, bytes, label };
    const life: Lifetime = { buf: b, start: now, end: Infinity };
    lifetimes.push(life);
    lifeOf.set(b, life);
    return b;
  };
  const hold = (b: BufferSlot) => { if (b.kind === 'temp') holders.set(b, (holders.get(b) ?? 0) + 1); };
  const drop = (v: Value) => {
    const r = refOf.get(v);
    if (!r || r.buf.kind !== 'temp' || pinned.has(v)) return;
    const left = holders.get(r.buf)! - 1;
    holders.set(r.buf, left);
    if (left === 0) lifeOf.get(r.buf)!.end = now;
  };

  /** A fresh buffer (from the pool for temporaries) for `v`. */
  const alloc = (v: Value, label: string): Ref => {
    const shape = staticShape(v.shape, `GPU plan: ${label} output`);
    const n = shape.reduce((a, b) => a * b, 1);
    const storage = pinned.has(v) ? storageOf(v.dtype) : activationStorage(v.dtype, !!opts.shaderF16);
    const buf = take(storageBytes(storage, n), pinned.has(v) ? 'output' : 'temp', label);
    hold(buf);
    const r: Ref = { buf, offset: 0, numel: n, storage };
    refOf.set(v, r);
    return r;
  };

  const params: number[] = [];
  const paramsRef: Ref = { buf: slot('const', 4, 'kernel params'), offset: 0, numel: 1, storage: 'u32' };
  const dispatches: PlannedDispatch[] = [];
  /**
   * Releases a node's inputs after it ran (through inlined producers, whose inputs the fused kernel read, and
   * folded ones, whose inputs are released after their last reader ran).
   */
  const consumed = (node: Node): void => {
    for (const x of node.inputs) {
      if (!x) continue;
      if (x.node && inlined.has(x.node)) { consumed(x.node); continue; }
      const left = remaining.get(x)! - 1;
      remaining.set(x, left);
      if (left === 0) {
        if (x.node && folded.has(x.node)) consumed(x.node);
        else drop(x);
      }
    }
  };
  /**
   * A host-kept input (PlanOptions.late) at its first reader: a pool buffer from here on. Placed when the kernel
   * asks for it (after the outputs it allocated first: AdamWStep's packed output takes the largest free buffer
   * before m and v do), or up front for inputs read inside a fused chain.
   */
  const placeLateValue = (v: Value | null | undefined): void => {
    if (!v || refOf.has(v) || !v.name || !lateNames.has(v.name) || !g.inputs.includes(v)) return;
    const shape = staticShape(v.shape, `GPU plan: input ${v.name}`);
    const n = shape.reduce((a, b) => a * b, 1), storage = storageOf(v.dtype);
    const buf = take(storageBytes(storage, n), 'temp', v.name);
    hold(buf);
    const ref: Ref = { buf, offset: 0, numel: n, storage };
    refOf.set(v, ref);
    inputs.set(v.name, { name: v.name, dtype: v.dtype, shape, ref });
    late.push({ name: v.name, at: dispatches.length });
  };
  const placeLate = (node: Node): void => {
    for (const v of node.inputs) {
      if (v?.node && inlined.has(v.node)) placeLate(v.node);
      else placeLateValue(v);
    }
  };
  /** Where a kernel reads `v`: its buffer, or (folded) a load function computing it; one declaration per kernel. */
  const declared = new WeakMap<KernelBuilder, Map<Value, string>>();
  const sourceOf = (v: Value): Source => {
    const m = v.node;
    if (!m || !folded.has(m)) return refOf.get(v)!;
    const make = VIEW_OPS.has(m.op) ? null
      : m.op === 'Transpose' ? transposeLoad(staticShape(v.shape, 'GPU plan'), staticShape(m.inputs[0]!.shape, 'GPU plan'), m.attrs.perm as number[], sourceOf(m.inputs[0]!), `vl${v.id}`)
        : m.op === 'SwiGLU' ? swigluLoad(sourceOf(m.inputs[0]!), sourceOf(m.inputs[1]!), `vl${v.id}`, v.dtype === 'float16')
          : chainLoad(m, inlined, sourceOf, `vl${v.id}`);
    if (!make) return sourceOf(m.inputs[0]!);
    return (k: KernelBuilder) => {
      let d = declared.get(k);
      if (!d) declared.set(k, (d = new Map()));
      const have = d.get(v);
      if (have) return have;
      const name = make(k);
      d.set(v, name);
      return name;
    };
  };
  const loadOf = (v: Value, k: KernelBuilder): string => {
    const src = sourceOf(v);
    return typeof src === 'function' ? src(k) : k.input(src);
  };
  // independent GEMMs scheduled together, one dispatch per group (group.ts), with what the planner fusions
  // above made of them: a chained pair, an epilogue GEMM (at its chain's node), folded operands
  const kernelNodes = (n: Node): Node[] => {
    const m = epilogues.get(n), h = chains.get(m ?? n), s0 = sides.get(m ?? n);
    return [n, ...(m ? [m] : []), ...(h ? [h] : []), ...(s0 ? [s0] : [])];
  };
  const grouping = opts.noGrouping || opts.grouping === false ? null : groupGemms(schedule, {
    maxBindings: opts.maxStorageBuffers, gemm: opts.gemm, bindingsOf: (v) => refOf.get(v)?.parts?.bufs.length ?? 1,
    unit: (n) => {
      const u = gemmUnit(n, epilogues, chains, deferred, expand, sides, pinned, remaining);
      // (a weight's view resolved up front is the weight: bound once, there before any node)
      return u && weightViews.size ? { ...u, reads: [...new Set(u.reads.map((x) => (x.node && weightViews.has(x.node) ? x.node.inputs[0]! : x)))] } : u;
    },
    runsElsewhere: (n) => deferred.has(n) || expand.has(n),
    upFront: (n) => nodeConsts.has(n),
  });
  for (const node of grouping?.order ?? schedule) {
    now++;

    if (inlined.has(node) || deferred.has(node) || folded.has(node)) continue; // computed inside its reader's kernel
    if (weightViews.has(node) || nodeConsts.has(node)) { consumed(node); continue; } // (a view or a constant, resolved up front)
    if (accumulated.has(node)) { // its sum was stored by the norm backward as its dx: the Add's output is that tensor
      const ref = refOf.get(node.inputs.find((x) => x?.node && accumulates.get(x.node) === node)!)!;
      refOf.set(node.outputs[0]!, ref);
      hold(ref.buf);
      consumed(node);
      continue;
    }
    // a GEMM whose result only this elementwise chain reads runs here, the chain in its store
    const gm = epilogues.get(node);
    const kn = gm ?? node; // the node whose kernel runs (its inputs are the kernel's)
    const g1 = chains.get(kn); // a Gemm computed in kn's kernel (its result is kn's C)
    const g0 = sides.get(kn); // a rank-r Gemm summed in the pair's base K loop (loraSides)
    const fused = !!fusibleExpr(node as never) && node.inputs.some((x) => x?.node && expand.has(x.node));
    const emit = grouping?.emitter(node) ?? (gm ? KERNELS[gm.op] : fused ? (c: EmitCtx) => fusedElementwise(c, inlined, sourceOf) : KERNELS[node.op]);
    if (fused && lateNames.size) placeLate(node);
    if (!emit) throw new Error(`GPU backend: no kernel for op ${node.op} (${node}). Ops with kernels: ${Object.keys(KERNELS).sort().join(', ')}.`);
    const used = (i: number) => (remaining.get(node.outputs[i]!) ?? 0) > 0 || pinned.has(node.outputs[i]!);
    // how a kernel reads a GEMM's operands: their refs, whether an operand is folded, and its load
    const operandsOf = (m: Node) => ({
      node: m,
      in: (i: number) => refOf.get(m.inputs[i]!)!,
      folded: (i: number) => { const x = m.inputs[i]?.node; return !!x && folded.has(x); },
      load: (i: number, k: KernelBuilder) => loadOf(m.inputs[i]!, k),
    });
    const c: EmitCtx = {
      node: kn,
      ...(opts.gemm ? { gemm: opts.gemm } : {}),
      ...(gm ? {
        epilogue: node.op === 'SwiGLUGrad' ? swigluGradEpilogue(sourceOf(node.inputs[0]!), sourceOf(node.inputs[1]!), gm.outputs[0]!.dtype === 'float16', (i) => c.out(i), used)
          : gemmEpilogue(node, inlined, sourceOf, gm.outputs[0]!, () => c.out(0)),
      } : {}),
      folded: operandsOf(kn).folded,
      load: operandsOf(kn).load,
      ...accumulateOf(accumulates.get(node), node, refOf, accumulated),
      ...(g1 ? {
        chained: {
          ...operandsOf(g1),
          ...(g0 ? {
            side: {
              ...operandsOf(g0),
              // stored where anything besides the pair reads it (the backward's weight gradients)
              out: () => {
                const y0 = g0.outputs[0]!;
                if (!sideStored(y0, pinned, remaining)) return null;
                return refOf.get(y0) ?? alloc(y0, `${g0.op}#${g0.id}`);
              },
            },
          } : {}),
        },
      } : {}),
      in: (i) => {
        const v = kn.inputs[i];
        if (lateNames.size) placeLateValue(v);
        const r = v ? refOf.get(v) : undefined;
        if (!r) throw new Error(`GPU plan: ${node} input ${i} has no tensor.`);
        return r;
      },
      out: (i) => {
        const v = node.outputs[i]!;
        const r = refOf.get(v);
        if (r) return r;
        const at = placed.get(v);
        if (at) {
          // computed straight into its slice of the Concat's output (allocated now if it is not yet),
          // unless this kernel also reads that buffer (one binding cannot be read-only and written)
          const whole = refOf.get(at.concat) ?? alloc(at.concat, `${at.concat.node!.op}#${at.concat.node!.id}`);
          // (in a group: no member may read it either)
          if (!(grouping?.mates(node) ?? [node]).flatMap(kernelNodes).some((n) => readsBuffer(n, whole.buf, expand, refOf))) {
            const ref: Ref = { ...whole, offset: whole.offset + at.offset, numel: staticShape(v.shape, 'GPU plan').reduce((a, b) => a * b, 1) };
            refOf.set(v, ref);
            hold(ref.buf);
            return ref;
          }
        }
        return alloc(v, `${node.op}#${node.id}`);
      },
      scratch: (numel, label) => {
        const buf = take(storageBytes('f32', numel), 'temp', `${node.op}#${node.id} ${label}`);
        lifeOf.get(buf)!.end = now; // free again once this node's dispatches are recorded
        return { buf, offset: 0, numel, storage: 'f32' };
      },
      view: (i, ref) => {
        refOf.set(node.outputs[i]!, ref);
        hold(ref.buf);
      },
      used,
      lastUse: (i) => {
        const v = kn.inputs[i];
        if (!v || pinned.has(v) || remaining.get(v) !== 1 || kn.inputs.filter((x) => x === v).length !== 1) return false;
        const r = refOf.get(v);
        return !!r && r.buf.kind === 'temp' && r.offset === 0 && holders.get(r.buf) === 1;
      },
      overwritable: (i) => {
        const v = node.inputs[i];
        if (lateNames.size) placeLateValue(v); // a host-kept input gets its pool buffer here if the kernel asks this first
        if (!v || pinned.has(v) || remaining.get(v) !== 1 || node.inputs.filter((x) => x === v).length !== 1) return false;
        const r = refOf.get(v);
        if (!r || !(r.buf.kind === 'temp' || r.buf.kind === 'input' || r.buf.kind === 'state')) return false;
        // any other tensor in the same buffer (a view of v, or v a view of it) still to be read or fetched
        for (const [w, q] of refOf) if (w !== v && q.buf === r.buf && ((remaining.get(w) ?? 0) > 0 || pinned.has(w))) return false;
        return true;
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
      throw new Error(`GPU backend, ${node}${gm ? ` (in the store of ${gm})` : ''} (${args}): ${(e as Error).message}`);
    }
    node.outputs.forEach((v, i) => {
      if (!refOf.has(v) && used(i)) throw new Error(`GPU backend: the ${node.op} kernel left output ${i} of ${node} unset.`);
      if (refOf.has(v) && !used(i)) drop(v);
    });
    // (a group's members, with their chained and epilogue GEMMs, once its one dispatch is recorded)
    for (const n of grouping?.finished(node) ?? [node]) for (const m of kernelNodes(n).reverse()) consumed(m);
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
  assignTemporaries(lifetimes, slot, dispatches, outputs, inputs);
  const bytes: Record<BufferKind, number> = { weight: 0, const: 0, input: 0, state: 0, output: 0, temp: 0 };
  for (const b of buffers) bytes[b.kind] += b.bytes;
  const byKernel: Record<string, number> = {};
  for (const d of dispatches) byKernel[d.name] = (byKernel[d.name] ?? 0) + 1;
  return { buffers, dispatches, inputs, outputs, consts, params, paramsRef, bytes, byKernel, nodes: order.length, ...(opts.late ? { late } : {}) };
}

/**
 * The GEMM kernel scheduled node `n` runs, for grouping (group.ts): a GEMM node, or an elementwise chain's node
 * whose store a GEMM computes (its epilogue), with the Gemm chained into it; the stored tensors it binds
 * (through folded operands and the epilogue chain's inlined producers). Undefined where `n` runs no GEMM of
 * its own (computed in another node's kernel, or not a GEMM).
 */
function gemmUnit(n: Node, epilogues: ReadonlyMap<Node, Node>, chains: ReadonlyMap<Node, Node>, deferred: ReadonlySet<Node>, expand: ReadonlySet<Node>,
  sides: ReadonlyMap<Node, Node>, pinned: ReadonlySet<Value>, remaining: ReadonlyMap<Value, number>): GemmUnit | undefined {
  if (deferred.has(n) || expand.has(n)) return undefined;
  const m = epilogues.get(n);
  const kn = m ?? n;
  if (!groupableGemm(kn)) return undefined;
  const h = chains.get(kn), g0 = sides.get(kn);
  const reads = new Set<Value>();
  // computed in this kernel
  const skip = new Set<Value>([...(m ? [kn.outputs[0]!] : []), ...(h ? [h.outputs[0]!] : []), ...(g0 ? [g0.outputs[0]!] : [])]);
  const add = (x: Value | null | undefined) => {
    if (!x || skip.has(x)) return;
    if (x.node && expand.has(x.node)) for (const y of x.node.inputs) add(y);
    else reads.add(x);
  };
  for (const g of [kn, ...(h ? [h] : []), ...(g0 ? [g0] : [])]) for (const x of boundInputs(g)) add(x);
  if (m) for (const x of n.inputs) add(x);
  const y0 = g0?.outputs[0];
  const stored = !!y0 && sideStored(y0, pinned, remaining);
  // writes: the store's outputs (SwiGLUGrad's dgate and dup where it is the epilogue), plus a stored LoRA side product
  const writes = (m && n.op === 'SwiGLUGrad' ? n.outputs.length : 1) + (stored ? 1 : 0);
  return { gemms: [kn, ...(h ? [h] : [])], reads: [...reads], ...(writes > 1 ? { writes } : {}) };
}

/** A computed tensor's virtual buffer and the nodes (schedule indices, inclusive) it is live for. */
interface Lifetime { buf: BufferSlot; start: number; end: number }

/**
 * Maps the virtual buffers of computed tensors onto real ones: largest first, each into the smallest real
 * buffer none of whose tensors is live at the same time (greedy by size), or into a new one. Real buffers
 * are never larger than the largest tensor they hold, and a buffer holds one live tensor at a time, so the
 * kernels' bindings (whole buffers, read or read-write) never alias within a dispatch. Tensors live to the
 * end (graph outputs, and tensors computed in place over a host-kept input: the paged optimizer's m', v')
 * are placed the same way: they reuse the buffer of a tensor dead before they are written (an activation
 * of the forward/backward), never one that any later tensor takes. A buffer that holds only such tensors is
 * of kind 'output'; a shared one stays 'temp'. The refs of every dispatch binding, output and host-kept
 * input are rewritten to the real buffers.
 */
function assignTemporaries(
  lifetimes: Lifetime[], slot: (kind: BufferKind, bytes: number, label: string) => BufferSlot,
  dispatches: PlannedDispatch[], outputs: Map<string, PlannedTensor>, inputs: Map<string, PlannedTensor>,
): void {
  const real = new Map<BufferSlot, BufferSlot>();
  const shared: { buf: BufferSlot; lives: Lifetime[] }[] = [];
  const order = [...lifetimes].sort((a, b) => b.buf.bytes - a.buf.bytes || a.start - b.start);
  for (const life of order) {
    let best: (typeof shared)[number] | undefined;
    for (const s of shared) {
      if (best && s.buf.bytes >= best.buf.bytes) continue;
      if (s.lives.every((o) => o.end < life.start || life.end < o.start)) best = s;
    }
    if (!best) {
      best = { buf: slot('temp', life.buf.bytes, life.buf.label), lives: [] };
      shared.push(best);
    }
    best.lives.push(life);
    real.set(life.buf, best.buf);
  }
  // a buffer whose tensors all live to the end (graph outputs in a buffer of their own) is an output's
  for (const s of shared) if (s.lives.every((l) => l.end === Infinity)) s.buf.kind = 'output';
  const remap = (r: Ref): Ref => {
    const b = real.get(r.buf);
    return b ? { ...r, buf: b } : r;
  };
  for (const d of dispatches) d.bindings = d.bindings.map((b) => ({ ...b, ref: remap(b.ref) }));
  for (const t of outputs.values()) t.ref = remap(t.ref);
  for (const t of inputs.values()) t.ref = remap(t.ref); // host-kept inputs (PlanOptions.late) live in temporaries
}

/** Where a tensor is computed inside a Concat's output: the Concat's output value and the element offset. */
interface Placement { concat: Value; offset: number }

/** Views (no dispatch, same elements) a placed tensor may reach its Concat through. */
const VIEW_OPS = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Identity']);

/**
 * Concat without copies: an input of a Concat that is one contiguous run of its output and is produced
 * (through views only) by a GEMM, MatMul or elementwise kernel is computed straight into that slice of the
 * Concat's output; the Concat then has nothing left to copy for it (kernels/elementwise.ts skips a piece
 * already in place). The producer's other readers read it there: the Concat's output is only ever written
 * slice by slice by these producers and the Concat's own copies of the other pieces, and a kernel takes a
 * buffer over in place only when no other tensor lives in it (`lastUse`). Graph outputs keep their own buffer.
 */
function concatPlacements(order: readonly Node[], remaining: ReadonlyMap<Value, number>, pinned: ReadonlySet<Value>, expand: ReadonlySet<Node>): Map<Value, Placement> {
  const placed = new Map<Value, Placement>();
  const placeable = (n: Node) => n.op === 'Gemm' || n.op === 'MatMul' || !!fusibleExpr(n as never);
  for (const n of order) {
    if (n.op !== 'Concat') continue;
    const out = n.outputs[0]!;
    const oS = staticShape(out.shape, `GPU plan: ${n}`);
    const ax = normAxis(n.attrs.axis as number, oS.length, 'Concat');
    let at = 0;
    for (const x of n.inputs) {
      if (!x) continue;
      const s = staticShape(x.shape, `GPU plan: ${n}`);
      const off = contiguousSlice(oS, oS.map((_, d) => (d === ax ? at : 0)), s);
      at += s[ax]!;
      if (off === null || n.inputs.filter((y) => y === x).length !== 1) continue;
      let v = x;
      while (v.node && VIEW_OPS.has(v.node.op) && v.node.inputs[0] && !pinned.has(v)) v = v.node.inputs[0];
      const m = v.node;
      if (!m || pinned.has(v) || expand.has(m) || !placeable(m) || m.outputs.length !== 1 || placed.has(v) || v.dtype !== out.dtype) continue;
      if (!remaining.has(v)) continue;
      placed.set(v, { concat: out, offset: off });
    }
  }
  return placed;
}

/** Does `node`'s kernel read a tensor in `buf` (through the producers computed inside it: `expand`)? */
function readsBuffer(node: Node, buf: BufferSlot, expand: ReadonlySet<Node>, refOf: ReadonlyMap<Value, Ref>): boolean {
  return node.inputs.some((x) => {
    if (!x) return false;
    if (x.node && expand.has(x.node)) return readsBuffer(x.node, buf, expand, refOf);
    const r = refOf.get(x);
    return !!r && (r.buf === buf || !!r.parts?.bufs.includes(buf));
  });
}

/**
 * Is `v` of a type the planner fusions take: f32, or a 16-bit compute type (f16/bf16 compute, IR float16), which the
 * fused kernels round where the unfused store would.
 */
const fusedDtype = (v: Value): boolean => v.dtype === 'float32' || v.dtype === 'float16';

/** Most storage bindings a GEMM with a fused epilogue may use (the WebGPU default maxStorageBuffersPerShaderStage). */
const MAX_BINDINGS = 8;

/**
 * GEMM epilogue fusion: an elementwise chain (a fusible root with its inlined producers) that reads the
 * result of a Gemm or MatMul which nothing else reads, of the chain's own shape, is computed in that GEMM's
 * store (kernels/elementwise.ts gemmEpilogue): the GEMM runs at the chain's place in the schedule (its
 * inputs are still live: their last reader has not run), the chain costs no dispatch and the GEMM's result
 * no buffer. A 16-bit result (f16/bf16 compute) is rounded to the compute type in the store before the chain
 * reads it, as its own store would round it (kernels/elementwise.ts gemmEpilogue). Returns chain root -> GEMM node.
 */
function gemmEpilogues(order: readonly Node[], remaining: ReadonlyMap<Value, number>, pinned: ReadonlySet<Value>, inlined: ReadonlySet<Node>, maxBinding?: number): Map<Node, Node> {
  const out = new Map<Node, Node>();
  const taken = new Set<Node>();
  const leavesOf = (n: Node, acc: Value[]): Value[] => {
    for (const x of n.inputs) {
      if (!x) continue;
      if (x.node && inlined.has(x.node)) leavesOf(x.node, acc);
      else acc.push(x);
    }
    return acc;
  };
  const bindings = (v: Value): number => {
    // a constant above the binding limit is split into parts, one binding each
    if (maxBinding === undefined || v.node) return 1;
    const n = (v.shape as number[]).reduce((a, b) => a * b, 1);
    return Math.max(1, Math.ceil((n * 4) / maxBinding) + 1);
  };
  for (const n of order) {
    if (inlined.has(n) || n.outputs.length !== 1 || !fusibleExpr(n as never)) continue;
    const y = n.outputs[0]!;
    const leaves = leavesOf(n, []);
    const acc = leaves.find((x) => {
      const m = x.node;
      return !!m && (m.op === 'Gemm' || m.op === 'MatMul') && m.outputs.length === 1 && !taken.has(m) && !pinned.has(x)
        && remaining.get(x) === 1 && leaves.filter((z) => z === x).length === 1 && fusedDtype(x) && sameShape(x.shape, y.shape);
    });
    if (!acc) continue;
    const m = acc.node!;
    const others = new Set(leaves.filter((x) => x !== acc));
    const count = m.inputs.reduce((s, x) => s + (x ? bindings(x) : 0), 0) + [...others].reduce((s, x) => s + bindings(x), 0) + 2; // + output, params
    if (count > MAX_BINDINGS) continue;
    out.set(n, m);
    taken.add(m);
  }
  return out;
}

/** Norm backwards whose dx a residual-stream gradient sum may be added to in the dx store (kernels/norm.ts). */
const NORM_GRADS = new Set(['RMSNormGrad', 'LayerNormGrad']);

/**
 * Norm-backward accumulates: an Add of a norm backward's dx (nothing else reads it) and another tensor of the
 * same shape and type (the residual stream's gradient sum) is computed in the norm backward's dx store
 * (`EmitCtx.accumulate`); the Add's output is then the norm backward's dx, no dispatch of its own. Decided
 * statically here, taken at the norm backward's turn only when the other tensor is stored by then
 * (accumulateOf). Returns norm backward -> Add. Adds inside other fusions (`fusedAway`) are left alone.
 */
function normAccumulates(order: readonly Node[], remaining: ReadonlyMap<Value, number>, pinned: ReadonlySet<Value>, fusedAway: ReadonlySet<Node>): Map<Node, Node> {
  const out = new Map<Node, Node>();
  for (const n of order) {
    if (n.op !== 'Add' || fusedAway.has(n) || pinned.has(n.outputs[0]!) || n.inputs.length !== 2) continue;
    const [a, b] = n.inputs as [Value, Value];
    if (!a || !b || a === b || a.dtype !== b.dtype || !sameShape(a.shape, b.shape) || !sameShape(a.shape, n.outputs[0]!.shape)) continue;
    const dx = [a, b].find((x) => !!x.node && NORM_GRADS.has(x.node.op) && x.node.outputs[0] === x && remaining.get(x) === 1 && !pinned.has(x) && !out.has(x.node));
    if (!dx || [a, b].some((x) => x.node && fusedAway.has(x.node))) continue;
    out.set(dx.node!, n);
  }
  return out;
}

/** EmitCtx.accumulate for norm backward `node` when its Add's other input is stored by now (normAccumulates). */
function accumulateOf(add: Node | undefined, node: Node, refOf: ReadonlyMap<Value, Ref>, accumulated: Set<Node>): Pick<EmitCtx, 'accumulate'> {
  if (!add) return {};
  const other = add.inputs.find((x) => x !== node.outputs[0])!;
  const ref = refOf.get(other);
  if (!ref) return {};
  accumulated.add(add);
  return { accumulate: ref };
}

/** Inputs of the attention kernels that load through folded Transposes: q, k, v (forward); q, k, v, o, lse, dO (backward). */
const ATTENTION_LOADS: Record<string, number> = { FlashAttention: 3, FlashAttentionGrad: 6 };

/** Does attention node `r` read `v` only as inputs it can load through a fold (kernels/attention.ts `loadOf`)? */
function attentionLoads(r: Node, v: Value): boolean {
  return r.inputs.every((x, i) => x !== v || i < ATTENTION_LOADS[r.op]!);
}

/** Most tensors an elementwise chain folded into a GEMM operand load may read. */
const MAX_FOLDED_LEAVES = 2;

/**
 * Folded loads: tensors no kernel stores, computed where they are loaded (kernels/elementwise.ts
 * transposeLoad, chainLoad):
 *  - a Transpose (and the views of it) whose readers are all GEMM operands (MatMul, Gemm, Nf4Gemm's x),
 *    attention's q, k, v, o, dO or elementwise kernels: each reads the source through the permuted strides
 *    (a gather, nothing recomputed);
 *  - an f32 elementwise chain (not already a GEMM epilogue) whose one reader is a GEMM operand, reading at
 *    most MAX_FOLDED_LEAVES tensors: computed in the GEMM's tile load;
 *  - a SwiGLU whose readers (any number) are all GEMM operands (swigluFoldable): recomputed in each tile load.
 * Returns the folded nodes (their views included).
 */
function foldedLoads(order: readonly Node[], pinned: ReadonlySet<Value>, inlined: ReadonlySet<Node>, epilogues: ReadonlyMap<Node, Node>): Set<Node> {
  const readers = new Map<Value, Node[]>();
  for (const n of order) for (const x of n.inputs) if (x) readers.set(x, [...(readers.get(x) ?? []), n]);
  const isGemm = (n: Node) => n.op === 'Gemm' || n.op === 'MatMul';
  const folded = new Set<Node>();
  const views: Node[] = [];
  // can every reader of v (through views) compute it in its loads?
  const loadable = (v: Value): boolean => !pinned.has(v) && (readers.get(v) ?? []).every((r) => {
    if (VIEW_OPS.has(r.op) && r.outputs.length === 1) return (views.push(r), loadable(r.outputs[0]!));
    // Nf4Gemm (QLoRA) loads its activation x (input 0) through the fold too, not its codes
    if (r.op === 'Nf4Gemm') return r.inputs.every((x, i) => x !== v || i === 0);
    if (ATTENTION_LOADS[r.op] !== undefined) return attentionLoads(r, v);
    return isGemm(r) || (!!fusibleExpr(r as never) && r.outputs.length === 1);
  });
  const leavesOf = (n: Node, acc: Set<Value>): Set<Value> => {
    for (const x of n.inputs) if (x) { if (x.node && inlined.has(x.node)) leavesOf(x.node, acc); else acc.add(x); }
    return acc;
  };
  for (const n of order) {
    const y = n.outputs[0];
    if (n.op === 'SwiGLU' && y && !pinned.has(y) && swigluFoldable(n, readers, folded, inlined, epilogues)) folded.add(n);
    // (a Transpose moves values, so a 16-bit one folds too: its readers load exactly what it would store)
    if (!y || n.outputs.length !== 1 || !(y.dtype === 'float32' || (y.dtype === 'float16' && n.op === 'Transpose')) || pinned.has(y)) continue;
    if (n.op === 'Transpose') {
      const src = n.inputs[0]!;
      if (src.node && folded.has(src.node)) continue; // one level: the source is a stored tensor
      views.length = 0;
      if (!loadable(y)) continue;
      folded.add(n);
      for (const v of views) folded.add(v);
      continue;
    }
    if (inlined.has(n) || epilogues.has(n) || !fusibleExpr(n as never)) continue;
    const rs = readers.get(y) ?? [];
    if (rs.length !== 1 || !isGemm(rs[0]!) || rs[0]!.inputs.filter((x) => x === y).length !== 1) continue;
    const leaves = leavesOf(n, new Set());
    // the GEMM's storage bindings: its operands (this chain's tensors instead of y), its epilogue's other tensors, output, params
    const r = rs[0]!;
    const root = [...epilogues].find(([, g]) => g === r)?.[0];
    const bindings = r.inputs.reduce((a, x) => a + (!x ? 0 : x === y ? leaves.size : foldedBindings(x, folded, inlined)), 0) + (root ? leavesOf(root, new Set()).size - 1 : 0) + 2;
    if (bindings > MAX_BINDINGS) continue;
    if (leaves.size > MAX_FOLDED_LEAVES || [...leaves].some((x) => x.node && folded.has(x.node) && x.node.op !== 'Transpose' && !VIEW_OPS.has(x.node.op))) continue;
    folded.add(n);
  }
  return folded;
}

/** Storage bindings a GEMM operand takes: the stored tensors a folded operand reads (elementwise chain, SwiGLU), else one. */
function foldedBindings(v: Value, folded: ReadonlySet<Node>, inlined: ReadonlySet<Node>): number {
  const m = v.node;
  if (!m || !folded.has(m)) return 1;
  if (m.op === 'SwiGLU') return new Set(m.inputs).size;
  if (!fusibleExpr(m as never)) return 1; // a Transpose (a gather of one stored tensor) or a view
  return chainLeaves(m, inlined).size;
}

/** The tensors an elementwise chain rooted at `n` reads (through its inlined producers). */
function chainLeaves(n: Node, inlined: ReadonlySet<Node>, acc = new Set<Value>()): Set<Value> {
  for (const x of n.inputs) if (x) { if (x.node && inlined.has(x.node)) chainLeaves(x.node, inlined, acc); else acc.add(x); }
  return acc;
}

/**
 * SwiGLU in its readers' tile loads: h = silu(gate)·up (f32, or 16-bit rounded in the load as its store would) whose readers are all GEMM operands (MatMul, Gemm,
 * Nf4Gemm's x: the down projection's base GEMM and LoRA x·A, the backward's LoRA-A gradient hᵀ·G) is never
 * stored; each reader recomputes it from gate and up where it loads it (kernels/swiglu.ts swigluLoad, the
 * forward kernel's expression: the same values). gate and up live on for SwiGLUGrad anyway, so this frees h's
 * [N, F] buffer (kept from the forward to the backward) and its dispatch. Each reader must stay within
 * MAX_BINDINGS with gate and up bound instead of h.
 */
function swigluFoldable(n: Node, readers: ReadonlyMap<Value, Node[]>, folded: ReadonlySet<Node>, inlined: ReadonlySet<Node>, epilogues: ReadonlyMap<Node, Node>): boolean {
  const y = n.outputs[0]!;
  const [gate, up] = n.inputs;
  if (!gate || !up || n.inputs.length !== 2 || ![gate, up].every((x) => x.dtype === y.dtype && sameShape(x.shape, y.shape) && !(x.node && folded.has(x.node)))) return false;
  if (!fusedDtype(y)) return false;
  const rs = readers.get(y) ?? [];
  if (rs.length === 0) return false;
  const rootOf = new Map([...epilogues].map(([root, g]) => [g, root] as const));
  return rs.every((r) => {
    const gemm = r.op === 'Gemm' || r.op === 'MatMul';
    if (!gemm && !(r.op === 'Nf4Gemm' && r.inputs.every((x, i) => x !== y || i === 0))) return false;
    const root = rootOf.get(r);
    const extra = root ? chainLeaves(root, inlined).size - 1 : 0; // the epilogue's other tensors
    const operands = boundInputs(r).reduce((a, x) => a + (!x || x === y ? 0 : foldedBindings(x, folded, inlined)), 0) + new Set([gate, up]).size;
    return operands + extra + 2 <= MAX_BINDINGS; // + output, params
  });
}

/**
 * SwiGLUGrad in the store of the GEMM producing dh (kernels/swiglu.ts swigluGradEpilogue): a Gemm or MatMul
 * (with the Gemm chained into it, if any: the down projection's dy·W + (dy·B)·A) whose result only a
 * SwiGLUGrad reads, as its dh, computes dgate and dup in its store; dh is never stored and SwiGLUGrad has no
 * dispatch. Decided after the chains, so the count is the whole kernel's: its operands (folded ones by what
 * they read), gate and up, both outputs and the params buffer within `limit` (the adapter's storage buffers a
 * shader, PlanOptions.maxStorageBuffers: 9 for the chained down projection, above WebGPU's default 8). The
 * GEMM runs at the SwiGLUGrad's place (its inputs are live until then). Returns SwiGLUGrad -> GEMM.
 */
function swigluGradEpilogues(order: readonly Node[], remaining: ReadonlyMap<Value, number>, pinned: ReadonlySet<Value>, epilogues: ReadonlyMap<Node, Node>,
  deferred: ReadonlySet<Node>, chains: ReadonlyMap<Node, Node>, folded: ReadonlySet<Node>, inlined: ReadonlySet<Node>, limit: number, maxBinding?: number): Map<Node, Node> {
  const out = new Map<Node, Node>();
  const taken = new Set([...epilogues.values()]);
  for (const n of order) {
    if (n.op !== 'SwiGLUGrad' || n.inputs.length !== 3) continue;
    const [gate, up, dh] = n.inputs as [Value | null, Value | null, Value | null];
    const m = dh?.node;
    if (!gate || !up || !dh || !m || (m.op !== 'Gemm' && m.op !== 'MatMul') || m.outputs.length !== 1 || taken.has(m) || deferred.has(m) || out.has(m)) continue;
    if (pinned.has(dh) || remaining.get(dh) !== 1 || dh === gate || dh === up) continue;
    if (![gate, up, ...n.outputs].every((x) => x.dtype === dh.dtype && sameShape(x.shape, dh.shape)) || !fusedDtype(dh)) continue;
    if (m.op === 'MatMul' && (dh.shape as number[]).length !== 2) continue; // (a batched MatMul's store index is flat too, but keep to the 2-D case)
    const g1 = chains.get(m);
    const bound = new Set<Value>([gate, up]);
    for (const x of [...m.inputs.filter((_, i) => !(g1 && i === 2)), ...(g1 ? g1.inputs : [])]) if (x) bound.add(x);
    // (a constant above the binding limit is split into parts, one binding each: as gemmEpilogues counts them)
    const parts = (x: Value) => (maxBinding === undefined || x.node ? 1 : Math.max(1, Math.ceil(((x.shape as number[]).reduce((a, b) => a * b, 1) * 4) / maxBinding) + 1));
    const bindings = [...bound].reduce((a, x) => a + Math.max(foldedBindings(x, folded, inlined), parts(x)), 0) + n.outputs.length + 1;
    if (bindings > limit) continue;
    out.set(n, m);
    taken.add(m);
  }
  return out;
}

/**
 * Chained GEMMs: a Gemm G1 whose result nothing but another Gemm G2's C reads (same shape) runs inside G2's
 * dispatch as a second K segment (kernels/matmul.ts chainedGemmKernel): a LoRA projection's base GEMM and
 * its rank-r term, forward (base·W + α·(xA)·B) and backward (dy·W + (dy·B)·A). A 16-bit G1 result (f16/bf16
 * compute) is rounded to the compute type before G2 adds it, as its own store would round it. Either may be QLoRA's
 * Nf4Gemm (its packed weight one binding: kernels/nf4.ts; G1: its value + bias or C rounded the same way; G2: G1's
 * result is its C input, the backward's dx sum in the other order). Not on the subgroup-matrix path
 * (its f16 tiles would round the LoRA operands). Returns G2 -> G1.
 */
function gemmChains(order: readonly Node[], remaining: ReadonlyMap<Value, number>, pinned: ReadonlySet<Value>, epilogues: ReadonlyMap<Node, Node>,
  folded: ReadonlySet<Node>, inlined: ReadonlySet<Node>): Map<Node, Node> {
  const out = new Map<Node, Node>();
  const used = new Set<Node>();
  const leavesOf = (n: Node, acc: Set<Value>): Set<Value> => {
    for (const x of n.inputs) if (x) { if (x.node && inlined.has(x.node)) leavesOf(x.node, acc); else acc.add(x); }
    return acc;
  };
  // storage bindings a GEMM operand takes: a folded elementwise chain reads its tensors, anything else one
  const cost = (v: Value | null): number => (!v ? 0 : foldedBindings(v, folded, inlined));
  const rootOf = new Map([...epilogues].map(([root, g]) => [g, root] as const));
  // (either may be QLoRA's Nf4Gemm: its dequantizing load is its segment's B, its C input 8, kernels/matmul.ts chainedSpec)
  const gemmLike = (n: Node) => n.op === 'Gemm' || (n.op === 'Nf4Gemm' && groupableGemm(n));
  for (const g2 of order) {
    const y1 = g2.inputs[g2.op === 'Nf4Gemm' ? 8 : 2];
    const g1 = y1?.node;
    if (!gemmLike(g2) || !y1 || !g1 || !gemmLike(g1) || g1.outputs.length !== 1 || used.has(g1) || used.has(g2) || out.has(g1)) continue;
    if (pinned.has(y1) || remaining.get(y1) !== 1 || folded.has(g1) || !fusedDtype(y1) || !sameShape(y1.shape, g2.outputs[0]!.shape)) continue;
    if (g2.inputs.filter((x) => x === y1).length !== 1 || (g2.op === 'Gemm' && (g2.attrs.beta as number) === 0)) continue;
    const root = rootOf.get(g2);
    const bindings = boundInputs(g2).reduce((a, x) => a + (x === y1 ? 0 : cost(x)), 0) + boundInputs(g1).reduce((a, x) => a + cost(x), 0)
      + (root ? leavesOf(root, new Set()).size - 1 : 0) + 2;
    if (bindings > MAX_BINDINGS) continue;
    out.set(g2, g1);
    used.add(g1);
    used.add(g2);
  }
  return out;
}

/** Largest rank a LoRA side product may have (its [BM, r] block and P's 16×r tile live in workgroup memory). */
const MAX_SIDE_RANK = 64;

/** Whether a LoRA side product y0 is stored as well: something besides its pair reads it (the weight gradients) or it is an output. */
const sideStored = (y0: Value, pinned: ReadonlySet<Value>, remaining: ReadonlyMap<Value, number>): boolean => pinned.has(y0) || (remaining.get(y0) ?? 0) > 1;

/** Workgroup memory every adapter gives a compute shader (WebGPU's default maxComputeWorkgroupStorageSize). */
const WORKGROUP_BYTES = 16384;

/**
 * LoRA side products: for a chained pair (gemmChains) where one Gemm (the base) reads x as its A and the
 * other (the LoRA term) reads y0 = G0(x, P) as its A, with G0 a Gemm of the same x (no C, not transposed) into
 * [M, r] for a small rank r (x·A forward, dy·B backward), G0 is summed in the base's K loop from the x tiles
 * it stages anyway (kernels/gemm.ts SideProduct) and multiplied into the pair's result from workgroup memory:
 * a LoRA projection costs one dependency level instead of two. y0 is still stored (once per row block) where
 * anything else reads it (the weight gradients); those readers run after the pair (sideSchedule). A 16-bit y0
 * (f16/bf16 compute) is rounded to the compute type where it is kept in workgroup memory and stored, as its own
 * store would round it. Not on the subgroup-matrix path (the caller; as for chains). Returns the pair's key
 * (gemmChains' G2) -> G0.
 */
function loraSides(order: readonly Node[], chains: ReadonlyMap<Node, Node>, epilogues: ReadonlyMap<Node, Node>, remaining: ReadonlyMap<Value, number>,
  pinned: ReadonlySet<Value>, expand: ReadonlySet<Node>, tile: GemmTile, limit: number): Map<Node, Node> {
  const out = new Map<Node, Node>();
  const taken = new Set<Node>([...chains.keys(), ...chains.values(), ...epilogues.values()]);
  const rootOf = new Map([...epilogues].map(([root, g]) => [g, root] as const));
  const readers = new Map<Value, Node[]>();
  for (const n of order) for (const x of n.inputs) if (x) readers.set(x, [...(readers.get(x) ?? []), n]);
  const plainA = (g: Node) => g.op === 'Gemm' && !(g.attrs.transA as number);
  // the base GEMM stages x as its A' tiles: a Gemm reading x untransposed, or QLoRA's Nf4Gemm (x is its input 0)
  const baseA = (g: Node) => plainA(g) || g.op === 'Nf4Gemm';
  const leavesOf = (n: Node, acc: Set<Value>): Set<Value> => {
    for (const x of n.inputs) if (x) { if (x.node && expand.has(x.node) && !VIEW_OPS.has(x.node.op) && x.node.op !== 'Transpose') leavesOf(x.node, acc); else acc.add(x); }
    return acc;
  };
  for (const [g2, g1] of chains) {
    for (const [base, lora] of [[g1, g2], [g2, g1]] as const) {
      const y0 = lora.inputs[0], g0 = y0?.node;
      if (!y0 || !g0 || g0.op !== 'Gemm' || g0.outputs.length !== 1 || taken.has(g0) || expand.has(g0) || [...out.values()].includes(g0)) continue;
      if (!plainA(g0) || !baseA(base) || !plainA(lora) || g0.inputs[0] !== base.inputs[0] || (g0.inputs[2] && (g0.attrs.beta as number) !== 0)) continue;
      if (lora.inputs.filter((x) => x === y0).length !== 1 || base.inputs.includes(y0) || !fusedDtype(y0)) continue;
      const r = (y0.shape as number[])[1]!;
      if (y0.rank !== 2 || typeof r !== 'number' || r > MAX_SIDE_RANK || segmentedWorkgroupBytes(tile, r) > WORKGROUP_BYTES) continue;
      // every other reader of y0 is a node the schedule may run after the pair (sideSchedule checks the order)
      if ((readers.get(y0) ?? []).some((n) => n !== lora && expand.has(n))) continue;
      // storage bindings: the tensors the pair, G0 and the epilogue read (y0 not: it is computed here), output(s), params
      const reads = new Set<Value>();
      for (const g of [g2, g1, g0]) for (const x of boundInputs(g)) if (x && x !== y0 && x !== g1.outputs[0]) { if (x.node && expand.has(x.node)) leavesOf(x.node, reads); else reads.add(x); }
      const root = rootOf.get(g2);
      if (root) for (const x of leavesOf(root, new Set())) if (x !== g2.outputs[0]) reads.add(x);
      const stored = sideStored(y0, pinned, remaining);
      const outs = root?.op === 'SwiGLUGrad' ? root.outputs.length : 1; // a SwiGLUGrad epilogue stores dgate and dup
      if (reads.size + outs + 1 + (stored ? 1 : 0) > limit) continue;
      out.set(g2, g0);
      break;
    }
  }
  return out;
}

/**
 * The schedule with loraSides' G0s moved to just after the node their pair runs at (so grouping sees y0 computed
 * there), and any other reader of y0 scheduled before that node moved after it too (a weight gradient the
 * autodiff order put before the dx pair), where all of that reader's own readers come later still. A pair whose
 * readers cannot be moved so is not given its side product (removed from `sides`).
 */
function sideSchedule(order: readonly Node[], sides: Map<Node, Node>, chains: ReadonlyMap<Node, Node>, epilogues: ReadonlyMap<Node, Node>): Node[] {
  const rootOf = new Map([...epilogues].map(([root, g]) => [g, root] as const));
  const pairOf = new Map([...chains].map(([g2, g1]) => [g1, g2] as const));
  // the node whose turn runs n's kernel
  const runner = (n: Node): Node => {
    const g2 = pairOf.get(n);
    if (g2) return runner(g2);
    return rootOf.get(n) ?? n;
  };
  const readers = new Map<Value, Node[]>();
  for (const n of order) for (const x of n.inputs) if (x) readers.set(x, [...(readers.get(x) ?? []), n]);
  let sched = [...order];
  for (const [g2, g0] of [...sides]) {
    const pos = new Map(sched.map((n, i) => [n, i] as const));
    const R = runner(g2), p = pos.get(R)!;
    const y0 = g0.outputs[0]!, pair = new Set([g2, chains.get(g2)!]);
    const early = [...new Set((readers.get(y0) ?? []).filter((n) => !pair.has(n)).map(runner))].filter((n) => pos.get(n)! < p);
    const movable = early.every((s) => s !== R && !pair.has(s) && !sides.has(s) && !chains.has(s)
      && s.outputs.every((v) => (readers.get(v) ?? []).every((n) => pos.get(runner(n))! > p)));
    if (!movable) { sides.delete(g2); continue; }
    const moved = new Set([g0, ...early]);
    const rest = sched.filter((n) => !moved.has(n));
    const at = rest.indexOf(R) + 1;
    sched = [...rest.slice(0, at), g0, ...early.sort((a, b) => pos.get(a)! - pos.get(b)!), ...rest.slice(at)];
  }
  return sched;
}
