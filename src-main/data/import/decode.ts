import chardet from 'chardet';
import iconv from 'iconv-lite';

/**
 * Decides how to decode a file from its first bytes, then decodes chunks in a streaming way, so a
 * multi-GB file is never held whole. Invalid UTF-8 becomes U+FFFD and is counted ("repaired").
 */
export interface Sniff {
  /** 'utf-8', 'utf-16le', 'utf-16be' or an iconv-lite encoding name chardet proposed. */
  encoding: string;
  /** Bytes to skip at the start (a byte-order mark). */
  bomBytes: number;
  /** True when the sample looks like a binary file (NUL bytes without a UTF-16 BOM, many control bytes). */
  binary: boolean;
}

export function sniff(sample: Uint8Array): Sniff {
  if (sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf) return { encoding: 'utf-8', bomBytes: 3, binary: false };
  if (sample[0] === 0xff && sample[1] === 0xfe) return { encoding: 'utf-16le', bomBytes: 2, binary: false };
  if (sample[0] === 0xfe && sample[1] === 0xff) return { encoding: 'utf-16be', bomBytes: 2, binary: false };
  let control = 0;
  for (let i = 0; i < sample.length; i++) {
    const b = sample[i]!;
    if (b === 0) return { encoding: 'binary', bomBytes: 0, binary: true };
    // Control bytes other than tab, LF, FF, CR, ESC are rare in text and common in binaries.
    if (b < 32 && b !== 9 && b !== 10 && b !== 12 && b !== 13 && b !== 27) control++;
  }
  if (sample.length > 0 && control / sample.length > 0.05) return { encoding: 'binary', bomBytes: 0, binary: true };
  if (isMostlyUtf8(sample)) return { encoding: 'utf-8', bomBytes: 0, binary: false };
  const guess = chardet.detect(sample);
  const enc = guess && iconv.encodingExists(guess) && !/^utf-?8$/i.test(guess) ? guess.toLowerCase() : 'utf-8';
  return { encoding: enc, bomBytes: 0, binary: false };
}

/**
 * True when the sample is UTF-8 apart from a few broken sequences (a mostly-UTF-8 file with damage is
 * repaired, not re-interpreted as Latin-1). Text in a legacy encoding almost never forms valid
 * multi-byte sequences by chance, so "valid sequences at least twice the invalid ones" means UTF-8.
 */
function isMostlyUtf8(s: Uint8Array): boolean {
  let invalid = 0;
  let valid = 0;
  let i = 0;
  // The final 3 bytes may be a sequence cut by the sample boundary: not counted as invalid.
  const end = s.length;
  while (i < end) {
    const b = s[i]!;
    if (b < 0x80) { i++; continue; }
    const need = b >= 0xf0 && b <= 0xf4 ? 3 : b >= 0xe0 ? 2 : b >= 0xc2 && b < 0xe0 ? 1 : -1;
    if (need < 0 || b > 0xf4) { invalid++; i++; continue; }
    if (i + need >= end) break;
    let ok = true;
    for (let k = 1; k <= need; k++) if ((s[i + k]! & 0xc0) !== 0x80) ok = false;
    if (!ok) { invalid++; i++; continue; }
    valid++;
    i += need + 1;
  }
  return invalid === 0 || valid >= 2 * invalid;
}

/** Streaming decoder with repair counting. */
export class ChunkDecoder {
  /** U+FFFD characters introduced by decoding (invalid bytes), not ones present in the original. */
  repaired = 0;
  private readonly utf8: InstanceType<typeof TextDecoder> | null;
  private readonly other: ReturnType<typeof iconv.getDecoder> | null;
  private skip: number;
  private prevTail = new Uint8Array(0);
  constructor(readonly info: Sniff) {
    this.skip = info.bomBytes;
    if (info.encoding === 'utf-8') {
      this.utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
      this.other = null;
    } else {
      this.utf8 = null;
      this.other = iconv.getDecoder(info.encoding, { stripBOM: false });
    }
  }
  write(chunk: Uint8Array): string {
    if (this.skip > 0) {
      const n = Math.min(this.skip, chunk.length);
      chunk = chunk.subarray(n);
      this.skip -= n;
    }
    if (this.utf8) {
      const text = this.utf8.decode(chunk, { stream: true });
      this.countRepairs(text, chunk);
      return text;
    }
    // A copy: the caller reuses its read buffer, and a decoder may keep bytes of a split character.
    return this.other!.write(Buffer.from(chunk));
  }
  end(): string {
    if (this.utf8) {
      const text = this.utf8.decode();
      this.countRepairs(text, new Uint8Array(0));
      return text;
    }
    return this.other!.end() ?? '';
  }
  private countRepairs(text: string, chunk: Uint8Array): void {
    if (text.indexOf('\ufffd') < 0) { this.keepTail(chunk); return; }
    let n = 0;
    for (let i = text.indexOf('\ufffd'); i >= 0; i = text.indexOf('\ufffd', i + 1)) n++;
    // Subtract genuine U+FFFD already in the file (bytes EF BF BD), including across chunk edges.
    const joined = new Uint8Array(this.prevTail.length + chunk.length);
    joined.set(this.prevTail);
    joined.set(chunk, this.prevTail.length);
    let genuine = 0;
    for (let i = 0; i + 2 < joined.length; i++) {
      if (joined[i] === 0xef && joined[i + 1] === 0xbf && joined[i + 2] === 0xbd) { genuine++; i += 2; }
    }
    this.repaired += Math.max(0, n - genuine);
    this.keepTail(chunk);
  }
  private keepTail(chunk: Uint8Array): void {
    this.prevTail = chunk.subarray(Math.max(0, chunk.length - 2)).slice();
  }
}

/** Decodes a whole buffer (for formats read whole: HTML, JSON). */
export function decodeBuffer(buf: Uint8Array): { text: string; encoding: string; repaired: number; binary: boolean } {
  const info = sniff(buf.subarray(0, 65536));
  if (info.binary) return { text: '', encoding: info.encoding, repaired: 0, binary: true };
  const d = new ChunkDecoder(info);
  const text = d.write(buf) + d.end();
  return { text, encoding: info.encoding, repaired: d.repaired, binary: false };
}
