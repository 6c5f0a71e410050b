import { promises as fsp, type PathLike } from 'node:fs';
import { parse as parseHtml } from 'parse5';
import { decodeBuffer } from './decode';
import { jsonErrorPosition, pdfTooLarge, zipTooLarge } from './guards';
import { LineNotes, addBadLine, addNote, type ImportStats } from './stats';
import { lines, noteEncoding, noteRepairs, openTextStream, splitDocs, type CutLine } from './stream';
import type { Doc } from '../types';
import { throwIfCancelled } from '../../util/progress';

export interface ImportOptions {
  /** JSON/JSONL field holding the text ("a.b" for nested); default: text, content, body, document, article. */
  textField?: string;
  /** CSV/TSV/Parquet column holding the text (name or 0-based index); default: text/content/body, else the longest. */
  column?: string | number;
  /** Longest document kept whole; longer text is split at paragraph breaks. 100k chars ≈ 25k tokens. */
  maxDocChars: number;
  /** Longest JSONL/CSV line accepted; longer lines are skipped and reported (bounds memory). */
  maxLineChars: number;
  /** Largest file read whole (JSON arrays, HTML, PDF, DOCX; these formats cannot be streamed). */
  maxWholeFileBytes: number;
  /**
   * Most a compressed or complex file may expand to: a DOCX's inflated parts (bytes), the text
   * extracted from a PDF (characters), a Parquet row group's uncompressed text column (bytes).
   */
  maxExpandedBytes: number;
  /** Largest HTML file parsed (its element tree takes ~10× the file size in memory). */
  maxHtmlBytes: number;
}

export const defaultImportOptions: ImportOptions = {
  maxDocChars: 100_000,
  maxLineChars: 16 * 1024 * 1024,
  maxWholeFileBytes: 256 * 1024 * 1024,
  maxExpandedBytes: 128 * 1024 * 1024,
  maxHtmlBytes: 64 * 1024 * 1024,
};

/**
 * One reader per format. `path` names the file in documents and the report; `fsPath` opens it (a
 * Buffer when the file name is not valid UTF-8, so it cannot round-trip through a string).
 */
export type Reader = (path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath?: PathLike) => AsyncGenerator<Doc>;

const fmt = (n: number): string => n.toLocaleString('en-US');
const BINARY = 'looks like a binary file (contains NUL or control bytes), not text';

const DEFAULT_FIELDS = ['text', 'content', 'body', 'document', 'article'];

/** Signals the caller to report the file as skipped with this reason. */
export class SkipFile extends Error {}

export async function* readPlain(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal, fsPath);
  if (!s) throw new SkipFile(BINARY);
  let part = 0;
  let blank = true;
  const cut: CutLine[] = [];
  for await (const text of splitDocs(s.chunks, o.maxDocChars, cut)) {
    part++;
    if (blank && !text.trim()) continue; // leading blank pieces of a whitespace-only file
    blank = false;
    yield { text, source: part === 1 ? path : `${path}#part${part}` };
  }
  if (part === 0) throw new SkipFile('empty file (0 characters)');
  if (blank) throw new SkipFile('no text: only spaces and blank lines');
  for (const c of cut) {
    addNote(stats, path, `line ${c.line} (${fmt(c.chars)} characters) was cut into ${c.pieces} documents at spaces: a document holds at most ${fmt(o.maxDocChars)} characters and the line has no line break near that`, c.line);
  }
  if (part > 1 && !cut.length) addNote(stats, path, `${fmt(part)} documents: the file is longer than ${fmt(o.maxDocChars)} characters, so it was split at paragraph or line breaks`);
}

const kindOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`);

/** The text of a record, or why there is none (in words naming the field and what was found). */
export function pickText(obj: unknown, field: string | undefined): { text: string } | { error: string } {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    if (typeof obj === 'string' && !field) return obj.trim() ? { text: obj } : { error: 'empty string' };
    return { error: `the record is ${kindOf(obj)}, not an object with a text field` };
  }
  const rec = obj as Record<string, unknown>;
  const keys = (o: object): string => Object.keys(o).slice(0, 8).join(', ') || 'none';
  let value: unknown;
  let name: string | undefined;
  if (field) {
    let cur: unknown = rec;
    for (const k of field.split('.')) {
      if (cur === null || typeof cur !== 'object' || !(k in cur)) {
        return { error: `missing text field "${field}" (fields found: ${keys(cur !== null && typeof cur === 'object' ? cur : rec)})` };
      }
      cur = (cur as Record<string, unknown>)[k];
    }
    value = cur;
    name = field;
  } else {
    // The first default field holding a string wins; else the first one present explains why not.
    let present: string | undefined;
    for (const k of DEFAULT_FIELDS) {
      const v = rec[k];
      if (typeof v === 'string') {
        if (v.length > 0 && v.charCodeAt(0) > 32) return { text: v }; // the usual case, without a trim
        value = v; name = k; break;
      }
      if (present === undefined && v !== undefined) present = k;
    }
    if (value === undefined) {
      if (present === undefined) return { error: `missing text field (looked for ${DEFAULT_FIELDS.join('/')}; fields found: ${keys(rec)}); name one with textField` };
      name = present;
      value = rec[present];
    }
  }
  if (typeof value !== 'string') return { error: `field "${name!}" is ${kindOf(value)}, not a string` };
  if (value.length === 0 || (value.charCodeAt(0) <= 32 && !value.trim())) return { error: `field "${name!}" is empty` };
  return { text: value };
}

/** Why JSON.parse rejected a line, with the column. */
export function jsonLineError(line: string, e: unknown): string {
  const at = jsonErrorPosition(line);
  const msg = (e as Error).message.replace(/ in JSON at position \d+.*$/, '').replace(/, ".*" is not valid JSON$/, '');
  return `not valid JSON${at ? ` at column ${at.column}` : ''}: ${msg}`;
}

export async function* readJsonl(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal, fsPath);
  if (!s) throw new SkipFile(BINARY);
  const boms = new LineNotes(stats, path, (n) => `byte-order mark (U+FEFF) removed at the start of ${n === 1 ? 'a line' : `${n} lines`}`);
  const split = new LineNotes(stats, path, (n) => `${n === 1 ? 'a record' : `${n} records`} longer than ${fmt(o.maxDocChars)} characters split into documents`);
  let records = 0, bad = 0;
  for await (const l of lines(s.chunks, o.maxLineChars)) {
    if (l.tooLong) { bad++; addBadLine(stats, path, l.n, `line longer than ${fmt(o.maxLineChars)} characters (the limit for one record): skipped; split the record or raise maxLineChars`); continue; }
    let line = l.line;
    if (line.charCodeAt(0) === 0xfeff) { line = line.slice(1); boms.add(l.n); }
    if (!line.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      bad++;
      addBadLine(stats, path, l.n, jsonLineError(line, e));
      continue;
    }
    const t = pickText(obj, o.textField);
    if ('error' in t) { bad++; addBadLine(stats, path, l.n, t.error); continue; }
    records++;
    yield* splitLong(t.text, `${path}:${l.n}`, o.maxDocChars, split, l.n);
  }
  boms.finish();
  split.finish();
  if (!records) throw new SkipFile(bad ? `no record with text: all ${fmt(bad)} non-blank lines were skipped (see the bad lines)` : 'empty file (no records)');
}

/** A whole file's text (HTML, PDF, DOCX) cut into documents of at most maxDocChars, with a note when it is. */
function* splitWhole(text: string, path: string, o: ImportOptions, stats: ImportStats): Generator<Doc> {
  if (text.length > o.maxDocChars) addNote(stats, path, `${fmt(text.length)} characters of text: split into ${Math.ceil(text.length / o.maxDocChars)} documents of at most ${fmt(o.maxDocChars)}`);
  yield* splitLong(text, path, o.maxDocChars);
}

/** Splits a record longer than `max`; the record's line (or index) goes to `notes` with the piece count. */
function* splitLong(text: string, source: string, max: number, notes?: LineNotes, line?: number): Generator<Doc> {
  if (text.length <= max) { yield { text, source }; return; }
  const pieces = Math.ceil(text.length / max);
  notes?.add(line ?? 0, `${fmt(text.length)} characters, ${pieces} documents`);
  for (let i = 0, part = 1; i < text.length; i += max, part++) yield { text: text.slice(i, i + max), source: `${source}#part${part}` };
}

