/** The GPU backend's plan (no device needed) and its capability report. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { defineOp } from '../../../../../src-main/engine/graph/ops/registry';
import { capabilityReport, planGraph, type GpuLimits } from '../../../../../src-main/engine/backends/webgpu';
import { toFloat16 } from '../../../../../src-main/engine/onnx/pack';

describe('GPU plan', () => {
  it('fuses an elementwise chain into one kernel', () => {
    const g = new GraphBuilder();
    let x = g.input('x', 'float32', [1024]);
    for (let i = 0; i < 12; i++) x = i % 2 ? g.exp(g.neg(x)) : g.tanh(x);
    g.output('y', g.mul(x, 2));
    const p = planGraph(g);
    expect(p.dispatches.length).toBe(1);
    expect(p.bytes.temp).toBe(0);
  });

  it('reuses temporaries by liveness: a chain of 12 ops (unfused) and its output need one buffer', () => {
    const g = new GraphBuilder();
    let x = g.input('x', 'float32', [1024]);
    for (let i = 0; i < 12; i++) x = i % 2 ? g.exp(g.neg(x)) : g.tanh(x);
    g.output('y', g.mul(x, 2));
    const p = planGraph(g, { noFusion: true });
    expect(p.dispatches.length).toBe(19);
    // each op reads its input last and writes over it (kernels/elementwise.ts), down to the output: one buffer
    // (two temporaries and the output's own before results were written in place and outputs reused dead buffers)
    expect(p.buffers.filter((b) => b.kind === 'temp')).toHaveLength(0);
    expect(p.bytes.temp).toBe(0);
    expect(p.bytes.output).toBe(4096);
    // no dispatch writes a buffer it also reads
    for (const d of p.dispatches) {
      const reads = new Set(d.bindings.filter((b) => !b.write).map((b) => b.ref.buf));
      for (const w of d.bindings.filter((b) => b.write)) expect(reads.has(w.ref.buf)).toBe(false);
    }
  });

  it('fused cross-entropy: the backward overwrites the logits in place (one [N, V] buffer); no T×T buffer for attention', async () => {
    const { gradients } = await import('../../../../../src-main/engine/autodiff/grad');
    const g = new GraphBuilder();
    g.fused = true;
    const N = 64, V = 1000, C = 16, T = 64;
    const x = g.input('x', 'float32', [N, C]);
    const w = g.input('w', 'float32', [V, C]);
    const t = g.input('t', 'int64', [N, 1]);
    const m = g.input('m', 'float32', [N, 1]);
    // attention on [1, 4, T, 4] heads built from x (2 kv heads), then the head and the loss
    const q = g.reshape(x, [1, 4, T, 4]);
    const kv = g.reshape(g.slice(x, [0, 0], [N, 8]), [1, 2, T, 4]);
    const att = g.apply('FlashAttention', [q, kv, kv], { scale: 0.5, window: 0 })[0]!;
    const logits = g.gemm(g.reshape(att, [N, C]), w, null, { transB: true });
    const loss = g.apply('SoftmaxCrossEntropy', [logits, t, m])[0]!;
    g.output('loss', loss);
    g.output('dx', gradients(g, [[loss, null]], [x]).grads[0]!);
    const p = planGraph(g);
    const big = p.buffers.filter((b) => b.bytes >= N * V * 4);
    expect(big.length).toBe(1);
    // every other temporary is a [T, C]-sized activation: no [T, T] scores or probabilities
    expect(p.buffers.filter((b) => b.kind === 'temp' && b !== big[0]).every((b) => b.bytes <= N * C * 4)).toBe(true);
    const grad = p.dispatches.find((d) => d.name === 'CrossEntropyGrad')!;
    expect(grad.bindings.filter((b) => b.ref.buf === big[0]).map((b) => b.write)).toEqual([true]);
    expect(p.byKernel).toMatchObject({ FlashAttention: 1, FlashAttentionGradQ: 1, FlashAttentionGradKV: 1, CrossEntropyLse: 1, CrossEntropyLoss: 1 });
  });

  it('makes views of reshapes and contiguous split pieces (no dispatch, no memory)', () => {
    const g = new GraphBuilder();
    const p0 = g.input('p', 'float32', [24]);
    const [a, b] = g.split(p0, [8, 16], 0);
    const y = g.add(g.reshape(a!, [2, 4]), g.reduceSum(g.reshape(b!, [4, 4]), [0], false));
    g.output('y', y);
    const p = planGraph(g);
    expect(p.byKernel).toEqual({ ReduceSum: 1, Add: 1 });
    const add = p.dispatches.find((d) => d.name === 'Add')!;
    expect(add.bindings[0]!.ref.buf.label).toBe('p'); // the split piece reads the input buffer itself
    expect(add.wgsl).not.toContain('prm['); // first piece at offset 0, no run-time parameters
    const red = p.dispatches.find((d) => d.name === 'ReduceSum')!;
    // second piece: its offset (8) is a run-time parameter of the load, in the dispatch's slice of the params buffer
    expect(red.wgsl).toContain('fn ld0(e: u32) -> f32 { return b0[prm[0u] + e]; }');
    const slice = red.bindings.find((b) => b.ref.buf === p.paramsRef.buf)!.ref;
    expect(p.params[slice.offset]).toBe(8);
    expect((slice.offset * 4) % 256).toBe(0);
  });

  it('keeps f16 weights in 16 bits and reads them through the load (the Cast is free)', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [2, 4]);
    const w = g.weight('w', 'float16', [3, 4], { kind: 'raw', bytes: new Uint8Array(toFloat16(new Array(12).fill(0.5)).buffer) });
    g.output('y', g.gemm(x, g.cast(w, 'float32'), null, { transB: true }));
    const p = planGraph(g);
    expect(p.byKernel).toEqual({ Gemm: 1 });
    expect(p.bytes.weight).toBe(24);
    expect(p.dispatches[0]!.wgsl).toContain('unpack2x16float');
  });

  it('refuses what it cannot run, naming it', () => {
    defineOp({ name: 'TestOpWithoutGpuKernel', infer: (x) => [{ dtype: 'float32', shape: [...x[0]!.shape] }], lower: () => undefined, nondiff: true });
    const g = new GraphBuilder();
    g.output('y', g.apply('TestOpWithoutGpuKernel', [g.input('x', 'float32', [2])])[0]!);
    expect(() => planGraph(g)).toThrow(/no kernel for op TestOpWithoutGpuKernel \(node #\d+ \(TestOpWithoutGpuKernel\)\)/);
    const h = new GraphBuilder();
    h.output('y', h.exp(h.input('x', 'float64', [2])));
    expect(() => planGraph(h)).toThrow(/float64 has no GPU kernels/);
    const s = new GraphBuilder();
    s.output('y', s.exp(s.input('x', 'float32', ['B', 2])));
    expect(() => planGraph(s)).toThrow(/needs a fixed shape/);
  });
});

describe('capability report', () => {
  const limits: GpuLimits = {
    maxStorageBufferBindingSize: 2 ** 27, maxBufferSize: 2 ** 32, maxStorageBuffersPerShaderStage: 8,
    maxComputeWorkgroupStorageSize: 32768, maxComputeInvocationsPerWorkgroup: 256, maxComputeWorkgroupsPerDimension: 65535,
  };
  const adapter = { vendor: 'mesa', architecture: '', device: '', description: 'llvmpipe' };
  it('names the GEMM path and why', () => {
    expect(capabilityReport(adapter, true, ['shader-f16'], limits, []).gemm.reason).toMatch(/does not offer chromium-experimental-subgroup-matrix/);
    expect(capabilityReport(adapter, true, ['chromium-experimental-subgroup-matrix'], limits, []).gemm.reason).toMatch(/no subgroup-matrix configs/);
    const nv = capabilityReport({ ...adapter, vendor: 'nvidia', description: 'RTX' }, false, ['chromium-experimental-subgroup-matrix'], limits, ['f16 16x16x16']);
    expect(nv.gemm.reason).toMatch(/none of its configs \(f16 16x16x16\) multiplies f16 into f32/);
    expect(nv.software).toBe(false);
  });
  it('says when an NVIDIA adapter offers no shader-f16 even with the toggle, and that f16 compute is emulated there', () => {
    const nv = { ...adapter, vendor: 'nvidia', description: 'RTX' };
    expect(capabilityReport(nv, false, [], limits, []).notes.join('\n')).toMatch(/emulated: .*vulkan_enable_f16_on_nvidia/);
    expect(capabilityReport(nv, false, ['shader-f16'], limits, []).notes.join('\n')).toMatch(/array<f16>/);
    expect(capabilityReport(adapter, true, [], limits, []).notes.join('\n')).not.toMatch(/vulkan_enable_f16_on_nvidia/);
  });
});
