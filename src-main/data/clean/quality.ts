import type { CleanConfig } from '../config';
import { ALL_STOP_WORDS } from './langid';
import { hash32 } from './hash';

/** Reused scratch table for per-document n-gram counting (no Map allocation per document). */
let table = new Uint32Array(1 << 12);

/**
 * Returns why a document fails the quality heuristics, or null when it passes. Each check is a
 * single linear pass; all thresholds come from `cfg`.
 */
export function qualityProblem(text: string, cfg: CleanConfig['quality']): string | null {
  const len = text.length;
  if (len < cfg.minChars) return `too short (${len} characters < ${cfg.minChars})`;
  let digits = 0, symbols = 0, letters = 0;
  for (let i = 0; i < len; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c > 0xbf) letters++;
    else if (c === 32 || c === 10 || c === 9) continue;
    // . , ; : ! ? ' " ( ) - are ordinary prose punctuation
    else if (c !== 46 && c !== 44 && c !== 59 && c !== 58 && c !== 33 && c !== 63 && c !== 39 && c !== 34 && c !== 40 && c !== 41 && c !== 45) symbols++;
  }
  const nonSpace = Math.max(1, digits + symbols + letters);
  if (symbols / nonSpace > cfg.maxSymbolRatio) return `too many symbols (${pct(symbols / nonSpace)} > ${pct(cfg.maxSymbolRatio)})`;
  if (digits / nonSpace > cfg.maxDigitRatio) return `too many digits (${pct(digits / nonSpace)} > ${pct(cfg.maxDigitRatio)})`;

  // Words: lower-cased runs of letters/digits/apostrophes.
  const words = text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
  if (words.length < cfg.minWords) return `too few words (${words.length} < ${cfg.minWords})`;
  if (cfg.minStopWords > 0 && !/[\u0400-\u04ff\u0590-\u08ff\u0900-\u0dff\u0e00-\u0eff\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]/.test(text.slice(0, 500))) {
    let stop = 0;
    for (const w of words) if (ALL_STOP_WORDS.has(w) && ++stop >= cfg.minStopWords) break;
    if (stop < cfg.minStopWords) return `almost no ordinary function words (${stop} < ${cfg.minStopWords}): not running text`;
  }

  // Repeated lines: characters in lines that occur more than once (blank lines ignored).
  if (text.indexOf('\n') >= 0) {
    const lines = text.split('\n');
    if (lines.length >= 4) {
      const seen = new Set<string>();
      let dupChars = 0, total = 0;
      for (const l of lines) {
        const t = l.trim();
        if (!t) continue;
        total += t.length;
        if (seen.has(t)) dupChars += t.length; else seen.add(t);
      }
      if (total > 0 && dupChars / total > cfg.maxDuplicateLineFraction) return `repeated lines (${pct(dupChars / total)} of the text > ${pct(cfg.maxDuplicateLineFraction)})`;
    }
  }

  // Repeated word 3-grams: fraction of 3-grams already seen earlier in the document.
  const n = words.length - 2;
  if (n >= 10) {
    let size = table.length;
    while (size < n * 2) size <<= 1;
    if (size !== table.length) table = new Uint32Array(size);
    else table.fill(0);
    const mask = size - 1;
    const wh = new Uint32Array(words.length);
    for (let i = 0; i < words.length; i++) wh[i] = hash32(words[i]!);
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
    if (repeats / n > cfg.maxRepeatedNgramFraction) return `repetitive (${pct(repeats / n)} of word 3-grams repeat > ${pct(cfg.maxRepeatedNgramFraction)})`;
  }
  return null;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(0)}%`;
}
