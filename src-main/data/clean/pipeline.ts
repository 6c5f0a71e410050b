import type { CleanConfig } from '../config';
import { excerpt, type Doc, type Example } from '../types';
import { HashSet64, hash32, hash64 } from './hash';
import { identifyLanguage } from './langid';
import { NearDedup } from './minhash';
import { normalizeText } from './normalize';
import { newPiiCounts, scrubPii, type PiiCounts } from './pii';
import { qualityProblem } from './quality';

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
  private counts = new Map<number, number>();
  constructor(readonly minLineChars: number, readonly maxTracked = 2_000_000) {}
  observe(text: string): void {
    const seen = new Set<number>();
    let start = 0;
    while (start <= text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      if (end - start >= this.minLineChars) {
        const h = lineHash(text, start, end);
        if (!seen.has(h)) {
          seen.add(h);
          this.counts.set(h, (this.counts.get(h) ?? 0) + 1);
        }
      }
      start = end + 1;
    }
    if (this.counts.size > this.maxTracked) for (const [k, v] of this.counts) if (v <= 1) this.counts.delete(k);
  }
  docsWith(h: number): number { return this.counts.get(h) ?? 0; }
  /** Hashes of lines seen in at least `minDocs` documents. */
  frequent(minDocs: number): Set<number> {
    const out = new Set<number>();
    for (const [h, n] of this.counts) if (n >= minDocs) out.add(h);
    return out;
  }
}

function lineHash(s: string, start: number, end: number): number {
  while (start < end && s.charCodeAt(start) <= 32) start++;
  while (end > start && s.charCodeAt(end - 1) <= 32) end--;
  return hash32(s, start, end);
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
  private readonly near: NearDedup | null;
  private readonly keep: Set<string> | null;

  constructor(readonly cfg: CleanConfig, seed = 1) {
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
    this.keep = cfg.language.keep.length ? new Set(cfg.language.keep) : null;
  }

  /** In order of application. */
  get filters(): FilterStats[] {
    return [this.normalize, this.boilerplate, this.quality, this.language, this.exactDedup, this.pii, this.nearDedup];
  }

  private example(s: FilterStats, doc: Doc, reason: string, text = doc.text): void {
    if (s.examples.length < this.cfg.examplesPerFilter) s.examples.push({ source: doc.source, reason, excerpt: excerpt(text) });
  }

  private enter(s: FilterStats, doc: Doc): void { s.docsIn++; s.charsIn += doc.text.length; }
  private pass(s: FilterStats, doc: Doc): Doc { s.docsOut++; s.charsOut += doc.text.length; return doc; }
  private drop(s: FilterStats, doc: Doc, reason: string, key = reason): null {
    s.removed++;
    s.reasons[key] = (s.reasons[key] ?? 0) + 1;
    this.example(s, doc, reason);
    return null;
  }

  /** Pass 1: normalization and boilerplate line counting. Returns null for documents left empty. */
  first(doc: Doc): Doc | null {
    const s = this.normalize;
    this.enter(s, doc);
    if (s.enabled) {
      const text = normalizeText(doc.text);
      if (text !== doc.text) s.modified++;
      doc = { text, source: doc.source };
    }
    if (!doc.text.trim()) return this.drop(s, doc, 'empty after normalization', 'empty');
    if (this.cfg.boilerplate.enabled) this.lines.observe(doc.text);
    return this.pass(s, doc);
  }

  /** Boilerplate line hashes, fixed when pass 2 starts. */
  private boiler: Set<number> | null = null;

  /** Cheap check (hashes lines in place) before splitting a document. */
  private hasBoilerplate(text: string): boolean {
    const min = this.cfg.boilerplate.minLineChars;
    let start = 0;
    while (start <= text.length) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      if (end - start >= min && this.boiler!.has(lineHash(text, start, end))) return true;
      start = end + 1;
    }
    return false;
  }

  /** Pass 2: everything else. Returns the cleaned document or null when it was removed. */
  second(doc: Doc): Doc | null {
    let s = this.boilerplate;
    this.enter(s, doc);
    if (s.enabled && (this.boiler ??= this.lines.frequent(this.cfg.boilerplate.minDocs)).size > 0 && this.hasBoilerplate(doc.text)) {
      const out: string[] = [];
      const removed: string[] = [];
      for (const line of doc.text.split('\n')) {
        if (line.length >= this.cfg.boilerplate.minLineChars && this.boiler.has(lineHash(line, 0, line.length))) removed.push(line);
        else out.push(line);
      }
      if (removed.length) {
        s.modified++;
        s.reasons['lines removed'] = (s.reasons['lines removed'] ?? 0) + removed.length;
        this.example(s, doc, `removed ${removed.length} repeated line(s)`, removed.join('\n'));
        const text = out.join('\n').replace(/\n{3,}/g, '\n\n').trim();
        if (!text) return this.drop(s, doc, 'nothing left after removing repeated lines', 'only boilerplate');
        doc = { text, source: doc.source };
      }
    }
    this.pass(s, doc);

    s = this.quality;
    this.enter(s, doc);
    if (s.enabled) {
      const why = qualityProblem(doc.text, this.cfg.quality);
      if (why) return this.drop(s, doc, why, why.replace(/ \(.*$/, ''));
    }
    this.pass(s, doc);

    s = this.language;
    this.enter(s, doc);
    if (s.enabled) {
      const id = identifyLanguage(doc.text);
      const lang = id.confidence >= this.cfg.language.minConfidence ? id.lang : 'unknown';
      this.languages[lang] = (this.languages[lang] ?? 0) + 1;
      if (this.keep && !this.keep.has(lang)) return this.drop(s, doc, `language "${lang}" not in ${[...this.keep].join(', ')}`, lang);
    }
    this.pass(s, doc);

    s = this.exactDedup;
    this.enter(s, doc);
    if (s.enabled) {
      const [a, b] = hash64(doc.text);
      if (!this.exact.add(a, b)) return this.drop(s, doc, 'exact duplicate of an earlier document', 'duplicate');
    }
    this.pass(s, doc);

    s = this.pii;
    this.enter(s, doc);
    if (s.enabled) {
      const before = { ...this.piiCounts };
      const text = scrubPii(doc.text, this.cfg.pii, this.piiCounts);
      if (text !== doc.text) {
        s.modified++;
        const found = (Object.keys(before) as (keyof PiiCounts)[]).filter((k) => this.piiCounts[k] > before[k]);
        for (const k of found) s.reasons[k] = this.piiCounts[k];
        this.example(s, doc, `replaced: ${found.join(', ')}`, text);
        doc = { text, source: doc.source };
      }
    }
    this.pass(s, doc);

    s = this.nearDedup;
    this.enter(s, doc);
    if (this.near) {
      const wasFull = this.near.full;
      const j = this.near.check(doc.text);
      if (!wasFull && this.near.full) s.reasons['index full (later documents checked, not indexed)'] = this.near.keptDocs;
      if (j >= 0) return this.drop(s, doc, `near-duplicate of an earlier document (estimated Jaccard ${j.toFixed(2)})`, 'near-duplicate');
    }
    return this.pass(s, doc);
  }

  /** Bytes held by the dedup structures (for the bench's memory accounting). */
  get structureBytes(): number { return this.exact.bytes + (this.near?.bytes ?? 0); }
}
