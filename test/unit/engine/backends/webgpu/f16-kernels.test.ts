/**
 * The kernels with f16 storage: gradient-check cases run in float16 (each float32 input cast to f16, the op
 * in f16, each output widened back to f32; gradients flow back through the casts), on Lathe's GPU backend
 * with the adapter's shader-f16 (activations in array<f16>, f32 math inside the kernels) against the same
 * graph on the CPU EP, and against the float32 graph (f16 precision). Note: the CPU EP has f16 kernels for
 * few ops; onnxruntime then inserts casts and removes cast pairs, so its "f16 graph" computes most of these
 * ops in f32 (its outputs equal the f32 graph's here). What makes the GPU side f16 is checked directly: the
 * plan stores the f16 tensors as array<f16>, and every f16 output holds exact f16 values.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { hostTensor, type HostTensor } from '../../../../../src-main/engine/runtime/tensor';
import { GpuProgram, capabilityReport, closeGpu, DAWN_TOGGLES, openGpu, planGraph, type GpuContext } from '../../../../../src-main/engine/backends/webgpu';
import { float16BitsToFloat32, float32ToFloat16Bits } from '../../../../../src-main/engine/onnx/pack';
import { CASES, type Case, gen } from '../../autodiff-cases';
import { compile, rng, type Feed } from '../../autodiff-run';

/** The case's graph computed in `dt`: float32 inputs cast to dt, outputs (and hence cotangents) widened back. */
function build(c: Case, dt: 'float32' | 'float16'): GraphBuilder {
  const g = new GraphBuilder();
  const xs = c.inputs.map((inp, i) => g.input(`x${i}`, inp.dtype ?? 'float32', inp.shape));
  const xd = xs.map((x) => (x.dtype === 'float32' && dt === 'float16' ? g.cast(x, 'float16') : x));
  const built = c.build(g, xd);
  const ys = (Array.isArray(built) ? built : [built]).map((y) => (y.dtype === 'float16' ? g.cast(y, 'float32') : y));
  const cots = ys.map((y, k) => g.input(`r${k}`, y.dtype, y.shape));
  const wrt = xs.filter((x) => x.dtype === 'float32');
  const res = gradients(g, ys.map((y, k): [Value, Value] => [y, cots[k]!]), wrt);
  ys.forEach((y, k) => g.output(`y${k}`, y));
  res.grads.forEach((gv, k) => g.output(`g${k}`, gv!));
  return g;
}

/**
 * The cases run in f16: the ops of an f16 train step (GEMMs, norms and their fused backwards, flash attention,
 * elementwise, reductions, shape ops, RoPE). Left out: cases whose CPU EP graph has no f16 kernel
 * (ScatterElements with add, GatherElements' backward), Erf/Gelu(erf) (CPU EP f16 Erf missing), Softplus
 * (no gradient rule in f16 on the CPU EP), float64 and f16 round-trip casts.
 */
const F16_OPS = new Set(['Add', 'Sub', 'Mul', 'Div', 'Neg', 'Exp', 'Tanh', 'Sigmoid', 'Relu', 'MatMul', 'Gemm', 'Transpose', 'Reshape',
  'Concat', 'Split', 'Slice', 'Expand', 'ReduceSum', 'ReduceMean', 'ReduceMax', 'Softmax', 'SimplifiedLayerNormalization',
  'LayerNormalization', 'FlashAttention', 'RotaryEmbedding', 'Gelu']);

