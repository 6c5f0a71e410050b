import chardet from 'chardet';
import iconv from 'iconv-lite';

/**
 * Decides how to decode a file from its first bytes, then decodes chunks in a streaming way, so a
 * multi-GB file is never held whole. Invalid UTF-8 becomes U+FFFD and is counted ("repaired").
 */
export interface Sniff {
  /** 'utf-8', 'utf-16le', 'utf-16be' or an iconv-lite encoding name (a guess: see `guessed`). */
  encoding: string;
  /** Bytes to skip at the start (a byte-order mark). */
  bomBytes: number;
  /** True when the sample looks like a binary file (NUL bytes without a UTF-16 BOM, many control bytes). */
  binary: boolean;
  /**
   * Set when the encoding was guessed (the file is not UTF-8 and has no byte-order mark): how, in
   * words for the report, e.g. "decoded as Windows-1252 (not UTF-8)".
   */
  guessed?: string;
}

/** Display names of the encodings a guess can give (iconv names otherwise, upper-cased). */
const LABEL: Record<string, string> = { 'windows-1252': 'Windows-1252', 'utf-16le': 'UTF-16LE', 'utf-16be': 'UTF-16BE' };
export const encodingLabel = (enc: string): string => LABEL[enc] ?? enc.toUpperCase();

export function sniff(sample: Uint8Array): Sniff {
  if (sample[0] === 0xef && sample[1] === 0xbb && sample[2] === 0xbf) return { encoding: 'utf-8', bomBytes: 3, binary: false };
  if (sample[0] === 0xff && sample[1] === 0xfe) return { encoding: 'utf-16le', bomBytes: 2, binary: false };
  if (sample[0] === 0xfe && sample[1] === 0xff) return { encoding: 'utf-16be', bomBytes: 2, binary: false };
  let control = 0;
  for (let i = 0; i < sample.length; i++) {
    const b = sample[i]!;
    if (b === 0) {
      const u16 = utf16WithoutBom(sample);
      return u16 ? { encoding: u16, bomBytes: 0, binary: false, guessed: `decoded as ${encodingLabel(u16)} (no byte-order mark; NUL bytes at every other position)` } : { encoding: 'binary', bomBytes: 0, binary: true };
    }
    // Control bytes other than tab, LF, FF, CR, ESC are rare in text and common in binaries.
    if (b < 32 && b !== 9 && b !== 10 && b !== 12 && b !== 13 && b !== 27) control++;
  }
  if (sample.length > 0 && control / sample.length > 0.05) return { encoding: 'binary', bomBytes: 0, binary: true };
  if (isMostlyUtf8(sample)) return { encoding: 'utf-8', bomBytes: 0, binary: false };
  // Not UTF-8. Western European text (accents sparse among ASCII letters) is Windows-1252, the
  // superset of Latin-1 that editors on Windows and old Macs' exports write; chardet's guesses on
  // short Western samples are often another code page (ISO-8859-2, Windows-1257, even ASCII or
  // Shift_JIS), which would turn every accent into the wrong letter without a sign.
  if (looksWestern(sample)) return { encoding: 'windows-1252', bomBytes: 0, binary: false, guessed: 'decoded as Windows-1252 (not UTF-8)' };
  const guess = chardet.analyse(sample).find((g) => iconv.encodingExists(g.name) && !/^(utf-?8|ascii)$/i.test(g.name));
  if (!guess) return { encoding: 'utf-8', bomBytes: 0, binary: false };
  const enc = guess.name.toLowerCase();
  const unsure = guess.confidence < 50 ? `, a guess with ${guess.confidence}% confidence: check the text, or convert the file to UTF-8` : '';
  return { encoding: enc, bomBytes: 0, binary: false, guessed: `decoded as ${encodingLabel(enc)} (not UTF-8${guess.lang ? `; looks like language "${guess.lang}"` : ''}${unsure})` };
}

/** UTF-16 text without a byte-order mark: mostly-ASCII text has a NUL in every other byte, on one side only. */
function utf16WithoutBom(s: Uint8Array): 'utf-16le' | 'utf-16be' | null {
  const pairs = s.length >> 1;
  if (pairs < 4) return null;
  let even = 0, odd = 0, controls = 0;
  for (let i = 0; i + 1 < s.length; i += 2) {
    const a = s[i]!, b = s[i + 1]!;
    if (a === 0) even++;
    if (b === 0) odd++;
    // A code unit below 0x20 other than tab/LF/CR (NUL NUL included) is not text.
    const unit = (a === 0 ? b : b === 0 ? a : 0x100);
    if (unit < 32 && unit !== 9 && unit !== 10 && unit !== 13) controls++;
  }
  if (controls > pairs * 0.01) return null;
  if (odd >= pairs * 0.3 && even <= pairs * 0.02) return 'utf-16le';
  if (even >= pairs * 0.3 && odd <= pairs * 0.02) return 'utf-16be';
  return null;
}

