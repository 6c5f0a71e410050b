/**
 * Metrics persisted as JSON lines (one object per event), appended as training goes. A crash can leave a
 * torn last line: the reader skips lines that do not parse, so a run's history always reloads.
 */
import { appendFileSync, existsSync, readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomicSync } from '../../util/atomic';

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

  /**
   * The run's history: every record that parses, with the steps re-run after a crash counted once
   * (dedupeHistory); with `upToStep`, drops records after that step.
   */
  static read(file: string, upToStep?: number): MetricRecord[] {
    const out = dedupeHistory(MetricsLog.readRaw(file));
    return upToStep === undefined ? out : out.filter((r) => r.step <= upToStep);
  }

  /** Every record that parses, as written (a torn last line from a crash mid-write is skipped). */
  static readRaw(file: string): MetricRecord[] {
    if (!existsSync(file)) return [];
    const out: MetricRecord[] = [];
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as MetricRecord;
        if (r && typeof r === 'object' && typeof r.step === 'number') out.push(r);
      } catch {
        // a torn line from a crash mid-write
      }
    }
    return out;
  }

  /**
   * On resume from the checkpoint at `step`: the records of later steps belong to the crashed attempt,
   * which the resumed run repeats. Rewritten atomically (temp + rename) keeping steps up to `step`.
   * Returns how many records were dropped.
   */
  static truncateAfter(file: string, step: number): number {
    const all = MetricsLog.readRaw(file);
    const kept = all.filter((r) => r.step <= step);
    if (kept.length === all.length && !existsSync(file)) return 0;
    writeFileAtomicSync(file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    return all.length - kept.length;
  }
}

/**
 * History as it should be shown after crashes and resumes, also for files written before resumes
 * truncated them: a `resumed` event at step M drops the earlier records of steps after M; then each
 * train record (by step) and val record (by step and split) is kept once, the last written.
 */
export function dedupeHistory(records: MetricRecord[]): MetricRecord[] {
  let list: MetricRecord[] = [];
  for (const r of records) {
    if (r.kind === 'event' && r['event'] === 'resumed') list = list.filter((x) => x.step <= r.step);
    list.push(r);
  }
  const key = (r: MetricRecord): string | null => (r.kind === 'train' ? `t${r.step}` : r.kind === 'val' ? `v${r.step}:${String(r['split'])}` : null);
  const last = new Map<string, number>();
  list.forEach((r, i) => { const k = key(r); if (k !== null) last.set(k, i); });
  return list.filter((r, i) => { const k = key(r); return k === null || last.get(k) === i; });
}
