/**
 * Evaluation and KV-cache generation on Lathe's GPU backend against onnxruntime's CPU EP: logits and the
 * held-out loss (fused eval graph), greedy and seeded-sampling generations token for token (prefill
 * pieces padded to the prefill program's rows, decode steps with the cache resident on the GPU) for tiny
 * models with GQA, a sliding window and soft-capping (gemma2), learned positions (gpt2) and local RoPE
 * (gemma3); and the weights uploaded once per device when the train, eval and generation programs share them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../../../../../src-main/engine/models';
import { buildLoraLayout, DEFAULT_LORA, initLoraParams } from '../../../../../src-main/engine/llm/lora';
import { buildEvalGraph, buildTrainGraph } from '../../../../../src-main/engine/llm/train-graph';
import { GpuProgram, GpuSession, closeGpu, gpuWeightCache, openGpu } from '../../../../../src-main/engine/backends/webgpu';
import { Generator } from '../../../../../src-main/engine/generate';
import { GpuStepPrograms } from '../../../../../src-main/engine/generate/gpu-step';
import { computeLogits, evaluatePerplexity } from '../../../../../src-main/engine/train/infer';
import { Rng } from '../../../../../src-main/engine/models/rng';
import { openWeightSource } from '../../../../../src-main/engine/weights/source';
import { tinyDataset, tinyModel } from '../../../../helpers/tiny';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

/** max |a − b| / max |b| */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); m = Math.max(m, Math.abs(b[i]!)); }
  return d / Math.max(m, 1e-30);
}

describe('evaluation on the GPU backend', () => {
  it('logits and held-out loss equal the CPU EP (llama, gemma2)', async () => {
    for (const arch of ['llama', 'gemma2']) {
      const dir = await tinyModel(arch, 2);
      const ids = [1, 5, 17, 42, 9, 100, 33, 7, 61, 12, 3];
      const cpu = await computeLogits(dir, ids, { ep: 'cpu' });
      const gpu = await computeLogits(dir, ids, { ep: 'gpu' });
      expect(gpu.logits.length).toBe(ids.length);
      const r = relMax(gpu.logits.flat(), cpu.logits.flat());
      console.log(`${arch}: logits GPU vs CPU EP rel ${r.toExponential(2)}`);
      expect(r).toBeLessThan(1e-5);
      const data = await tinyDataset(dir, { docs: 8, blockSize: 16 });
      const ec = await evaluatePerplexity(dir, data, { ep: 'cpu', batch: 2, maxBlocks: 6 });
      const eg = await evaluatePerplexity(dir, data, { ep: 'gpu', batch: 2, maxBlocks: 6 });
      for (const [k, v] of Object.entries(ec.splits)) {
        expect(eg.splits[k]!.tokens).toBe(v.tokens);
        expect(Math.abs(eg.splits[k]!.loss - v.loss) / v.loss).toBeLessThan(1e-5);
      }
    }
  }, 300_000);
});

describe('KV-cache generation on the GPU backend', () => {
  for (const arch of ['llama', 'gemma2', 'gpt2', 'gemma3']) {
    it(`${arch}: greedy and seeded sampling equal the CPU EP token for token`, async () => {
      const dir = await tinyModel(arch, 8);
      const { config, layout, weights } = await openModel(dir);
      const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
      await weights.close();
      const params = new Rng(3).normalArray(lora.size, 0.05);
      const prompt = [5, 17, 42, 9, 100, 33, 7, 61, 250, 12]; // two prefill pieces of 8 (the second padded), past gemma2's window of 4
      const run = async (ep: 'cpu' | 'gpu') => {
        const gen = await Generator.open(dir, { ep, capacity: 32, chunk: 8, lora: { layout: lora, params } });
        try {
          const first = await gen.prefill(prompt);
          const greedy = await gen.generate(prompt, { greedy: true, maxTokens: 12, ignoreEos: true });
          const sampled = await gen.generate(prompt, { temperature: 1, topK: 0, topP: 1, seed: 11, maxTokens: 12, ignoreEos: true });
          // a new adapter (setAdapter writes the resident params slot) changes the output like on the CPU EP
          await gen.setAdapter(params.map((x) => -x));
          const flipped = await gen.generate(prompt, { greedy: true, maxTokens: 6, ignoreEos: true });
          return { first, greedy: greedy.ids, sampled: sampled.ids, flipped: flipped.ids };
        } finally {
          await gen.dispose();
        }
      };
      const cpu = await run('cpu');
      const gpu = await run('gpu');
      const r = relMax(gpu.first, cpu.first);
      console.log(`${arch}: prefill logits GPU vs CPU EP rel ${r.toExponential(2)}; greedy ${gpu.greedy.join(',')}`);
      expect(r).toBeLessThan(1e-5);
      expect(gpu.greedy).toEqual(cpu.greedy);
      expect(gpu.sampled).toEqual(cpu.sampled);
      expect(gpu.flipped).toEqual(cpu.flipped);
    }, 300_000);
  }
});