async function readWhole(fsPath: PathLike, o: ImportOptions, stats: ImportStats, limit = o.maxWholeFileBytes): Promise<Buffer> {
  const st = await fsp.stat(fsPath);
  if (st.size > limit) {
    throw new SkipFile(`${fmt(st.size)} bytes is more than the ${fmt(limit)}-byte limit for this format (it cannot be streamed); split it or convert it to JSONL/text`);
  }
  const buf = await fsp.readFile(fsPath);
  stats.bytesRead += buf.length;
  return buf;
}

/** Decodes a file read whole, with the same encoding notes as a streamed one. */
function decodeWhole(path: string, buf: Buffer, stats: ImportStats): string {
  const d = decodeBuffer(buf);
  if (d.binary) throw new SkipFile(BINARY);
  noteEncoding(stats, path, d);
  if (d.repaired) { stats.repairedChars += d.repaired; noteRepairs(stats, path, d.repaired, d.repairedLines); }
  return d.text;
}

export async function* readJson(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const buf = await readWhole(fsPath, o, stats);
  const before = { notes: stats.notes.length, noteCount: stats.noteCount, repaired: stats.repairedChars, encodings: { ...stats.encodings } };
  const text = decodeWhole(path, buf, stats);
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    // Many ".json" files are really JSON Lines: read again as such (the notes and counts once).
    if (text.trimStart().replace(/^\ufeff/, '').startsWith('{') && text.includes('\n')) {
      stats.notes.length = before.notes; stats.noteCount = before.noteCount; stats.repairedChars = before.repaired; stats.encodings = before.encodings;
      yield* readJsonl(path, o, stats, signal, fsPath);
      stats.bytesRead -= buf.length; // readJsonl counted the bytes again
      return;
    }
    const at = jsonErrorPosition(text);
    throw new SkipFile(`not valid JSON${at ? ` at line ${at.line} column ${at.column}` : ''}: ${(e as Error).message.replace(/ in JSON at position \d+.*$/, '').slice(0, 200)}`);
  }
  const items = Array.isArray(root) ? root : [root];
  const split = new LineNotes(stats, path, (n) => `${n === 1 ? 'an item' : `${n} items`} longer than ${fmt(o.maxDocChars)} characters split into documents (numbers are item indexes)`);
  let kept = 0;
  for (let i = 0; i < items.length; i++) {
    const t = pickText(items[i], o.textField);
    if ('error' in t) { addBadLine(stats, path, i + 1, `item ${i}: ${t.error}`); continue; }
    kept++;
    yield* splitLong(t.text, `${path}#${i}`, o.maxDocChars, split, i);
  }
  split.finish();
  if (!kept) throw new SkipFile(items.length ? `no item with text: all ${fmt(items.length)} were skipped (see the bad lines)` : 'empty JSON array');
}

/** A quoted CSV field that reads on over this many lines is reported (kept as it is). */
const LONG_QUOTED_LINES = 200;

/** What csvRows found about quotes: where a quoted field opened and what became of it. */
export interface QuoteProblem { line: number; endLine: number; what: 'unclosed' | 'stray' | 'long' | 'lost' }

/**
 * RFC-4180-style rows: quoted fields may hold separators, doubled quotes and newlines. A quote that
 * opens a field but is never closed, or "closes" in the middle of a later field, would swallow the
 * lines after it into one field: those lines are read again as ordinary rows (the quote kept as a
 * character) and the problem goes to `onQuote`. The re-reading needs no buffering beyond the field.
 */
