import { promises as fsp } from 'node:fs';
import { parse as parseHtml } from 'parse5';
import { decodeBuffer } from './decode';
import { addBadLine, type ImportStats } from './stats';
import { lines, openTextStream, splitDocs } from './stream';
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
}

export const defaultImportOptions: ImportOptions = {
  maxDocChars: 100_000,
  maxLineChars: 16 * 1024 * 1024,
  maxWholeFileBytes: 256 * 1024 * 1024,
};

export type Reader = (path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal) => AsyncGenerator<Doc>;

const DEFAULT_FIELDS = ['text', 'content', 'body', 'document', 'article'];

/** Signals the caller to report the file as skipped with this reason. */
export class SkipFile extends Error {}

export async function* readPlain(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal);
  if (!s) throw new SkipFile('looks like a binary file (contains NUL or control bytes)');
  let part = 0;
  for await (const text of splitDocs(s.chunks, o.maxDocChars)) {
    part++;
    yield { text, source: part === 1 ? path : `${path}#part${part}` };
  }
}

function pickField(obj: unknown, field: string | undefined): string | undefined {
  if (obj === null || typeof obj !== 'object') return typeof obj === 'string' && !field ? obj : undefined;
  const rec = obj as Record<string, unknown>;
  if (field) {
    let cur: unknown = rec;
    for (const k of field.split('.')) {
      if (cur === null || typeof cur !== 'object') return undefined;
      cur = (cur as Record<string, unknown>)[k];
    }
    return typeof cur === 'string' ? cur : undefined;
  }
  for (const f of DEFAULT_FIELDS) if (typeof rec[f] === 'string') return rec[f] as string;
  return undefined;
}

function describeMissing(obj: unknown, field: string | undefined): string {
  const keys = obj && typeof obj === 'object' ? Object.keys(obj).slice(0, 8).join(', ') : typeof obj;
  return field
    ? `no text in field "${field}" (fields: ${keys})`
    : `no text field found (looked for ${DEFAULT_FIELDS.join('/')}; fields: ${keys}); choose one with textField`;
}

export async function* readJsonl(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal);
  if (!s) throw new SkipFile('looks like a binary file (contains NUL or control bytes)');
  for await (const l of lines(s.chunks, o.maxLineChars)) {
    if (l.tooLong) { addBadLine(stats, path, l.n, `line longer than ${o.maxLineChars} characters, skipped`); continue; }
    if (!l.line.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(l.line);
    } catch (e) {
      addBadLine(stats, path, l.n, `not valid JSON: ${(e as Error).message}`);
      continue;
    }
    const text = pickField(obj, o.textField);
    if (text === undefined) { addBadLine(stats, path, l.n, describeMissing(obj, o.textField)); continue; }
    yield* splitLong(text, `${path}:${l.n}`, o.maxDocChars);
  }
}

function* splitLong(text: string, source: string, max: number): Generator<Doc> {
  if (text.length <= max) { yield { text, source }; return; }
  for (let i = 0, part = 1; i < text.length; i += max, part++) yield { text: text.slice(i, i + max), source: `${source}#part${part}` };
}

async function readWhole(path: string, o: ImportOptions, stats: ImportStats): Promise<Buffer> {
  const st = await fsp.stat(path);
  if (st.size > o.maxWholeFileBytes) {
    throw new SkipFile(`${st.size} bytes is more than the ${o.maxWholeFileBytes}-byte limit for this format (it cannot be streamed); split it or convert it to JSONL/text`);
  }
  const buf = await fsp.readFile(path);
  stats.bytesRead += buf.length;
  return buf;
}

