/** Live view of jobs, fed by the job event stream. */
import type { JobEvent, JobInfo } from '../../src-main/contract';
import { api } from '../lib/api';

export interface JobView extends JobInfo {
  logs: { level: string; message: string }[];
  /** Metric events so far (reactive count; the values live outside the reactive state, see metricsOf). */
  metricCount: number;
  /** Generated text so far, per stream (chat jobs: 'base', 'tuned', 'gguf'). */
  texts: Record<string, string>;
}

class JobsStore {
  byId: Record<string, JobView> = $state({});
  // A fast trainer sends hundreds of metric events a second: keeping them out of reactive state means a
  // new metric costs one counter update, and views read the values when they choose to (throttled).
  private metrics = new Map<string, Record<string, number>[]>();

  constructor() {
    api.on('job', (e: JobEvent) => this.apply(e));
    // After a reload, jobs that were already running are known only to main: ask once.
    void api['jobs.list']({}).then((list) => {
      for (const j of list) if (!this.byId[j.id]) this.byId[j.id] = { ...j, logs: [], metricCount: 0, texts: {} };
    }).catch(() => undefined);
  }

  get list(): JobView[] {
    return Object.values(this.byId).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  /** Every metric event of a job, oldest first (not reactive: pair it with `metricCount` or a timer). */
  metricsOf(jobId: string): Record<string, number>[] {
    return this.metrics.get(jobId) ?? [];
  }

  private apply(e: JobEvent): void {
    if (e.type === 'state') {
      const prev = this.byId[e.job.id];
      this.byId[e.job.id] = { ...e.job, logs: prev?.logs ?? [], metricCount: prev?.metricCount ?? 0, texts: prev?.texts ?? {} };
      return;
    }
    const job = this.byId[e.jobId];
    if (!job) return;
    if (e.type === 'progress') job.progress = { fraction: e.fraction, stage: e.stage, message: e.message };
    else if (e.type === 'log') job.logs.push({ level: e.level, message: e.message });
    else if (e.type === 'text') job.texts[e.stream] = (job.texts[e.stream] ?? '') + e.text;
    else if (e.type === 'metric') {
      const list = this.metrics.get(e.jobId) ?? [];
      list.push(e.metric);
      this.metrics.set(e.jobId, list);
      job.metricCount = list.length;
    }
  }
}

export const jobs = new JobsStore();