export async function* csvRows(
  chunks: AsyncIterable<string>, sep: string, maxRowChars: number, onQuote?: (p: QuoteProblem) => void,
): AsyncGenerator<{ row: string[]; line: number; tooLong: boolean }> {
  let field = '';
  let row: string[] = [];
  let inQuotes = false;
  let quoteSeen = false; // previous char was a quote inside a quoted field
  let line = 1;
  let rowStart = 1;
  let rowChars = 0;
  let tooLong = false;
  let quoteLine = 0; // line where the open quoted field began
  let quoteRowChars = 0;
  const sepCode = sep.charCodeAt(0);
  // Inside a field that never closed properly every quote was doubled (a single one would have
  // closed it), so the raw text is the field with its quotes doubled again.
  const raw = (): string => field.replaceAll('"', '""');
  /** Re-read from just after the opening quote, that quote now a plain character of the field. */
  const reopen = (rest: string): string => {
    const text = raw() + rest;
    inQuotes = false; quoteSeen = false;
    line = quoteLine; field = '"'; rowChars = quoteRowChars + 1;
    return text;
  };
  function* parse(chunk: string): Generator<{ row: string[]; line: number; tooLong: boolean }> {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (inQuotes) {
        if (quoteSeen) {
          quoteSeen = false;
          if (c === 34) { field += '"'; continue; }
          // The closing quote. Followed by something other than a separator or the line's end, after
          // running over lines: the opening quote was a stray one.
          if (line > quoteLine && c !== sepCode && c !== 10 && c !== 13) {
            if (tooLong) { onQuote?.({ line: quoteLine, endLine: line, what: 'lost' }); }
            else {
              onQuote?.({ line: quoteLine, endLine: line, what: 'stray' });
              chunk = reopen('"' + chunk.slice(i));
              i = -1;
              continue;
            }
          } else if (line - quoteLine >= LONG_QUOTED_LINES) onQuote?.({ line: quoteLine, endLine: line, what: 'long' });
          inQuotes = false; // fall through to handle c as unquoted
        } else if (c === 34) { quoteSeen = true; continue; }
        else {
          if (c === 10) line++;
          if (!tooLong) field += chunk[i];
          if (++rowChars > maxRowChars) tooLong = true;
          continue;
        }
      }
      if (c === 34 && field.length === 0) { inQuotes = true; quoteLine = line; quoteRowChars = rowChars; continue; }
      if (c === sepCode) { row.push(field); field = ''; continue; }
      if (c === 10) {
        row.push(field.endsWith('\r') ? field.slice(0, -1) : field);
        yield { row, line: rowStart, tooLong };
        line++;
        rowStart = line; row = []; field = ''; rowChars = 0; tooLong = false;
        continue;
      }
      if (!tooLong) field += chunk[i];
      if (++rowChars > maxRowChars) { tooLong = true; field = ''; }
    }
  }
  for await (const chunk of chunks) yield* parse(chunk);
  // At the end: a quote just before it closes its field; an open one is re-read (and so on for a
  // quote in the re-read lines that opens and never closes: each opens later, so this ends).
  for (;;) {
    if (inQuotes && quoteSeen) {
      inQuotes = false; quoteSeen = false;
      if (line - quoteLine >= LONG_QUOTED_LINES) onQuote?.({ line: quoteLine, endLine: line, what: 'long' });
    }
    if (!inQuotes) break;
    if (tooLong) { onQuote?.({ line: quoteLine, endLine: line, what: 'lost' }); inQuotes = false; field = ''; break; }
    onQuote?.({ line: quoteLine, endLine: field.endsWith('\n') ? line - 1 : line, what: 'unclosed' }); // (no line after a final newline)
    yield* parse(reopen(''));
  }
  if (field.length || row.length) { row.push(field.endsWith('\r') ? field.slice(0, -1) : field); yield { row, line: rowStart, tooLong }; }
}

