/** Messages between the job host (main side) and a job process. One process runs one job. */
import type { ApiErrorShape, JobRequest } from '../../contract';

export interface JobSecrets { hubToken?: string }

export type HostToJob =
  /** `secrets` (the Hub token) travel only in this message, never in the request the host keeps or shows. */
  | { type: 'start'; jobId: string; request: JobRequest; secrets?: JobSecrets }
  | { type: 'cancel' }
  | { type: 'pause' }
  | { type: 'resume' };

export type JobToHost =
  | { type: 'ready' }
  | { type: 'progress'; fraction?: number; stage?: string; message?: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'metric'; metric: Record<string, number> }
  | { type: 'text'; stream: string; text: string }
  | { type: 'paused' }
  | { type: 'resumed' }
  | { type: 'done'; result: unknown }
  | { type: 'failed'; error: ApiErrorShape }
  | { type: 'cancelled' };

/** A job process as the host sees it: Node's child_process in the CLI/bridge, Electron's utilityProcess in the app. */
export interface JobProcess {
  send(message: HostToJob): void;
  onMessage(listener: (message: JobToHost) => void): void;
  /** Called once when the process is gone, whatever the reason. */
  onExit(listener: (code: number | null, signal: string | null) => void): void;
  /** Last lines the process wrote to stderr (for crash reports). */
  stderrTail(): string;
  kill(): void;
}

export type SpawnJobProcess = () => JobProcess;
