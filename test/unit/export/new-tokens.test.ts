/**
 * A run trained with an extended tokenizer (new tokens' embedding/lm_head rows trained in the flat vector):
 * the merged export grows embed/lm_head to the new vocabulary with the trained rows and ships the extended
 * tokenizer; its check covers every column, a new token included in the prompt.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { exportModel, loadTrainedAdapter } from '../../../src-main/export';
import { openModel } from '../../../src-main/engine/models';
import { ModelWeights } from '../../../src-main/engine/safetensors/sharded';
import { SafetensorsReader } from '../../../src-main/engine/safetensors/reader';
import { train } from '../../../src-main/engine/train/trainer';
import { tinyExtendedTokenizer } from '../../helpers/tiny';

describe('export of a run with trained new-token rows', () => {
  it('merged: embed and lm_head grown with the trained rows, extended tokenizer shipped, all columns checked; PEFT: full matrices', async () => {
    const { model, base, tok, manifest, dataset } = await tinyExtendedTokenizer();
    const newIds = manifest.newTokens.map((t) => t.id);
    const run = path.join(base, 'run');
    await train({ model, dataset, out: run, tokenizer: tok, maxSteps: 3, batchSize: 2, optim: { lr: 1e-2 }, evalEvery: 0, ep: 'cpu', lora: { targets: 'attention' } });

    const { config, layout, weights } = await openModel(model);
    await weights.close();
    const V = config.vocabSize, C = config.hiddenSize, V2 = Math.max(V, ...newIds.map((i) => i + 1));
    const out = path.join(base, 'merged');
    const r = await exportModel({ format: 'merged', model, adapter: run, out, dtype: 'f32' });
    expect(r.vocabSize).toBe(V2);
    expect(r.verification!.passed).toBe(true);
    expect(r.verification!.comparedVocab).toBe(V2);
    expect(r.verification!.ids).toContain(newIds[0]);
    expect(r.verification!.relError).toBeLessThan(1e-5);
    expect(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).vocab_size).toBe(V2);
    expect(readFileSync(path.join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(tok, 'tokenizer.json'), 'utf8'));

    // The written rows are the trained ones (f32: exactly).
    const ad = await loadTrainedAdapter(run, config, layout);
    const nr = ad.lora.newRows!;
    const w = await ModelWeights.open(out);
    const embed = await w.readF32(layout.embed), head = await w.readF32(layout.lmHead!);
    nr.ids.forEach((id, j) => {
      expect(Array.from(embed.subarray(id * C, (id + 1) * C))).toEqual(Array.from(ad.params.subarray(nr.embedOffset + j * C, nr.embedOffset + (j + 1) * C)));
      expect(Array.from(head.subarray(id * C, (id + 1) * C))).toEqual(Array.from(ad.params.subarray(nr.headOffset! + j * C, nr.headOffset! + (j + 1) * C)));
    });
    await w.close();

    const peftOut = path.join(base, 'peft');
    const p = await exportModel({ format: 'peft', model, adapter: run, out: peftOut });
    expect(p.verification!.passed).toBe(true);
    expect(p.verification!.ids.some((id) => newIds.includes(id))).toBe(false);
    const st = await SafetensorsReader.open(path.join(peftOut, 'adapter_model.safetensors'));
    expect(st.entry('base_model.model.model.embed_tokens.weight').shape).toEqual([V2, C]);
    expect(st.entry('base_model.model.lm_head.weight').shape).toEqual([V2, C]);
    await st.close();
    expect(readFileSync(path.join(peftOut, 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(tok, 'tokenizer.json'), 'utf8'));
  });
});
