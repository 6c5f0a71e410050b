import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { extendTokenizer, readExtensionManifest, writeExtendedTokenizer, type ExtendResult } from '../../../src-main/tokenizer/extend';
import { LatheTokenizer } from '../../../src-main/tokenizer/tokenizer';
import { trainDomainCandidates, type TrainResult } from '../../../src-main/tokenizer/train';
import { UserError } from '../../../src-main/util/progress';
import { varietyStrings } from '../../oracle/tokenizer/texts';
import { corpus, FIXTURES, fixtureDir, jsTokenizer, ORACLE, readJson } from './helpers';

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const DOMAIN_WORDS = ['tailstock', 'headstock', 'spindle', 'gouge', 'faceplate', 'toolrest', 'micrometer', 'chuck',
  'µm', 'Ø 50 mm', '29.5°', '±0.01', 'Morse taper', 'skew chisel', 'parting tool'];

for (const name of FIXTURES) {
  describe(`domain extension of the ${name} fixture`, () => {
    let base: LatheTokenizer;
    let train: TrainResult;
    let ext: ExtendResult;
    const TOP = 300;
    beforeAll(async () => {
      base = LatheTokenizer.fromDir(fixtureDir(name));
      train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 600 });
      ext = extendTokenizer(base, train, { topN: TOP });
    });

    it('ranks candidates by measured saving, never increasing, learning domain words', () => {
      expect(train.candidates.length).toBeGreaterThan(TOP);
      for (let i = 1; i < train.candidates.length; i++) {
        expect(train.candidates[i]!.saving).toBeLessThanOrEqual(train.candidates[i - 1]!.saving);
        expect(train.candidates[i]!.cumulativeSaving).toBe(train.candidates[i - 1]!.cumulativeSaving + train.candidates[i]!.saving);
      }
      const texts = train.candidates.slice(0, TOP).map((c) => c.text.trim());
      for (const w of ['spindle', 'chuck', 'tailstock', 'gouge']) expect(texts).toContain(w);
    });

    it('predicts exactly the tokens the extended tokenizer saves on the training corpus', async () => {
      const texts = corpus('domain-train');
      const before = sum(await base.countTokens(texts));
      const after = sum(await ext.tokenizer.countTokens(texts));
      expect(train.corpus.baseTokens).toBe(before);
      expect(before - after).toBe(train.candidates[TOP - 1]!.cumulativeSaving);
      expect(ext.manifest.predictedSaving).toBe(before - after);
    });

    it('keeps every existing id and appends new tokens after the largest id, specials included', () => {
      for (const [tok, id] of Object.entries(base.json.model.vocab)) expect(ext.tokenizer.tokenToId(tok)).toBe(id);
      for (const t of base.addedTokens) expect(ext.tokenizer.tokenToId(t.content)).toBe(t.id);
      expect(ext.manifest.newTokens.map((t) => t.id)).toEqual(Array.from({ length: TOP }, (_, i) => base.vocabSize + i));
      expect(ext.tokenizer.vocabSize).toBe(base.vocabSize + TOP);
      expect(ext.tokenizerJson.added_tokens).toEqual(base.json.added_tokens);
      // Real vocab entries with merges whose parts exist, not added tokens.
      const vocab = ext.tokenizerJson.model.vocab;
      const merges = ext.tokenizerJson.model.merges.slice(base.json.model.merges.length);
      expect(merges.length).toBe(ext.manifest.newTokens.filter((t) => t.kind === 'merge').length);
      for (const m of merges) {
        const [a, b] = Array.isArray(m) ? m : m.split(' ');
        expect(vocab[a!]).toBeDefined();
        expect(vocab[b!]).toBeDefined();
        expect(vocab[a! + b!]).toBeGreaterThanOrEqual(base.vocabSize);
      }
      expect(typeof merges[0]).toBe(typeof base.json.model.merges[0]); // the base's merge format is kept
    });

    it('loads in @huggingface/tokenizers and encodes identically over varied strings', async () => {
      const js = jsTokenizer(ext.tokenizerJson, ext.tokenizerConfig);
      const texts = [...varietyStrings(11, 300, DOMAIN_WORDS), ...corpus('domain-heldout').slice(0, 40),
        ...base.addedTokens.map((t) => `x ${t.content} spindle${t.content}`)];
      const rust = await ext.tokenizer.encodeBatch(texts);
      const bad = texts.filter((t, i) => JSON.stringify(js.encode(t).ids) !== JSON.stringify(rust[i]!.ids));
      expect(bad).toEqual([]);
      // Special tokens keep their ids in both implementations.
      for (const t of base.addedTokens) expect(js.encode(t.content, { add_special_tokens: false }).ids).toEqual([t.id]);
    });

    it('decodes to what the base decodes (lossless where the base was)', async () => {
      const texts = varietyStrings(13, 150, DOMAIN_WORDS);
      for (const t of texts) {
        const b = await base.decode((await base.encode(t)).ids);
        expect(await ext.tokenizer.decode((await ext.tokenizer.encode(t)).ids)).toBe(b);
      }
    });

    it('records for each new token the base ids it replaces', async () => {
      for (const t of ext.manifest.newTokens.slice(0, 60)) {
        const viaBase = await base.decode(t.baseIds);
        const viaExt = await ext.tokenizer.decode([t.id]);
        expect(viaExt).toBe(viaBase);
        expect(t.baseIds.every((id) => id < base.vocabSize)).toBe(true);
      }
    });

    it('writes files that load back from disk in both implementations', async () => {
      const dir = mkdtempSync(join(tmpdir(), `lathe-ext-${name}-`));
      writeExtendedTokenizer(dir, ext);
      const back = LatheTokenizer.fromDir(dir);
      expect(back.contentHash).toBe(ext.tokenizer.contentHash);
      expect(readExtensionManifest(dir).newTokens.length).toBe(TOP);
      const js = jsTokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
      const s = 'Set the toolrest near the tailstock spindle, Ø 50 mm ±0.01 😀';
      expect(js.encode(s).ids).toEqual((await back.encode(s)).ids);
      expect([back.bosId, back.eosId, back.addBos]).toEqual([base.bosId, base.eosId, base.addBos]);
      if (base.kind === 'byte-level') {
        const mergesTxt = readFileSync(join(dir, 'merges.txt'), 'utf8').trimEnd().split('\n');
        expect(mergesTxt.length).toBe(1 + ext.tokenizerJson.model.merges.length);
        expect((readJson(join(dir, 'vocab.json')) as Record<string, number>)[ext.manifest.newTokens[0]!.token]).toBe(base.vocabSize);
      } else {
        expect(existsSync(join(dir, 'merges.txt'))).toBe(false);
      }
    });
  });
}

