/** Hand-off of a run with an extended tokenizer: the new tokens reach the shards, the tokenizer and job.json, and train.py starts their rows as Lathe does. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHandoff, importAdapter } from '../../../src-main/handoff';
import { exportModel } from '../../../src-main/export';
import { train } from '../../../src-main/engine/train/trainer';
import { computeLogits } from '../../../src-main/engine/train/infer';
import { SafetensorsReader } from '../../../src-main/engine/safetensors/reader';
import { writeSafetensors } from '../../../src-main/engine/safetensors/writer';
import { openModel } from '../../../src-main/engine/models';
import { resizeEmbeddings } from '../../../src-main/tokenizer/embeddings';
import { tinyExtendedTokenizer } from '../../helpers/tiny';

/** train.py's init_new_rows on a stand-in model (torch embedding + untied head), rows printed as JSON. */
function pyInitRows(job: string, embed: Float32Array, V: number, C: number): number[][] {
  const code = [
    'import importlib.util, json, sys, types, torch',
    'for name in ("datasets", "peft", "transformers"):',
    '    sys.modules[name] = types.ModuleType(name)',
    'sys.modules["datasets"].load_dataset = None',
    'for name in ("LoraConfig", "get_peft_model", "prepare_model_for_kbit_training"): setattr(sys.modules["peft"], name, None)',
    'for name in ("AutoModelForCausalLM", "AutoTokenizer", "BitsAndBytesConfig", "Trainer", "TrainingArguments", "set_seed"): setattr(sys.modules["transformers"], name, None)',
    'sys.modules["transformers"].TrainerCallback = object',
    'spec = importlib.util.spec_from_file_location("train", sys.argv[1]); train = importlib.util.module_from_spec(spec); spec.loader.exec_module(train)',
    `V, C = ${V}, ${C}`,
    'class M:',
    '    def __init__(self, w):',
    '        self.emb = torch.nn.Embedding(V, C); self.emb.weight.data = w.clone(); self.head = torch.nn.Linear(C, V, bias=False); self.head.weight.data = w.clone()',
    '    def get_input_embeddings(self): return self.emb',
    '    def get_output_embeddings(self): return self.head',
    '    def resize_token_embeddings(self, n):',
    '        for mod in (self.emb, self.head):',
    '            w = torch.zeros(n, C); w[:V] = mod.weight.data; mod.weight = torch.nn.Parameter(w)',
    'w = torch.tensor(json.load(sys.stdin), dtype=torch.float32).reshape(V, C)',
    'm = M(w)',
    'ids = train.init_new_rows(m, [0] * V)',
    'print(json.dumps([m.emb.weight[i].tolist() for i in ids]))',
  ].join('\n');
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', code, path.join(job, 'train.py')], { input: JSON.stringify(Array.from(embed)), encoding: 'utf8' })) as number[][];
}

