/**
 * Activation recomputation (gradient checkpointing) on Lathe's GPU backend: the fused graph with per-block
 * recomputation (train-graph.ts recomputedGradient) gives the CPU EP's loss and gradients, and its buffer
 * plan keeps far fewer activation bytes than the plain fused graph (the plan's lifetime-based placement:
 * only the block inputs and one block's working set are live in the backward).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { buildLoraLayout } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor } from '../../../../../src-main/engine/backends/onnx';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel } from '../../../../helpers/numeric';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';
import { loraStart, loraStepFixture, runSteps, shortRun, stepFeeds, stepMetricErrors, stepState, trainCpuAndGpu } from '../../../../helpers/lora-step';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GPU backend: activation recomputation', () => {
  for (const arch of ['llama', 'qwen2']) {
    it(`${arch}: the recomputed fused step gives the CPU EP's loss and gradients (1e-5)`, async () => {
      const { dir, config, layout, weights, lora } = await loraStepFixture(arch, { prefix: 'lathe-gpu-rc-' });
      const B = 2, T = 8;
      const src = openWeightSource(weights);
      const cpu = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
      const gpuGraph = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true, recompute: true }, optim);
      expect(gpuGraph.graph.inputs.some((v) => v.name === 'recompute_one')).toBe(true);
      const init = stepState(loraStart(lora));
      // one accumulate-only micro-batch: its loss and gradient
      const feeds = (extra = {}) => stepFeeds(B, T, optim, { idStep: 5, masked: [2], extra });
      const want = await runSteps(await Program.create({ model: cpu.model, state: cpu.state, fetch: cpu.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }), init, feeds(), 0);
      const got = await runSteps(await GpuProgram.create({ graph: gpuGraph.graph, state: gpuGraph.state, fetch: gpuGraph.fetch }, { externalDataDir: dir }), init,
        feeds({ recompute_one: hostTensor('float32', [], new Float32Array([1])) }), 0);
      await weights.close();
      expect(Math.abs(got.first - want.first) / Math.abs(want.first)).toBeLessThan(1e-5);
      expect(rel(got.grad, want.grad)).toBeLessThan(1e-5);
    }, 300_000);
  }

  it('trainer: `recompute` on the GPU backend trains 2 steps with the CPU EP\'s losses and grad norms', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const { cpu, gpu } = await trainCpuAndGpu(shortRun(model, dataset, 2), { recompute: true });
    expect(gpu.result.ep).toBe('gpu');
    expect(gpu.steps.length).toBe(2);
    const d = stepMetricErrors(gpu.steps, cpu.steps);
    expect(d.loss).toBeLessThan(1e-5);
    expect(d.gradNorm).toBeLessThan(1e-4);
  }, 600_000);

  it('plan (no device): SmolLM2-135M shape at B1×T512 keeps a fraction of the activations with recompute on', async () => {
    const cfg = parseModelConfig(REAL_SHAPES['SmolLM2-135M']!);
    const lay = weightsLayout(cfg);
    const lora = buildLoraLayout(cfg, lay, { rank: 16, alpha: 32, dropout: 0, rslora: false, targets: 'all-linear', seed: 1 });
    const src = { weights: layoutOnlyWeights(cfg), dir: '/nonexistent', bf16InPlace: true };
    const temp = async (recompute: boolean) => {
      const g = await buildTrainGraph(cfg, lay, src, lora, { batch: 1, seqLen: 512, fused: true, recompute }, optim);
      return planGraph(g.graph, { outputs: [...g.fetch, ...g.state.map((s) => s.output)], state: g.state.map((s) => s.input) }).bytes.temp;
    };
    const plain = await temp(false), rc = await temp(true);
    const N = 512, C = cfg.hiddenSize, L = cfg.numLayers, V = cfg.vocabSize;
    // block inputs (L × [N, C]) + one vocabulary chunk of logits (LinearCrossEntropy: at most 64 MiB, never [N, V])
    // + one block's working set (generously 40 × [N, C] or 4 × [N, F]) + the flat gradient being assembled (its
    // pieces and their concatenation: 2 × [P])
    const bound = 4 * (L * N * C + Math.min(N * V, 2 ** 24) + Math.max(40 * N * C, 4 * N * cfg.intermediateSize) + 2 * lora.size);
    console.log(`SmolLM2-135M B1×T512 temp bytes: plain ${plain}, recompute ${rc}, bound ${bound}`);
    expect(rc).toBeLessThan(bound);
    expect(rc).toBeLessThan(0.5 * plain);
  }, 120_000);
});