describe('extension edge cases', () => {
  const err = async (f: () => unknown): Promise<UserError> => {
    try { await f(); } catch (e) { return e as UserError; }
    throw new Error('expected a UserError');
  };

  it('byte fallback: a character spelled only in <0xNN> bytes becomes the character itself, never a byte merge', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('llama2'));
    expect(base.tokenToId('µ')).toBeUndefined();
    const train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 3000 });
    const chars = train.candidates.filter((c) => c.kind === 'char');
    expect(chars.map((c) => c.token).sort()).toEqual(['±', '×', 'Ø', 'µ', '°', '−'].sort());
    const mu = chars.find((c) => c.token === 'µ')!;
    expect(mu.baseIds.map((id) => base.idToToken(id))).toEqual(['<0xC2>', '<0xB5>']);
    expect(mu.saving).toBe(50); // 50 occurrences × (2 bytes − 1)
    for (const c of train.candidates) expect(c.token).not.toMatch(/<0x/);
    const ext = extendTokenizer(base, train, { topN: train.candidates.length });
    const e = await ext.tokenizer.encode('10 µm', { addSpecialTokens: false });
    expect(e.tokens).toContain('▁µ');
    expect(await ext.tokenizer.decode(e.ids)).toBe('10 µm');
    const js = jsTokenizer(ext.tokenizerJson, ext.tokenizerConfig);
    expect(js.encode('10 µm Ø 29.5° ×2 −3').ids).toEqual((await ext.tokenizer.encode('10 µm Ø 29.5° ×2 −3')).ids);
  });

  it('skips and reports merges that would collide with an existing token', async () => {
    const b0 = LatheTokenizer.fromDir(fixtureDir('llama2'));
    const json = structuredClone(b0.json);
    json.model.vocab['▁spindle'] = b0.vocabSize; // in the vocab but no merge reaches it
    const base = new LatheTokenizer(json, b0.config);
    const train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 400 });
    expect(train.skipped.map((s) => [s.token, s.reason])).toContainEqual(['▁spindle', 'exists-in-base']);
    expect(train.candidates.map((c) => c.token)).not.toContain('▁spindle');
    const ext = extendTokenizer(base, train, { topN: 400 });
    const texts = corpus('domain-train');
    expect(sum(await base.countTokens(texts)) - sum(await ext.tokenizer.countTokens(texts))).toBe(ext.manifest.predictedSaving);
  });

  it('keeps digits apart when the base does (Llama 2 / Qwen style), unless told otherwise', async () => {
    const b0 = LatheTokenizer.fromDir(fixtureDir('llama2'));
    const json = structuredClone(b0.json);
    // Digits as single-character tokens and no token holding a digit with anything else: split_digits.
    for (let d = 0; d < 10; d++) json.model.vocab[String(d)] = b0.vocabSize + d;
    const base = new LatheTokenizer(json, b0.config);
    const auto = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 400 });
    expect(auto.digitsIsolated).toBe(true);
    expect(auto.candidates.filter((c) => /\d/.test(c.token))).toEqual([]);
    const free = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 400, isolateDigits: false });
    expect(free.digitsIsolated).toBe(false);
    expect(free.candidates.some((c) => /\d/.test(c.token))).toBe(true);
    // A base that already has multi-digit tokens (Llama 3 style) is left to merge digits.
    const l3 = await trainDomainCandidates(LatheTokenizer.fromDir(fixtureDir('llama3')), corpus('domain-train'), { maxCandidates: 50 });
    expect(l3.digitsIsolated).toBe(Object.keys(LatheTokenizer.fromDir(fixtureDir('llama3')).modelVocab).every((t) => !/\d/.test(t) || [...t].length === 1));
  });

  it('never merges into or across special tokens found in the corpus', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('llama3'));
    const texts = corpus('domain-train').map((t) => `<|start_header_id|>user<|end_header_id|>${t}<|eot_id|>`);
    const train = await trainDomainCandidates(base, texts, { maxCandidates: 300 });
    expect(train.corpus.specialTokensSeen).toBe(texts.length * 3);
    for (const c of train.candidates) expect(c.token).not.toMatch(/<\||\|>|eot|header/);
  });

  it('rejects an empty corpus and a corpus of only special tokens', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    const e1 = await err(() => trainDomainCandidates(base, []));
    expect(e1.code).toBe('tokenizer-empty-corpus');
    const e2 = await err(() => trainDomainCandidates(base, ['<|endoftext|>', '<|endoftext|><|endoftext|>']));
    expect(e2.code).toBe('tokenizer-empty-corpus');
    expect(e2.message).toContain('2 texts');
  });

  it('a selection brings in the tokens it is merged from, marked intermediate', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    const train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 400 });
    const target = train.candidates.find((c) => c.text === ' tailstock')!;
    const ext = extendTokenizer(base, train, { select: [target.token] });
    const toks = ext.manifest.newTokens;
    expect(toks.at(-1)!.token).toBe(target.token);
    expect(toks.length).toBeGreaterThan(1);
    expect(toks.filter((t) => t.intermediate).length).toBe(toks.length - 1);
    expect((await ext.tokenizer.encode(' tailstock')).ids).toEqual([toks.at(-1)!.id]);
  });

  it('refuses candidates learned for another tokenizer, or a bad count', async () => {
    const a = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    const b = LatheTokenizer.fromDir(fixtureDir('llama3'));
    const train = await trainDomainCandidates(a, corpus('domain-train').slice(0, 50), { maxCandidates: 20 });
    expect((await err(() => extendTokenizer(b, train, { topN: 5 }))).code).toBe('tokenizer-candidates-mismatch');
    expect((await err(() => extendTokenizer(a, train, { topN: -1 }))).code).toBe('tokenizer-bad-count');
    expect((await err(() => extendTokenizer(a, train, { select: ['Ġnot-a-candidate'] }))).code).toBe('tokenizer-unknown-candidate');
  });

  it('stops when cancelled', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    const ac = new AbortController();
    ac.abort();
    await expect(trainDomainCandidates(base, corpus('domain-train'), { signal: ac.signal })).rejects.toThrow(/Cancelled/);
  });
});

describe('the bundled tiny-default model tokenizer', () => {
  it('extends and stays identical across both implementations', async () => {
    const base = LatheTokenizer.fromDir(join(ORACLE, '..', '..', '..', 'resources', 'models', 'tiny-default'));
    const train = await trainDomainCandidates(base, corpus('domain-train'), { maxCandidates: 200 });
    const ext = extendTokenizer(base, train, { topN: 200 });
    expect(ext.manifest.newTokens[0]!.id).toBe(base.vocabSize);
    const js = jsTokenizer(ext.tokenizerJson, ext.tokenizerConfig);
    const texts = varietyStrings(17, 200, DOMAIN_WORDS);
    const rust = await ext.tokenizer.encodeBatch(texts);
    expect(texts.filter((t, i) => JSON.stringify(js.encode(t).ids) !== JSON.stringify(rust[i]!.ids))).toEqual([]);
  });
});
