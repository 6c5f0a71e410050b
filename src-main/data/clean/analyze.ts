/**
 * The per-document work of the cleaning steps as pure functions of (text, settings): they run in
 * worker threads (clean/pool.ts) or in the calling thread, and return plain data. Everything that
 * depends on document order (boilerplate line counts, exact and near-dedup indexes, statistics and
 * examples) is applied afterwards, in order, by Cleaner (clean/pipeline.ts) — so the result is the
 * same whatever the number of threads.
 */
import type { CleanConfig } from '../config';
import { excerpt } from '../types';
import { LineHashes, fmix, hash64 } from './hash';
import { identifyLanguage } from './langid';
import { MinHasher } from './minhash';
import { normalizeText } from './normalize';
import { newPiiCounts, scrubPii, type PiiCounts } from './pii';
import { duplicateLineFraction, qualityProblem } from './quality';

/** Settings and fixed state the analysis needs (the same in every thread). */
export interface AnalyzeContext {
  cfg: CleanConfig;
  /** Hashes of boilerplate lines; known only once pass 1 has seen every document. */
  boiler: Set<number> | null;
  keep: Set<string> | null;
  hasher: MinHasher | null;
}

export function analyzeContext(cfg: CleanConfig, seed: number): AnalyzeContext {
  const n = cfg.nearDedup;
  return {
    cfg,
    boiler: null,
    keep: cfg.language.keep.length ? new Set(cfg.language.keep) : null,
    hasher: n.enabled ? new MinHasher(n.numPerm, n.shingleWords, seed) : null,
  };
}

/** Pass 1 for one document: normalized text and the hashes of its distinct long lines. */
export interface FirstResult {
  text: string;
  /** Distinct line hashes (lines of at least minLineChars), or null when boilerplate is off or the text is empty. */
  lines: number[] | null;
  /**
   * The quality filter's repeated-lines fraction of this text (when quality is on): pass 2 uses it
   * for documents boilerplate removal leaves unchanged instead of hashing their lines again.
   */
  dupLines?: number;
}

export function analyzeFirst(text: string, cfg: CleanConfig): FirstResult {
  if (cfg.normalize.enabled) text = normalizeText(text);
  if (!text.trim() || !(cfg.boilerplate.enabled || cfg.quality.enabled)) return { text, lines: null };
  const l = LINES.of(text);
  const lines = cfg.boilerplate.enabled ? distinctLineHashes(l, cfg.boilerplate.minLineChars) : null;
  return cfg.quality.enabled ? { text, lines, dupLines: duplicateLineFraction(l) } : { text, lines };
}

/** Scratch line hashes of the text being analyzed (one per thread). */
const LINES = new LineHashes();

function distinctLineHashes(l: LineHashes, minLineChars: number): number[] {
  const out: number[] = [];
  let seen: Set<number> | null = null;
  for (let i = 0; i < l.n; i++) {
    if (l.raw[i]! < minLineChars) continue;
    const h = l.hash[i]!;
    // Most documents have a handful of long lines: a linear check beats a Set until there are many.
    if (out.length < 16 ? !out.includes(h) : !(seen ??= new Set(out)).has(h)) { out.push(h); seen?.add(h); }
  }
  return out;
}

/**
 * Pass 2 for one document, stopping at the first step that removes it. Fields are set only for the
 * steps that ran; `text*` fields only when that step changed the text.
 */
export interface SecondResult {
  /** Boilerplate lines removed (count, an excerpt of them, and the remaining text; '' = nothing left). */
  boiler?: { lines: number; excerpt: string; text: string };
  /** Why the quality filter removed it. */
  quality?: string;
  /** Language after the confidence threshold (when the language step is on). */
  lang?: string;
  /** Removed by the language filter. */
  langDropped?: boolean;
  /** 64-bit content hash for exact dedup, as two uint32. */
  hash?: [number, number];
  /** Text after PII replacement, and what was replaced. */
  pii?: { text: string; counts: PiiCounts };
  /** MinHash signature for near-dedup (null: no words). */
  sig?: Uint32Array | null;
}

/**
 * What pass 1 found that pass 2 can use as it is (see encodeFirstExtra): the text's distinct long
 * line hashes and its repeated-lines fraction.
 */
export interface FirstExtra { lines: ArrayLike<number>; dupLines: number }

