import type { CleanConfig } from '../config';
import { ALL_STOP_WORDS } from './langid';
import { HASH64_A, HASH64_B, LineHashes, hash64Finish } from './hash';

const LINES = new LineHashes();

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

// Character classes, looked up once per character (one load instead of a chain of comparisons).
const SPACE = 0, LOWER = 1, UPPER = 2, DIGIT = 3, LETTER = 4, APOS = 5, SYMBOL = 6, PUNCT = 7, TEXT = 8;
/** Word character classes: LOWER, UPPER, DIGIT, LETTER, APOS. */
export const FIRST_WORD_CLASS = LOWER, LAST_WORD_CLASS = APOS;
export const CLASS = new Uint8Array(65536).fill(LETTER);
for (let c = 0; c < 0xc0; c++) CLASS[c] = SYMBOL;
for (const c of [32, 10, 9, 13, 12, 11]) CLASS[c] = SPACE;
for (let c = 97; c <= 122; c++) CLASS[c] = LOWER;
for (let c = 65; c <= 90; c++) CLASS[c] = UPPER;
for (let c = 48; c <= 57; c++) CLASS[c] = DIGIT;
CLASS[39] = APOS;
// . , ; : ! ? " ( ) - are ordinary prose punctuation, not symbols.
for (const ch of '.,;:!?"()-') CLASS[ch.charCodeAt(0)] = PUNCT;
// General and CJK punctuation separate words but are ordinary text.
for (let c = 0x2000; c <= 0x206f; c++) CLASS[c] = TEXT;
for (let c = 0x3000; c <= 0x303f; c++) CLASS[c] = TEXT;
CLASS[0xd7] = TEXT; CLASS[0xf7] = TEXT;
/** Lower-case of Latin letters below U+0250 (the rest hash as they are). */
const LOWER_OF = new Uint16Array(0x250);
for (let c = 0; c < 0x250; c++) LOWER_OF[c] = String.fromCharCode(c).toLowerCase().charCodeAt(0);

/**
 * One load per character gives everything the scan needs: bits 0-15 the code unit lower-cased (Latin
 * letters below U+0250; other code units as they are), bit 16 word character, 17 digit, 18 symbol,
 * 19 letter (counted for the ratios).
 */
const SCAN = new Uint32Array(65536);
for (let c = 0; c < 65536; c++) {
  const k = CLASS[c]!;
  const lower = k === UPPER ? c + 32 : k === LETTER && c < 0x250 ? LOWER_OF[c]! : c;
  const word = k >= FIRST_WORD_CLASS && k <= LAST_WORD_CLASS ? 1 : 0;
  const letter = k === LOWER || k === UPPER || k === LETTER || k === TEXT ? 1 : 0;
  SCAN[c] = lower | (word << 16) | ((k === DIGIT ? 1 : 0) << 17) | ((k === SYMBOL ? 1 : 0) << 18) | (letter << 19);
}

const counts = { digits: 0, symbols: 0, letters: 0, hashA: 0, hashB: 0 };

/**
 * Fills wordHashes with one hash per word (runs of letters, digits, apostrophes; lower-cased) and
 * `counts` with digits, letters and symbols, and the two halves of hash64(s) (exact dedup needs it
 * for every document that passes, and it costs little here, in the same pass); returns the number of words.
 *
 * Written without branches in the loop: in prose a word ends every ~5 characters at no predictable
 * place, and a mispredicted branch there cost more than the arithmetic below (6.2 → 4.2 ns/char).
 * The word hash runs over every character; at a word's first character it restarts from the FNV
 * offset, so what it holds between words is never used. Each word's hash is stored when the
 * character after it is read (the store happens at every character; the index moves on only then).
 */
function scanWords(s: string): number {
  let n = 0, digits = 0, symbols = 0, letters = 0;
  let inWord = 0; // 0, or -1 while inside a word (a mask)
  let h = 0;
  let a = HASH64_A, b = HASH64_B;
  const len = s.length;
  // Room for every possible word up front (at most one per two characters), so the loop never checks.
  if (wordHashes.length < (len >> 1) + 2) wordHashes = new Int32Array((len >> 1) + 1024);
  const out = wordHashes;
  const seed = 0x811c9dc5 | 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
    const p = SCAN[c]!;
    const w = -((p >>> 16) & 1);
    digits += (p >>> 17) & 1;
    symbols += (p >>> 18) & 1;
    letters += (p >>> 19) & 1;
    out[n] = h;
    n -= inWord & ~w; // a word just ended: keep its hash
    h = Math.imul(((h & inWord) | (seed & ~inWord)) ^ (p & 0xffff), 0x01000193);
    inWord = w;
  }
  out[n] = h;
  n -= inWord;
  counts.digits = digits; counts.symbols = symbols; counts.letters = letters;
  counts.hashA = a; counts.hashB = b;
  return n;
}

