import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate } from '../../bench/data';
import { prepareCorpus } from '../../../src-main/data/prepare';
import { resolveCleanConfig } from '../../../src-main/data/config';
import { Cleaner, LineCounter } from '../../../src-main/data/clean/pipeline';
import { CleanPool, cleanFirstPass, cleanSecondPass } from '../../../src-main/data/clean/pool';
import { SpoolWriter, readSpool } from '../../../src-main/data/spool';
import { normalizeText } from '../../../src-main/data/clean/normalize';
import { rng } from '../../../src-main/data/clean/hash';
import type { Doc } from '../../../src-main/data/types';
import { makeTokenizerDir, tmp } from './helpers';

/** Input with every step's case: boilerplate footers, a page of only boilerplate, junk, German, duplicates, PII. */
function corpus(root: string): string[] {
  const gen = join(root, 'gen');
  const extra = join(root, 'extra');
  mkdirSync(gen);
  mkdirSync(extra);
  const footer = 'Subscribe to our newsletter for more turning tips every week';
  const body = 'The gouge rides the bevel and the shaving comes off clean when the tool rest sits close to the work. ';
  for (let i = 0; i < 8; i++) writeFileSync(join(extra, `page${i}.txt`), `${body.repeat(2 + i)}Page ${i} of the notes on the lathe.\n${footer}\n`);
  writeFileSync(join(extra, 'only-footer.txt'), `${footer}\n`);
  writeFileSync(join(extra, 'repeats.txt'), `${'Buy cheap lathe tools now and save money on every order today!\n'.repeat(6)}${body}`);
  writeFileSync(join(extra, 'junk.txt'), '%%%% $$$$ #### @@@@ ^^^^ &&&& **** |||| ~~~~ '.repeat(5));
  writeFileSync(join(extra, 'de.txt'), 'Die Drehbank steht in der Werkstatt und wir arbeiten jeden Tag mit dem Holz, weil es uns Freude macht und die Arbeit nicht schwer ist.');
  writeFileSync(join(extra, 'crlf.txt'), `${body}\r\n\r\n\r\n\tIndented line with a   run of spaces.\u00a0Caf\u0065\u0301 and a\u200bzero-width mark.\r\n`);
  return [gen, extra, join(import.meta.dirname, '../../../resources/corpus/sample')];
}

describe('cleaning in worker threads', () => {
  it('gives byte-identical reports and shards with 0 and 2 threads, language filter and near-dedup on', async () => {
    const root = tmp();
    const inputs = corpus(root);
    await generate(inputs[0]!, 2);
    const tokDir = makeTokenizerDir(tmp());
    const run = async (threads: number) => {
      const out = join(root, `out${threads}`);
      const r = await prepareCorpus({ inputs, out, tokenizerDir: tokDir, blockSize: 256, seed: 5, threads, clean: { language: { keep: ['en'] }, examplesPerFilter: 4 } });
      const shards = Object.fromEntries(readdirSync(out).filter((f) => f.endsWith('.bin')).sort().map((f) => [f, readFileSync(join(out, f)).toString('base64')]));
      return { report: { ...r, seconds: 0, out: '' }, shards };
    };
    const serial = await run(0);
    const parallel = await run(2);
    expect(JSON.stringify(parallel.report).replaceAll(join(root, 'out2'), '')).toBe(JSON.stringify(serial.report).replaceAll(join(root, 'out0'), ''));
    expect(parallel.shards).toEqual(serial.shards);
    // The corpus exercises every step, so equality above covers each of them.
    const f = Object.fromEntries(serial.report.corpora.domain.filters.map((s) => [s.name, s]));
    expect(f.boilerplate!.modified).toBeGreaterThanOrEqual(8);
    expect(f.boilerplate!.reasons['only boilerplate']).toBeGreaterThanOrEqual(1);
    expect(f.quality!.removed).toBeGreaterThan(0);
    // Decided from pass 1's repeated-lines fraction (carried in the spool record) when threaded.
    expect(Object.keys(f.quality!.reasons).some((k) => k.startsWith('repeated lines'))).toBe(true);
    expect(f.language!.reasons.de).toBeGreaterThanOrEqual(1);
    expect(f.exactDedup!.removed).toBeGreaterThan(0);
    expect(f.pii!.modified).toBeGreaterThan(0);
    expect(f.nearDedup!.removed).toBeGreaterThan(0);
    expect(f.normalize!.modified).toBeGreaterThan(0);
    expect(Object.keys(parallel.shards).length).toBeGreaterThan(0);
  }, 60_000);

  it('a pool applied through the Cleaner matches the one-thread Cleaner document by document', async () => {
    const cfg = resolveCleanConfig({});
    const docs: Doc[] = [];
    const r = rng(9);
    const words = 'the of and turning wood gouge bevel 555-0104 j.doe@example.com 4539 1488 0343 6467 Subscribe now'.split(' ');
    for (let i = 0; i < 3000; i++) {
      const n = 5 + Math.floor(r() * 60);
      const text = Array.from({ length: n }, (_, j) => words[Math.floor(r() * words.length)] + (j % 9 === 8 ? '\n' : ' ')).join('');
      docs.push({ text: i % 7 === 0 && i > 0 ? docs[i - 1]!.text : text, source: `doc${i}` });
    }
    async function* from(list: Doc[]): AsyncGenerator<Doc> { yield* list; }
    const dir = tmp();
    const runAll = async (pool: CleanPool | null, name: string) => {
      const c = new Cleaner(cfg, 3);
      const a = new SpoolWriter(join(dir, `${name}-a`));
      await cleanFirstPass(c, from(docs), pool, a);
      await a.close();
      const b: (Doc | null)[] = [];
      await cleanSecondPass(c, a.path, pool, async (d) => { b.push(d ? { source: d.source, text: d.text() } : null); });
      const kept: Doc[] = [];
      for await (const d of readSpool(a.path)) kept.push(d);
      return { a: kept, b, filters: c.filters, langs: c.languages };
    };
    const pool = CleanPool.start(cfg, 3, 2);
    try {
      const p = await runAll(pool, 'p');
      const s = await runAll(null, 's');
      expect(p.a).toEqual(s.a);
      expect(p.b).toEqual(s.b);
      expect(p.filters).toEqual(s.filters);
      expect(p.langs).toEqual(s.langs);
      expect(s.b.filter((x) => x === null).length).toBeGreaterThan(100);
    } finally {
      await pool.close();
    }
  }, 60_000);
});

