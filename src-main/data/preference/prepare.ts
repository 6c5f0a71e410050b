/**
 * Preference preparation: pair records (formats.ts) -> the model's chat template -> two rows per pair
 * (chosen, then rejected) in a dataset of kind 'preference'. The loss mask covers the completion only:
 * the last run of assistant tokens the template marks (earlier assistant turns of a multi-turn prompt are
 * context). Pairs longer than the block size lose prompt tokens from the start first (both sides the same
 * number, so both replies answer the same text); only when a reply alone does not fit is its end cut.
 * Bad records are skipped and named by file and line; identical or empty replies, or a template that
 * cannot tell the reply from the prompt, are counted and explained before any training.
 */
import { join } from 'node:path';
import { SplitWriter, writeManifest, type SplitInfo } from '../pack/dataset';
import { writeFileAtomic } from '../pack/shards';
import { HashSet64, hash64 } from '../clean/hash';
import { newPiiCounts, scrubPii } from '../clean/pii';
import type { FilterStats } from '../clean/pipeline';
import { newImportStats, walkFiles, type ImportStats } from '../import';
import { openTextStream } from '../import/stream';
import { addBadLine } from '../import/stats';
import { makeValSelector } from '../mix';
import { excerpt, type ChatMessage, type ChatRenderer, type Example, type TokenizerAdapter } from '../types';
import { UserError, throwIfCancelled, type WorkOptions } from '../../util/progress';
import { isPairError, toPreferencePair, type PairError } from './formats';
import { recordsOf } from '../prepare';
import { replySpan } from './mask';

export interface PreferenceReport {
  formats: Record<string, number>;
  /** Pairs written (train + validation). */
  pairs: number;
  /** Pairs whose prompt lost tokens from its start to fit the block size. */
  promptTruncated: number;
  /** Pairs where a reply alone was longer than the block size and lost its end. */
  completionTruncated: number;
  /** Records skipped, by reason (each also listed by file and line in the import report). */
  skipped: { shape: number; identical: number; empty: number; prompt: number; template: number; duplicate: number };
  /** Mean prompt and completion tokens of the written pairs (before truncation). */
  meanPromptTokens: number;
  meanCompletionTokens: number;
}

export interface PreferencePrepareInput {
  inputs: string[];
  out: string;
  renderer: ChatRenderer;
  tokenizer: TokenizerAdapter;
  blockSize: number;
  tokenBytes: 2 | 4;
  valFraction: number;
  seed: number;
  maxLineChars: number;
  pii: Parameters<typeof scrubPii>[1] & { enabled: boolean };
  dedup: boolean;
}

/** Rendered side: ids and where the completion starts (the last run of loss tokens); null when none. */
async function renderSide(renderer: ChatRenderer, prompt: ChatMessage[], reply: string): Promise<{ ids: number[]; start: number; end: number } | null> {
  const r = await renderer([...prompt, { role: 'assistant', content: reply }]);
  const ids = Array.from(r.ids);
  const span = replySpan(r.mask);
  if (!span) return null;
  const { start, end } = span;
  if (start === 0) return null; // nothing before the reply: the template did not separate the prompt
  return { ids, start, end };
}

/** Packs one pair into two rows of T tokens; counts truncation. */
class PairWriter {
  promptTruncated = 0;
  completionTruncated = 0;
  promptTokens = 0;
  completionTokens = 0;
  constructor(readonly out: SplitWriter, readonly T: number, readonly padId: number) {}
  add(c: { ids: number[]; start: number; end: number }, r: { ids: number[]; start: number; end: number }): void {
    const T = this.T;
    const over = Math.max(c.ids.length, r.ids.length) - T;
    // prompt-first: the same number of prompt tokens off both sides' start, keeping ≥ 1 (it predicts the reply's first token)
    const cut = over > 0 ? Math.min(over, c.start - 1, r.start - 1) : 0;
    if (over > 0) this.promptTruncated++;
    let cutReply = false;
    for (const s of [c, r]) {
      this.promptTokens += s.start;
      this.completionTokens += s.end - s.start;
      const ids = s.ids.slice(cut);
      if (ids.length > T) cutReply = true;
      const n = Math.min(T, ids.length);
      const row = new Uint32Array(T).fill(this.padId);
      const mask = new Uint8Array(T);
      const seg = new Uint16Array(T);
      let loss = 0;
      for (let t = 0; t < n; t++) {
        row[t] = ids[t]!;
        seg[t] = 1;
        if (t + cut >= s.start && t + cut < s.end) { mask[t] = 1; loss++; }
      }
      this.out.tokens += n;
      this.out.lossTokens += loss;
      this.out.write(row, mask, seg);
    }
    if (cutReply) this.completionTruncated++;
    this.out.docs++;
  }
}

