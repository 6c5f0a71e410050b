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
 *    kernel, f32/f16/bf16 operands and split weights alike, and what the planner fusions made of them
 *    (plan.ts passes `unit`): a chained pair (base GEMM + LoRA term: two K segments), a GEMM computing an
 *    elementwise chain in its store (epilogue; the unit is then the chain's node, where the GEMM runs) and
 *    GEMMs loading a folded operand. Each problem is built by its own kernel's code (kernels/matmul.ts
 *    `gemmProblem`, with kernels/nf4.ts `nf4Problem` for NF4) in the group's kernel, so loads, sums and stores are the
 *    same. Not (yet): batched MatMul, and GEMMs the subgroup-matrix path takes (16-bit or NF4 weights on a
 *    device that has it).
 *  - The group's kernel binds each tensor once (`GroupKernel.input`) and each written buffer once (two
 *    members computed into slices of one Concat output write through one binding, at their offsets).
 * On by default; `planGraph(g, { noGrouping: true })` turns it off (the reference).
 */
import type { Node, Value } from '../../graph/graph';
import type { Emitter } from './kernels/context';
import { emitGroupedGemm, type GemmChoice, type GemmProblem, type SegmentedGemmProblem } from './kernels/gemm';
import { gemmProblem } from './kernels/matmul';
import { nf4Packed } from './kernels/nf4';
import { KernelBuilder, storedValue, type BufferSlot, type Ref } from './wgsl';

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

/**
 * The inputs a GEMM's kernel binds, one a binding (Nf4Gemm's input 5, the CPU lowering's pair table, is not read on
 * the GPU; a packed NF4 weight, kernels/nf4.ts nf4Packed, is one buffer: its codes stand for it).
 */
export const boundInputs = (n: Node): (Value | null)[] => (n.op !== 'Nf4Gemm' ? [...n.inputs]
  : n.inputs.filter((_, i) => i !== 5 && !(nf4Packed(n) && i >= 2 && i <= 6)));

/**
 * What one scheduled node's GEMM kernel is (plan.ts: after its fusions): the GEMM nodes it computes (a
 * chained pair: two) and the stored tensors it binds (operands, a folded operand's sources, an epilogue's
 * other tensors).
 */
export interface GemmUnit {
  gemms: Node[];
  reads: Value[];
  /** Buffers its store writes (default 1; SwiGLUGrad's dgate and dup where it is the epilogue: 2; a LoRA side product stored too: one more). */
  writes?: number;
}

interface Group { members: Node[]; k?: GroupKernel; problems: (GemmProblem | SegmentedGemmProblem)[] }

/**
 * The kernel a group's problems are declared in: every tensor (buffer, offset, size, storage) is bound once
 * however many problems read it, and every buffer written once (slices of one buffer written through one
 * binding, each store at its own offset).
 */
class GroupKernel extends KernelBuilder {
  private readonly loads = new Map<string, string>();
  private readonly written = new Map<BufferSlot, { binding: number; stores: number }>();

  constructor(private readonly key: (b: BufferSlot) => number) {
    super('GroupedGemm');
  }

  override input(ref: Ref): string {
    // keyed by the buffer object: while planning, temporaries are virtual buffers that all have id −1
    // (plan.ts assignTemporaries numbers them later), so an id key would bind two different tensors as one
    const key = `${this.key(ref.buf)}:${ref.offset}:${ref.numel}:${ref.storage}`;
    let f = this.loads.get(key);
    if (!f) this.loads.set(key, (f = super.input(ref)));
    return f;
  }

  override output(ref: Ref): string {
    const w = this.written.get(ref.buf);
    const storage = ref.storage;
    if (!w || ref.parts || !(storage === 'f32' || storage === 'f16r' || storage === 'h16' || storage === 'hb16' || storage === 'b16r') || this.bindings[w.binding]!.ref.storage !== storage) {
      const binding = this.bindings.length; // (output() may add the params binding after its own)
      const st = super.output(ref);
      if (!w) this.written.set(ref.buf, { binding, stores: 0 });
      return st;
    }
    // another slice of a buffer this kernel already writes (a Concat's output): the same binding, its own offset
    const i = w.binding, name = `st${i}_${++w.stores}`;
    const j = ref.offset ? `${this.param(ref.offset)} + e` : 'e';
    // (16-bit storages: the rounding helpers the first store of this buffer declared)
    this.decl(`fn ${name}(e: u32, v: f32) { b${i}[${j}] = ${storedValue(storage)}; }`);
    return name;
  }
}

export interface GemmGrouping {
  /** The schedule: `order` with each group's members moved together to its first member's place. */
  order: Node[];
  /** Groups of two or more GEMMs (each member maps to its group). */
  groups: Node[][];
  /** The emitter of a grouped member (collects its problem; the last member dispatches), else undefined. */
  emitter(n: Node): Emitter | undefined;
  /** Nodes whose inputs may be released now that `n` was scheduled: [] inside an open group, all members at its end. */
  finished(n: Node): Node[];
  /** The members of `n`'s group (`[n]` where it has none). */
  mates(n: Node): Node[];
}

