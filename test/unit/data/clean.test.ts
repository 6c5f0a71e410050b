import { describe, expect, it } from 'vitest';
import { resolveCleanConfig } from '../../../src-main/data/config';
import { Cleaner } from '../../../src-main/data/clean/pipeline';
import { analyzeContext, analyzeFirst, analyzeSecond, decodeFirstExtra, encodeFirstExtra } from '../../../src-main/data/clean/analyze';
import { identifyLanguage } from '../../../src-main/data/clean/langid';
import { NearDedup } from '../../../src-main/data/clean/minhash';
import { normalizeText } from '../../../src-main/data/clean/normalize';
import { ibanValid, luhnValid, newPiiCounts, scrubPii } from '../../../src-main/data/clean/pii';
import { qualityProblem } from '../../../src-main/data/clean/quality';
import { HashSet64, hash64, rng } from '../../../src-main/data/clean/hash';
import { emptyError } from '../../../src-main/data/prepare';

const cfg = resolveCleanConfig();
const PROSE = 'The bowl gouge is the tool most turners reach for when they shape the outside of a bowl, and it is worth learning to sharpen it well. ' +
  'A clean bevel that rubs the wood gives a smooth cut and leaves very little work for the sandpaper at the end of the day.';

function words(n: number, r: () => number): string {
  const vocab = 'the of and a to in is that it for on with as was at by an be this from or which one all were we when your can said there use each she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ');
  return Array.from({ length: n }, () => vocab[Math.floor(r() * vocab.length)]).join(' ');
}

describe('config', () => {
  it('fills defaults and rejects unknown or invalid keys with the path named', () => {
    expect(cfg.nearDedup.threshold).toBe(0.8);
    expect(() => resolveCleanConfig({ qualty: {} })).toThrow(/Unrecognized key.*qualty/);
    expect(() => resolveCleanConfig({ quality: { minChars: -1 } })).toThrow(/quality\.minChars/);
    expect(() => resolveCleanConfig({ nearDedup: { numPerm: 100, bands: 32 } })).toThrow(/multiple of/);
  });
});

describe('normalize', () => {
  it('NFC, newlines, controls, spaces, blank lines', () => {
    expect(normalizeText('Cafe\u0301\r\nline  two\u00a0 x \u200b\n\n\n\nend \t\n')).toBe('Café\nline two x\n\nend');
    expect(normalizeText('code:\n    indented  line')).toBe('code:\n    indented line');
  });
});

describe('quality', () => {
  const q = cfg.quality;
  it('passes ordinary prose', () => expect(qualityProblem(PROSE, q)).toBeNull());
  it('names each failing heuristic', () => {
    expect(qualityProblem('Too short.', q)).toMatch(/^too short/);
    expect(qualityProblem('#### ${[}]} <<>> |||| @@@ ^^^ ~~~ '.repeat(10) + PROSE, q)).toMatch(/^too many symbols/);
    expect(qualityProblem('1234 5678 9012 3456 7890 '.repeat(20) + PROSE, q)).toMatch(/^too many digits/);
    expect(qualityProblem('Buy cheap lathe tools now and save money today!\n'.repeat(6) + PROSE, q)).toMatch(/^repeated lines/);
    expect(qualityProblem('keep the bevel rubbing and the edge sharp '.repeat(12), q)).toMatch(/^repetitive/);
    expect(qualityProblem('Lathe gouge skew chisel parting tool spindle bowl blank chuck jaws tenon mortise faceplate tailstock headstock banjo toolrest calipers sandpaper', q)).toMatch(/function words/);
  });
});

