import type { CleanConfig } from '../config';
import { excerpt, type Doc, type Example } from '../types';
import { analyzeContext, analyzeFirst, analyzeSecond, summarizeFirst, summarizeSecond, type AnalyzeContext, type FirstSummary, type SecondSummary } from './analyze';
import { HashSet64 } from './hash';
import { NearDedup } from './minhash';
import { newPiiCounts, type PiiCounts } from './pii';

/** Counts and examples of one cleaning step, shown in the wizard and the JSON report. */
export interface FilterStats {
  name: string;
  /** Plain-words label for the UI. */
  label: string;
  enabled: boolean;
  docsIn: number;
  docsOut: number;
  /** Documents dropped by this step. */
  removed: number;
  /** Documents changed (but kept) by this step. */
  modified: number;
  charsIn: number;
  charsOut: number;
  /** Removals per reason (quality, language) or replacements per type (PII). */
  reasons: Record<string, number>;
  examples: Example[];
}

function newStats(name: string, label: string, enabled: boolean): FilterStats {
  return { name, label, enabled, docsIn: 0, docsOut: 0, removed: 0, modified: 0, charsIn: 0, charsOut: 0, reasons: {}, examples: [] };
}

/**
 * Counts, per line hash, the number of documents a line occurs in. Bounded: past `maxTracked`
 * distinct lines, lines seen in only one document are forgotten (a boilerplate line is, by
 * definition, frequent, so it survives pruning with high probability).
 */
export class LineCounter {
  // Open-addressing table (a count of 0 marks an empty slot): 8 bytes per slot, no per-entry objects.
  private keys = new Uint32Array(1 << 16);
  private counts = new Uint32Array(1 << 16);
  private size = 0;
  constructor(readonly minLineChars: number, readonly maxTracked = 2_000_000) {}
  /** Counts one document's distinct line hashes (analyzeFirst computes them). */
  observeHashes(hashes: readonly number[]): void {
    for (const h of hashes) {
      const i = this.slot(h >>> 0);
      if (this.counts[i] === 0) { this.keys[i] = h; this.size++; }
      this.counts[i]!++;
      if (this.size * 2 > this.keys.length) this.rebuild(this.keys.length * 2, 0);
    }
    if (this.size > this.maxTracked) this.rebuild(this.keys.length, 1);
  }
  private slot(h: number): number {
    const mask = this.keys.length - 1;
    let i = Math.imul(h, 0x9e3779b1) >>> 0 & mask;
    while (this.counts[i] !== 0 && this.keys[i] !== h) i = (i + 1) & mask;
    return i;
  }
  /** Re-inserts entries seen in more than `dropAtMost` documents into a table of `slots`. */
  private rebuild(slots: number, dropAtMost: number): void {
    const ok = this.keys, oc = this.counts;
    this.keys = new Uint32Array(slots);
    this.counts = new Uint32Array(slots);
    this.size = 0;
    for (let j = 0; j < ok.length; j++) {
      if (oc[j]! <= dropAtMost) continue;
      const i = this.slot(ok[j]!);
      this.keys[i] = ok[j]!;
      this.counts[i] = oc[j]!;
      this.size++;
    }
  }
  docsWith(h: number): number { return this.counts[this.slot(h >>> 0)]!; }
  /** Hashes of lines seen in at least `minDocs` documents. */
  frequent(minDocs: number): Set<number> {
    const out = new Set<number>();
    for (let i = 0; i < this.keys.length; i++) if (this.counts[i]! >= minDocs) out.add(this.keys[i]!);
    return out;
  }
}

/**
 * The cleaning steps in order. `first` runs during import (normalization, boilerplate statistics);
 * `second` runs on the normalized documents once all boilerplate lines are known.
 */
export class Cleaner {
  readonly normalize: FilterStats;
  readonly boilerplate: FilterStats;
  readonly quality: FilterStats;
  readonly language: FilterStats;
  readonly exactDedup: FilterStats;
  readonly pii: FilterStats;
  readonly nearDedup: FilterStats;
  readonly lines: LineCounter;
  readonly languages: Record<string, number> = {};
  readonly piiCounts: PiiCounts = newPiiCounts();
  private readonly exact = new HashSet64();
  /** Documents whose lines were counted in pass 1 (by content hash). */
  private readonly counted = new HashSet64();
  private readonly near: NearDedup | null;

  constructor(readonly cfg: CleanConfig, readonly seed = 1) {
    this.normalize = newStats('normalize', 'Unicode and whitespace normalization', cfg.normalize.enabled);
    this.boilerplate = newStats('boilerplate', 'Lines repeated across many documents (menus, footers)', cfg.boilerplate.enabled);
    this.quality = newStats('quality', 'Low-quality text (too short, symbols, digits, repetition, not prose)', cfg.quality.enabled);
    this.language = newStats('language', 'Language filter', cfg.language.enabled);
    this.exactDedup = newStats('exactDedup', 'Exact duplicates', cfg.exactDedup.enabled);
    this.pii = newStats('pii', 'Personal data and secrets replaced', cfg.pii.enabled);
    this.nearDedup = newStats('nearDedup', 'Near-duplicates (MinHash)', cfg.nearDedup.enabled);
    this.lines = new LineCounter(cfg.boilerplate.minLineChars);
    const n = cfg.nearDedup;
    this.near = n.enabled ? new NearDedup(n.numPerm, n.bands, n.threshold, n.shingleWords, seed, n.maxMemoryMB * 1024 * 1024) : null;
  }

  /** In order of application. */
  get filters(): FilterStats[] {
    return [this.normalize, this.boilerplate, this.quality, this.language, this.exactDedup, this.pii, this.nearDedup];
  }

