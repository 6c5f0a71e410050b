/**
 * f16 compute on Lathe's GPU backend (`compute: 'float16'`): activations stored in 16 bits (array<f16> with the
 * adapter's shader-f16, else f32 words rounded to f16 on store), f32 math inside every kernel, f32 LoRA masters
 * and AdamW. The whole LoRA train step (the fused f16 graph) against the CPU EP's f16 graph (decomposed), and
 * the plan's activation bytes against the f32 graph's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { buildLoraLayout } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program } from '../../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, openGpu, planGraph, type Plan } from '../../../../../src-main/engine/backends/webgpu';
import { parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import type { ModelWeights } from '../../../../../src-main/engine/safetensors';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel, rel2 } from '../../../../helpers/numeric';
import { expectSameRun, formatErrors, gpuHalfAndEmulation, loraStart, loraStepFixture, runSteps, shortRun, stepErrors, stepFeeds, stepMetricErrors, stepState, trainSteps } from '../../../../helpers/lora-step';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('LoRA train step in f16 compute: GPU backend vs CPU EP (f16)', () => {
  for (const arch of ['llama', 'qwen2']) {
    it(`${arch}: loss, gradients and 3 AdamW steps agree with the CPU EP's f16 graph`, async () => {
      const { dir, config, layout, weights, lora } = await loraStepFixture(arch, { prefix: 'lathe-gpu-f16-', dtype: 'f16' });
      const B = 2, T = 8;
      const src = openWeightSource(weights, { compute: 'float16' });
      const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
      const tgGpu = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true }, optim);
      expect(tgGpu.graph.nodes.some((n) => n.op === 'FlashAttention' && n.inputs[0]!.dtype === 'float16')).toBe(true);
      const init = stepState(loraStart(lora));
      const feeds = stepFeeds(B, T, optim, { masked: [3] });
      const want = await runSteps(await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }), init, feeds);
      // (and the emulation, f32 words holding f16 values for adapters without shader-f16: the same numbers)
      const { got, info } = await gpuHalfAndEmulation({ graph: tgGpu.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir }, init, feeds);
      if (arch === 'llama') {
        // the previous formulation (a Cast of each LoRA factor, its gradient widened and copied into the flat one):
        // one Cast of the flat masters computes the same numbers bit for bit
        const before = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true, castPerFactor: true }, optim);
        expectSameRun(got, await runSteps(await GpuProgram.create({ graph: before.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: dir }), init, feeds));
      }
      await weights.close();
      const e = { ...stepErrors(got, want), grad2: rel2(got.grad, want.grad) };
      console.log(`${arch} f16 compute: ${info.dispatches} dispatches, GPU bytes ${JSON.stringify(info.bytes)}; ${formatErrors(e)}`);
      // the two round in different places: the GPU stores every f16 activation as f16 and keeps f32 inside its fused
      // kernels; the CPU EP has f16 kernels for few ops (onnxruntime casts around the rest and drops cast pairs, so
      // much of its "f16" graph runs in f32). They agree to f16 precision, not bit for bit: measured loss ≤ 3e-5,
      // gradients ≤ 1e-3 (max-relative), losses ≤ 8e-5
      expect(e.loss).toBeLessThan(1e-3);
      expect(e.grad).toBeLessThan(1e-2);
      expect(e.losses).toBeLessThan(1e-3);
      expect(rel(got.norms.slice(0, 1), want.norms.slice(0, 1))).toBeLessThan(1e-2);
      // Adam divides by √v: gradients near 0 turn f16 rounding noise into visible steps, so the update is judged
      // as a whole (L2; measured 1.7-2.4e-2)
      expect(e.update).toBeLessThan(5e-2);
    }, 600_000); // lavapipe compiles each new (f16) pipeline on first use: minutes on a loaded machine
  }
});

describe('f16 compute: activation bytes and the trainer', () => {
  it('the plan of an f16 step holds about half the activation bytes of the f32 step (SmolLM2-135M shape, B1×T512)', async () => {
    const cfg = parseModelConfig(REAL_SHAPES['SmolLM2-135M']!);
    const lay = weightsLayout(cfg);
    const lora = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    // f16 weights that exist only as a layout (the plan reads shapes, never the file)
    const weights = { entry: (name: string) => {
      const shape = lay.shapes.get(name)!;
      return { name, dtype: 'F16', shape, fileOffset: 0, byteLength: 2 * shape.reduce((a, b) => a * b, 1), file: '/nonexistent/model.safetensors' };
    } } as unknown as ModelWeights;
    const act: Record<string, number> = {};
    for (const compute of ['float32', 'float16'] as const) {
      const tg = await buildTrainGraph(cfg, lay, { weights, dir: '/nonexistent', compute }, lora, { batch: 1, seqLen: 512, fused: true }, optim);
      const plan = planGraph(tg.graph, { outputs: [...tg.fetch, ...tg.state.map((x) => x.output)], state: tg.state.map((x) => x.input), shaderF16: true });
      act[compute] = plan.bytes.temp + plan.bytes.input;
      if (compute === 'float16') {
        // every activation the kernels write is array<f16> or f32 (statistics, the loss): none is emulated f16r
        expect(plan.dispatches.some((d) => d.bindings.some((b) => b.ref.storage === 'f16r'))).toBe(false);
        expect(plan.dispatches.some((d) => d.bindings.some((b) => b.ref.storage === 'h16'))).toBe(true);
      }
    }
    const ratio = act.float16! / act.float32!;
    console.log(`SmolLM2-135M B1×T512 activations: f32 ${(act.float32! / 2 ** 20).toFixed(1)} MiB, f16 ${(act.float16! / 2 ** 20).toFixed(1)} MiB (${ratio.toFixed(3)})`);
    // about half: what stays f32 is the fused head's vocabulary-chunk scratch (LinearCrossEntropy computes a chunk's
    // logits in f32), the statistics and the loss (measured 0.587 at this shape after the planner fusions)
    expect(ratio).toBeGreaterThan(0.45);
    expect(ratio).toBeLessThan(0.66); // 0.633 since SwiGLU folded into its readers' loads (h no longer stored: 4 bytes an element gone from f32, 2 from f16)
  }, 120_000);

  it('per layer (Llama-3.2-1B shapes, B1×T2048): the 16-bit steps Cast the LoRA masters once a step, no Cast, Concat or Transpose a layer, the f32 step\'s kernels', async () => {
    // dispatches a layer = a 2-layer plan minus a 1-layer plan; f16 compute over f16 weights, bf16 compute over the bf16
    // weights in place, and f16 compute the previous way (a Cast per LoRA factor: castPerFactor) as the reference
    const plans = async (compute: 'float32' | 'float16' | 'bfloat16', castPerFactor: boolean, opts: { noGrouping?: boolean; maxStorageBuffers?: number }) => {
      const out = [];
      for (const layers of [1, 2]) {
        const cfg = parseModelConfig({ ...REAL_SHAPES['Llama-3.2-1B']!, num_hidden_layers: layers });
        const lay = weightsLayout(cfg);
        const lora = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
        const src = compute === 'float16' ? { weights: layoutOnlyWeights(cfg, 'F16'), dir: '/nonexistent', compute }
          : { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true, ...(compute === 'bfloat16' ? { compute: 'float16' as const, bf16Compute: true } : {}) };
        const tg = await buildTrainGraph(cfg, lay, src, lora, { batch: 1, seqLen: 2048, fused: true, castPerFactor }, optim);
        out.push(planGraph(tg.graph, { outputs: [...tg.fetch, ...tg.state.map((x) => x.output)], state: tg.state.map((x) => x.input), shaderF16: true,
          ...(compute === 'bfloat16' ? { halfType: 'bfloat16' as const } : {}), ...opts }));
      }
      const [one, two] = out as [Plan, Plan];
      const byKernel: Record<string, number> = {};
      for (const k of new Set([...Object.keys(one.byKernel), ...Object.keys(two.byKernel)])) byKernel[k] = (two.byKernel[k] ?? 0) - (one.byKernel[k] ?? 0);
      return { perLayer: two.dispatches.length - one.dispatches.length, byKernel, step: two };
    };
    const lines: string[] = [];
    for (const [label, opts] of [['ungrouped', { noGrouping: true }], ['8 bindings', {}], ['16 bindings', { maxStorageBuffers: 16 }]] as const) {
      const f32 = await plans('float32', false, opts), f16 = await plans('float16', false, opts), bf16 = await plans('bfloat16', false, opts);
      const before = await plans('float16', true, opts);
      lines.push(`${label}: f32 ${f32.perLayer}, f16 ${f16.perLayer}, bf16 ${bf16.perLayer}, f16 with a Cast per factor ${before.perLayer}`);
      for (const p of [f16, bf16]) {
        expect(p.byKernel.Cast ?? 0).toBe(0);
        expect(p.byKernel.Concat ?? 0).toBe(0);
        expect(p.byKernel.Transpose ?? 0).toBe(0);
        // one Cast of the flat master vector a step (bf16 weights' Casts are views), the gradient's Concat placed
        expect(p.step.byKernel.Cast).toBe(1);
        expect(p.step.byKernel.Concat ?? 0).toBe(0);
        // the planner fusions the f32 step takes, taken on 16-bit results too (the GEMM's value, a chained pair's first
        // result and a LoRA side product rounded to the compute type where their stores would round them): the same
        // kernels a layer as the f32 step (65 / 43 / 35 for f16 and 65 / 44 / 39 for bf16 while they were f32-only;
        // bf16 grouped fewer at 16 bindings until its weights' Casts, views, were resolved before grouping)
        expect(p.perLayer).toBe(f32.perLayer);
        const nonzero = (o: Record<string, number>) => Object.fromEntries(Object.entries(o).filter(([, n]) => n !== 0));
        expect(nonzero(p.byKernel)).toEqual(nonzero(f32.byKernel));
      }
      // the previous formulation: a Cast of each LoRA factor and a Concat copy of each factor's gradient a layer (7 projections)
      expect(before.byKernel.Cast).toBe(14);
      expect(before.byKernel.Concat).toBe(14);
      expect(before.perLayer).toBe(f16.perLayer + 28);
    }
    console.log(`Llama-3.2-1B B1×T2048 dispatches a layer: ${lines.join('; ')}`);
  }, 300_000);

  it('trains 3 steps with compute float16 on the GPU backend, close to the f32 run', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { ...shortRun(model, dataset, 3), ep: 'gpu' };
    const logs: string[] = [];
    const f32 = await trainSteps({ ...base, out: path.join(tempDir(), 'f32') });
    const f16 = await trainSteps({ ...base, compute: 'float16', out: path.join(tempDir(), 'f16') }, { onLog: (_level, m) => logs.push(m) });
    expect(f16.result.ep).toBe('gpu');
    expect(logs.some((l) => /^GPU backend: \d+ dispatches/.test(l))).toBe(true);
    expect(f16.steps.length).toBe(3);
    const d = stepMetricErrors(f16.steps, f32.steps);
    expect(d.loss).toBeLessThan(1e-2);
    expect(d.gradNorm).toBeLessThan(5e-2);
  }, 600_000);
});
