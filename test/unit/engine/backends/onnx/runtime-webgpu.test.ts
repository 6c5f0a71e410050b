/**
 * WebGPU EP tests. On machines without a GPU they run on Mesa lavapipe (Vulkan in software; CI installs
 * mesa-vulkan-drivers 25 from bookworm-backports). No adapter is a FAILURE with instructions, not a skip.
 * Shapes are tiny: lavapipe is slow and the first shader compile of each kernel is expensive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawTensor, toFloat16 } from '../../../../../src-main/engine/onnx/pack';
import type { OnnxDataType, OnnxModel } from '../../../../../src-main/engine/onnx/spec';
import { probeEp, selectEp } from '../../../../../src-main/engine/backends/onnx/ep';
import { reportPlacement } from '../../../../../src-main/engine/backends/onnx/placement';
import { Program } from '../../../../../src-main/engine/backends/onnx/program';
import { EngineSession, runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers, type HostTensor } from '../../../../../src-main/engine/runtime/tensor';
import { EngineWorker } from '../../../../../src-main/engine/backends/onnx/worker';
import { maxAbsDiff, rand, sgdModel, sgdReference, sgdState } from './runtime-helpers';

beforeAll(async () => {
  const a = await probeEp('webgpu');
  if (!a.ok) {
    throw new Error(`WebGPU is not available: ${a.reason}. These tests need it. Without a GPU on Debian bookworm install ` +
      'Mesa 25 lavapipe: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1 ' +
      '(check /usr/share/vulkan/icd.d/lvp_icd*.json), and set XDG_RUNTIME_DIR to a writable folder.');
  }
});

/** A small mixed graph covering the ops a training step leans on. */
function mixedModel(type: OnnxDataType): OnnxModel {
  const t = type;
  return {
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name: `mixed_${type}`,
      inputs: [{ name: 'a', type: t, shape: [4, 6] }, { name: 'b', type: t, shape: [6, 5] }],
      outputs: [{ name: 'out', type: t, shape: [4, 5] }, { name: 'sum', type: t, shape: [4] }],
      initializers: [rawTensor('bias', t, [5], [0.1, -0.2, 0.3, 0, 0.5]), rawTensor('axes', 'int64', [1], [-1])],
      nodes: [
        { op: 'MatMul', inputs: ['a', 'b'], outputs: ['mm'] },
        { op: 'Gemm', inputs: ['a', 'b', 'bias'], outputs: ['gm'], attributes: { alpha: { type: 'float', value: 0.5 } } },
        { op: 'Add', inputs: ['mm', 'gm'], outputs: ['s'] },
        { op: 'Tanh', inputs: ['s'], outputs: ['th'] },
        { op: 'Softmax', inputs: ['th'], outputs: ['sm'], attributes: { axis: { type: 'int', value: -1 } } },
        { op: 'Mul', inputs: ['sm', 'th'], outputs: ['out'] },
        { op: 'ReduceSum', inputs: ['out', 'axes'], outputs: ['sum'], attributes: { keepdims: { type: 'int', value: 0 } } },
      ],
    },
  };
}

function mixedFeeds(type: OnnxDataType): Record<string, HostTensor> {
  const a = rand(11, 24), b = rand(12, 30);
  if (type === 'float16') return { a: hostTensor('float16', [4, 6], toFloat16(a)), b: hostTensor('float16', [6, 5], toFloat16(b)) };
  return { a: hostTensor(type, [4, 6], a), b: hostTensor(type, [6, 5], b) };
}