describe('normalizeText fast path', () => {
  /** The straightforward version: every rewrite, each with its own scan. */
  function reference(s: string): string {
    // eslint-disable-next-line no-control-regex
    const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b\u200e\u200f\u202a-\u202e\u2060\ufeff]/g;
    s = s.normalize('NFC').replace(/[\u00a0\u2000-\u200a\u202f\u205f\u3000]/g, ' ');
    s = s.replace(/\r\n?/g, '\n').replace(CONTROL, '');
    s = s.replace(/(?<=\S)[ \t]{2,}/g, ' ').replace(/[ \t]+\n/g, '\n').replace(/\n{3,}/g, '\n\n');
    return s.trim();
  }
  it('equals the one-scan-per-rewrite version on 20,000 random strings', () => {
    const r = rng(4);
    const alphabet = ['a', 'b', 'Z', ' ', ' ', '  ', '\t', '\n', '\n', '\n\n\n', '\r', '\r\n', '\u00a0', '\u200b', '\u0007', '\u007f', 'e\u0301', 'é', '.', '\u3000'];
    for (let i = 0; i < 20000; i++) {
      const n = Math.floor(r() * 30);
      let s = '';
      // Half the strings stay ASCII without CR/controls, the path most documents take.
      const pool = i % 2 ? alphabet : alphabet.slice(0, 10);
      for (let j = 0; j < n; j++) s += pool[Math.floor(r() * pool.length)];
      expect(normalizeText(s), JSON.stringify(s)).toBe(reference(s));
    }
  });
});

describe('LineCounter', () => {
  it('counts documents per line like a Map, keeps frequent lines when pruning', () => {
    const lc = new LineCounter(1, 5000);
    const ref = new Map<number, number>();
    const r = rng(2);
    for (let d = 0; d < 3000; d++) {
      // Lines 0..9 in many documents (frequent), the rest mostly unique.
      const hs = [Math.floor(r() * 10), 100 + Math.floor(r() * 1e6), 0xffffffff - Math.floor(r() * 3), 0];
      const distinct = [...new Set(hs)];
      lc.observeHashes(distinct);
      for (const h of distinct) ref.set(h, (ref.get(h) ?? 0) + 1);
    }
    for (const h of [0, 1, 5, 9, 0xffffffff, 0xfffffffe]) expect(lc.docsWith(h)).toBe(ref.get(h));
    const want = [...ref].filter(([, n]) => n >= 5).map(([h]) => h).sort((a, b) => a - b);
    expect([...lc.frequent(5)].sort((a, b) => a - b)).toEqual(want);
  });
});
