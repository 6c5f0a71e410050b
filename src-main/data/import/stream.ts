import { promises as fsp, type PathLike } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { ChunkDecoder, countNewlines, repairLines, sniff, switchedNote, type Sniff } from './decode';
import { addNote, listLines, type ImportStats } from './stats';
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
  fsPath: PathLike = path,
): Promise<{ info: Sniff; chunks: AsyncGenerator<string> } | null> {
  const fh = await fsp.open(fsPath, 'r');
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
  noteEncoding(stats, path, info);
  async function* gen(): AsyncGenerator<string> {
    const dec = new ChunkDecoder(info);
    const file = await fsp.open(fsPath, 'r');
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
      if (dec.repaired) noteRepairs(stats, path, dec.repaired, repairLines(dec, await newlinesBefore(file, dec.repairSpots.map((r) => r.start))));
      if (dec.switchedAt !== null) {
        if (!(stats.encodings['utf-8']! -= 1)) delete stats.encodings['utf-8'];
        stats.encodings['windows-1252'] = (stats.encodings['windows-1252'] ?? 0) + 1;
        addNote(stats, path, switchedNote((await newlinesBefore(file, [dec.switchedAt]))(dec.switchedAt) + 1));
      }
    } finally {
      await next.catch(() => 0); // a read still under way (the consumer stopped early) ends before the close
      await file.close();
      stats.repairedChars += dec.repaired;
    }
  }
  // Old Mac files end lines with CR alone: without this they would be one line (one JSONL record,
  // one CSV row). Decided on the sample (CRs, no LF); such files are rare, so the copy costs nothing.
  if (!info.encoding.startsWith('utf-16') && sample.indexOf(13) >= 0 && sample.indexOf(10) < 0 && sample.length > sample.indexOf(13) + 1) {
    addNote(stats, path, 'lines end with CR only (old Mac format): read as line breaks');
    const inner = gen();
    const crOnly = async function* (): AsyncGenerator<string> { for await (const c of inner) yield c.replaceAll('\r', '\n'); };
    return { info, chunks: crOnly() };
  }
  return { info, chunks: gen() };
}

/** Counts the file's encoding; a guessed one (not UTF-8, no byte-order mark) gets a note. */
export function noteEncoding(stats: ImportStats, path: string, info: { encoding: string; guessed?: string }): void {
  stats.encodings[info.encoding] = (stats.encodings[info.encoding] ?? 0) + 1;
  if (info.guessed) addNote(stats, path, info.guessed);
}

export function noteRepairs(stats: ImportStats, path: string, repaired: number, lines: number[]): void {
  const seq = repaired === 1 ? 'sequence' : 'sequences';
  addNote(stats, path, `${repaired} invalid UTF-8 byte ${seq} replaced by U+FFFD (�)${lines.length ? ` on ${listLines(lines)}` : ''}`, lines[0]);
}

/**
 * Newlines before each of `offsets` (ascending), by reading the file again up to the last one.
 * Only for files with repairs: clean files never pay for line counting.
 */
async function newlinesBefore(file: FileHandle, offsets: number[]): Promise<(offset: number) => number> {
  const at = new Map<number, number>();
  const buf = Buffer.allocUnsafe(READ_CHUNK);
  let pos = 0, count = 0;
  for (const off of offsets) {
    while (pos < off) {
      const { bytesRead } = await file.read(buf, 0, Math.min(READ_CHUNK, off - pos), pos);
      if (bytesRead === 0) break;
      count += countNewlines(buf, bytesRead);
      pos += bytesRead;
    }
    at.set(off, count);
  }
  return (off) => at.get(off) ?? 0;
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

/** Lines that splitDocs had to cut in the middle (no line break near the document size limit). */
export interface CutLine { line: number; chars: number; pieces: number }

/**
 * Cuts a stream of text into documents of at most `maxChars`, preferring a paragraph break, then a
 * line break, then a space, so a huge file (or a huge single line) never becomes one giant string.
 * With `cutLines`, every line cut in the middle is listed (line number, length, pieces); the
 * newline counting this needs is done only for files longer than one document.
 */
export async function* splitDocs(chunks: AsyncIterable<string>, maxChars: number, cutLines?: CutLine[]): AsyncGenerator<string> {
  let buf = '';
  let linesBefore = 0;
  let open: CutLine | null = null;
  const account = (piece: string, last: boolean): void => {
    if (!cutLines || (last && !open)) return;
    const firstNl = piece.indexOf('\n');
    if (open) {
      open.pieces++;
      if (firstNl >= 0 || last) { open.chars += firstNl >= 0 ? firstNl : piece.length; cutLines.push(open); open = null; }
      else open.chars += piece.length;
    }
    let nl = 0;
    for (let i = firstNl; i >= 0; i = piece.indexOf('\n', i + 1)) nl++;
    if (!last && !piece.endsWith('\n') && !open) open = { line: linesBefore + nl + 1, chars: piece.length - piece.lastIndexOf('\n') - 1, pieces: 1 };
    linesBefore += nl;
  };
  for await (const chunk of chunks) {
    buf += chunk;
    while (buf.length > maxChars) {
      const cut = bestCut(buf, maxChars);
      const piece = buf.slice(0, cut);
      account(piece, false);
      yield piece;
      buf = buf.slice(cut);
    }
  }
  if (buf.length) { account(buf, true); yield buf; }
  else if (open) { cutLines!.push(open); open = null; }
}

function bestCut(s: string, max: number): number {
  const lo = Math.floor(max / 2);
  for (const sep of ['\n\n', '\n', ' ']) {
    const i = s.lastIndexOf(sep, max - sep.length);
    if (i >= lo) return i + sep.length;
  }
  return max;
}