describe('WebGPU EP (lavapipe in CI)', () => {
  it('is chosen automatically when no CUDA add-on is installed, with the reason', async () => {
    const c = await selectEp({ env: {} });
    // CUDA first when it works; on CI and dev boxes without NVIDIA, WebGPU.
    if (c.ep !== 'cuda') {
      expect(c.ep).toBe('webgpu');
      expect(c.reason).toMatch(/^Using WebGPU: a WebGPU adapter was found/);
    }
  });

  it('runs the SGD step graph fully on WebGPU with CPU fallback disabled', async () => {
    const model = sgdModel(8, 3);
    const r = await reportPlacement(model, { ep: 'webgpu' });
    expect(r.fallback).toEqual([]);
    expect(r.counts).toEqual({ WebGpuExecutionProvider: 9 });
    expect(r.allOnEp).toBe(true);
    const s = await EngineSession.create(model, { ep: 'webgpu', disableCpuFallback: true });
    await s.dispose();
  });

  it('names the nodes that would fall back and why', async () => {
    const model: OnnxModel = {
      opsets: [{ domain: '', version: 21 }],
      graph: {
        name: 'fallback', initializers: [],
        inputs: [{ name: 'x', type: 'float32', shape: [3] }], outputs: [{ name: 'z', type: 'float32', shape: [3] }],
        nodes: [{ op: 'Add', name: 'double', inputs: ['x', 'x'], outputs: ['y'] }, { op: 'Sign', name: 'signum', inputs: ['y'], outputs: ['z'] }],
      },
    };
    await expect(EngineSession.create(model, { ep: 'webgpu', disableCpuFallback: true }))
      .rejects.toThrow(/1 node\(s\) would run on the CPU instead of webgpu: Sign "signum" \(the WebGPU EP has no kernel for Sign/);
  });

  for (const [type, tol] of [['float32', 1e-5], ['float16', 2e-2]] as const) {
    it(`${type}: a mixed graph matches the CPU EP (max abs diff < ${tol})`, async () => {
      const model = mixedModel(type);
      const cpu = await runModel(model, mixedFeeds(type), { ep: 'cpu' });
      const gpu = await runModel(model, mixedFeeds(type), { ep: 'webgpu', disableCpuFallback: true });
      for (const k of ['out', 'sum']) {
        expect(gpu[k]!.type).toBe(type);
        const d = maxAbsDiff(toNumbers(gpu[k]!), toNumbers(cpu[k]!));
        expect(d, `${type} ${k}: max |webgpu - cpu| = ${d}`).toBeLessThan(tol);
      }
    });
  }
});

describe('Program on WebGPU: state stays on the GPU', () => {
  const N = 8, D = 3, steps = 25;
  const X = rand(1, N * D), y = rand(3, N);
  const feeds = { X: hostTensor('float32', [N, D], X), y: hostTensor('float32', [N], y), lr: hostTensor('float32', [1], [0.1]) };
  const init = { w: hostTensor('float32', [D], [0.3, -0.2, 0.1]), step: hostTensor('float32', [1], [0]) };
  let p: Program;
  afterAll(() => p?.dispose());

  it('steps with gpu-buffer state, reads back through the copy-out session, matches float64', async () => {
    p = await Program.create({ model: sgdModel(N, D), state: sgdState, fetch: ['loss'] }, { ep: 'webgpu', disableCpuFallback: true });
    expect(p.info.gpuResident).toBe(true);
    await p.init(init);
    const losses: number[] = [];
    for (let i = 0; i < steps; i++) losses.push(toNumbers((await p.step(feeds)).loss!)[0]!);
    const ref = sgdReference(X, y, [0.3, -0.2, 0.1], 0.1, steps, N, D);
    expect(maxAbsDiff(losses, ref.losses)).toBeLessThan(1e-5);
    const st = await p.read();
    expect(maxAbsDiff(toNumbers(st.w!), ref.w)).toBeLessThan(1e-5);
    expect(toNumbers(st.step!)).toEqual([steps]);
    // Re-initialising replaces (and frees) the GPU state.
    await p.init(init);
    expect(toNumbers((await p.read(['step'])).step!)).toEqual([0]);
  });
});

describe('Program on WebGPU: float16 state and freeing old state', () => {
  it('float16 SGD on WebGPU follows the float16 CPU curve (|Δloss| < 2e-2 relative)', async () => {
    const N = 8, D = 3;
    const X = rand(21, N * D), y = rand(22, N);
    const h = (dims: number[], v: number[]) => hostTensor('float16', dims, toFloat16(v));
    const feeds = { X: h([N, D], X), y: h([N], y), lr: h([1], [0.1]) };
    const curves: number[][] = [];
    for (const ep of ['cpu', 'webgpu'] as const) {
      const p = await Program.create({ model: sgdModel(N, D, 'float16'), state: sgdState, fetch: ['loss'] }, { ep, disableCpuFallback: ep === 'webgpu' });
      await p.init({ w: h([D], [0, 0, 0]), step: h([1], [0]) });
      const c: number[] = [];
      for (let i = 0; i < 10; i++) c.push(toNumbers((await p.step(feeds)).loss!)[0]!);
      expect(toNumbers((await p.read(['step'])).step!)).toEqual([10]);
      curves.push(c);
      await p.dispose();
    }
    const rel = Math.max(...curves[0]!.map((l, i) => Math.abs(l - curves[1]![i]!) / Math.max(1e-3, Math.abs(l))));
    expect(rel, `cpu ${curves[0]}\nwebgpu ${curves[1]}`).toBeLessThan(2e-2);
    expect(curves[1]![9]!).toBeLessThan(curves[1]![0]!);
  });

  it('disposes each step\'s old GPU state (200 steps of a 4 MB state do not grow memory)', async () => {
    const n = 1 << 20; // 1M float32 = 4 MB; leaking it every step would add 800 MB
    const model: OnnxModel = {
      opsets: [{ domain: '', version: 21 }],
      graph: {
        name: 'count', inputs: [{ name: 's', type: 'float32', shape: [n] }],
        outputs: [{ name: 's_next', type: 'float32', shape: [n] }, { name: 'first', type: 'float32', shape: [1] }],
        initializers: [rawTensor('k', 'float32', [], [1]), rawTensor('start', 'int64', [1], [0]), rawTensor('end', 'int64', [1], [1])],
        nodes: [
          { op: 'Add', inputs: ['s', 'k'], outputs: ['s_next'] },
          { op: 'Slice', inputs: ['s_next', 'start', 'end'], outputs: ['first'] },
        ],
      },
    };
    const p = await Program.create({ model, state: [{ name: 's', input: 's', output: 's_next' }], fetch: ['first'] }, { ep: 'webgpu', disableCpuFallback: true });
    await p.init({ s: hostTensor('float32', [n], new Float32Array(n).fill(1)) });
    for (let i = 0; i < 20; i++) await p.step({});
    const rss0 = process.memoryUsage().rss;
    let first = 0;
    for (let i = 0; i < 200; i++) first = toNumbers((await p.step({})).first!)[0]!;
    const growMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
    expect(first).toBe(221);
    expect(growMb, `RSS grew ${growMb.toFixed(0)} MB over 200 steps`).toBeLessThan(200);
    await p.dispose();
  });
});

describe('EngineWorker on WebGPU', () => {
  const logs: string[] = [];
  const engine = EngineWorker.start({ onLog: (level, m) => logs.push(`${level}: ${m}`) });
  afterAll(() => engine.terminate());

  it('keeps a GPU-resident program on the engine thread and matches the CPU EP', async () => {
    const N = 8, D = 3;
    const X = rand(5, N * D), y = rand(6, N);
    const feeds = { X: hostTensor('float32', [N, D], X), y: hostTensor('float32', [N], y), lr: hostTensor('float32', [1], [0.05]) };
    const init = { w: hostTensor('float32', [D], [0, 0, 0]), step: hostTensor('float32', [1], [0]) };
    const curves: number[][] = [];
    for (const ep of ['cpu', 'webgpu'] as const) {
      const p = await engine.createProgram({ model: sgdModel(N, D), state: sgdState, fetch: ['loss'] }, { ep, disableCpuFallback: ep === 'webgpu' });
      expect(p.info.gpuResident).toBe(ep === 'webgpu');
      await p.init(init);
      curves.push((await p.steps(Array(10).fill(feeds))).map((r) => toNumbers(r.loss!)[0]!));
      await p.dispose();
    }
    expect(maxAbsDiff(curves[0]!, curves[1]!)).toBeLessThan(1e-5);
    expect(logs).toEqual([
      'info: Program sgd on cpu: 9 nodes, state in host memory.',
      'info: Program sgd on webgpu: 9 nodes, state on the GPU.',
    ]);
  });
});

describe('WebGPU patches', () => {
  const sln = (outputs: string[]): OnnxModel => ({
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name: 'sln', initializers: [rawTensor('s', 'float32', [4], [1, 0.5, 2, 1])],
      inputs: [{ name: 'x', type: 'float32', shape: [2, 4] }],
      outputs: outputs.map((name) => ({ name, type: 'float32', shape: name === 'y' ? [2, 4] : [2, 1] })),
      nodes: [{ op: 'SimplifiedLayerNormalization', name: 'rms', inputs: ['x', 's'], outputs, attributes: { axis: { type: 'int', value: -1 }, epsilon: { type: 'float', value: 1e-6 } } }],
    },
  });
  const feeds = { x: hostTensor('float32', [2, 4], [1, 2, 3, 4, -1, 0.5, 2, 0]) };

  it('SimplifiedLayerNormalization inv_std_var matches the CPU EP (recomputed on WebGPU)', async () => {
    const cpu = await runModel(sln(['y', 'inv']), feeds, { ep: 'cpu' });
    const s = await EngineSession.create(sln(['y', 'inv']), { ep: 'webgpu', disableCpuFallback: true });
    expect(s.patches).toHaveLength(1);
    expect(s.nodeCount).toBe(6);
    const gpu = await s.run(feeds);
    await s.dispose();
    expect(toNumbers(cpu.inv!)[0]).toBeCloseTo(1 / Math.sqrt(7.5), 6);
    expect(maxAbsDiff(toNumbers(gpu.inv!), toNumbers(cpu.inv!))).toBeLessThan(1e-6);
    expect(maxAbsDiff(toNumbers(gpu.y!), toNumbers(cpu.y!))).toBeLessThan(1e-6);
    // With only Y requested nothing is rewritten.
    const plain = await EngineSession.create(sln(['y']), { ep: 'webgpu', disableCpuFallback: true });
    expect(plain.patches).toEqual([]);
    await plain.dispose();
  });

  it('f16 input with |x| > 256 (x² overflows f16): inv_std_var is computed in f32, Y stays right', async () => {
    const C = 64;
    const m: OnnxModel = {
      opsets: [{ domain: '', version: 21 }],
      graph: {
        name: 'sln16', initializers: [rawTensor('s', 'float16', [C], new Array<number>(C).fill(1))],
        inputs: [{ name: 'x', type: 'float16', shape: [2, C] }],
        outputs: [{ name: 'y', type: 'float16', shape: [2, C] }, { name: 'inv', type: 'float16', shape: [2, 1] }],
        nodes: [{ op: 'SimplifiedLayerNormalization', name: 'rms', inputs: ['x', 's'], outputs: ['y', 'inv'], attributes: { axis: { type: 'int', value: -1 }, epsilon: { type: 'float', value: 1e-6 } } }],
      },
    };
    // row 0: ±300 (mean x² = 90000 > 65504); row 1: -1, 0, 1, ... (mean x² = 2/3 within a whole period of 3, 64 = 21·3 + 1)
    const xs = Array.from({ length: 2 * C }, (_, i) => (i < C ? (i % 2 ? 300 : -300) : (i % 3) - 1));
    const s = await EngineSession.create(m, { ep: 'webgpu', disableCpuFallback: true });
    const out = await s.run({ x: hostTensor('float16', [2, C], toFloat16(xs)) });
    await s.dispose();
    const ms1 = xs.slice(C).reduce((a, v) => a + v * v, 0) / C;
    expect(maxAbsDiff(toNumbers(out.inv!), [1 / 300, 1 / Math.sqrt(ms1)])).toBeLessThan(2e-3 / Math.sqrt(ms1));
    expect(toNumbers(out.inv!)[0]).toBeCloseTo(1 / 300, 5);
    expect(toNumbers(out.y!).slice(0, 2)).toEqual([-1, 1]);
  });

  it('canary: the unpatched WebGPU kernel still returns mean(x) as inv_std_var (drop the patch when this fails)', async () => {
    const { encodeModel } = await import('../../../../../src-main/engine/onnx/encode');
    const gpu = await runModel(encodeModel(sln(['y', 'inv'])), feeds, { ep: 'webgpu' });
    expect(toNumbers(gpu.inv!)).toEqual([2.5, 0.375]);
  });
});

