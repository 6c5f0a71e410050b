import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LatheTokenizer } from '../../../src-main/tokenizer/tokenizer';
import { parseTokenizerJson } from '../../../src-main/tokenizer/json';
import { UserError } from '../../../src-main/util/progress';
import { expectedRows, FIXTURES, fixtureDir, jsTokenizer, readJson } from './helpers';

describe('loading and encoding the fixture tokenizers', () => {
  for (const name of FIXTURES) {
    describe(name, () => {
      const tok = LatheTokenizer.fromDir(fixtureDir(name));
      const rows = expectedRows(name);

      it('encodes like the committed Rust reference encodings', async () => {
        const encs = await tok.encodeBatch(rows.map((r) => r.text));
        let mismatched = 0;
        rows.forEach((r, i) => { if (JSON.stringify(encs[i]!.ids) !== JSON.stringify(r.ids)) mismatched++; });
        expect(mismatched).toBe(0);
        expect(encs.map((e) => e.tokens)).toEqual(rows.map((r) => r.tokens));
      });

      it('encodes like @huggingface/tokenizers (independent implementation)', () => {
        const js = jsTokenizer(tok.json, readJson(join(fixtureDir(name), 'tokenizer_config.json')));
        const bad = rows.filter((r) => JSON.stringify(js.encode(r.text).ids) !== JSON.stringify(r.ids)).map((r) => r.text);
        expect(bad).toEqual([]);
      });

      it('decodes back to the reference decode', async () => {
        for (const r of rows) expect(await tok.decode(r.ids, { skipSpecialTokens: true })).toBe(r.decoded);
      });

      it('reports vocab size, id lookups and a stable content hash', () => {
        expect(tok.vocabSize).toBe(Math.max(...Object.values(tok.json.model.vocab), ...tok.addedTokens.map((t) => t.id)) + 1);
        for (const [t, id] of Object.entries(tok.json.model.vocab).slice(0, 50)) {
          expect(tok.tokenToId(t)).toBe(id);
          expect(tok.idToToken(id)).toBe(t);
        }
        expect(tok.contentHash).toMatch(/^[0-9a-f]{64}$/);
        expect(LatheTokenizer.fromDir(fixtureDir(name)).contentHash).toBe(tok.contentHash);
      });
    });
  }

  it('gives different fixtures different hashes', () => {
    const hashes = FIXTURES.map((n) => LatheTokenizer.fromDir(fixtureDir(n)).contentHash);
    expect(new Set(hashes).size).toBe(FIXTURES.length);
  });
});

describe('special tokens and tokenizer_config.json', () => {
  it('Llama 3 layout: specials after the BPE vocab, bos from the post-processor, flagged special', async () => {
    const tok = LatheTokenizer.fromDir(fixtureDir('llama3'));
    const bos = tok.tokenToId('<|begin_of_text|>')!;
    expect(bos).toBe(Object.keys(tok.json.model.vocab).length); // right after the BPE vocab
    expect(tok.bosId).toBe(bos);
    expect(tok.eosId).toBe(tok.tokenToId('<|end_of_text|>'));
    expect(tok.modelMaxLength).toBe(131072);
    expect(tok.addBos).toBeUndefined();
    const e = await tok.encode('hi<|eot_id|> there');
    expect(e.ids[0]).toBe(bos);
    expect(e.tokens).toContain('<|eot_id|>');
    expect(e.special).toEqual(e.tokens.map((t) => t.startsWith('<|')));
    const plain = await tok.encode('hi', { addSpecialTokens: false });
    expect(plain.ids).not.toContain(bos);
  });

  it('Llama 2 layout: AddedToken dict form, add_bos_token honoured, the "unlimited" max length ignored', async () => {
    const tok = LatheTokenizer.fromDir(fixtureDir('llama2'));
    expect([tok.unkId, tok.bosId, tok.eosId, tok.padId]).toEqual([0, 1, 2, undefined]);
    expect([tok.unkToken, tok.bosToken, tok.eosToken]).toEqual(['<unk>', '<s>', '</s>']);
    expect(tok.addBos).toBe(true);
    expect(tok.addEos).toBe(false);
    expect(tok.modelMaxLength).toBeUndefined();
    expect(tok.kind).toBe('byte-fallback');
    expect(tok.metaspace).toBe('▁');
    const e = await tok.encode('the lathe');
    expect(e.ids[0]).toBe(1);
    expect(e.ids.at(-1)).not.toBe(2);
    expect(e.special[0]).toBe(true);
  });

  it('add_eos_token from the config appends eos (the config wins over the post-processor)', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('llama2'));
    const tok = new LatheTokenizer(base.json, { ...base.config, add_bos_token: false, add_eos_token: true });
    const e = await tok.encode('the lathe');
    expect(e.ids[0]).not.toBe(1);
    expect(e.ids.at(-1)).toBe(2);
    expect(e.offsets.at(-1)).toEqual([0, 0]);
  });

  it('GPT-2 layout: one <|endoftext|> that is bos, eos and unk; string-form merges', () => {
    const tok = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    expect(typeof tok.json.model.merges[0]).toBe('string');
    expect(tok.bosId).toBe(tok.eosId);
    expect(tok.unkId).toBe(tok.eosId);
    expect(tok.kind).toBe('byte-level');
    expect(tok.merges[0]).toHaveLength(2);
  });

  it('reports offsets in UTF-16 units of the input, across emoji and accents', async () => {
    // "😀" is one code point but two UTF-16 units: it spans [1, 3), so "b" is [3, 4).
    const text = 'a😀b é';
    const emoji = Array(4).fill([1, 3]);
    const gpt2 = await LatheTokenizer.fromDir(fixtureDir('gpt2')).encode(text, { addSpecialTokens: false });
    expect(gpt2.tokens).toEqual(['a', 'ð', 'Ł', 'ĺ', 'Ģ', 'b', 'Ġ', 'Ã', '©']);
    expect(gpt2.offsets).toEqual([[0, 1], ...emoji, [3, 4], [4, 5], [5, 6], [5, 6]]);
    const llama2 = await LatheTokenizer.fromDir(fixtureDir('llama2')).encode(text, { addSpecialTokens: false });
    expect(llama2.tokens).toEqual(['▁a', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>', 'b', '▁', 'é']);
    expect(llama2.offsets).toEqual([[0, 1], ...emoji, [3, 4], [4, 5], [5, 6]]);
    for (const [t, [s0, s1]] of llama2.tokens.map((t, i) => [t, llama2.offsets[i]!] as const)) {
      if (!t.startsWith('<0x')) expect(text.slice(s0, s1)).toBe(t.replace('▁', t === '▁' ? ' ' : ''));
    }
  });
});

