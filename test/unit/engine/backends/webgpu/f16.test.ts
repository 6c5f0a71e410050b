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
import { closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import type { ModelWeights } from '../../../../../src-main/engine/safetensors';
import { REAL_SHAPES } from '../../../../bench/webgpu';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { tempDir } from '../../../../helpers/services';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel, rel2 } from '../../../../helpers/numeric';
import { formatErrors, gpuHalfAndEmulation, loraStart, loraStepFixture, runSteps, shortRun, stepErrors, stepFeeds, stepMetricErrors, stepState, trainSteps } from '../../../../helpers/lora-step';

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