let gpu: GpuContext;
beforeAll(async () => { gpu = await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GPU kernels with f16 storage vs the CPU EP\'s f16 graph (forward + backward)', () => {
  it('the adapter offers shader-f16, and f16 plans use array<f16> (half the bytes of the f16r emulation)', () => {
    // lavapipe's Dawn offers it (docs: onnxruntime-node.md); without it plans fall back to f16r
    expect(gpu.report.features).toContain('shader-f16');
    // Dawn parsed the comma-separated toggle list (DAWN_TOGGLES, with vulkan_enable_f16_on_nvidia): lavapipe offers
    // this experimental feature only under allow_unsafe_apis, which the list carries beside the NVIDIA f16 toggle
    expect(DAWN_TOGGLES).toContain('vulkan_enable_f16_on_nvidia');
    expect(gpu.report.features).toContain('chromium-experimental-sampling-resource-table');
    const c = CASES.find((x) => x.op === 'MatMul')!;
    const g = build(c, 'float16');
    const outputs = g.outputs.map((o) => o.name);
    const h = planGraph(g, { outputs, shaderF16: true }), r = planGraph(g, { outputs, shaderF16: false });
    expect(h.dispatches.some((d) => d.wgsl.includes('enable f16;') && d.wgsl.includes('array<f16>'))).toBe(true);
    expect(r.dispatches.some((d) => d.wgsl.includes('array<f16>'))).toBe(false);
    expect(h.bytes.temp).toBeLessThan(r.bytes.temp);
  });

  it('the report says how f16 activations are stored (array<f16>, or emulated without shader-f16)', () => {
    const a = { vendor: 'v', architecture: 'a', device: 'd', description: 'x' };
    expect(capabilityReport(a, false, ['shader-f16'], gpu.report.limits, []).notes.join('\n')).toMatch(/f16 compute: activations stored as array<f16>/);
    expect(capabilityReport(a, false, [], gpu.report.limits, []).notes.join('\n')).toMatch(/f16 compute: .*emulated: the adapter does not offer shader-f16/);
  });

  it('f16 outputs read back: a computed f16 tensor (f16r) and an f16 view at an odd offset into an array<f16> buffer', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [3, 5]);
    const h = g.mul(g.cast(x, 'float16'), g.cast(x, 'float16')); // [3, 5] f16, a temporary (array<f16>)
    const y = g.slice(h, [1, 0], [3, 5]); // elements 5..14: a view starting mid-word
    g.output('h2', g.add(h, h));
    g.output('y', y);
    g.output('yw', g.cast(y, 'float32'));
    const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['h2', 'y', 'yw'] }, { gpu });
    try {
      expect(prog.plan.outputs.get('y')!.ref.storage).toBe('h16');
      expect(prog.plan.outputs.get('y')!.ref.offset).toBe(5);
      expect(prog.plan.outputs.get('h2')!.ref.storage).toBe('f16r');
      const xs = Float32Array.from({ length: 15 }, (_, i) => 0.1 + i / 7);
      const got = await prog.step({ x: hostTensor('float32', [3, 5], xs) });
      const r16 = (v: number) => float16BitsToFloat32(float32ToFloat16Bits(v));
      const sq = Array.from(xs, (v) => r16(r16(v) * r16(v)));
      expect(got.y!.type).toBe('float16');
      expect(Array.from(got.y!.data as Uint16Array, float16BitsToFloat32)).toEqual(sq.slice(5));
      expect(Array.from(got.yw!.data as Float32Array)).toEqual(sq.slice(5));
      expect(Array.from(got.h2!.data as Uint16Array, float16BitsToFloat32)).toEqual(sq.map((v) => r16(v + v)));
    } finally {
      await prog.dispose();
    }
  });

  for (const shaderF16 of [true, false]) {
    it(`f16 rounding is exact (${shaderF16 ? 'array<f16>' : 'f16r emulation'}): stores and fused-chain intermediates round to nearest f16, subnormals kept`, async () => {
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [8]);
      const c = g.input('c', 'float32', [8]);
      const h = g.cast(x, 'float16'), hc = g.cast(c, 'float16');
      const m = g.mul(h, h); // stored (two readers)
      const z = g.add(g.mul(m, hc), h); // one fused kernel: m·c is an f16 intermediate
      g.output('m', g.cast(m, 'float32'));
      g.output('z', g.cast(z, 'float32'));
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['m', 'z'] }, { gpu, shaderF16 });
      try {
        expect(prog.plan.byKernel['Fused(Add)']).toBe(1);
        const xs = Float32Array.from([3e-3, 5e-4, 1.0009765625, 0.33333, 200.7, 7e-3, 1.5, 0.1]);
        const cs = Float32Array.from([1.3, 0.77, 1.0009765625, -3.1, 0.5, 1e-2, 3, -0.1]);
        const got = await prog.step({ x: hostTensor('float32', [8], xs), c: hostTensor('float32', [8], cs) });
        const r16 = (v: number) => float16BitsToFloat32(float32ToFloat16Bits(v));
        const f = Math.fround;
        const mw = Array.from(xs, (v) => r16(f(r16(v) * r16(v))));
        const zw = mw.map((mv, i) => r16(f(r16(f(mv * r16(cs[i]!))) + r16(xs[i]!))));
        expect(Array.from(got.m!.data as Float32Array)).toEqual(mw);
        expect(Array.from(got.z!.data as Float32Array)).toEqual(zw);
      } finally {
        await prog.dispose();
      }
    });
  }

  it('an f16 store past f16\'s range gives ±inf and NaN stays NaN (the non-finite guard of the loss-scaled backward needs them)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [7]);
    const h = g.cast(x, 'float16');
    g.output('y', g.cast(g.add(h, h), 'float32')); // a computed (array<f16>) tensor, widened by a view
    const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['y'] }, { gpu });
    try {
      const xs = Float32Array.from([4e4, -4e4, 65000, 32759, NaN, 1e-8, -2.5]);
      const y = Array.from((await prog.step({ x: hostTensor('float32', [7], xs) })).y!.data as Float32Array);
      // 32759 -> 32752 (f16), doubled 65504: the largest f16; 1e-8 -> 0 (under f16's smallest subnormal 6e-8, to nearest)
      expect(y).toEqual([Infinity, -Infinity, Infinity, 65504, NaN, 0, -5]);
    } finally {
      await prog.dispose();
    }
  });

  const cases = CASES.map((c, k) => ({ c, k })).filter(({ c }) => F16_OPS.has(c.op) && !c.notOnGpu && !c.gpuOnly && c.inputs.some((i) => (i.dtype ?? 'float32') === 'float32'));
  for (const { c, k } of cases) {
    it(`${c.op}${c.label ? ` (${c.label})` : ''}`, async () => {
      const r = rng(4242 + k);
      const data = c.inputs.map((inp) => gen(r, inp));
      const g16 = build(c, 'float16'), g32 = build(c, 'float32');
      const cot = g16.outputs.filter((o) => o.name.startsWith('y')).map((o) => gen(r, { shape: o.value.shape as number[] }));
      const feeds: Record<string, Feed> = {};
      const host: Record<string, HostTensor> = {};
      c.inputs.forEach((inp, i) => {
        const dtype = inp.dtype ?? 'float32';
        feeds[`x${i}`] = { dtype, shape: inp.shape, data: data[i]! };
        host[`x${i}`] = hostTensor(dtype, inp.shape, data[i]!);
      });
      g16.outputs.filter((o) => o.name.startsWith('y')).forEach((o, j) => {
        feeds[`r${j}`] = { dtype: 'float32', shape: o.value.shape as number[], data: cot[j]! };
        host[`r${j}`] = hostTensor('float32', o.value.shape as number[], cot[j]!);
      });
      const run = async (g: GraphBuilder) => {
        const s = await compile(g, 'disabled');
        try { return await s.run(feeds); } finally { await s.release(); }
      };
      const want16 = await run(g16), want32 = await run(g32);
      const prog = await GpuProgram.create({ graph: g16, state: [], fetch: g16.outputs.map((o) => o.name) }, { gpu });
      try {
        expect(prog.plan.dispatches.some((d) => d.wgsl.includes('array<f16>'))).toBe(true);
        const got = await prog.step(host);
        // the outputs widened from f16 hold f16 values (what the GPU stored), not f32 ones
        for (const o of g16.outputs.filter((x) => x.value.node?.op === 'Cast' && x.value.node.inputs[0]!.dtype === 'float16')) {
          const a = got[o.name]!.data as Float32Array;
          expect(a.every((x) => float16BitsToFloat32(float32ToFloat16Bits(x)) === x), `${o.name} holds non-f16 values`).toBe(true);
        }
        const worst: string[] = [];
        for (const [name, w16] of Object.entries(want16)) {
          const a = Array.from(got[name]!.data as Float32Array, Number);
          const e = (w: Float64Array) => {
            const scale = Math.max(1e-3, ...Array.from(w, Math.abs));
            return Math.max(...Array.from(w, (x, i) => Math.abs(x - a[i]!))) / scale;
          };
          const e16 = e(w16), e32 = e(want32[name]!);
          worst.push(`${name} ${e16.toExponential(1)} (f32 ${e32.toExponential(1)})`);
          // f16 precision (a rounding is ≤ 2⁻¹¹ = 4.9e-4 relative; a gradient passes several): measured ≤ 3e-3
          expect(e16, `${name}: gpu vs cpu f16\ncpu ${Array.from(w16)}\ngpu ${a}`).toBeLessThan(1e-2);
          expect(e32, `${name}: gpu f16 vs cpu f32`).toBeLessThan(1e-2);
        }
        console.log(`f16 ${c.op}${c.label ? ` (${c.label})` : ''}: ${worst.join(', ')}`);
      } finally {
        await prog.dispose();
      }
    }, 120_000);
  }
});