/** Bytes 0x80-0xFF that are letters in Windows-1252 (Š Œ Ž š œ ž Ÿ ƒ ª µ º À-ÿ but × ÷). */
const CP1252_LETTER = new Uint8Array(256);
for (let b = 0xc0; b <= 0xff; b++) CP1252_LETTER[b] = b === 0xd7 || b === 0xf7 ? 0 : 1;
for (const b of [0x83, 0x8a, 0x8c, 0x8e, 0x9a, 0x9c, 0x9e, 0x9f, 0xaa, 0xb5, 0xba]) CP1252_LETTER[b] = 1;
/** Undefined in Windows-1252: a file holding them is in another code page. */
const CP1252_UNDEFINED = new Set([0x81, 0x8d, 0x8f, 0x90, 0x9d]);

/**
 * Western European text in Windows-1252 / Latin-1: no byte undefined there, bytes above 0x7F at
 * most 30% of the letters (accented letters among plain ones; Cyrillic, Greek or Hebrew code pages
 * give words made of high bytes only), and nearly all of them letters or punctuation between words
 * (Central European code pages give symbols inside words: Polish "ż" in ISO-8859-2 is "¿").
 */
function looksWestern(s: Uint8Array): boolean {
  let high = 0, letters = 0, inWordSymbols = 0;
  const letterAt = (i: number): boolean => {
    const b = s[i];
    if (b === undefined) return false;
    return b < 0x80 ? ((b | 32) >= 97 && (b | 32) <= 122) : CP1252_LETTER[b] === 1;
  };
  for (let i = 0; i < s.length; i++) {
    const b = s[i]!;
    if (b < 0x80) {
      if ((b | 32) >= 97 && (b | 32) <= 122) letters++;
      continue;
    }
    if (CP1252_UNDEFINED.has(b)) return false;
    high++;
    if (CP1252_LETTER[b] === 1) letters++;
    // ’ (0x92), soft hyphen and middle dot belong inside words.
    else if (b !== 0x92 && b !== 0xad && b !== 0xb7 && letterAt(i - 1) && letterAt(i + 1)) inWordSymbols++;
  }
  return high > 0 && high <= 0.3 * letters && inWordSymbols <= 0.05 * high;
}

/**
 * True when the sample is UTF-8 apart from a few broken sequences (a mostly-UTF-8 file with damage is
 * repaired, not re-interpreted as Latin-1). Text in a legacy encoding almost never forms valid
 * multi-byte sequences by chance, so "valid sequences at least twice the invalid ones" means UTF-8.
 */
function isMostlyUtf8(s: Uint8Array): boolean {
  const { valid, invalid } = utf8Counts(s);
  return invalid === 0 || valid >= 2 * invalid;
}

/** Valid multi-byte UTF-8 sequences and invalid bytes in `s` (a sequence cut at the end counts as neither). */
function utf8Counts(s: Uint8Array): { valid: number; invalid: number } {
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
  return { valid, invalid };
}

