/**
 * Cleaning in parallel: worker threads run the per-document analysis (normalization, line hashes,
 * boilerplate removal, quality, language, content hash, PII, MinHash signature) on batches of
 * documents; the calling thread reads the input, applies the results in document order (counts,
 * examples, exact and near-dedup) and writes the output. Results are identical to the one-thread
 * path because both run the same analysis functions and the same ordered apply step.
 *
 * Texts travel as UTF-8 bytes wherever the calling thread does not need them as strings: pass 1's
 * workers return the normalized texts encoded (written to the spool as they are), pass 2 sends spool
 * records undecoded and gets the cleaned texts back encoded. The calling thread (the bottleneck on
 * a 2-core machine) then neither decodes nor encodes the corpus, and nothing is copied to transfer it.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import type { CleanConfig } from '../config';
import { readSpool, readSpoolBatches, type SpoolWriter } from '../spool';
import type { Doc } from '../types';
import type { Cleaner } from './pipeline';
import type { AnalyzeContext, FirstSummary, SecondSummary } from './analyze';
import { startWorker } from '../../util/worker';

export type ToCleanWorker =
  | { t: 'init'; cfg: CleanConfig; seed: number }
  | { t: 'exit' }
  | { t: 'boiler'; hashes: number[] | null }
  | { t: 'first'; id: number; texts: string[] }
  | { t: 'second'; id: number; records: Uint8Array };

/** Texts as UTF-8 in one buffer; text i is bytes [ends[i-1], ends[i]). */
export interface EncodedTexts { bytes: Uint8Array; ends: Uint32Array }

export type FromCleanWorker =
  | { id: number; first: { summaries: FirstSummary[]; texts: EncodedTexts; extras: EncodedTexts } }
  | { id: number; second: { summaries: SecondSummary[]; texts: EncodedTexts } }
  | { id: number; error: string };

/** Characters (pass 1) or bytes (pass 2) per batch sent to a worker: enough to amortize messaging, little memory. */
const BATCH = 1 << 19;

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

  private request(m: { t: 'first'; texts: string[] } | { t: 'second'; records: Uint8Array }): Promise<FromCleanWorker> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    const w = this.workers[this.turn++ % this.workers.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ ...m, id } as ToCleanWorker, m.t === 'second' ? [m.records.buffer as ArrayBuffer] : []);
    });
  }

  /** Pass 1 over a batch: summaries, the normalized texts encoded, and each one's extra bytes for the spool. */
  async first(texts: string[]): Promise<{ summaries: FirstSummary[]; texts: EncodedTexts; extras: EncodedTexts }> {
    const m = await this.request({ t: 'first', texts });
    if (!('first' in m)) throw new Error('cleaning thread: unexpected reply');
    return m.first;
  }

  /** Hands pass 2's context (the boilerplate lines) to every worker; call once, before second(). */
  setContext(ctx: AnalyzeContext): void {
    const hashes = ctx.boiler ? [...ctx.boiler] : null;
    for (const w of this.workers) w.postMessage({ t: 'boiler', hashes } satisfies ToCleanWorker);
  }

  /** Pass 2 over spool records (transferred: `records` is unusable afterwards): summaries and cleaned texts encoded. */
  async second(records: Uint8Array): Promise<{ summaries: SecondSummary[]; texts: EncodedTexts }> {
    const m = await this.request({ t: 'second', records });
    if (!('second' in m)) throw new Error('cleaning thread: unexpected reply');
    return m.second;
  }

  /** Stops the threads: they finish and exit (terminated after a second if they do not). */
  async close(): Promise<void> {
    this.fail(new Error('The cleaning threads were stopped.'));
    await Promise.all(this.workers.map(async (w) => {
      const exited = new Promise<void>((res) => w.once('exit', () => res()));
      w.postMessage({ t: 'exit' } satisfies ToCleanWorker);
      const timer = setTimeout(() => void w.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    }));
  }
}

/** Bytes of text i of an EncodedTexts. */
function slice(t: EncodedTexts, i: number): Uint8Array {
  return t.bytes.subarray(i ? t.ends[i - 1]! : 0, t.ends[i]!);
}

/**
 * Runs `analyze` on each batch with up to `inFlight` batches under way, and yields each batch with
 * its result in input order.
 */
async function* inOrder<B, R>(batches: AsyncIterable<B>, analyze: (b: B) => Promise<R>, inFlight: number): AsyncGenerator<[B, R]> {
  const queue: { batch: B; result: Promise<R> }[] = [];
  for await (const batch of batches) {
    const result = analyze(batch);
    result.catch(() => undefined); // rejections surface when the batch is awaited below
    queue.push({ batch, result });
    while (queue.length >= inFlight) { const h = queue.shift()!; yield [h.batch, await h.result]; }
  }
  while (queue.length) { const h = queue.shift()!; yield [h.batch, await h.result]; }
}

