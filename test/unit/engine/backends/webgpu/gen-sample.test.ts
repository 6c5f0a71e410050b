/**
 * KV-cache generation with the next token picked on the GPU (ep 'gpu', backends/webgpu/sample.ts): for
 * llama and gemma2 (GQA, sliding window, soft-capping), greedy and several sampling settings and seeds give
 * the same tokens as the host sampler on the same GPU logits and as the CPU EP, while a step reads back
 * 4 bytes (the token id) instead of the logits row; turning it off says so in the result.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openModel } from '../../../../../src-main/engine/models';
import { buildLoraLayout, DEFAULT_LORA } from '../../../../../src-main/engine/llm/lora';
import { closeGpu, openGpu } from '../../../../../src-main/engine/backends/webgpu';
import { Generator, type GenerateOptions } from '../../../../../src-main/engine/generate';
import { Rng } from '../../../../../src-main/engine/models/rng';
import { UserError } from '../../../../../src-main/util/progress';
import { tinyModel, rewriteWeights } from '../../../../helpers/tiny';

beforeAll(async () => { await openGpu(); }, 60_000);
afterAll(() => closeGpu());

const SETTINGS: [string, GenerateOptions][] = [
  ['greedy', { greedy: true }],
  ['greedy, repetition penalty 1.3', { greedy: true, repetitionPenalty: 1.3 }],
  ['temperature 0.8, top-k 20, seed 1', { temperature: 0.8, topK: 20, topP: 1, seed: 1 }],
  ['top-p 0.9, seed 2', { temperature: 1, topK: 0, topP: 0.9, seed: 2 }],
  ['temperature 1.2, top-k 40, top-p 0.85, penalty 1.15, seed 3', { temperature: 1.2, topK: 40, topP: 0.85, repetitionPenalty: 1.15, seed: 3 }],
  ['plain sampling, seed 4', { temperature: 1, topK: 0, topP: 1, seed: 4 }],
  ['plain sampling, seed 5', { temperature: 1, topK: 0, topP: 1, seed: 5 }],
];
const MAX = 14;

describe('generation with GPU sampling', () => {
  for (const arch of ['llama', 'gemma2']) {
    it(`${arch}: GPU-sampled tokens equal the host sampler's and the CPU EP's, 4 bytes read back a token`, async () => {
      const dir = await tinyModel(arch, 8);
      const { config, layout, weights } = await openModel(dir);
      const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
      await weights.close();
      const params = new Rng(3).normalArray(lora.size, 0.05);
      const prompt = [5, 17, 42, 9, 100, 33, 7, 61, 250, 12]; // two prefill pieces of 8
      const V = config.vocabSize;
      const run = async (ep: 'cpu' | 'gpu', gpuSampling: boolean) => {
        const gen = await Generator.open(dir, { ep, capacity: 32, chunk: 8, lora: { layout: lora, params }, gpuSampling });
        try {
          const out = [];
          for (const [, o] of SETTINGS) out.push(await gen.generate(prompt, { ...o, maxTokens: MAX, ignoreEos: true }));
          return out;
        } finally {
          await gen.dispose();
        }
      };
      const onGpu = await run('gpu', true);
      const hostOnGpu = await run('gpu', false);
      const cpu = await run('cpu', false);
      let hostPicks = 0;
      SETTINGS.forEach(([name], i) => {
        const g = onGpu[i]!, h = hostOnGpu[i]!, c = cpu[i]!;
        expect(g.ids.length, name).toBe(MAX);
        expect(g.ids, name).toEqual(h.ids);
        expect(g.ids, name).toEqual(c.ids);
        expect(g.sampling?.on, name).toBe('gpu');
        hostPicks += g.sampling!.hostPicks;
        // 4 bytes a token (the first piece of the prompt reads nothing), a row only where the host decided
        expect(g.sampling!.readbackBytes, name).toBe(4 * MAX + g.sampling!.hostPicks * V * 4);
        expect(h.sampling?.on).toBe('host');
        expect(h.sampling?.reason).toMatch(/turned off/);
        expect(h.sampling!.readbackBytes, name).toBe((2 + MAX - 1) * V * 4); // two prompt pieces, then a row a decode step
        expect(c.sampling).toBeUndefined();
      });
      console.log(`${arch}: ${SETTINGS.length} settings × ${MAX} tokens equal; ${hostPicks} picks left to the host; read back ${onGpu[0]!.sampling!.readbackBytes} B vs ${hostOnGpu[0]!.sampling!.readbackBytes} B a generation`);
      expect(hostPicks).toBeLessThanOrEqual(3);
      // the settings really differ (the test would not notice a sampler that ignored them otherwise)
      expect(new Set(onGpu.map((r) => r.ids.join(','))).size).toBeGreaterThanOrEqual(SETTINGS.length - 1);
    }, 600_000);
  }

  it('where the GPU cannot decide (every logit tied) the host picks, visibly, the same tokens; NaN logits are reported', async () => {
    const dir = await tinyModel('llama', 4);
    // the final norm's weight 0: every logit exactly 0, so every sampled pick is a tie at the chosen token
    await rewriteWeights(dir, (name, data) => { if (name === 'model.norm.weight') data.fill(0); });
    const prompt = [5, 17, 42];
    const run = async (ep: 'cpu' | 'gpu') => {
      const gen = await Generator.open(dir, { ep, capacity: 16, chunk: 4 });
      try {
        return {
          sampled: await gen.generate(prompt, { temperature: 1, topK: 0, topP: 1, seed: 9, maxTokens: 6, ignoreEos: true }),
          greedy: await gen.generate(prompt, { greedy: true, maxTokens: 3, ignoreEos: true }),
          V: gen.vocab,
        };
      } finally {
        await gen.dispose();
      }
    };
    const gpu = await run('gpu'), cpu = await run('cpu');
    expect(gpu.sampled.ids).toEqual(cpu.sampled.ids);
    expect(new Set(gpu.sampled.ids).size).toBeGreaterThan(1); // the draws pick across the tied vocabulary
    expect(gpu.sampled.sampling).toMatchObject({ on: 'gpu', hostPicks: 6, readbackBytes: 6 * 4 + 6 * gpu.V * 4 });
    // greedy ties are exact on both (lowest id): decided on the GPU
    expect(gpu.greedy.ids).toEqual([0, 0, 0]);
    expect(cpu.greedy.ids).toEqual([0, 0, 0]);
    expect(gpu.greedy.sampling).toMatchObject({ on: 'gpu', hostPicks: 0, readbackBytes: 12 });
    await rewriteWeights(dir, (name, data) => { if (name === 'model.norm.weight') data.fill(Number.NaN); });
    const gen = await Generator.open(dir, { ep: 'gpu', capacity: 16, chunk: 4 });
    try {
      const err = await gen.generate(prompt, { maxTokens: 2 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UserError);
      expect((err as UserError).code).toBe('model-weights-nonfinite');
    } finally {
      await gen.dispose();
    }
  }, 600_000);
});
