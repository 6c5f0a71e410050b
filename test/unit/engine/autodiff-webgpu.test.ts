/**
 * Every gradient-check case (forward + backward graph) on the WebGPU EP with CPU fallback disabled,
 * in float32 and float16, against the CPU EP in float32. Proves the rules' ops all run on the GPU
 * and agree there (this is how the SimplifiedLayerNormalization output bug was found).
 * Needs a WebGPU adapter: Mesa >= 25 lavapipe on machines without a GPU.
 */
import * as ort from 'onnxruntime-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../src-main/engine/graph/graph';
import { gradients } from '../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../src-main/engine/backends/onnx/lower';
import { encodeModel } from '../../../src-main/engine/onnx/encode';
import { fromFloat16, toFloat16 } from '../../../src-main/engine/onnx/pack';
import { ensureXdgRuntimeDir } from '../../../src-main/engine/runtime/env';
import type { DType } from '../../../src-main/engine/graph/types';
import { CASES, type Case, gen } from './autodiff-cases';
import { rng } from './autodiff-run';

function build(c: Case, dt: 'float32' | 'float16'): { bytes: Uint8Array; ys: Value[] } {
  const g = new GraphBuilder();
  const xs = c.inputs.map((inp, i) => g.input(`x${i}`, inp.dtype ?? dt, inp.shape));
  const built = c.build(g, xs);
  const ys = Array.isArray(built) ? built : [built];
  const cots = ys.map((y, k) => g.input(`r${k}`, y.dtype, y.shape));
  const wrt = xs.filter((x) => x.dtype === dt);
  const res = gradients(g, ys.map((y, k): [Value, Value] => [y, cots[k]!]), wrt);
  ys.forEach((y, k) => g.output(`y${k}`, y));
  res.grads.forEach((gv, k) => g.output(`g${k}`, gv!));
  return { bytes: encodeModel(lowerGraph(g).model), ys };
}

function tensor(dtype: DType, shape: number[], data: number[]): ort.Tensor {
  switch (dtype) {
    case 'float32': return new ort.Tensor('float32', Float32Array.from(data), shape);
    case 'float16': return new ort.Tensor('float16', toFloat16(data), shape);
    case 'int32': return new ort.Tensor('int32', Int32Array.from(data), shape);
    case 'int64': return new ort.Tensor('int64', BigInt64Array.from(data, (v) => BigInt(v)), shape);
    case 'bool': return new ort.Tensor('bool', Uint8Array.from(data), shape);
    default: throw new Error(`no ${dtype} feeds here`);
  }
}

const numbers = (t: ort.Tensor): number[] =>
  t.type === 'float16' ? Array.from(fromFloat16(t.data as Uint16Array)) : Array.from(t.data as Float32Array, Number);

async function run(bytes: Uint8Array, ep: 'cpu' | 'webgpu', feeds: Record<string, ort.Tensor>): Promise<Record<string, number[]>> {
  const s = await ort.InferenceSession.create(bytes, {
    executionProviders: [ep],
    ...(ep === 'webgpu' ? { extra: { session: { disable_cpu_ep_fallback: '1' } } } : {}),
  });
  try {
    const out = await s.run(feeds);
    const res: Record<string, number[]> = {};
    for (const [k, t] of Object.entries(out)) res[k] = numbers(t);
    return res;
  } finally {
    await s.release();
  }
}

describe('gradient graphs on the WebGPU EP (no CPU fallback) vs the CPU EP', () => {
  beforeAll(() => ensureXdgRuntimeDir());
  const gpuCases = CASES.map((c, k) => ({ c, k })).filter(({ c }) => !c.notOnGpu);
  for (const { c, k } of gpuCases) {
    it(`${c.op}${c.label ? ` (${c.label})` : ''}`, async () => {
      const r = rng(777 + k);
      const data = c.inputs.map((inp) => gen(r, inp));
      const ref32 = build(c, 'float32');
      const cot = ref32.ys.map((y) => gen(r, { shape: y.shape as number[] }));
      const feeds = (dt: 'float32' | 'float16', ys: Value[]): Record<string, ort.Tensor> => {
        const f: Record<string, ort.Tensor> = {};
        c.inputs.forEach((inp, i) => (f[`x${i}`] = tensor(inp.dtype ?? dt, inp.shape, data[i]!)));
        ys.forEach((y, j) => (f[`r${j}`] = tensor(y.dtype, y.shape as number[], cot[j]!)));
        return f;
      };
      const cpu = await run(ref32.bytes, 'cpu', feeds('float32', ref32.ys));
      const worst: string[] = [];
      for (const [dt, tol] of [['float32', c.gpuTol32 ?? 1e-4], ['float16', 3e-2]] as const) {
        const m = dt === 'float32' ? ref32 : build(c, dt);
        const gpu = await run(m.bytes, 'webgpu', feeds(dt, m.ys));
        for (const [name, want] of Object.entries(cpu)) {
          const got = gpu[name]!;
          const scale = Math.max(1e-3, ...want.map(Math.abs));
          const d = Math.max(...want.map((w, i) => Math.abs(w - got[i]!)));
          worst.push(`${dt} ${name} ${(d / scale).toExponential(1)}`);
          expect(d / scale, `${dt} output ${name}: max |webgpu − cpu| ${d} (scale ${scale})`).toBeLessThan(tol);
        }
      }
      console.log(`${c.op}${c.label ? ` (${c.label})` : ''}: ${worst.join(', ')}`);
    });
  }
});