describe('settings in tokenizer.json that would change counts', () => {
  it('ignores truncation and padding stored in the file', async () => {
    const base = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    const json = { ...structuredClone(base.json), truncation: { direction: 'Right', max_length: 4, strategy: 'LongestFirst', stride: 0 },
      padding: { strategy: { Fixed: 64 }, direction: 'Right', pad_to_multiple_of: null, pad_id: 0, pad_type_id: 0, pad_token: '<|endoftext|>' } };
    const tok = new LatheTokenizer(json, base.config);
    const text = 'The morning train was late again, so we walked to the bakery.';
    expect((await tok.encode(text)).ids).toEqual((await base.encode(text)).ids);
    expect((await tok.encode(text)).ids.length).toBeGreaterThan(4);
    expect((await tok.encode(text)).ids.length).toBeLessThan(64);
  });
});

describe('bad input', () => {
  const err = (f: () => unknown): UserError => {
    try { f(); } catch (e) { return e as UserError; }
    throw new Error('expected a UserError');
  };

  it('names WordPiece and Unigram models as unsupported', () => {
    const wp = err(() => parseTokenizerJson(JSON.stringify({ model: { type: 'WordPiece', vocab: { a: 0 } } })));
    expect(wp).toBeInstanceOf(UserError);
    expect(wp.code).toBe('tokenizer-unsupported-model');
    expect(wp.message).toContain('WordPiece');
    expect(wp.hint).toContain('BPE');
    const ug = err(() => parseTokenizerJson(JSON.stringify({ model: { type: 'Unigram', vocab: [['a', 0]] } })));
    expect(ug.message).toContain('Unigram');
  });

  it('rejects non-JSON, a missing model section, and a folder without tokenizer.json', () => {
    expect(err(() => parseTokenizerJson('{"model": ')).code).toBe('tokenizer-bad-json');
    expect(err(() => parseTokenizerJson('{"vocab": {}}')).code).toBe('tokenizer-bad-json');
    const dir = mkdtempSync(join(tmpdir(), 'lathe-tok-'));
    writeFileSync(join(dir, 'tokenizer.model'), 'x');
    const e = err(() => LatheTokenizer.fromDir(dir));
    expect(e.code).toBe('tokenizer-missing');
    expect(e.hint).toContain('tokenizer.json');
  });

  it('rejects added-token ids that the Rust library would silently renumber', () => {
    const base = LatheTokenizer.fromDir(fixtureDir('llama3'));
    const json = structuredClone(base.json);
    json.added_tokens[0]!.id += 5; // leaves a gap after the BPE vocab
    expect(err(() => new LatheTokenizer(json, {})).code).toBe('tokenizer-added-id-mismatch');
  });

  it('rejects a config naming a bos token the tokenizer does not have', () => {
    const base = LatheTokenizer.fromDir(fixtureDir('gpt2'));
    expect(err(() => new LatheTokenizer(base.json, { bos_token: '<nope>' })).code).toBe('tokenizer-special-missing');
  });
});

describe('data pipeline adapter', () => {
  it('encodes without specials and carries the content hash', async () => {
    const { asDataTokenizer } = await import('../../../src-main/tokenizer/adapter');
    const tok = LatheTokenizer.fromDir(fixtureDir('llama2'));
    const a = asDataTokenizer(tok);
    expect(a.hash).toBe(tok.contentHash);
    expect([a.eosId, a.vocabSize]).toEqual([2, tok.vocabSize]);
    const [ids] = await a.encodeBatch(['the spindle']);
    expect(Array.from(ids!)).toEqual((await tok.encode('the spindle', { addSpecialTokens: false })).ids);
    expect(Array.from(ids!)).not.toContain(1);
  });
});

describe('fixture generator', () => {
  it('reproduces the committed fixture tokenizers (trainer from scratch + hand-built JSON)', async () => {
    const { buildFixture } = await import('../../oracle/tokenizer/generate');
    for (const name of FIXTURES) {
      const [json, config] = await buildFixture(name);
      expect(JSON.parse(JSON.stringify(json))).toEqual(readJson(join(fixtureDir(name), 'tokenizer.json')));
      expect(JSON.parse(JSON.stringify(config))).toEqual(readJson(join(fixtureDir(name), 'tokenizer_config.json')));
    }
  });
});
