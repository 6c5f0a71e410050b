/** Live view of jobs, fed by the job event stream. */
import type { JobEvent, JobInfo } from '../../src-main/contract';
import { api } from '../lib/api';

export interface JobView extends JobInfo {
  logs: { level: string; message: string }[];
  metrics: Record<string, number>[];
}

class JobsStore {
  byId: Record<string, JobView> = $state({});

  constructor() {
    api.on('job', (e: JobEvent) => this.apply(e));
  }

  get list(): JobView[] {
    return Object.values(this.byId).sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  }

  private apply(e: JobEvent): void {
    if (e.type === 'state') {
      const prev = this.byId[e.job.id];
      this.byId[e.job.id] = { ...e.job, logs: prev?.logs ?? [], metrics: prev?.metrics ?? [] };
      return;
    }
    const job = this.byId[e.jobId];
    if (!job) return;
    if (e.type === 'progress') job.progress = { fraction: e.fraction, stage: e.stage, message: e.message };
    else if (e.type === 'log') job.logs.push({ level: e.level, message: e.message });
    else if (e.type === 'metric') job.metrics.push(e.metric);
  }
}

export const jobs = new JobsStore();
