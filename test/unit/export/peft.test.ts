import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { exportModel, loadTrainedAdapter, readPeftAdapter, peftToLora, targetModuleNames } from '../../../src-main/export';
import { openModel } from '../../../src-main/engine/models';
import { buildLoraLayout } from '../../../src-main/engine/llm/lora';
import { SafetensorsReader } from '../../../src-main/engine/safetensors/reader';
import { writeSafetensors } from '../../../src-main/engine/safetensors/writer';
import { resizeEmbeddings } from '../../../src-main/tokenizer/embeddings';
import { tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';
import { handRun } from './helpers';

async function setup(arch: string, o: Parameters<typeof handRun>[2] = {}) {
  const model = await tinyModel(arch);
  const run = path.join(tempDir('lathe-peft-run-'), 'run');
  mkdirSync(run, { recursive: true });
  const ckpt = await handRun(model, run, o);
  return { model, run, ckpt, out: path.join(tempDir('lathe-peft-out-'), 'adapter') };
}

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

describe('PEFT adapter export', () => {
  for (const arch of ['llama', 'qwen3', 'gpt2', 'phi3']) {
    it(`${arch}: PEFT key names and config; reads back to exactly the checkpoint's adapter`, async () => {
      const { model, run, out } = await setup(arch, { rank: 4, alpha: 16, rslora: arch === 'qwen3' });
      const r = await exportModel({ format: 'peft', model, adapter: run, out, baseModelName: 'org/tiny-base' });
      expect(r.verification!.maxAbsDiff).toBe(0); // same adapter, same engine graph
      const cfg = readJson(path.join(out, 'adapter_config.json'));
      expect(cfg).toMatchObject({
        peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 4, lora_alpha: 16, use_rslora: arch === 'qwen3', bias: 'none',
        fan_in_fan_out: arch === 'gpt2', base_model_name_or_path: 'org/tiny-base', use_dora: false,
      });
      expect(cfg.target_modules).toEqual(arch === 'gpt2' ? ['c_attn', 'c_fc', 'c_proj']
        : arch === 'phi3' ? ['down_proj', 'gate_up_proj', 'o_proj', 'qkv_proj'] // PEFT's names for Phi-3's fused modules
          : ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
      const st = await SafetensorsReader.open(path.join(out, 'adapter_model.safetensors'));
      const mod = arch === 'gpt2' ? 'transformer.h.1.attn.c_attn' : arch === 'phi3' ? 'model.layers.1.self_attn.qkv_proj' : 'model.layers.1.self_attn.q_proj';
      // phi3: B spans the fused output, q | k | v = (4 + 2·2) heads × 16
      const C = 64, outF = arch === 'gpt2' ? 3 * C : arch === 'qwen3' ? 4 * 32 : arch === 'phi3' ? 8 * 16 : C;
      if (arch === 'phi3') expect(st.entry('base_model.model.model.layers.0.mlp.gate_up_proj.lora_B.weight').shape).toEqual([2 * 128, 4]);
      expect(st.entry(`base_model.model.${mod}.lora_A.weight`).shape).toEqual([4, C]);
      expect(st.entry(`base_model.model.${mod}.lora_B.weight`).shape).toEqual([outF, 4]);
      expect(st.metadata['format']).toBe('pt');
      await st.close();

      const { config, layout, weights } = await openModel(model);
      await weights.close();
      const trained = await loadTrainedAdapter(run, config, layout);
      const back = peftToLora(await readPeftAdapter(out), config, layout);
      expect(back.lora.scale).toBeCloseTo(arch === 'qwen3' ? 16 / 2 : 16 / 4, 12);
      expect(back.lora.modules.map((m) => m.module)).toEqual(trained.lora.modules.map((m) => m.module));
      expect(Buffer.from(back.params.buffer).equals(Buffer.from(trained.params.buffer, trained.params.byteOffset, trained.params.byteLength))).toBe(true);
      expect(readFileSync(path.join(out, 'README.md'), 'utf8')).toContain('PeftModel.from_pretrained');
      expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(false); // the base's tokenizer is unchanged
    });
  }

  it('GPT-2 attention-only: target_modules tells the attention c_proj from the MLP c_proj', async () => {
    const { model, run, out } = await setup('gpt2', { targets: 'attention' });
    await exportModel({ format: 'peft', model, adapter: run, out, dtype: 'bf16' });
    expect(readJson(path.join(out, 'adapter_config.json')).target_modules).toEqual(['attn.c_proj', 'c_attn']);
    const st = await SafetensorsReader.open(path.join(out, 'adapter_model.safetensors'));
    expect(st.entry('base_model.model.transformer.h.0.attn.c_proj.lora_A.weight').dtype).toBe('BF16');
    expect(st.tensors.has('base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight')).toBe(false);
    await st.close();
    const { config, layout, weights } = await openModel(model);
    await weights.close();
    const mlpOnly = buildLoraLayout(config, layout, { rank: 2, alpha: 2, dropout: 0, rslora: false, targets: 'mlp', seed: 0 });
    expect(targetModuleNames(config, layout, mlpOnly)).toEqual(['c_fc', 'mlp.c_proj']);
  });

  it('GPT-2 saved without the "transformer." prefix: merged keeps the base names, PEFT uses the model\'s module paths', async () => {
    const model = await tinyModel('gpt2');
    const file = path.join(model, 'model.safetensors');
    const r = await SafetensorsReader.open(file);
    const tensors = [];
    for (const [name, e] of r.tensors) tensors.push({ name: name.replace(/^transformer\./, ''), dtype: e.dtype, shape: e.shape, data: await r.readRaw(name) });
    await r.close();
    await writeSafetensors(file, tensors);
    const run = path.join(tempDir(), 'run');
    mkdirSync(run);
    await handRun(model, run);
    const out = tempDir();
    const merged = await exportModel({ format: 'merged', model, adapter: run, out: path.join(out, 'merged') });
    expect(merged.verification!.relError).toBeLessThan(1e-5);
    const m = await SafetensorsReader.open(path.join(out, 'merged', 'model.safetensors'));
    expect(m.tensors.has('h.0.attn.c_attn.weight')).toBe(true);
    await m.close();
    const peft = await exportModel({ format: 'peft', model, adapter: run, out: path.join(out, 'peft') });
    expect(peft.verification!.maxAbsDiff).toBe(0);
    const p = await SafetensorsReader.open(path.join(out, 'peft', 'adapter_model.safetensors'));
    expect(p.tensors.has('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')).toBe(true);
    await p.close();
  });

  it('reads adapters with adapter-named keys and skipped layers (zeros), and refuses what it cannot load', async () => {
    const model = await tinyModel('llama');
    const { config, layout, weights } = await openModel(model);
    await weights.close();
    const dir = tempDir('lathe-peft-hand-');
    const A = Float32Array.from({ length: 2 * 64 }, (_, i) => Math.sin(i));
    const B = Float32Array.from({ length: 64 * 2 }, (_, i) => Math.cos(i) / 10);
    const base = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'], layers_to_transform: [1] };
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify(base));
    await writeSafetensors(path.join(dir, 'adapter_model.safetensors'), [
      { name: 'base_model.model.model.layers.1.self_attn.q_proj.lora_A.default.weight', dtype: 'F32', shape: [2, 64], data: A },
      { name: 'base_model.model.model.layers.1.self_attn.q_proj.lora_B.default.weight', dtype: 'F16', shape: [64, 2], data: B },
    ]);
    const ad = await readPeftAdapter(dir);
    const { lora, params } = peftToLora(ad, config, layout);
    expect(lora.modules.map((m) => m.module)).toEqual(['model.layers.0.self_attn.q_proj', 'model.layers.1.self_attn.q_proj']);
    expect(lora.scale).toBe(2);
    const [m0, m1] = lora.modules as [typeof lora.modules[0], typeof lora.modules[0]];
    expect(params.subarray(m0.aOffset, m0.bOffset + 128).every((x) => x === 0)).toBe(true); // layer 0 not adapted
    expect(Array.from(params.subarray(m1.aOffset, m1.aOffset + 128))).toEqual(Array.from(A));
    expect(Math.abs(params[m1.bOffset + 3]! - B[3]!)).toBeLessThan(1e-4); // f16-stored B

    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...base, use_dora: true }));
    await expect(readPeftAdapter(dir)).rejects.toMatchObject({ code: 'peft.invalid', message: expect.stringContaining('DoRA') });
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...base, rank_pattern: { q_proj: 4 } }));
    await expect(readPeftAdapter(dir)).rejects.toMatchObject({ code: 'peft.invalid' });
    writeFileSync(path.join(dir, 'adapter_config.json'), JSON.stringify({ ...base, r: 3 }));
    await expect(readPeftAdapter(dir)).rejects.toMatchObject({ code: 'peft.invalid', message: expect.stringContaining('[3, in]') });
    await expect(readPeftAdapter(tempDir())).rejects.toMatchObject({ code: 'peft.invalid' });
    // An adapter for another architecture names layers this model does not have.
    const g = await setup('gpt2');
    await exportModel({ format: 'peft', model: g.model, adapter: g.run, out: g.out, verify: false });
    await expect(readPeftAdapter(g.out).then((a) => peftToLora(a, config, layout))).rejects.toMatchObject({ code: 'peft.model-mismatch' });
  });

  it('with added tokens: full embedding matrices under the model\'s names, and the extended tokenizer shipped', async () => {
    const { model, run, out } = await setup('llama');
    const { config, layout, weights } = await openModel(model);
    const V = config.vocabSize, C = config.hiddenSize;
    const nt = [{ id: V, baseIds: [10, 11] }];
    const embed = resizeEmbeddings(await weights.readF32(layout.embed), V, C, nt).matrix;
    const lmHead = resizeEmbeddings(await weights.readF32(layout.lmHead!), V, C, nt).matrix;
    await weights.close();
    const r = await exportModel({ format: 'peft', model, adapter: run, out, tokenizerDir: model }, { resized: { vocabSize: V + 1, embed, lmHead } });
    expect(r.verification!.passed).toBe(true);
    const st = await SafetensorsReader.open(path.join(out, 'adapter_model.safetensors'));
    expect(st.entry('base_model.model.model.embed_tokens.weight').shape).toEqual([V + 1, C]);
    expect(st.entry('base_model.model.lm_head.weight').shape).toEqual([V + 1, C]);
    await st.close();
    expect(existsSync(path.join(out, 'tokenizer.json'))).toBe(true);
    expect(readFileSync(path.join(out, 'README.md'), 'utf8')).toContain(`resize_token_embeddings(${V + 1})`);
    const back = await readPeftAdapter(out);
    expect(back.extra.get('model.embed_tokens.weight')!.shape).toEqual([V + 1, C]);
  });
});
