/** The export job: merged model or PEFT adapter, with progress stages, cancellation and the verification result. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { exportModel } from '../../../export';

type Params = Extract<JobRequest, { kind: 'export' }>['params'];

export const exportJob: JobHandler<Params> = (params, ctx) =>
  exportModel(params, { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal });
