/**
 * Cached decode == full forward: logits of the KV-cache graphs (prefill in chunks, then one token at a
 * time) against buildEvalGraph's full-sequence forward at every position, with and without an unmerged
 * LoRA adapter (all B non-zero). Tolerance: max |Δ| ≤ 1e-4 · max(1, max |logit|) (f32, different
 * summation orders; measured ~1e-6).
 */
import { describe, expect, it } from 'vitest';
import { openModel } from '../../../src-main/engine/models';
import { buildEvalGraph } from '../../../src-main/engine/llm/train-graph';
import { addNewRows, buildLoraLayout, DEFAULT_LORA, TokenRows, type LoraLayout } from '../../../src-main/engine/llm/lora';
import { feedsOf, makeBatch } from '../../../src-main/engine/train/batch';
import { EngineSession, hostTensor } from '../../../src-main/engine/backends/onnx';
import { Generator } from '../../../src-main/engine/generate';
import { Rng } from '../../../src-main/engine/models/rng';
import { tinyModel } from '../../helpers/tiny';

async function fullLogits(dir: string, ids: number[], lora: LoraLayout | null, params: Float32Array | null): Promise<Float32Array[]> {
  const { config, layout, weights } = await openModel(dir);
  try {
    const T = ids.length;
    const g = await buildEvalGraph(config, layout, { weights, dir: weights.dir }, lora, { batch: 1, seqLen: T });
    const s = await EngineSession.create(g.model, { ep: 'cpu', externalDataDir: weights.dir });
    const out = await s.run({
      ids: hostTensor('int64', [1, T], BigInt64Array.from(ids, BigInt)),
      targets: hostTensor('int64', [T, 1], new BigInt64Array(T)),
      mask: hostTensor('float32', [T, 1], new Float32Array(T)),
      ...(lora && params ? { params: hostTensor('float32', [lora.size], params) } : {}),
    }, ['logits']);
    await s.dispose();
    const flat = out['logits']!.data as Float32Array, V = config.vocabSize;
    return ids.map((_, t) => flat.slice(t * V, (t + 1) * V));
  } finally {
    await weights.close();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  let diff = 0, scale = 1;
  for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i]! - b[i]!)); scale = Math.max(scale, Math.abs(b[i]!)); }
  return { diff, scale };
}

// (not 'phi3': its longrope switches to the long factors once a step's last position passes the original
// context of 4, as HF does, so a cached prefix rotated with the short ones differs from a full forward)
const ARCHS = ['llama', 'llama3', 'qwen2', 'qwen3', 'smollm3', 'gpt2', 'mistral', 'tinyllama',
  'granite', 'mistral-nemo', 'olmo2', 'gemma2', 'gemma3', 'phi4mini'];

describe('KV-cache step graphs match the full forward', () => {
  for (const arch of ARCHS) {
    it(`${arch}: prefill in chunks of 4, then 5 decode steps, base and LoRA`, async () => {
      const dir = await tinyModel(arch, 3);
      const ids = [5, 17, 42, 9, 100, 33, 7, 61, 250, 12, 90, 3];
      const P = 7;
      for (const withLora of [false, true]) {
        let lora: LoraLayout | null = null, params: Float32Array | null = null;
        if (withLora) {
          const { config, layout, weights } = await openModel(dir);
          await weights.close();
          lora = buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 4, alpha: 8 });
          const rng = new Rng(11);
          params = rng.normalArray(lora.size, 0.05);
        }
        const full = await fullLogits(dir, ids, lora, params);
        const gen = await Generator.open(dir, { chunk: 4, capacity: 16, lora: lora && params ? { layout: lora, params } : null });
        try {
          const got: Float32Array[] = [await gen.prefill(ids.slice(0, P))];
          for (let t = P; t < ids.length; t++) got.push(await gen.decode(ids[t]!));
          let worst = 0;
          got.forEach((l, i) => {
            const { diff, scale } = maxDiff(l, full[P - 1 + i]!);
            worst = Math.max(worst, diff / scale);
          });
          console.log(`${arch} lora=${withLora}: worst relative logit diff ${worst.toExponential(2)}`);
          expect(worst).toBeLessThan(1e-4);
        } finally {
          await gen.dispose();
        }
      }
    });
  }
});