/**
 * The separator of a CSV/TSV file, from its first lines: the candidate (, ; tab |) found in the
 * header that appears as often in the most following lines (outside quotes). Null when none is.
 */
export function sniffSeparator(head: string): string | null {
  const ls = head.split('\n').slice(0, 6);
  if (ls.length > 1 && !head.endsWith('\n')) ls.pop(); // the last one may be cut
  const count = (l: string, c: string): number => {
    let n = 0, q = false;
    for (const ch of l) { if (ch === '"') q = !q; else if (ch === c && !q) n++; }
    return n;
  };
  let best: string | null = null, bestScore = -1;
  for (const c of [',', ';', '\t', '|']) {
    const h = count(ls[0] ?? '', c);
    if (!h) continue;
    const same = ls.slice(1).filter((l) => count(l, c) === h).length;
    const score = same * 1000 + h;
    if (score > bestScore) { best = c; bestScore = score; }
  }
  return best;
}

const SEP_NAME: Record<string, string> = { ',': 'commas', ';': 'semicolons', '\t': 'tabs', '|': 'vertical bars' };

export async function* readCsv(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal, fsPath);
  if (!s) throw new SkipFile(BINARY);
  const usual = path.toLowerCase().endsWith('.tsv') ? '\t' : ',';
  // The first chunk (64 KiB) holds the header and first lines: enough to tell the separator.
  const first = await s.chunks.next();
  const head = first.done ? '' : first.value;
  const sniffed = sniffSeparator(head.slice(0, 65536));
  const sep = sniffed ?? usual;
  if (sep !== usual) addNote(stats, path, `columns are separated by ${SEP_NAME[sep]} (detected from the header), not ${SEP_NAME[usual]}`, 1);
  async function* all(): AsyncGenerator<string> { if (head) yield head; yield* s!.chunks; }
  let header: string[] | null = null;
  let col = -1;
  let kept = 0;
  const pending: { row: string[]; line: number }[] = [];
  const ragged = new LineNotes(stats, path, (n) => `${n === 1 ? 'a row has' : `${n} rows have`} more or fewer fields than the header's ${header!.length}: kept, the text read from field ${col + 1} ("${header![col] ?? ''}")`);
  const joined = new LineNotes(stats, path, (n) => `${n === 1 ? 'a row has' : `${n} rows have`} more fields than the header's ${header!.length}: kept, the extra fields joined back into the text (last column "${header![col] ?? ''}"), as ${SEP_NAME[sep]} inside unquoted text`);
  const split = new LineNotes(stats, path, (n) => `${n === 1 ? 'a row' : `${n} rows`} with text longer than ${fmt(o.maxDocChars)} characters split into documents`);
  const quotes: QuoteProblem[] = [];
  const emit = function* (r: { row: string[]; line: number }): Generator<Doc> {
    const text = r.row[col];
    if (text === undefined) {
      addBadLine(stats, path, r.line, `row has ${r.row.length} field${r.row.length === 1 ? '' : 's'}, the header ${header!.length}: no field ${col + 1} ("${header![col] ?? ''}") for the text, skipped`);
      return;
    }
    let t = text;
    if (r.row.length > header!.length && col === header!.length - 1) {
      // The text is the last column: the extra fields are its own unquoted separators.
      t = r.row.slice(col).join(sep);
      joined.add(r.line, `${r.row.length} fields`);
    } else if (r.row.length !== header!.length) ragged.add(r.line, `${r.row.length} fields`);
    if (t.trim()) { kept++; yield* splitLong(t, `${path}:${r.line}`, o.maxDocChars, split, r.line); }
    else if (r.row.length > 1 || t) addBadLine(stats, path, r.line, `field ${col + 1} ("${header![col] ?? ''}") is empty, skipped`);
  };
  for await (const r of csvRows(all(), sep, o.maxLineChars, (p) => quotes.push(p))) {
    if (r.tooLong) { addBadLine(stats, path, r.line, `row longer than ${fmt(o.maxLineChars)} characters, skipped`); continue; }
    if (r.row.length === 1 && r.row[0] === '') continue; // a blank line
    if (!header) {
      header = r.row.map((h) => h.trim());
      if (o.column !== undefined) {
        col = typeof o.column === 'number' ? o.column : header.indexOf(o.column);
        if (col < 0 || col >= header.length) throw new SkipFile(`no column "${o.column}" (columns: ${header.join(', ')}${header.length === 1 ? `; the separator used was ${SEP_NAME[sep]}` : ''})`);
      } else {
        col = header.findIndex((h) => DEFAULT_FIELDS.includes(h.toLowerCase()));
      }
      continue;
    }
    if (col < 0) {
      // No named text column: look at the first 50 rows and take the column with the longest values.
      pending.push(r);
      if (pending.length < 50) continue;
      col = longestColumn(pending.map((p) => p.row));
      for (const p of pending.splice(0)) yield* emit(p);
      continue;
    }
    yield* emit(r);
  }
  if (col < 0 && pending.length) {
    col = longestColumn(pending.map((p) => p.row));
    for (const p of pending) yield* emit(p);
  }
  for (const q of quotes) {
    const span = `lines ${q.line}–${q.endLine}`;
    const what = q.what === 'unclosed'
      ? `a quote opened at line ${q.line} is never closed and would have swallowed ${span} into one field: those lines were read again as ordinary rows (the quote kept as a character); close or remove that quote`
      : q.what === 'stray'
        ? `a quote opened at line ${q.line} closes only in the middle of a field at line ${q.endLine}: ${span} were read again as ordinary rows (the quote kept as a character); check that quote`
        : q.what === 'lost'
          ? `a quote opened at line ${q.line} is not closed properly and ${span} run over ${fmt(o.maxLineChars)} characters: skipped as one over-long row; close or remove that quote`
          : `a quoted field runs from line ${q.line} to line ${q.endLine}: kept as one field; if that quote was not meant to open a field, fix it`;
    addNote(stats, path, what, q.line);
  }
  ragged.finish();
  joined.finish();
  split.finish();
  if (!header) throw new SkipFile('empty file (no header row)');
  if (!kept) throw new SkipFile(`no rows with text in column ${col + 1} ("${header[col] ?? ''}")`);
}

