/**
 * The job host: a queue of jobs, each run in its own process, with a lifecycle
 * queued -> running <-> paused -> done | failed | cancelled, streaming progress/metric/log events.
 * One job runs at a time (they share the GPU). A process that dies mid-job marks its job failed with a
 * plain explanation; nothing else is affected.
 */
import { randomUUID } from 'node:crypto';
import type { ApiErrorShape, JobEvent, JobInfo, JobRequest } from '../../contract';
import { UserError } from '../../util/progress';
import type { JobProcess, JobSecrets, SpawnJobProcess } from './protocol';

const CANCEL_GRACE_MS = 5_000;
/** Jobs waiting behind the running one; more are refused (a flood of starts must not queue without end). */
const MAX_QUEUED = 100;

interface Entry {
  info: JobInfo;
  request: JobRequest;
  secrets: JobSecrets;
  proc: JobProcess | null;
  killTimer: NodeJS.Timeout | null;
  settled: Promise<JobInfo>;
  settle: (info: JobInfo) => void;
}

export class JobHost {
  private readonly jobs = new Map<string, Entry>();
  private readonly queue: string[] = [];
  private running: string | null = null;
  private readonly listeners = new Set<(e: JobEvent) => void>();

  constructor(private readonly spawn: SpawnJobProcess) {}

  onEvent(listener: (e: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `secrets` go to the job process with its start message only (never in JobInfo, events or logs). */
  start(request: JobRequest, secrets: JobSecrets = {}): string {
    if (this.queue.length >= MAX_QUEUED) {
      throw new UserError('jobs.queueFull', `${MAX_QUEUED} jobs are already waiting.`, 'Cancel some of them on the Activity page, or wait for them to finish.');
    }
    const id = randomUUID().slice(0, 8);
    let settle!: (i: JobInfo) => void;
    const settled = new Promise<JobInfo>((r) => { settle = r; });
    const info: JobInfo = { id, kind: request.kind, state: 'queued', createdAt: new Date().toISOString(), progress: {} };
    this.jobs.set(id, { info, request, secrets, proc: null, killTimer: null, settled, settle });
    this.queue.push(id);
    this.emitState(id);
    this.pump();
    return id;
  }

  list(): JobInfo[] {
    return [...this.jobs.values()].map((e) => structuredClone(e.info));
  }

  get(id: string): JobInfo {
    return structuredClone(this.entry(id).info);
  }

  /** Resolves when the job reaches done, failed or cancelled. */
  wait(id: string): Promise<JobInfo> {
    return this.entry(id).settled;
  }

  cancel(id: string): JobInfo {
    const e = this.entry(id);
    if (e.info.state === 'queued') {
      this.queue.splice(this.queue.indexOf(id), 1);
      this.finish(id, 'cancelled');
    } else if (e.info.state === 'running' || e.info.state === 'paused') {
      e.proc?.send({ type: 'cancel' });
      // A job busy inside a native call cannot listen; stop its process if it does not answer in time.
      e.killTimer = setTimeout(() => {
        if (!this.isFinal(e.info.state)) {
          e.proc?.kill();
          this.finish(id, 'cancelled');
        }
      }, CANCEL_GRACE_MS);
    }
    return this.get(id);
  }

  pause(id: string): JobInfo {
    const e = this.entry(id);
    if (e.info.state !== 'running') {
      throw new UserError('jobs.cannotPause', `This job is ${e.info.state}; only a running job can be paused.`);
    }
    e.proc?.send({ type: 'pause' });
    return this.get(id);
  }

  resume(id: string): JobInfo {
    const e = this.entry(id);
    if (e.info.state !== 'paused' && e.info.state !== 'running') {
      throw new UserError('jobs.cannotResume', `This job is ${e.info.state}; only a paused job can be resumed.`);
    }
    e.proc?.send({ type: 'resume' });
    return this.get(id);
  }

  /** Stop everything (app quit). */
  dispose(): void {
    for (const e of this.jobs.values()) {
      if (e.killTimer) clearTimeout(e.killTimer);
      e.proc?.kill();
    }
  }

  private entry(id: string): Entry {
    const e = this.jobs.get(id);
    if (!e) throw new UserError('jobs.notFound', `There is no job with id "${id}".`, 'It may have belonged to an earlier session of the app.');
    return e;
  }

  private isFinal(s: JobInfo['state']): boolean {
    return s === 'done' || s === 'failed' || s === 'cancelled';
  }

  private pump(): void {
    if (this.running !== null) return;
    const id = this.queue.shift();
    if (id === undefined) return;
    this.running = id;
    const e = this.entry(id);
    e.info.state = 'running';
    this.emitState(id);
    let proc: JobProcess;
    try {
      proc = this.spawn();
    } catch (err) {
      this.finish(id, 'failed', { code: 'jobs.spawn', message: `Could not start a process for the job: ${(err as Error).message}` });
      return;
    }
    e.proc = proc;
    proc.onMessage((m) => {
      if (this.isFinal(e.info.state)) return;
      switch (m.type) {
        case 'ready':
          proc.send({ type: 'start', jobId: id, request: e.request, secrets: e.secrets });
          break;
        case 'progress': {
          const { type: _t, ...p } = m;
          e.info.progress = p;
          this.emit({ type: 'progress', jobId: id, ...p });
          break;
        }
        case 'log':
          this.emit({ type: 'log', jobId: id, level: m.level, message: m.message });
          break;
        case 'metric':
          this.emit({ type: 'metric', jobId: id, metric: m.metric });
          break;
        case 'text':
          this.emit({ type: 'text', jobId: id, stream: m.stream, text: m.text });
          break;
        case 'paused':
          e.info.state = 'paused';
          this.emitState(id);
          break;
        case 'resumed':
          e.info.state = 'running';
          this.emitState(id);
          break;
        case 'done':
          e.info.result = m.result;
          this.finish(id, 'done');
          break;
        case 'failed':
          this.finish(id, 'failed', m.error);
          break;
        case 'cancelled':
          this.finish(id, 'cancelled');
          break;
      }
    });
    proc.onExit((code, signal) => {
      if (!this.isFinal(e.info.state)) {
        const how = signal ? `signal ${signal}` : `exit code ${code}`;
        const tail = proc.stderrTail().trim().split('\n').slice(-5).join('\n');
        if (tail) this.emit({ type: 'log', jobId: id, level: 'error', message: tail });
        this.finish(id, 'failed', {
          code: 'jobs.crashed',
          message: `The ${e.info.kind} job's process stopped unexpectedly (${how}). The app and your files are fine.`,
          hint: 'Start the job again; work saved at its last checkpoint is kept. If it keeps happening, lower the batch size or context length, or switch the compute device to CPU in settings.',
        });
      }
    });
  }

  private finish(id: string, state: 'done' | 'failed' | 'cancelled', error?: ApiErrorShape): void {
    const e = this.entry(id);
    if (this.isFinal(e.info.state)) return;
    if (e.killTimer) clearTimeout(e.killTimer);
    e.info.state = state;
    if (error) e.info.error = error;
    this.emitState(id);
    e.settle(structuredClone(e.info));
    if (this.running === id) {
      this.running = null;
      // Let a cancelled process go after its grace period; a finished one exits by itself.
      setImmediate(() => this.pump());
    }
  }

  private emitState(id: string): void {
    this.emit({ type: 'state', job: this.get(id) });
  }

  private emit(e: JobEvent): void {
    for (const l of this.listeners) l(e);
  }
}
