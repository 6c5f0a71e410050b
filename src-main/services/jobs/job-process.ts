/**
 * Entry point of a job process. Works as a Node child process (process.send) and as an Electron utility
 * process (process.parentPort). Long work runs here so onnxruntime's blocking run() and any native crash
 * stay away from the window.
 */
import type { HostToJob, JobToHost } from './protocol';
import type { JobContext } from './context';
import { jobKinds } from './kinds';
import { plainEngineError } from '../../engine/memory/oom';
import { CancelledError } from '../../util/progress';
import { onTerminate } from '../../util/signals';

interface ParentPortLike {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (e: { data: unknown }) => void): void;
}

const parentPort = (process as unknown as { parentPort?: ParentPortLike }).parentPort;

function send(message: JobToHost): void {
  if (parentPort) parentPort.postMessage(message);
  else process.send?.(message);
}

function onMessage(listener: (m: HostToJob) => void): void {
  if (parentPort) parentPort.on('message', (e) => listener(e.data as HostToJob));
  else process.on('message', (m) => listener(m as HostToJob));
}

const abort = new AbortController();
let running = false;
let paused = false;
let wake: (() => void) | null = null;

function toApiError(err: unknown): { code: string; message: string; hint?: string } {
  // engine failures in plain words (out of memory, onnxruntime, internal bug), never a bare JS message
  const u = plainEngineError(err);
  return { code: u.code, message: u.message, ...(u.hint ? { hint: u.hint } : {}) };
}

async function runJob(jobId: string, request: HostToJob & { type: 'start' }): Promise<void> {
  running = true;
  const ctx: JobContext = {
    jobId,
    secrets: request.secrets ?? {},
    signal: abort.signal,
    onProgress: (r) => send({ type: 'progress', ...r }),
    onLog: (level, message) => send({ type: 'log', level, message }),
    metric: (metric) => send({ type: 'metric', metric }),
    text: (stream, text) => send({ type: 'text', stream, text }),
    checkpoint: async () => {
      if (abort.signal.aborted) throw new CancelledError();
      if (paused) {
        send({ type: 'paused' });
        await new Promise<void>((resolve) => { wake = resolve; });
        if (abort.signal.aborted) throw new CancelledError();
        send({ type: 'resumed' });
      }
    },
  };
  const handler = jobKinds[request.request.kind] as (p: unknown, c: JobContext) => Promise<unknown>;
  try {
    const result = await handler(request.request.params, ctx);
    if (abort.signal.aborted) send({ type: 'cancelled' });
    else send({ type: 'done', result: result ?? null });
  } catch (err) {
    if (err instanceof CancelledError || abort.signal.aborted) send({ type: 'cancelled' });
    else send({ type: 'failed', error: toApiError(err) });
  }
  // Give the IPC channel a moment to flush, then leave.
  setTimeout(() => process.exit(0), 50);
}

onMessage((m) => {
  switch (m.type) {
    case 'start':
      void runJob(m.jobId, m);
      break;
    case 'cancel':
      abort.abort();
      wake?.();
      break;
    case 'pause':
      paused = true;
      break;
    case 'resume':
      paused = false;
      wake?.();
      wake = null;
      break;
  }
});

// SIGTERM/SIGHUP/SIGINT sent to the job process itself: cancel as the host's cancel does, so the job
// removes its work folders and temp files; with no job running there is nothing to clean, so leave.
onTerminate(() => {
  if (!running) process.exit(0);
  abort.abort();
  wake?.();
});

// If the host dies (app crash, CLI killed), stop at once: an orphan must not keep training and writing
// checkpoints behind a later resume's back. Work is safe up to the last checkpoint.
if (!parentPort) process.on('disconnect', () => process.exit(70));

send({ type: 'ready' });
