/**
 * A diagnostics job: ticks through `steps` units of work, reporting progress and a metric, so the whole
 * job path (queue, process, progress, pause, cancel, failure, crash) can be checked from the UI and tests.
 */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { UserError } from '../../../util/progress';

type Params = Extract<JobRequest, { kind: 'selftest' }>['params'];

export const selftest: JobHandler<Params> = async (params, ctx) => {
  for (let step = 1; step <= params.steps; step++) {
    await ctx.checkpoint();
    if (params.crashAtStep === step) {
      // Simulates a native crash (e.g. a GPU driver abort): the process dies without a word.
      process.abort();
    }
    if (params.failAtStep === step) {
      throw new UserError('selftest.failed', `The self-test failed on purpose at step ${step}.`, 'Nothing to do: this is a test.');
    }
    if (params.intervalMs > 0) await new Promise((r) => setTimeout(r, params.intervalMs));
    ctx.metric({ step, value: Math.sin(step / 10) });
    ctx.onProgress({ fraction: step / params.steps, stage: 'Self-test', message: `Step ${step} of ${params.steps}` });
  }
  ctx.onLog('info', `Self-test finished ${params.steps} steps.`);
  return { steps: params.steps };
};
