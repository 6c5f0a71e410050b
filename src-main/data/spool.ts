import { createReadStream, createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
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
    // Several flushes may be in flight: waiting for each 4 MiB write to reach the page cache before
    // going on left the calling thread idle for a quarter of pass 1 on a 1 GB corpus.
    this.out = createWriteStream(path, { highWaterMark: 4 * FLUSH_BYTES });
  }
  async write(doc: Doc): Promise<void> {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    await this.room(8 + 3 * (doc.source.length + doc.text.length));
    const b = this.buf;
    const at = this.used;
    const a = b.write(doc.source, at + 8, 'utf8');
    const t = b.write(doc.text, at + 8 + a, 'utf8');
    this.finish(at, a, t, doc.text.length);
  }

  /** Appends a document whose text is already UTF-8 (a worker thread encoded it); `chars` is its length as a string. */
  async writeRaw(source: string, text: Uint8Array, chars: number): Promise<void> {
    await this.room(8 + 3 * source.length + text.length);
    const b = this.buf;
    const at = this.used;
    const a = b.write(source, at + 8, 'utf8');
    b.set(text, at + 8 + a);
    this.finish(at, a, text.length, chars);
  }

  private async room(need: number): Promise<void> {
    if (this.used >= FLUSH_BYTES) await this.flush();
    if (this.used + need <= this.buf.length) return;
    await this.flush();
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
  }

  private finish(at: number, sourceBytes: number, textBytes: number, chars: number): void {
    this.buf.writeUInt32LE(sourceBytes, at);
    this.buf.writeUInt32LE(textBytes, at + 4);
    this.used = at + 8 + sourceBytes + textBytes;
    this.docs++;
    this.chars += chars;
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

/**
 * Whole records of a spool in batches of about `batchBytes`, undecoded (worker threads decode the
 * texts), with each record's source decoded here (it is short and the caller reports it).
 *
 * Each batch is read straight into its own buffer (the caller transfers it to a worker), with the
 * next read under way while the caller works: no stream chunks, no joining, no copy per batch. (The
 * calling thread's garbage collector counts every buffer allocated; three per batch set off a full
 * collection every few dozen megabytes.)
 */
export async function* readSpoolBatches(path: string, batchBytes: number): AsyncGenerator<{ records: Uint8Array; sources: string[] }> {
  const fh = await fsp.open(path, 'r');
  let position = 0;
  let eof = false;
  /** Fills `buf` from `from` on (fewer bytes only at the end of the file). */
  const fill = async (buf: Uint8Array, from: number): Promise<number> => {
    let at = from;
    while (at < buf.length && !eof) {
      const { bytesRead } = await fh.read(buf, at, buf.length - at, position);
      if (bytesRead === 0) eof = true;
      position += bytesRead;
      at += bytesRead;
    }
    return at;
  };
  const size = batchBytes + (64 << 10);
  let pending: Promise<number> | null = null;
  try {
    let buf: Uint8Array = Buffer.allocUnsafeSlow(size); // not pooled: the caller may transfer it
    let filled = await fill(buf, 0);
    while (filled > 0) {
      const view = Buffer.from(buf.buffer, buf.byteOffset, filled);
      const b = scanRecords(view, 0, batchBytes);
      if (b.end === 0) {
        // The first record does not fit: a bigger buffer for it (or the file ends inside it).
        const need = filled >= 8 ? 8 + view.readUInt32LE(0) + view.readUInt32LE(4) : 8;
        if (eof) throw new Error(`Spool file ${path} is truncated (${filled} stray bytes at the end).`);
        const bigger = Buffer.allocUnsafeSlow(Math.max(need, size));
        bigger.set(buf.subarray(0, filled));
        buf = bigger;
        filled = await fill(buf, filled);
        continue;
      }
      // The incomplete tail starts the next buffer, whose read runs while the caller has this batch.
      const next = Buffer.allocUnsafeSlow(size);
      next.set(buf.subarray(b.end, filled));
      pending = fill(next, filled - b.end);
      pending.catch(() => undefined); // surfaces when awaited
      yield { records: buf.subarray(0, b.end), sources: b.sources };
      buf = next;
      filled = await pending;
      pending = null;
    }
  } finally {
    await pending?.catch(() => 0); // a read still under way (the caller stopped early) ends before the close
    await fh.close();
  }
}

/** Complete records from `off` until they reach `batchBytes` or the data ends. */
function scanRecords(buf: Buffer, off: number, batchBytes: number): { end: number; sources: string[] } {
  let end = off;
  const sources: string[] = [];
  while (end - off < batchBytes && buf.length - end >= 8) {
    const a = buf.readUInt32LE(end);
    const b = buf.readUInt32LE(end + 4);
    if (buf.length - end < 8 + a + b) break;
    sources.push(buf.toString('utf8', end + 8, end + 8 + a));
    end += 8 + a + b;
  }
  return { end, sources };
}

/** Texts of records read by readSpoolBatches (in a worker thread), decoded and as their UTF-8 bytes. */
export function decodeRecordTexts(records: Uint8Array): { texts: string[]; bytes: Uint8Array[] } {
  const buf = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  const texts: string[] = [];
  const bytes: Uint8Array[] = [];
  for (let off = 0; off < buf.length;) {
    const a = buf.readUInt32LE(off);
    const b = buf.readUInt32LE(off + 4);
    texts.push(buf.toString('utf8', off + 8 + a, off + 8 + a + b));
    bytes.push(records.subarray(off + 8 + a, off + 8 + a + b));
    off += 8 + a + b;
  }
  return { texts, bytes };
}
