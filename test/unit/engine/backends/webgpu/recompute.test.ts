/**
 * Activation recomputation (gradient checkpointing) on Lathe's GPU backend: the fused graph with per-block
 * recomputation (train-graph.ts recomputedGradient) gives the CPU EP's loss and gradients, and its buffer
 * plan keeps far fewer activation bytes than the plain fused graph (the plan's lifetime-based placement:
 * only the block inputs and one block's working set are live in the backward).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { openModel, parseModelConfig, weightsLayout } from '../../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { Program, hostTensor, type HostTensor } from '../../../../../src-main/engine/backends/onnx';
import { adamwScalars } from '../../../../../src-main/engine/nn/layers';
import { GpuProgram, closeGpu, openGpu, planGraph } from '../../../../../src-main/engine/backends/webgpu';
import { tempDir } from '../../../../helpers/services';
import { createTinyModel } from '../../../../../src-main/engine/models/tiny';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { rel } from '../../../../helpers/numeric';
import { REAL_SHAPES, layoutOnlyWeights } from '../../../../bench/webgpu';
import { train } from '../../../../../src-main/engine/train/trainer';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';

const optim = { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01, maxGradNorm: 1 };

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

describe('GPU backend: activation recomputation', () => {
  for (const arch of ['llama', 'qwen2']) {
    it(`${arch}: the recomputed fused step gives the CPU EP's loss and gradients (1e-5)`, async () => {
      const dir = path.join(tempDir('lathe-gpu-rc-'), arch);
      await createTinyModel(arch, dir, { seed: 1 });
      const { config, layout, weights } = await openModel(dir);
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const B = 2, T = 8, N = B * T, P = lora.size;
      const src = openWeightSource(weights);
      const cpu = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
      const gpuGraph = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T, fused: true, recompute: true }, optim);
      expect(gpuGraph.graph.inputs.some((v) => v.name === 'recompute_one')).toBe(true);
      const p0 = initLoraParams(lora, 3);
      for (const m of lora.modules) for (let i = 0; i < m.outFeatures * lora.rank; i++) p0[m.bOffset + i] = 0.02 * Math.sin(i + m.bOffset);
      const z = () => hostTensor('float32', [P], new Float32Array(P));
      const ids = new BigInt64Array(N), targets = new BigInt64Array(N), mask = new Float32Array(N).fill(1);
      for (let i = 0; i < N; i++) ids[i] = BigInt(((i * 5) % 40) + 3);
      for (let i = 0; i < N; i++) targets[i] = ids[(i + 1) % N]!;
      mask[2] = 0;
      const feeds: Record<string, HostTensor> = {
        ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], targets), mask: hostTensor('float32', [N, 1], mask),
        apply: hostTensor('bool', [], new Uint8Array([0])), invCount: hostTensor('float32', [], new Float32Array([1 / (N - 1)])),
        adam: hostTensor('float32', [3], Float32Array.from(adamwScalars(optim, 1))),
      };
      const run = async (p: Program | GpuProgram, extra: Record<string, HostTensor>) => {
        await p.init({ params: hostTensor('float32', [P], p0), m: z(), v: z(), gacc: z() });
        const loss = Number((await p.step({ ...feeds, ...extra })).loss_sum!.data[0]);
        const grad = (await p.read(['gacc'])).gacc!.data as Float32Array;
        await p.dispose();
        return { loss, grad };
      };
      const want = await run(await Program.create({ model: cpu.model, state: cpu.state, fetch: cpu.fetch }, { ep: 'cpu', threads: 1, externalDataDir: src.dir }), {});
      const got = await run(await GpuProgram.create({ graph: gpuGraph.graph, state: gpuGraph.state, fetch: gpuGraph.fetch }, { externalDataDir: dir }),
        { recompute_one: hostTensor('float32', [], new Float32Array([1])) });
      await weights.close();
      expect(Math.abs(got.loss - want.loss) / Math.abs(want.loss)).toBeLessThan(1e-5);
      expect(rel(got.grad, want.grad)).toBeLessThan(1e-5);
    }, 300_000);
  }

  it('trainer: `recompute` on the GPU backend trains 2 steps with the CPU EP\'s losses and grad norms', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model);
    const base = { model, dataset, batchSize: 2, gradAccum: 2, evalEvery: 0, checkpointEvery: 10, maxSteps: 2, optim: { lr: 5e-3 }, schedule: { warmupSteps: 1 } };
    const metrics: Record<string, Record<string, number>[]> = { cpu: [], gpu: [] };
    await train({ ...base, out: path.join(tempDir(), 'cpu'), ep: 'cpu' }, { onMetric: (m) => metrics.cpu!.push(m as Record<string, number>) });
    const gpu = await train({ ...base, out: path.join(tempDir(), 'gpu'), ep: 'gpu', recompute: true }, { onMetric: (m) => metrics.gpu!.push(m as Record<string, number>) });
    expect(gpu.ep).toBe('gpu');
    const steps = (k: string) => metrics[k]!.filter((m) => typeof m.loss === 'number');
    expect(steps('gpu').length).toBe(2);
    steps('cpu').forEach((c, i) => {
      const g = steps('gpu')[i]!;
      expect(Math.abs(g.loss! - c.loss!) / c.loss!).toBeLessThan(1e-5);
      expect(Math.abs(g.gradNorm! - c.gradNorm!) / c.gradNorm!).toBeLessThan(1e-4);
    });
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
