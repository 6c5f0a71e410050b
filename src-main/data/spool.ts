import { createReadStream, createWriteStream, promises as fsp, type WriteStream } from 'node:fs';
import type { Doc } from './types';
import { UserError } from '../util/progress';

const FLUSH_BYTES = 4 << 20;
const BUF_BYTES = FLUSH_BYTES + (1 << 16);
/** Record header: three u32 lengths. */
const HEAD = 12;

/**
 * Intermediate documents on disk between passes (so memory stays bounded whatever the corpus size).
 * Record: u32 source bytes, u32 text bytes, u32 extra bytes, source UTF-8, text UTF-8, extra
 * (little-endian). `extra` is what a pass attaches for the next one (cleaning: pass 1's line
 * hashes); readers that do not need it skip it.
 */
export class SpoolWriter {
  private out: WriteStream;
  /** Records are encoded straight into this buffer (no per-document allocation), handed to the stream at ~4 MiB. */
  private buf: Buffer;
  private used = 0;
  /** Buffers the stream has finished writing, for reuse (no new 4 MiB allocation per hand-off). */
  private free: Buffer[] = [];
  private failed: Error | null = null;
  docs = 0;
  chars = 0;
  constructor(readonly path: string) {
    // Several hand-offs may be in flight: waiting for each 4 MiB write to reach the page cache before
    // going on left the calling thread idle for a quarter of pass 1 on a 1 GB corpus.
    this.out = createWriteStream(path, { highWaterMark: 4 * FLUSH_BYTES });
    this.out.on('error', (e: NodeJS.ErrnoException) => {
      this.failed ??= e.code === 'ENOSPC'
        ? new UserError('data.diskFull', `The disk is full: writing ${path} failed.`, 'Free some space on that disk (or choose an output folder on another one) and run the preparation again.')
        : new Error(`Writing ${path} failed: ${e.message}`, { cause: e });
    });
    this.buf = Buffer.allocUnsafe(BUF_BYTES);
  }

  /**
   * Appends a document. Returns a promise only when the caller should wait for it (the disk is
   * behind, or writing failed); otherwise undefined, so a hot loop need not await every document.
   */
  write(doc: Doc): Promise<void> | undefined {
    // UTF-8 needs at most 3 bytes per UTF-16 unit.
    this.reserve(HEAD + 3 * (doc.source.length + doc.text.length));
    const b = this.buf;
    const at = this.used;
    const a = b.write(doc.source, at + HEAD, 'utf8');
    const t = b.write(doc.text, at + HEAD + a, 'utf8');
    this.finish(at, a, t, 0, doc.text.length);
    return this.after();
  }

  /**
   * Appends a document whose text is already UTF-8 (a worker thread encoded it); `chars` is its
   * length as a string. Returns as write() does.
   */
  writeRaw(source: string, text: Uint8Array, chars: number, extra?: Uint8Array): Promise<void> | undefined {
    const e = extra?.length ?? 0;
    this.reserve(HEAD + 3 * source.length + text.length + e);
    const b = this.buf;
    const at = this.used;
    const a = b.write(source, at + HEAD, 'utf8');
    b.set(text, at + HEAD + a);
    if (extra) b.set(extra, at + HEAD + a + text.length);
    this.finish(at, a, text.length, e, chars);
    return this.after();
  }

  /** Makes room for `need` more bytes in the buffer. */
  private reserve(need: number): void {
    if (this.used + need <= this.buf.length) return;
    this.handOff();
    if (need > this.buf.length) this.buf = Buffer.allocUnsafe(need);
  }

  private finish(at: number, sourceBytes: number, textBytes: number, extraBytes: number, chars: number): void {
    this.buf.writeUInt32LE(sourceBytes, at);
    this.buf.writeUInt32LE(textBytes, at + 4);
    this.buf.writeUInt32LE(extraBytes, at + 8);
    this.used = at + HEAD + sourceBytes + textBytes + extraBytes;
    this.docs++;
    this.chars += chars;
  }

