/**
 * Grouped GEMM dispatches: independent GEMM problems computed by ONE dispatch (kernels/gemm.ts
 * `emitGroupedGemm`). A LoRA linear layer is three GEMMs forward (x·Wᵀ, x·A, (xA)·B + x·Wᵀ) and about
 * five backward, and many of a layer's GEMMs do not depend on each other: q/k/v (and gate/up) read the
 * same x, the backward's dA/dB/dx pieces of several linears read gradients that exist together. Each
 * dispatch costs a pipeline switch and a bind group on the CPU side and a drain between dispatches on the
 * GPU; small problems (x·A: 16 output columns) leave most of the GPU idle.
 *
 * A pass over the planned node order (plan.ts calls `groupGemms` once, then asks `emitter` / `finished`
 * per node):
 *  - A group starts at a GEMM node g (position p) and takes later GEMM nodes (within `WINDOW` nodes) whose
 *    inputs are all computed before p: no member reads another's output, and moving a member up to p keeps
 *    the order topological (its readers all come after its old position). The members are then scheduled
 *    together at p; the plan's liveness follows the new order, so an in-place kernel (`lastUse`) after the
 *    group sees the group's reads as done, and one before it cannot overwrite what a member reads (the
 *    member is still a reader then).
 *  - A group binds at most `maxBindings` storage buffers (the adapter's maxStorageBuffersPerShaderStage;
 *    8 by default; never more than MAX_GROUP_BINDINGS): each distinct input tensor once (x shared by q/k/v is bound once), each part of a split
 *    weight, each output, and the params buffer.
 *  - The members' inputs are released only after the group's one dispatch (`finished`), so no member's
 *    output can take a buffer another member still reads.
 *  - Groupable: Gemm (transA/transB, alpha, beta·C), 2-D MatMul and Nf4Gemm (QLoRA) on the tiled
 *    kernel, f32/f16/bf16 operands and split weights alike (their loads are the same functions as in their
 *    own dispatch). Not (yet): batched MatMul, and GEMMs the subgroup-matrix path takes (16-bit or NF4
 *    weights on a device that has it).
 * `planGraph(g, { noGrouping: true })` turns it off (the reference).
 */
import type { Node, Value } from '../../graph/graph';
import { num } from '../../graph/ops/registry';
import { broadcastStrides, inShape, outShape, type EmitCtx, type Emitter } from './kernels/context';
import { emitGroupedGemm, type GemmChoice, type GemmProblem } from './kernels/gemm';
import { NF4_TABLE } from './kernels/nf4';
import { ABSMAX_BLOCK, NF4_BLOCK } from '../../quant/nf4';
import { KernelBuilder, lit, roundHalf, type BufferSlot, type Ref } from './wgsl';

/** How far ahead (nodes of the schedule) a group looks for members: bounds how much earlier a GEMM may run. */
export const WINDOW = 48;

/** Storage buffers a shader may bind where the adapter does not say (WebGPU's default limit). */
export const DEFAULT_MAX_BINDINGS = 8;

/**
 * Most storage buffers one group binds even where the adapter allows more (lavapipe reports 10⁶): a grouped
 * kernel's code grows with its problems (so does its compile time), and past ~6 problems a layer has few
 * independent GEMMs left to take.
 */
export const MAX_GROUP_BINDINGS = 16;

const GEMM_ATTRS = new Set(['transA', 'transB', 'alpha', 'beta']);

/** Is `n` a GEMM the grouped kernel computes (the same math as its own kernel in kernels/matmul.ts)? */
export function groupableGemm(n: Node): boolean {
  if (n.outputs.length !== 1) return false;
  if (n.op === 'Gemm') {
    return n.inputs.length <= 3 && !!n.inputs[0] && !!n.inputs[1] && Object.keys(n.attrs).every((k) => GEMM_ATTRS.has(k));
  }
  if (n.op === 'MatMul') {
    return n.inputs.length === 2 && n.inputs.every((x) => x?.rank === 2) && Object.keys(n.attrs).length === 0;
  }
  if (n.op === 'Nf4Gemm') return n.inputs.length >= 7 && n.inputs[0]?.rank === 2;
  return false;
}

/** The inputs a GEMM's kernel binds (Nf4Gemm's input 5, the CPU lowering's pair table, is not read on the GPU). */
const boundInputs = (n: Node): (Value | null)[] => (n.op === 'Nf4Gemm' ? n.inputs.filter((_, i) => i !== 5) : [...n.inputs]);

interface Group { members: Node[]; k?: KernelBuilder; problems: GemmProblem[]; loads: Map<string, string> }

