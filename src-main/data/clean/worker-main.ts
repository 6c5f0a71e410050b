/**
 * Cleaning worker thread: runs the pure per-document analysis (clean/analyze.ts) on batches for
 * CleanPool. Holds no order-dependent state; the pool's owner applies the results in order.
 */
import { readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { decodeRecordTexts } from '../spool';
import { analyzeContext, analyzeFirst, analyzeSecond, decodeFirstExtra, encodeFirstExtra, encodeTexts, summarizeFirst, summarizeSecond, type AnalyzeContext } from './analyze';
import type { FromCleanWorker, ToCleanWorker } from './pool';

const port = parentPort;
if (!port) throw new Error('clean/worker-main.ts must be started as a worker thread (use CleanPool).');
lowerThreadPriority(5);

/**
 * The calling thread feeds every worker and applies their results in order: when it waits for a
 * core, all of them wait. On Linux a thread's nice value is its own, so the workers step back a
 * little and use what the calling thread leaves. Elsewhere (or when not allowed) nothing changes.
 */
function lowerThreadPriority(by: number): void {
  if (process.platform !== 'linux' || !(by > 0)) return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (tid > 0) setPriority(tid, Math.min(19, getPriority(tid) + by));
  } catch { /* no /proc or not permitted: keep the default priority */ }
}
let ctx: AnalyzeContext | null = null;

port.on('message', (m: ToCleanWorker) => {
  try {
    if (m.t === 'init') { ctx = analyzeContext(m.cfg, m.seed); return; }
    if (m.t === 'exit') { port.close(); return; }
    if (!ctx) throw new Error('cleaning worker used before init');
    if (m.t === 'boiler') { ctx.boiler = m.hashes ? new Set(m.hashes) : null; return; }
    const c = ctx;
    if (m.t === 'first') {
      const outs: (string | null)[] = [];
      const extra: (Uint8Array | null)[] = [];
      const summaries = m.texts.map((text) => {
        const r = analyzeFirst(text, c.cfg);
        const s = summarizeFirst(text, r);
        outs.push(s.empty ? null : r.text);
        // Pass 2 reads these from the spool record (its workers then hash most texts' lines no more).
        extra.push(s.empty ? null : encodeFirstExtra(r.lines, r.dupLines));
        return s;
      });
      const texts = encodeTexts(outs);
      const extras = encodeTexts(extra);
      port.postMessage({ id: m.id, first: { summaries, texts, extras } } satisfies FromCleanWorker, [texts.bytes.buffer as ArrayBuffer, extras.bytes.buffer as ArrayBuffer]);
      return;
    }
    const outs: (string | Uint8Array | null)[] = [];
    const transfer: ArrayBuffer[] = [];
    const input = decodeRecordTexts(m.records);
    const summaries = input.texts.map((text, i) => {
      const { summary, final } = summarizeSecond(text, analyzeSecond(text, c, decodeFirstExtra(input.extras[i]!) ?? undefined));
      // Most texts leave unchanged: their bytes are copied, not encoded again.
      outs.push(final === text ? input.bytes[i]! : final);
      if (summary.sig) transfer.push(summary.sig.buffer as ArrayBuffer);
      return summary;
    });
    const texts = encodeTexts(outs);
    transfer.push(texts.bytes.buffer as ArrayBuffer);
    port.postMessage({ id: m.id, second: { summaries, texts } } satisfies FromCleanWorker, transfer);
  } catch (e) {
    port.postMessage({ id: 'id' in m ? m.id : -1, error: (e as Error).stack ?? String(e) } satisfies FromCleanWorker);
  }
});