describe('KV-cache generation on the GPU backend, decode program only', () => {
  it('chunk 1 (the prompt token by token through the decode program) and a prompt of one token equal the CPU EP', async () => {
    const dir = await tinyModel('qwen2', 3);
    const run = async (ep: 'cpu' | 'gpu', prompt: number[]) => {
      const gen = await Generator.open(dir, { ep, capacity: 16, chunk: ep === 'gpu' ? 1 : 4 });
      try {
        return (await gen.generate(prompt, { greedy: true, maxTokens: 8, ignoreEos: true })).ids;
      } finally {
        await gen.dispose();
      }
    };
    for (const prompt of [[5, 17, 42, 9, 100], [7]]) expect(await run('gpu', prompt)).toEqual(await run('cpu', prompt));
  }, 300_000);
});

describe('weights shared between programs', () => {
  it('train, eval and generation programs upload the model once', async () => {
    const gpu = await openGpu();
    const dir = await tinyModel('llama', 4);
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
    const src = { ...openWeightSource(weights), bf16InPlace: true };
    const before = gpuWeightCache(gpu);
    const tg = await buildTrainGraph(config, layout, src, lora, { batch: 2, seqLen: 8, fused: true }, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
    const train = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: src.dir });
    const afterTrain = gpuWeightCache(gpu);
    expect(afterTrain.weights).toBeGreaterThan(before.weights);
    expect(train.info.sharedWeightBytes).toBe(0);
    const eg = await buildEvalGraph(config, layout, src, lora, { batch: 2, seqLen: 8, fused: true });
    const evalS = await GpuSession.create(eg.graph, ['loss_sum'], { externalDataDir: src.dir });
    const steps = await GpuStepPrograms.create(config, layout, src, lora, 16, 4);
    // nothing new uploaded: the same distinct weights, buffers and bytes
    expect(gpuWeightCache(gpu)).toEqual(afterTrain);
    expect(evalS.program.info.sharedWeightBytes).toBe(afterTrain.bytes - before.bytes);
    expect(evalS.program.info.sharedWeightBytes).toBeGreaterThan(0);
    await steps.setParams(initLoraParams(lora, 1));
    await evalS.dispose();
    await steps.dispose();
    expect(gpuWeightCache(gpu)).toEqual(afterTrain); // still held by the train program
    await train.dispose();
    expect(gpuWeightCache(gpu)).toEqual(before);
    await weights.close();
  }, 300_000);

  it('QLoRA: the NF4 codes from the weight cache are shared too, and generation reads them', async () => {
    const gpu = await openGpu();
    const dir = await tinyModel('llama', 5);
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
    const qsrc = openWeightSource(weights, { quantize: 'nf4' });
    const src = { ...qsrc, bf16InPlace: true };
    const before = gpuWeightCache(gpu);
    const tg = await buildTrainGraph(config, layout, src, lora, { batch: 1, seqLen: 8, fused: true }, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
    expect(tg.graph.nodes.some((n) => n.op === 'Nf4Gemm')).toBe(true);
    const train = await GpuProgram.create({ graph: tg.graph, state: tg.state, fetch: tg.fetch }, { externalDataDir: src.dir });
    const afterTrain = gpuWeightCache(gpu);
    const gen = await Generator.create({ config, layout, weights }, dir, { ep: 'gpu', capacity: 16, chunk: 4, src: qsrc, lora: { layout: lora, params: initLoraParams(lora, 2) } });
    expect(gpuWeightCache(gpu)).toEqual(afterTrain); // codes, absmax codes and the f32 embeddings: nothing uploaded again
    const r = await gen.generate([5, 17, 42, 9, 100], { greedy: true, maxTokens: 4, ignoreEos: true });
    expect(r.ids.length).toBe(4);
    // the same NF4 model on the CPU EP (its step graph dequantizes the same codes): the same tokens
    const cpu = await Generator.create({ config, layout, weights }, dir, { ep: 'cpu', capacity: 16, chunk: 4, src: qsrc, lora: { layout: lora, params: initLoraParams(lora, 2) } });
    expect((await cpu.generate([5, 17, 42, 9, 100], { greedy: true, maxTokens: 4, ignoreEos: true })).ids).toEqual(r.ids);
    await gen.dispose();
    await cpu.dispose();
    await train.dispose();
    expect(gpuWeightCache(gpu)).toEqual(before);
    await weights.close();
  }, 300_000);
});
