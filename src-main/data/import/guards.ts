import { createInflate, createInflateRaw } from 'node:zlib';

/**
 * Checks on inputs that can expand far beyond their size on disk or need exact error positions:
 * zip archives (DOCX) measured before a library inflates them, and the column of a JSON syntax error.
 */

const MB = 1024 * 1024;

interface ZipEntry { name: string; method: number; compressed: number; declared: number; dataStart: number }

/** The central directory of a zip held in memory; null when it is not a zip this reader understands. */
function zipEntries(buf: Buffer): ZipEntry[] | string {
  // End of central directory: 22 bytes plus a comment of up to 64 KiB, at the end.
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) return 'not a zip archive (no end-of-archive record): not a Word document, or a damaged one';
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  if (count === 0xffff || p === 0xffffffff) return 'a ZIP64 archive (over 4 GB expanded or 65,535 parts): far more than a text document needs';
  const out: ZipEntry[] = [];
  for (let k = 0; k < count; k++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) return 'damaged zip archive (bad central directory)';
    const method = buf.readUInt16LE(p + 10);
    const compressed = buf.readUInt32LE(p + 20);
    const declared = buf.readUInt32LE(p + 24);
    const n = buf.readUInt16LE(p + 28), e = buf.readUInt16LE(p + 30), c = buf.readUInt16LE(p + 32);
    const local = buf.readUInt32LE(p + 42);
    const name = buf.toString('utf8', p + 46, p + 46 + n);
    if (compressed === 0xffffffff || declared === 0xffffffff || local === 0xffffffff) return 'a ZIP64 archive (over 4 GB expanded): far more than a text document needs';
    if (local + 30 > buf.length || buf.readUInt32LE(local) !== 0x04034b50) return `damaged zip archive (part "${name}" missing)`;
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    out.push({ name, method, compressed, declared, dataStart });
    p += 46 + n + e + c;
  }
  return out;
}

/** Inflates `data` (raw deflate, or zlib-wrapped) only to count its bytes; stops as soon as the count passes `cap`. */
function inflatedSize(data: Buffer, cap: number, wrapped = false): Promise<number> {
  return new Promise((resolve) => {
    const z = wrapped ? createInflate() : createInflateRaw();
    let n = 0;
    let done = false;
    const finish = (v: number): void => { if (!done) { done = true; resolve(v); } };
    z.on('data', (chunk: Buffer) => {
      n += chunk.length;
      if (n > cap) { finish(n); z.destroy(); }
    });
    z.on('end', () => finish(n));
    z.on('error', () => finish(n)); // a damaged stream: the library reading it reports the damage
    z.end(data);
  });
}

/**
 * Why a zip archive (DOCX) must not be opened, or null: its parts declare, or really inflate to,
 * more than `limit` bytes in all. Declared sizes are checked first (cheap); then every deflated
 * part is inflated and counted, never kept, since a forged archive can declare small sizes.
 */
