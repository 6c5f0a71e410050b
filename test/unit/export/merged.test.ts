import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { exportModel, engineLogits, compareLogits, defaultPromptIds, loadTrainedAdapter, VERIFY_TOLERANCE } from '../../../src-main/export';
import { openModel, TINY_ARCHS } from '../../../src-main/engine/models';
import { ModelWeights } from '../../../src-main/engine/safetensors/sharded';
import { SafetensorsReader } from '../../../src-main/engine/safetensors/reader';
import { layerLinears } from '../../../src-main/engine/llm/lora';
import { resizeEmbeddings } from '../../../src-main/tokenizer/embeddings';
import { tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';
import { handRun } from './helpers';

async function setup(arch: string, o: Parameters<typeof handRun>[2] = {}) {
  const model = await tinyModel(arch);
  const run = path.join(tempDir('lathe-exp-run-'), 'run');
  mkdirSync(run, { recursive: true });
  await handRun(model, run, o);
  return { model, run, out: path.join(tempDir('lathe-exp-out-'), 'exported') };
}

/** Independent bf16 rounding: pick the nearer of the two bf16 neighbours, ties to the even one. */
function bf16Nearest(x: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setFloat32(0, x, true);
  const lo = dv.getUint32(0, true) >>> 16;
  const val = (h: number) => { dv.setUint32(0, (h << 16) >>> 0, true); return dv.getFloat32(0, true); };
  const a = val(lo), b = val(lo + 1);
  const da = Math.abs(x - a), db = Math.abs(b - x);
  if (da < db) return lo;
  if (db < da) return lo + 1;
  return lo % 2 === 0 ? lo : lo + 1;
}

describe('merged export', () => {
  for (const arch of TINY_ARCHS) {
    it(`${arch}: f32 merge reloads through the engine with the trained model's logits; without the merge they differ`, async () => {
      // (Granite's residual multiplier 0.22 and logits ÷ 8 shrink an adapter's effect: larger B there)
      const { model, run, out } = await setup(arch, { rslora: arch === 'gpt2' || arch === 'qwen2', targets: arch === 'mistral' ? 'attention' : 'all-linear', bStd: arch === 'granite' ? 1 : undefined });
      const r = await exportModel({ format: 'merged', model, adapter: run, out, dtype: 'f32' });
      expect(r.verification!.passed).toBe(true);
      expect(r.verification!.relError).toBeLessThan(1e-5);
      // The adapter matters: the base alone is far outside the tolerance.
      const ids = r.verification!.ids;
      const base = await engineLogits(model, ids, null);
      const merged = await engineLogits(out, ids, null);
      const cmp = compareLogits(merged, base, ids, 'bf16');
      expect(cmp.relError).toBeGreaterThan(VERIFY_TOLERANCE.bf16);
      expect(readdirSync(path.dirname(out)).filter((f) => f.startsWith('.'))).toEqual([]); // no staging left
    });
  }

  it('merges W + scale·B·A per module (B·A transposed for GPT-2 Conv1D) and copies untouched tensors bit for bit', async () => {
    for (const arch of ['llama', 'gpt2']) {
      const { model, run, out } = await setup(arch, { rank: 3, alpha: 5 });
      await exportModel({ format: 'merged', model, adapter: run, out, dtype: 'f32', verify: false });
      const { config, layout, weights: base } = await openModel(model);
      const ad = await loadTrainedAdapter(run, config, layout);
      const merged = await ModelWeights.open(out);
      for (const m of ad.lora.modules.filter((x) => x.layer === 1)) {
        const w = layerLinears(layout, m.layer).find(([role]) => role === m.role)![1];
        const W = await base.readF32(w.weight), got = await merged.readF32(w.weight);
        const O = m.outFeatures, I = m.inFeatures, r = ad.lora.rank;
        let worst = 0;
        for (let o = 0; o < O; o++) {
          for (let i = 0; i < I; i++) {
            let d = 0;
            for (let k = 0; k < r; k++) d += ad.params[m.bOffset + o * r + k]! * ad.params[m.aOffset + k * I + i]!;
            const idx = w.inOut ? i * O + o : o * I + i;
            worst = Math.max(worst, Math.abs(got[idx]! - (W[idx]! + ad.lora.scale * d)));
          }
        }
        expect(worst, `${arch} ${m.module}`).toBeLessThan(1e-6);
        expect(ad.lora.scale).toBeCloseTo(5 / 3, 6);
      }
      const norm = layout.layers[0]!.attnNorm!.weight;
      expect(Buffer.from(await merged.readRaw(norm)).equals(Buffer.from(await base.readRaw(norm)))).toBe(true);
      // Only the architecture's tensors: no rotary buffers, no tied lm_head copy.
      expect(merged.names().sort()).toEqual([...layout.shapes.keys()].sort());
      await merged.close(); await base.close();
    }
  });

  it('bf16 is rounded to nearest even from the f32 merge; f16 and bf16 pass their tolerances; config says the dtype', async () => {
    const { model, run, out } = await setup('qwen3');
    await exportModel({ format: 'merged', model, adapter: run, out: out + '-f32', dtype: 'f32', verify: false });
    const rb = await exportModel({ format: 'merged', model, adapter: run, out: out + '-bf16', dtype: 'bf16' });
    const rh = await exportModel({ format: 'merged', model, adapter: run, out: out + '-f16', dtype: 'f16' });
    expect(rb.verification!.passed && rh.verification!.passed).toBe(true);
    expect(rh.verification!.relError).toBeLessThan(rb.verification!.relError);
    const f32 = await SafetensorsReader.open(path.join(out + '-f32', 'model.safetensors'));
    const bf = await SafetensorsReader.open(path.join(out + '-bf16', 'model.safetensors'));
    const name = 'model.layers.0.self_attn.q_proj.weight';
    expect(bf.entry(name).dtype).toBe('BF16');
    const x = await f32.readF32(name);
    const bits = new Uint16Array((await bf.readRaw(name)).buffer);
    let mismatches = 0;
    for (let i = 0; i < x.length; i++) if (bits[i] !== bf16Nearest(x[i]!)) mismatches++;
    expect(mismatches).toBe(0);
    await f32.close(); await bf.close();
    const cfg = JSON.parse(readFileSync(path.join(out + '-bf16', 'config.json'), 'utf8'));
    expect(cfg.torch_dtype).toBe('bfloat16');
    expect(JSON.parse(readFileSync(path.join(out + '-f16', 'config.json'), 'utf8')).torch_dtype).toBe('float16');
  });

  it('shards above the size with model.safetensors.index.json, and ships configs, tokenizer and a model card', async () => {
    const { model, run, out } = await setup('llama');
    const r = await exportModel({ format: 'merged', model, adapter: run, out, dtype: 'f32', shardSizeMB: 0.1 });
    const shards = readdirSync(out).filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
    expect(shards.length).toBeGreaterThan(2);
    const index = JSON.parse(readFileSync(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    expect(new Set(Object.values(index.weight_map))).toEqual(new Set(shards));
    expect(r.verification!.relError).toBeLessThan(1e-5); // the check read the shards back
    for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'README.md']) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(readFileSync(path.join(out, 'tokenizer_config.json'), 'utf8')).toBe(readFileSync(path.join(model, 'tokenizer_config.json'), 'utf8'));
    expect(readFileSync(path.join(out, 'generation_config.json'), 'utf8')).toBe(readFileSync(path.join(model, 'generation_config.json'), 'utf8'));
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('rank 4, alpha 8');
    expect(card).toContain('Steps: 7');
    expect(card).toContain('Final training loss: 2.3450');
    expect(card).toContain('| val-domain | 3.1000 | 2.5000 |');
    expect(card).toMatch(/largest logit difference \d/);
    expect(r.files).toEqual(expect.arrayContaining([...shards, 'model.safetensors.index.json', 'README.md']));
  });

  it('defaults to the base model\'s dtype', async () => {
    const { model, run, out } = await setup('gpt2');
    const r = await exportModel({ format: 'merged', model, adapter: run, out, verify: false });
    expect(r.dtype).toBe('f32'); // tiny models are float32
  });

  for (const arch of ['llama', 'smollm2']) {
    it(`${arch}: resized embeddings (hand-made, 2 new tokens) are written, vocab_size updated, old logits verified`, async () => {
      const { model, run, out } = await setup(arch);
      const { config, layout, weights } = await openModel(model);
      const V = config.vocabSize, C = config.hiddenSize;
      const newTokens = [{ id: V, baseIds: [5, 6] }, { id: V + 1, baseIds: [7] }];
      const embed = resizeEmbeddings(await weights.readF32(layout.embed), V, C, newTokens).matrix;
      const lmHead = layout.lmHead ? resizeEmbeddings(await weights.readF32(layout.lmHead), V, C, newTokens).matrix : undefined;
      await weights.close();
      const r = await exportModel({ format: 'merged', model, adapter: run, out, dtype: 'f32' }, { resized: { vocabSize: V + 2, embed, lmHead } });
      expect(r.vocabSize).toBe(V + 2);
      expect(r.verification!.comparedVocab).toBe(V);
      expect(r.verification!.passed).toBe(true);
      expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).vocab_size).toBe(V + 2);
      const w = await ModelWeights.open(out);
      expect(w.entry(layout.embed).shape).toEqual([V + 2, C]);
      const row = (await w.readF32(layout.embed)).subarray(V * C, (V + 1) * C);
      expect(Array.from(row)).toEqual(Array.from(embed.subarray(V * C, (V + 1) * C)));
      if (layout.lmHead) expect(w.entry(layout.lmHead).shape).toEqual([V + 2, C]);
      else expect(w.has('lm_head.weight')).toBe(false);
      await w.close();
      // The new token is usable: the merged model gives logits over V + 2 ids for a prompt containing it.
      const ids = [...defaultPromptIds(V, config.bosTokenId).slice(0, 4), V + 1];
      const l = await engineLogits(out, ids, null);
      expect(l.vocab).toBe(V + 2);
      expect(l.logits.every(Number.isFinite)).toBe(true);
    });
  }

  it('refuses resized matrices that do not fit the model', async () => {
    const { model, run, out } = await setup('llama');
    await expect(exportModel({ format: 'merged', model, adapter: run, out }, { resized: { vocabSize: 10, embed: new Float32Array(640) } }))
      .rejects.toMatchObject({ code: 'export.resize' });
    const { config } = await openModel(model).then(async (m) => { await m.weights.close(); return m; });
    const V = config.vocabSize + 1, C = config.hiddenSize;
    await expect(exportModel({ format: 'merged', model, adapter: run, out }, { resized: { vocabSize: V, embed: new Float32Array(V * C) } }))
      .rejects.toMatchObject({ code: 'export.resize', message: expect.stringContaining('lm_head') });
    expect(existsSync(out)).toBe(false);
  });
});
