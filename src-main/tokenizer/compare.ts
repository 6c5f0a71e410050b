/**
 * Before/after numbers for the wizard: tokens per word and bytes per token on held-out domain text and on
 * general text, with both tokenizers run for real (Hugging Face tokenizers), not estimated.
 */
import { throwIfCancelled, type WorkOptions } from '../util/progress';
import type { LatheTokenizer } from './tokenizer';

export interface TextStats {
  texts: number;
  /** Whitespace-separated words. */
  words: number;
  /** UTF-8 bytes. */
  bytes: number;
  /** Tokens without bos/eos. */
  tokens: number;
  tokensPerWord: number;
  bytesPerToken: number;
}

export interface SetComparison {
  before: TextStats;
  after: TextStats;
  /** (after - before) / before tokens, in percent: negative means fewer tokens. */
  tokenChangePct: number;
  /** Texts whose decode(encode(text)) differs from the text with the extended tokenizer but not with the base. */
  roundTripRegressions: number;
}

export interface TokenizerComparison {
  vocabBefore: number;
  vocabAfter: number;
  domain: SetComparison;
  general: SetComparison;
  /** The new tokens used most on the domain texts (for a bar chart). */
  topNewTokens: Array<{ id: number; token: string; count: number }>;
  /**
   * How many distinct new tokens the domain texts use at all. The rest are building blocks of longer new
   * tokens, or words that are missing from the held-out text.
   */
  newTokensUsed: number;
}

export interface CompareInput {
  domainTexts: string[];
  generalTexts: string[];
  /** How many entries in topNewTokens. Default 20. */
  topK?: number;
}

const BATCH = 256;

async function statsFor(tok: LatheTokenizer, texts: string[], opts: WorkOptions, label: string,
  onIds?: (ids: number[], k: number) => void): Promise<{ stats: TextStats; roundTripOk: boolean[] }> {
  let words = 0, bytes = 0, tokens = 0;
  const enc = new TextEncoder();
  const roundTripOk: boolean[] = [];
  for (let i = 0; i < texts.length; i += BATCH) {
    throwIfCancelled(opts.signal);
    opts.onProgress?.({ stage: label, fraction: i / Math.max(1, texts.length) });
    const batch = texts.slice(i, i + BATCH);
    const encs = await tok.encodeBatch(batch, { addSpecialTokens: false });
    const decoded = await tok.decodeBatch(encs.map((e) => e.ids));
    for (let k = 0; k < batch.length; k++) {
      const t = batch[k]!;
      words += t.split(/\s+/u).filter((w) => w.length > 0).length;
      bytes += enc.encode(t).length;
      tokens += encs[k]!.ids.length;
      onIds?.(encs[k]!.ids, i + k);
      roundTripOk.push(decoded[k] === t);
    }
  }
  return {
    stats: { texts: texts.length, words, bytes, tokens, tokensPerWord: words ? tokens / words : 0, bytesPerToken: tokens ? bytes / tokens : 0 },
    roundTripOk,
  };
}

async function compareSet(base: LatheTokenizer, ext: LatheTokenizer, texts: string[], opts: WorkOptions, name: string,
  onIds?: (ids: number[]) => void): Promise<SetComparison> {
  const b = await statsFor(base, texts, opts, `Measuring ${name} text with the base tokenizer`);
  const a = await statsFor(ext, texts, opts, `Measuring ${name} text with the extended tokenizer`, onIds);
  let regressions = 0;
  for (let i = 0; i < texts.length; i++) if (b.roundTripOk[i] && !a.roundTripOk[i]) regressions++;
  return {
    before: b.stats,
    after: a.stats,
    tokenChangePct: b.stats.tokens ? (100 * (a.stats.tokens - b.stats.tokens)) / b.stats.tokens : 0,
    roundTripRegressions: regressions,
  };
}

export async function compareTokenizers(base: LatheTokenizer, extended: LatheTokenizer, input: CompareInput,
  opts: WorkOptions = {}): Promise<TokenizerComparison> {
  const usage = new Map<number, number>();
  const domain = await compareSet(base, extended, input.domainTexts, opts, 'domain', (ids) => {
    for (const id of ids) if (id >= base.vocabSize) usage.set(id, (usage.get(id) ?? 0) + 1);
  });
  const general = await compareSet(base, extended, input.generalTexts, opts, 'general');
  const topNewTokens = [...usage.entries()]
    .sort((x, y) => y[1] - x[1] || x[0] - y[0])
    .slice(0, input.topK ?? 20)
    .map(([id, count]) => ({ id, token: extended.idToToken(id) ?? '', count }));
  return { vocabBefore: base.vocabSize, vocabAfter: extended.vocabSize, domain, general, topNewTokens, newTokensUsed: usage.size };
}
