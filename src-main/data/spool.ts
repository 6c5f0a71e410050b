import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import type { Doc } from './types';

const FLUSH_BYTES = 4 << 20;

/**
 * Intermediate documents on disk between passes (so memory stays bounded whatever the corpus size).
 * Record: u32 source bytes, u32 text bytes, source UTF-8, text UTF-8 (little-endian).
 */
export class SpoolWriter {
  private out: WriteStream;
  /** Records are encoded straight into this buffer (no per-document allocation), flushed at ~4 MiB. */
  private buf = Buffer.allocUnsafe(FLUSH_BYTES + (1 << 16));
  private used = 0;
  docs = 0;
  chars = 0;
  constructor(readonly path: string) {
    this.out = createWriteStream(path);
  }
  async write(doc: Doc): Promise<void> {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    const need = 8 + 3 * (doc.source.length + doc.text.length);
    if (this.used + need > this.buf.length) {
      await this.flush();
      if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
    }
    const b = this.buf;
    const at = this.used;
    const a = b.write(doc.source, at + 8, 'utf8');
    const t = b.write(doc.text, at + 8 + a, 'utf8');
    b.writeUInt32LE(a, at);
    b.writeUInt32LE(t, at + 4);
    this.used = at + 8 + a + t;
    this.docs++;
    this.chars += doc.text.length;
    if (this.used >= FLUSH_BYTES) await this.flush();
  }
  private async flush(): Promise<void> {
    if (!this.used) return;
    // The stream keeps the written buffer until it is on disk: hand it over and start a new one.
    const data = this.buf.subarray(0, this.used);
    this.buf = Buffer.allocUnsafe(Math.max(FLUSH_BYTES + (1 << 16), this.buf.length));
    this.used = 0;
    if (!this.out.write(data)) await new Promise<void>((r) => this.out.once('drain', () => r()));
  }
  async close(): Promise<void> {
    await this.flush();
    await new Promise<void>((res, rej) => this.out.end((e?: Error | null) => (e ? rej(e) : res())));
  }
}

export async function* readSpool(path: string): AsyncGenerator<Doc> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let off = 0;
    while (pending.length - off >= 8) {
      const a = pending.readUInt32LE(off);
      const b = pending.readUInt32LE(off + 4);
      if (pending.length - off < 8 + a + b) break;
      const source = pending.toString('utf8', off + 8, off + 8 + a);
      const text = pending.toString('utf8', off + 8 + a, off + 8 + a + b);
      off += 8 + a + b;
      yield { source, text };
    }
    pending = pending.subarray(off);
  }
  if (pending.length) throw new Error(`Spool file ${path} is truncated (${pending.length} stray bytes at the end).`);
}
