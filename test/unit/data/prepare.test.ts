import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prepareCorpus } from '../../../src-main/data/prepare';
import { openDataset } from '../../../src-main/data/pack/dataset';
import { loadTokenizerDir } from '../../../src-main/data/tokenize';
import { chatmlRenderer } from '../../../src-main/data/sft/chatml';
import type { ChatMessage } from '../../../src-main/data/types';
import { rng } from '../../../src-main/data/clean/hash';
import { CancelledError, UserError, type ProgressReport } from '../../../src-main/util/progress';
import { asciiIds, makeTokenizerDir, tmp } from './helpers';

const TOPICS = ['bowl', 'spindle', 'skew', 'gouge', 'chuck', 'finish', 'sanding', 'grain', 'sharpening', 'safety'];
function corpus(dir: string, n: number, seed: number, prefix: string): void {
  const r = rng(seed);
  const vocab = 'the of and a to in is that it for on with as was at by wood tool cut edge bevel lathe speed blank tenon rest handle shaving surface'.split(' ');
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const body = Array.from({ length: 120 }, () => vocab[Math.floor(r() * vocab.length)]).join(' ');
    writeFileSync(join(dir, `${prefix}${String(i).padStart(3, '0')}.txt`), `Notes on the ${TOPICS[i % 10]}: ${body}.\n`);
  }
}

