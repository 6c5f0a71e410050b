import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { hash64 } from '../../../src-main/data/clean/hash';
import { wordScan } from '../../../src-main/data/clean/quality';
import { mulberry32 } from '../../../src-main/util/random';

/**
 * Differential test: the quality filter's scan is written without branches (quality.ts scanWords);
 * the reference below says the same thing plainly, one character class at a time. Both must give
 * the same word hashes, counts and content hash for every input.
 */
type Kind = 'space' | 'lower' | 'upper' | 'digit' | 'letter' | 'apos' | 'symbol' | 'punct' | 'text';

function kindOf(c: number): Kind {
  if (c === 32 || (c >= 9 && c <= 13)) return 'space';
  if (c >= 97 && c <= 122) return 'lower';
  if (c >= 65 && c <= 90) return 'upper';
  if (c >= 48 && c <= 57) return 'digit';
  if (c === 39) return 'apos';
  if ('.,;:!?"()-'.includes(String.fromCharCode(c))) return 'punct';
  if (c === 0xd7 || c === 0xf7 || (c >= 0x2000 && c <= 0x206f) || (c >= 0x3000 && c <= 0x303f)) return 'text';
  if (c < 0xc0) return 'symbol';
  return 'letter';
}

function reference(s: string): { words: number[]; digits: number; symbols: number; letters: number; hash: [number, number] } {
  const words: number[] = [];
  let digits = 0, symbols = 0, letters = 0;
  let h: number | null = null;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    const k = kindOf(c);
    if (k === 'digit') digits++;
    if (k === 'symbol') symbols++;
    if (k === 'lower' || k === 'upper' || k === 'letter' || k === 'text') letters++;
    const wordChar = k === 'lower' || k === 'upper' || k === 'digit' || k === 'letter' || k === 'apos';
    if (!wordChar) {
      if (h !== null) { words.push(h); h = null; }
      continue;
    }
    if (k === 'upper') c += 32;
    else if (k === 'letter' && c < 0x250) c = String.fromCharCode(c).toLowerCase().charCodeAt(0);
    h = Math.imul((h ?? (0x811c9dc5 | 0)) ^ c, 0x01000193);
  }
  if (h !== null) words.push(h);
  return { words, digits, symbols, letters, hash: hash64(s) };
}

const ALPHABET = [
  ' ', ' ', ' ', '\n', '\t', 'a', 'e', 't', 'o', 'n', 'x', 'A', 'Q', 'Z', '0', '7', '9', "'", '.', ',', '-', '"',
  '#', '$', '@', '~', '\u00e9', '\u00c9', '\u0130', '\u00df', '\u0411', '\u0431', '\u05d0', '\u4e2d', '\u2014', '\u00d7',
  '\u3001', '\u00a0', '\u00b5', '\ud83d', '\ude00', '\u024f', '\u0250',
];

function corpusSentences(): string[] {
  const root = join(import.meta.dirname, '../../../resources/corpus');
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(md|txt)$/.test(f)) out.push(...readFileSync(p, 'utf8').split('\n\n'));
    }
  };
  walk(root);
  return out;
}

describe('quality scan (branch-free) against a plain reference', () => {
  it('agrees on edge cases', () => {
    for (const s of ['', 'a', ' ', "it's", 'A', '9', 'word', ' word', 'word ', 'two words', 'Ünïcödé WORDS', 'a\u00d7b', '\u4e2d\u6587 text', "don't-stop", '##!!', 'x'.repeat(5000)]) {
      expect(wordScan(s), JSON.stringify(s)).toEqual(reference(s));
    }
  });

  it('agrees on 20,000 random strings', () => {
    const r = mulberry32(7);
    for (let t = 0; t < 20000; t++) {
      const n = Math.floor(r() * 60);
      let s = '';
      for (let i = 0; i < n; i++) s += ALPHABET[Math.floor(r() * ALPHABET.length)];
      expect(wordScan(s), JSON.stringify(s)).toEqual(reference(s));
    }
  });

  it('agrees on the bundled corpus', () => {
    const paragraphs = corpusSentences();
    expect(paragraphs.length).toBeGreaterThan(50);
    for (const p of paragraphs) expect(wordScan(p)).toEqual(reference(p));
  });
});