/** scanWords' results as plain data (tests compare them with a straightforward reference). */
export function wordScan(s: string): { words: number[]; digits: number; symbols: number; letters: number; hash: [number, number] } {
  const n = scanWords(s);
  return { words: [...wordHashes.subarray(0, n)], digits: counts.digits, symbols: counts.symbols, letters: counts.letters, hash: hash64Finish(counts.hashA, counts.hashB, s.length) };
}

/**
 * Returns why a document fails the quality heuristics, or null when it passes. Each check is a
 * single linear pass; all thresholds come from `cfg`.
 */
/**
 * `lines`: this text's LineHashes when the caller has them, or `dupLines`: duplicateLineFraction of
 * them, known from an earlier pass (else computed here); `hashOut.hash` receives hash64(text) when
 * the text was scanned.
 */
export function qualityProblem(text: string, cfg: CleanConfig['quality'], hashOut?: { hash?: [number, number] }, lines?: LineHashes, dupLines?: number): string | null {
  const len = text.length;
  if (len < cfg.minChars) return `too short (${len} characters < ${cfg.minChars})`;
  // One pass: word hashes into wordHashes, character classes into `counts`.
  const n0 = scanWords(text);
  const { digits, symbols, letters } = counts;
  if (hashOut) hashOut.hash = hash64Finish(counts.hashA, counts.hashB, len);
  const nonSpace = Math.max(1, digits + symbols + letters);
  if (symbols / nonSpace > cfg.maxSymbolRatio) return `too many symbols (${pct(symbols / nonSpace)} > ${pct(cfg.maxSymbolRatio)})`;
  if (digits / nonSpace > cfg.maxDigitRatio) return `too many digits (${pct(digits / nonSpace)} > ${pct(cfg.maxDigitRatio)})`;
  if (n0 < cfg.minWords) return `too few words (${n0} < ${cfg.minWords})`;
  if (cfg.minStopWords > 0 && !/[\u0400-\u04ff\u0590-\u08ff\u0900-\u0dff\u0e00-\u0eff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/.test(text.slice(0, 500))) {
    let stop = 0;
    for (let i = 0; i < n0 && stop < cfg.minStopWords; i++) if (STOP_HASHES.has(wordHashes[i]!)) stop++;
    if (stop < cfg.minStopWords) return `almost no ordinary function words (${stop} < ${cfg.minStopWords}): not running text`;
  }

  const dup = dupLines ?? duplicateLineFraction(lines ?? LINES.of(text));
  if (dup > cfg.maxDuplicateLineFraction) return `repeated lines (${pct(dup)} of the text > ${pct(cfg.maxDuplicateLineFraction)})`;
  const rep = repeatedTrigramFraction(n0);
  if (rep > cfg.maxRepeatedNgramFraction) return `repetitive (${pct(rep)} of word 3-grams repeat > ${pct(cfg.maxRepeatedNgramFraction)})`;
  return null;
}


/** Characters in non-blank lines that occur more than once in the document, as a fraction. */
export function duplicateLineFraction(l: LineHashes): number {
  if (l.n < 2) return 0;
  const seen = new Set<number>();
  let dupChars = 0, total = 0, lines = 0;
  for (let i = 0; i < l.n; i++) {
    const len = l.trimmed[i]!;
    if (len === 0) continue;
    lines++;
    total += len;
    const h = l.hash[i]!;
    if (seen.has(h)) dupChars += len; else seen.add(h);
  }
  return lines >= 3 && total > 0 ? dupChars / total : 0;
}

/** Fraction of word 3-grams (over wordHashes[0..nWords)) already seen earlier in the document. */
function repeatedTrigramFraction(nWords: number): number {
  const n = nWords - 2;
  if (n >= 10) {
    // Only the part of the table this document needs is cleared (a huge earlier document must not
    // make every later one pay for its table).
    let size = 64;
    while (size < n * 2) size <<= 1;
    if (size > table.length) table = new Uint32Array(size);
    else table.fill(0, 0, size);
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