describe('WebGPU patches: wide Split / Concat', () => {
  const W = 20; // pieces: more than a shader may bind (16 on lavapipe)
  const sizes = Array.from({ length: W }, (_, i) => (i % 3) + 1);
  const total = sizes.reduce((a, b) => a + b, 0);
  const model: OnnxModel = {
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name: 'wide', initializers: [rawTensor('sizes', 'int64', [W], sizes), rawTensor('two', 'float32', [], [2])],
      inputs: [{ name: 'x', type: 'float32', shape: [total] }],
      outputs: [{ name: 'y', type: 'float32', shape: [total] }, { name: 'p7', type: 'float32', shape: [sizes[7]!] }],
      nodes: [
        { op: 'Split', name: 'unpack', inputs: ['x', 'sizes'], outputs: sizes.map((_, i) => `p${i}`), attributes: { axis: { type: 'int', value: 0 } } },
        ...sizes.map((_, i) => ({ op: 'Mul', inputs: [`p${i}`, 'two'], outputs: [`q${i}`] })),
        // reversed order, so a wrong tree would show
        { op: 'Concat', name: 'pack', inputs: sizes.map((_, i) => `q${W - 1 - i}`), outputs: ['y'], attributes: { axis: { type: 'int', value: 0 } } },
      ],
    },
  };
  const x = hostTensor('float32', [total], Array.from({ length: total }, (_, i) => i));

  it('rewrites them into trees that fit the adapter and match the CPU EP', async () => {
    const cpu = await runModel(model, { x }, { ep: 'cpu' });
    const s = await EngineSession.create(model, { ep: 'webgpu', disableCpuFallback: true });
    expect(s.patches).toEqual([
      'Split unpack with 20 outputs: rewritten as 4 nodes of at most 8 GPU buffers each',
      'Concat pack with 20 inputs: rewritten as 4 nodes of at most 8 GPU buffers each',
    ]);
    const gpu = await s.run({ x });
    await s.dispose();
    expect(toNumbers(gpu.y!)).toEqual(toNumbers(cpu.y!));
    expect(toNumbers(gpu.p7!)).toEqual(toNumbers(cpu.p7!));
    // A larger limit gives flatter trees.
    const s16 = await EngineSession.create(model, { ep: 'webgpu', maxStorageBuffers: 16 });
    expect(s16.patches[0]).toMatch(/rewritten as 3 nodes of at most 16/);
    expect(toNumbers((await s16.run({ x })).y!)).toEqual(toNumbers(cpu.y!));
    await s16.dispose();
  });

  it('canary: unpatched, the WebGPU EP accepts the wide Split and then fails at run time', async () => {
    const { encodeModel } = await import('../../../../../src-main/engine/onnx/encode');
    await expect(runModel(encodeModel(model), { x }, { ep: 'webgpu' })).rejects.toThrow(/Too many storage buffers/);
  });
});

