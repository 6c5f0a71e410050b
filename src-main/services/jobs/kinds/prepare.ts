/** Corpus preparation as a job: import, clean (with per-step counts and examples), mix, tokenize, pack. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import type { PrepareReport } from '../../../contract/wizards';
import { prepareCorpus, type PrepareConfig } from '../../../data/prepare';
import { loadTokenizerDir } from '../../../data/tokenize';
import { chatRendererForModel } from '../../../templates/for-model';

type Params = Extract<JobRequest, { kind: 'prepare' }>['params'];

export const prepareJob: JobHandler<Params> = async (params, ctx): Promise<PrepareReport> => {
  await ctx.checkpoint();
  let renderer: PrepareConfig['renderer'];
  let tokenizer: PrepareConfig['tokenizer'];
  if (params.mode === 'sft' || params.mode === 'preference') {
    tokenizer = await loadTokenizerDir(params.tokenizerDir);
    const r = chatRendererForModel(params.tokenizerDir, tokenizer);
    renderer = r.renderer;
    ctx.onLog('info', `${params.mode === 'sft' ? 'Conversations' : 'Preference pairs'} are rendered with ${r.origin}.`);
    if (r.warning) ctx.onLog('warn', r.warning);
  }
  // Typed as the renderer's view: this line fails to compile if the report and the view drift apart.
  const report: PrepareReport = await prepareCorpus(
    {
      mode: params.mode,
      truncation: params.truncation,
      ...(renderer ? { renderer, tokenizer } : {}),
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