  private after(): Promise<void> | undefined {
    if (this.failed) return Promise.reject(this.failed);
    if (this.used < FLUSH_BYTES || this.handOff()) return undefined;
    return this.drained();
  }

  /** Hands the filled part of the buffer to the stream and takes another; false when the stream asks to wait. */
  private handOff(): boolean {
    if (!this.used) return true;
    const full = this.buf;
    // The stream keeps the buffer until it is written; then it can be filled again.
    const ok = this.out.write(full.subarray(0, this.used), (e) => { if (!e && full.length === BUF_BYTES) this.free.push(full); });
    this.buf = this.free.pop() ?? Buffer.allocUnsafe(BUF_BYTES);
    this.used = 0;
    return ok;
  }

  private drained(): Promise<void> {
    return new Promise<void>((res, rej) => {
      const done = (): void => { this.out.off('drain', done); this.out.off('error', done); this.out.off('close', done); if (this.failed) rej(this.failed); else res(); };
      this.out.on('drain', done);
      this.out.on('error', done);
      this.out.on('close', done);
    });
  }

  /** Stops writing and closes the file without waiting (after a failure elsewhere; the file is left incomplete). */
  discard(): void {
    this.used = 0;
    this.out.destroy();
  }

  async close(): Promise<void> {
    this.handOff();
    if (!this.failed) await new Promise<void>((res) => this.out.end((e?: Error | null) => { if (e) this.failed ??= new Error(`Writing ${this.path} failed: ${e.message}`, { cause: e }); res(); }));
    else this.out.destroy();
    if (this.failed) throw this.failed;
  }
}

export async function* readSpool(path: string): AsyncGenerator<Doc> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 }) as AsyncIterable<Buffer>) {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let off = 0;
    while (pending.length - off >= HEAD) {
      const r = layout(pending, off);
      if (r.next > pending.length) break;
      const source = pending.toString('utf8', off + HEAD, r.text);
      const text = pending.toString('utf8', r.text, r.extra);
      off = r.next;
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
      const b = scanRecords(view, batchBytes);
      if (b.end === 0) {
        // The first record does not fit: a bigger buffer for it (or the file ends inside it).
        const need = filled >= HEAD ? layout(view, 0).next : HEAD;
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

/**
 * Where the parts of the record at `off` start (its source at off + HEAD): its text, its extra
 * bytes, and the next record, which is past the end of `buf` when the record is incomplete. `buf`
 * must hold the record's HEAD bytes.
 */
function layout(buf: Buffer, off: number): { text: number; extra: number; next: number } {
  const text = off + HEAD + buf.readUInt32LE(off);
  const extra = text + buf.readUInt32LE(off + 4);
  return { text, extra, next: extra + buf.readUInt32LE(off + 8) };
}

/** Complete records from the start of `buf` until they reach `batchBytes` or the data ends. */
function scanRecords(buf: Buffer, batchBytes: number): { end: number; sources: string[] } {
  let end = 0;
  const sources: string[] = [];
  while (end < batchBytes && buf.length - end >= HEAD) {
    const r = layout(buf, end);
    if (r.next > buf.length) break;
    sources.push(buf.toString('utf8', end + HEAD, r.text));
    end = r.next;
  }
  return { end, sources };
}

/**
 * Texts of records read by readSpoolBatches (in a worker thread), decoded and as their UTF-8 bytes,
 * with each record's extra bytes (empty when it has none).
 */
export function decodeRecordTexts(records: Uint8Array): { texts: string[]; bytes: Uint8Array[]; extras: Uint8Array[] } {
  const buf = Buffer.from(records.buffer, records.byteOffset, records.byteLength);
  const texts: string[] = [];
  const bytes: Uint8Array[] = [];
  const extras: Uint8Array[] = [];
  for (let off = 0; off < buf.length;) {
    const r = layout(buf, off);
    texts.push(buf.toString('utf8', r.text, r.extra));
    bytes.push(records.subarray(r.text, r.extra));
    extras.push(records.subarray(r.extra, r.next));
    off = r.next;
  }
  return { texts, bytes, extras };
}