  /** Records an example; `shown` gives the excerpt (computed only while examples are still wanted). */
  private example(s: FilterStats, source: string, reason: string, shown: () => string): void {
    if (s.examples.length < this.cfg.examplesPerFilter) s.examples.push({ source, reason, excerpt: shown() });
  }

  private enter(s: FilterStats, length: number): void { s.docsIn++; s.charsIn += length; }
  private pass(s: FilterStats, length: number): true { s.docsOut++; s.charsOut += length; return true; }
  private drop(s: FilterStats, source: string, shown: () => string, reason: string, key = reason): false {
    s.removed++;
    s.reasons[key] = (s.reasons[key] ?? 0) + 1;
    this.example(s, source, reason, shown);
    return false;
  }

  /** Pass 1: normalization and boilerplate line counting. Returns null for documents left empty. */
  first(doc: Doc): Doc | null {
    const r = analyzeFirst(doc.text, this.cfg);
    return this.applyFirst(doc.source, doc.text.length, summarizeFirst(doc.text, r)) ? { text: r.text, source: doc.source } : null;
  }

  /**
   * Applies pass 1's analysis of one document (from any thread), in document order. `length`: the
   * input text's. Returns whether the document is kept.
   */
  applyFirst(source: string, length: number, r: FirstSummary): boolean {
    const s = this.normalize;
    this.enter(s, length);
    if (s.enabled && r.changed) s.modified++;
    if (r.empty) return this.drop(s, source, () => r.excerpt ?? '', 'empty after normalization', 'empty');
    // Documents with the same long lines count once (a document repeated verbatim, or but for short
    // lines): otherwise five copies of one post would make all its lines "boilerplate" and empty every
    // copy, where exact dedup keeps one.
    if (r.lines && (!r.hash || this.counted.add(r.hash[0], r.hash[1]))) this.lines.observeHashes(r.lines);
    return this.pass(s, r.length);
  }

  private ctx: AnalyzeContext | null = null;

  /**
   * What pass 2's analysis needs. The first call ends pass 1: the boilerplate lines are those
   * counted so far. Worker threads get a copy.
   */
  analyzeContext(): AnalyzeContext {
    if (!this.ctx) {
      this.ctx = analyzeContext(this.cfg, this.seed);
      if (this.cfg.boilerplate.enabled) this.ctx.boiler = this.lines.frequent(this.cfg.boilerplate.minDocs);
    }
    return this.ctx;
  }

  /** Pass 2: everything else. Returns the cleaned document or null when it was removed. */
  second(doc: Doc): Doc | null {
    const { summary, final } = summarizeSecond(doc.text, analyzeSecond(doc.text, this.analyzeContext()));
    const kept = this.applySecond(doc.source, summary, () => final ?? '');
    return kept && final !== null ? { text: final, source: doc.source } : null;
  }

  /**
   * Applies pass 2's analysis of one document (from any thread), in document order: counts,
   * examples, exact and near-dedup. `finalText` gives the cleaned text (for examples). Returns
   * whether the document is kept.
   */
  applySecond(source: string, r: SecondSummary, finalText: () => string): boolean {
    let len = r.length;
    let s = this.boilerplate;
    this.enter(s, len);
    if (r.boiler) {
      const b = r.boiler;
      s.modified++;
      s.reasons['lines removed'] = (s.reasons['lines removed'] ?? 0) + b.lines;
      this.example(s, source, `removed ${b.lines} repeated line(s)`, () => b.excerpt);
      if (!b.length) return this.drop(s, source, () => r.excerpt!, 'nothing left after removing repeated lines', 'only boilerplate');
      len = b.length;
    }
    this.pass(s, len);

    s = this.quality;
    this.enter(s, len);
    if (r.quality) return this.drop(s, source, () => r.excerpt!, r.quality, r.quality.replace(/ \(.*$/, ''));
    this.pass(s, len);

    s = this.language;
    this.enter(s, len);
    if (r.lang !== undefined) {
      this.languages[r.lang] = (this.languages[r.lang] ?? 0) + 1;
      if (r.langDropped) return this.drop(s, source, () => r.excerpt!, `language "${r.lang}" not in ${[...new Set(this.cfg.language.keep)].join(', ')}`, r.lang);
    }
    this.pass(s, len);

    // From here on examples show the final text (PII replaced), never the personal data itself.
    const shown = (): string => excerpt(finalText());
    s = this.exactDedup;
    this.enter(s, len);
    if (r.hash && !this.exact.add(r.hash[0], r.hash[1])) return this.drop(s, source, shown, 'exact duplicate of an earlier document', 'duplicate');
    this.pass(s, len);

    s = this.pii;
    this.enter(s, len);
    if (r.pii) {
      s.modified++;
      const counts = r.pii.counts;
      const found = (Object.keys(counts) as (keyof PiiCounts)[]).filter((k) => counts[k] > 0);
      for (const k of found) { this.piiCounts[k] += counts[k]; s.reasons[k] = this.piiCounts[k]; }
      this.example(s, source, `replaced: ${found.join(', ')}`, shown);
      len = r.pii.length;
    }
    this.pass(s, len);

    s = this.nearDedup;
    this.enter(s, len);
    if (this.near && r.sig) {
      const wasFull = this.near.full;
      const j = this.near.checkSignature(r.sig);
      if (!wasFull && this.near.full) s.reasons['index full (later documents checked, not indexed)'] = this.near.keptDocs;
      if (j >= 0) return this.drop(s, source, shown, `near-duplicate of an earlier document (about ${Math.round(j * 100)}% of the wording is the same)`, 'near-duplicate');
    }
    return this.pass(s, len);
  }

  /** Bytes held by the dedup structures (for the bench's memory accounting). */
  get structureBytes(): number { return this.exact.bytes + (this.near?.bytes ?? 0); }
}
