import { describe, expect, it } from 'vitest';
import type { JobEvent } from '../../../src-main/contract';
import { JobHost } from '../../../src-main/services/jobs/host';
import { spawnNodeJobProcess } from '../../../src-main/services/jobs/node-process';

function collect(host: JobHost): JobEvent[] {
  const events: JobEvent[] = [];
  host.onEvent((e) => events.push(e));
  return events;
}

const states = (events: JobEvent[], id: string) =>
  events.filter((e): e is Extract<JobEvent, { type: 'state' }> => e.type === 'state' && e.job.id === id).map((e) => e.job.state);

describe('job host', () => {
  it('refuses new jobs once 100 are waiting (a flood of starts cannot queue without end)', () => {
    // A process that never answers: the first job keeps running, the rest wait.
    const host = new JobHost(() => ({ send: () => {}, onMessage: () => {}, onExit: () => {}, stderrTail: () => '', kill: () => {} }));
    const req = { kind: 'selftest', params: { steps: 1, intervalMs: 0 } } as const;
    for (let i = 0; i < 101; i++) host.start(req);
    expect(() => host.start(req)).toThrow(expect.objectContaining({ code: 'jobs.queueFull' }));
    host.cancel(host.list()[1]!.id);
    expect(() => host.start(req)).not.toThrow();
  });

  it('runs a job in its own process, streaming progress and metrics, to done', async () => {
    const host = new JobHost(spawnNodeJobProcess);
    const events = collect(host);
    const id = host.start({ kind: 'selftest', params: { steps: 5, intervalMs: 1 } });
    const final = await host.wait(id);
    expect(final.state).toBe('done');
    expect(final.result).toEqual({ steps: 5 });
    expect(states(events, id)).toEqual(['queued', 'running', 'done']);
    const progress = events.filter((e) => e.type === 'progress');
    expect(progress.length).toBe(5);
    expect(progress.at(-1)).toMatchObject({ fraction: 1, message: 'Step 5 of 5' });
    expect(events.filter((e) => e.type === 'metric').length).toBe(5);
  });

  it('queues a second job behind the first, and cancels a running one', async () => {
    const host = new JobHost(spawnNodeJobProcess);
    const events = collect(host);
    const a = host.start({ kind: 'selftest', params: { steps: 1000, intervalMs: 20 } });
    const b = host.start({ kind: 'selftest', params: { steps: 2, intervalMs: 0 } });
    expect(host.get(b).state).toBe('queued');
    await new Promise<void>((resolve) => {
      const off = host.onEvent((e) => { if (e.type === 'progress' && e.jobId === a) { off(); resolve(); } });
    });
    host.cancel(a);
    expect((await host.wait(a)).state).toBe('cancelled');
    expect((await host.wait(b)).state).toBe('done');
    expect(states(events, a)).toEqual(['queued', 'running', 'cancelled']);
  });

  it('pauses and resumes', async () => {
    const host = new JobHost(spawnNodeJobProcess);
    const events = collect(host);
    const id = host.start({ kind: 'selftest', params: { steps: 200, intervalMs: 10 } });
    await new Promise<void>((resolve) => {
      const off = host.onEvent((e) => { if (e.type === 'progress' && e.jobId === id) { off(); resolve(); } });
    });
    host.pause(id);
    await new Promise<void>((resolve) => {
      const off = host.onEvent((e) => { if (e.type === 'state' && e.job.state === 'paused') { off(); resolve(); } });
    });
    const before = events.filter((e) => e.type === 'progress').length;
    await new Promise((r) => setTimeout(r, 300));
    expect(events.filter((e) => e.type === 'progress').length).toBe(before); // no work while paused
    const resumed = new Promise<void>((resolve) => {
      const off = host.onEvent((e) => { if (e.type === 'progress' && e.jobId === id) { off(); resolve(); } });
    });
    host.resume(id);
    await resumed; // work continues after resume
    host.cancel(id);
    expect((await host.wait(id)).state).toBe('cancelled');
    expect(states(events, id)).toEqual(['queued', 'running', 'paused', 'running', 'cancelled']);
  });

  it('reports a failing job with its plain-words error', async () => {
    const host = new JobHost(spawnNodeJobProcess);
    const id = host.start({ kind: 'selftest', params: { steps: 5, intervalMs: 0, failAtStep: 2 } });
    const final = await host.wait(id);
    expect(final.state).toBe('failed');
    expect(final.error).toMatchObject({ code: 'selftest.failed' });
  });

  it('survives a crash of the job process and reports it', async () => {
    const host = new JobHost(spawnNodeJobProcess);
    const crashed = host.start({ kind: 'selftest', params: { steps: 5, intervalMs: 0, crashAtStep: 3 } });
    const final = await host.wait(crashed);
    expect(final.state).toBe('failed');
    expect(final.error?.code).toBe('jobs.crashed');
    expect(final.error?.message).toMatch(/stopped unexpectedly/);
    // the host keeps working after the crash
    const next = host.start({ kind: 'selftest', params: { steps: 1, intervalMs: 0 } });
    expect((await host.wait(next)).state).toBe('done');
  });
});