export async function zipTooLarge(buf: Buffer, limit: number): Promise<string | null> {
  const all = zipEntries(buf);
  if (typeof all === 'string') return null; // not our call: the reader reports an unreadable file
  // Pictures and embedded files are never inflated for the text (the zip library reads parts on
  // demand): a photo-heavy report is not refused for them.
  const entries = all.filter((e) => !/(^|\/)(media|embeddings)\//.test(e.name));
  const say = (): string => `expands to more than ${Math.round(limit / MB)} MB (a zip bomb, or a document with huge text parts): skipped`;
  let declared = 0;
  for (const e of entries) declared += e.declared;
  if (declared > limit) return say();
  let total = 0;
  for (const e of entries) {
    const data = buf.subarray(e.dataStart, e.dataStart + e.compressed);
    total += e.method === 8 ? await inflatedSize(data, limit - total) : e.method === 0 ? data.length : 0;
    if (total > limit) return say();
  }
  return null;
}

/**
 * Why a PDF must not be handed to the PDF library, or null: its Flate-compressed streams inflate to
 * more than `limit` bytes in all (pdf.js inflates a stream whole into memory; a 1 MB file can hold
 * a stream of gigabytes). Streams are found by their keywords, not by parsing the file: "stream"
 * after a dictionary naming /FlateDecode, up to "endstream". Each is inflated and counted, never kept.
 */
export async function pdfTooLarge(buf: Buffer, limit: number): Promise<string | null> {
  const STREAM = Buffer.from('stream'), END = Buffer.from('endstream'), FLATE = Buffer.from('/FlateDecode');
  let total = 0;
  for (let at = buf.indexOf(STREAM); at >= 0; at = buf.indexOf(STREAM, at + 1)) {
    if (at >= 3 && buf.toString('latin1', at - 3, at) === 'end') continue;
    let start = at + STREAM.length;
    if (buf[start] === 13) start++;
    if (buf[start] !== 10) continue;
    start++;
    const dictStart = Math.max(0, at - 4096);
    const head = buf.subarray(dictStart, at);
    const obj = head.lastIndexOf('obj');
    if (head.indexOf(FLATE, Math.max(0, obj)) < 0) continue;
    let end = buf.indexOf(END, start);
    if (end < 0) end = buf.length;
    total += await inflatedSize(buf.subarray(start, end), limit - total, true);
    if (total > limit) return `its compressed streams expand to more than ${Math.round(limit / MB)} MB (a decompression bomb, or huge images): skipped`;
    at = end;
  }
  return null;
}

/**
 * Line and column (1-based) of the first syntax error in `text`, which JSON.parse rejected. A small
 * scanner: V8's messages give a position only for some errors. Null if no error is found.
 */
export function jsonErrorPosition(text: string): { line: number; column: number } | null {
  let i = 0;
  const ws = (): void => { while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++; };
  const fail = (): never => { throw i; };
  const lit = (w: string): void => { if (text.startsWith(w, i)) i += w.length; else fail(); };
  const str = (): void => {
    i++;
    for (;;) {
      if (i >= text.length) fail();
      const c = text.charCodeAt(i);
      if (c === 34) { i++; return; }
      if (c < 32) fail();
      if (c === 92) {
        const e = text[i + 1];
        if (e === 'u') { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) { i++; fail(); } i += 6; }
        else if (e !== undefined && '"\\/bfnrt'.includes(e)) i += 2;
        else { i++; fail(); }
      } else i++;
    }
  };
  const num = (): void => {
    const m = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!m) fail();
    i += m![0].length;
  };
  // Iterative over containers (deep nesting must not overflow the stack).
  const stack: string[] = [];
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') { stack.push(c); i++; return; }
    if (c === '"') str();
    else if (c === 't') lit('true');
    else if (c === 'f') lit('false');
    else if (c === 'n') lit('null');
    else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) num();
    else fail();
  };
  try {
    let expectValue = true;
    for (;;) {
      if (expectValue) {
        const depth = stack.length;
        value();
        if (stack.length > depth) {
          ws();
          const open = stack[stack.length - 1]!;
          if (text[i] === (open === '{' ? '}' : ']')) { i++; stack.pop(); expectValue = false; continue; }
          if (open === '{') { if (text[i] !== '"') fail(); str(); ws(); if (text[i] !== ':') fail(); i++; }
          continue;
        }
        expectValue = false;
        continue;
      }
      ws();
      if (!stack.length) { if (i < text.length) fail(); return null; }
      const open = stack[stack.length - 1]!;
      if (text[i] === ',') {
        i++;
        if (open === '{') { ws(); if (text[i] !== '"') fail(); str(); ws(); if (text[i] !== ':') fail(); i++; }
        expectValue = true;
      } else if (text[i] === (open === '{' ? '}' : ']')) { i++; stack.pop(); }
      else fail();
    }
  } catch (e) {
    if (typeof e !== 'number') throw e;
    const at = Math.min(e, text.length);
    let line = 1, lineStart = 0;
    for (let k = text.indexOf('\n'); k >= 0 && k < at; k = text.indexOf('\n', k + 1)) { line++; lineStart = k + 1; }
    return { line, column: at - lineStart + 1 };
  }
}
