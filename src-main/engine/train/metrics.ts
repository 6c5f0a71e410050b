/**
 * Metrics persisted as JSON lines (one object per event), appended as training goes. A crash can leave a
 * torn last line: the reader skips lines that do not parse, so a run's history always reloads.
 */
import { appendFileSync, existsSync, readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export interface MetricRecord {
  /** 'train' per optimizer step, 'val' per evaluation, 'event' for notes (resume, rollback...). */
  kind: 'train' | 'val' | 'event';
  step: number;
  time: string;
  [key: string]: number | string;
}

export class MetricsLog {
  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
  }

  append(record: Omit<MetricRecord, 'time'> & { time?: string }): MetricRecord {
    const full = { time: new Date().toISOString(), ...record } as MetricRecord;
    appendFileSync(this.file, JSON.stringify(full) + '\n');
    return full;
  }

  /** Every record that parses; with `upToStep`, drops records after that step (used on resume). */
  static read(file: string, upToStep?: number): MetricRecord[] {
    if (!existsSync(file)) return [];
    const out: MetricRecord[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as MetricRecord;
        if (upToStep === undefined || r.step <= upToStep) out.push(r);
      } catch {
        // a torn line from a crash mid-write
      }
    }
    return out;
  }
}
