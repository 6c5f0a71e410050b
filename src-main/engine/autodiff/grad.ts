/**
 * Reverse-mode autodiff over the IR. Gradient nodes are appended to the same graph.
 *
 * The driver, once for all rules:
 *  - only differentiates nodes that lie on a path from a requested input to a seeded output
 *    (frozen weights and index math cost nothing);
 *  - keeps gradients as symbolic zeros (null) until something real arrives;
 *  - sums fan-out contributions, folding scatter-add contributions into the sum (no zeros tensor
 *    when a dense contribution exists);
 *  - un-broadcasts: a rule may return a gradient in the output's broadcast shape, the driver sums
 *    it back to the input's shape.
 */
import type { GraphBuilder, Node, Value } from '../graph/graph';
import { getOp, type Grad, type GradCtx, type ScatterAddGrad, reshapeTo } from '../graph/ops';
import { isFloat, sameShape, shapeStr } from '../graph/types';

export interface GradResult {
  /** One per `wrt`, null when the outputs do not depend on it (symbolic zero). */
  grads: (Value | null)[];
  /** Nodes before and added by the backward pass. */
  forwardNodes: number;
  backwardNodes: number;
}

type Contribution = Value | ScatterAddGrad;

/**
 * Gradients of `seeds` (output, cotangent) w.r.t. `wrt`. A scalar loss alone may be passed as
 * `[[loss, null]]`: a null cotangent means 1.
 */
export function gradients(g: GraphBuilder, seeds: [Value, Value | null][], wrt: Value[]): GradResult {
  const forwardNodes = g.nodes.length;
  const nodes = g.nodes.slice(); // fixed list: rules append to g.nodes

  // forward: values that depend on a requested input
  const dependent = new Set<number>(wrt.map((v) => v.id));
  const active = new Set<Node>();
  for (const n of nodes) {
    if (getOp(n.op).nondiff) continue;
    if (n.inputs.some((v) => v && dependent.has(v.id))) {
      active.add(n);
      for (const o of n.outputs) if (isFloat(o.dtype)) dependent.add(o.id);
    }
  }
  // backward: active nodes that reach a seeded output
  const useful = new Set<number>(seeds.map(([v]) => v.id));
  const order: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    if (!active.has(n) || !n.outputs.some((o) => useful.has(o.id))) continue;
    order.push(n);
    for (const v of n.inputs) if (v && dependent.has(v.id)) useful.add(v.id);
  }

  const contrib = new Map<number, Contribution[]>();
  const add = (v: Value, c: Contribution): void => {
    const list = contrib.get(v.id);
    if (list) list.push(c);
    else contrib.set(v.id, [c]);
  };
  for (const [v, ct] of seeds) {
    if (ct && (ct.dtype !== v.dtype || !sameShape(ct.shape, v.shape))) {
      throw new Error(`Cotangent ${ct} does not match output ${v}.`);
    }
    if (!ct && v.shape.some((d) => d !== 1)) throw new Error(`Output ${v} is not a scalar: pass a cotangent for it.`);
    add(v, ct ?? g.scalar(1, v.dtype));
  }
  const total = (v: Value): Value | null => materialize(g, v, contrib.get(v.id));

  for (const n of order) {
    const gy = n.outputs.map((o) => total(o));
    if (gy.every((v) => !v)) continue;
    const def = getOp(n.op);
    if (!def.grad) throw new Error(`No gradient rule for op ${n.op} (${n}); add one in graph/ops/ (the family file) or stop the gradient before it.`);
    const ctx: GradCtx = {
      g, node: n, x: n.inputs, y: n.outputs, gy,
      needs: (i) => {
        const v = n.inputs[i];
        return !!v && useful.has(v.id) && dependent.has(v.id);
      },
    };
    let res: Grad[];
    try {
      res = def.grad(ctx);
    } catch (e) {
      throw new Error(`Gradient of ${n} failed: ${(e as Error).message}`);
    }
    if (res.length !== n.inputs.length) {
      throw new Error(`Gradient rule of ${n.op} returned ${res.length} gradients for ${n.inputs.length} inputs (${n}).`);
    }
    res.forEach((r, i) => {
      const x = n.inputs[i];
      if (!r || !x || !ctx.needs(i)) return;
      if ('kind' in r) add(x, r);
      else add(x, unbroadcast(g, r, x, n));
    });
  }
  const grads = wrt.map((v) => total(v));
  g.prune(forwardNodes, grads); // rule intermediates that fusion made redundant
  return { grads, forwardNodes, backwardNodes: g.nodes.length - forwardNodes };
}

