/**
 * Fewer dispatches, same numbers: the fused plan (elementwise chains, Concat pieces computed in place, GEMM
 * epilogues) against the unfused one (`noFusion`: one dispatch per op, every Concat copies) on the device,
 * and the dispatches per transformer layer of the fused LoRA train step at Llama-3.2-1B's shapes (plan only).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { openModel, parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { hostTensor, toNumbers, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { float32ToFloat16Bits } from '../../../../../src-main/engine/onnx/pack';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { GraphBuilder, type Value } from '../../../../../src-main/engine/graph/graph';
import { GpuProgram, closeGpu, openGpu, planGraph, type GpuContext } from '../../../../../src-main/engine/backends/webgpu';
import { chooseGemm } from '../../../../../src-main/engine/backends/webgpu/kernels/gemm';
import { quantizeNf4 } from '../../../../../src-main/engine/quant/nf4';
import { nf4Gemm, placeNf4 } from '../../../../../src-main/engine/quant/graph';
import { createTinyModel } from '../../../../../src-main/engine/models/tiny';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { tempDir } from '../../../../helpers/services';
import { rel, uniform } from '../../../../helpers/numeric';
import { runSideProductPlans } from '../../../../helpers/lora-step';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';

/**
 * Dispatches per transformer layer of the fused train step at Llama-3.2-1B's shapes, GEMMs one dispatch each
 * (`noGrouping`; 106 before Concat placement, 92 before GEMM epilogues, 86 before folded loads, 78 before
 * chained GEMMs, 64 before attention read through its Transposes, 62 before RoPE inside attention, 58 before
 * SwiGLU, 53 before the residual gradient sums in the norm backwards, 51 before the LoRA side products: x·A and
 * dy·B in the base GEMM's K loop, and SwiGLU in its readers' tile loads), and with the default grouped GEMM
 * dispatches (group.ts) under WebGPU's default 8 storage buffers a shader (37 before the side products, 35 before
 * weight-gradient GEMMs delayed into later groups) and under 16 (28, 25; 21 before SwiGLU in the loads and
 * SwiGLUGrad in the dh GEMM's store, which need 9 bindings, as the down projection's side product then does).
 */
const PER_LAYER = 37, PER_LAYER_GROUPED = 30, PER_LAYER_GROUPED_16 = 19;

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

/** Dispatches of the fused train step at Llama-3.2-1B's shapes (B1×T2048, LoRA r16 all-linear) with `layers` layers. */
async function llamaDispatches(layers: number, opts: { noGrouping?: boolean; maxStorageBuffers?: number } = {}): Promise<{ total: number; byKernel: Record<string, number> }> {
  const cfg = parseModelConfig({ ...REAL_SHAPES['Llama-3.2-1B']!, num_hidden_layers: layers });
  const lay = weightsLayout(cfg);
  const lr = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
  const g = await buildTrainGraph(cfg, lay, { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true }, lr, { batch: 1, seqLen: 2048, fused: true }, optim);
  const p = planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input), ...opts });
  return { total: p.dispatches.length, byKernel: p.byKernel };
}

describe('GPU plan: dispatches per layer', () => {
  it(`Llama-3.2-1B shapes, fused LoRA train step: no Concat copies, ${PER_LAYER} dispatches a layer (${PER_LAYER_GROUPED} with grouped GEMMs, ${PER_LAYER_GROUPED_16} at 16 bindings)`, async () => {
    for (const [opts, perLayer] of [[{ noGrouping: true }, PER_LAYER], [{}, PER_LAYER_GROUPED], [{ maxStorageBuffers: 16 }, PER_LAYER_GROUPED_16]] as const) {
      const one = await llamaDispatches(1, opts), two = await llamaDispatches(2, opts);
      // the flat LoRA gradient's pieces are computed in place: no Concat dispatch at all
      expect(one.byKernel.Concat ?? 0).toBe(0);
      expect(two.byKernel.Concat ?? 0).toBe(0);
      expect(two.total - one.total).toBe(perLayer);
    }
  }, 60_000);

  it('a Concat piece whose producer reads the Concat output buffer is copied, not placed', () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [4, 8]);
    const w = g.input('w', 'float32', [8, 8]);
    const a = g.gemm(x, w);
    // b reads a (in the Concat's output once placed): b cannot be written into the same buffer by its own kernel
    const b = g.gemm(a, w);
    g.output('y', g.concat([a, b], 0));
    const p = planGraph(g);
    for (const d of p.dispatches) {
      const reads = new Set(d.bindings.filter((q) => !q.write).map((q) => q.ref.buf));
      for (const q of d.bindings.filter((q) => q.write)) expect(reads.has(q.ref.buf)).toBe(false);
    }
    expect(p.byKernel.Concat).toBe(1);
    expect(planGraph(g, { noFusion: true }).byKernel.Concat).toBe(2);
  });
});

