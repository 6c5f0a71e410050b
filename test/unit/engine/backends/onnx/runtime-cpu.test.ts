import { afterAll, describe, expect, it } from 'vitest';
import { parseEpOverride, selectEp } from '../../../../../src-main/engine/backends/onnx/ep';
import { parsePlacementLog } from '../../../../../src-main/engine/backends/onnx/placement';
import { Program } from '../../../../../src-main/engine/backends/onnx/program';
import { EngineSession } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../../../src-main/engine/runtime/tensor';
import { EngineWorker } from '../../../../../src-main/engine/backends/onnx/worker';
import { UserError } from '../../../../../src-main/util/progress';
import type { OnnxModel } from '../../../../../src-main/engine/onnx/spec';
import { maxAbsDiff, rand, sgdModel, sgdReference, sgdState } from './runtime-helpers';

const N = 8, D = 3;
const X = rand(1, N * D), wTrue = [0.5, -1, 2], y = Array.from({ length: N }, (_, n) => wTrue.reduce((a, w, d) => a + X[n * D + d]! * w, 0) + 0.1 * rand(2, N)[n]!);
const feeds = { X: hostTensor('float32', [N, D], X), y: hostTensor('float32', [N], y), lr: hostTensor('float32', [1], [0.1]) };
const init = { w: hostTensor('float32', [D], [0, 0, 0]), step: hostTensor('float32', [1], [0]) };

