import type { WorkOptions } from '../../util/progress';

/** What a job handler gets: the usual WorkOptions plus metrics and a pause point. */
export interface JobContext extends Required<Pick<WorkOptions, 'onProgress' | 'onLog'>> {
  signal: AbortSignal;
  jobId: string;
  metric(values: Record<string, number>): void;
  /** Generated text as it comes (chat): `stream` names the side, `text` the new piece. */
  text(stream: string, text: string): void;
  /**
   * Call between units of work: returns at once when running, waits while the user has paused the job,
   * and throws CancelledError once the job is cancelled.
   */
  checkpoint(): Promise<void>;
}

export type JobHandler<P> = (params: P, ctx: JobContext) => Promise<unknown>;