export function analyzeSecond(text: string, ctx: AnalyzeContext, pre?: FirstExtra): SecondResult {
  const { cfg } = ctx;
  const r: SecondResult = {};
  const boilerOn = cfg.boilerplate.enabled && ctx.boiler !== null && ctx.boiler.size > 0;
  // With pass 1's line hashes, the lines are hashed again only when boilerplate is to be removed.
  // Otherwise one hashing pass serves the boilerplate check and the quality filter.
  let lines: LineHashes | undefined;
  let dupLines: number | undefined;
  if (pre && (!boilerOn || !anyIn(pre.lines, ctx.boiler!))) dupLines = pre.dupLines;
  else lines = LINES.of(text);
  if (lines && boilerOn && hasBoilerplate(lines, ctx.boiler!, cfg.boilerplate.minLineChars)) {
    const out: string[] = [];
    const removed: string[] = [];
    // split('\n') yields the lines LineHashes hashed, in the same order.
    text.split('\n').forEach((line, i) => {
      if (isBoilerplate(lines!, i, ctx.boiler!, cfg.boilerplate.minLineChars)) removed.push(line);
      else out.push(line);
    });
    if (removed.length) {
      text = out.join('\n').replace(/\n{3,}/g, '\n\n').trim();
      r.boiler = { lines: removed.length, excerpt: excerpt(removed.join('\n')), text };
      if (!text) return r;
      lines = undefined; // the text changed
    }
  }
  // The quality scan also yields the exact-dedup hash of this same text.
  const scanned: { hash?: [number, number] } = {};
  if (cfg.quality.enabled) {
    const why = qualityProblem(text, cfg.quality, scanned, lines, dupLines);
    if (why) { r.quality = why; return r; }
  }
  if (cfg.language.enabled) {
    const id = identifyLanguage(text);
    r.lang = id.confidence >= cfg.language.minConfidence ? id.lang : 'unknown';
    if (ctx.keep && !ctx.keep.has(r.lang)) { r.langDropped = true; return r; }
  }
  if (cfg.exactDedup.enabled) r.hash = scanned.hash ?? hash64(text);
  if (cfg.pii.enabled) {
    const counts = newPiiCounts();
    const scrubbed = scrubPii(text, cfg.pii, counts);
    if (scrubbed !== text) { r.pii = { text: scrubbed, counts }; text = scrubbed; }
  }
  if (ctx.hasher) {
    const sig = new Uint32Array(ctx.hasher.numPerm);
    r.sig = ctx.hasher.sign(text, sig) ? sig : null;
  }
  return r;
}

function anyIn(hashes: ArrayLike<number>, set: Set<number>): boolean {
  for (let i = 0; i < hashes.length; i++) if (set.has(hashes[i]!)) return true;
  return false;
}

/**
 * Pass 1's findings as a spool record's extra bytes: u32 count, the distinct long-line hashes
 * (u32 each), then the repeated-lines fraction (f64; NaN when the quality filter is off).
 */
export function encodeFirstExtra(lines: readonly number[] | null, dupLines: number | undefined): Uint8Array {
  const n = lines?.length ?? 0;
  const out = new Uint8Array(12 + 4 * n);
  const v = new DataView(out.buffer);
  v.setUint32(0, n, true);
  for (let i = 0; i < n; i++) v.setUint32(4 + 4 * i, lines![i]!, true);
  v.setFloat64(4 + 4 * n, dupLines ?? NaN, true);
  return out;
}

/** Reads encodeFirstExtra's bytes; null when there are none (or they do not fit the layout). */
export function decodeFirstExtra(bytes: Uint8Array): FirstExtra | null {
  if (bytes.length < 12) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = v.getUint32(0, true);
  if (bytes.length !== 12 + 4 * n) return null;
  const lines = new Array<number>(n);
  for (let i = 0; i < n; i++) lines[i] = v.getUint32(4 + 4 * i, true);
  const dupLines = v.getFloat64(4 + 4 * n, true);
  return Number.isNaN(dupLines) ? null : { lines, dupLines };
}

/** Line i is a boilerplate line: long enough, and its hash among the boilerplate lines. */
function isBoilerplate(l: LineHashes, i: number, boiler: Set<number>, min: number): boolean {
  return l.raw[i]! >= min && boiler.has(l.hash[i]!);
}

/** Cheap check (line hashes already computed) before splitting a document. */
function hasBoilerplate(l: LineHashes, boiler: Set<number>, min: number): boolean {
  for (let i = 0; i < l.n; i++) if (isBoilerplate(l, i, boiler, min)) return true;
  return false;
}

