import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTinyModel, openModel, TINY_ARCHS } from '../../../../src-main/engine/models';
import { fixtureNames, fixturePath, readModelFixture, relativeError, maxAbsDiff, weightsSha256 } from './fixture';
import { referenceForward, maskedCrossEntropy } from './cpu-reference';

let dir: string;
beforeAll(() => { dir = mkdtempSync(path.join(tmpdir(), 'lathe-fixtures-')); });
afterAll(() => { rmSync(dir, { recursive: true, force: true }); });

it('there is a fixture for every tiny architecture', () => {
  expect(fixtureNames()).toEqual(expect.arrayContaining([...TINY_ARCHS]));
});

describe.each(fixtureNames().map((a) => [a]))('PyTorch fixture for %s', (arch) => {
  it('was computed from the model our generator writes, and agrees with our config/layout reading', async () => {
    const fx = readModelFixture(fixturePath(arch));
    const h = fx.header;
    expect(h.arch).toBe(arch);
    const out = path.join(dir, arch);
    await createTinyModel(h.model.arch, out, { seed: h.model.seed, dtype: h.model.dtype, maxShardBytes: h.model.max_shard_bytes });
    // The reference read exactly these bytes (so reference.py loads our safetensors + config.json).
    expect(weightsSha256(out)).toBe(h.model_sha256);

    const { config, layout, weights } = await openModel(out);
    try {
      const cache = new Map<string, Float32Array>();
      for (const n of weights.names()) cache.set(n, await weights.readF32(n));
      const W = (n: string): Float32Array => { const t = cache.get(n); if (!t) throw new Error(`no ${n}`); return t; };
      const { batch: B, time: T } = h;
      const V = config.vocabSize;
      expect(fx.shape('logits')).toEqual([B, T, V]);
      // Every LoRA target is a linear of our layout with matching in/out.
      for (const t of h.lora.targets) {
        const shape = layout.shapes.get(`${t.module}.weight`);
        expect(shape, t.module).toBeDefined();
        const inOut = layout.layers.some((l) => [l.qkv, l.up, l.down, l.o].some((w) => w?.weight === `${t.module}.weight` && w.inOut));
        expect(inOut ? shape : [...shape!].reverse()).toEqual([t.in, t.out]);
        expect(fx.shape(`lora_A.${t.module}`)).toEqual([h.lora.rank, t.in]);
        expect(fx.shape(`grad_B.${t.module}`)).toEqual([t.out, h.lora.rank]);
        // B is non-zero, so A's gradient is too (otherwise the gradient check proves nothing).
        expect(Math.max(...fx.f32(`grad_A.${t.module}`).map(Math.abs))).toBeGreaterThan(0);
      }
      expect(h.lora.scale).toBeCloseTo(h.lora.rslora ? h.lora.alpha / Math.sqrt(h.lora.rank) : h.lora.alpha / h.lora.rank, 6);

      const ids = fx.i32('input_ids');
      const base = referenceForward(config, layout, W, ids, B, T);
      const eBase = relativeError(base, fx.f32('logits_base'));
      const lora = {
        scale: h.lora.scale,
        get: (m: string) => (fx.tensors.has(`lora_A.${m}`) ? { A: fx.f32(`lora_A.${m}`), B: fx.f32(`lora_B.${m}`), rank: h.lora.rank } : undefined),
      };
      const withLora = referenceForward(config, layout, W, ids, B, T, lora);
      const eLora = relativeError(withLora, fx.f32('logits'));
      const loss = maskedCrossEntropy(fx.f32('logits'), fx.i32('labels'), fx.f32('loss_mask'), V);
      console.log(`${arch}: logits rel err ${eBase.toExponential(2)} (base), ${eLora.toExponential(2)} (LoRA); max |Δ| ${maxAbsDiff(withLora, fx.f32('logits')).toExponential(2)}; loss ${fx.f32('loss')[0]}`);
      expect(eBase).toBeLessThan(1e-5);
      expect(eLora).toBeLessThan(1e-5);
      expect(relativeError(base, fx.f32('logits'))).toBeGreaterThan(1e-3); // LoRA changes the logits
      expect(Math.abs(loss - fx.f32('loss')[0]!)).toBeLessThan(1e-5);
      const losses = fx.f32('adamw_losses');
      expect(losses.length).toBe(h.adamw.steps);
      expect(losses[0]).toBeCloseTo(fx.f32('loss')[0]!, 5);
      expect(h.final_loss).toBeLessThan(losses[0]!);
    } finally {
      await weights.close();
    }
  });
});
