/**
 * IR -> OnnxModel (opset 21). Deterministic: the same graph gives the same model, byte for byte
 * once encoded (names come from value ids and a running node counter, initializers in first-use order).
 * Only nodes that feed the graph outputs are emitted. Named weights keep their ConstData: raw bytes
 * or an external-file reference (e.g. straight into a safetensors file, no copy).
 */
import type { OnnxAttribute, OnnxModel, OnnxNode, OnnxTensor, OnnxValueInfo } from '../../onnx/spec';
import { type GraphBuilder, type Node, type Value, encodeNumbers } from '../../graph/graph';
import { getOp, type LowerCtx } from '../../graph/ops';
import type { DType } from '../../graph/types';

export interface LowerOptions {
  name?: string;
  /** Default ONNX opset (21). */
  opset?: number;
}

export interface LowerResult {
  model: OnnxModel;
  /** ONNX nodes emitted, and how many per op type. */
  nodeCount: number;
  byOp: Record<string, number>;
}

/** Domains of ops that are not in the default ONNX domain at the opset we target. */
const DOMAIN_OF: Record<string, string> = {};

export function lowerGraph(g: GraphBuilder, opts: LowerOptions = {}): LowerResult {
  if (g.outputs.length === 0) throw new Error('The graph has no outputs: call g.output(name, value) first.');

  // live nodes: backwards from the outputs
  const live = new Set<Node>();
  const stack = g.outputs.map((o) => o.value);
  const seen = new Set<number>();
  while (stack.length) {
    const v = stack.pop()!;
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    if (v.node && !live.has(v.node)) {
      live.add(v.node);
      for (const u of v.node.inputs) if (u) stack.push(u);
    }
  }
  const used = new Set<number>(); // values consumed by a live node or an output
  for (const n of live) for (const u of n.inputs) if (u) used.add(u.id);
  for (const o of g.outputs) used.add(o.value.id);

  const names = new Map<number, string>();
  const taken = new Set<string>();
  const claim = (v: Value, name: string): void => {
    if (taken.has(name)) throw new Error(`Two graph values are both named '${name}'.`);
    taken.add(name);
    names.set(v.id, name);
  };
  for (const v of g.inputs) claim(v, v.name!);
  for (const v of g.consts) if (v.name && seen.has(v.id)) claim(v, v.name);

  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  const intInits = new Map<string, string>();
  let counter = 0;
  const fresh = (hint: string): string => {
    let s: string;
    do s = `${hint}_${counter++}`; while (taken.has(s));
    taken.add(s);
    return s;
  };

  // outputs take their public names when the value is produced by a node and not already named
  const outputAliases: { name: string; value: Value }[] = [];
  for (const o of g.outputs) {
    if (o.value.node && !names.has(o.value.id)) claim(o.value, o.name);
    else outputAliases.push(o);
  }
  const nameOf = (v: Value): string => {
    let s = names.get(v.id);
    if (!s) {
      s = fresh(`t${v.id}`);
      names.set(v.id, s);
    }
    return s;
  };
  const constInit = (v: Value): void => {
    if (!v.constData) return;
    if (v.constData.kind === 'external' && v.constData.stored) {
      throw new Error(`Weight ${v.name} is referenced as ${v.constData.stored} in its file, which only the GPU backend reads; build ONNX graphs without WeightSource.bf16InPlace.`);
    }
    const name = nameOf(v);
    initializers.push({
      name, type: v.dtype, dims: v.shape as number[],
      data: v.constData.kind === 'raw' ? { kind: 'raw', bytes: v.constData.bytes } : { ...v.constData },
    });
  };
  const initialized = new Set<number>();
  const ensureConst = (v: Value): void => {
    if (v.constData && !initialized.has(v.id)) {
      initialized.add(v.id);
      constInit(v);
    }
  };

  let domains = new Set<string>();
  for (const n of g.nodes) {
    if (!live.has(n)) continue;
    const def = getOp(n.op);
    for (const u of n.inputs) if (u) ensureConst(u);
    const ctx: LowerCtx = {
      node: n,
      in: (i) => {
        const u = n.inputs[i];
        return u ? nameOf(u) : '';
      },
      out: (i) => {
        const o = n.outputs[i]!;
        if (i > 0 && def.optionalOutputs && !used.has(o.id)) return '';
        return nameOf(o);
      },
      ints: (values) => {
        const key = values.join(',');
        let s = intInits.get(key);
        if (!s) {
          s = fresh(`i64_${values.length}`);
          intInits.set(key, s);
          initializers.push({ name: s, type: 'int64', dims: [values.length], data: { kind: 'raw', bytes: encodeNumbers(values, 'int64') } });
        }
        return s;
      },
      scalar: (value, dtype: DType) => {
        const key = `${dtype}:${value}`;
        let s = intInits.get(key);
        if (!s) {
          s = fresh(`c_${dtype}`);
          intInits.set(key, s);
          initializers.push({ name: s, type: dtype, dims: [], data: { kind: 'raw', bytes: encodeNumbers([value], dtype) } });
        }
        return s;
      },
      tmp: (hint) => fresh(hint),
      emit: (op, inputs, outputs, attrs, domain) => {
        const on: OnnxNode = { op, name: `n${nodes.length}_${op}`, inputs, outputs };
        const d = domain ?? DOMAIN_OF[op];
        if (d) {
          on.domain = d;
          domains.add(d);
        }
        if (attrs && Object.keys(attrs).length) on.attributes = sortKeys(attrs);
        nodes.push(on);
      },
    };
    try {
      def.lower(ctx);
    } catch (e) {
      throw new Error(`Lowering ${n} failed: ${(e as Error).message}`);
    }
  }
  for (const o of outputAliases) {
    ensureConst(o.value);
    taken.add(o.name);
    nodes.push({ op: 'Identity', name: `n${nodes.length}_Identity`, inputs: [nameOf(o.value)], outputs: [o.name] });
  }
  const info = (v: Value, name: string): OnnxValueInfo => ({ name, type: v.dtype, shape: [...v.shape] });
  const byOp: Record<string, number> = {};
  for (const n of nodes) byOp[n.op] = (byOp[n.op] ?? 0) + 1;
  domains = new Set([...domains].sort());
  const model: OnnxModel = {
    graph: {
      name: opts.name ?? 'lathe',
      inputs: g.inputs.map((v) => info(v, v.name!)),
      outputs: g.outputs.map((o) => info(o.value, o.name)),
      nodes,
      initializers,
    },
    opsets: [{ domain: '', version: opts.opset ?? 21 }, ...[...domains].map((domain) => ({ domain, version: 1 }))],
    producer: 'lathe',
  };
  return { model, nodeCount: nodes.length, byOp };
}

function sortKeys(a: Record<string, OnnxAttribute>): Record<string, OnnxAttribute> {
  const out: Record<string, OnnxAttribute> = {};
  for (const k of Object.keys(a).sort()) out[k] = a[k]!;
  return out;
}