/** Pass 1's result as the ordered apply step needs it: lengths and flags, no text. */
export interface FirstSummary {
  /** Length of the text pass 1 outputs (normalized, or the input when normalization is off). */
  length: number;
  changed: boolean;
  /** Nothing but whitespace left: removed. */
  empty: boolean;
  lines: number[] | null;
  /** See FirstResult.dupLines. */
  dupLines?: number;
  /** Hash of the document's long lines in order, when they are counted (documents with the same ones count once). */
  hash?: [number, number];
  /** Excerpt of the removed text (only when empty). */
  excerpt?: string;
}

export function summarizeFirst(input: string, r: FirstResult): FirstSummary {
  const empty = !r.text.trim();
  if (empty) return { length: r.text.length, changed: r.text !== input, empty, lines: null, excerpt: excerpt(r.text) };
  const s: FirstSummary = { length: r.text.length, changed: r.text !== input, empty, lines: r.lines };
  if (r.lines) s.hash = linesKey(r.lines);
  if (r.dupLines !== undefined) s.dupLines = r.dupLines;
  return s;
}

/** 64-bit key of a sequence of line hashes. */
function linesKey(lines: readonly number[]): [number, number] {
  let a = 0x811c9dc5 | 0, b = lines.length | 0;
  for (const h of lines) {
    a = Math.imul(a ^ h, 0x01000193);
    b = Math.imul(b ^ h, 0x5bd1e995);
    b ^= b >>> 15;
  }
  return [fmix(a) >>> 0, fmix(b) >>> 0];
}

/** Pass 2's result as the ordered apply step needs it: texts replaced by their lengths. */
export type SecondSummary = Omit<SecondResult, 'boiler' | 'pii'> & {
  /** Length of the input text. */
  length: number;
  boiler?: { lines: number; excerpt: string; length: number };
  pii?: { length: number; counts: PiiCounts };
  /** Excerpt of the text at the step that removed it (boilerplate, quality or language). */
  excerpt?: string;
};

/** The summary and the final text (null when a step here removed the document). */
export function summarizeSecond(input: string, r: SecondResult): { summary: SecondSummary; final: string | null } {
  const summary: SecondSummary = { length: input.length };
  let text = input;
  if (r.boiler) {
    summary.boiler = { lines: r.boiler.lines, excerpt: r.boiler.excerpt, length: r.boiler.text.length };
    if (!r.boiler.text) return { summary: { ...summary, excerpt: excerpt(input) }, final: null };
    text = r.boiler.text;
  }
  if (r.quality !== undefined) return { summary: { ...summary, quality: r.quality, excerpt: excerpt(text) }, final: null };
  if (r.lang !== undefined) summary.lang = r.lang;
  if (r.langDropped) return { summary: { ...summary, langDropped: true, excerpt: excerpt(text) }, final: null };
  if (r.hash) summary.hash = r.hash;
  if (r.pii) { summary.pii = { length: r.pii.text.length, counts: r.pii.counts }; text = r.pii.text; }
  if (r.sig !== undefined) summary.sig = r.sig;
  return { summary, final: text };
}

/**
 * UTF-8 of many texts in one buffer (to hand to another thread): bytes and each text's [start, end).
 * A text given as bytes (already UTF-8) is copied as it is.
 */
export function encodeTexts(texts: readonly (string | Uint8Array | null)[]): { bytes: Uint8Array; ends: Uint32Array } {
  let size = 1024;
  for (const t of texts) size += t ? t.length + (t.length >> 3) : 0;
  let buf = Buffer.allocUnsafe(size);
  const ends = new Uint32Array(texts.length);
  let at = 0;
  texts.forEach((t, i) => {
    if (t) {
      if (buf.length - at < 3 * t.length) { // UTF-8 needs at most 3 bytes per UTF-16 unit
        const bigger = Buffer.allocUnsafe(Math.max(buf.length * 2, at + 3 * t.length));
        buf.copy(bigger, 0, 0, at);
        buf = bigger;
      }
      if (typeof t === 'string') at += buf.write(t, at, 'utf8');
      else { buf.set(t, at); at += t.length; }
    }
    ends[i] = at;
  });
  // A fresh ArrayBuffer (not Node's shared pool) so it can be transferred.
  const bytes = new Uint8Array(at);
  bytes.set(buf.subarray(0, at));
  return { bytes, ends };
}
