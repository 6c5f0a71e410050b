import { createReadStream, createWriteStream, type WriteStream } from 'node:fs';
import type { Doc } from './types';

/**
 * Intermediate documents on disk between passes (so memory stays bounded whatever the corpus size).
 * Record: u32 source bytes, u32 text bytes, source UTF-8, text UTF-8 (little-endian).
 */
export class SpoolWriter {
  private out: WriteStream;
  private buf: Buffer[] = [];
  private bufBytes = 0;
  docs = 0;
  chars = 0;
  constructor(readonly path: string) {
    this.out = createWriteStream(path);
  }
  async write(doc: Doc): Promise<void> {
    const src = Buffer.from(doc.source, 'utf8');
    const txt = Buffer.from(doc.text, 'utf8');
    const head = Buffer.allocUnsafe(8);
    head.writeUInt32LE(src.length, 0);
    head.writeUInt32LE(txt.length, 4);
    this.buf.push(head, src, txt);
    this.bufBytes += 8 + src.length + txt.length;
    this.docs++;
    this.chars += doc.text.length;
    if (this.bufBytes >= 4 << 20) await this.flush();
  }
  private async flush(): Promise<void> {
    if (!this.bufBytes) return;
    const data = Buffer.concat(this.buf, this.bufBytes);
    this.buf = [];
    this.bufBytes = 0;
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