export interface GroupOptions {
  maxBindings?: number;
  gemm?: GemmChoice;
  /** Storage buffers an input binds (a split weight binds one per part; default 1). */
  bindingsOf?: (v: Value) => number;
  /**
   * The GEMM kernel a scheduled node runs (plan.ts: after its fusions), or undefined where it runs none (a GEMM
   * computed in another node's kernel, any other op). Default: a groupable GEMM node as it is.
   */
  unit?: (n: Node) => GemmUnit | undefined;
  /**
   * Nodes that do not run at their own place (plan.ts: computed inside another node's kernel): a GEMM read by one
   * is never delayed into a later group (its reader's place is not known here).
   */
  runsElsewhere?: (n: Node) => boolean;
  /**
   * Nodes the plan resolves before scheduling (plan.ts: NF4 code bytes, constants the node carries): their outputs
   * are there before any node runs, wherever the schedule lists the node. Default: none.
   */
  upFront?: (n: Node) => boolean;
}

/** Storage bindings a set of GEMM units needs in one kernel: distinct inputs, their outputs (one each unless `writes`), the params buffer. */
function bindingsNeeded(units: readonly GemmUnit[], bindingsOf: (v: Value) => number): number {
  const ins = new Set<Value>();
  for (const u of units) for (const x of u.reads) ins.add(x);
  let b = 1;
  for (const u of units) b += u.writes ?? 1;
  for (const x of ins) b += bindingsOf(x);
  return b;
}

const plainUnit = (n: Node): GemmUnit | undefined => (groupableGemm(n) ? { gemms: [n], reads: boundInputs(n).filter((x): x is Value => !!x) } : undefined);

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
  const unitOf = opts.unit ?? plainUnit;
  const units = new Map<Node, GemmUnit>();
  for (const n of order) {
    const u = unitOf(n);
    if (!u || !u.gemms.every(groupableGemm)) continue;
    // (16-bit activations too: kernels/matmul.ts sends a GEMM with any 16-bit operand to the matrix kernel)
    if (matrixPath && u.gemms.some((g) => g.op === 'Nf4Gemm' || g.inputs.some((x) => x && (narrowConst(x) || x.dtype === 'float16')))) continue;
    units.set(n, u);
  }
  const ok = (n: Node) => units.has(n);
  // there before any node runs: inputs, constants, and the outputs of nodes the plan resolves up front
  const upFront = opts.upFront ?? (() => false);
  const stored = (x: Value) => !x.node || upFront(x.node);
  const pos = new Map<Node, number>();
  order.forEach((n, i) => pos.set(n, i));
  const runsElsewhere = opts.runsElsewhere ?? (() => false);
  const readers = new Map<Value, Node[]>();
  for (const n of order) for (const x of n.inputs) if (x) readers.set(x, [...(readers.get(x) ?? []), n]);
  // may GEMM m (earlier than i, in no group) run at i instead: is every reader of its results later than i?
  // (a computed tensor it reads may then live longer: only one no larger than the largest tensor the group's first
  // GEMM reads or writes, so that a layer's large MLP activation is not held across later backward kernels for a
  // LoRA gradient: the delays leave the fused train step's peak memory where it was)
  const numel = (v: Value) => (v.shape as (number | string)[]).reduce<number>((a, d) => a * (typeof d === 'number' ? d : Infinity), 1);
  const delayable = (m: Node, i: number) => {
    const lead = order[i]!;
    const largest = Math.max(...[...lead.inputs, ...lead.outputs].map((v) => (v ? numel(v) : 0)));
    return m.outputs.every((v) => (readers.get(v) ?? []).every((r) => !runsElsewhere(r) && (pos.get(r) ?? -1) > i))
      && m.inputs.every((x) => !x || stored(x) || numel(x) <= largest || (readers.get(x) ?? []).some((r) => r !== m && (pos.get(r) ?? -1) >= i));
  };

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
      if (!units.get(m)!.reads.every((x) => stored(x) || (pos.get(x.node!) ?? Infinity) < i)) continue;
      if (bindingsNeeded([...members, m].map((x) => units.get(x)!), bindingsOf) > maxBindings) continue;
      members.push(m);
    }
    // earlier GEMMs left in no group whose results nothing reads before i (a LoRA weight gradient read only by
    // the optimizer's flat gradient) run here too, with the bindings left
    for (let j = i - 1; j >= Math.max(0, i - WINDOW); j--) {
      const m = order[j]!;
      if (groupOf.has(m) || !ok(m) || !delayable(m, i)) continue;
      if (bindingsNeeded([...members, m].map((x) => units.get(x)!), bindingsOf) > maxBindings) continue;
      members.push(m);
    }
    if (members.length < 2) continue;
    const g: Group = { members, problems: [] };
    // the members now run at i: later groups see their outputs as computed there
    for (const m of members) { groupOf.set(m, g); pos.set(m, i); }
    groups.push(members);
  }
  // (a group runs at its first member's place: earlier members delayed to it, later ones moved up)
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
          g.k = new GroupKernel(bufKey);
          g.problems = [];
        }
        const k = g.k!;
        g.problems.push(gemmProblem(c, k));
        if (g.members[g.members.length - 1] === n) emitGroupedGemm(c, k, g.problems, opts.gemm?.tile);
      };
    },
    finished: (n) => {
      const g = groupOf.get(n);
      if (!g) return [n];
      return g.members[g.members.length - 1] === n ? g.members : [];
    },
    mates: (n) => groupOf.get(n)?.members ?? [n],
  };
}
