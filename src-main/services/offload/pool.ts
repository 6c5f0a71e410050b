/**
 * A small pool of worker threads for the calls that may run long on their input (offload/limits.ts). The
 * thread that serves the window (Electron's main process, the bridge) only waits: a task over its time limit
 * has its worker terminated and is answered with a plain error; a worker that runs out of memory or dies
 * answers the same way; the next call starts a fresh worker.
 */
import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../util/worker';
import { UserError } from '../../util/progress';
import { TASK_LIMITS, type TaskName } from './limits';

export type ToWorker = { id: number; task: TaskName; input: unknown };
export type FromWorker =
  | { ready: true }
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: { user: boolean; code: string; message: string; hint?: string | undefined } };

/** Workers running at once; more calls wait (at most MAX_WAITING of them, then `work.busy`). */
const MAX_WORKERS = 2;
const MAX_WAITING = 64;
/** Loading the worker's modules (tsx in development) may take a while on a busy machine. */
const START_LIMIT_MS = 60_000;
/** A runaway template builds strings: it hits this heap limit in the worker, not the app's. */
const WORKER_HEAP_MB = 2048;

interface Slot {
  worker: Worker;
  ready: Promise<void>;
  onReply: ((m: FromWorker) => void) | null;
  onDeath: ((err: Error) => void) | null;
  dead: boolean;
}

export interface PoolOptions {
  /** Override time limits (tests). */
  limitsMs?: Partial<Record<TaskName, number>>;
  maxWorkers?: number;
}

export class OffloadPool {
  private readonly idle: Slot[] = [];
  private readonly waiting: ((s: Slot) => void)[] = [];
  private live = 0;
  private nextId = 1;
  private closed = false;

  constructor(private readonly opts: PoolOptions = {}) {}

  async run(task: TaskName, input: unknown): Promise<unknown> {
    const slot = await this.acquire();
    const limit = this.opts.limitsMs?.[task] ?? TASK_LIMITS[task].ms;
    const id = this.nextId++;
    try {
      return await new Promise<unknown>((resolve, reject) => {
        const timer = setTimeout(() => {
          this.kill(slot);
          const t = TASK_LIMITS[task];
          reject(new UserError('work.timeLimit', `${t.what} took longer than ${fmtSeconds(limit)} and was stopped.`, t.hint));
        }, limit);
        slot.onDeath = (err) => { clearTimeout(timer); reject(err); };
        slot.onReply = (m) => {
          if (!('id' in m) || m.id !== id) return;
          clearTimeout(timer);
          if (m.ok) resolve(m.value);
          else reject(m.error.user ? new UserError(m.error.code, m.error.message, m.error.hint) : new Error(m.error.message));
        };
        slot.worker.ref();
        slot.worker.postMessage({ id, task, input } satisfies ToWorker);
      });
    } finally {
      slot.onReply = null;
      slot.onDeath = null;
      this.release(slot);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = this.idle.splice(0);
    await Promise.all(all.map((s) => s.worker.terminate()));
  }

  private async acquire(): Promise<Slot> {
    for (;;) {
      const s = this.idle.pop() ?? (this.live < (this.opts.maxWorkers ?? MAX_WORKERS) ? this.spawn() : await this.wait());
      try {
        await s.ready;
        if (!s.dead) return s;
      } catch (err) {
        this.kill(s);
        throw err;
      }
    }
  }

  private wait(): Promise<Slot> {
    if (this.waiting.length >= MAX_WAITING) {
      throw new UserError('work.busy', `Lathe is busy with ${MAX_WAITING} requests already.`, 'Wait a moment and try again.');
    }
    return new Promise((r) => this.waiting.push(r));
  }

  private release(slot: Slot): void {
    if (slot.dead) {
      // Its place is free: start a fresh worker for the next waiting call.
      const next = this.waiting.shift();
      if (next) next(this.spawn());
      return;
    }
    const next = this.waiting.shift();
    if (next) {
      next(slot);
      return;
    }
    slot.worker.unref();
    if (this.closed) void slot.worker.terminate();
    else this.idle.push(slot);
  }

  private spawn(): Slot {
    this.live++;
    const worker = startWorker(import.meta.url, './worker-main.ts', 'offload-worker', { resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    const slot: Slot = { worker, ready: Promise.resolve(), onReply: null, onDeath: null, dead: false };
    slot.ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new UserError('work.startFailed', 'A helper thread of Lathe did not start in time.', 'Try again; if it repeats, restart Lathe.')), START_LIMIT_MS);
      worker.on('message', (m: FromWorker) => {
        if ('ready' in m) { clearTimeout(timer); resolve(); return; }
        slot.onReply?.(m);
      });
      const die = (err: Error) => {
        clearTimeout(timer);
        if (!slot.dead) { slot.dead = true; this.live--; }
        reject(err);
        slot.onDeath?.(err);
      };
      worker.on('error', (err: Error & { code?: string }) => die(err.code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new UserError('work.outOfMemory', 'The request needed more memory than Lathe allows for it and was stopped.', 'A template or file this large cannot be previewed; make it smaller.')
        : err));
      worker.on('exit', (code) => die(new Error(`the helper thread stopped (exit code ${code})`)));
    });
    slot.ready.catch(() => { /* reported to the caller that awaits it */ });
    return slot;
  }

  private kill(slot: Slot): void {
    if (!slot.dead) { slot.dead = true; this.live--; }
    void slot.worker.terminate();
  }
}

function fmtSeconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}