export async function* readJson(path: string, o: ImportOptions, stats: ImportStats): AsyncGenerator<Doc> {
  const buf = await readWhole(path, o, stats);
  const d = decodeBuffer(buf);
  if (d.binary) throw new SkipFile('looks like a binary file');
  stats.repairedChars += d.repaired;
  stats.encodings[d.encoding] = (stats.encodings[d.encoding] ?? 0) + 1;
  let root: unknown;
  try {
    root = JSON.parse(d.text);
  } catch (e) {
    // Many ".json" files are really JSON Lines.
    if (d.text.trimStart().startsWith('{') && d.text.includes('\n')) {
      yield* readJsonl(path, o, stats);
      stats.bytesRead -= buf.length; // readJsonl counted the bytes again
      return;
    }
    throw new SkipFile(`not valid JSON: ${(e as Error).message}`);
  }
  const items = Array.isArray(root) ? root : [root];
  for (let i = 0; i < items.length; i++) {
    const text = pickField(items[i], o.textField);
    if (text === undefined) { addBadLine(stats, path, i + 1, `item ${i}: ${describeMissing(items[i], o.textField)}`); continue; }
    yield* splitLong(text, `${path}#${i}`, o.maxDocChars);
  }
}

/** RFC-4180-style rows: quoted fields may hold separators, doubled quotes and newlines. */
export async function* csvRows(chunks: AsyncIterable<string>, sep: string, maxRowChars: number): AsyncGenerator<{ row: string[]; line: number; tooLong: boolean }> {
  let field = '';
  let row: string[] = [];
  let inQuotes = false;
  let quoteSeen = false; // previous char was a quote inside a quoted field
  let line = 1;
  let rowStart = 1;
  let rowChars = 0;
  let tooLong = false;
  const sepCode = sep.charCodeAt(0);
  for await (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      if (inQuotes) {
        if (quoteSeen) {
          quoteSeen = false;
          if (c === 34) { field += '"'; continue; }
          inQuotes = false; // closing quote; fall through to handle c as unquoted
        } else if (c === 34) { quoteSeen = true; continue; }
        else {
          if (c === 10) line++;
          if (!tooLong) field += chunk[i];
          if (++rowChars > maxRowChars) tooLong = true;
          continue;
        }
      }
      if (c === 34 && field.length === 0) { inQuotes = true; continue; }
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
  if (field.length || row.length) { row.push(field); yield { row, line: rowStart, tooLong }; }
}

export async function* readCsv(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  const s = await openTextStream(path, stats, signal);
  if (!s) throw new SkipFile('looks like a binary file (contains NUL or control bytes)');
  const sep = path.toLowerCase().endsWith('.tsv') ? '\t' : ',';
  let header: string[] | null = null;
  let col = -1;
  const pending: { row: string[]; line: number }[] = [];
  const emit = function* (r: { row: string[]; line: number }): Generator<Doc> {
    const text = r.row[col];
    if (text === undefined) { addBadLine(stats, path, r.line, `row has ${r.row.length} fields, column ${col + 1} missing`); return; }
    if (text.trim()) yield* splitLong(text, `${path}:${r.line}`, o.maxDocChars);
  };
  for await (const r of csvRows(s.chunks, sep, o.maxLineChars)) {
    if (r.tooLong) { addBadLine(stats, path, r.line, `row longer than ${o.maxLineChars} characters, skipped`); continue; }
    if (!header) {
      header = r.row.map((h) => h.trim());
      if (o.column !== undefined) {
        col = typeof o.column === 'number' ? o.column : header.indexOf(o.column);
        if (col < 0 || col >= header.length) throw new SkipFile(`no column "${o.column}" (columns: ${header.join(', ')})`);
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
}

function longestColumn(rows: string[][]): number {
  const total: number[] = [];
  for (const r of rows) r.forEach((v, i) => (total[i] = (total[i] ?? 0) + v.length));
  let best = 0;
  total.forEach((t, i) => { if (t > (total[best] ?? 0)) best = i; });
  return best;
}

export async function* readParquet(path: string, o: ImportOptions, stats: ImportStats, signal?: AbortSignal): AsyncGenerator<Doc> {
  const { asyncBufferFromFile, parquetMetadataAsync, parquetSchema, parquetRead } = await import('hyparquet');
  let file, meta;
  try {
    file = await asyncBufferFromFile(path);
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
  let rowStart = 0;
  // One row group at a time keeps memory bounded by the largest row group.
  for (const rg of meta.row_groups) {
    throwIfCancelled(signal);
    const rowEnd = rowStart + Number(rg.num_rows);
    let rows: unknown[][] = [];
    await parquetRead({ file, metadata: meta, columns: [name], rowStart, rowEnd, onComplete: (r: unknown[][]) => { rows = r; } });
    for (let i = 0; i < rows.length; i++) {
      const v = rows[i]![0];
      if (typeof v === 'string' && v.trim()) yield* splitLong(v, `${path}#${rowStart + i}`, o.maxDocChars);
    }
    rowStart = rowEnd;
  }
}

// Elements whose text is page furniture, not content.
const DROP = new Set(['script', 'style', 'noscript', 'template', 'svg', 'nav', 'header', 'footer', 'aside', 'form', 'button', 'select', 'iframe', 'head']);
const BLOCK = new Set(['p', 'div', 'section', 'article', 'main', 'li', 'ul', 'ol', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'pre', 'blockquote', 'tr', 'table', 'br', 'hr', 'dd', 'dt', 'figcaption', 'td', 'th']);

interface HNode { nodeName: string; tagName?: string; value?: string; childNodes?: HNode[]; attrs?: { name: string; value: string }[] }

/** Main text of an HTML page: <main>/<article> when present, else <body>, without navigation, scripts and forms. */
export function htmlToText(html: string): string {
  const doc = parseHtml(html) as unknown as HNode;
  const find = (n: HNode, tag: string): HNode | null => {
    if (n.tagName === tag) return n;
    for (const c of n.childNodes ?? []) { const f = find(c, tag); if (f) return f; }
    return null;
  };
  const root = find(doc, 'main') ?? find(doc, 'article') ?? find(doc, 'body') ?? doc;
  const out: string[] = [];
  const walk = (n: HNode): void => {
    if (n.nodeName === '#text') { out.push(n.value ?? ''); return; }
    const tag = n.tagName;
    if (tag && DROP.has(tag)) return;
    const role = n.attrs?.find((a) => a.name === 'role')?.value;
    if (role === 'navigation' || role === 'banner' || role === 'contentinfo') return;
    const block = tag !== undefined && BLOCK.has(tag);
    if (block) out.push('\n');
    for (const c of n.childNodes ?? []) walk(c);
    if (block) out.push('\n');
  };
  walk(root);
  return out.join('').replace(/[ \t\f\r]+/g, ' ').replace(/ *\n */g, '\n').replace(/\n{3,}/g, '\n\n').trim();
}

export async function* readHtml(path: string, o: ImportOptions, stats: ImportStats): AsyncGenerator<Doc> {
  const buf = await readWhole(path, o, stats);
  const d = decodeBuffer(buf);
  if (d.binary) throw new SkipFile('looks like a binary file');
  stats.repairedChars += d.repaired;
  stats.encodings[d.encoding] = (stats.encodings[d.encoding] ?? 0) + 1;
  const text = htmlToText(d.text);
  if (text) yield* splitLong(text, path, o.maxDocChars);
}

export async function* readPdf(path: string, o: ImportOptions, stats: ImportStats): AsyncGenerator<Doc> {
  const buf = await readWhole(path, o, stats);
  const { extractText, getDocumentProxy } = await import('unpdf');
  let text: string;
  try {
    const pdf = await getDocumentProxy(new Uint8Array(buf));
    text = (await extractText(pdf, { mergePages: true })).text;
  } catch (e) {
    throw new SkipFile(`not a readable PDF: ${(e as Error).message}`);
  }
  if (text.trim()) yield* splitLong(text, path, o.maxDocChars);
}

export async function* readDocx(path: string, o: ImportOptions, stats: ImportStats): AsyncGenerator<Doc> {
  const buf = await readWhole(path, o, stats);
  const mammoth = (await import('mammoth')).default;
  let text: string;
  try {
    text = (await mammoth.extractRawText({ buffer: buf })).value;
  } catch (e) {
    throw new SkipFile(`not a readable Word document: ${(e as Error).message}`);
  }
  if (text.trim()) yield* splitLong(text, path, o.maxDocChars);
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
