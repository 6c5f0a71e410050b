/**
 * Quantization in worker threads: a tensor is cut into row chunks (~1 M values) that the workers quantize in
 * parallel; the bytes come back in order. Small tensors are quantized on the calling thread, and the threads
 * start only when the first large tensor arrives (the tiny models never start them).
 *
 * `stream` is what the export uses: elementwise types (F32/F16/BF16) are converted on the calling thread in
 * chunks into two reused buffers, each chunk written while the next is converted (the write runs on libuv's
 * threads), so no tensor-sized output, copy or hand-off exists; block types go through the workers and their
 * chunks are written in order as they come, without joining them first.
 */
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { startWorker } from '../../util/worker';
import { convertRange, isElementwise, quantize } from './quant';
import type { GgmlType } from './format';

const CHUNK_VALUES = 1 << 20;
/** Values per chunk of an elementwise conversion (2 MB of F16 per write). */
const STREAM_VALUES = 1 << 20;

type Reply = { id: number; bytes: Uint8Array } | { id: number; error: string };

export class QuantPool {
  private workers: Worker[] | null = null;
  private readonly pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private turn = 0;
  private failed: Error | null = null;

  constructor(readonly threads = Math.max(1, Math.min(4, availableParallelism()))) {}

  private start(): Worker[] {
    if (this.workers) return this.workers;
    this.workers = [];
    for (let i = 0; i < this.threads; i++) {
      const w = startWorker(import.meta.url, './quant-worker.ts', 'gguf-quant-worker');
      w.on('message', (m: Reply) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        if ('error' in m) p.reject(new Error(`A quantization thread failed: ${m.error}`));
        else p.resolve(m.bytes);
      });
      w.on('error', (e) => this.fail(new Error(`A quantization thread crashed: ${e.message}`, { cause: e })));
      w.on('exit', (code) => { if (code !== 0) this.fail(new Error(`A quantization thread exited (code ${code}).`)); });
      this.workers.push(w);
    }
    return this.workers;
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private run(type: GgmlType, data: Float32Array, rowLen: number): Promise<Uint8Array> {
    if (this.failed) return Promise.reject(this.failed);
    const ws = this.start();
    const id = this.nextId++;
    const w = ws[this.turn++ % ws.length]!;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, type, data, rowLen }, [data.buffer as ArrayBuffer]);
    });
  }

  /** The bytes of `data` (rows of `rowLen`) in `type`. `data` may be detached afterwards. */
  async quantize(type: GgmlType, data: Float32Array, rowLen: number): Promise<Uint8Array> {
    if (this.threads <= 1 || data.length <= CHUNK_VALUES) return quantize(type, data, rowLen);
    const rowsPer = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
    const rows = data.length / rowLen;
    const parts: Array<Promise<Uint8Array>> = [];
    for (let r = 0; r < rows; r += rowsPer) {
      const chunk = data.slice(r * rowLen, Math.min(rows, r + rowsPer) * rowLen); // a copy, transferred
      parts.push(this.run(type, chunk, rowLen));
    }
    const got = await Promise.all(parts);
    const out = new Uint8Array(got.reduce((n, b) => n + b.length, 0));
    let o = 0;
    for (const b of got) { out.set(b, o); o += b.length; }
    return out;
  }

  private buffers: Uint8Array[] | null = null;

  /**
   * Streams the bytes of `data` (rows of `rowLen`) in `type` to `sink`, in order; at most one sink call is
   * pending at a time, and a chunk handed to `sink` stays untouched until that call has resolved.
   */
  async stream(type: GgmlType, data: Float32Array, rowLen: number, sink: (bytes: Uint8Array) => Promise<void>): Promise<void> {
    if (!isElementwise(type)) {
      if (this.threads <= 1 || data.length <= CHUNK_VALUES) return sink(quantize(type, data, rowLen));
      const rowsPer = Math.max(1, Math.floor(CHUNK_VALUES / rowLen));
      const rows = data.length / rowLen;
      const parts: Array<Promise<Uint8Array>> = [];
      for (let r = 0; r < rows; r += rowsPer) parts.push(this.run(type, data.slice(r * rowLen, Math.min(rows, r + rowsPer) * rowLen), rowLen));
      parts.forEach((p) => p.catch(() => undefined)); // a failure surfaces from the await below, not as unhandled
      for (const p of parts) await sink(await p);
      return;
    }
    this.buffers ??= [new Uint8Array(4 * STREAM_VALUES), new Uint8Array(4 * STREAM_VALUES)];
    let pending: Promise<void> | null = null;
    try {
      for (let from = 0, k = 0; from < data.length; from += STREAM_VALUES, k++) {
        // Buffer k % 2 last held chunk k − 2, whose write was awaited before chunk k − 1's began.
        const bytes = convertRange(type, data, from, Math.min(STREAM_VALUES, data.length - from), this.buffers[k % 2]!);
        if (pending) await pending;
        pending = sink(bytes);
      }
    } finally {
      if (pending) await pending;
    }
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = null;
    this.fail(new Error('The quantization threads were stopped.'));
    if (!ws) return;
    await Promise.all(ws.map(async (w) => {
      const exited = new Promise<void>((res) => w.once('exit', () => res()));
      w.postMessage({ exit: true });
      const timer = setTimeout(() => void w.terminate(), 1000);
      await exited;
      clearTimeout(timer);
    }));
  }
}
