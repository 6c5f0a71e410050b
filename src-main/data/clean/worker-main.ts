/**
 * Cleaning worker thread: runs the pure per-document analysis (clean/analyze.ts) on batches of texts
 * for CleanPool. Holds no order-dependent state; the pool's owner applies the results in order.
 */
import { parentPort } from 'node:worker_threads';
import { analyzeContext, analyzeFirst, analyzeSecond, type AnalyzeContext } from './analyze';
import type { FromCleanWorker, ToCleanWorker } from './pool';

const port = parentPort;
if (!port) throw new Error('clean/worker-main.ts must be started as a worker thread (use CleanPool).');
let ctx: AnalyzeContext | null = null;

port.on('message', (m: ToCleanWorker) => {
  try {
    if (m.t === 'init') { ctx = analyzeContext(m.cfg, m.seed); return; }
    if (!ctx) throw new Error('cleaning worker used before init');
    if (m.t === 'boiler') { ctx.boiler = m.hashes ? new Set(m.hashes) : null; return; }
    if (m.t === 'first') {
      const cfg = ctx.cfg;
      // Unchanged texts are not sent back (null): the caller still has them.
      const results = m.texts.map((text) => { const r = analyzeFirst(text, cfg); return { text: r.text === text ? null : r.text, lines: r.lines }; });
      port.postMessage({ id: m.id, first: results } satisfies FromCleanWorker);
      return;
    }
    const c = ctx;
    const results = m.texts.map((text) => analyzeSecond(text, c));
    const transfer = results.flatMap((r) => (r.sig ? [r.sig.buffer as ArrayBuffer] : []));
    port.postMessage({ id: m.id, second: results } satisfies FromCleanWorker, transfer);
  } catch (e) {
    port.postMessage({ id: 'id' in m ? m.id : -1, error: (e as Error).stack ?? String(e) } satisfies FromCleanWorker);
  }
});