describe('language identification', () => {
  it.each([
    ['en', 'Hold the skew chisel with the long point up and let the bevel ride on the wood before you lift the handle.'],
    ['de', 'Halten Sie den Meißel mit der langen Spitze nach oben und lassen Sie die Fase auf dem Holz gleiten.'],
    ['fr', 'Tenez le ciseau avec la pointe longue vers le haut et laissez le biseau glisser sur le bois avant de lever le manche.'],
    ['es', 'Sostén el formón con la punta larga hacia arriba y deja que el bisel se apoye en la madera antes de levantar el mango.'],
    ['it', 'Tieni lo scalpello con la punta lunga verso l\'alto e lascia che il bisello scorra sul legno prima di alzare il manico.'],
    ['pt', 'Segure o formão com a ponta longa para cima e deixe o bisel deslizar na madeira antes de levantar o cabo.'],
    ['nl', 'Houd de beitel met de lange punt omhoog en laat de schuine kant over het hout glijden voordat je het handvat optilt.'],
    ['ru', 'Держите резец длинным концом вверх и дайте фаске скользить по дереву.'],
    ['ja', '刃物の長い先を上にして、ベベルを木に当ててから柄を上げてください。'],
  ])('%s', (lang, text) => {
    const r = identifyLanguage(text);
    expect(r.lang).toBe(lang);
    expect(r.confidence).toBeGreaterThan(0.15);
  });
  it('gives the same answer every time (per-character script cache, direct trigram table)', () => {
    // Emoji are surrogate pairs (never cached); Hebrew letters between Latin words; typographic quotes.
    const mixed = 'שלום 😀 Hold the skew chisel — “up” — and let the bevel ride on the wood 😀 before you lift it. שלום';
    const first = identifyLanguage(mixed);
    expect(first.lang).toBe('en');
    for (let i = 0; i < 3; i++) expect(identifyLanguage(mixed)).toEqual(first);
    expect(identifyLanguage('שלום עליכם חברים 😀 ' + 'a')).toMatchObject({ lang: 'he' });
  });
});

describe('PII', () => {
  const scrub = (t: string) => { const c = newPiiCounts(); return { text: scrubPii(t, cfg.pii, c), c }; };
  it('replaces each type with its placeholder', () => {
    const { text, c } = scrub('Write to anna.k+wood@example.org or +44 20 7946 0958. Card 4539 1488 0343 6467, IBAN GB82 WEST 1234 5698 7654 32, ' +
      'server 10.0.0.12 / 2001:db8:85a3::8a2e:370:7334, SSN 078-05-1120, key ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8 and AKIAIOSFODNN7EXAMPLE, ' +
      'token Zq8Xv2Lm9Pw4Rt7Yk3Hn6Bd1Gs5Jc0Fa.');
    expect(text).toBe('Write to <EMAIL> or <PHONE>. Card <CREDIT_CARD>, IBAN <IBAN>, server <IP_ADDRESS> / <IP_ADDRESS>, SSN <NATIONAL_ID>, key <SECRET> and <SECRET>, token <SECRET>.');
    expect(c).toEqual({ email: 1, phone: 1, ip: 2, creditCard: 1, iban: 1, nationalId: 1, secret: 3 });
  });
  it('replaces UK phone numbers in their usual forms and AWS temporary key ids (ASIA…)', () => {
    const uk = ['+44 20 7946 0958', '020 7946 0958', '07700 900123', '(020) 7946 0958', '+44 (0)20 7946 0958', '+447700900123', '07700900123', '0161 496 0000', '01632 960123'];
    for (const n of uk) expect(scrub(`Ring ${n} after six.`).text, n).toBe('Ring <PHONE> after six.');
    const { text, c } = scrub('keys ASIAIOSFODNN7EXAMPLE and AKIAIOSFODNN7EXAMPLE');
    expect(text).toBe('keys <SECRET> and <SECRET>');
    expect(c.secret).toBe(2);
    // Too few or too many national digits, or a leading 00 international prefix read as UK: not a UK number.
    expect(scrub('part 0123 45 in stock').text).toBe('part 0123 45 in stock');
  });
  it('leaves look-alikes alone: failed checksums, dates, measurements, hex hashes, times', () => {
    const t = 'Order 4539 1488 0343 6468 on 2024-05-01 at 12:30:45; board 1200 x 300 mm; commit 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b; IBAN GB82 WEST 1234 5698 7654 33.';
    expect(scrub(t).text).toBe(t);
  });
  it('checksums', () => {
    expect(luhnValid('4539148803436467')).toBe(true);
    expect(luhnValid('4539148803436468')).toBe(false);
    expect(ibanValid('DE89 3704 0044 0532 0130 00')).toBe(true);
    expect(ibanValid('DE89 3704 0044 0532 0130 01')).toBe(false);
  });
  it('respects per-type switches', () => {
    const c = newPiiCounts();
    expect(scrubPii('mail a@b.co', { ...cfg.pii, email: false }, c)).toBe('mail a@b.co');
  });
});

