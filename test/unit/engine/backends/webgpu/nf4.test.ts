/**
 * QLoRA on Lathe's GPU backend: Nf4Gemm (codes and double-quantized scales uploaded as they are,
 * dequantized in the GEMM's tile load) against the same graph on the CPU EP (forward and the gradient,
 * both layouts, with a bias), the plan holding no f32 copy of the weight, and the whole QLoRA train step
 * of tiny llama against the CPU EP (loss, gradients, three AdamW steps); the same under f16 compute (x, y in
 * 16-bit storage, the dequantized weight rounded to f16) against the CPU EP's f16 graph.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphBuilder, type Value } from '../../../../../src-main/engine/graph/graph';
import { gradients } from '../../../../../src-main/engine/autodiff/grad';
import { lowerGraph } from '../../../../../src-main/engine/backends/onnx/lower';
import { runModel } from '../../../../../src-main/engine/backends/onnx/session';
import { Program, hostTensor, toNumbers, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { quantizeNf4 } from '../../../../../src-main/engine/quant/nf4';
import { nf4Gemm, placeNf4 } from '../../../../../src-main/engine/quant/graph';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { buildLoraLayout } from '../../../../../src-main/engine/llm/lora';
import { REAL_SHAPES, layoutOnlyNf4CacheForTest, layoutOnlyWeights } from '../../../../bench/webgpu';
import { rel, uniform as randn } from '../../../../helpers/numeric';
import { expectSameOutputsAcrossPlans, expectSameRun, formatErrors, runSideProductPlans, gpuHalfAndEmulation, loraStart, loraStepFixture, runSteps, stepFeeds, stepState } from '../../../../helpers/lora-step';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('Nf4Gemm on the GPU backend vs the CPU EP', () => {
  for (const transB of [true, false]) {
    it(`y = x·W${transB ? 'ᵀ' : ''} + b and dx; no f32 copy of W on the GPU`, async () => {
      // IN·OUT = 40·72 = 2880: 45 blocks of 64, one short second-level block
      const N = 5, IN = 40, OUT = 72;
      const q = quantizeNf4(randn(IN * OUT, 11, 0.1), transB ? [OUT, IN] : [IN, OUT]);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [N, IN]);
      const gy = g.input('gy', 'float32', [N, OUT]);
      const bias = g.weight('b', 'float32', [OUT], { kind: 'raw', bytes: new Uint8Array(randn(OUT, 3).buffer) });
      const y = nf4Gemm(g, x, placeNf4(g, 'w', q), bias, transB);
      const { grads } = gradients(g, [[y, gy]], [x]);
      g.output('y', y);
      g.output('dx', grads[0]!);
      const feeds = { x: hostTensor('float32', [N, IN], randn(N * IN, 5)), gy: hostTensor('float32', [N, OUT], randn(N * OUT, 6)) };
      const want = await runModel(lowerGraph(g).model, feeds);
      const plan = planGraph(g, { noGrouping: true });
      expect(plan.byKernel.Nf4Gemm).toBe(2);
      // weights: the code bytes (n/2), the absmax codes (nb), scale2, offset and the dynamic map packed in one buffer,
      // the bias, the CPU lowering's pair table; never IN·OUT·4
      expect(plan.bytes.weight).toBeLessThan((IN * OUT) / 2 + 64 + 16 + 4 * OUT + 4 * 3 * 256 + 64);
      expect(plan.bytes.temp + plan.bytes.output).toBeLessThan(4 * IN * OUT);
      const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'dx'] });
      try {
        const got = await prog.step(feeds);
        for (const k of ['y', 'dx']) {
          const e = rel(toNumbers(got[k]!), toNumbers(want[k]!));
          console.log(`Nf4Gemm transB=${transB} ${k}: ${e.toExponential(1)}`);
          expect(e, k).toBeLessThan(2e-6);
        }
      } finally {
        await prog.dispose();
      }
    }, 120_000);
  }
});

describe('QLoRA train step: GPU backend vs CPU EP', () => {
  it('tiny llama (NF4 base weights): loss, gradients and 3 AdamW steps agree', async () => {
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-gpu-nf4-' });
    const B = 1, T = 8;
    const tg = await buildTrainGraph(config, layout, { weights, dir, quantize: 'nf4' }, lora, { batch: B, seqLen: T }, optim);
    const init = stepState(loraStart(lora));
    const feeds = stepFeeds(B, T, optim);
    const run = (p: Program | GpuProgram) => runSteps(p, init, feeds);
    const want = await run(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: dir }));
    const gpu = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir });
    // every base GEMM dequantizes NF4 in its loads, most of them chained with their LoRA term (plan.ts gemmChains)
    const nf4 = gpu.plan.dispatches.filter((d) => d.wgsl.includes('NF4[code]'));
    expect(nf4.length).toBeGreaterThan(0);
    expect(nf4.filter((d) => d.wgsl.includes('var<workgroup> Xs')).length).toBeGreaterThan(0);
    const got = await run(gpu);
    await weights.close();
    const e = { loss: Math.abs(got.first - want.first) / Math.abs(want.first), grad: rel(got.grad, want.grad), losses: rel(got.losses, want.losses) };
    console.log(`QLoRA llama: ${gpu.info.dispatches} dispatches (${nf4.length} with NF4 loads, ${gpu.info.byKernel.Nf4Gemm ?? 0} Nf4Gemm alone); ${formatErrors(e)}`);
    expect(e.loss).toBeLessThan(1e-5);
    expect(e.grad).toBeLessThan(1e-5);
    expect(e.losses).toBeLessThan(1e-5);
  }, 300_000);
});

describe('Nf4Gemm under f16 compute (x, y float16)', () => {
  for (const transB of [true, false]) {
    it(`y = x·W${transB ? 'ᵀ' : ''} + b and dx in f16, array<f16> and emulated storage, vs the CPU EP's f16 graph`, async () => {
      const N = 5, IN = 40, OUT = 72;
      const q = quantizeNf4(randn(IN * OUT, 11, 0.1), transB ? [OUT, IN] : [IN, OUT]);
      const g = new GraphBuilder();
      const x = g.cast(g.input('x', 'float32', [N, IN]), 'float16');
      const gy = g.cast(g.input('gy', 'float32', [N, OUT]), 'float16');
      const bias = g.cast(g.weight('b', 'float32', [OUT], { kind: 'raw', bytes: new Uint8Array(randn(OUT, 3).buffer) }), 'float16');
      const y = nf4Gemm(g, x, placeNf4(g, 'w', q), bias, transB);
      expect(y.dtype).toBe('float16');
      const { grads } = gradients(g, [[y, gy]], [x]);
      expect(grads[0]!.dtype).toBe('float16');
      g.output('y', g.cast(y, 'float32'));
      g.output('dx', g.cast(grads[0]!, 'float32'));
      const feeds = { x: hostTensor('float32', [N, IN], randn(N * IN, 5)), gy: hostTensor('float32', [N, OUT], randn(N * OUT, 6)) };
      const want = await runModel(lowerGraph(g).model, feeds);
      const f16 = new Float32Array(1);
      const isF16 = (v: number) => { f16[0] = v; return Math.abs(v) < 65504 && (new Uint32Array(f16.buffer)[0]! & 0x1fff) === 0 || Math.abs(v) < 6.2e-5; };
      const outs: Record<string, number[]>[] = [];
      for (const shaderF16 of [true, false]) {
        // the two Nf4Gemms alone (their own kernel), then grouped into one dispatch (the default): the same numbers
        const prog = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'dx'] }, { shaderF16, noGrouping: true });
        const grouped = await GpuProgram.create({ graph: g, state: [], fetch: ['y', 'dx'] }, { shaderF16 });
        try {
          expect(prog.info.byKernel.Nf4Gemm).toBe(2);
          expect(grouped.info.dispatches).toBeLessThan(prog.info.dispatches);
          const got = await prog.step(feeds);
          const gotGrouped = await grouped.step(feeds);
          for (const k of ['y', 'dx']) expect(toNumbers(gotGrouped[k]!), `${k} grouped`).toEqual(toNumbers(got[k]!));
          const o: Record<string, number[]> = {};
          for (const k of ['y', 'dx']) {
            o[k] = toNumbers(got[k]!);
            // every output holds an f16 value (stored in 16 bits or rounded to f16)
            expect(o[k]!.every(isF16), k).toBe(true);
            const e = rel(o[k]!, toNumbers(want[k]!));
            console.log(`Nf4Gemm f16 transB=${transB} shaderF16=${shaderF16} ${k}: ${e.toExponential(1)}`);
            expect(e, k).toBeLessThan(2e-3);
          }
          outs.push(o);
        } finally {
          await prog.dispose();
          await grouped.dispose();
        }
      }
      // array<f16> and the emulation round alike
      expect(outs[1]).toEqual(outs[0]);
    }, 120_000);
  }
});

describe('QLoRA train step in f16 compute: GPU backend vs CPU EP (f16)', () => {
  it('tiny llama (NF4 base weights, f16 activations): loss, gradients and 3 AdamW steps agree', async () => {
    const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
    const { dir, config, layout, weights, lora } = await loraStepFixture('llama', { prefix: 'lathe-gpu-nf4-f16-', dtype: 'f16' });
    const B = 2, T = 8;
    const src = { weights, dir, quantize: 'nf4' as const, compute: 'float16' as const };
    const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
    const tgGpu = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true }, optim);
    expect(tgGpu.graph.nodes.some((n) => n.op === 'Nf4Gemm' && n.inputs[0]!.dtype === 'float16')).toBe(true);
    const init = stepState(loraStart(lora));
    const feeds = stepFeeds(B, T, optim, { masked: [3] });
    const want = await runSteps(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: dir }), init, feeds);
    // (and the emulated storage, f32 words holding f16 values: the same numbers)
    const { got, info } = await gpuHalfAndEmulation({ graph: tgGpu.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir }, init, feeds,
      // the NF4 GEMMs run as Nf4Gemm dispatches, alone or inside GEMM groups (at 16 bindings all of them are grouped)
      (p) => expect((p.info.byKernel.Nf4Gemm ?? 0) + (p.info.byKernel.GroupedGemm ?? 0)).toBeGreaterThan(0));
    // the previous formulation (a Cast of each LoRA factor): one Cast of the flat masters gives the same numbers bit for bit
    const before = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true, castPerFactor: true }, optim);
    expectSameRun(got, await runSteps(await GpuProgram.create({ graph: before.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir }), init, feeds));
    await weights.close();
    const e = { loss: Math.abs(got.first - want.first) / Math.abs(want.first), grad: rel(got.grad, want.grad), losses: rel(got.losses, want.losses) };
    console.log(`QLoRA llama f16: ${info.dispatches} dispatches (${info.byKernel.Nf4Gemm ?? 0} Nf4Gemm alone, ${info.byKernel.GroupedGemm ?? 0} GEMM groups); ${formatErrors(e)}`);
    // f16 precision, as f16.test.ts's LoRA step (the CPU EP computes much of its "f16" graph in f32)
    expect(e.loss).toBeLessThan(1e-3);
    expect(e.grad).toBeLessThan(1e-2);
    expect(e.losses).toBeLessThan(1e-3);
  }, 600_000);
});

describe('QLoRA in the planner fusions: Nf4Gemm chained with its LoRA term, with a side product, one packed weight buffer', () => {
  for (const transB of [true, false]) {
    it(`y = x·W${transB ? 'ᵀ' : ''} + b + 2·(x·Aᵀ)·Bᵀ and dx = dy·W${transB ? '' : 'ᵀ'} + (2·dy·B)·A: fused = unfused = CPU EP, grouped, 8 and 16 bindings, 64×64 tiles`, async () => {
      // M, K, N off the tiles (rows past M, a K tail, several column tiles); r = 5; 2880 weights: a short second-level block
      const M = 37, K = 40, N = 72, R = 5;
      const q = quantizeNf4(randn(K * N, 41, 0.1), transB ? [N, K] : [K, N]);
      const g = new GraphBuilder();
      const x = g.input('x', 'float32', [M, K]);
      const dy = g.input('dy', 'float32', [M, N]);
      const w = placeNf4(g, 'w', q);
      const bias = g.weight('b', 'float32', [N], { kind: 'raw', bytes: new Uint8Array(randn(N, 42).buffer) });
      const la = g.weight('la', 'float32', [R, K], { kind: 'raw', bytes: new Uint8Array(randn(R * K, 43).buffer) });
      const lb = g.weight('lb', 'float32', [N, R], { kind: 'raw', bytes: new Uint8Array(randn(N * R, 44).buffer) });
      // forward: xa also read by dB (stored as well as summed in the base's K loop)
      const xa = g.gemm(x, la, null, { transB: true });
      g.output('y', g.gemm(xa, lb, nf4Gemm(g, x, w, bias, transB), { transB: true, alpha: 2 }));
      g.output('dB', g.gemm(dy, xa, null, { transA: true, alpha: 2 }));
      // backward: the base dx is the Nf4Gemm with transB flipped (its gradient rule)
      const dyb = g.gemm(dy, lb, null, { alpha: 2 });
      g.output('dA', g.gemm(dyb, x, null, { transA: true }));
      g.output('dx', g.gemm(dyb, la, nf4Gemm(g, dy, w, null, !transB)));
      const outs = ['y', 'dB', 'dA', 'dx'];
      const feeds = { x: hostTensor('float32', [M, K], randn(M * K, 45)), dy: hostTensor('float32', [M, N], randn(M * N, 46)) };
      const p = planGraph(g, { noGrouping: true });
      // both pairs in one dispatch each with their side products (x·A, dy·B), then dB and dA
      expect(p.byKernel).toEqual({ LoraGemm: 2, Gemm: 2 });
      // the NF4 weight is one buffer (codes, absmax codes, scale2, offset, dynamic map): a pair binds x, W, A, B, y,
      // the stored side product and the params (the forward also the bias): 8 and 7, within WebGPU's default 8
      const lora = p.dispatches.filter((d) => d.name === 'LoraGemm');
      expect(lora.map((d) => d.bindings.length)).toEqual([8, 7]);
      expect(p.buffers.filter((b) => b.kind === 'weight' && b.label.startsWith('w'))).toHaveLength(1);
      const want = await runModel(lowerGraph(g).model, feeds);
      const { ref, fused } = await runSideProductPlans(g, outs, feeds, await openGpu());
      for (const k of outs) {
        const e = rel(ref[k]!, toNumbers(want[k]!));
        console.log(`chained Nf4Gemm transB=${transB} ${k}: unfused vs CPU EP ${e.toExponential(1)}, fused vs unfused ${Math.max(...fused.map((r) => rel(r[k]!, ref[k]!))).toExponential(1)}`);
        for (const r of fused) expect(rel(r[k]!, ref[k]!), `${k}: fused vs unfused`).toBeLessThan(1e-6);
        expect(e, `${k}: vs the CPU EP`).toBeLessThan(2e-6);
      }
    }, 300_000);
  }

  for (const halfType of ['float16', 'bfloat16'] as const) {
    it(`${halfType === 'float16' ? 'f16' : 'bf16'} compute: the chained pairs round the Nf4Gemm result where its store would, fused = unfused bit for bit in both storages, grouped and not (device)`, async () => {
      // the f32 test's graph in the compute type (f32 feeds cast to float16, the IR's 16-bit type; outputs widened back)
      const M = 37, K = 40, N = 72, R = 5;
      const q = quantizeNf4(randn(K * N, 41, 0.1), [N, K]);
      const g = new GraphBuilder();
      const shapes: Record<string, number[]> = { x: [M, K], dy: [M, N], b: [N], la: [R, K], lb: [N, R] };
      const feeds: Record<string, HostTensor> = {};
      const h: Record<string, Value> = {};
      Object.entries(shapes).forEach(([name, shape], j) => {
        feeds[name] = hostTensor('float32', shape, randn(shape.reduce((s, d) => s * d, 1), 45 + j));
        h[name] = g.cast(g.input(name, 'float32', shape), 'float16');
      });
      const out = (name: string, v: Value) => g.output(name, g.cast(v, 'float32'));
      const w = placeNf4(g, 'w', q);
      const xa = g.gemm(h.x!, h.la!, null, { transB: true });
      out('y', g.gemm(xa, h.lb!, nf4Gemm(g, h.x!, w, h.b!, true), { transB: true, alpha: 2 }));
      out('xa', xa);
      const dyb = g.gemm(h.dy!, h.lb!, null, { alpha: 2 });
      out('dx', g.gemm(dyb, h.la!, nf4Gemm(g, h.dy!, w, null, false)));
      const fetch = ['y', 'xa', 'dx'];
      // both pairs one dispatch each (Nf4Gemm base, LoRA term, side product)
      const plan = planGraph(g, { noGrouping: true, shaderF16: true, halfType });
      expect(plan.byKernel.LoraGemm).toBe(2);
      expect(plan.byKernel.Nf4Gemm ?? 0).toBe(0);
      expect(plan.byKernel.Gemm ?? 0).toBe(0);
      await expectSameOutputsAcrossPlans(g, fetch, feeds,
        [['unfused', { noFusion: true, noGrouping: true }], ['fused', { noGrouping: true }], ['fused, grouped at 8 bindings', { maxStorageBuffers: 8 }], ['fused, grouped at 16 bindings', { maxStorageBuffers: 16 }]],
        { halfType }, (p, label) => {
          if (!label.startsWith('unfused')) expect(p.plan.dispatches.filter((d) => d.wgsl.includes('var<workgroup> Xs')).length).toBeGreaterThan(0);
        });
    }, 600_000);
  }
});

describe('QLoRA backward dx sums: Nf4Gemm with a C input in chained LoRA pairs (autodiff-built)', () => {
  // x read by two QLoRA projections (q and k, gate and up): autodiff sums their dx in forward order, each GEMM taking
  // the sum so far as its C, no Add. Built base first (llm/forward.ts: the Nf4Gemm before x·Aᵀ, so the LoRA term
  // (dy·B)·A takes the Nf4Gemm's result: Nf4Gemm the first of each pair) or LoRA first (the Nf4Gemm takes the LoRA
  // term's result as its C: the second of each pair, its C never stored)
  const M = 37, K = 40, N = 72, R = 5;
  const build = (half: boolean, baseFirst: boolean) => {
    const g = new GraphBuilder();
    const shapes: Record<string, number[]> = { x: [M, K], gy1: [M, N], gy2: [M, N], la1: [R, K], lb1: [N, R], la2: [R, K], lb2: [N, R] };
    const feeds: Record<string, HostTensor> = {};
    const h: Record<string, Value> = {};
    Object.entries(shapes).forEach(([name, shape], j) => {
      feeds[name] = hostTensor('float32', shape, randn(shape.reduce((a, d) => a * d, 1), 60 + j));
      const v = g.input(name, 'float32', shape);
      h[name] = half ? g.cast(v, 'float16') : v;
    });
    const out = (name: string, v: Value) => g.output(name, half ? g.cast(v, 'float32') : v);
    const ys = [1, 2].map((i) => {
      const w = placeNf4(g, `w${i}`, quantizeNf4(randn(K * N, 70 + i, 0.1), [N, K]));
      const base = baseFirst ? nf4Gemm(g, h.x!, w, null, true) : null;
      const xa = g.gemm(h.x!, h[`la${i}`]!, null, { transB: true });
      return g.gemm(xa, h[`lb${i}`]!, base ?? nf4Gemm(g, h.x!, w, null, true), { transB: true, alpha: 2 });
    });
    const wrt = ['x', 'la1', 'lb1', 'la2', 'lb2'];
    const { grads } = gradients(g, [[ys[0]!, h.gy1!], [ys[1]!, h.gy2!]], wrt.map((n) => h[n]!));
    out('y1', ys[0]!);
    out('y2', ys[1]!);
    wrt.forEach((n, i) => out(`d${n}`, grads[i]!));
    return { g, feeds, fetch: ['y1', 'y2', ...wrt.map((n) => `d${n}`)], dx: grads[0]! };
  };
  const expectPairs = (g: GraphBuilder, dx: Value, baseFirst: boolean, opts: Parameters<typeof planGraph>[1]) => {
    expect(g.nodes.filter((n) => n.op === 'Add')).toEqual([]);
    // dx's last GEMM: the second pair's LoRA term (base first) or its Nf4Gemm, the other taking the first pair's result
    const cs = g.nodes.filter((n) => n.op === 'Nf4Gemm' && n.inputs[8]);
    expect(cs).toHaveLength(baseFirst ? 1 : 2);
    expect(dx.node?.op).toBe(baseFirst ? 'Gemm' : 'Nf4Gemm');
    const plan = planGraph(g, { noGrouping: true, ...opts });
    // forward and backward: two pairs each, one dispatch a pair (x·A or dy·B its side product); no Add, no Nf4Gemm alone
    expect(plan.byKernel.LoraGemm).toBe(4);
    expect(plan.byKernel.Nf4Gemm ?? 0).toBe(0);
    expect(Object.keys(plan.byKernel).filter((k) => k.includes('Add'))).toEqual([]);
  };

  for (const baseFirst of [true, false]) {
    it(`f32, ${baseFirst ? 'base' : 'LoRA term'} built first: fused = unfused = CPU EP, grouped at 8 and 16 bindings, 64×64 tiles`, async () => {
      const { g, feeds, fetch, dx } = build(false, baseFirst);
      expectPairs(g, dx, baseFirst, {});
      const want = await runModel(lowerGraph(g).model, feeds);
      const { ref, fused } = await runSideProductPlans(g, fetch, feeds, await openGpu());
      for (const k of fetch) {
        const e = rel(ref[k]!, toNumbers(want[k]!));
        console.log(`NF4 dx sum (${baseFirst ? 'base' : 'LoRA'} first) ${k}: unfused vs CPU EP ${e.toExponential(1)}, fused vs unfused ${Math.max(...fused.map((r) => rel(r[k]!, ref[k]!))).toExponential(1)}`);
        for (const r of fused) expect(rel(r[k]!, ref[k]!), `${k}: fused vs unfused`).toBeLessThan(1e-6);
        expect(e, `${k}: vs the CPU EP`).toBeLessThan(2e-6);
      }
    }, 300_000);
  }

  for (const halfType of ['float16', 'bfloat16'] as const) {
    // (bf16: the LoRA-first order only, the Nf4Gemm second in its pair; the other is the chained test's form above)
    it(`${halfType === 'float16' ? 'f16' : 'bf16'} compute, ${halfType === 'float16' ? 'both build orders' : 'LoRA term built first'}: every plan equals the unfused one bit for bit in both storages, grouped and not (device)`, async () => {
      for (const baseFirst of halfType === 'float16' ? [true, false] : [false]) {
        const { g, feeds, fetch, dx } = build(true, baseFirst);
        expectPairs(g, dx, baseFirst, { shaderF16: true, halfType });
        await expectSameOutputsAcrossPlans(g, fetch, feeds,
          [['unfused', { noFusion: true, noGrouping: true }], ['fused', { noGrouping: true }], ['fused, grouped at 8 bindings', { maxStorageBuffers: 8 }], ['fused, grouped at 16 bindings', { maxStorageBuffers: 16 }]],
          { halfType });
      }
    }, 600_000);
  }
});

describe('QLoRA dispatches a layer (Llama-3.1-8B shapes, B1×T2048, r16 all-linear, plan only)', () => {
  /**
   * Ungrouped / 8 bindings / 16, a 2-layer plan minus a 1-layer one. f32 compute 63 / 49 / 32 before the NF4 weight was
   * one packed buffer and Nf4Gemm the base of a chained LoRA pair with its side product (SwiGLU then also folds into
   * the down Nf4Gemm's loads); 16-bit compute 68 / 54 / 37 before, 67 / 43 / 36 with the packing and the fold, 63 / 39 / 32
   * with the 16-bit planner fusions on its bf16 Gemms too (h27-half), 47 / 35 / 24 with the NF4 pairs chained on 16-bit
   * results as well; then 46 / 34 / 23 (f32) and 47 / 35 / 24 (16-bit) while the backward summed the NF4 dx of q/k/v and
   * gate/up with Adds (those Nf4Gemms alone, a 16-bit Add a dispatch of its own). With Nf4Gemm's C input (the dx sums
   * one chain of base + LoRA pairs, as for bf16 weights): 37 / 30 / 20 in every compute type; 37 / 30 / 19 with the
   * NF4 codes placed before scheduling (a GEMM group moved up before an Nf4Const node's place took no NF4 GEMM: the
   * MLP's gate and up pairs ran apart), Llama-3.2-1B's counts with bf16 weights (fusion.test.ts).
   */
  const PINS = { float32: [37, 30, 19], float16: [37, 30, 19], bfloat16: [37, 30, 19] } as const;
  const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };
  const plan = async (compute: keyof typeof PINS, layers: number, opts: { noGrouping?: boolean; maxStorageBuffers?: number }) => {
    const cfg = parseModelConfig({ ...REAL_SHAPES['Llama-3.1-8B']!, num_hidden_layers: layers });
    const lay = weightsLayout(cfg);
    const lora = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    const q = { quantize: 'nf4' as const, cache: layoutOnlyNf4CacheForTest(cfg) };
    const src = compute === 'float16' ? { weights: layoutOnlyWeights(cfg, 'F16'), dir: '/nonexistent', compute, ...q }
      : { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true, ...q, ...(compute === 'bfloat16' ? { compute: 'float16' as const, bf16Compute: true } : {}) };
    const tg = await buildTrainGraph(cfg, lay, src, lora, { batch: 1, seqLen: 2048, fused: true }, optim);
    return planGraph(tg.graph, { outputs: [...tg.fetch, ...tg.state.map((x) => x.output)], state: tg.state.map((x) => x.input), shaderF16: true,
      ...(compute === 'bfloat16' ? { halfType: 'bfloat16' as const } : {}), ...opts });
  };
  for (const compute of ['float32', 'float16', 'bfloat16'] as const) {
    it(`${compute} compute: ${PINS[compute].join(' / ')}`, async () => {
      const got: number[] = [];
      for (const opts of [{ noGrouping: true }, {}, { maxStorageBuffers: 16 }]) {
        const one = await plan(compute, 1, opts), two = await plan(compute, 2, opts);
        got.push(two.dispatches.length - one.dispatches.length);
        // SwiGLU folded into its readers' loads (the down Nf4Gemm's among them)
        expect((two.byKernel.SwiGLU ?? 0) - (one.byKernel.SwiGLU ?? 0)).toBe(0);
        if (compute === 'float32') expect((two.byKernel.LoraGemm ?? 0) + (two.byKernel['LoraGemm+Fused(Add)'] ?? 0)).toBeGreaterThan((one.byKernel.LoraGemm ?? 0) + (one.byKernel['LoraGemm+Fused(Add)'] ?? 0));
      }
      expect(got).toEqual([...PINS[compute]]);
    }, 120_000);
  }
});
