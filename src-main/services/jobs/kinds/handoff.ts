/** The hand-off and adapter-import jobs (src-main/handoff; the same as `lathe handoff` / `lathe import-adapter`). */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { createHandoff, importAdapter } from '../../../handoff';

type HandoffParams = Extract<JobRequest, { kind: 'handoff' }>['params'];
type ImportParams = Extract<JobRequest, { kind: 'import-adapter' }>['params'];

export const handoffJob: JobHandler<HandoffParams> = (p, ctx) =>
  createHandoff({
    run: p.run, target: p.target, gpus: p.gpus, nodes: p.nodes, strategy: p.strategy, out: p.out,
    ...(p.baseName ? { baseName: p.baseName } : {}),
  }, { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal });

export const importAdapterJob: JobHandler<ImportParams> = async (p, ctx) => {
  ctx.onProgress({ stage: 'Importing', message: `Reading the adapter in ${p.adapter}` });
  return importAdapter({ adapter: p.adapter, model: p.model, out: p.out, ...(p.tokenizer ? { tokenizer: p.tokenizer } : {}) });
};