describe('hand-off with an extended tokenizer', () => {
  it('new ids in the shards, the extended tokenizer shipped, new rows listed and initialized as in Lathe', async () => {
    const { model, base, tok, manifest, dataset } = await tinyExtendedTokenizer();
    const run = path.join(base, 'run');
    mkdirSync(run);
    writeFileSync(path.join(run, 'config.json'), JSON.stringify({ model, dataset, out: run, tokenizer: tok, newTokenInit: 'mean-of-subtokens' }));

    const job = path.join(base, 'job');
    await createHandoff({ run, target: 'accelerate', gpus: 1, out: job });
    expect(readFileSync(path.join(job, 'tokenizer', 'tokenizer.json'), 'utf8')).toBe(readFileSync(path.join(tok, 'tokenizer.json'), 'utf8'));
    const j = JSON.parse(readFileSync(path.join(job, 'job.json'), 'utf8'));
    expect(j.newTokens).toEqual(manifest.newTokens.map((t) => ({ id: t.id, baseIds: t.baseIds })));
    const { config, layout, weights } = await openModel(model);
    const embed = await weights.readF32(layout.embed);
    await weights.close();
    expect(j).toMatchObject({ baseVocabSize: config.vocabSize, tiedEmbeddings: config.tieWordEmbeddings, newTokenInit: 'mean-of-subtokens' });
    const { parquetReadObjects } = await import('hyparquet');
    const buf = readFileSync(path.join(job, 'data', 'train-00000.parquet'));
    const rows = (await parquetReadObjects({ file: buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) })) as { input_ids: number[] }[];
    expect(rows.some((r) => r.input_ids.some((id) => id >= config.vocabSize))).toBe(true);

    // train.py starts each new row as Lathe's resizeEmbeddings does (mean of the sub-token rows)
    const C = config.hiddenSize, V = config.vocabSize;
    const want = resizeEmbeddings(embed, V, C, manifest.newTokens.map((t) => ({ id: t.id, baseIds: t.baseIds })), 'mean-of-subtokens').matrix;
    const got = pyInitRows(job, embed, V, C);
    manifest.newTokens.forEach((t, k) => {
      const row = Array.from(want.subarray(t.id * C, (t.id + 1) * C));
      got[k]!.forEach((x, c) => expect(x).toBeCloseTo(row[c]!, 5));
    });

    const ax = await createHandoff({ run, target: 'axolotl', gpus: 1, out: path.join(base, 'ax') });
    expect(ax.warnings.some((w) => w.startsWith('new tokens: Axolotl trains the whole embedding'))).toBe(true);
  });

  it('import-adapter with --tokenizer: a run with trained new-token rows, exported as PEFT, comes back with identical logits (new ids included)', async () => {
    const { model, base, tok, manifest, dataset } = await tinyExtendedTokenizer();
    const newIds = manifest.newTokens.map((t) => t.id);
    const run = path.join(base, 'run');
    await train({ model, dataset, out: run, tokenizer: tok, maxSteps: 3, batchSize: 2, optim: { lr: 1e-2 }, evalEvery: 0, ep: 'cpu', lora: { targets: 'attention' } });
    const adapter = path.join(base, 'peft');
    await exportModel({ format: 'peft', model, adapter: run, out: adapter });

    await expect(importAdapter({ adapter, model, out: path.join(base, 'no-tok') })).rejects.toMatchObject({ code: 'import.unsupported', hint: expect.stringContaining('pass --tokenizer') });
    const out = path.join(base, 'imported');
    await importAdapter({ adapter, model, out, tokenizer: tok });
    const ids = [1, 5, newIds[0]!, 9, newIds.at(-1)!, 17];
    const a = await computeLogits(model, ids, { checkpoint: run });
    const b = await computeLogits(model, ids, { checkpoint: out });
    expect(b.logits).toEqual(a.logits);

    // the same rows as PEFT trainable tokens (what the hand-off's train.py saves): <module>.token_adapter.trainable_tokens_delta
    const { config, layout, weights } = await openModel(model);
    await weights.close();
    const C = config.hiddenSize;
    const tt = path.join(base, 'tt');
    mkdirSync(tt);
    const peftCfg = JSON.parse(readFileSync(path.join(adapter, 'adapter_config.json'), 'utf8'));
    const order = [...newIds].reverse(); // any order PEFT was given
    writeFileSync(path.join(tt, 'adapter_config.json'), JSON.stringify({ ...peftCfg, trainable_token_indices: config.tieWordEmbeddings ? order : { embed_tokens: order, lm_head: order } }));
    const src = await SafetensorsReader.open(path.join(adapter, 'adapter_model.safetensors'));
    const ttTensors = [];
    for (const [name, e] of src.tensors) {
      const data = await src.readF32(name);
      const m = /^base_model\.model\.(.+)\.weight$/.exec(name);
      if (m && (m[1] === 'model.embed_tokens' || m[1] === 'lm_head')) {
        const rows = new Float32Array(order.length * C);
        order.forEach((id, j) => rows.set(data.subarray(id * C, (id + 1) * C), j * C));
        ttTensors.push({ name: `base_model.model.${m[1]}.token_adapter.trainable_tokens_delta`, dtype: 'F32' as const, shape: [order.length, C], data: rows });
      } else {
        ttTensors.push({ name, dtype: 'F32' as const, shape: e.shape, data });
      }
    }
    await src.close();
    expect(ttTensors.filter((x) => x.name.includes('token_adapter')).length).toBe(config.tieWordEmbeddings ? 1 : 2);
    expect(layout.embed).toBe('model.embed_tokens.weight');
    await writeSafetensors(path.join(tt, 'adapter_model.safetensors'), ttTensors);
    const outTt = path.join(base, 'imported-tt');
    await importAdapter({ adapter: tt, model, out: outTt, tokenizer: tok });
    expect((await computeLogits(model, ids, { checkpoint: outTt })).logits).toEqual(a.logits);

    // a matrix trained whole (modules_to_save) changes base rows: refused, not cut down
    const whole = path.join(base, 'whole');
    mkdirSync(whole);
    writeFileSync(path.join(whole, 'adapter_config.json'), readFileSync(path.join(adapter, 'adapter_config.json')));
    const st = await SafetensorsReader.open(path.join(adapter, 'adapter_model.safetensors'));
    const tensors = [];
    for (const [name, e] of st.tensors) {
      const data = await st.readF32(name);
      if (name.endsWith('embed_tokens.weight')) data[3] = data[3]! + 0.05;
      tensors.push({ name, dtype: 'F32' as const, shape: e.shape, data });
    }
    await st.close();
    await writeSafetensors(path.join(whole, 'adapter_model.safetensors'), tensors);
    await expect(importAdapter({ adapter: whole, model, out: path.join(base, 'w'), tokenizer: tok })).rejects.toThrow(/changes 1 values in the base vocabulary's rows/);
  });
});
