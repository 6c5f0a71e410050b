import { mkdirSync, promises as fsp, readdirSync, rmSync, existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { resolveCleanConfig, type CleanConfigInput } from './config';
import { Cleaner, type FilterStats } from './clean/pipeline';
import { CleanPool, autoThreads, cleanFirstPass, cleanSecondPass, writeKept } from './clean/pool';
import { HashSet64, hash64 } from './clean/hash';
import { newPiiCounts, scrubPii, type PiiCounts } from './clean/pii';
import { defaultImportOptions, importPaths, newImportStats, walkFiles, type ImportOptions, type ImportStats } from './import';
import { openTextStream, lines } from './import/stream';
import { addBadLine } from './import/stats';
import { jsonLineError } from './import/formats';
import { makeValSelector, mixStreams, planMix, type MixPlan, type MixedDoc } from './mix';
import { BlockPacker, MANIFEST, writeManifest, type DatasetManifest, type SplitInfo } from './pack/dataset';
import { writeFileAtomic } from './pack/shards';
import { toConversation } from './sft/formats';
import { SftPacker, type TruncationPolicy } from './sft/pack';
import { SpoolWriter, readSpool } from './spool';
import { describeSkips, preparePreferencePairs, writePreferenceDataset, type PreferenceReport } from './preference/prepare';
import { loadTokenizerDir } from './tokenize';
import { excerpt, type ChatRenderer, type Example, type TokenizerAdapter } from './types';
import { UserError, throwIfCancelled, type WorkOptions } from '../util/progress';
import { removeStaleWorkDirs } from '../util/signals';

export interface PrepareConfig {
  /** Domain corpus: files and folders. */
  inputs: string[];
  /** General corpus mixed in to keep general ability (optional). */
  general?: string[];
  /** Output folder: shards, manifest.json, report.json. */
  out: string;
  /** 'pretrain' (raw text -> packed blocks), 'sft' (conversations -> ids + assistant masks) or 'preference' (prompt/chosen/rejected pairs, preference/). */
  mode?: 'pretrain' | 'sft' | 'preference';
  /** A ready tokenizer, or `tokenizerDir` (a folder with tokenizer.json). Without either, only cleaning runs. */
  tokenizer?: TokenizerAdapter;
  tokenizerDir?: string;
  /** Tokens per training row. 1024 suits small models on 8-24 GB GPUs; use the model's context or less. */
  blockSize?: number;
  /** Domain share of the training mix, in tokens. 0.7 keeps the domain dominant while general text limits forgetting. */
  ratio?: number;
  /** Most times either corpus is repeated to reach the ratio; beyond ~4 epochs repetition stops helping. */
  maxRepeat?: number;
  /** Size of the training mix in characters (converted to tokens with each corpus's measured rate); default: the whole domain corpus once. */
  totalChars?: number;
  /** Held out for validation, per corpus. 2% (at least 2 documents when possible) tracks perplexity cheaply. */
  valFraction?: number;
  /** Seeds every random choice (split, mix, MinHash) so reruns give identical output. */
  seed?: number;
  clean?: CleanConfigInput;
  import?: Partial<ImportOptions>;
  /** SFT: renders conversations (the chat-template module provides it). */
  renderer?: ChatRenderer;
  /** SFT: 'drop' samples longer than blockSize (default; nothing half-learned) or 'truncate' them. */
  truncation?: TruncationPolicy;
  /** SFT: pack several short samples per row (default true). */
  packSft?: boolean;
  /** Worker threads for cleaning; default: one per CPU core for corpora of 16 MB or more, none below. Results do not depend on it. */
  threads?: number;
}

export interface CorpusReport {
  import: ImportStats;
  filters: FilterStats[];
  languages: Record<string, number>;
  pii: PiiCounts;
  docsIn: number;
  docsOut: number;
  charsIn: number;
  charsOut: number;
  trainDocs: number;
  valDocs: number;
  /** A few kept documents, for the preview. */
  samples: Example[];
}

export interface PrepareReport {
  mode: 'pretrain' | 'sft' | 'preference';
  out: string;
  corpora: { domain: CorpusReport; general?: CorpusReport };
  mix?: MixPlan;
  tokenizer?: { hash: string; vocabSize: number; eosId: number };
  blockSize?: number;
  splits: Record<string, SplitInfo>;
  /** Real tokens per split (padding excluded). */
  tokens: Record<string, number>;
  sft?: { formats: Record<string, number>; dropped: number; truncated: number };
  preference?: PreferenceReport;
  warnings: string[];
  seconds: number;
}

const BATCH_CHARS = 1 << 20;

/** The whole pipeline: import, clean, split, mix, tokenize, pack. Cancellable; progress per stage. */
export async function prepareCorpus(config: PrepareConfig, opts: WorkOptions = {}): Promise<PrepareReport> {
  const t0 = Date.now();
  const mode = config.mode ?? 'pretrain';
  const cleanCfg = resolveCleanConfig(config.clean ?? {});
  const imp: ImportOptions = { ...defaultImportOptions, ...config.import };
  const seed = config.seed ?? 1;
  const valFraction = config.valFraction ?? 0.02;
  const blockSize = config.blockSize ?? 1024;
  if (!config.inputs.length) throw new UserError('data.input', 'No input files or folders were given.', 'Name at least one file or folder with your text.');
  if (!(blockSize >= 8 && blockSize <= 1 << 20)) throw new UserError('data.config', `Block size ${blockSize} is out of range.`, 'Use 8..1048576 tokens, typically 512-4096.');
  if (config.threads !== undefined && !(Number.isInteger(config.threads) && config.threads >= 0 && config.threads <= 64)) {
    throw new UserError('data.config', `Thread count ${config.threads} is out of range.`, 'Use 0 (clean in the calling thread) to 64; leave it out for one per CPU core.');
  }
  const ratio = config.ratio ?? 0.7;
  if (!(ratio > 0 && ratio <= 1)) throw new UserError('data.config', `Mix ratio ${ratio} must be in (0, 1].`, 'For example 0.7 = 70% domain text, 30% general text.');

  mkdirSync(config.out, { recursive: true });
  // An old manifest must not describe new, half-written shards.
  if (existsSync(join(config.out, MANIFEST))) unlinkSync(join(config.out, MANIFEST));
  for (const f of readdirSync(config.out)) if (/\.bin(\.tmp)?$/.test(f)) unlinkSync(join(config.out, f));
  // Work folders of earlier runs killed before they could clean up (SIGKILL, power cut) go first.
  for (const name of removeStaleWorkDirs(config.out)) opts.onLog?.('info', `Removed ${name}, left by an earlier run that was stopped.`);
  const work = join(config.out, `.work-${process.pid}`);
  mkdirSync(work, { recursive: true });
  const warnings: string[] = [];
  const log = (m: string): void => { warnings.push(m); opts.onLog?.('warn', m); };

  try {
    let tokenizer = config.tokenizer;
    if (!tokenizer && config.tokenizerDir) tokenizer = await loadTokenizerDir(config.tokenizerDir);
    const tokenBytes: 2 | 4 = tokenizer && tokenizer.vocabSize <= 65536 ? 2 : 4;

    if (mode !== 'pretrain' && config.general?.length) {
      throw new UserError('data.config', 'A general corpus is mixed into plain-text (pretraining) data only, not into conversations.', 'For chat fine-tuning, put general conversations into the conversation files themselves, or leave the general corpus empty.');
    }
    if (mode === 'preference') return await preparePreference(config, { cleanCfg, imp, seed, valFraction, blockSize, tokenizer, tokenBytes, work, warnings, log, t0 }, opts);
    if (mode === 'sft') return await prepareSft(config, { cleanCfg, imp, seed, valFraction, blockSize, tokenizer, tokenBytes, work, warnings, log, t0 }, opts);

    const domain = await cleanCorpus('domain', config.inputs, work, { cleanCfg, imp, seed, valFraction, threads: config.threads }, opts);
    const general = config.general?.length ? await cleanCorpus('general', config.general, work, { cleanCfg, imp, seed: seed + 7, valFraction, threads: config.threads }, opts) : undefined;
    for (const c of [domain, general]) for (const s of c?.report.import.filesSkipped ?? []) opts.onLog?.('warn', `Skipped ${s.path}: ${s.reason}`);
    if (general && general.report.docsOut === 0) log('The general corpus is empty after cleaning; training uses the domain corpus only.');

    const report: PrepareReport = { mode, out: config.out, corpora: { domain: domain.report, ...(general ? { general: general.report } : {}) }, splits: {}, tokens: {}, warnings, seconds: 0 };
    if (!tokenizer) {
      log('No tokenizer given: cleaned and counted only, nothing packed.');
      report.seconds = (Date.now() - t0) / 1000;
      writeFileAtomic(join(config.out, 'report.json'), JSON.stringify(report, null, 2));
      return report;
    }

    const hasGeneral = !!general && general.report.docsOut > 0;
    const cpt = { domain: await charsPerToken(tokenizer, domain.trainSpool), general: hasGeneral ? await charsPerToken(tokenizer, general!.trainSpool) : 1 };
    const totalTokens = config.totalChars ? config.totalChars / (hasGeneral ? ratio * cpt.domain + (1 - ratio) * cpt.general : cpt.domain) : undefined;
    const plan = planMix(domain.trainChars / cpt.domain, hasGeneral ? general!.trainChars / cpt.general : 0, ratio, config.maxRepeat ?? 4, totalTokens, cpt);
    for (const w of plan.warnings) log(w);
    report.mix = plan;
    report.tokenizer = { hash: tokenizer.hash, vocabSize: tokenizer.vocabSize, eosId: tokenizer.eosId };
    report.blockSize = blockSize;

    const totalChars = plan.domainTarget * cpt.domain + plan.generalTarget * cpt.general + domain.valChars + (general?.valChars ?? 0);
    const mixTokens = { domain: 0, general: 0 };
    let doneChars = 0;
    const stage = 'Tokenizing and packing';
    const pack = async (docs: AsyncIterable<MixedDoc>, split: string): Promise<SplitInfo> => {
      const packer = new BlockPacker(config.out, split, blockSize, tokenBytes, tokenizer.eosId);
      let batch: string[] = [];
      let sides: boolean[] = [];
      let chars = 0;
      const flush = async (): Promise<void> => {
        if (!batch.length) return;
        const encs = await tokenizer.encodeBatch(batch);
        if (split === 'train') encs.forEach((ids, i) => { if (sides[i]) mixTokens.general += ids.length; else mixTokens.domain += ids.length; });
        for (const ids of encs) {
          if (tokenBytes === 2) for (let i = 0; i < ids.length; i++) if (ids[i]! > 65535) throw new Error(`token id ${ids[i]} does not fit uint16 (vocab ${tokenizer.vocabSize})`);
          packer.addDoc(ids);
        }
        doneChars += chars;
        opts.onProgress?.({ stage, fraction: Math.min(1, doneChars / Math.max(1, totalChars)), message: `${split}: ${packer.out.tokens.toLocaleString('en-US')} tokens` });
        batch = [];
        sides = [];
        chars = 0;
      };
      for await (const d of docs) {
        throwIfCancelled(opts.signal);
        batch.push(d.text);
        sides.push(d.general === true);
        chars += d.text.length;
        if (chars >= BATCH_CHARS) await flush();
      }
      await flush();
      return packer.finish();
    };
    report.splits.train = await pack(mixStreams(domain.trainSpool, general?.trainSpool ?? null, plan, seed), 'train');
    plan.measured = { domainTokens: mixTokens.domain, generalTokens: mixTokens.general, ratio: mixTokens.domain / Math.max(1, mixTokens.domain + mixTokens.general) };
    if (domain.report.valDocs) report.splits['val-domain'] = await pack(readSpool(domain.valSpool), 'val-domain');
    else log('The domain corpus is too small to hold out a validation set.');
    if (general?.report.valDocs) report.splits['val-general'] = await pack(readSpool(general.valSpool), 'val-general');
    for (const [k, v] of Object.entries(report.splits)) report.tokens[k] = v.tokens;
    report.seconds = (Date.now() - t0) / 1000;

    const manifest: DatasetManifest = {
      format: 'lathe-dataset', version: 1, kind: 'pretrain',
      tokenizer: report.tokenizer, blockSize, tokenBytes, splits: report.splits, createdAt: new Date().toISOString(),
      meta: { seed, ratio, mix: plan, clean: cleanCfg },
    };
    writeFileAtomic(join(config.out, 'report.json'), JSON.stringify(report, null, 2));
    writeManifest(config.out, manifest);
    opts.onProgress?.({ stage, fraction: 1 });
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
    // A failed or cancelled run leaves no half-written shard behind (finished ones stay, but without a manifest).
    for (const f of readdirSync(config.out)) if (f.endsWith('.tmp')) rmSync(join(config.out, f), { force: true });
  }
}

/** Characters per token of a cleaned corpus, from its first ~256k characters (1 when empty). */
async function charsPerToken(tokenizer: TokenizerAdapter, spool: string): Promise<number> {
  const texts: string[] = [];
  let chars = 0;
  for await (const d of readSpool(spool)) {
    texts.push(d.text);
    chars += d.text.length;
    if (chars >= 256 * 1024) break;
  }
  if (!chars) return 1;
  let tokens = 0;
  for (const ids of await tokenizer.encodeBatch(texts)) tokens += ids.length;
  return chars / Math.max(1, tokens);
}

interface Cleaned { report: CorpusReport; trainSpool: string; valSpool: string; trainChars: number; valChars: number }

async function totalBytes(paths: string[]): Promise<number> {
  let n = 0;
  for await (const f of walkFiles(paths, newImportStats())) {
    try { n += (await fsp.stat(f.fsPath)).size; } catch { /* reported later by the import itself */ }
  }
  return n;
}

/** Two passes: import+normalize into a spool (counting boilerplate lines), then every other filter. */
async function cleanCorpus(
  name: 'domain' | 'general',
  paths: string[],
  work: string,
  o: { cleanCfg: ReturnType<typeof resolveCleanConfig>; imp: ImportOptions; seed: number; valFraction: number; threads?: number },
  opts: WorkOptions,
): Promise<Cleaned> {
  const stats = newImportStats();
  const cleaner = new Cleaner(o.cleanCfg, o.seed);
  const bytes = await totalBytes(paths);
  const threads = o.threads ?? autoThreads(bytes);
  const pool = threads > 0 ? CleanPool.start(o.cleanCfg, o.seed, threads) : null;
  const spoolA = new SpoolWriter(join(work, `${name}-normalized.spool`));
  const trainSpool = join(work, `${name}-train.spool`);
  const valSpool = join(work, `${name}-val.spool`);
  const train = new SpoolWriter(trainSpool);
  const val = new SpoolWriter(valSpool);
  const cleanStage = `Cleaning ${name} corpus`;
  let kept = 0;
  const samples: Example[] = [];
  try {
    const importStage = `Importing ${name} corpus`;
    let lastReport = 0;
    await cleanFirstPass(cleaner, importPaths(paths, o.imp, stats, opts.signal), pool, spoolA, () => {
      if (stats.docs - lastReport >= 200) {
        lastReport = stats.docs;
        opts.onProgress?.({ stage: importStage, fraction: bytes ? Math.min(1, stats.bytesRead / bytes) : undefined, message: `${stats.docs.toLocaleString('en-US')} documents` });
      }
    });
    await spoolA.close();
    opts.onProgress?.({ stage: importStage, fraction: 1 });
    if (stats.docs === 0) {
      const skipped = stats.filesSkipped.slice(0, 5).map((s) => `${s.path} (${s.reason})`).join('; ');
      throw new UserError('data.empty', `No text was found in the ${name} corpus${skipped ? `: skipped ${skipped}` : ''}${stats.badLineCount ? `; ${stats.badLineCount} bad lines` : ''}.`, 'Check the paths and file types (.txt .md .jsonl .json .csv .tsv .parquet .html .pdf .docx); for JSON/CSV name the text field or column.');
    }

    // At least 2 validation documents when the corpus has 10 or more; never more than 20%.
    const frac = o.valFraction > 0 ? Math.max(o.valFraction, spoolA.docs >= 10 ? Math.min(0.2, 2 / spoolA.docs) : 0) : 0;
    const isVal = makeValSelector(frac, o.seed);
    let i = 0;
    await cleanSecondPass(cleaner, spoolA.path, pool, (d) => {
      throwIfCancelled(opts.signal);
      if (++i % 500 === 0) opts.onProgress?.({ stage: cleanStage, fraction: i / spoolA.docs, message: `${i.toLocaleString('en-US')} of ${spoolA.docs.toLocaleString('en-US')} documents` });
      if (!d) return undefined;
      if (samples.length < 5) samples.push({ source: d.source, reason: 'kept', excerpt: excerpt(d.text(), 400) });
      return writeKept(isVal(kept++) ? val : train, d);
    });
  } catch (e) {
    // Open files would keep the work folder from being removed on Windows.
    for (const w of [spoolA, train, val]) w.discard();
    throw e;
  } finally {
    await pool?.close();
  }
  await train.close();
  await val.close();
  await fsp.unlink(spoolA.path);
  opts.onProgress?.({ stage: cleanStage, fraction: 1 });
  const filters = cleaner.filters;
  if (kept === 0) throw emptyError(name, filters);
  const report: CorpusReport = {
    import: stats, filters, languages: cleaner.languages, pii: cleaner.piiCounts,
    docsIn: stats.docs, docsOut: kept, charsIn: stats.chars, charsOut: train.chars + val.chars,
    trainDocs: train.docs, valDocs: val.docs, samples,
  };
  return { report, trainSpool, valSpool, trainChars: train.chars, valChars: val.chars };
}

/** "Everything was removed" names the step that removed the last documents and what it removed most. */
export function emptyError(name: string, filters: FilterStats[]): UserError {
  const f = filters.find((s) => s.docsIn > 0 && s.docsOut === 0) ?? filters[filters.length - 1]!;
  const top = Object.entries(f.reasons).sort((a, b) => b[1] - a[1])[0];
  return new UserError(
    'data.empty',
    `Cleaning removed every document of the ${name} corpus: the "${f.name}" step (${f.label}) removed the last ${f.docsIn}${top ? `, mostly "${top[0]}" (${top[1]})` : ''}.`,
    `Loosen the "${f.name}" settings (see docs/data-pipeline.md) or disable that step, or check that the input is the text you meant.`,
  );
}

interface SftCtx {
  cleanCfg: ReturnType<typeof resolveCleanConfig>;
  imp: ImportOptions;
  seed: number;
  valFraction: number;
  blockSize: number;
  tokenizer: TokenizerAdapter | undefined;
  tokenBytes: 2 | 4;
  work: string;
  warnings: string[];
  log: (m: string) => void;
  t0: number;
}

/** SFT: conversations (one JSON object per line, or a JSON array) -> PII scrub -> dedup -> render -> pack. */
async function prepareSft(config: PrepareConfig, c: SftCtx, opts: WorkOptions): Promise<PrepareReport> {
  if (!config.renderer) throw new UserError('data.sft', 'SFT preparation needs the model\'s chat template.', 'Choose a model (its chat template renders the conversations).');
  if (!c.tokenizer) throw new UserError('data.sft', 'SFT preparation needs a tokenizer.', 'Pass --tokenizer DIR (the model folder).');
  const stats = newImportStats();
  const formats: Record<string, number> = {};
  const pii = newPiiCounts();
  const seen = new HashSet64();
  let dups = 0, piiDocs = 0;
  const piiExamples: Example[] = [];
  const dupExamples: Example[] = [];
  const maxExamples = c.cleanCfg.examplesPerFilter;
  const isVal = makeValSelector(c.valFraction, c.seed);
  const train = new SftPacker(config.out, 'train', c.blockSize, c.tokenBytes, c.tokenizer.eosId, config.truncation ?? 'drop', config.packSft ?? true);
  const val = new SftPacker(config.out, 'val-domain', c.blockSize, c.tokenBytes, c.tokenizer.eosId, config.truncation ?? 'drop', config.packSft ?? true);
  let kept = 0;
  const samples: Example[] = [];
  const untrained = { count: 0, examples: [] as Example[] };
  for await (const f of walkFiles(config.inputs, stats)) {
    // In a folder only conversation files are read (a script or a README beside them is not one).
    if (!f.explicit && !/\.(jsonl|ndjson|json)$/i.test(f.path)) { stats.filesSkipped.push({ path: f.path, reason: 'not a conversation file (.jsonl or .json)' }); continue; }
    let s;
    try {
      s = await openTextStream(f.path, stats, opts.signal, f.fsPath);
    } catch (e) {
      stats.filesSkipped.push({ path: f.path, reason: `could not be read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      continue;
    }
    if (!s) { stats.filesSkipped.push({ path: f.path, reason: 'looks like a binary file' }); continue; }
    const docsBefore = stats.docs, badBefore = stats.badLineCount;
    const records = recordsOf(s.chunks, f.path, c.imp.maxLineChars, stats);
    for await (const { rec, line } of records) {
      throwIfCancelled(opts.signal);
      const conv = toConversation(rec);
      if ('error' in conv) { addBadLine(stats, f.path, line, conv.error); continue; }
      if (stats.docs === docsBefore) stats.filesRead++;
      stats.docs++;
      formats[conv.format] = (formats[conv.format] ?? 0) + 1;
      let changed = false;
      const messages = conv.messages.map((m) => {
        if (!c.cleanCfg.pii.enabled) return m;
        const content = scrubPii(m.content, c.cleanCfg.pii, pii);
        if (content !== m.content) changed = true;
        return { role: m.role, content };
      });
      const shown = (): string => excerpt(messages.map((m) => `${m.role}: ${m.content}`).join('\n'));
      if (changed) {
        piiDocs++;
        if (piiExamples.length < maxExamples) piiExamples.push({ source: `${f.path}:${line}`, reason: 'personal data replaced', excerpt: shown() });
      }
      const [a, b] = hash64(JSON.stringify(messages));
      if (c.cleanCfg.exactDedup.enabled && !seen.add(a, b)) {
        dups++;
        if (dupExamples.length < maxExamples) dupExamples.push({ source: `${f.path}:${line}`, reason: 'same conversation as an earlier one', excerpt: shown() });
        continue;
      }
      const r = await config.renderer(messages);
      if (!hasTrainableToken(r.mask)) {
        // The template placed no assistant token to learn (no reply, or one it could not locate): reported, never trained on silently.
        untrained.count++;
        if (untrained.examples.length < maxExamples) untrained.examples.push({ source: `${f.path}:${line}`, reason: 'no trainable tokens', excerpt: shown() });
        continue;
      }
      const target = isVal(kept++) ? val : train;
      target.add(r.ids, r.mask);
      if (samples.length < 5) samples.push({ source: `${f.path}:${line}`, reason: conv.format, excerpt: excerpt(messages.map((m) => `${m.role}: ${m.content}`).join('\n'), 400) });
      if (kept % 500 === 0) opts.onProgress?.({ stage: 'Rendering conversations', message: `${kept.toLocaleString('en-US')} conversations` });
    }
    if (stats.docs === docsBefore) {
      const bad = stats.badLineCount - badBefore;
      stats.filesSkipped.push({ path: f.path, reason: bad ? `no conversation: all ${bad} records were skipped (see the bad lines)` : 'empty file (no records)' });
    }
  }
  if (stats.docs === 0) throw new UserError('data.empty', `No conversations were found${stats.badLineCount ? ` (${stats.badLineCount} bad records, first: ${stats.badLines[0]!.path}:${stats.badLines[0]!.line} ${stats.badLines[0]!.error})` : ''}.`, 'Use JSONL with "messages" (OpenAI), "conversations" (ShareGPT) or "instruction"/"output" (Alpaca).');
  if (untrained.count > 0) {
    const where = untrained.examples.map((e) => e.source).join(', ');
    const message = `${untrained.count} of ${stats.docs - dups} conversations have no trainable tokens (the chat template placed no assistant reply to learn): ${where}${untrained.count > untrained.examples.length ? ', ...' : ''}.`;
    if (untrained.count === stats.docs - dups) {
      throw new UserError('data.sft-untrained', message, 'Check that the conversations have assistant replies; `lathe template inspect` shows which tokens the template trains.');
    }
    c.log(`${message} They were left out.`);
  }
  const splits: Record<string, SplitInfo> = { train: train.finish() };
  if (val.out.docs) splits['val-domain'] = val.finish(); else val.finish();
  if (splits.train!.docs === 0) throw new UserError('data.empty', `Every conversation was dropped: ${train.dropped + val.dropped} longer than the block size ${c.blockSize} tokens or without assistant tokens, ${dups} duplicates.`, 'Raise --block-size or use truncation "truncate".');
  const filters: FilterStats[] = [
    { name: 'exactDedup', label: 'Exact duplicates', enabled: c.cleanCfg.exactDedup.enabled, docsIn: stats.docs, docsOut: stats.docs - dups, removed: dups, modified: 0, charsIn: 0, charsOut: 0, reasons: dups ? { duplicate: dups } : {}, examples: dupExamples },
    { name: 'pii', label: 'Personal data and secrets replaced', enabled: c.cleanCfg.pii.enabled, docsIn: stats.docs, docsOut: stats.docs, removed: 0, modified: piiDocs, charsIn: 0, charsOut: 0, reasons: { ...pii }, examples: piiExamples },
  ];
  const report: PrepareReport = {
    mode: 'sft', out: config.out,
    corpora: { domain: { import: stats, filters, languages: {}, pii, docsIn: stats.docs, docsOut: splits.train!.docs + (splits['val-domain']?.docs ?? 0), charsIn: stats.chars, charsOut: 0, trainDocs: splits.train!.docs, valDocs: splits['val-domain']?.docs ?? 0, samples } },
    tokenizer: { hash: c.tokenizer.hash, vocabSize: c.tokenizer.vocabSize, eosId: c.tokenizer.eosId },
    blockSize: c.blockSize, splits, tokens: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.tokens])),
    sft: { formats, dropped: train.dropped + val.dropped, truncated: train.truncated + val.truncated },
    warnings: c.warnings, seconds: (Date.now() - c.t0) / 1000,
  };
  writeFileAtomic(join(config.out, 'report.json'), JSON.stringify(report, null, 2));
  writeManifest(config.out, {
    format: 'lathe-dataset', version: 1, kind: 'sft', tokenizer: report.tokenizer!, blockSize: c.blockSize, tokenBytes: c.tokenBytes,
    splits, createdAt: new Date().toISOString(), meta: { seed: c.seed, truncation: config.truncation ?? 'drop' },
  });
  return report;
}

function hasTrainableToken(mask: ArrayLike<number>): boolean {
  for (let i = 0; i < mask.length; i++) if (mask[i]) return true;
  return false;
}

/** Preference pairs (preference/prepare.ts): render both sides through the chat template, two rows per pair. */
async function preparePreference(config: PrepareConfig, c: SftCtx, opts: WorkOptions): Promise<PrepareReport> {
  if (!config.renderer) throw new UserError('data.preference', 'Preference preparation needs the model\'s chat template.', 'Choose a model (its chat template renders the pairs).');
  if (!c.tokenizer) throw new UserError('data.preference', 'Preference preparation needs a tokenizer.', 'Pass --tokenizer DIR (the model folder).');
  const r = await preparePreferencePairs({
    inputs: config.inputs, out: config.out, renderer: config.renderer, tokenizer: c.tokenizer, blockSize: c.blockSize, tokenBytes: c.tokenBytes,
    valFraction: c.valFraction, seed: c.seed, maxLineChars: c.imp.maxLineChars, pii: c.cleanCfg.pii, dedup: c.cleanCfg.exactDedup.enabled,
  }, opts);
  const p = r.report;
  const skippedTotal = Object.values(p.skipped).reduce((a, b) => a + b, 0);
  if (skippedTotal) c.log(`Skipped ${skippedTotal} records (${describeSkips(p.skipped)}); each is listed by file and line in the report.`);
  if (p.promptTruncated) c.log(`${p.promptTruncated} pairs were longer than ${c.blockSize} tokens: their prompts lost tokens from the start${p.completionTruncated ? `, and in ${p.completionTruncated} a reply alone was too long and lost its end` : ''}.`);
  const splits = r.splits;
  const trainDocs = splits.train!.docs, valDocs = splits['val-domain']?.docs ?? 0;
  const tokenizer = { hash: c.tokenizer.hash, vocabSize: c.tokenizer.vocabSize, eosId: c.tokenizer.eosId };
  const report: PrepareReport = {
    mode: 'preference', out: config.out,
    corpora: { domain: { import: r.stats, filters: r.filters, languages: {}, pii: r.pii, docsIn: r.stats.docs, docsOut: trainDocs + valDocs, charsIn: r.stats.chars, charsOut: 0, trainDocs, valDocs, samples: r.samples } },
    tokenizer, blockSize: c.blockSize, splits, tokens: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.tokens])),
    preference: p, warnings: c.warnings, seconds: (Date.now() - c.t0) / 1000,
  };
  writePreferenceDataset(config.out, { tokenizer, blockSize: c.blockSize, tokenBytes: c.tokenBytes, seed: c.seed }, splits, report);
  return report;
}

/** JSON records of a file: JSON Lines, or a JSON array / single object when the file starts with one. */
export async function* recordsOf(chunks: AsyncGenerator<string>, path: string, maxLine: number, stats: ImportStats): AsyncGenerator<{ rec: unknown; line: number }> {
  const first = await chunks.next();
  if (first.done) return;
  const head = first.value;
  async function* all(): AsyncGenerator<string> { yield head; yield* chunks; }
  if (head.trimStart().startsWith('[')) {
    const parts: string[] = [];
    for await (const ch of all()) parts.push(ch);
    let arr: unknown;
    try { arr = JSON.parse(parts.join('')); } catch (e) { addBadLine(stats, path, 1, `not valid JSON: ${(e as Error).message}`); return; }
    if (Array.isArray(arr)) for (let i = 0; i < arr.length; i++) yield { rec: arr[i], line: i + 1 };
    return;
  }
  for await (const l of lines(all(), maxLine)) {
    if (l.tooLong) { addBadLine(stats, path, l.n, `line longer than ${maxLine} characters, skipped`); continue; }
    if (!l.line.trim()) continue;
    try { yield { rec: JSON.parse(l.line), line: l.n }; } catch (e) { addBadLine(stats, path, l.n, jsonLineError(l.line, e)); }
  }
}
