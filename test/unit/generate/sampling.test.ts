/**
 * Host sampling (transformers' order and semantics) and the generation loop: stop ids, stop strings,
 * streaming, max tokens, cancellation, seeds.
 */
import { describe, expect, it } from 'vitest';
import { Generator, Sampler, type SamplingOptions, type TokenEvent } from '../../../src-main/engine/generate';
import { tinyModel } from '../../helpers/tiny';

const base: SamplingOptions = { greedy: false, temperature: 1, topK: 0, topP: 1, repetitionPenalty: 1, seed: 1 };

function freqs(opts: Partial<SamplingOptions>, logits: number[], n = 20000): number[] {
  const s = new Sampler({ ...base, ...opts });
  const c = new Array<number>(logits.length).fill(0);
  const l = Float32Array.from(logits);
  for (let i = 0; i < n; i++) c[s.next(l)]!++;
  return c.map((x) => x / n);
}

describe('Sampler', () => {
  const L = [Math.log(0.2), Math.log(0.3), Math.log(0.5)];
  it('samples the softmax distribution, with top-k and top-p as transformers', () => {
    const f = freqs({}, L);
    [0.2, 0.3, 0.5].forEach((p, i) => expect(Math.abs(f[i]! - p)).toBeLessThan(0.015));
    const k2 = freqs({ topK: 2 }, L); // {0.3, 0.5} renormalized
    expect(k2[0]).toBe(0);
    expect(Math.abs(k2[2]! - 0.625)).toBeLessThan(0.015);
    const p6 = freqs({ topP: 0.6 }, L); // transformers drops tokens with ascending cumsum <= 0.4: only 0.2
    expect(p6[0]).toBe(0);
    expect(Math.abs(p6[2]! - 0.625)).toBeLessThan(0.015);
    expect(freqs({ topP: 0.5 }, L, 500)).toEqual([0, 0, 1]); // cumsum 0.5 <= 0.5 removed too
    const cold = freqs({ temperature: 0.25 }, L); // p ∝ p^4: 0.5^4/(0.2^4+0.3^4+0.5^4) = 0.8495
    expect(Math.abs(cold[2]! - 0.8495)).toBeLessThan(0.015);
  });

  it('is greedy with greedy, top-k 1, and repeats with the same seed', () => {
    const l = Float32Array.from([0.1, 2, -1, 1.9]);
    expect(new Sampler({ ...base, greedy: true }).next(l)).toBe(1);
    expect(freqs({ topK: 1 }, [...l], 200)).toEqual([0, 1, 0, 0]);
    const draw = (seed: number) => { const s = new Sampler({ ...base, seed }); return Array.from({ length: 30 }, () => s.next(l)); };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('applies the repetition penalty like transformers (positive / p, negative · p) to seen ids', () => {
    // id 0 (seen, 3 -> 1.5) loses to id 2 (2); id 1 (seen, -0.5 -> -1) stays below
    const s = new Sampler({ ...base, greedy: true, repetitionPenalty: 2 }, [0, 1]);
    expect(s.next(Float32Array.from([3, -0.5, 2]))).toBe(2);
    // the chosen id is now seen too: 2 -> 1 loses to 1.5
    expect(s.next(Float32Array.from([3, -0.5, 2]))).toBe(0);
  });

  it('refuses bad values in plain words', () => {
    expect(() => new Sampler({ ...base, temperature: 0 })).toThrow(/Temperature must be a number above 0/);
    expect(() => new Sampler({ ...base, topP: 1.5 })).toThrow(/Top-p/);
  });
});

describe('Generator loop', () => {
  it('streams, stops on ids, stop strings and max tokens, and can be cancelled', async () => {
    const dir = await tinyModel('llama', 6);
    const gen = await Generator.open(dir, { capacity: 64, chunk: 8 });
    try {
      const prompt = await gen.encode('the lathe spins the blank');
      const events: TokenEvent[] = [];
      const full = await gen.generate(prompt, { greedy: true, maxTokens: 20, ignoreEos: true, onToken: (e) => events.push(e) });
      expect(full.finish).toBe('length');
      expect(full.ids).toHaveLength(20);
      expect(events.map((e) => e.text).join('')).toBe(full.text);
      expect(full.text.length).toBeGreaterThan(5);
      expect(full.timings.decodeTokensPerSecond).toBeGreaterThan(0);

      // the same run through the async iterator
      const it = gen.stream(prompt, { greedy: true, maxTokens: 20, ignoreEos: true });
      let streamed = '';
      for (;;) { const r = await it.next(); if (r.done) { expect(r.value.text).toBe(full.text); break; } streamed += r.value.text; }
      expect(streamed).toBe(full.text);

      // a stop id: the third token ends the output
      const byId = await gen.generate(prompt, { greedy: true, maxTokens: 20, stopIds: [full.ids[2]!], ignoreEos: true });
      expect(byId.finish).toBe('eos');
      expect(byId.ids).toEqual(full.ids.slice(0, full.ids.indexOf(full.ids[2]!) + 1));

      // a stop string from the middle of the text: output cut before it, never streamed
      const stop = full.text.slice(Math.floor(full.text.length / 2), Math.floor(full.text.length / 2) + 3);
      const cut = full.text.slice(0, full.text.indexOf(stop));
      let sent = '';
      const byStr = await gen.generate(prompt, { greedy: true, maxTokens: 20, stopStrings: [stop], ignoreEos: true, onToken: (e) => { sent += e.text; } });
      expect(byStr.finish).toBe('stop');
      expect(byStr.text).toBe(cut);
      expect(sent).toBe(cut);

      // cancellation after two tokens
      const ac = new AbortController();
      const cancelled = await gen.generate(prompt, { greedy: true, maxTokens: 20, ignoreEos: true, signal: ac.signal, onToken: (e) => { if (e.index === 1) ac.abort(); } });
      expect(cancelled.finish).toBe('cancelled');
      expect(cancelled.ids).toEqual(full.ids.slice(0, 2));

      // sampling: same seed, same text; the cache restarts for every prompt
      const a = await gen.generate(prompt, { temperature: 0.9, topP: 0.95, seed: 3, maxTokens: 15, ignoreEos: true });
      const b = await gen.generate(prompt, { temperature: 0.9, topP: 0.95, seed: 3, maxTokens: 15, ignoreEos: true });
      expect(a.ids).toEqual(b.ids);

      // the capacity bounds prompt + output
      const long = await gen.generate(prompt, { greedy: true, maxTokens: 500, ignoreEos: true });
      expect(long.finish).toBe('capacity');
      expect(prompt.length + long.ids.length).toBe(65);
    } finally {
      await gen.dispose();
    }
  });
});
