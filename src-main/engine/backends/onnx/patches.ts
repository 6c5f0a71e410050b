/**
 * EP-specific graph rewrites for kernels that are placed on an EP but fail or compute something wrong
 * there. Applied by EngineSession.create just before encoding, so graph producers stay EP-agnostic.
 *
 * 1. WebGPU: a shader may bind only so many storage buffers (maxStorageBuffersPerShaderStage: 16 on
 *    lavapipe, 8 guaranteed by the WebGPU spec). ORT places a Split with 16+ outputs (or a Concat with
 *    16+ inputs) on the GPU and then fails at run time ("Too many storage buffers in shader. Current:
 *    17, Max is 16") — e.g. unpacking a flat LoRA parameter vector. Rewrite them as trees of Splits /
 *    Concats with at most `maxStorageBuffers` buffers each (default 8, safe on every adapter).
 *
 * 2. WebGPU, onnxruntime 1.30: SimplifiedLayerNormalization's optional 2nd output (inv_std_var,
 * 1/sqrt(mean(x²)+eps)) comes back holding mean(x) instead — the kernel is the LayerNormalization one,
 * whose 2nd output is the mean. Y is right. Measured: x = [1,2,3,4] gives 2.5 on WebGPU, 0.365 on CPU.
 * An RMSNorm backward that reuses that output trains wrongly on WebGPU. Rewrite: keep Y from the fused
 * node and recompute inv_std_var from x (Mul, ReduceMean, Add eps, Sqrt, Reciprocal: 5 nodes).
 *
 * 3. WebGPU, onnxruntime 1.30: ReduceLogSumExp is log(Σ exp(x)) without subtracting the maximum, so any
 * input above ~88.7 overflows exp in f32 and the result is +inf (the CPU EP's kernel is stable). Measured on
 * the Llama-3.2-1B shape: logits up to 290 gave a loss of Infinity on the WebGPU EP (f16 and f32 compute
 * alike: the loss is f32), 260.68 on the CPU EP. Rewrite: m = ReduceMax(x), Log(ReduceSum(Exp(x − m))) + m.
 */
import type { OnnxDataType, OnnxGraph, OnnxModel, OnnxNode, OnnxTensor } from '../../onnx/spec';
import { rawTensor } from '../../onnx/pack';
import type { EpName } from './session';

export interface PatchResult {
  model: OnnxModel;
  /** One line per rewrite, for logs. */
  applied: string[];
}

export interface PatchOptions {
  /** WebGPU storage buffers one shader may bind (inputs + outputs); 8 unless told. */
  maxStorageBuffers?: number;
}

export function patchForEp(model: OnnxModel, ep: EpName, opts: PatchOptions = {}): PatchResult {
  if (ep !== 'webgpu') return { model, applied: [] };
  const a = patchWideSplitConcat(model, Math.max(3, opts.maxStorageBuffers ?? 8));
  const b = patchSimplifiedLayerNormInvStd(a.model);
  const c = patchReduceLogSumExp(b.model);
  return { model: c.model, applied: [...a.applied, ...b.applied, ...c.applied] };
}