describe('prepareCorpus (pretraining)', () => {
  it('imports, cleans, mixes, packs and reports; the reader gets the blocks back', async () => {
    const root = tmp();
    const tokDir = makeTokenizerDir(tmp());
    corpus(join(root, 'domain'), 40, 1, 'd');
    corpus(join(root, 'general'), 60, 2, 'g');
    // A duplicate, PII and junk for the filters to find.
    writeFileSync(join(root, 'domain', 'dup.txt'), readFileSync(join(root, 'domain', 'd000.txt')));
    writeFileSync(join(root, 'domain', 'pii.txt'), 'Write to the turner at turner@example.com and the rest of the note is about the bevel of the tool and the wood on the lathe.');
    writeFileSync(join(root, 'domain', 'junk.txt'), '%%%% $$$$ #### @@@@ ^^^^ &&&& **** |||| ~~~~ '.repeat(5));
    const progress: ProgressReport[] = [];
    const out = join(root, 'out');
    const report = await prepareCorpus(
      { inputs: [join(root, 'domain')], general: [join(root, 'general')], out, tokenizerDir: tokDir, blockSize: 256, ratio: 0.5, seed: 3, valFraction: 0.05 },
      { onProgress: (p) => progress.push(p) },
    );
    const d = report.corpora.domain;
    expect(d.import.filesRead).toBe(43);
    expect(d.filters.find((f) => f.name === 'exactDedup')!.removed).toBe(1);
    expect(d.filters.find((f) => f.name === 'quality')!.removed).toBe(1);
    expect(d.pii.email).toBe(1);
    expect(d.docsOut).toBe(41);
    expect(d.valDocs).toBe(2);
    expect(report.corpora.general!.valDocs).toBe(3);
    expect(report.mix!.ratio).toBe(0.5);
    expect(new Set(progress.map((p) => p.stage))).toEqual(new Set(['Importing domain corpus', 'Cleaning domain corpus', 'Importing general corpus', 'Cleaning general corpus', 'Tokenizing and packing']));

    const ds = openDataset(out);
    expect(ds.manifest.tokenizer.hash).toBe((await loadTokenizerDir(tokDir)).hash);
    expect(ds.manifest.tokenBytes).toBe(2);
    expect(Object.keys(ds.manifest.splits).sort()).toEqual(['train', 'val-domain', 'val-general']);
    const train = ds.split('train');
    expect(train.rows).toBe(Math.ceil(report.tokens.train! / 256));
    // Byte-level tokenizer: decoding a block's bytes gives readable corpus text with EOS (256) between documents.
    const ascii = await asciiIds(await loadTokenizerDir(tokDir));
    const row = train.row(1);
    const text = String.fromCharCode(...[...row].map((t) => ascii.indexOf(t)).filter((b) => b >= 0));
    expect(text).toMatch(/the|wood|tool/);
    expect([...train.row(train.rows - 1)].slice(ds.manifest.splits.train!.lastRowTokens).every((t) => t === 256)).toBe(true);
    // Domain ≈ general by characters (±15%), both present in train.
    const mixChars = report.mix!.domainTarget / (report.mix!.domainTarget + report.mix!.generalTarget);
    expect(mixChars).toBeCloseTo(0.5, 5);
    train.close();
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).tokens.train).toBe(report.tokens.train);
    expect(readdirSync(out).filter((f) => f.startsWith('.work') || f.endsWith('.tmp'))).toEqual([]);

    // Deterministic: same seed, same bytes.
    const out2 = join(root, 'out2');
    await prepareCorpus({ inputs: [join(root, 'domain')], general: [join(root, 'general')], out: out2, tokenizerDir: tokDir, blockSize: 256, ratio: 0.5, seed: 3, valFraction: 0.05 });
    expect(readFileSync(join(out2, 'train-00000.bin')).equals(readFileSync(join(out, 'train-00000.bin')))).toBe(true);
  });

  it('mixes by tokens: a general corpus in Cyrillic (2 tokens per character here) still gets its token share', async () => {
    const root = tmp();
    const tokDir = makeTokenizerDir(tmp());
    corpus(join(root, 'domain'), 30, 4, 'd');
    const r = rng(8);
    const ru = 'и в не на что с как это он она мы они дерево токарный станок резец заготовка стружка скорость'.split(' ');
    mkdirSync(join(root, 'general'));
    for (let i = 0; i < 80; i++) writeFileSync(join(root, 'general', `g${i}.txt`), Array.from({ length: 120 }, () => ru[Math.floor(r() * ru.length)]).join(' ') + '.');
    const report = await prepareCorpus({ inputs: [join(root, 'domain')], general: [join(root, 'general')], out: join(root, 'out'), tokenizerDir: tokDir, blockSize: 128, ratio: 0.5, seed: 2, valFraction: 0 });
    const mix = report.mix!;
    // Byte-level tokenizer: ASCII 1 character per token, Cyrillic letters 2 bytes = 2 tokens.
    expect(mix.charsPerToken.domain).toBeCloseTo(1, 5);
    expect(mix.charsPerToken.general).toBeGreaterThan(0.5);
    expect(mix.charsPerToken.general).toBeLessThan(0.6);
    expect(mix.measured!.ratio).toBeGreaterThan(0.45);
    expect(mix.measured!.ratio).toBeLessThan(0.55);
    expect(mix.measured!.domainTokens + mix.measured!.generalTokens + report.splits.train!.docs).toBe(report.tokens.train); // + one EOS per document
    // By characters the general side is only about a third of the text (a mix by characters would have
    // given it half the text and two thirds of the tokens).
    const generalChars = mix.measured!.generalTokens * mix.charsPerToken.general;
    expect(generalChars / (generalChars + mix.measured!.domainTokens)).toBeLessThan(0.4);
  });

  it('fails with a clear error naming the filter that removed everything', async () => {
    const root = tmp();
    corpus(join(root, 'd'), 5, 1, 'x');
    const err = await prepareCorpus({ inputs: [join(root, 'd')], out: join(root, 'o'), clean: { quality: { minChars: 100_000 } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/removed every document of the domain corpus: the "quality" step .* mostly "too short" \(5\)/);
    const none = await prepareCorpus({ inputs: [join(root, 'nothing-here')], out: join(root, 'o') }).catch((e: unknown) => e);
    expect((none as UserError).message).toMatch(/No text was found in the domain corpus: skipped .*nothing-here \(does not exist\)/);
  });

  it('cancels promptly and cleans up its work folder', async () => {
    const root = tmp();
    corpus(join(root, 'd'), 30, 1, 'x');
    const ac = new AbortController();
    ac.abort();
    const out = join(root, 'o');
    await expect(prepareCorpus({ inputs: [join(root, 'd')], out }, { signal: ac.signal })).rejects.toBeInstanceOf(CancelledError);
    expect(readdirSync(out)).toEqual([]);
  });

  it('cancelled while cleaning (spool files open), it closes them and removes its work folder', async () => {
    const root = tmp();
    corpus(join(root, 'd'), 1100, 2, 'y');
    const ac = new AbortController();
    const out = join(root, 'o');
    const stages: string[] = [];
    const run = prepareCorpus({ inputs: [join(root, 'd')], out, threads: 0 }, {
      signal: ac.signal,
      onProgress: (p) => { stages.push(p.stage ?? ''); if (p.stage?.startsWith('Cleaning') && p.fraction !== undefined && p.fraction < 1) ac.abort(); },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    expect(stages.some((s) => s.startsWith('Cleaning'))).toBe(true);
    expect(readdirSync(out)).toEqual([]);
  });
});

describe('prepareCorpus (SFT)', () => {
  it('renders conversations with assistant-only masks, reports bad lines, packs', async () => {
    const root = tmp();
    const tokDir = makeTokenizerDir(tmp());
    const tok = await loadTokenizerDir(tokDir);
    // Synchronous encoder matching the byte-level tokenizer for ASCII text.
    const ascii = await asciiIds(tok);
    const enc = (t: string): number[] => [...Buffer.from(t)].map((b) => ascii[b]!);
    const render = chatmlRenderer(enc, 257, 258);
    const f = join(root, 'chat.jsonl');
    const lines = [
      JSON.stringify({ messages: [{ role: 'user', content: 'How fast for a 10 inch bowl?' }, { role: 'assistant', content: 'Start near 600 rpm.' }] }),
      '{"messages": [oops',
      JSON.stringify({ conversations: [{ from: 'human', value: 'Mail me: a@b.co' }, { from: 'gpt', value: 'Noted.' }] }),
      JSON.stringify({ instruction: 'Name a finish', output: 'Danish oil.' }),
      JSON.stringify({ instruction: 'Name a finish', output: 'Danish oil.' }),
      JSON.stringify({ instruction: 'Too long', output: 'x'.repeat(600) }),
    ];
    writeFileSync(f, lines.join('\n'));
    const out = join(root, 'o');
    const report = await prepareCorpus({ mode: 'sft', inputs: [f], out, tokenizer: tok, renderer: render, blockSize: 128, valFraction: 0 });
    expect(report.sft).toEqual({ formats: { openai: 1, sharegpt: 1, alpaca: 3 }, dropped: 1, truncated: 0 });
    expect(report.corpora.domain.import.badLines).toEqual([{ path: f, line: 2, error: expect.stringMatching(/not valid JSON/) }]);
    expect(report.corpora.domain.filters.find((x) => x.name === 'exactDedup')!.removed).toBe(1);
    expect(report.corpora.domain.pii.email).toBe(1);
    const ds = openDataset(out);
    expect(ds.manifest.kind).toBe('sft');
    const r = ds.split('train');
    let loss = 0;
    const segs = new Set<number>();
    for (let i = 0; i < r.rows; i++) {
      const row = r.sftRow(i);
      row.mask.forEach((m) => (loss += m));
      row.segments.forEach((s) => s && segs.add(s));
    }
    expect(loss).toBe(ds.manifest.splits.train!.lossTokens);
    expect(loss).toBe(enc('Start near 600 rpm.').length + enc('Noted.').length + enc('Danish oil.').length + 3);
    expect(segs.size).toBeGreaterThan(1); // several conversations share a row
    r.close();
    expect(existsSync(join(out, 'report.json'))).toBe(true);

    // A folder: conversation files are read; a script, an empty file and a file of bad records are named.
    const dir = join(root, 'folder');
    mkdirSync(dir);
    writeFileSync(join(dir, 'chat.jsonl'), lines[0]!);
    writeFileSync(join(dir, 'tool.py'), 'print("hello")\n');
    writeFileSync(join(dir, 'empty.jsonl'), '');
    writeFileSync(join(dir, 'bad.jsonl'), '{"prompt": "x"}\n');
    const r2 = await prepareCorpus({ mode: 'sft', inputs: [dir], out: join(root, 'o2'), tokenizer: tok, renderer: render, blockSize: 128, valFraction: 0 });
    expect(r2.corpora.domain.import.filesRead).toBe(1);
    expect(Object.fromEntries(r2.corpora.domain.import.filesSkipped.map((x) => [x.path, x.reason]))).toEqual({
      [join(dir, 'bad.jsonl')]: 'no conversation: all 1 records were skipped (see the bad lines)',
      [join(dir, 'empty.jsonl')]: 'empty file (no records)',
      [join(dir, 'tool.py')]: 'not a conversation file (.jsonl or .json)',
    });
  });

  it('reports conversations whose template places no trainable token, and refuses when none has one', async () => {
    const root = tmp();
    const tok = await loadTokenizerDir(makeTokenizerDir(tmp()));
    const ascii = await asciiIds(tok);
    const enc = (t: string): number[] => [...Buffer.from(t)].map((b) => ascii[b]!);
    const chatml = chatmlRenderer(enc, 257, 258);
    // A template that cannot place replies starting with "?" (as a reasoning template did with every reply).
    const render = async (messages: ChatMessage[]) => {
      const r = await chatml(messages);
      return messages.some((m) => m.role === 'assistant' && m.content.startsWith('?')) ? { ids: r.ids, mask: new Uint8Array(r.ids.length) } : r;
    };
    const f = join(root, 'chat.jsonl');
    const conv = (q: string, a: string) => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });
    writeFileSync(f, [conv('a', 'fine'), conv('b', '?lost'), conv('c', 'good'), conv('d', '?gone')].join('\n'));
    const report = await prepareCorpus({ mode: 'sft', inputs: [f], out: join(root, 'o'), tokenizer: tok, renderer: render, blockSize: 128, valFraction: 0 });
    const w = report.warnings.find((x) => x.includes('no trainable tokens'));
    expect(w).toBe(`2 of 4 conversations have no trainable tokens (the chat template placed no assistant reply to learn): ${f}:2, ${f}:4. They were left out.`);
    expect(report.splits.train!.docs).toBe(2);
    writeFileSync(f, [conv('b', '?lost'), conv('d', '?gone')].join('\n'));
    await expect(prepareCorpus({ mode: 'sft', inputs: [f], out: join(root, 'o2'), tokenizer: tok, renderer: render, blockSize: 128, valFraction: 0 }))
      .rejects.toThrow(/2 of 2 conversations have no trainable tokens/);
  });
});
