/**
 * The tokenizer wizard's three jobs as services (pure Node, WorkOptions for progress/cancel): learn candidates
 * from a domain corpus, write an extended tokenizer, compare base and extended. The CLI and the job host call
 * these; corpora are read with the data pipeline's importers (every format it reads works here).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { defaultImportOptions, importPaths, newImportStats } from '../data/import';
import { throwIfCancelled, UserError, type WorkOptions } from '../util/progress';
import { compareTokenizers, type TokenizerComparison } from './compare';
import { extendTokenizer, writeExtendedTokenizer, type ExtensionManifest } from './extend';
import { LatheTokenizer } from './tokenizer';
import { trainDomainCandidates, type TrainResult } from './train';

/** Streams document texts from files/folders (txt, md, jsonl, json, csv, parquet, html, pdf, docx). */
export async function* corpusTexts(paths: string[], opts: WorkOptions = {}): AsyncGenerator<string> {
  if (paths.length === 0) {
    throw new UserError('tokenizer-no-corpus', 'No corpus files or folders were given.', 'Name the files or folders that hold your domain text.');
  }
  const stats = newImportStats();
  for await (const doc of importPaths(paths, defaultImportOptions, stats, opts.signal)) yield doc.text;
  for (const s of stats.filesSkipped) opts.onLog?.('warn', `Skipped ${s.path}: ${s.reason}`);
}

/** Reads up to `maxChars` characters of texts (for measuring; whole documents, at least one). */
export async function readTexts(paths: string[], maxChars: number, opts: WorkOptions = {}): Promise<string[]> {
  const out: string[] = [];
  let chars = 0;
  for await (const t of corpusTexts(paths, opts)) {
    if (out.length > 0 && chars + t.length > maxChars) break;
    out.push(t);
    chars += t.length;
  }
  return out;
}

export interface TrainServiceInput {
  /** Model folder with tokenizer.json (+ tokenizer_config.json). */
  baseDir: string;
  /** Domain corpus files/folders. */
  corpus: string[];
  maxCandidates?: number;
  minSaving?: number;
  /** Where to write the candidate list (JSON); optional. */
  outFile?: string;
}

export async function trainDomainTokenizer(input: TrainServiceInput, opts: WorkOptions = {}): Promise<TrainResult> {
  const base = LatheTokenizer.fromDir(input.baseDir);
  const res = await trainDomainCandidates(base, corpusTexts(input.corpus, opts), {
    ...opts, maxCandidates: input.maxCandidates, minSaving: input.minSaving });
  if (input.outFile) writeJsonAtomic(input.outFile, res);
  opts.onLog?.('info', `Learned ${res.candidates.length} candidate tokens from ${res.corpus.words.toLocaleString('en')} words; `
    + `all of them would save ${res.candidates.at(-1)?.cumulativeSaving ?? 0} of ${res.corpus.baseTokens} tokens on this corpus.`);
  return res;
}

export function readCandidates(path: string): TrainResult {
  if (!existsSync(path)) {
    throw new UserError('tokenizer-no-candidates', `The candidate file ${path} does not exist.`, 'Run `lathe tokenizer train ... --out FILE` first.');
  }
  let r: TrainResult;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as TrainResult;
  } catch (e) {
    throw new UserError('tokenizer-no-candidates', `${path} is not valid JSON (${(e as Error).message}).`, 'Run `lathe tokenizer train` again to rewrite it.');
  }
  if (r.format !== 'lathe-domain-candidates' || r.version !== 1 || !Array.isArray(r.candidates)) {
    throw new UserError('tokenizer-no-candidates', `${path} is not a Lathe candidate list (format ${JSON.stringify(r.format)}).`,
      'Pass the file written by `lathe tokenizer train --out FILE`.');
  }
  return r;
}

export interface ExtendServiceInput {
  baseDir: string;
  /** A candidate list, or the path of one written by trainDomainTokenizer. */
  candidates: TrainResult | string;
  topN?: number;
  select?: string[];
  outDir: string;
}

export interface ExtendServiceResult {
  outDir: string;
  files: string[];
  manifest: ExtensionManifest;
}

export async function extendTokenizerDir(input: ExtendServiceInput, opts: WorkOptions = {}): Promise<ExtendServiceResult> {
  throwIfCancelled(opts.signal);
  opts.onProgress?.({ stage: 'Extending the tokenizer', fraction: 0 });
  const base = LatheTokenizer.fromDir(input.baseDir);
  const train = typeof input.candidates === 'string' ? readCandidates(input.candidates) : input.candidates;
  const r = extendTokenizer(base, train, { topN: input.topN, select: input.select });
  const files = writeExtendedTokenizer(input.outDir, r);
  opts.onProgress?.({ stage: 'Extending the tokenizer', fraction: 1 });
  const intermediates = r.manifest.newTokens.filter((t) => t.intermediate).length;
  opts.onLog?.('info', `Added ${r.manifest.newTokens.length} tokens${input.select ? ` (${intermediates} of them only because picked ones are built from them)` : ''}: `
    + `vocab ${r.manifest.baseVocabSize} -> ${r.manifest.newVocabSize}.`);
  return { outDir: input.outDir, files, manifest: r.manifest };
}

export interface CompareServiceInput {
  baseDir: string;
  extendedDir: string;
  /** Held-out domain text (files/folders). */
  domain: string[];
  /** General text (files/folders); may be empty. */
  general: string[];
  /** Characters read from each side at most. Default 5,000,000 (a few seconds). */
  maxChars?: number;
}

export async function compareTokenizerDirs(input: CompareServiceInput, opts: WorkOptions = {}): Promise<TokenizerComparison> {
  const base = LatheTokenizer.fromDir(input.baseDir);
  const extended = LatheTokenizer.fromDir(input.extendedDir);
  const maxChars = input.maxChars ?? 5_000_000;
  const domainTexts = await readTexts(input.domain, maxChars, opts);
  const generalTexts = input.general.length ? await readTexts(input.general, maxChars, opts) : [];
  return compareTokenizers(base, extended, { domainTexts, generalTexts }, opts);
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(value, null, 1) + '\n');
  renameSync(tmp, path);
}
