/** Corpus preparation as a job: import, clean (with per-step counts and examples), mix, tokenize, pack. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import type { PrepareReport } from '../../../contract/wizards';
import { prepareCorpus } from '../../../data/prepare';

type Params = Extract<JobRequest, { kind: 'prepare' }>['params'];

export const prepareJob: JobHandler<Params> = async (params, ctx): Promise<PrepareReport> => {
  await ctx.checkpoint();
  // Typed as the renderer's view: this line fails to compile if the report and the view drift apart.
  const report: PrepareReport = await prepareCorpus(
    {
      inputs: params.inputs,
      general: params.general,
      out: params.out,
      tokenizerDir: params.tokenizerDir,
      blockSize: params.blockSize,
      ratio: params.ratio,
      valFraction: params.valFraction,
      seed: params.seed,
      clean: params.clean,
    },
    { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal },
  );
  return report;
};
