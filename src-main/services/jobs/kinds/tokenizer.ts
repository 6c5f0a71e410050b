/** Tokenizer extension as two jobs: learn candidate tokens, then add the top N and measure before/after. */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import type { TokenizerExtendResult, TokenizerTrainResult } from '../../../contract/wizards';
import { compareTokenizerDirs, extendTokenizerDir, trainDomainTokenizer } from '../../../tokenizer';

type TrainParams = Extract<JobRequest, { kind: 'tokenizer-train' }>['params'];
type ExtendParams = Extract<JobRequest, { kind: 'tokenizer-extend' }>['params'];

/** The wizard's table shows at most this many; the full list stays in the candidates file. */
const SHOWN = 500;

export const tokenizerTrainJob: JobHandler<TrainParams> = async (params, ctx): Promise<TokenizerTrainResult> => {
  await ctx.checkpoint();
  const work = { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal };
  mkdirSync(path.dirname(params.outFile), { recursive: true });
  const r = await trainDomainTokenizer({ baseDir: params.baseDir, corpus: params.corpus, maxCandidates: params.maxCandidates, outFile: params.outFile }, work);
  return { file: params.outFile, corpus: r.corpus, baseVocabSize: r.baseVocabSize, candidates: r.candidates.slice(0, SHOWN), totalCandidates: r.candidates.length };
};

export const tokenizerExtendJob: JobHandler<ExtendParams> = async (params, ctx): Promise<TokenizerExtendResult> => {
  await ctx.checkpoint();
  const work = { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal };
  const ext = await extendTokenizerDir({ baseDir: params.baseDir, candidates: params.candidatesFile, topN: params.topN, outDir: params.outDir }, work);
  await ctx.checkpoint();
  ctx.onProgress({ stage: 'Measuring tokens per word', fraction: undefined });
  const comparison = await compareTokenizerDirs(
    { baseDir: params.baseDir, extendedDir: params.outDir, domain: params.domain, general: params.general, maxChars: params.maxChars }, work);
  const m = ext.manifest;
  return {
    outDir: ext.outDir,
    manifest: { baseVocabSize: m.baseVocabSize, newVocabSize: m.newVocabSize, predictedSaving: m.predictedSaving, added: m.newTokens.length, intermediates: m.newTokens.filter((t) => t.intermediate).length },
    comparison,
  };
};