/**
 * Documents in batches of about BATCH characters: the texts (to send to a worker) and what the
 * ordered apply step needs of them. The caller drops `texts` once they are sent, so the strings die
 * young instead of being promoted while the batch waits for its result (that was most of the
 * calling thread's garbage-collection time).
 */
async function* docBatches(docs: AsyncIterable<Doc>): AsyncGenerator<{ texts: string[]; sources: string[]; lengths: number[] }> {
  let texts: string[] = [], sources: string[] = [], lengths: number[] = [];
  let chars = 0;
  for await (const d of docs) {
    texts.push(d.text);
    sources.push(d.source);
    lengths.push(d.text.length);
    chars += d.text.length;
    if (chars >= BATCH) { yield { texts, sources, lengths }; texts = []; sources = []; lengths = []; chars = 0; }
  }
  if (texts.length) yield { texts, sources, lengths };
}

/**
 * Pass 1 of `cleaner` (normalization, boilerplate line counts) over `docs`, writing the documents it
 * keeps to `out` in order. `onDoc` is called after each input document (progress).
 */
export async function cleanFirstPass(cleaner: Cleaner, docs: AsyncIterable<Doc>, pool: CleanPool | null, out: SpoolWriter, onDoc?: () => void): Promise<void> {
  if (!pool) {
    for await (const d of docs) {
      const x = cleaner.first(d);
      if (x) { const p = out.write(x); if (p) await p; }
      onDoc?.();
    }
    return;
  }
  const send = (b: { texts: string[] }): ReturnType<CleanPool['first']> => {
    const sent = pool.first(b.texts);
    b.texts = [];
    return sent;
  };
  for await (const [batch, r] of inOrder(docBatches(docs), send, pool.threads * 4)) {
    for (let i = 0; i < batch.sources.length; i++) {
      const source = batch.sources[i]!, s = r.summaries[i]!;
      if (cleaner.applyFirst(source, batch.lengths[i]!, s)) { const p = out.writeRaw(source, slice(r.texts, i), s.length, slice(r.extras, i)); if (p) await p; }
      onDoc?.();
    }
  }
}

/** A document pass 2 kept: its cleaned text as UTF-8 (from a worker) or as a string. */
export interface KeptDoc {
  source: string;
  /** Length of the cleaned text as a string. */
  length: number;
  bytes?: Uint8Array;
  text(): string;
}

/** Writes a kept document to a spool (its bytes as they are when a worker encoded them); returns as SpoolWriter.write does. */
export function writeKept(out: SpoolWriter, k: KeptDoc): Promise<void> | undefined {
  return k.bytes ? out.writeRaw(k.source, k.bytes, k.length) : out.write({ source: k.source, text: k.text() });
}

/**
 * Pass 2 of `cleaner` over the spool pass 1 wrote: `onDoc` gets each document in order, the kept
 * ones cleaned, the removed ones as null. It returns a promise only when it must be waited for
 * (writeKept's way), so most documents cost no asynchronous round trip.
 */
export async function cleanSecondPass(cleaner: Cleaner, spool: string, pool: CleanPool | null, onDoc: (k: KeptDoc | null) => Promise<void> | undefined): Promise<void> {
  if (!pool) {
    for await (const d of readSpool(spool)) {
      const x = cleaner.second(d);
      const p = onDoc(x ? { source: x.source, length: x.text.length, text: () => x.text } : null);
      if (p) await p;
    }
    return;
  }
  pool.setContext(cleaner.analyzeContext());
  const decoder = new TextDecoder();
  for await (const [batch, r] of inOrder(readSpoolBatches(spool, BATCH), (b) => pool.second(b.records), pool.threads * 4)) {
    for (let i = 0; i < batch.sources.length; i++) {
      const s = r.summaries[i]!;
      const bytes = slice(r.texts, i);
      const text = (): string => decoder.decode(bytes);
      const kept = cleaner.applySecond(batch.sources[i]!, s, text);
      const p = onDoc(kept ? { source: batch.sources[i]!, length: s.pii?.length ?? s.boiler?.length ?? s.length, bytes, text } : null);
      if (p) await p;
    }
  }
}

/** Worker threads worth starting for a corpus of `bytes`: none for small ones (start-up costs ~0.1 s). */
export function autoThreads(bytes: number): number {
  return bytes < 16 * 1024 * 1024 ? 0 : Math.max(1, Math.min(availableParallelism(), 8));
}