/** Streaming decoder with repair counting. */
export class ChunkDecoder {
  /** U+FFFD characters introduced by decoding (invalid bytes), not ones present in the original. */
  repaired = 0;
  /**
   * Where repairs happened, for the report's line numbers: per decoded chunk that had some, the
   * file offset of the chunk and, per repair, the newlines before it in that chunk's text (so line
   * = 1 + newlines before the chunk + rel). Filled only on the rare path (a chunk with U+FFFD);
   * at most MAX_SPOTS repairs are placed.
   */
  readonly repairSpots: { start: number; rel: number[] }[] = [];
  private spots = 0;
  private pos = 0;
  /**
   * Set when a file sniffed as UTF-8 because its first 64 KiB were plain ASCII turns out to be
   * Western text in Windows-1252 further on: the file offset of its first byte above 0x7F. Nothing
   * decoded before was anything but ASCII, so switching decoders there loses nothing.
   */
  switchedAt: number | null = null;
  /** UTF-8 without BOM and every chunk so far plain ASCII (decoded text as long as its bytes). */
  private asciiSoFar: boolean;
  private utf8: InstanceType<typeof TextDecoder> | null;
  private other: ReturnType<typeof iconv.getDecoder> | null;
  private skip: number;
  private prevTail = new Uint8Array(0);
  constructor(readonly info: Sniff) {
    this.skip = info.bomBytes;
    this.asciiSoFar = info.encoding === 'utf-8' && info.bomBytes === 0;
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
      this.pos += n;
    }
    if (this.utf8) {
      const text = this.utf8.decode(chunk, { stream: true });
      const fffd = text.indexOf('\ufffd');
      // (A single invalid byte decodes to one U+FFFD: the length alone does not show it.)
      if (this.asciiSoFar && (fffd >= 0 || text.length !== chunk.length)) {
        this.asciiSoFar = false;
        // Only with no valid UTF-8 sequence at all and two or more other bytes: one damaged byte in
        // a UTF-8 file is repaired, not taken as a sign of another encoding.
        if (fffd >= 0) {
          const c = utf8Counts(chunk);
          if (c.valid === 0 && c.invalid >= 2 && looksWestern(chunk)) return this.switchToCp1252(chunk);
        }
      }
      this.countRepairs(text, chunk, fffd);
      this.pos += chunk.length;
      return text;
    }
    this.pos += chunk.length;
    // A copy: the caller reuses its read buffer, and a decoder may keep bytes of a split character.
    return this.other!.write(Buffer.from(chunk));
  }
  end(): string {
    if (this.utf8) {
      const text = this.utf8.decode();
      this.countRepairs(text, new Uint8Array(0), text.indexOf('\ufffd'));
      return text;
    }
    return this.other!.end() ?? '';
  }
  private countRepairs(text: string, chunk: Uint8Array, first: number): void {
    if (first < 0) { this.keepTail(chunk); return; }
    let n = 0;
    for (let i = first; i >= 0; i = text.indexOf('\ufffd', i + 1)) n++;
    // Subtract genuine U+FFFD already in the file (bytes EF BF BD), including across chunk edges.
    const joined = new Uint8Array(this.prevTail.length + chunk.length);
    joined.set(this.prevTail);
    joined.set(chunk, this.prevTail.length);
    let genuine = 0;
    const genuineRel: number[] = [];
    let nl = 0;
    for (let i = 0; i + 2 < joined.length; i++) {
      if (joined[i] === 10 && i >= this.prevTail.length) nl++;
      if (joined[i] === 0xef && joined[i + 1] === 0xbf && joined[i + 2] === 0xbd) { genuine++; genuineRel.push(nl); i += 2; }
    }
    const repaired = Math.max(0, n - genuine);
    this.repaired += repaired;
    if (repaired > 0 && this.spots < MAX_SPOTS) this.placeRepairs(text, genuineRel);
    this.keepTail(chunk);
  }
  /** Newlines before each U+FFFD of `text`, less those of genuine ones (by their own newline counts). */
  private placeRepairs(text: string, genuineRel: number[]): void {
    const rel: number[] = [];
    let nl = 0, from = 0;
    for (let i = text.indexOf('\ufffd'); i >= 0 && this.spots < MAX_SPOTS; i = text.indexOf('\ufffd', i + 1)) {
      for (let j = text.indexOf('\n', from); j >= 0 && j < i; j = text.indexOf('\n', j + 1)) { nl++; from = j + 1; }
      const g = genuineRel.indexOf(nl);
      if (g >= 0) { genuineRel.splice(g, 1); continue; }
      rel.push(nl);
      this.spots++;
    }
    if (rel.length) this.repairSpots.push({ start: this.pos, rel });
  }
  private switchToCp1252(chunk: Uint8Array): string {
    let first = 0;
    while (first < chunk.length && chunk[first]! < 0x80) first++;
    this.switchedAt = this.pos + first;
    this.utf8 = null;
    this.other = iconv.getDecoder('windows-1252');
    this.pos += chunk.length;
    return this.other.write(Buffer.from(chunk));
  }
  private keepTail(chunk: Uint8Array): void {
    this.prevTail = chunk.subarray(Math.max(0, chunk.length - 2)).slice();
  }
}

const MAX_SPOTS = 1000;

/** Line numbers (1-based, ascending, distinct) of a decoder's placed repairs, given the newlines before each chunk start. */
export function repairLines(d: ChunkDecoder, newlinesBefore: (offset: number) => number): number[] {
  const lines = new Set<number>();
  for (const s of d.repairSpots) {
    const base = newlinesBefore(s.start);
    for (const r of s.rel) lines.add(1 + base + r);
  }
  return [...lines].sort((a, b) => a - b);
}

/** Counts LF bytes in buf[0, end). */
export function countNewlines(buf: Uint8Array, end = buf.length): number {
  let n = 0;
  const b = Buffer.from(buf.buffer, buf.byteOffset, Math.min(end, buf.length));
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

export const switchedNote = (line: number): string => `decoded as Windows-1252 (not UTF-8): plain ASCII up to line ${line}, then accented letters that are not UTF-8`;

/** Decodes a whole buffer (for formats read whole: HTML, JSON). */
export function decodeBuffer(buf: Uint8Array): { text: string; encoding: string; repaired: number; repairedLines: number[]; binary: boolean; guessed?: string } {
  const info = sniff(buf.subarray(0, 65536));
  if (info.binary) return { text: '', encoding: info.encoding, repaired: 0, repairedLines: [], binary: true };
  const d = new ChunkDecoder(info);
  const text = d.write(buf) + d.end();
  const repairedLines = d.repaired ? repairLines(d, (at) => countNewlines(buf, at)) : [];
  if (d.switchedAt !== null) {
    return { text, encoding: 'windows-1252', repaired: 0, repairedLines: [], binary: false, guessed: switchedNote(countNewlines(buf, d.switchedAt) + 1) };
  }
  return { text, encoding: info.encoding, repaired: d.repaired, repairedLines, binary: false, ...(info.guessed ? { guessed: info.guessed } : {}) };
}