function longestColumn(rows: string[][]): number {
  const total: number[] = [];
  for (const r of rows) r.forEach((v, i) => (total[i] = (total[i] ?? 0) + v.length));
  let best = 0;
  total.forEach((t, i) => { if (t > (total[best] ?? 0)) best = i; });
  return best;
}

export async function* readParquet(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetSchema, parquetRead } = await import('hyparquet');
  let file, meta;
  try {
    file = await asyncBufferFromFile(fsPath as string); // fs accepts the Buffer of a non-UTF-8 name too
    meta = await parquetMetadataAsync(file);
  } catch (e) {
    throw new SkipFile(`not a readable Parquet file: ${(e as Error).message}`);
  }
  const names = parquetSchema(meta).children.map((c) => c.element.name);
  let name: string | undefined;
  if (typeof o.column === 'number') name = names[o.column];
  else if (o.column !== undefined) name = names.includes(o.column) ? o.column : undefined;
  else name = names.find((n) => DEFAULT_FIELDS.includes(n.toLowerCase()));
  if (!name) throw new SkipFile(`no text column ${o.column !== undefined ? `"${o.column}"` : `(looked for ${DEFAULT_FIELDS.join('/')})`}; columns: ${names.join(', ')}`);
  stats.bytesRead += file.byteLength;
  const split = new LineNotes(stats, path, (n) => `${n === 1 ? 'a row' : `${n} rows`} with text longer than ${fmt(o.maxDocChars)} characters split into documents (numbers are row indexes)`);
  let rowStart = 0, kept = 0, rows0 = 0;
  // One row group at a time keeps memory bounded by the largest row group, which is checked first:
  // its text column's uncompressed size is in the metadata (a small file can declare gigabytes).
  for (const rg of meta.row_groups) {
    throwIfCancelled(signal);
    const rowEnd = rowStart + Number(rg.num_rows);
    rows0 += Number(rg.num_rows);
    const chunk = rg.columns.find((c) => c.meta_data?.path_in_schema.join('.') === name);
    const size = Number(chunk?.meta_data?.total_uncompressed_size ?? rg.total_byte_size);
    if (size > o.maxExpandedBytes) {
      addNote(stats, path, `rows ${fmt(rowStart)}–${fmt(rowEnd - 1)} skipped: their row group's "${name}" column expands to ${fmt(size)} bytes, more than ${fmt(o.maxExpandedBytes)}; write the file with smaller row groups`);
      rowStart = rowEnd;
      continue;
    }
    let rows: unknown[][] = [];
    try {
      await parquetRead({ file, metadata: meta, columns: [name], rowStart, rowEnd, onComplete: (r: unknown[][]) => { rows = r; } });
    } catch (e) {
      addNote(stats, path, `rows ${fmt(rowStart)}–${fmt(rowEnd - 1)} skipped: their row group could not be read (${(e as Error).message})`);
      rowStart = rowEnd;
      continue;
    }
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]![0];
      if (typeof v === 'string' && v.trim()) { kept++; yield* splitLong(v, `${path}#${rowStart + i}`, o.maxDocChars, split, rowStart + i); }
      else addBadLine(stats, path, rowStart + i, `row ${rowStart + i}: column "${name}" is ${typeof v === 'string' ? 'empty' : `${kindOf(v)}, not a string`}, skipped`);
    }
    rowStart = rowEnd;
  }
  split.finish();
  if (!kept) throw new SkipFile(rows0 ? `no row has text in column "${name}"` : 'no rows');
}