export interface GemmGrouping {
  /** The schedule: `order` with each group's members moved together to its first member's place. */
  order: Node[];
  /** Groups of two or more GEMMs (each member maps to its group). */
  groups: Node[][];
  /** The emitter of a grouped member (collects its problem; the last member dispatches), else undefined. */
  emitter(n: Node): Emitter | undefined;
  /** Nodes whose inputs may be released now that `n` was scheduled: [] inside an open group, all members at its end. */
  finished(n: Node): Node[];
}

export interface GroupOptions {
  maxBindings?: number;
  gemm?: GemmChoice;
  /** Storage buffers an input binds (a split weight binds one per part; default 1). */
  bindingsOf?: (v: Value) => number;
  /** GEMMs that keep their own kernel (plan.ts: those its planner fusions took over). */
  exclude?: (n: Node) => boolean;
}

/** Storage bindings a set of GEMM nodes needs in one kernel: distinct inputs, outputs, the params buffer. */
function bindingsNeeded(nodes: readonly Node[], bindingsOf: (v: Value) => number): number {
  const ins = new Set<Value>();
  for (const n of nodes) for (const x of boundInputs(n)) if (x) ins.add(x);
  let b = 1 + nodes.length;
  for (const x of ins) b += bindingsOf(x);
  return b;
}

/** Nodes whose output can be a view of their input (plan.ts: no dispatch), followed back to the stored weight. */
const VIEWS = new Set(['Cast', 'Reshape', 'Identity', 'Squeeze', 'Unsqueeze', 'Flatten']);

/** Is `v` (a view of) a 16-bit constant: such a GEMM takes the subgroup-matrix kernel where the device has one. */
function narrowConst(v: Value): boolean {
  while (v.node && VIEWS.has(v.node.op) && v.node.inputs[0]) v = v.node.inputs[0];
  return v.node === null && (v.dtype === 'float16' || (v.constData?.kind === 'external' && v.constData.stored === 'bfloat16'));
}

export function groupGemms(order: readonly Node[], opts: GroupOptions = {}): GemmGrouping {
  const maxBindings = Math.max(3, Math.min(opts.maxBindings ?? DEFAULT_MAX_BINDINGS, MAX_GROUP_BINDINGS));
  const bindingsOf = opts.bindingsOf ?? (() => 1);
  const matrixPath = opts.gemm?.path === 'subgroup-matrix';
  const ok = (n: Node) => groupableGemm(n) && !opts.exclude?.(n) && !(matrixPath && (n.op === 'Nf4Gemm' || n.inputs.some((x) => x && narrowConst(x))));
  const pos = new Map<Node, number>();
  order.forEach((n, i) => pos.set(n, i));
  const groupOf = new Map<Node, Group>();
  const groups: Node[][] = [];
  for (let i = 0; i < order.length; i++) {
    const lead = order[i]!;
    if (groupOf.has(lead) || !ok(lead)) continue;
    const members = [lead];
    for (let j = i + 1; j < Math.min(order.length, i + 1 + WINDOW); j++) {
      const m = order[j]!;
      if (groupOf.has(m) || !ok(m)) continue;
      // every input computed before the group's place (inputs, constants, or a node scheduled earlier,
      // members of earlier groups at their group's place)
      if (!m.inputs.every((x) => !x || !x.node || pos.get(x.node)! < i)) continue;
      if (bindingsNeeded([...members, m], bindingsOf) > maxBindings) continue;
      members.push(m);
    }
    if (members.length < 2) continue;
    const g: Group = { members, problems: [], loads: new Map() };
    // the members now run at i: later groups see their outputs as computed there
    for (const m of members) { groupOf.set(m, g); pos.set(m, i); }
    groups.push(members);
  }
  const scheduled: Node[] = [];
  for (const n of order) {
    const g = groupOf.get(n);
    if (!g) scheduled.push(n);
    else if (g.members[0] === n) scheduled.push(...g.members);
  }
  const bufKeys = new Map<BufferSlot, number>();
  const bufKey = (b: BufferSlot): number => {
    let i = bufKeys.get(b);
    if (i === undefined) bufKeys.set(b, (i = bufKeys.size));
    return i;
  };
  return {
    order: scheduled,
    groups,
    emitter: (n) => {
      const g = groupOf.get(n);
      if (!g) return undefined;
      return (c) => {
        if (g.members[0] === n) {
          g.k = new KernelBuilder('GroupedGemm');
          g.problems = [];
          g.loads.clear();
        }
        const k = g.k!;
        // each distinct tensor bound once (q/k/v read the same x)
        const load = (r: Ref): string => {
          // keyed by the buffer object: while planning, temporaries are virtual buffers that all have id −1
          // (plan.ts assignTemporaries numbers them later), so an id key bound two different tensors as one
          const key = `${bufKey(r.buf)}:${r.offset}:${r.numel}:${r.storage}`;
          let f = g.loads.get(key);
          if (!f) { f = k.input(r); g.loads.set(key, f); }
          return f;
        };
        g.problems.push(n.op === 'Nf4Gemm' ? nf4Problem(c, k, load, g.problems.length) : gemmProblem(c, k, load));
        if (g.members[g.members.length - 1] === n) emitGroupedGemm(c, k, g.problems, opts.gemm?.tile);
      };
    },
    finished: (n) => {
      const g = groupOf.get(n);
      if (!g) return [n];
      return g.members[g.members.length - 1] === n ? g.members : [];
    },
  };
}

