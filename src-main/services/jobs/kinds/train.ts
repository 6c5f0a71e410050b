/** The training job: the trainer with the job's progress, metrics, pause and stop wired in. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { train } from '../../../engine/train/trainer';

type Params = Extract<JobRequest, { kind: 'train' }>['params'];

export const trainJob: JobHandler<Params> = (params, ctx) =>
  train(params, {
    onProgress: ctx.onProgress,
    onLog: ctx.onLog,
    signal: ctx.signal,
    onMetric: (m) => ctx.metric(m),
    checkpoint: ctx.checkpoint,
  });