describe('dedup', () => {
  it('HashSet64 finds repeats and grows', () => {
    const s = new HashSet64(4);
    for (let i = 0; i < 5000; i++) expect(s.add(...hash64(`doc ${i}`))).toBe(true);
    for (let i = 0; i < 5000; i++) expect(s.add(...hash64(`doc ${i}`))).toBe(false);
    expect(s.size).toBe(5000);
  });

  it('MinHash LSH drops near-duplicates and keeps distinct documents', () => {
    const r = rng(7);
    const nd = new NearDedup(128, 32, 0.8, 5, 1);
    const bases = Array.from({ length: 200 }, () => words(300, r));
    for (const b of bases) expect(nd.check(b)).toBe(-1);
    let caught = 0;
    for (const b of bases.slice(0, 50)) {
      // Change ~1% of the words: true Jaccard of 5-gram sets ≈ 0.9
      const w = b.split(' ');
      for (let k = 0; k < 3; k++) w[Math.floor(r() * w.length)] = 'zebra';
      if (nd.check(w.join(' ')) >= 0.8) caught++;
    }
    expect(caught).toBeGreaterThanOrEqual(48);
    let falsePos = 0;
    for (let i = 0; i < 200; i++) if (nd.check(words(300, r)) >= 0) falsePos++;
    expect(falsePos).toBe(0);
  });
});

describe('Cleaner', () => {
  it('counts per filter, keeps examples and removes boilerplate seen across documents', () => {
    const c = new Cleaner(resolveCleanConfig({ boilerplate: { minDocs: 3 }, examplesPerFilter: 2 }));
    const r = rng(3);
    const footer = 'Subscribe to our newsletter for more workshop tips';
    const docs = Array.from({ length: 6 }, (_, i) => `${PROSE.slice(0, 60)} number ${i}. ${words(80, r)} the and of.\n${footer}`);
    docs.push(docs[0]!); // exact duplicate
    docs.push('tiny');
    docs.push(PROSE + ' Contact me at joe@example.com.');
    const kept = [];
    const firsts = docs.map((t, i) => c.first({ text: t, source: `d${i}` })).filter((d) => d !== null);
    for (const d of firsts) { const k = c.second(d!); if (k) kept.push(k); }
    expect(c.boilerplate.modified).toBe(7);
    expect(c.boilerplate.examples[0]!.excerpt).toBe(footer);
    expect(kept.every((d) => !d.text.includes(footer))).toBe(true);
    expect(c.quality.removed).toBe(1);
    expect(c.quality.reasons).toEqual({ 'too short': 1 });
    expect(c.exactDedup.removed).toBe(1);
    expect(c.pii.modified).toBe(1);
    expect(c.piiCounts.email).toBe(1);
    expect(kept.length).toBe(7);
    expect(c.filters.map((f) => f.name)).toEqual(['normalize', 'boilerplate', 'quality', 'language', 'exactDedup', 'pii', 'nearDedup']);
    for (const f of c.filters.slice(1)) expect(f.docsIn - f.removed).toBe(f.docsOut);
    expect(c.languages).toEqual({ en: 8 });
  });

  it('a document repeated verbatim is deduplicated, not mistaken for boilerplate', () => {
    const c = new Cleaner(resolveCleanConfig({ boilerplate: { minDocs: 3 } }));
    const r = rng(5);
    const post = `${PROSE}\nThe second paragraph of the post, long enough to count as a line of its own.`;
    const docs = [post, post, post, post, post, ...Array.from({ length: 4 }, () => `${words(60, r)} the and of.`)];
    const kept = docs.map((t, i) => c.first({ text: t, source: `d${i}` })).filter((d) => d !== null).map((d) => c.second(d!)).filter((d) => d !== null);
    expect(c.boilerplate.modified).toBe(0);
    expect(c.exactDedup.removed).toBe(4);
    expect(kept.filter((d) => d!.text === post)).toHaveLength(1);
  });

  it('empty result names the filter that removed everything', () => {
    const c = new Cleaner(resolveCleanConfig({ language: { keep: ['de'] } }));
    for (const t of [PROSE, PROSE + ' again and again']) { const d = c.first({ text: t, source: 'x' }); if (d) c.second(d); }
    const e = emptyError('domain', c.filters);
    expect(e.message).toMatch(/"language" step .* removed the last 2, mostly "en" \(2\)/);
    expect(e.hint).toMatch(/Loosen the "language" settings/);
  });
});

