/** Starting a job from a wizard: the id, or a plain-words error for the wizard's ErrorNote. */
import type { JobInfo, Request } from '../../src-main/contract';
import { api, ApiError } from './api';

export type Problem = { message: string; hint?: string | undefined };

export function problem(e: unknown): Problem {
  return e instanceof ApiError ? e : { message: e instanceof Error ? e.message : String(e) };
}

export async function startJob(req: Request<'jobs.start'>): Promise<{ jobId: string } | { error: Problem }> {
  try {
    return await api['jobs.start'](req);
  } catch (e) {
    return { error: problem(e) };
  }
}

/** Waits for a job to end (polling; the wizards' short jobs), answering its final info. */
export async function waitJob(jobId: string, everyMs = 300): Promise<JobInfo> {
  for (;;) {
    const j = await api['jobs.get']({ jobId });
    if (j.state === 'done' || j.state === 'failed' || j.state === 'cancelled') return j;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
