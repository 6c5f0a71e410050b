/**
 * Quantization in worker threads: a tensor is cut into row chunks (~1 M values) that the workers quantize in
 * parallel; the bytes come back in order. Small tensors are quantized on the calling thread, and the threads
 * start only when the first large tensor arrives (the tiny models never start them).
 */
import type { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { startWorker } from '../../util/worker';
import { quantize } from './quant';
import type { GgmlType } from './format';

const CHUNK_VALUES = 1 << 20;

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
