/**
 * The real-GPU check (scripts/gpu-check/check.ts) on the tiny model, on whatever adapter this machine has
 * (lavapipe in CI): the random model folder it writes opens as a model of the asked shape, and one fused
 * step row carries the figures the device runner collects, consistent with each other.
 */
import { afterAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { openModel } from '../../../src-main/engine/models';
import { closeGpu } from '../../../src-main/engine/backends/webgpu';
import { MODELS, adapterRow, checkStep, errorRow, hfConfig, writeRandomModel } from '../../../scripts/gpu-check/check';
import { tempDir } from '../../helpers/services';

afterAll(() => closeGpu());

describe('gpu-check', () => {
  it('writes a random bf16 model of the asked shape (layers cut on request), reused when complete', async () => {
    const root = tempDir('lathe-gpu-check-');
    const dir = path.join(root, 'tiny-L1');
    const hf = hfConfig('tiny', 1);
    expect(hf['num_hidden_layers']).toBe(1);
    expect(MODELS['Llama-3.1-8B']!.qlora).toBe(true);
    expect(() => hfConfig('nope')).toThrow(/Unknown model "nope"/);
    const w = await writeRandomModel(dir, hf);
    expect(w.reused).toBe(false);
    const { config, layout, weights } = await openModel(dir);
    try {
      expect(config.numLayers).toBe(1);
      expect(config.hiddenSize).toBe(64);
      expect(w.params).toBe([...layout.shapes.values()].reduce((a, s) => a + s.reduce((p, q) => p * q, 1), 0));
      const norm = weights.entry('model.norm.weight')!;
      expect(norm.dtype).toBe('BF16');
      const q = weights.entry('model.layers.0.self_attn.q_proj.weight')!;
      expect(q.shape).toEqual([64, 64]);
    } finally {
      await weights.close();
    }
    expect((await writeRandomModel(dir, hf)).reused).toBe(true);
  });

  it('one fused LoRA step row: plan, dispatches, timing and a finite loss near ln(V) at random weights', async () => {
    const root = tempDir('lathe-gpu-check-');
    const dir = path.join(root, 'tiny');
    await writeRandomModel(dir, hfConfig('tiny'));
    const row = await checkStep({ dir, model: 'tiny', batch: 1, seqLen: 8, recompute: true, steps: 1, qlora: false, cacheRoot: path.join(root, 'cache') });
    const r = JSON.parse(JSON.stringify(row)) as { // (what the runner prints)
      loraParams: number; dispatches: number; byKernel: Record<string, number>; planBytes: Record<string, number>; planBytesTotal: number;
      stepMs: { median: number; min: number; n: number }; tokensPerS: number; lossFirst: number; gpuPeakMiB: number | null;
    };
    expect(r).toMatchObject({ kind: 'lathe', model: 'tiny', layers: 2, qlora: false, batch: 1, seqLen: 8, recompute: true, graph: 'fused', loraRank: 16, lossFinite: true });
    expect(r.loraParams).toBe(2 * 16 * (128 + 96 + 96 + 128 + 192 + 192 + 192)); // 2 layers × r·(in+out) of q,k,v,o,gate,up,down
    expect(r.dispatches).toBe(Object.values(r.byKernel).reduce((a, b) => a + b, 0));
    expect(r.byKernel.FlashAttention).toBeGreaterThan(0);
    expect(r.byKernel.AdamWStep).toBe(1);
    expect(r.planBytesTotal).toBe(Object.values(r.planBytes).reduce((a, b) => a + b, 0));
    expect(r.planBytes.weight).toBeGreaterThan(0);
    expect(r.stepMs.n).toBe(1);
    expect(r.stepMs.min).toBeLessThanOrEqual(r.stepMs.median);
    // tokens/s comes from the unrounded median; the printed median is rounded to 0.1 ms, so allow that rounding's effect
    const lo = 8000 / (r.stepMs.median + 0.05), hi = 8000 / Math.max(r.stepMs.median - 0.05, 1e-3);
    expect(r.tokensPerS).toBeGreaterThanOrEqual(Math.floor(lo));
    expect(r.tokensPerS).toBeLessThanOrEqual(Math.ceil(hi));
    expect(Math.abs(r.lossFirst - Math.log(512))).toBeLessThan(0.5);
    expect(r.gpuPeakMiB === null || typeof r.gpuPeakMiB === 'number').toBe(true);
  }, 600_000);

  it('reports the adapter (GEMM path, features, subgroup sizes, limits) and failures as one error line', async () => {
    const a = await adapterRow();
    expect(a['kind']).toBe('adapter');
    expect(typeof (a['gemm'] as { path: string }).path).toBe('string');
    expect((a['describe'] as string[])[0]).toMatch(/^GPU: /);
    expect(Array.isArray(a['features'])).toBe(true);
    expect((a['limits'] as Record<string, number>)['maxStorageBufferBindingSize']).toBeGreaterThan(0);
    expect(a['subgroupSizes']).toHaveProperty('min');
    const e = errorRow({ kind: 'lathe', model: 'x' }, new Error('a\nb\nc\nd'));
    expect(e).toEqual({ kind: 'lathe', model: 'x', error: 'a | b | c' });
  }, 120_000);
});
