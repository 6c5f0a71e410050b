/**
 * Greedy continuations of the tiny models against PyTorch (test/oracle/generate/gen_generate.py:
 * reference.py's HF-exact forward over the whole sequence at each step, no cache): the same ids, and the
 * logits each was chosen from within 1e-4 · max(1, max |logit|) (f32; measured ≤ 7e-7 relative). Base model,
 * unmerged LoRA adapter, and greedy with transformers' repetition penalty (3.0).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createTinyModel, openModel } from '../../../src-main/engine/models';
import { buildLoraLayout, DEFAULT_LORA } from '../../../src-main/engine/llm/lora';
import { Generator, Sampler } from '../../../src-main/engine/generate';
import { tempDir } from '../../helpers/services';

const FIXTURES = path.resolve(__dirname, '../../oracle/generate/fixtures');

interface Case { name: string; lora: null | { rank: number; alpha: number; params: string; size: number }; repetition_penalty: number; tokens: number[]; logits: string; vocab: number }
interface Fixture { arch: string; weights_sha256: string; prompt: number[]; steps: number; cases: Case[] }

const f32 = (b64: string) => {
  const b = Buffer.from(b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

function weightsSha(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) h.update(readFileSync(path.join(dir, f)));
  return h.digest('hex');
}

const files = readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort();

describe('greedy generation matches the PyTorch oracle', () => {
  it('has fixtures for llama, qwen3, gpt2 and smollm3 at least', () => {
    for (const a of ['llama', 'qwen3', 'gpt2', 'smollm3']) expect(files).toContain(`${a}.json`);
  });
  for (const file of files) {
    it(file.replace('.json', ''), async () => {
      const fx = JSON.parse(readFileSync(path.join(FIXTURES, file), 'utf8')) as Fixture;
      const dir = path.join(tempDir('lathe-gen-oracle-'), fx.arch);
      await createTinyModel(fx.arch, dir, { seed: 0, dtype: 'f32' });
      expect(weightsSha(dir), 'the tiny model changed since the fixture was written: rerun gen_generate.py').toBe(fx.weights_sha256);
      const { config, layout, weights } = await openModel(dir);
      await weights.close();
      for (const c of fx.cases) {
        const lora = c.lora ? { layout: buildLoraLayout(config, layout, { ...DEFAULT_LORA, rank: c.lora.rank, alpha: c.lora.alpha, targets: 'all-linear' }), params: f32(c.lora.params) } : null;
        if (lora) expect(lora.layout.size).toBe(c.lora!.size);
        const gen = await Generator.open(dir, { capacity: 32, chunk: 4, lora });
        try {
          // 1) the user-facing path: generate() with greedy decoding
          const res = await gen.generate(fx.prompt, { greedy: true, maxTokens: fx.steps, repetitionPenalty: c.repetition_penalty, ignoreEos: true });
          expect(res.ids, `${fx.arch} ${c.name}`).toEqual(c.tokens);
          expect(res.finish).toBe('length');
          // 2) step by step: the logits each token was chosen from
          const want = f32(c.logits), V = c.vocab;
          const sampler = new Sampler({ greedy: true, temperature: 1, topK: 0, topP: 1, repetitionPenalty: c.repetition_penalty, seed: 0 }, fx.prompt);
          let logits = await gen.prefill(fx.prompt);
          let worst = 0;
          for (let s = 0; s < fx.steps; s++) {
            const ref = want.subarray(s * V, (s + 1) * V);
            let diff = 0, scale = 1;
            for (let i = 0; i < V; i++) { diff = Math.max(diff, Math.abs(logits[i]! - ref[i]!)); scale = Math.max(scale, Math.abs(ref[i]!)); }
            worst = Math.max(worst, diff / scale);
            const id = sampler.next(logits);
            expect(id).toBe(c.tokens[s]);
            if (s < fx.steps - 1) logits = await gen.decode(id);
          }
          console.log(`${fx.arch} ${c.name}: ${fx.steps} greedy tokens equal; worst relative logit diff ${worst.toExponential(2)}`);
          expect(worst).toBeLessThan(1e-4);
        } finally {
          await gen.dispose();
        }
      }
    });
  }
});
