/**
 * The GEMM path choice and the subgroup-matrix (tensor-core) kernel. lavapipe does not offer
 * chromium-experimental-subgroup-matrix, so here the kernel can only be generated and handed to Dawn,
 * which must refuse it naming the extension (the path is reported "not available on this adapter",
 * never skipped silently); on an adapter that offers an f16 -> f32 config the same test runs it
 * against the CPU EP at f16 tolerance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/backends/onnx';
import { float32ToFloat16Bits } from '../../../../../src-main/engine/onnx/pack';
import { Rng } from '../../../../../src-main/engine/models/rng';
import { GpuProgram, closeGpu, openGpu, planGraph, type GpuContext } from '../../../../../src-main/engine/backends/webgpu';
import { chooseGemm } from '../../../../../src-main/engine/backends/webgpu/kernels/gemm';

const NV = JSON.stringify({ componentType: 'f16', resultComponentType: 'f32', M: 16, N: 16, K: 16 });
const SM = ['shader-f16', 'subgroups', 'chromium-experimental-subgroup-matrix'];

function rnd(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.next() * 2 - 1);
}

/** y = x · W (f16 weight [K, N]) and z = x · V (f32 weight): only the first may take the subgroup-matrix path. */
function graph(M: number, K: number, N: number): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [M, K]);
  const w = g.weight('w', 'float16', [K, N], { kind: 'raw', bytes: new Uint8Array(Uint16Array.from(rnd(K * N, 2), float32ToFloat16Bits).buffer) });
  const v = g.weight('v', 'float32', [K, N], { kind: 'raw', bytes: new Uint8Array(rnd(K * N, 3).buffer) });
  g.output('y', g.matmul(x, g.cast(w, 'float32')));
  g.output('z', g.matmul(x, v));
  return g;
}