/** The GEMM of a Gemm / 2-D MatMul node as a problem of a grouped kernel (kernels/matmul.ts's operands and epilogue). */
function gemmProblem(c: EmitCtx, k: KernelBuilder, load: (r: Ref) => string): GemmProblem {
  const n = c.node;
  const mul = (v: string, s: number) => (s === 1 ? v : `${v} * ${s}u`);
  const [M, N] = outShape(c) as [number, number];
  let K: number, aRow: number, aCol: number, bRow: number, bCol: number;
  let alpha = 1, beta = 0;
  let C: { ld: string; sRow: number; sCol: number } | null = null;
  if (n.op === 'Gemm') {
    const at = n.attrs;
    const tA = !!num(at, 'transA'), tB = !!num(at, 'transB');
    const a = inShape(c, 0);
    K = tA ? a[0]! : a[1]!;
    [aRow, aCol] = tA ? [1, M] : [K, 1];
    [bRow, bCol] = tB ? [1, K] : [N, 1];
    alpha = num(at, 'alpha') ?? 1;
    beta = num(at, 'beta') ?? 1;
    if (n.inputs[2]) {
      const s = broadcastStrides(inShape(c, 2), [M, N]);
      C = { ld: load(c.in(2)), sRow: s[0]!, sCol: s[1]! };
    }
  } else {
    K = inShape(c, 0)[1]!;
    [aRow, aCol, bRow, bCol] = [K, 1, N, 1];
  }
  const ldA = load(c.in(0)), ldB = load(c.in(1));
  const st = k.output(c.out(0));
  const epilogue = (acc: string) => {
    let e = alpha === 1 ? acc : `${lit(alpha)} * ${acc}`;
    if (C && beta !== 0) e += ` + ${beta === 1 ? '' : `${lit(beta)} * `}${C.ld}(${mul('row', C.sRow)} + ${mul('col', C.sCol)})`;
    return e;
  };
  return {
    M, N, K,
    a: (row, ka) => `${ldA}(${mul(row, aRow)} + ${mul(ka, aCol)})`,
    b: (kb, col) => `${ldB}(${mul(kb, bRow)} + ${mul(col, bCol)})`,
    store: (row, col, acc) => `${st}(${row} * ${N}u + ${col}, ${epilogue(acc)});`,
  };
}

/** An Nf4Gemm node as a problem of a grouped kernel: kernels/nf4.ts's dequantizing load, one function per problem. */
function nf4Problem(c: EmitCtx, k: KernelBuilder, load: (r: Ref) => string, p: number): GemmProblem {
  const at = c.node.attrs;
  const cols = at.cols as number, transB = !!at.transB;
  const [M, K] = inShape(c, 0) as [number, number];
  const N = outShape(c)[1]!;
  const ldx = load(c.in(0));
  const ldq = load(c.in(1)), lda = load(c.in(2)), lds = load(c.in(3)), ldo = load(c.in(4)), ldd = load(c.in(6));
  const bias = c.node.inputs[7] ? load(c.in(7)) : null;
  const st = k.output(c.out(0));
  k.decl(NF4_TABLE);
  const half = c.node.inputs[0]!.dtype === 'float16' ? roundHalf() : null; // f16 compute: the weight rounded to f16 (kernels/nf4.ts)
  if (half) k.decl(half.decl);
  k.decl(`fn nf4w${p}(e: u32) -> f32 {
  let code = (${ldq}(e >> 3u) >> ((e & 7u) * 4u)) & 15u;
  let b = e / ${NF4_BLOCK}u;
  let acode = (${lda}(b >> 2u) >> ((b & 3u) * 8u)) & 255u;
  let absmax = ${ldd}(acode) * ${lds}(b / ${ABSMAX_BLOCK}u) + ${ldo}(0u);
  return ${half ? `${half.fn}(NF4[code] * absmax)` : 'NF4[code] * absmax'};
}`);
  return {
    M, N, K,
    a: (r, ka) => `${ldx}(${r} * ${K}u + ${ka})`,
    b: (kb, col) => (transB ? `nf4w${p}(${col} * ${cols}u + ${kb})` : `nf4w${p}(${kb} * ${cols}u + ${col})`),
    store: (r, col, acc) => `${st}(${r} * ${N}u + ${col}, ${bias ? `${acc} + ${bias}(${col})` : acc});`,
  };
}
