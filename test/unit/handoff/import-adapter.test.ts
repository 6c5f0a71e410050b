import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { importAdapter } from '../../../src-main/handoff';
import { exportModel } from '../../../src-main/export';
import { computeLogits } from '../../../src-main/engine/train/infer';
import { writeSafetensors } from '../../../src-main/engine/safetensors/writer';
import { SafetensorsReader } from '../../../src-main/engine/safetensors/reader';
import { tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';
import { handRun } from '../export/helpers';

async function exported(arch: string, o: Parameters<typeof handRun>[2] = {}) {
  const model = await tinyModel(arch);
  const run = path.join(tempDir('lathe-imp-run-'), 'run');
  mkdirSync(run, { recursive: true });
  await handRun(model, run, o);
  const adapter = path.join(tempDir('lathe-imp-peft-'), 'adapter');
  await exportModel({ format: 'peft', model, adapter: run, out: adapter, baseModelName: 'org/tiny' });
  return { model, run, adapter };
}

/** A copy of `adapter` with adapter_config.json edited. */
function withConfig(adapter: string, edit: (c: Record<string, unknown>) => void): string {
  const dir = path.join(tempDir(), 'edited');
  cpSync(adapter, dir, { recursive: true });
  const f = path.join(dir, 'adapter_config.json');
  const c = JSON.parse(readFileSync(f, 'utf8')) as Record<string, unknown>;
  edit(c);
  writeFileSync(f, JSON.stringify(c));
  return dir;
}

const IDS = [1, 5, 9, 17, 33, 65, 101, 7, 3, 250];

describe('lathe import-adapter', () => {
  for (const [arch, o] of [['llama', { rank: 4, alpha: 8, targets: 'all-linear' }], ['qwen3', { rank: 8, alpha: 16, rslora: true, targets: 'attention' }], ['gpt2', { rank: 4, alpha: 16, targets: 'mlp' }]] as const) {
    it(`${arch}: Lathe's own PEFT export imported back gives identical logits`, async () => {
      const { model, run, adapter } = await exported(arch, o);
      const out = path.join(tempDir(), 'imported');
      const r = await importAdapter({ adapter, model, out });
      expect(r).toMatchObject({ rank: o.rank, alpha: o.alpha, rslora: arch === 'qwen3' });
      expect(r.warnings[0]).toContain('org/tiny');
      const a = await computeLogits(model, IDS, { checkpoint: run });
      const b = await computeLogits(model, IDS, { checkpoint: out });
      expect(b.logits).toEqual(a.logits); // bit-identical: the same f32 adapter in the same graph
      const base = await computeLogits(model, IDS);
      expect(base.logits).not.toEqual(a.logits); // the adapter does change the model
      const cfg = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8'));
      expect(cfg.lora).toMatchObject({ rank: o.rank, alpha: o.alpha });
      // and it exports again, like any Lathe run
      const again = await exportModel({ format: 'merged', model, adapter: out, out: path.join(tempDir(), 'merged') });
      expect(again.verification!.relError).toBeLessThan(1e-5);
    });
  }

  it('refuses other PEFT types, DoRA, other bases and modules Lathe does not model, naming what it found', async () => {
    const { model, adapter } = await exported('llama');
    const out = () => path.join(tempDir(), 'imp');
    const msg = async (dir: string, m = model) => {
      try { await importAdapter({ adapter: dir, model: m, out: out() }); } catch (e) { return `${(e as { code: string }).code}: ${(e as Error).message}`; }
      return 'imported';
    };
    expect(await msg(withConfig(adapter, (c) => { c['use_dora'] = true; }))).toMatch(/^peft\.invalid: .*DoRA/);
    expect(await msg(withConfig(adapter, (c) => { c['peft_type'] = 'IA3'; }))).toMatch(/peft_type is "IA3"/);
    expect(await msg(withConfig(adapter, (c) => { c['peft_type'] = 'PROMPT_TUNING'; }))).toMatch(/peft_type is "PROMPT_TUNING"/);
    expect(await msg(withConfig(adapter, (c) => { c['bias'] = 'lora_only'; }))).toMatch(/^import\.unsupported: .*bias/);
    expect(await msg(withConfig(adapter, (c) => { c['modules_to_save'] = ['lm_head']; }))).toMatch(/modules_to_save \["lm_head"\]/);
    // another base: the same family with other widths (qwen3's q_proj is 128 wide), and another family's names (gpt2)
    expect(await msg(adapter, await tinyModel('qwen3'))).toMatch(/^peft\.model-mismatch: .*q_proj is 64×64, but the model's layer is 128×64/);
    expect(await msg(adapter, await tinyModel('gpt2'))).toMatch(/^peft\.model-mismatch: .*adapts "model\.layers\.\d\.[a-z_.]+", which is not a linear layer/);
    // a module Lathe does not adapt (lm_head) and an extra full tensor
    const extra = path.join(tempDir(), 'extra');
    cpSync(adapter, extra, { recursive: true });
    const st = await SafetensorsReader.open(path.join(adapter, 'adapter_model.safetensors'));
    const tensors = [];
    for (const [name, e] of st.tensors) tensors.push({ name, dtype: e.dtype, shape: e.shape, data: await st.readRaw(name) });
    await st.close();
    await writeSafetensors(path.join(extra, 'adapter_model.safetensors'), [...tensors,
      { name: 'base_model.model.lm_head.lora_A.weight', dtype: 'F32', shape: [4, 64], data: new Float32Array(256) },
      { name: 'base_model.model.lm_head.lora_B.weight', dtype: 'F32', shape: [256, 4], data: new Float32Array(1024) }]);
    expect(await msg(extra)).toMatch(/adapts "lm_head", which is not a linear layer/);
    await writeSafetensors(path.join(extra, 'adapter_model.safetensors'), [...tensors,
      { name: 'base_model.model.model.embed_tokens.weight', dtype: 'F32', shape: [2, 2], data: new Float32Array(4) }]);
    expect(await msg(extra)).toMatch(/^import\.unsupported: .*model\.embed_tokens\.weight/);
    // a non-empty output folder
    const taken = out();
    mkdirSync(taken);
    writeFileSync(path.join(taken, 'x'), '');
    await expect(importAdapter({ adapter, model, out: taken })).rejects.toMatchObject({ code: 'import.out' });
  });
});
