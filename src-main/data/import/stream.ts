import { promises as fsp } from 'node:fs';
import { ChunkDecoder, sniff, type Sniff } from './decode';
import type { ImportStats } from './stats';
import { throwIfCancelled } from '../../util/progress';

const SAMPLE_BYTES = 65536;
/** Bytes read at a time (two buffers, reused: the next read is under way while one is decoded). */
const READ_CHUNK = 1 << 20;
/**
 * Bytes decoded into one string. Small enough that each chunk is an ordinary young-generation
 * string: 1 MiB strings are "large objects", old-generation garbage as soon as they are split into
 * lines, and on a big corpus they set off a full garbage collection every few megabytes.
 */
const DECODE_CHUNK = 1 << 16;

/**
 * Streams a text file as decoded string chunks (about 64 KiB each). Returns null when the file looks
 * binary (the caller reports it as skipped).
 */
export async function openTextStream(
  path: string,
  stats: ImportStats,
  signal?: AbortSignal,
): Promise<{ info: Sniff; chunks: AsyncGenerator<string> } | null> {
  const fh = await fsp.open(path, 'r');
  let sample: Uint8Array;
  try {
    const buf = Buffer.alloc(SAMPLE_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SAMPLE_BYTES, 0);
    sample = buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const info = sniff(sample);
  if (info.binary) return null;
  stats.encodings[info.encoding] = (stats.encodings[info.encoding] ?? 0) + 1;
  async function* gen(): AsyncGenerator<string> {
    const dec = new ChunkDecoder(info);
    const file = await fsp.open(path, 'r');
    // Two buffers: the next read is under way while this chunk is decoded and consumed. The decoder
    // copies what it keeps (a split character's bytes), so the buffers are reused for every read.
    const bufs = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
    let position = 0;
    const readInto = (b: Buffer): Promise<number> => {
      const r = file.read(b, 0, READ_CHUNK, position).then((x) => x.bytesRead);
      r.catch(() => undefined); // surfaces when awaited
      return r;
    };
    let next = readInto(bufs[0]!);
    try {
      for (let turn = 0; ; turn ^= 1) {
        throwIfCancelled(signal);
        const bytesRead = await next;
        if (bytesRead === 0) break;
        position += bytesRead;
        stats.bytesRead += bytesRead;
        next = readInto(bufs[turn ^ 1]!);
        for (let at = 0; at < bytesRead; at += DECODE_CHUNK) {
          const s = dec.write(bufs[turn]!.subarray(at, Math.min(bytesRead, at + DECODE_CHUNK)));
          if (s) yield s;
        }
      }
      const tail = dec.end();
      if (tail) yield tail;
    } finally {
      await next.catch(() => 0); // a read still under way (the consumer stopped early) ends before the close
      await file.close();
      stats.repairedChars += dec.repaired;
    }
  }
  return { info, chunks: gen() };
}

/**
 * Splits decoded chunks into lines (without the newline; CR before LF dropped). A line longer than
 * `maxLineChars` is not accumulated: it is yielded as `{ tooLong: true }` so memory stays bounded.
 */
export async function* lines(
  chunks: AsyncIterable<string>,
  maxLineChars: number,
): AsyncGenerator<{ line: string; n: number; tooLong: false } | { line: ''; n: number; tooLong: true }> {
  let carry: string[] = [];
  let carryLen = 0;
  let skipping = false;
  let n = 0;
  for await (const chunk of chunks) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (nl < 0) {
        if (!skipping) {
          const rest = chunk.slice(start);
          carry.push(rest);
          carryLen += rest.length;
          if (carryLen > maxLineChars) { skipping = true; carry = []; carryLen = 0; }
        }
        break;
      }
      n++;
      if (skipping) {
        skipping = false;
        yield { line: '', n, tooLong: true };
      } else {
        let line = chunk.slice(start, nl);
        if (carry.length) { carry.push(line); line = carry.join(''); carry = []; carryLen = 0; }
        if (line.length > maxLineChars) yield { line: '', n, tooLong: true };
        else yield { line: line.endsWith('\r') ? line.slice(0, -1) : line, n, tooLong: false };
      }
      start = nl + 1;
    }
  }
  if (skipping) yield { line: '', n: n + 1, tooLong: true };
  else if (carry.length) {
    const line = carry.join('');
    if (line.length) yield { line: line.endsWith('\r') ? line.slice(0, -1) : line, n: n + 1, tooLong: false };
  }
}

/**
 * Cuts a stream of text into documents of at most `maxChars`, preferring a paragraph break, then a
 * line break, then a space, so a huge file (or a huge single line) never becomes one giant string.
 */
export async function* splitDocs(chunks: AsyncIterable<string>, maxChars: number): AsyncGenerator<string> {
  let buf = '';
  for await (const chunk of chunks) {
    buf += chunk;
    while (buf.length > maxChars) {
      const cut = bestCut(buf, maxChars);
      yield buf.slice(0, cut);
      buf = buf.slice(cut);
    }
  }
  if (buf.length) yield buf;
}

function bestCut(s: string, max: number): number {
  const lo = Math.floor(max / 2);
  for (const sep of ['\n\n', '\n', ' ']) {
    const i = s.lastIndexOf(sep, max - sep.length);
    if (i >= lo) return i + sep.length;
  }
  return max;
}
