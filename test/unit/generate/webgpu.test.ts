/**
 * Generation on the WebGPU EP (Mesa lavapipe here): the step graph (symbolic token count, as the Generator
 * uses it, and a fixed one) places every node on the GPU (no CPU fallback), the caches stay GPU-resident between steps, and greedy ids and logits agree
 * with the CPU EP. One tiny model with a LoRA adapter (cold shader compiles on lavapipe take seconds).
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../src-main/engine/models';
import { buildLoraLayout, DEFAULT_LORA } from '../../../src-main/engine/llm/lora';
import { reportPlacement } from '../../../src-main/engine/backends/onnx';
import { Rng } from '../../../src-main/engine/models/rng';
import { buildStepGraph, Generator } from '../../../src-main/engine/generate';
import { tinyModel } from '../../helpers/tiny';

describe('generation on WebGPU', () => {
  it('runs prefill and decode fully on the GPU and matches the CPU EP', async () => {
    const dir = await tinyModel('llama', 8);
    const { config, layout, weights } = await openModel(dir);
    const lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
    for (const chunk of ['dynamic', 1] as const) {
      const g = await buildStepGraph(config, layout, { weights, dir: weights.dir }, lora, { chunk, capacity: 32 });
      const rep = await reportPlacement(g.model, { ep: 'webgpu', externalDataDir: weights.dir });
      expect(rep.fallback, `chunk ${chunk}: ${JSON.stringify(rep.fallback)}`).toEqual([]);
    }
    await weights.close();
    const params = new Rng(3).normalArray(lora.size, 0.05);
    const run = async (ep: 'cpu' | 'webgpu') => {
      const gen = await Generator.open(dir, { ep, capacity: 32, chunk: 8, lora: { layout: lora, params } });
      try {
        const prompt = [5, 17, 42, 9, 100, 33, 7, 61, 250, 12];
        const first = await gen.prefill(prompt);
        const res = await gen.generate(prompt, { greedy: true, maxTokens: 10, ignoreEos: true });
        return { first, ids: res.ids, timings: res.timings };
      } finally {
        await gen.dispose();
      }
    };
    const cpu = await run('cpu');
    const gpu = await run('webgpu');
    expect(gpu.ids).toEqual(cpu.ids);
    let diff = 0;
    for (let i = 0; i < cpu.first.length; i++) diff = Math.max(diff, Math.abs(cpu.first[i]! - gpu.first[i]!));
    console.log(`WebGPU vs CPU: max logit diff ${diff.toExponential(2)}; decode ${Math.round(gpu.timings.decodeTokensPerSecond)} tok/s (lavapipe) vs ${Math.round(cpu.timings.decodeTokensPerSecond)} tok/s (CPU)`);
    expect(diff).toBeLessThan(1e-3);
  }, 120_000);
});
