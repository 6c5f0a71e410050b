/** The training job: the trainer with the job's progress, metrics, pause and stop wired in. */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { train } from '../../../engine/train/trainer';
import { deviceLogLine } from '../../device';

type Params = Extract<JobRequest, { kind: 'train' }>['params'];

export const trainJob: JobHandler<Params> = (params, ctx) =>
  train(params, {
    onProgress: ctx.onProgress,
    onLog: ctx.onLog,
    signal: ctx.signal,
    onMetric: (m) => ctx.metric(m),
    checkpoint: ctx.checkpoint,
    // the device and why, as the chat and eval-report jobs say it (the dashboard shows the line)
    onDevice: (d) => ctx.onLog('info', deviceLogLine(d)),
  });