describe('WebGPU patches: ReduceLogSumExp', () => {
  // a row of logits up to 300 (exp overflows f32 past 88.7), reduced with and without keepdims
  const lse = (keepdims: 0 | 1): OnnxModel => ({
    opsets: [{ domain: '', version: 21 }],
    graph: {
      name: 'lse', initializers: [rawTensor('axes', 'int64', [1], [1])],
      inputs: [{ name: 'x', type: 'float32', shape: [2, 3] }],
      outputs: [{ name: 'y', type: 'float32', shape: keepdims ? [2, 1] : [2] }],
      nodes: [{ op: 'ReduceLogSumExp', name: 'lse', inputs: ['x', 'axes'], outputs: ['y'], attributes: { keepdims: { type: 'int', value: keepdims } } }],
    },
  });
  const x = hostTensor('float32', [2, 3], [300, 299, -5, 1, 2, 3]);
  const expected = [300 + Math.log(1 + Math.exp(-1) + Math.exp(-305)), 3 + Math.log(1 + Math.exp(-1) + Math.exp(-2))];

  it('large inputs: the max-subtracted rewrite matches the CPU EP, fully on the GPU', async () => {
    for (const keepdims of [1, 0] as const) {
      const cpu = await runModel(lse(keepdims), { x }, { ep: 'cpu' });
      const s = await EngineSession.create(lse(keepdims), { ep: 'webgpu', disableCpuFallback: true });
      expect(s.patches).toHaveLength(1);
      const gpu = await s.run({ x });
      await s.dispose();
      expect(gpu.y!.dims).toEqual(keepdims ? [2, 1] : [2]);
      expect(maxAbsDiff(toNumbers(cpu.y!), expected)).toBeLessThan(1e-4);
      expect(maxAbsDiff(toNumbers(gpu.y!), expected)).toBeLessThan(1e-4);
    }
  });

  it('canary: the unpatched WebGPU kernel still overflows to Infinity (drop the patch when this fails)', async () => {
    const { encodeModel } = await import('../../../../../src-main/engine/onnx/encode');
    const gpu = await runModel(encodeModel(lse(1)), { x }, { ep: 'webgpu' });
    expect(toNumbers(gpu.y!)[0]).toBe(Infinity);
  });
});