// Elements whose text is page furniture, not content.
const DROP = new Set(['script', 'style', 'noscript', 'template', 'svg', 'nav', 'header', 'footer', 'aside', 'form', 'button', 'select', 'iframe', 'head']);
const BLOCK = new Set(['p', 'div', 'section', 'article', 'main', 'li', 'ul', 'ol', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'blockquote', 'tr', 'table', 'br', 'hr', 'dd', 'dt', 'figcaption', 'td', 'th']);

interface HNode { nodeName: string; tagName?: string; value?: string; childNodes?: HNode[]; attrs?: { name: string; value: string }[] }

/**
 * Main text of an HTML page: <main>/<article> when present, else <body>, without navigation, scripts
 * and forms. The tree is walked with an explicit stack: a page nested 100,000 elements deep must not
 * overflow the call stack.
 */
export function htmlToText(html: string): string {
  const doc = parseHtml(html) as unknown as HNode;
  const find = (tag: string): HNode | null => {
    const stack = [doc];
    while (stack.length) {
      const n = stack.pop()!;
      if (n.tagName === tag) return n;
      const c = n.childNodes ?? [];
      for (let i = c.length - 1; i >= 0; i--) stack.push(c[i]!);
    }
    return null;
  };
  const root = find('main') ?? find('article') ?? find('body') ?? doc;
  const out: string[] = [];
  // Entries are nodes to visit, or '\n' to emit after a block's children.
  const stack: (HNode | '\n')[] = [root];
  while (stack.length) {
    const n = stack.pop()!;
    if (n === '\n') { out.push('\n'); continue; }
    if (n.nodeName === '#text') { out.push(n.value ?? ''); continue; }
    const tag = n.tagName;
    if (tag && DROP.has(tag)) continue;
    const role = n.attrs?.find((a) => a.name === 'role')?.value;
    if (role === 'navigation' || role === 'banner' || role === 'contentinfo') continue;
    const block = tag !== undefined && BLOCK.has(tag);
    if (block) { out.push('\n'); stack.push('\n'); }
    const c = n.childNodes ?? [];
    for (let i = c.length - 1; i >= 0; i--) stack.push(c[i]!);
  }
  return out.join('').replace(/[ \t\f\r]+/g, ' ').replace(/ *\n */g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}

export async function* readHtml(path: string, o: ImportOptions, stats: ImportStats, _signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const buf = await readWhole(fsPath, o, stats, Math.min(o.maxWholeFileBytes, o.maxHtmlBytes));
  const text = htmlToText(decodeWhole(path, buf, stats));
  if (!text) throw new SkipFile('no visible text (only markup, scripts, styles or navigation)');
  yield* splitWhole(text, path, o, stats);
}

/**
 * PDF text page by page (unpdf's extractText reads every page at once): extraction stops when the
 * text passes maxExpandedBytes characters (a small PDF can inflate to gigabytes of text), with a note.
 */
export async function* readPdf(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const buf = await readWhole(fsPath, o, stats);
  // Streams are measured first (4× the text limit: images are Flate streams too and count here).
  const big = await pdfTooLarge(buf, 4 * o.maxExpandedBytes);
  if (big) throw new SkipFile(big);
  const { getDocumentProxy } = await import('unpdf');
  const pages: string[] = [];
  let chars = 0;
  let pdf: Awaited<ReturnType<typeof getDocumentProxy>>;
  try {
    pdf = await getDocumentProxy(new Uint8Array(buf));
  } catch (e) {
    throw new SkipFile(`not a readable PDF: ${(e as Error).message}`);
  }
  try {
    for (let p = 1; p <= pdf.numPages; p++) {
      throwIfCancelled(signal);
      let page: string;
      try {
        const content = await (await pdf.getPage(p)).getTextContent();
        page = content.items.map((it) => ('str' in it ? it.str + (it.hasEOL ? '\n' : '') : '')).join('');
      } catch (e) {
        addNote(stats, path, `page ${p} could not be read (${(e as Error).message}): left out`, p);
        continue;
      }
      chars += page.length;
      if (chars > o.maxExpandedBytes) {
        addNote(stats, path, `text cut after page ${p - 1} of ${pdf.numPages}: it would be more than ${fmt(o.maxExpandedBytes)} characters`, p);
        break;
      }
      pages.push(page);
    }
  } finally {
    await pdf.destroy().catch(() => undefined);
  }
  // As unpdf's mergePages: pages joined by newlines, runs of spaces folded.
  const text = pages.join('\n').replace(/[^\S\n]+/g, ' ').replace(/ ?\n ?/g, '\n').replace(/\n{3,}/g, '\n\n');
  if (!text.trim()) throw new SkipFile('no text in the PDF (scanned pages are images: run OCR on it first)');
  yield* splitWhole(text, path, o, stats);
}

export async function* readDocx(path: string, o: ImportOptions, stats: ImportStats, _signal?: AbortSignal, fsPath: PathLike = path): AsyncGenerator<Doc> {
  const buf = await readWhole(fsPath, o, stats);
  // A DOCX is a zip: measured (declared and really inflated sizes) before mammoth inflates it whole.
  const big = await zipTooLarge(buf, o.maxExpandedBytes);
  if (big) throw new SkipFile(big);
  const mammoth = (await import('mammoth')).default;
  let text: string;
  try {
    text = (await mammoth.extractRawText({ buffer: buf })).value;
  } catch (e) {
    throw new SkipFile(`not a readable Word document: ${(e as Error).message}`);
  }
  if (!text.trim()) throw new SkipFile('no text in the document');
  yield* splitWhole(text, path, o, stats);
}

/** Reader per extension; files in folders with other extensions are skipped and reported. */
export const READERS: Record<string, Reader> = {
  '.txt': readPlain, '.md': readPlain, '.markdown': readPlain, '.text': readPlain, '.rst': readPlain,
  '.jsonl': readJsonl, '.ndjson': readJsonl, '.json': readJson,
  '.csv': readCsv, '.tsv': readCsv,
  '.parquet': readParquet,
  '.html': readHtml, '.htm': readHtml, '.xhtml': readHtml,
  '.pdf': readPdf, '.docx': readDocx,
};