describe('GPU backend: the fused plan computes what the unfused plan computes', () => {
  let gpu: GpuContext;
  beforeAll(async () => { gpu = await openGpu(); }, 60_000);
  afterAll(() => closeGpu());

  it('Concat with placed pieces, views between (device)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [6, 5]);
    const w = g.input('w', 'float32', [7, 5]);
    const a = g.gemm(x, w, null, { transB: true }); // [6, 7]
    const b = g.tanh(g.mul(x, 2)); // fused chain root [6, 5]
    const c = g.gemm(a, a, null, { transA: true }); // reads a (placed) : [7, 7]
    g.output('y', g.concat([g.reshape(a, [42]), g.reshape(b, [30]), g.reshape(c, [49]), g.reshape(x, [30])], 0));
    g.output('a2', g.mul(a, a)); // another reader of a placed piece
    const feeds = { x: hostTensor('float32', [6, 5], uniform(30, 1)), w: hostTensor('float32', [7, 5], uniform(35, 2)) };
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'a2'] }, { noFusion });
      // x is an input and c reads a (placed in the same buffer): both copied; a and b computed in place
      if (!noFusion) expect(p.info.byKernel.Concat).toBe(2);
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    expect(rel(out[0]!.y!.data as Float32Array, out[1]!.y!.data as Float32Array)).toBeLessThan(1e-6);
    expect(rel(out[0]!.a2!.data as Float32Array, out[1]!.a2!.data as Float32Array)).toBeLessThan(1e-6);
  }, 120_000);

  it('GEMM epilogues: residual add, broadcast bias, chains with several tensors, batched MatMul (device)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [9, 6]);
    const w = g.input('w', 'float32', [5, 6]);
    const r = g.input('r', 'float32', [9, 5]);
    const bias = g.input('bias', 'float32', [5]);
    const q = g.input('q', 'float32', [2, 3, 9, 4]);
    const rot = g.input('rot', 'float32', [4, 4]);
    const sin = g.input('sin', 'float32', [9, 4]);
    const base = g.gemm(x, w, null, { transB: true });
    const lora = g.gemm(x, w, base, { transB: true, alpha: 2 }); // beta·C already in the store
    g.output('h', g.add(r, lora)); // residual add
    g.output('s', g.mul(g.sigmoid(g.gemm(x, w, null, { transB: true, alpha: 0.5 })), g.add(r, bias))); // chain reading 2 more tensors, broadcast
    g.output('rope', g.add(g.mul(q, sin), g.mul(g.matmul(q, rot), sin))); // rotate-half as in RoPE: batched MatMul
    const feeds = {
      x: hostTensor('float32', [9, 6], uniform(54, 3)), w: hostTensor('float32', [5, 6], uniform(30, 4)), r: hostTensor('float32', [9, 5], uniform(45, 5)),
      bias: hostTensor('float32', [5], uniform(5, 6)), q: hostTensor('float32', [2, 3, 9, 4], uniform(216, 7)), rot: hostTensor('float32', [4, 4], uniform(16, 8)),
      sin: hostTensor('float32', [9, 4], uniform(36, 9)),
    };
    const fusedPlan = planGraph(g, { noGrouping: true }); // (the fusions' own kernels: grouping left out)
    expect(fusedPlan.byKernel['Gemm+Gemm+Fused(Add)']).toBe(1); // base and LoRA term chained, the residual add in the store
    expect(fusedPlan.byKernel['Gemm+Fused(Mul)']).toBe(1);
    expect(fusedPlan.byKernel['MatMul+Fused(Add)']).toBe(1);
    expect(fusedPlan.dispatches.length).toBe(3);
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['h', 's', 'rope'] }, { noFusion });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const k of ['h', 's', 'rope']) expect(rel(out[0]![k]!.data as Float32Array, out[1]![k]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 120_000);

  it('folded loads: Transposes read through permuted strides by GEMMs and elementwise kernels, a chain in a GEMM tile load (device)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 6, 2, 4]); // [B, T, H, D]
    const rot = g.input('rot', 'float32', [4, 4]);
    const sin = g.input('sin', 'float32', [6, 4]);
    const w = g.input('w', 'float32', [5, 8]);
    const q = g.transpose(x, [0, 2, 1, 3]); // [B, H, T, D]: read by a MatMul and an elementwise chain
    g.output('rope', g.add(g.mul(q, sin), g.mul(g.matmul(q, rot), sin)));
    const back = g.reshape(g.transpose(g.exp(q), [0, 2, 1, 3]), [6, 8]); // back to [T, H·D] through a view: a Gemm operand
    g.output('proj', g.gemm(back, w, null, { transB: true }));
    g.output('dq', g.matmul(g.sub(q, sin), rot)); // a chain (reading a folded Transpose) in the MatMul's tile load
    const feeds = {
      x: hostTensor('float32', [1, 6, 2, 4], uniform(48, 11)), rot: hostTensor('float32', [4, 4], uniform(16, 12)),
      sin: hostTensor('float32', [6, 4], uniform(24, 13)), w: hostTensor('float32', [5, 8], uniform(40, 14)),
    };
    const fusedPlan = planGraph(g, { noGrouping: true }); // (the fusions' own kernels: grouping left out)
    expect(fusedPlan.byKernel.Transpose ?? 0).toBe(0);
    expect(fusedPlan.byKernel.Mul ?? 0).toBe(0);
    expect(fusedPlan.byKernel.Sub ?? 0).toBe(0);
    expect(fusedPlan.dispatches.length).toBe(4); // MatMul+rope, Exp, Gemm, MatMul
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['rope', 'proj', 'dq'] }, { noFusion });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const k of ['rope', 'proj', 'dq']) expect(rel(out[0]![k]!.data as Float32Array, out[1]![k]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 120_000);

  it('folded loads: attention reads q, k, v and dO in [B, T, H, D] through its Transposes, forward and backward (device)', async () => {
    const B = 1, T = 67, H = 4, K = 2, D = 8; // two query workgroups, grouped query heads
    const g = new GraphBuilder();
    const xq = g.input('xq', 'float32', [B, T, H * D]);
    const xk = g.input('xk', 'float32', [B, T, K * D]);
    const xv = g.input('xv', 'float32', [B, T, K * D]);
    const gy = g.input('gy', 'float32', [B, T, H * D]);
    const w = g.input('w', 'float32', [5, H * D]);
    const heads = (x: Value, n: number) => g.transpose(g.reshape(x, [B, T, n, D]), [0, 2, 1, 3]); // [B, n, T, D]
    const [q, k, v] = [heads(xq, H), heads(xk, K), heads(xv, K)];
    const attrs = { scale: 0.3, window: 0 };
    const [o, lse] = g.apply('FlashAttention', [q, k, v], attrs);
    const merged = g.reshape(g.transpose(o!, [0, 2, 1, 3]), [B * T, H * D]); // back to [N, H·D]: a Gemm operand
    g.output('proj', g.gemm(merged, w, null, { transB: true }));
    const [dq, dk, dv] = g.apply('FlashAttentionGrad', [q, k, v, o!, lse!, heads(gy, H), null], attrs);
    g.output('dq', dq!);
    g.output('dk', dk!);
    g.output('dv', dv!);
    const fusedPlan = planGraph(g);
    expect(fusedPlan.byKernel.Transpose ?? 0).toBe(0);
    expect(planGraph(g, { noFusion: true }).byKernel.Transpose).toBe(5);
    expect(fusedPlan.dispatches.length).toBe(4); // FlashAttention, its two backward dispatches, the Gemm
    const feeds = {
      xq: hostTensor('float32', [B, T, H * D], uniform(B * T * H * D, 41)), xk: hostTensor('float32', [B, T, K * D], uniform(B * T * K * D, 42)),
      xv: hostTensor('float32', [B, T, K * D], uniform(B * T * K * D, 43)), gy: hostTensor('float32', [B, T, H * D], uniform(B * T * H * D, 44)),
      w: hostTensor('float32', [5, H * D], uniform(5 * H * D, 45)),
    };
    const names = ['proj', 'dq', 'dk', 'dv'];
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: names }, { noFusion });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const n of names) expect(rel(out[0]![n]!.data as Float32Array, out[1]![n]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 120_000);

  it('RoPE inside attention (q, k rotated as loaded, dq, dk rotated back as stored) = the RoPE graph around it (device)', async () => {
    const B = 2, T = 67, H = 4, K = 2, D = 6, R = 4; // partial rotary: 4 of 6 dims; per-row tables [B, T, D]
    const g = new GraphBuilder();
    const [q, k, v, dO] = [g.input('q', 'float32', [B, H, T, D]), g.input('k', 'float32', [B, K, T, D]), g.input('v', 'float32', [B, K, T, D]), g.input('dO', 'float32', [B, H, T, D])];
    const cos = g.input('cos', 'float32', [B, T, D]), sin = g.input('sin', 'float32', [B, T, D]);
    const rotData = new Float32Array(D * D);
    for (let j = 0; j < R / 2; j++) { rotData[(j + R / 2) * D + j] = -1; rotData[j * D + j + R / 2] = 1; }
    const rot = g.constant(rotData, 'float32', [D, D]);
    const attrs = { scale: 0.4, window: 0 };
    // in the kernel
    const [o1, lse1] = g.apply('FlashAttention', [q, k, v, null, cos, sin, rot], { ...attrs, rotary: R });
    const [dq1, dk1, dv1] = g.apply('FlashAttentionGrad', [q, k, v, o1!, lse1!, dO, null, cos, sin, rot], { ...attrs, rotary: R });
    // around it, as forward.ts builds RoPE for the ONNX path and autodiff its gradient
    const c4 = g.reshape(cos, [B, 1, T, D]), s4 = g.reshape(sin, [B, 1, T, D]);
    const rope = (x: Value) => g.add(g.mul(x, c4), g.mul(g.matmul(x, rot), s4));
    const back = (gy: Value) => g.add(g.mul(gy, c4), g.matmul(g.mul(gy, s4), g.transpose(rot, [1, 0])));
    const [qr, kr] = [rope(q), rope(k)];
    const [o2, lse2] = g.apply('FlashAttention', [qr, kr, v], attrs);
    const [dq2, dk2, dv2] = g.apply('FlashAttentionGrad', [qr, kr, v, o2!, lse2!, dO, null], attrs);
    const pairs: [string, Value, Value][] = [['o', o1!, o2!], ['dq', dq1!, back(dq2!)], ['dk', dk1!, back(dk2!)], ['dv', dv1!, dv2!]];
    for (const [n, a, b] of pairs) { g.output(`${n}1`, a); g.output(`${n}2`, b); }
    const feeds: Record<string, HostTensor> = {};
    [q, k, v, dO, cos, sin].forEach((x, j) => { const sh = x.shape as number[]; feeds[x.name!] = hostTensor('float32', sh, uniform(sh.reduce((a, b) => a * b, 1), 51 + j)); });
    const p = await GpuProgram.create({ graph: g, state: [], fetch: pairs.flatMap(([n]) => [`${n}1`, `${n}2`]) });
    await p.init({});
    const out = await p.step(feeds);
    await p.dispose();
    for (const [n] of pairs) expect(rel(out[`${n}1`]!.data as Float32Array, out[`${n}2`]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 300_000);

  it('SwiGLU and its gradient in one kernel each = the silu · up chain and its autodiff gradient (device)', async () => {
    const g = new GraphBuilder();
    const [gate, up, dh] = ['gate', 'up', 'dh'].map((n) => g.input(n, 'float32', [37, 29]));
    g.output('h1', g.apply('SwiGLU', [gate!, up!])[0]!);
    const [dg, du] = g.apply('SwiGLUGrad', [gate!, up!, dh!]);
    g.output('dg1', dg!);
    g.output('du1', du!);
    // the chain forward.ts builds on the ONNX path, and what autodiff makes of it
    const s = g.sigmoid(gate!), silu = g.mul(gate!, s), dsilu = g.mul(dh!, up!);
    g.output('h2', g.mul(silu, up!));
    g.output('dg2', g.add(g.mul(dsilu, s), g.mul(g.mul(dsilu, gate!), g.mul(s, g.sub(1, s)))));
    g.output('du2', g.mul(dh!, silu));
    const plan = planGraph(g);
    expect(plan.byKernel.SwiGLU).toBe(1);
    expect(plan.byKernel.SwiGLUGrad).toBe(1);
    const feeds = Object.fromEntries(['gate', 'up', 'dh'].map((n, j) => [n, hostTensor('float32', [37, 29], uniform(37 * 29, 61 + j, 4))]));
    const p = await GpuProgram.create({ graph: g, state: [], fetch: ['h1', 'dg1', 'du1', 'h2', 'dg2', 'du2'] });
    await p.init({});
    const out = await p.step(feeds);
    await p.dispose();
    for (const n of ['h', 'dg', 'du']) expect(rel(out[`${n}1`]!.data as Float32Array, out[`${n}2`]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 300_000);

  it('folded loads: SwiGLU recomputed in the tile loads of its GEMM readers (down projection base + LoRA chain with a residual epilogue, LoRA-A gradient), never stored (device)', async () => {
    const g = new GraphBuilder();
    const M = 37, F = 29, D = 11, R = 3;
    const [gate, up] = ['gate', 'up'].map((n) => g.input(n, 'float32', [M, F])) as [Value, Value];
    const wd = g.input('wd', 'float32', [D, F]), la = g.input('la', 'float32', [R, F]), lb = g.input('lb', 'float32', [D, R]);
    const r = g.input('r', 'float32', [M, D]), gb = g.input('gb', 'float32', [M, R]);
    const h = g.apply('SwiGLU', [gate, up])[0]!;
    const xa = g.gemm(h, la, null, { transB: true }); // h·Aᵀ [M, R]
    const base = g.gemm(h, wd, null, { transB: true }); // h·Wᵀ [M, D], chained into the LoRA term's Gemm
    g.output('y', g.add(r, g.gemm(xa, lb, base, { transB: true, alpha: 2 }))); // + residual: epilogue (8 bindings with gate, up)
    g.output('da', g.gemm(gb, h, null, { transA: true })); // Gᵀ·h [R, F]: h read as a transposed-A GEMM's B
    g.output('xa', xa);
    const fusedPlan = planGraph(g, { noGrouping: true });
    expect(fusedPlan.byKernel.SwiGLU ?? 0).toBe(0); // h never stored
    expect(fusedPlan.byKernel['Gemm+Gemm+Fused(Add)']).toBe(1); // still chained with its epilogue
    expect(fusedPlan.dispatches.length).toBe(3); // xa, y, da
    expect(planGraph(g).byKernel.SwiGLU ?? 0).toBe(0); // grouped too
    // a reader that is not a GEMM operand (h fetched as an output): stored by its kernel as before
    const g2 = new GraphBuilder();
    const [a2, b2] = ['gate', 'up'].map((n) => g2.input(n, 'float32', [M, F])) as [Value, Value];
    const h2 = g2.apply('SwiGLU', [a2, b2])[0]!;
    g2.output('h', h2);
    g2.output('y', g2.gemm(h2, g2.input('wd', 'float32', [D, F]), null, { transB: true }));
    expect(planGraph(g2, { noGrouping: true }).byKernel.SwiGLU).toBe(1);
    const feeds = {
      gate: hostTensor('float32', [M, F], uniform(M * F, 71, 4)), up: hostTensor('float32', [M, F], uniform(M * F, 72)),
      wd: hostTensor('float32', [D, F], uniform(D * F, 73)), la: hostTensor('float32', [R, F], uniform(R * F, 74)), lb: hostTensor('float32', [D, R], uniform(D * R, 75)),
      r: hostTensor('float32', [M, D], uniform(M * D, 76)), gb: hostTensor('float32', [M, R], uniform(M * R, 77)),
    };
    const out: Record<string, HostTensor>[] = [];
    for (const [noFusion, noGrouping] of [[false, true], [false, false], [true, true]] as const) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'da', 'xa'] }, { noFusion, noGrouping });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const k of ['y', 'da', 'xa']) {
      expect(rel(out[0]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
      expect(rel(out[1]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
    }
  }, 300_000);

  it('SwiGLUGrad in the store of the chained GEMM producing dh (dy·W + (dy·B)·A): dgate and dup written there, dh never stored (device)', async () => {
    const g = new GraphBuilder();
    const M = 37, F = 29, D = 11, R = 3;
    const [gate, up] = ['gate', 'up'].map((n) => g.input(n, 'float32', [M, F])) as [Value, Value];
    const dy = g.input('dy', 'float32', [M, D]), wd = g.input('wd', 'float32', [D, F]), la = g.input('la', 'float32', [R, F]), lb = g.input('lb', 'float32', [D, R]);
    const dyb = g.gemm(dy, lb, null, { alpha: 2 }); // [M, R]
    g.output('dyb', dyb);
    const dh = g.gemm(dy, wd, g.gemm(dyb, la)); // dy·W + (dy·B)·A: a chained pair
    const [dg, du] = g.apply('SwiGLUGrad', [gate, up, dh]);
    g.output('dg', dg!);
    g.output('du', du!);
    // with dy·B also summed in the pair's K loop (a LoRA side product, stored for its reader 'dyb'): 10 storage
    // bindings (dy, W, B, A, gate, up, dgate, dup, dy·B, params), only where the adapter allows more than 8
    const narrow = planGraph(g, { noGrouping: true });
    expect(narrow.byKernel.SwiGLUGrad).toBe(1);
    expect(narrow.byKernel.LoraGemm).toBe(1);
    const wide = planGraph(g, { noGrouping: true, maxStorageBuffers: 16 });
    expect(wide.byKernel.SwiGLUGrad ?? 0).toBe(0);
    expect(wide.byKernel['LoraGemm+SwiGLUGrad']).toBe(1);
    expect(wide.dispatches.length).toBe(1); // dh with dy·B in its K loop and dgate, dup in its store
    expect(Math.max(...wide.dispatches.map((d) => d.bindings.length))).toBe(10);
    const feeds = {
      gate: hostTensor('float32', [M, F], uniform(M * F, 81, 4)), up: hostTensor('float32', [M, F], uniform(M * F, 82)), dy: hostTensor('float32', [M, D], uniform(M * D, 83)),
      wd: hostTensor('float32', [D, F], uniform(D * F, 84)), la: hostTensor('float32', [R, F], uniform(R * F, 85)), lb: hostTensor('float32', [D, R], uniform(D * R, 86)),
    };
    const out: Record<string, HostTensor>[] = [];
    for (const [noFusion, noGrouping] of [[false, true], [false, false], [true, true]] as const) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['dg', 'du', 'dyb'] }, { noFusion, noGrouping, maxStorageBuffers: 16 });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const k of ['dg', 'du', 'dyb']) {
      expect(rel(out[0]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
      expect(rel(out[1]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
    }
  }, 300_000);

  it('residual gradient sums computed in the norm backwards\' dx stores (RMSNorm, LayerNorm) (device)', async () => {
    const g = new GraphBuilder();
    const [x, gy, r] = ['x', 'gy', 'r'].map((n) => g.input(n, 'float32', [9, 70]));
    const scale = g.input('scale', 'float32', [70]), bias = g.input('bias', 'float32', [70]), w = g.input('w', 'float32', [5, 70]);
    const [dx1, ds1] = g.apply('RMSNormGrad', [x!, scale, gy!], { epsilon: 1e-5 });
    const sum1 = g.add(r!, dx1!); // the residual stream's gradient + the norm's dx
    const [dx2, ds2, db2] = g.apply('LayerNormGrad', [x!, scale, sum1], { epsilon: 1e-5 });
    const sum2 = g.add(dx2!, sum1); // dx first, the other input computed by the kernel before
    g.output('y', g.gemm(sum2, w, null, { transB: true })); // a GEMM reads the sum
    g.output('s1', g.gemm(sum1, w, null, { transB: true }));
    g.output('ds1', ds1!);
    g.output('ds2', ds2!);
    g.output('db2', g.add(db2!, bias)); // [70] Add of a dscale-like output: not a dx, stays an Add
    const plan = planGraph(g);
    expect(plan.byKernel.Add).toBe(1);
    expect(planGraph(g, { noFusion: true }).byKernel.Add).toBe(3);
    const feeds = Object.fromEntries([['x', [9, 70]], ['gy', [9, 70]], ['r', [9, 70]], ['scale', [70]], ['bias', [70]], ['w', [5, 70]]].map(([n, sh], j) =>
      [n, hostTensor('float32', sh as number[], uniform((sh as number[]).reduce((a, b) => a * b, 1), 71 + j))]));
    const names = ['y', 's1', 'ds1', 'ds2', 'db2'];
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: names }, { noFusion });
      await p.init({});
      out.push(await p.step(feeds as Record<string, HostTensor>));
      await p.dispose();
    }
    for (const n of names) expect(rel(out[0]![n]!.data as Float32Array, out[1]![n]!.data as Float32Array)).toBeLessThan(1e-6);
  }, 300_000);

  it('folded loads: a Transpose read (through a view) as the activation of an Nf4Gemm (QLoRA) (device)', async () => {
    const N = 6, IN = 8, OUT = 72;
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, 2, N, 4]); // [B, H, T, D] as attention leaves it
    const xt = g.reshape(g.transpose(x, [0, 2, 1, 3]), [N, IN]); // -> [T, H·D]
    g.output('y', nf4Gemm(g, xt, placeNf4(g, 'w', quantizeNf4(uniform(IN * OUT, 31, 0.1), [OUT, IN])), null, true));
    const plan = planGraph(g, { noGrouping: true });
    expect(plan.byKernel.Transpose ?? 0).toBe(0);
    expect(plan.dispatches.length).toBe(1);
    const feeds = { x: hostTensor('float32', [1, 2, N, 4], uniform(48, 32)) };
    const out: Record<string, HostTensor>[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['y'] }, { noFusion });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    expect(rel(out[0]!.y!.data as Float32Array, out[1]!.y!.data as Float32Array)).toBeLessThan(1e-6);
  }, 120_000);

  it('chained GEMMs: a base GEMM and its LoRA term in one dispatch, forward and backward forms, with an epilogue (device)', async () => {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [9, 20]);
    const w = g.input('w', 'float32', [7, 20]); // base weight [out, in]
    const la = g.input('la', 'float32', [3, 20]); // LoRA A [r, in]
    const lb = g.input('lb', 'float32', [7, 3]); // LoRA B [out, r]
    const bias = g.input('bias', 'float32', [7]);
    const r = g.input('r', 'float32', [9, 7]);
    const xa = g.gemm(x, la, null, { transB: true }); // [9, 3], also an output: not chained itself
    const base = g.gemm(x, w, bias, { transB: true }); // with a broadcast bias as its own C
    g.output('xa', xa);
    g.output('y', g.add(r, g.gemm(xa, lb, base, { transB: true, alpha: 0.7, beta: 0.9 }))); // + residual: epilogue
    const dy = g.input('dy', 'float32', [9, 7]);
    const dyb = g.gemm(dy, lb); // [9, 3]
    g.output('dx', g.gemm(dy, w, g.gemm(dyb, la, null, { alpha: 1.3 }))); // dy·W + 1.3·(dy·B)·A
    const feeds = {
      x: hostTensor('float32', [9, 20], uniform(180, 21)), w: hostTensor('float32', [7, 20], uniform(140, 22)), la: hostTensor('float32', [3, 20], uniform(60, 23)),
      lb: hostTensor('float32', [7, 3], uniform(21, 24)), bias: hostTensor('float32', [7], uniform(7, 25)), r: hostTensor('float32', [9, 7], uniform(63, 26)),
      dy: hostTensor('float32', [9, 7], uniform(63, 27)),
    };
    const fusedPlan = planGraph(g, { noGrouping: true }); // (the fusions' own kernels: grouping left out)
    // dy·B summed in dx's base K loop (plan.ts loraSides; never stored); x·A keeps its own dispatch: y's kernel with
    // it would bind 9 buffers (x, w, bias, la, lb, r, y, xa, params), over WebGPU's default 8
    expect(fusedPlan.byKernel['Gemm+Gemm+Fused(Add)']).toBe(1);
    expect(fusedPlan.byKernel.LoraGemm).toBe(1);
    expect(fusedPlan.dispatches.length).toBe(3); // xa, y, dx
    // the subgroup-matrix path would round the LoRA operands to f16 in a chained kernel: not chained there
    const matrix = planGraph(g, { noGrouping: true, gemm: { path: 'subgroup-matrix', reason: 'test' } });
    expect(matrix.byKernel['Gemm+Gemm+Fused(Add)'] ?? matrix.byKernel['LoraGemm+Fused(Add)']).toBeUndefined();
    const out: Record<string, HostTensor>[] = [];
    // fused with 16×16 tiles (this adapter), fused with 64×64 register-blocked tiles (wide-subgroup GPUs), unfused
    const wide = { ...gpu, report: { ...gpu.report, gemm: chooseGemm([], [], 32) } };
    for (const [noFusion, ctx] of [[false, gpu], [false, wide], [true, gpu]] as const) {
      const p = await GpuProgram.create({ graph: g, state: [], fetch: ['xa', 'y', 'dx'] }, { noFusion, gpu: ctx });
      await p.init({});
      out.push(await p.step(feeds));
      await p.dispose();
    }
    for (const k of ['xa', 'y', 'dx']) {
      expect(rel(out[0]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
      expect(rel(out[1]![k]!.data as Float32Array, out[2]![k]!.data as Float32Array)).toBeLessThan(1e-6);
    }
  }, 300_000); // lavapipe compiles the 64×64 kernels slowly under load

  it('LoRA side products: x·A and dy·B summed in the base GEMM\'s K loop, stored once for the weight gradients; = unfused plan = CPU EP (device)', async () => {
    // M, K, N not multiples of the tiles (rows past M, a K tail, several column tiles even at 64×64); r = 5
    const M = 37, K = 45, N = 70, R = 5;
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [M, K]);
    const dy = g.input('dy', 'float32', [M, N]);
    const w16 = g.weight('w', 'float16', [N, K], { kind: 'raw', bytes: new Uint8Array(Uint16Array.from(uniform(N * K, 31), float32ToFloat16Bits).buffer) });
    const w = g.cast(w16, 'float32'); // a 16-bit base weight, unpacked in the tile load
    const la = g.weight('la', 'float32', [R, K], { kind: 'raw', bytes: new Uint8Array(uniform(R * K, 32).buffer) });
    const lb = g.weight('lb', 'float32', [N, R], { kind: 'raw', bytes: new Uint8Array(uniform(N * R, 33).buffer) });
    // forward: y = x·Wᵀ + 2·(x·Aᵀ)·Bᵀ; xa also read by dB (a later GEMM: stored)
    const xa = g.gemm(x, la, null, { transB: true });
    g.output('y', g.gemm(xa, lb, g.gemm(x, w, null, { transB: true }), { transB: true, alpha: 2 }));
    g.output('dB', g.gemm(dy, xa, null, { transA: true, alpha: 2 }));
    // backward: dyb = 2·dy·B; dA (reads dyb) comes before dx in the graph's order: the plan runs it after dx
    const dyb = g.gemm(dy, lb, null, { alpha: 2 });
    const dA = g.gemm(dyb, x, null, { transA: true });
    g.output('dA', dA);
    const dx = g.gemm(dy, w, g.gemm(dyb, la));
    g.output('dx', dx);
    const outs = ['y', 'dB', 'dA', 'dx'];
    const feeds = { x: hostTensor('float32', [M, K], uniform(M * K, 34)), dy: hostTensor('float32', [M, N], uniform(M * N, 35)) };
    const p = planGraph(g, { noGrouping: true });
    expect(p.byKernel).toEqual({ LoraGemm: 2, Gemm: 2 }); // y (with xa), dx (with dyb), then dB and dA
    const at = (v: Value) => p.dispatches.findIndex((d) => d.node === String(v.node));
    expect(at(dA)).toBeGreaterThan(at(dx));
    const lora = p.dispatches.filter((d) => d.name === 'LoraGemm');
    expect(lora.map((d) => d.bindings.filter((b) => b.write).length)).toEqual([2, 2]); // its result and the stored side product
    const want = await runModel(lowerGraph(g).model, feeds);
    const { ref, fused } = await runSideProductPlans(g, outs, feeds, gpu);
    for (const k of outs) {
      for (const r of fused) expect(rel(r[k]!, ref[k]!), `${k}: fused vs unfused`).toBeLessThan(1e-6);
      expect(rel(ref[k]!, toNumbers(want[k]!)), `${k}: vs the CPU EP`).toBeLessThan(1e-6);
      expect(rel(fused[0]![k]!, toNumbers(want[k]!)), `${k}: fused vs the CPU EP`).toBeLessThan(1e-6);
    }
  }, 300_000);

  for (const recompute of [false, true]) it(`tiny llama LoRA train step${recompute ? ' (recomputed blocks)' : ''}: loss, gradient and one AdamW step agree with the unfused plan`, async () => {
    const dir = path.join(tempDir('lathe-gpu-fusion-'), 'llama');
    await createTinyModel('llama', dir, { seed: 1 });
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
    const B = 2, T = 8, N = B * T, P = lora.size;
    const tg = await buildTrainGraph(config, layout, openWeightSource(weights), lora, { batch: B, seqLen: T, fused: true, recompute }, optim);
    const p0 = initLoraParams(lora, 3);
    for (const m of lora.modules) for (let i = 0; i < m.outFeatures * lora.rank; i++) p0[m.bOffset + i] = 0.02 * Math.sin(i + m.bOffset);
    const z = () => hostTensor('float32', [P], new Float32Array(P));
    const ids = new BigInt64Array(N).map((_, i) => BigInt(((i * 7) % 40) + 3));
    const targets = ids.map((_, i) => ids[(i + 1) % N]!);
    const feeds = (apply: boolean) => ({
      ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)),
      apply: hostTensor('bool', [], new Uint8Array([apply ? 1 : 0])), invCount: hostTensor('float32', [], new Float32Array([1 / N])),
      adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, 1))),
      ...(recompute ? { recompute_one: hostTensor('float32', [], new Float32Array([1])) } : {}),
    });
    const res: { loss: number; grad: Float32Array; params: Float32Array; dispatches: number }[] = [];
    for (const noFusion of [false, true]) {
      const p = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir, noFusion });
      await p.init({ params: hostTensor('float32', [P], p0), m: z(), v: z(), gacc: z() });
      const loss = Number((await p.step(feeds(false))).loss_sum!.data[0]);
      const grad = (await p.read(['gacc'])).gacc!.data as Float32Array;
      await p.step(feeds(true));
      const params = (await p.read(['params'])).params!.data as Float32Array;
      res.push({ loss, grad, params, dispatches: p.info.dispatches });
      await p.dispose();
    }
    await weights.close();
    const [fused, plain] = res as [typeof res[0], typeof res[0]];
    expect(fused.dispatches).toBeLessThan(plain.dispatches);
    expect(Math.abs(fused.loss - plain.loss) / Math.abs(plain.loss)).toBeLessThan(1e-6);
    expect(rel(fused.grad, plain.grad)).toBeLessThan(1e-6);
    expect(rel(fused.params, plain.params)).toBeLessThan(1e-6);
  }, 300_000);
});
