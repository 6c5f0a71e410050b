/**
 * ONNX lowering of a fused op as its decomposition (JAX style: a fused op is one IR node for the GPU
 * backend's dedicated kernel, and the same IR ops it stands for everywhere else). `build` writes the
 * decomposition with the ordinary builder on a scratch graph whose inputs mirror the node's inputs; each
 * scratch node is then lowered by its own op's lowering into the enclosing model. Constants of the
 * decomposition become ONNX Constant nodes.
 */
import { GraphBuilder, type Value } from '../graph';
import { getOp, type LowerCtx } from './registry';

export function lowerAsDecomposition(c: LowerCtx, build: (g: GraphBuilder, x: (Value | null)[]) => (Value | null)[]): void {
  const g = new GraphBuilder();
  const x = c.node.inputs.map((v, i) => (v ? g.input(`x${i}`, v.dtype, v.shape) : null));
  const outs = build(g, x);
  if (outs.length !== c.node.outputs.length) throw new Error(`decomposition gave ${outs.length} outputs for ${c.node.outputs.length}`);
  const names = new Map<number, string>();
  x.forEach((v, i) => { if (v) names.set(v.id, c.in(i)); });
  const pending: { from: Value; to: string }[] = [];
  outs.forEach((v, k) => {
    const to = c.out(k);
    if (!to) return;
    if (!v) throw new Error(`decomposition has no output ${k}`);
    if (!v.node || names.has(v.id)) pending.push({ from: v, to }); // an input or a constant: Identity below
    else names.set(v.id, to);
  });
  const nameOf = (v: Value): string => {
    let s = names.get(v.id);
    if (s) return s;
    s = c.tmp(`d${v.id}`);
    names.set(v.id, s);
    if (v.constData) {
      if (v.constData.kind !== 'raw') throw new Error('a decomposition cannot hold external weights');
      c.emit('Constant', [], [s], { value: { type: 'tensor', value: { name: s, type: v.dtype, dims: v.shape as number[], data: { kind: 'raw', bytes: v.constData.bytes } } } });
    }
    return s;
  };
  for (const n of g.nodes) {
    const def = getOp(n.op);
    def.lower({
      node: n,
      in: (i) => (n.inputs[i] ? nameOf(n.inputs[i]!) : ''),
      out: (i) => nameOf(n.outputs[i]!),
      ints: c.ints,
      scalar: c.scalar,
      tmp: c.tmp,
      emit: c.emit,
    });
  }
  for (const p of pending) c.emit('Identity', [nameOf(p.from)], [p.to]);
}
