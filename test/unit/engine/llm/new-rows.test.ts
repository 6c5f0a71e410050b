/**
 * Trainable rows for new tokens: base model + r trainable rows must equal a model whose embedding and
 * lm_head were physically resized with the same rows (logits over all ids); and training with an extended
 * tokenizer trains those rows.
 */
import { describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../../../../src-main/engine/models';
import { writeSafetensors } from '../../../../src-main/engine/safetensors';
import { addNewRows, buildLoraLayout, TokenRows } from '../../../../src-main/engine/llm/lora';
import { buildEvalGraph } from '../../../../src-main/engine/llm/train-graph';
import { EngineSession, hostTensor } from '../../../../src-main/engine/backends/onnx';
import { feedsOf, makeBatch } from '../../../../src-main/engine/train/batch';
import { Rng } from '../../../../src-main/engine/models/rng';
import { tinyModel } from '../../../helpers/tiny';
import { tempDir } from '../../../helpers/services';

async function logitsOf(dir: string, ids: number[], withRows: { newIds: number[]; embed: Float32Array; head: Float32Array } | null): Promise<number[][]> {
  const { config, layout, weights } = await openModel(dir, { skipTokenizer: true });
  const T = ids.length;
  let lora = null, rows = new TokenRows(config.vocabSize, null), params = null;
  if (withRows) {
    lora = addNewRows(buildLoraLayout(config, layout, { rank: 2, alpha: 4, dropout: 0, rslora: false, targets: 'attention', seed: 1 }), config, withRows.newIds);
    rows = new TokenRows(config.vocabSize, lora.newRows);
    const p = new Float32Array(lora.size); // LoRA B = 0: adapters are a no-op
    p.set(withRows.embed, lora.newRows!.embedOffset);
    if (lora.newRows!.headOffset !== null) p.set(withRows.head, lora.newRows!.headOffset);
    params = hostTensor('float32', [lora.size], p);
  }
  const g = await buildEvalGraph(config, layout, { weights, dir }, lora, { batch: 1, seqLen: T });
  const s = await EngineSession.create(g.model, { ep: 'cpu', externalDataDir: dir });
  const out = await s.run({ ...feedsOf(makeBatch([Uint32Array.from(ids)], T, rows, [0]), 1, T), ...(params ? { params } : {}) }, ['logits']);
  const K = rows.classes, flat = out['logits']!.data as Float32Array;
  const res = Array.from({ length: T }, (_, t) => {
    const r = Array.from(flat.subarray(t * K, t * K + config.vocabSize));
    for (const [id, j] of rows.index) r[id] = flat[t * K + config.vocabSize + j]!;
    return r;
  });
  await s.dispose(); await weights.close();
  return res;
}

describe('trainable new-token rows', () => {
  for (const arch of ['llama', 'gpt2']) {
    it(`${arch}: base + trainable rows equals a physically resized model`, async () => {
      const base = await tinyModel(arch);
      const { config, layout, weights } = await openModel(base);
      const V = config.vocabSize, C = config.hiddenSize;
      const newIds = [V, V + 1, V + 2];
      const rng = new Rng(9);
      const embedRows = rng.normalArray(3 * C, 0.05), headRows = config.tieWordEmbeddings ? embedRows : rng.normalArray(3 * C, 0.05);
      // resized copy: embed (and lm_head) get 3 more rows; every other tensor and file is copied as is
      const resized = path.join(tempDir(), 'resized');
      mkdirSync(resized);
      for (const f of readdirSync(base)) if (!f.endsWith('.safetensors')) copyFileSync(path.join(base, f), path.join(resized, f));
      const cfgJson = JSON.parse(readFileSync(path.join(base, 'config.json'), 'utf8'));
      cfgJson.vocab_size = V + 3;
      writeFileSync(path.join(resized, 'config.json'), JSON.stringify(cfgJson));
      const tensors = [];
      for (const name of weights.names()) {
        let data = await weights.readF32(name);
        const shape = [...weights.entry(name).shape];
        const grow = name === layout.embed ? embedRows : name === layout.lmHead ? headRows : null;
        if (grow) { const d = new Float32Array(data.length + grow.length); d.set(data); d.set(grow, data.length); data = d; shape[0] = V + 3; }
        tensors.push({ name, dtype: 'F32' as const, shape, data });
      }
      await writeSafetensors(path.join(resized, 'model.safetensors'), tensors);
      await weights.close();
      const ids = [5, V + 1, 17, V, V + 2, 9];
      const a = await logitsOf(base, ids, { newIds, embed: embedRows, head: headRows });
      const b = await logitsOf(resized, ids, null);
      let max = 0;
      for (let t = 0; t < ids.length; t++) for (let v = 0; v < V + 3; v++) max = Math.max(max, Math.abs(a[t]![v]! - b[t]![v]!));
      expect(max).toBeLessThan(1e-5);
    });
  }

  it('re-used rows (id < V) mask their base column and take the trainable row instead', () => {
    const rows = new TokenRows(10, { ids: [3, 12], baseRows: 10, hidden: 4, embedOffset: 0, headOffset: null });
    expect(rows.classes).toBe(12);
    expect(rows.input(3)).toEqual([3, 0, 1]);
    expect(rows.input(12)).toEqual([0, 1, 1]);
    expect(rows.input(5)).toEqual([5, 0, 0]);
    expect([rows.target(3), rows.target(12), rows.target(7)]).toEqual([10, 11, 7]);
    expect(rows.has(11)).toBe(false);
  });
});

describe('training with an extended tokenizer', () => {
  it('trains the new tokens\' rows with the LoRA weights and serves logits for the new ids', async () => {
    const { trainDomainTokenizer, extendTokenizerDir } = await import('../../../../src-main/tokenizer/service');
    const { prepareCorpus } = await import('../../../../src-main/data/prepare');
    const { train } = await import('../../../../src-main/engine/train/trainer');
    const { CheckpointManager } = await import('../../../../src-main/engine/train/checkpoints');
    const { readExtensionManifest } = await import('../../../../src-main/tokenizer/extend');
    const { computeLogits } = await import('../../../../src-main/engine/train/infer');
    const model = await tinyModel('llama');
    const base = tempDir();
    const corpus = path.join(base, 'corpus');
    mkdirSync(corpus);
    const rng = new Rng(3);
    const words = ['spindle', 'tailstock', 'headstock', 'faceplate', 'chuck', 'gouge', 'skew', 'parting', 'tool', 'rest', 'the', 'a', 'turn'];
    for (let d = 0; d < 20; d++) writeFileSync(path.join(corpus, `d${d}.txt`), Array.from({ length: 200 }, () => words[Math.floor(rng.next() * words.length)]).join(' ') + '.\n');
    const cands = await trainDomainTokenizer({ baseDir: model, corpus: [corpus], maxCandidates: 50 });
    const ext = path.join(base, 'tok');
    await extendTokenizerDir({ baseDir: model, candidates: cands, topN: 8, outDir: ext });
    const manifest = readExtensionManifest(ext);
    expect(manifest.newTokens.length).toBe(8);
    const dataset = path.join(base, 'ds');
    await prepareCorpus({ inputs: [corpus], out: dataset, tokenizerDir: ext, blockSize: 32, seed: 1, valFraction: 0.1 });
    const out = path.join(base, 'run');
    const s = await train({ model, dataset, out, tokenizer: ext, maxSteps: 12, batchSize: 2, optim: { lr: 1e-2 }, evalEvery: 0, ep: 'cpu' });
    expect(s.val['val-domain']!.loss).toBeLessThan(s.valBefore['val-domain']!.loss);
    const ck = (await new CheckpointManager(path.join(out, 'checkpoints')).latest())!;
    expect(ck.tensors.get('params')!.length).toBe(s.trainableParams);
    // logits for a sequence that uses new token ids come back with a column for every id
    const newId = manifest.newTokens[0]!.id;
    const lg = await computeLogits(model, [newId, 5, newId], { checkpoint: out });
    expect(lg.vocabSize).toBeGreaterThan(newId);
    expect(Number.isFinite(lg.logits[2]![newId]!)).toBe(true);
  });
});