export async function preparePreferencePairs(c: PreferencePrepareInput, opts: WorkOptions = {}): Promise<{ splits: Record<string, SplitInfo>; stats: ImportStats; report: PreferenceReport; samples: Example[]; pii: ReturnType<typeof newPiiCounts>; filters: FilterStats[] }> {
  const stats = newImportStats();
  const formats: Record<string, number> = {};
  const skipped: PreferenceReport['skipped'] = { shape: 0, identical: 0, empty: 0, prompt: 0, template: 0, duplicate: 0 };
  const firstTemplateError: { where?: string } = {};
  const pii = newPiiCounts();
  const seen = new HashSet64();
  const isVal = makeValSelector(c.valFraction, c.seed);
  const train = new PairWriter(new SplitWriter(c.out, 'train', 'preference', c.blockSize, c.tokenBytes), c.blockSize, c.tokenizer.eosId);
  const val = new PairWriter(new SplitWriter(c.out, 'val-domain', 'preference', c.blockSize, c.tokenBytes), c.blockSize, c.tokenizer.eosId);
  const samples: Example[] = [];
  let kept = 0;
  const skip = (path: string, line: number, e: PairError | { kind: 'template' | 'duplicate'; error: string }) => {
    skipped[e.kind]++;
    addBadLine(stats, path, line, e.error);
  };
  for await (const f of walkFiles(c.inputs, stats)) {
    const s = await openTextStream(f.path, stats, opts.signal);
    if (!s) { stats.filesSkipped.push({ path: f.path, reason: 'looks like a binary file' }); continue; }
    stats.filesRead++;
    for await (const { rec, line } of recordsOf(s.chunks, f.path, c.maxLineChars, stats)) {
      throwIfCancelled(opts.signal);
      const pair = toPreferencePair(rec);
      if (isPairError(pair)) { skip(f.path, line, pair); continue; }
      stats.docs++;
      const scrub = (t: string) => (c.pii.enabled ? scrubPii(t, c.pii, pii) : t);
      const prompt = pair.prompt.map((m) => ({ role: m.role, content: scrub(m.content) }));
      const chosen = scrub(pair.chosen), rejected = scrub(pair.rejected);
      const [a, b] = hash64(JSON.stringify([prompt, chosen, rejected]));
      if (c.dedup && !seen.add(a, b)) { skip(f.path, line, { kind: 'duplicate', error: 'same pair as an earlier one, skipped' }); continue; }
      const rc = await renderSide(c.renderer, prompt, chosen);
      const rr = rc && await renderSide(c.renderer, prompt, rejected);
      if (!rc || !rr) {
        firstTemplateError.where ??= `${f.path}:${line}`;
        skip(f.path, line, { kind: 'template', error: 'the chat template did not mark the reply apart from the prompt (no assistant tokens after a prompt)' });
        continue;
      }
      const sameTokens = rc.ids.length === rr.ids.length && rc.ids.every((x, i) => x === rr.ids[i]);
      if (sameTokens) { skip(f.path, line, { kind: 'identical', error: 'chosen and rejected render to the same tokens' }); continue; }
      formats[pair.format] = (formats[pair.format] ?? 0) + 1;
      (isVal(kept++) ? val : train).add(rc, rr);
      if (samples.length < 5) samples.push({ source: `${f.path}:${line}`, reason: pair.format, excerpt: excerpt(`${prompt.map((m) => `${m.role}: ${m.content}`).join('\n')}\n[chosen] ${chosen}\n[rejected] ${rejected}`, 400) });
      if (kept % 200 === 0) opts.onProgress?.({ stage: 'Rendering preference pairs', message: `${kept.toLocaleString('en-US')} pairs` });
    }
  }
  const total = Object.values(skipped).reduce((x, y) => x + y, 0);
  if (kept === 0) {
    const first = stats.badLines[0];
    if (skipped.template > 0 && skipped.template === stats.docs) {
      throw new UserError('data.preferenceTemplate', `The model's chat template cannot separate the prompt from the reply (first at ${firstTemplateError.where}): it marks no assistant tokens after the prompt, so there is nothing to score.`,
        'Use a model whose chat template marks assistant turns ({% generation %} or a standard role layout); `lathe template inspect` shows the training mask.');
    }
    throw new UserError('data.empty', `No usable preference pairs were found${total ? ` (${total} records skipped: ${describeSkips(skipped)}${first ? `; first: ${first.path}:${first.line} ${first.error}` : ''})` : ''}.`,
      'Use JSONL with "prompt", "chosen", "rejected" (text or message lists), or HH-RLHF "chosen"/"rejected" conversations; see docs/preference.md.');
  }
  const splits: Record<string, SplitInfo> = { train: train.out.finish() };
  if (val.out.docs) splits['val-domain'] = val.out.finish(); else val.out.finish();
  const pairs = kept;
  const report: PreferenceReport = {
    formats, pairs, skipped,
    promptTruncated: train.promptTruncated + val.promptTruncated,
    completionTruncated: train.completionTruncated + val.completionTruncated,
    meanPromptTokens: (train.promptTokens + val.promptTokens) / (2 * pairs),
    meanCompletionTokens: (train.completionTokens + val.completionTokens) / (2 * pairs),
  };
  // the report's step table: records read -> usable pairs, with the skipped ones as examples (file:line, why)
  const records = pairs + Object.values(skipped).reduce((x, y) => x + y, 0);
  const dropped = records - pairs;
  const filters: FilterStats[] = [{
    name: 'pairs', label: 'Usable preference pairs', enabled: true, docsIn: records, docsOut: pairs, removed: dropped, modified: 0, charsIn: 0, charsOut: 0,
    reasons: Object.fromEntries(Object.entries(skipped).filter(([, n]) => n > 0)),
    examples: stats.badLines.slice(0, 10).map((b) => ({ source: `${b.path}:${b.line}`, reason: 'skipped', excerpt: b.error })),
  }];
  return { splits, stats, report, samples, pii, filters };
}

export function describeSkips(s: PreferenceReport['skipped']): string {
  const words: Record<keyof PreferenceReport['skipped'], string> = {
    shape: 'not a preference pair', identical: 'chosen = rejected', empty: 'empty reply', prompt: 'no prompt', template: 'template could not separate the reply', duplicate: 'duplicate',
  };
  return (Object.keys(words) as (keyof typeof words)[]).filter((k) => s[k] > 0).map((k) => `${s[k]} ${words[k]}`).join(', ');
}

/** Writes report.json and the manifest of a prepared preference dataset. */
export function writePreferenceDataset(out: string, manifestBase: { tokenizer: { hash: string; vocabSize: number; eosId: number }; blockSize: number; tokenBytes: 2 | 4; seed: number },
  splits: Record<string, SplitInfo>, report: unknown): void {
  writeFileAtomic(join(out, 'report.json'), JSON.stringify(report, null, 2));
  writeManifest(out, {
    format: 'lathe-dataset', version: 1, kind: 'preference', tokenizer: manifestBase.tokenizer, blockSize: manifestBase.blockSize, tokenBytes: manifestBase.tokenBytes,
    splits, createdAt: new Date().toISOString(), meta: { seed: manifestBase.seed, truncation: 'prompt-first' },
  });
}