describe('EP selection', () => {
  it('honours LATHE_EP=cpu and explains the choice', async () => {
    const c = await selectEp({ env: { LATHE_EP: 'cpu' } });
    expect(c.ep).toBe('cpu');
    expect(c.reason).toMatch(/Using CPU as requested by LATHE_EP=cpu/);
  });

  it('rejects unknown overrides and unusable requested EPs with a user-facing error', async () => {
    expect(() => parseEpOverride('tpu')).toThrow(UserError);
    expect(parseEpOverride('auto')).toBeUndefined();
    const err = await selectEp({ prefer: 'cuda' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    // Here (no CUDA add-on) the reason names what is missing.
    expect((err as UserError).message).toMatch(/CUDA \(NVIDIA\) was requested but cannot be used: the CUDA add-on of onnxruntime is not installed/);
  });
});

describe('sessions (CPU EP)', () => {
  it('counts nodes, names inputs, rejects missing inputs', async () => {
    const s = await EngineSession.create(sgdModel(N, D), { threads: 1, optLevel: 'disabled' });
    expect(s.nodeCount).toBe(9);
    expect(s.inputNames).toEqual(['X', 'y', 'lr', 'w', 'step']);
    await expect(s.run({ X: feeds.X })).rejects.toThrow(/missing input\(s\) y, lr, w, step/);
    await s.dispose();
    await expect(s.run({})).rejects.toThrow(/disposed/);
  });
});

describe('Program (CPU EP)', () => {
  it('keeps state between steps and matches a float64 reference', async () => {
    const p = await Program.create({ model: sgdModel(N, D), state: sgdState, fetch: ['loss'] }, { ep: 'cpu', threads: 1 });
    expect(p.info).toMatchObject({ ep: 'cpu', gpuResident: false, feeds: ['X', 'y', 'lr'], state: ['w', 'step'] });
    await expect(p.step(feeds)).rejects.toThrow(/init\(\)/);
    await p.init(init);
    const losses: number[] = [];
    for (let i = 0; i < 20; i++) losses.push(toNumbers((await p.step(feeds)).loss!)[0]!);
    const ref = sgdReference(X, y, [0, 0, 0], 0.1, 20, N, D);
    expect(maxAbsDiff(losses, ref.losses)).toBeLessThan(1e-5);
    const st = await p.read();
    expect(maxAbsDiff(toNumbers(st.w!), ref.w)).toBeLessThan(1e-5);
    expect(toNumbers(st.step!)).toEqual([20]);
    await p.dispose();
  });

  it('validates the spec', async () => {
    const model = sgdModel(N, D);
    await expect(Program.create({ model, state: [{ name: 'w', input: 'nope', output: 'w_next' }], fetch: [] })).rejects.toThrow(/names input "nope"/);
    await expect(Program.create({ model, state: sgdState, fetch: ['w_next'] })).rejects.toThrow(/state output/);
  });
});

describe('EngineWorker (engine thread)', () => {
  const engine = EngineWorker.start({ env: { ...process.env, LATHE_EP: 'cpu' } });
  afterAll(() => engine.terminate());

  it('runs programs on the engine thread without blocking the caller', async () => {
    const choice = await engine.selectEp();
    expect(choice.ep).toBe('cpu');
    // A deliberately slow model: 60 chained 768³ MatMuls (~54 GFLOP, 0.2-1 s).
    const K = 768, chain = 60;
    const nodes = Array.from({ length: chain }, (_, i) => ({ op: 'MatMul', inputs: [i ? `h${i}` : 'a', 'a'], outputs: [`h${i + 1}`] }));
    const slow: OnnxModel = {
      opsets: [{ domain: '', version: 21 }],
      graph: { name: 'slow', inputs: [{ name: 'a', type: 'float32', shape: [K, K] }], outputs: [{ name: `h${chain}`, type: 'float32', shape: [K, K] }], nodes, initializers: [] },
    };
    const a = hostTensor('float32', [K, K], new Float32Array(K * K).fill(1 / K));
    let ticks = 0, worstGap = 0, last = performance.now();
    const timer = setInterval(() => { const t = performance.now(); worstGap = Math.max(worstGap, t - last); last = t; ticks++; }, 5);
    const t0 = performance.now();
    const out = await engine.runModel(slow, { a }, { threads: 1 });
    const took = performance.now() - t0;
    clearInterval(timer);
    console.log(`engine-thread run took ${took.toFixed(0)} ms; caller ticks ${ticks}, worst event-loop gap ${worstGap.toFixed(1)} ms`);
    expect(toNumbers(out[`h${chain}`]!)[0]).toBeCloseTo(1 / K, 6);
    expect(took).toBeGreaterThan(80);
    // The caller's event loop kept ticking while the engine thread was busy.
    expect(ticks).toBeGreaterThan(took / 5 / 4);
    expect(worstGap).toBeLessThan(Math.max(60, took / 3));
  });

  it('drives a Program through handles, in order, and reports errors from the engine thread', async () => {
    const p = await engine.createProgram({ model: sgdModel(N, D), state: sgdState, fetch: ['loss'] }, { ep: 'cpu' });
    await p.init(init);
    // Fire several calls without awaiting: the engine serializes them in arrival order.
    const pending = [p.step(feeds), p.step(feeds), p.steps([feeds, feeds, feeds])];
    const [a, b, rest] = await Promise.all(pending);
    const losses = [a, b, ...(rest as Record<string, unknown>[])].map((r) => toNumbers((r as { loss: ReturnType<typeof hostTensor> }).loss)[0]!);
    const ref = sgdReference(X, y, [0, 0, 0], 0.1, 5, N, D);
    expect(maxAbsDiff(losses, ref.losses)).toBeLessThan(1e-5);
    expect(toNumbers((await p.read(['step'])).step!)).toEqual([5]);
    await expect(p.read(['nope'])).rejects.toThrow(/no state slot "nope"/);
    await p.dispose();
    await expect(p.step(feeds)).rejects.toThrow(/no program with handle/);
    const err = await engine.selectEp({ prefer: 'cuda' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).code).toBe('engine.ep-unavailable');
  });
});

describe('placement log parsing', () => {
  it('finds fallback nodes and their reasons in ORT verbose output', () => {
    const model = sgdModel(N, D);
    model.graph.nodes = [{ op: 'Add', name: 'n0_Add', inputs: ['x', 'x'], outputs: ['y'] }, { op: 'Sign', name: 'n1_Sign', inputs: ['y'], outputs: ['z'] }];
    const log = [
      '2026 [I:onnxruntime:, webgpu_execution_provider.cc:665 GetCapability] webgpu kernel not found in registries for Op type: Sign node name: n1_Sign',
      '2026 [V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements',
      '2026 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 2',
      '2026 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Sign (n1_Sign)',
      '2026 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Shape (n7_Shape)',
      '2026 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [WebGpuExecutionProvider]. Number of nodes: 2',
      '2026 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Add (n0_Add)',
      '2026 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MemcpyToHost (Memcpy)',
      '2026 [W:onnxruntime:, session_state.cc:1397 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned',
    ].join('\n');
    const r = parsePlacementLog(log, 'webgpu', model);
    expect(r.allOnEp).toBe(false);
    expect(r.copies).toBe(1);
    expect(r.fallback).toEqual([
      { op: 'Sign', name: 'n1_Sign', reason: 'the WebGPU EP has no kernel for Sign with these input types' },
      { op: 'Shape', name: 'n7_Shape', reason: 'a node onnxruntime created while optimizing the graph' },
    ]);
    expect(r.byProvider.WebGpuExecutionProvider).toHaveLength(2);
    expect(r.counts).toEqual({ CPUExecutionProvider: 2, WebGpuExecutionProvider: 2 });
    const all = parsePlacementLog('[V:onnxruntime:, session_state.cc:1380 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [WebGpuExecutionProvider]. Number of nodes: 2', 'webgpu', model);
    expect(all).toMatchObject({ allOnEp: true, counts: { WebGpuExecutionProvider: 2 }, fallback: [] });
  });
});
