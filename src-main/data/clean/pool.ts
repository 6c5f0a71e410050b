/**
 * Cleaning in parallel: worker threads run the per-document analysis (normalization, line hashes,
 * boilerplate removal, quality, language, content hash, PII, MinHash signature) on batches of
 * documents; the calling thread reads the input, applies the results in document order (counts,
 * examples, exact and near-dedup) and writes the output. Results are identical to the one-thread
 * path because both run the same analysis functions and the same ordered apply step.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { CleanConfig } from '../config';
import type { Doc } from '../types';
import type { Cleaner } from './pipeline';
import { analyzeFirst, analyzeSecond, type AnalyzeContext, type FirstResult, type SecondResult } from './analyze';
import { startWorker } from '../../util/worker';

export type ToCleanWorker =
  | { t: 'init'; cfg: CleanConfig; seed: number }
  | { t: 'boiler'; hashes: number[] | null }
  | { t: 'first'; id: number; texts: string[] }
  | { t: 'second'; id: number; texts: string[] };

export type FromCleanWorker =
  | { id: number; first: { text: string | null; lines: number[] | null }[] }
  | { id: number; second: SecondResult[] }
  | { id: number; error: string };

/** Characters per batch sent to a worker: large enough to amortize messaging, small enough to keep memory flat. */
const BATCH_CHARS = 1 << 19;

export class CleanPool {
  private readonly pending = new Map<number, { resolve: (m: FromCleanWorker) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;
  private failed: Error | null = null;

  private constructor(private readonly workers: Worker[]) {
    for (const w of workers) {
      w.on('message', (m: FromCleanWorker) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if ('error' in m) p.reject(new Error(`A cleaning thread failed: ${m.error}`));
        else p.resolve(m);
      });
      w.on('error', (e) => this.fail(new Error(`A cleaning thread crashed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => { if (code !== 0) this.fail(new Error(`A cleaning thread exited (code ${code}).`)); });
    }
  }

  /** Starts `threads` workers with the cleaning settings (the seed fixes the MinHash functions). */
  static start(cfg: CleanConfig, seed: number, threads: number): CleanPool {
    const workers: Worker[] = [];
    for (let i = 0; i < threads; i++) {
      const w = startWorker(import.meta.url, './worker-main.ts', 'clean-worker');
      w.postMessage({ t: 'init', cfg, seed } satisfies ToCleanWorker);
      workers.push(w);
    }
    return new CleanPool(workers);
  }

  get threads(): number { return this.workers.length; }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private request(m: { t: 'first' | 'second'; texts: string[] }): Promise<FromCleanWorker> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...m, id } as ToCleanWorker);
    });
  }

  async first(texts: string[]): Promise<FirstResult[]> {
    const m = await this.request({ t: 'first', texts });
    if (!('first' in m)) throw new Error('cleaning thread: unexpected reply');
    return m.first.map((r, i) => ({ text: r.text ?? texts[i]!, lines: r.lines }));
  }

  /** Hands pass 2's context (the boilerplate lines) to every worker; call once, before second(). */
  setContext(ctx: AnalyzeContext): void {
    const hashes = ctx.boiler ? [...ctx.boiler] : null;
    for (const w of this.workers) w.postMessage({ t: 'boiler', hashes } satisfies ToCleanWorker);
  }

  async second(texts: string[]): Promise<SecondResult[]> {
    const m = await this.request({ t: 'second', texts });
    if (!('second' in m)) throw new Error('cleaning thread: unexpected reply');
    return m.second;
  }

  async close(): Promise<void> {
    this.fail(new Error('The cleaning threads were stopped.'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Runs `analyze` over batches of `docs` and yields each document with its result, in input order.
 * Up to `inFlight` batches are being analyzed while the caller consumes earlier ones.
 */
export async function* analyzeInOrder<R>(
  docs: AsyncIterable<Doc>,
  analyze: (texts: string[]) => Promise<R[]>,
  inFlight: number,
): AsyncGenerator<[Doc, R]> {
  const queue: { docs: Doc[]; results: Promise<R[]> }[] = [];
  let batch: Doc[] = [];
  let chars = 0;
  const submit = (): void => {
    const texts = batch.map((d) => d.text);
    const results = analyze(texts);
    results.catch(() => undefined); // rejections surface when the batch is awaited below
    queue.push({ docs: batch, results });
    batch = [];
    chars = 0;
  };
  for await (const d of docs) {
    batch.push(d);
    chars += d.text.length;
    if (chars >= BATCH_CHARS) {
      submit();
      while (queue.length >= inFlight) {
        const head = queue.shift()!;
        const rs = await head.results;
        for (let i = 0; i < head.docs.length; i++) yield [head.docs[i]!, rs[i]!];
      }
    }
  }
  if (batch.length) submit();
  while (queue.length) {
    const head = queue.shift()!;
    const rs = await head.results;
    for (let i = 0; i < head.docs.length; i++) yield [head.docs[i]!, rs[i]!];
  }
}

/** The analysis functions for a pool, or in the calling thread when there is none. */
export function analyzers(pool: CleanPool | null, cfg: CleanConfig, ctx: () => AnalyzeContext): {
  first: (texts: string[]) => Promise<FirstResult[]>;
  second: (texts: string[]) => Promise<SecondResult[]>;
} {
  if (pool) return { first: (t) => pool.first(t), second: (t) => pool.second(t) };
  return {
    first: async (t) => t.map((x) => analyzeFirst(x, cfg)),
    second: async (t) => { const c = ctx(); return t.map((x) => analyzeSecond(x, c)); },
  };
}

/**
 * Runs one cleaning pass of `cleaner` over `docs`, yielding per input document its output (null when
 * removed), in order. Pass 2 fixes the boilerplate lines counted in pass 1.
 */
export async function* cleanPass(pass: 1 | 2, cleaner: Cleaner, docs: AsyncIterable<Doc>, pool: CleanPool | null): AsyncGenerator<Doc | null> {
  const a = analyzers(pool, cleaner.cfg, () => cleaner.analyzeContext());
  const inFlight = pool ? pool.threads * 2 : 1;
  if (pass === 1) {
    for await (const [d, r] of analyzeInOrder(docs, a.first, inFlight)) yield cleaner.applyFirst(d, r);
  } else {
    if (pool) pool.setContext(cleaner.analyzeContext());
    for await (const [d, r] of analyzeInOrder(docs, a.second, inFlight)) yield cleaner.applySecond(d, r);
  }
}

/** Worker threads worth starting for a corpus of `bytes`: none for small ones (start-up costs ~0.1 s). */
export function autoThreads(bytes: number): number {
  return bytes < 16 * 1024 * 1024 ? 0 : Math.max(1, Math.min(availableParallelism(), 8));
}