describe('near-dedup memory cap', () => {
  it('stops indexing at maxMemoryMB but keeps checking against what is indexed', () => {
    const r = rng(11);
    const c = new Cleaner(resolveCleanConfig({ nearDedup: { maxMemoryMB: 16 }, quality: { enabled: false }, boilerplate: { enabled: false } }));
    const first = words(200, r);
    const run = (t: string) => c.second(c.first({ text: t, source: 's' })!);
    expect(run(first)).not.toBeNull();
    // ~0.9 KB per document plus growing tables: 16 MB fills after some thousands of documents.
    let n = 0;
    while (!c.filters[6]!.reasons['index full (later documents checked, not indexed)'] && n < 40000) { run(words(60, r) + ` ${n}`); n++; }
    expect(n).toBeLessThan(40000);
    expect(run(first + ' extra')).toBeNull(); // still found: it was indexed before the cap
  });
});

describe("pass 1's findings carried to pass 2", () => {
  const c = resolveCleanConfig({});
  const texts = [
    PROSE,
    'Buy cheap lathe tools now and save money on every order today!\n'.repeat(6) + PROSE,
    `${PROSE}\nSubscribe to our newsletter for more turning tips every week\n${PROSE}`,
    'Short.',
  ];
  it('round-trips through the spool extra bytes', () => {
    for (const t of texts) {
      const r = analyzeFirst(t, c);
      const x = decodeFirstExtra(encodeFirstExtra(r.lines, r.dupLines));
      expect(x).toEqual({ lines: r.lines ?? [], dupLines: r.dupLines });
    }
    expect(decodeFirstExtra(new Uint8Array(0))).toBeNull();
    expect(decodeFirstExtra(encodeFirstExtra(['x'].map(() => 7), undefined))).toBeNull(); // quality off: nothing to reuse
  });
  it('gives pass 2 the same result as hashing the lines again, with and without boilerplate to remove', () => {
    const ctx = analyzeContext(c, 1);
    const footer = analyzeFirst(texts[2]!, c).lines!.find((h) => h !== analyzeFirst(PROSE, c).lines![0]);
    for (const boiler of [null, new Set<number>([footer!])]) {
      ctx.boiler = boiler;
      for (const t of texts) {
        const r = analyzeFirst(t, c);
        const pre = decodeFirstExtra(encodeFirstExtra(r.lines, r.dupLines));
        expect(analyzeSecond(r.text, ctx, pre ?? undefined)).toEqual(analyzeSecond(r.text, ctx));
      }
    }
    ctx.boiler = new Set([footer!]);
    expect(analyzeSecond(texts[2]!, ctx, decodeFirstExtra(encodeFirstExtra(analyzeFirst(texts[2]!, c).lines, 0)) ?? undefined).boiler?.lines).toBe(1);
    expect(analyzeSecond(texts[1]!, ctx, { lines: [], dupLines: 0.9 }).quality).toMatch(/^repeated lines \(90%/);
  });
});

