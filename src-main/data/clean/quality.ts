import type { CleanConfig } from '../config';
import { ALL_STOP_WORDS } from './langid';

/** Reused scratch tables (no allocation per document). */
let table = new Uint32Array(1 << 12);
let wordHashes = new Int32Array(1 << 12);

/** Same hash as wordHash() over a lower-cased word: FNV-1a of the UTF-16 units. */
function wordHash(w: string): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < w.length; i++) h = Math.imul(h ^ w.charCodeAt(i), 0x01000193);
  return h;
}
const STOP_HASHES: ReadonlySet<number> = new Set([...ALL_STOP_WORDS].map(wordHash));

function isWordChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 39 || (c >= 0xc0 && (c < 0x2000 || c > 0x206f) && (c < 0x3000 || c > 0x303f));
}

const counts = { digits: 0, symbols: 0, letters: 0 };

/** Symbols are non-space characters other than letters, digits and . , ; : ! ? ' " ( ) - (ordinary prose punctuation). */
function isSymbol(c: number): boolean {
  return c !== 32 && c !== 10 && c !== 9 && c !== 13 && c !== 46 && c !== 44 && c !== 59 && c !== 58 && c !== 33 && c !== 63 && c !== 39 && c !== 34 && c !== 40 && c !== 41 && c !== 45;
}

/**
 * Fills wordHashes with one hash per word (ASCII lower-cased; other letters via toLowerCase) and
 * `counts` with digits, letters and symbols; returns the number of words.
 */
function scanWords(s: string): number {
  let n = 0, digits = 0, symbols = 0, letters = 0;
  let i = 0;
  const len = s.length;
  while (i < len) {
    let c = s.charCodeAt(i);
    while (i < len && !isWordChar(c)) {
      if (isSymbol(c) && c < 0xc0) symbols++;
      else if (c >= 0xc0) letters++; // general punctuation / CJK punctuation: count as text
      c = s.charCodeAt(++i);
    }
    if (i >= len) break;
    let h = 0x811c9dc5 | 0;
    while (i < len && isWordChar(c)) {
      if (c >= 65 && c <= 90) { c += 32; letters++; }
      else if (c >= 48 && c <= 57) digits++;
      else if (c >= 0xc0 && c < 0x250) { c = s[i]!.toLowerCase().charCodeAt(0); letters++; }
      else if (c !== 39) letters++;
      h = Math.imul(h ^ c, 0x01000193);
      c = s.charCodeAt(++i);
    }
    if (n >= wordHashes.length) { const w = new Int32Array(wordHashes.length * 2); w.set(wordHashes); wordHashes = w; }
    wordHashes[n++] = h;
  }
  counts.digits = digits; counts.symbols = symbols; counts.letters = letters;
  return n;
}

/**
 * Returns why a document fails the quality heuristics, or null when it passes. Each check is a
 * single linear pass; all thresholds come from `cfg`.
 */
export function qualityProblem(text: string, cfg: CleanConfig['quality']): string | null {
  const len = text.length;
  if (len < cfg.minChars) return `too short (${len} characters < ${cfg.minChars})`;
  // One pass: word hashes into wordHashes, character classes into `counts`.
  const n0 = scanWords(text);
  const { digits, symbols, letters } = counts;
  const nonSpace = Math.max(1, digits + symbols + letters);
  if (symbols / nonSpace > cfg.maxSymbolRatio) return `too many symbols (${pct(symbols / nonSpace)} > ${pct(cfg.maxSymbolRatio)})`;
  if (digits / nonSpace > cfg.maxDigitRatio) return `too many digits (${pct(digits / nonSpace)} > ${pct(cfg.maxDigitRatio)})`;
  if (n0 < cfg.minWords) return `too few words (${n0} < ${cfg.minWords})`;
  if (cfg.minStopWords > 0 && !/[\u0400-\u04ff\u0590-\u08ff\u0900-\u0dff\u0e00-\u0eff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/.test(text.slice(0, 500))) {
    let stop = 0;
    for (let i = 0; i < n0 && stop < cfg.minStopWords; i++) if (STOP_HASHES.has(wordHashes[i]!)) stop++;
    if (stop < cfg.minStopWords) return `almost no ordinary function words (${stop} < ${cfg.minStopWords}): not running text`;
  }

  const dup = duplicateLineFraction(text);
  if (dup > cfg.maxDuplicateLineFraction) return `repeated lines (${pct(dup)} of the text > ${pct(cfg.maxDuplicateLineFraction)})`;
  const rep = repeatedTrigramFraction(n0);
  if (rep > cfg.maxRepeatedNgramFraction) return `repetitive (${pct(rep)} of word 3-grams repeat > ${pct(cfg.maxRepeatedNgramFraction)})`;
  return null;
}

/** Characters in non-blank lines that occur more than once in the document, as a fraction. */
function duplicateLineFraction(text: string): number {
  if (text.indexOf('\n') < 0) return 0;
  const lines = text.split('\n');
  if (lines.length < 4) return 0;
  const seen = new Set<string>();
  let dupChars = 0, total = 0;
  for (const l of lines) {
    const t = l.trim();
    if (!t) continue;
    total += t.length;
    if (seen.has(t)) dupChars += t.length; else seen.add(t);
  }
  return total > 0 ? dupChars / total : 0;
}

/** Fraction of word 3-grams (over wordHashes[0..nWords)) already seen earlier in the document. */
function repeatedTrigramFraction(nWords: number): number {
  const n = nWords - 2;
  if (n >= 10) {
    let size = table.length;
    while (size < n * 2) size <<= 1;
    if (size !== table.length) table = new Uint32Array(size);
    else table.fill(0);
    const mask = size - 1;
    const wh = wordHashes;
    let repeats = 0;
    for (let i = 0; i < n; i++) {
      let h = (Math.imul(wh[i]!, 0x9e3779b1) ^ Math.imul(wh[i + 1]!, 0x85ebca6b) ^ wh[i + 2]!) >>> 0;
      if (h === 0) h = 1;
      let j = h & mask;
      for (;;) {
        const v = table[j]!;
        if (v === 0) { table[j] = h; break; }
        if (v === h) { repeats++; break; }
        j = (j + 1) & mask;
      }
    }
    return repeats / n;
  }
  return 0;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}
