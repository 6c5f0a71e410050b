import type { WorkOptions } from '../../util/progress';
import type { JobSecrets } from './protocol';

/** What a job handler gets: the usual WorkOptions plus metrics and a pause point. */
export interface JobContext extends Required<Pick<WorkOptions, 'onProgress' | 'onLog'>> {
  signal: AbortSignal;
  jobId: string;
  /** Given by the service that started the job (the Hub token); never logged or reported. */
  secrets: JobSecrets;
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