describe('KV-cache step graphs with trainable new-token rows (extended tokenizer)', () => {
  for (const arch of ['llama', 'gpt2']) {
    it(`${arch}: new ids in the prompt and the logits match the full forward`, async () => {
      const dir = await tinyModel(arch, 4);
      const { config, layout, weights } = await openModel(dir);
      const V = config.vocabSize;
      const lora = addNewRows(buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: 2, alpha: 4 }), config, [V, V + 1, 7]);
      const rows = new TokenRows(V, lora.newRows);
      const params = new Rng(5).normalArray(lora.size, 0.05);
      const ids = [3, V, 40, V + 1, 7, 12, V, 9];
      const g = await buildEvalGraph(config, layout, { weights, dir: weights.dir }, lora, { batch: 1, seqLen: ids.length });
      const s = await EngineSession.create(g.model, { ep: 'cpu', externalDataDir: weights.dir });
      const out = await s.run({ ...feedsOf(makeBatch([Uint32Array.from(ids)], ids.length, rows, [0]), 1, ids.length), params: hostTensor('float32', [lora.size], params) }, ['logits']);
      await s.dispose(); await weights.close();
      const K = rows.classes, flat = out['logits']!.data as Float32Array;
      const gen = await Generator.open(dir, { chunk: 3, capacity: 16, lora: { layout: lora, params } });
      try {
        expect(gen.vocab).toBe(V + 2);
        const got = [await gen.prefill(ids.slice(0, 5))];
        for (let t = 5; t < ids.length; t++) got.push(await gen.decode(ids[t]!));
        let worst = 0;
        got.forEach((l, i) => {
          const t = 4 + i;
          for (let v = 0; v < V; v++) if (v !== 7) worst = Math.max(worst, Math.abs(l[v]! - flat[t * K + v]!));
          for (const [id, j] of rows.index) worst = Math.max(worst, Math.abs(l[id]! - flat[t * K + V + j]!));
        });
        console.log(`${arch} new rows: worst logit diff ${worst.toExponential(2)}`);
        expect(worst).toBeLessThan(1e-4);
      } finally {
        await gen.dispose();
      }
    });
  }
});

describe('KV-cache step graphs with longrope (phi3: original context 4)', () => {
  it('within the original context the short factors match the full forward; past it the step switches to the long ones', async () => {
    const dir = await tinyModel('phi3', 3);
    const ids = [5, 17, 42, 9, 100, 33];
    const full4 = await fullLogits(dir, ids.slice(0, 4), null, null); // T = 4: short factors
    const full6 = await fullLogits(dir, ids, null, null); // T = 6: long factors everywhere
    const gen = await Generator.open(dir, { chunk: 4, capacity: 16, lora: null });
    try {
      const got = [await gen.prefill(ids.slice(0, 2)), await gen.decode(ids[2]!), await gen.decode(ids[3]!)];
      got.forEach((l, i) => {
        const { diff, scale } = maxDiff(l, full4[1 + i]!);
        expect(diff / scale).toBeLessThan(1e-4);
      });
      // position 4: the step's sequence is 5 > 4 long, so its q and new k rotate with the long factors
      // (HF's dynamic longrope does the same; the cached keys keep the short rotation): neither full forward
      const next = await gen.decode(ids[4]!);
      const d6 = maxDiff(next, full6[4]!), d4 = maxDiff(next, full4[3]!);
      expect(d6.diff / d6.scale).toBeGreaterThan(1e-3);
      expect(d4.diff / d4.scale).toBeGreaterThan(1e-3);
    } finally {
      await gen.dispose();
    }
  });
});
