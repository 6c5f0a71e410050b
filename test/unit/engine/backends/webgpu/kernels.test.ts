/**
 * Every gradient-check case (forward + backward graph, float32) on Lathe's own GPU backend (Dawn on
 * lavapipe in CI) against the same graph on onnxruntime's CPU EP. Together the cases use every IR op
 * that has a gradient rule, so every kernel is compared with the CPU reference here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { hostTensor, type HostTensor } from '../../../../../src-main/engine/runtime/tensor';
import { GpuProgram, closeGpu, openGpu, type GpuContext } from '../../../../../src-main/engine/backends/webgpu';
import { CASES, type Case, gen } from '../../autodiff-cases';
import { compile, rng, type Feed } from '../../autodiff-run';

function build(c: Case): { g: GraphBuilder; ys: Value[] } {
  const g = new GraphBuilder();
  const xs = c.inputs.map((inp, i) => g.input(`x${i}`, inp.dtype ?? 'float32', inp.shape));
  const built = c.build(g, xs);
  const ys = Array.isArray(built) ? built : [built];
  const cots = ys.map((y, k) => g.input(`r${k}`, y.dtype, y.shape));
  const wrt = xs.filter((x) => x.dtype === 'float32');
  const res = gradients(g, ys.map((y, k): [Value, Value] => [y, cots[k]!]), wrt);
  ys.forEach((y, k) => g.output(`y${k}`, y));
  res.grads.forEach((gv, k) => g.output(`g${k}`, gv!));
  return { g, ys };
}

let gpu: GpuContext;
beforeAll(async () => {
  // No silent skip: a machine without an adapter fails here, saying what to install.
  gpu = await openGpu();
}, 60_000);
afterAll(() => closeGpu());

describe('GPU backend kernels vs the CPU EP (float32, forward + backward of every gradient case)', () => {
  const cases = CASES.map((c, k) => ({ c, k })).filter(({ c }) => !c.notOnGpu && !c.gpuOnly);
  for (const { c, k } of cases) {
    it(`${c.op}${c.label ? ` (${c.label})` : ''}`, async () => {
      const r = rng(4242 + k);
      const data = c.inputs.map((inp) => gen(r, inp));
      const { g, ys } = build(c);
      const cot = ys.map((y) => gen(r, { shape: y.shape as number[] }));
      const feeds: Record<string, Feed> = {};
      const host: Record<string, HostTensor> = {};
      c.inputs.forEach((inp, i) => {
        const dtype = inp.dtype ?? 'float32';
        feeds[`x${i}`] = { dtype, shape: inp.shape, data: data[i]! };
        host[`x${i}`] = hostTensor(dtype, inp.shape, data[i]!);
      });
      ys.forEach((y, j) => {
        feeds[`r${j}`] = { dtype: 'float32', shape: y.shape as number[], data: cot[j]! };
        host[`r${j}`] = hostTensor('float32', y.shape as number[], cot[j]!);
      });
      const cpu = await compile(g, 'disabled');
      const want = await cpu.run(feeds);
      await cpu.release();
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: g.outputs.map((o) => o.name) }, { gpu });
      try {
        const got = await prog.step(host);
        const worst: string[] = [];
        for (const [name, w] of Object.entries(want)) {
          const a = Array.from(got[name]!.data as Float32Array, Number);
          const scale = Math.max(1e-6, ...Array.from(w, Math.abs));
          const d = Math.max(...Array.from(w, (x, i) => Math.abs(x - a[i]!)));
          worst.push(`${name} ${(d / scale).toExponential(1)}`);
          expect(d / scale, `${name}: max |gpu − cpu| ${d} (scale ${scale})\ncpu ${Array.from(w)}\ngpu ${a}`).toBeLessThan(2e-6);
        }
        console.log(`${c.op}${c.label ? ` (${c.label})` : ''}: ${prog.info.dispatches} dispatches; ${worst.join(', ')}`);
      } finally {
        await prog.dispose();
      }
    }, 60_000);
  }
});