/** Convenience: gradients of a scalar loss. */
export function grad(g: GraphBuilder, loss: Value, wrt: Value[]): GradResult {
  return gradients(g, [[loss, null]], wrt);
}

/** Sum of contributions; scatter-adds go into the dense sum (or into zeros when there is none). */
function materialize(g: GraphBuilder, v: Value, list: Contribution[] | undefined): Value | null {
  if (!list || list.length === 0) return null;
  if (list.length === 1 && !('kind' in list[0]!)) return list[0] as Value;
  // A contribution whose op can add a sum in its own store (a Gemm without C, QLoRA's Nf4Gemm: OpDef.accumulate)
  // and that nothing else uses takes the running sum: Gemm(a, b, C=sum) instead of Gemm + Add (fan-out of h into
  // q/k/v and LoRA A saves an Add each). They arrive in reverse graph order (the walk goes backwards) and are summed
  // in forward order: a LoRA projection's base GEMM (built before its LoRA term) takes the sum so far, and its LoRA
  // term (dy·B)·A takes the base's result, the pair a GPU plan runs as one dispatch whatever the base is (a Gemm,
  // QLoRA's Nf4Gemm: backends/webgpu/plan.ts gemmChains).
  const fusable = (c: Value): boolean => {
    const acc = c.node ? getOp(c.node.op).accumulate : undefined;
    return !!acc && acc.can(c.node!) && c.uses === 0 && c.node!.outputs.length === 1 && sameShape(c.shape, v.shape);
  };
  const dense = list.filter((c): c is Value => !('kind' in c));
  let sum: Value | null = null;
  for (const c of dense.filter((d) => !fusable(d))) sum = sum ? g.add(sum, c) : c;
  for (const c of dense.filter(fusable).reverse()) {
    const n = c.node!;
    sum = sum ? getOp(n.op).accumulate!.with(g, n, sum) : c; // the old node is pruned
  }
  let acc: Value | null = sum;
  for (const c of list) {
    if ('kind' in c) acc = g.scatterAdd(acc ?? g.zerosLike(v), c.indices, c.updates, c.axis);
  }
  list.splice(0, list.length, acc!); // memoise
  return acc;
}

/** Sums a gradient in a broadcast shape back to the input's shape. */
function unbroadcast(g: GraphBuilder, gv: Value, x: Value, n: Node): Value {
  if (gv.dtype !== x.dtype) throw new Error(`Gradient rule of ${n.op} gave ${gv.dtype} for a ${x.dtype} input (${n}).`);
  if (sameShape(gv.shape, x.shape)) return gv;
  const lead = gv.rank - x.rank;
  if (lead < 0) {
    // e.g. a scalar seed flowing into a [1]-shaped value
    return reshapeTo(g, g.expand(gv, x.shape, x), x);
  }
  const axes: number[] = [];
  for (let i = 0; i < gv.rank; i++) {
    if (i < lead) axes.push(i);
    else if (x.shape[i - lead] === 1 && gv.shape[i] !== 1) axes.push(i);
    else if (x.shape[i - lead] !== gv.shape[i]) {
      throw new Error(`Gradient ${shapeStr(gv.shape)} cannot be summed to input ${shapeStr(x.shape)} (${n}).`);
    }
  }
  if (axes.length === 0) return reshapeTo(g, gv, x);
  if (axes.every((a) => a < lead)) return g.reduceSum(gv, axes, false);
  return reshapeTo(g, g.reduceSum(gv, axes, true), x);
}