let gpu: GpuContext;
beforeAll(async () => { gpu = await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GEMM path', () => {
  it('is chosen from the adapter\'s features and configs, with the reason', () => {
    expect(chooseGemm(['shader-f16', 'subgroups'], []).reason).toMatch(/not available on this adapter: it does not offer chromium-experimental-subgroup-matrix/);
    expect(chooseGemm(SM, []).path).toBe('tiled-f32');
    expect(chooseGemm(SM, [JSON.stringify({ componentType: 'i8', resultComponentType: 'i32', M: 8, N: 8, K: 32 })]).reason).toMatch(/multiplies f16 into f32/);
    expect(chooseGemm(SM.slice(1), [NV]).reason).toMatch(/no shader-f16/);
    const nv = chooseGemm(SM, [NV]);
    expect(nv.path).toBe('subgroup-matrix');
    expect(nv.matrix).toMatchObject({ M: 16, N: 16, K: 16 });
    expect(nv.reason).toMatch(/f16 16×16×16 -> f32, for GEMMs whose weight is stored in 16 bits or NF4/);
    // tiles by subgroup size: wide subgroups get 64×64 register-blocked tiles, narrow or unknown 16×16
    expect(chooseGemm(['subgroups'], [], 32)).toMatchObject({ tile: { TM: 4, TN: 4 }, reason: expect.stringMatching(/64×64 tiles, 4×4 outputs a thread \(subgroups of 32\)/) });
    expect(chooseGemm(['subgroups'], [], 8).tile).toEqual({ TM: 1, TN: 1 });
    expect(chooseGemm([], []).reason).toMatch(/16×16 tiles, one output a thread \(subgroup size not reported\)/);
  });

  it('the 64×64 register-blocked tiled kernel (MatMul, batched MatMul, Gemm with Wᵀ + C, f16 weight) equals the 16×16 one and the CPU EP', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [70, 40]);
    const xb = g.input('xb', 'float32', [3, 20, 33]);
    const w = g.weight('w', 'float16', [40, 90], { kind: 'raw', bytes: new Uint8Array(Uint16Array.from(rnd(40 * 90, 2), float32ToFloat16Bits).buffer) });
    const wt = g.weight('wt', 'float32', [50, 40], { kind: 'raw', bytes: new Uint8Array(rnd(50 * 40, 5).buffer) });
    const bias = g.weight('bias', 'float32', [50], { kind: 'raw', bytes: new Uint8Array(rnd(50, 6).buffer) });
    const v = g.weight('v', 'float32', [33, 17], { kind: 'raw', bytes: new Uint8Array(rnd(33 * 17, 7).buffer) });
    g.output('y', g.matmul(x, g.cast(w, 'float32')));
    g.output('yb', g.matmul(xb, v));
    g.output('yt', g.gemm(x, wt, bias, { transB: true }));
    const feeds = { x: hostTensor('float32', [70, 40], rnd(70 * 40, 1)), xb: hostTensor('float32', [3, 20, 33], rnd(3 * 20 * 33, 8)) };
    const want = await runModel(lowerGraph(g).model, feeds);
    const plain = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'yb', 'yt'] }, { gpu, noGrouping: true });
    const wide = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'yb', 'yt'] }, { gpu: { ...gpu, report: { ...gpu.report, gemm: chooseGemm([], [], 32) } }, noGrouping: true });
    expect(wide.plan.dispatches[0]!.groups).toEqual([Math.ceil(90 / 64), Math.ceil(70 / 64), 1]);
    const a = await plain.step(feeds), b = await wide.step(feeds);
    await plain.dispose();
    await wide.dispose();
    for (const k of ['y', 'yb', 'yt']) {
      expect(toNumbers(b[k]!), k).toEqual(toNumbers(a[k]!));
      const w_ = toNumbers(want[k]!), got = toNumbers(b[k]!);
      const scale = Math.max(...w_.map(Math.abs));
      expect(Math.max(...w_.map((q, i) => Math.abs(q - got[i]!))) / scale, k).toBeLessThan(2e-6);
    }
  }, 120_000);

  it('this adapter\'s report names its path (lavapipe: not available)', () => {
    const r = gpu.report;
    if (!r.features.includes('chromium-experimental-subgroup-matrix') || r.subgroupMatrixConfigs.length === 0) {
      expect(r.gemm.path).toBe('tiled-f32');
      expect(r.gemm.reason).toMatch(/not available on this adapter/);
    }
    console.log(`this adapter's GEMM: ${r.gemm.path} (${r.gemm.reason})`);
  });

  it('the subgroup-matrix kernel: generated for 16-bit weights only; run where offered, refused by Dawn naming the extension elsewhere', async () => {
    const M = 20, K = 40, N = 24;
    const g = graph(M, K, N);
    const choice = chooseGemm(SM, [NV]);
    const plan = planGraph(g, { gemm: choice });
    const [y, z] = plan.dispatches as [typeof plan.dispatches[0], typeof plan.dispatches[0]];
    expect(y.wgsl.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;')).toBe(true);
    expect(y.wgsl).toContain('subgroupMatrixMultiplyAccumulate(l, r, acc)');
    expect(y.groups).toEqual([Math.ceil(N / 16), Math.ceil(M / 16), 1]);
    expect(z.wgsl).not.toContain('subgroup_matrix'); // f32 weight: the tiled f32 kernel
    if (gpu.report.gemm.path === 'subgroup-matrix') {
      const feeds = { x: hostTensor('float32', [M, K], rnd(M * K, 1)) };
      const want = await runModel(lowerGraph(g).model, feeds);
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'z'] }, { gpu });
      const got = await prog.step(feeds);
      await prog.dispose();
      const w = toNumbers(want.y!), a = toNumbers(got.y!);
      const scale = Math.max(...w.map(Math.abs));
      expect(Math.max(...w.map((v, i) => Math.abs(v - a[i]!))) / scale).toBeLessThan(5e-3); // x rounded to f16
      return;
    }
    gpu.device.pushErrorScope('validation');
    const module = gpu.device.createShaderModule({ code: y.wgsl });
    await gpu.device.popErrorScope();
    const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error').map((m) => m.message);
    console.log(`subgroup-matrix GEMM not available on this adapter; Dawn says: ${errors.join('; ')}`);
    expect(errors.join(' ')).toMatch(/chromium_experimental_subgroup_matrix/);
  }, 60_000);
});