/** Consecutive groups for one tree level: as few as possible, at most `fan`, each ≤ fan when that suffices. */
function groups<T>(items: T[], fan: number): T[][] {
  const count = Math.min(fan, Math.ceil(items.length / fan));
  const size = Math.ceil(items.length / count);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function int64Values(t: OnnxTensor): number[] | undefined {
  if (t.type !== 'int64' || t.data.kind !== 'raw') return undefined;
  const b = t.data.bytes;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return Array.from({ length: b.byteLength / 8 }, (_, i) => Number(dv.getBigInt64(i * 8, true)));
}

function patchWideSplitConcat(model: OnnxModel, maxBuffers: number): PatchResult {
  const g = model.graph;
  const fan = maxBuffers - 1; // one buffer is the Split's input / the Concat's output
  const wide = (n: OnnxNode) => (n.domain ?? '') === '' &&
    ((n.op === 'Split' && n.outputs.length > fan) || (n.op === 'Concat' && n.inputs.length > fan));
  if (!g.nodes.some(wide)) return { model, applied: [] };
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const extraInits: OnnxTensor[] = [];
  const nodes: OnnxNode[] = [];
  const applied: string[] = [];
  let k = 0;
  for (const n of g.nodes) {
    if (!wide(n)) { nodes.push(n); continue; }
    const p = `__webgpu_tree${k++}`;
    let fresh = 0;
    const tmp = () => `${p}_t${fresh++}`;
    const axis = n.attributes?.axis;
    const axisAttr = { axis: axis ?? { type: 'int' as const, value: 0 } };
    const before = nodes.length;
    if (n.op === 'Concat') {
      // Concat(a, b, c, ...) = Concat(Concat(a..), Concat(..), ...)
      const build = (ins: string[], out: string): void => {
        if (ins.length <= fan) {
          nodes.push({ op: 'Concat', name: `${p}_c${nodes.length}`, inputs: ins, outputs: [out], attributes: axisAttr });
          return;
        }
        const parts = groups(ins, fan).map((gr) => {
          if (gr.length === 1) return gr[0]!;
          const t = tmp();
          build(gr, t);
          return t;
        });
        build(parts, out);
      };
      build(n.inputs, n.outputs[0]!);
    } else {
      const splitT = n.inputs[1] ? inits.get(n.inputs[1]) : undefined;
      const sizes = splitT ? int64Values(splitT) : undefined;
      if (!sizes || sizes.length !== n.outputs.length) {
        nodes.push(n);
        applied.push(`NOT patched Split ${n.name ?? ''} with ${n.outputs.length} outputs: its sizes are not an int64 initializer; it may fail on adapters binding fewer buffers`);
        continue;
      }
      // Split(x) -> [a, b, c, ...] = Split(x) -> [ab.., cd.., ...], then Split each group
      const build = (input: string, sz: number[], outs: string[]): void => {
        const name = `${p}_s${nodes.length}`;
        const splitName = `${name}_sizes`;
        if (outs.length <= fan) {
          extraInits.push(rawTensor(splitName, 'int64', [sz.length], sz));
          nodes.push({ op: 'Split', name, inputs: [input, splitName], outputs: outs, attributes: axisAttr });
          return;
        }
        const idx = groups(outs.map((_, i) => i), fan);
        const mids = idx.map((gr) => (gr.length === 1 ? outs[gr[0]!]! : tmp()));
        const sums = idx.map((gr) => gr.reduce((a, i) => a + sz[i]!, 0));
        extraInits.push(rawTensor(splitName, 'int64', [sums.length], sums));
        nodes.push({ op: 'Split', name, inputs: [input, splitName], outputs: mids, attributes: axisAttr });
        idx.forEach((gr, j) => {
          if (gr.length > 1) build(mids[j]!, gr.map((i) => sz[i]!), gr.map((i) => outs[i]!));
        });
      };
      build(n.inputs[0]!, sizes, n.outputs);
    }
    applied.push(`${n.op} ${n.name ?? ''} with ${n.op === 'Split' ? n.outputs.length + ' outputs' : n.inputs.length + ' inputs'}: ` +
      `rewritten as ${nodes.length - before} nodes of at most ${maxBuffers} GPU buffers each`);
  }
  return { model: { ...model, graph: { ...g, nodes, initializers: [...g.initializers, ...extraInits] } }, applied };
}

function patchSimplifiedLayerNormInvStd(model: OnnxModel): PatchResult {
  const g = model.graph;
  const targets = g.nodes.filter((n) => n.op === 'SimplifiedLayerNormalization' && (n.domain ?? '') === '' && (n.outputs[1] ?? '') !== '');
  if (targets.length === 0) return { model, applied: [] };
  const typeOf = valueTypes(g);
  const applied: string[] = [];
  const extraInits: OnnxTensor[] = [];
  const nodes: OnnxNode[] = [];
  let k = 0;
  for (const n of g.nodes) {
    if (!targets.includes(n)) { nodes.push(n); continue; }
    const x = n.inputs[0]!;
    const inv = n.outputs[1]!;
    const axisAttr = n.attributes?.axis;
    const axis = axisAttr?.type === 'int' ? axisAttr.value : -1;
    const type = typeOf(x);
    if (axis >= 0 || !type || !['float32', 'float16', 'float64'].includes(type)) {
      // Cannot rewrite without the rank / element type; leave it (the report says so).
      nodes.push(n);
      applied.push(`NOT patched ${n.name ?? 'SimplifiedLayerNormalization'}: needs a negative axis and a known float input type`);
      continue;
    }
    const epsAttr = n.attributes?.epsilon;
    const eps = epsAttr?.type === 'float' ? epsAttr.value : 1e-5;
    const p = `__webgpu_sln_inv${k++}`;
    const axes = Array.from({ length: -axis }, (_, i) => axis + i); // axis..-1
    // f16 inputs are squared and averaged in f32 (as the fused kernel does for Y): x² overflows f16 past
    // |x| = 256, which real checkpoints' residual streams reach, and 1/sqrt(inf) = 0 zeroed the gradient
    const f16 = type === 'float16';
    const xc = f16 ? `${p}_x32` : x;
    extraInits.push(rawTensor(`${p}_axes`, 'int64', [axes.length], axes), rawTensor(`${p}_eps`, f16 ? 'float32' : type, [], [eps]));
    nodes.push(
      { ...n, outputs: [n.outputs[0]!] },
      ...(f16 ? [{ op: 'Cast', name: `${p}_tof32`, inputs: [x], outputs: [xc], attributes: { to: { type: 'int' as const, value: 1 } } }] : []),
      // inv_std_var = 1 / sqrt(mean(x², axes ≥ axis) + eps), keepdims like the fused op
      { op: 'Mul', name: `${p}_sq`, inputs: [xc, xc], outputs: [`${p}_x2`] },
      { op: 'ReduceMean', name: `${p}_mean`, inputs: [`${p}_x2`, `${p}_axes`], outputs: [`${p}_ms`], attributes: { keepdims: { type: 'int', value: 1 } } },
      { op: 'Add', name: `${p}_addeps`, inputs: [`${p}_ms`, `${p}_eps`], outputs: [`${p}_mse`] },
      { op: 'Sqrt', name: `${p}_sqrt`, inputs: [`${p}_mse`], outputs: [`${p}_rms`] },
      { op: 'Reciprocal', name: `${p}_recip`, inputs: [`${p}_rms`], outputs: [f16 ? `${p}_inv32` : inv] },
      ...(f16 ? [{ op: 'Cast', name: `${p}_tof16`, inputs: [`${p}_inv32`], outputs: [inv], attributes: { to: { type: 'int' as const, value: 10 } } }] : []),
    );
    applied.push(`SimplifiedLayerNormalization ${n.name ?? ''}: inv_std_var recomputed (WebGPU kernel returns the mean there)`);
  }
  return { model: { ...model, graph: { ...g, nodes, initializers: [...g.initializers, ...extraInits] } }, applied };
}

function patchReduceLogSumExp(model: OnnxModel): PatchResult {
  const g = model.graph;
  if (!g.nodes.some((n) => n.op === 'ReduceLogSumExp' && (n.domain ?? '') === '')) return { model, applied: [] };
  const applied: string[] = [];
  const nodes: OnnxNode[] = [];
  let k = 0;
  for (const n of g.nodes) {
    if (n.op !== 'ReduceLogSumExp' || (n.domain ?? '') !== '') { nodes.push(n); continue; }
    const p = `__webgpu_lse${k++}`;
    const [x, axes] = [n.inputs[0]!, n.inputs[1] ?? ''];
    const keepdims = n.attributes?.keepdims?.type === 'int' ? n.attributes.keepdims.value : 1;
    const keep = { keepdims: { type: 'int' as const, value: 1 } };
    const red = (op: string, input: string, out: string) => ({ op, name: `${p}_${op}`, inputs: axes ? [input, axes] : [input], outputs: [out], attributes: keep });
    const y = n.outputs[0]!;
    nodes.push(
      red('ReduceMax', x, `${p}_m`),
      { op: 'Sub', name: `${p}_sub`, inputs: [x, `${p}_m`], outputs: [`${p}_d`] },
      { op: 'Exp', name: `${p}_exp`, inputs: [`${p}_d`], outputs: [`${p}_e`] },
      red('ReduceSum', `${p}_e`, `${p}_s`),
      { op: 'Log', name: `${p}_log`, inputs: [`${p}_s`], outputs: [`${p}_l`] },
      { op: 'Add', name: `${p}_add`, inputs: [`${p}_l`, `${p}_m`], outputs: [keepdims ? y : `${p}_y`] },
    );
    if (!keepdims) nodes.push({ op: 'Squeeze', name: `${p}_squeeze`, inputs: axes ? [`${p}_y`, axes] : [`${p}_y`], outputs: [y] });
    applied.push(`ReduceLogSumExp ${n.name ?? ''}: max-subtracted (the WebGPU kernel overflows past 88.7)`);
  }
  return { model: { ...model, graph: { ...g, nodes } }, applied };
}

/** Ops whose output type is not their first input's. */
const FIXED_OUTPUT: Record<string, OnnxDataType> = {
  Shape: 'int64', Size: 'int64', ArgMax: 'int64', ArgMin: 'int64', NonZero: 'int64',
  Equal: 'bool', Less: 'bool', Greater: 'bool', LessOrEqual: 'bool', GreaterOrEqual: 'bool', Not: 'bool',
  And: 'bool', Or: 'bool', Xor: 'bool', IsNaN: 'bool', IsInf: 'bool',
};
const CAST_TO: Record<number, OnnxDataType> = { 1: 'float32', 10: 'float16', 11: 'float64', 6: 'int32', 7: 'int64', 9: 'bool' };

/** Element type of a value, by walking back through producers (enough for float activations). */
function valueTypes(g: OnnxGraph): (name: string) => OnnxDataType | undefined {
  const known = new Map<string, OnnxDataType>();
  for (const v of g.inputs) known.set(v.name, v.type);
  for (const t of g.initializers) known.set(t.name, t.type);
  const producer = new Map<string, OnnxNode>();
  for (const n of g.nodes) for (const o of n.outputs) producer.set(o, n);
  const resolve = (name: string, depth: number): OnnxDataType | undefined => {
    const k = known.get(name);
    if (k || depth > 10_000) return k;
    const n = producer.get(name);
    if (!n) return undefined;
    let t: OnnxDataType | undefined;
    if (n.op === 'Cast') {
      const to = n.attributes?.to;
      t = to?.type === 'int' ? CAST_TO[to.value] : undefined;
    } else if (n.op === 'CastLike') t = resolve(n.inputs[1]!, depth + 1);
    else if (n.op === 'Constant') {
      const v = n.attributes?.value;
      t = v?.type === 'tensor' ? v.value.type : n.attributes?.value_floats ? 'float32' : n.attributes?.value_ints ? 'int64' : undefined;
    } else t = FIXED_OUTPUT[n.op] ?? (n.op === 'Where' ? resolve(n.inputs[1]!, depth + 1) : resolve(n.inputs[0]!, depth + 1));
    if (t) known.set(name, t);
    return t;
  };
  return (name) => resolve(name, 0);
}
