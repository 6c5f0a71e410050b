import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tk from 'tokenizers';

export function tmp(prefix = 'lathe-data-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A real byte-level tokenizer.json (HF `tokenizers`): one token per UTF-8 byte (ids 0..255) plus
 * <|endoftext|> = 256, <|im_start|> = 257, <|im_end|> = 258. Small and deterministic.
 */
export function makeTokenizerDir(dir: string): string {
  const vocab: Record<string, number> = {};
  tk.byteLevelAlphabet().forEach((c, i) => (vocab[c] = i));
  const t = new tk.Tokenizer(tk.BPE.init(vocab, []));
  t.setPreTokenizer(tk.byteLevelPreTokenizer(false));
  t.addSpecialTokens(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
  t.save(join(dir, 'tokenizer.json'));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
  return dir;
}

/** Byte-level ids of a string as this tokenizer assigns them (byte value = id after the alphabet remap). */
export function utf8Len(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** A minimal valid one-page PDF showing `text` (Helvetica), with a correct xref table. */
export function makePdf(text: string): Buffer {
  const esc = text.replace(/[\\()]/g, (c) => '\\' + c);
  const stream = `BT /F1 12 Tf 72 720 Td (${esc}) Tj ET`;
  const objs = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let out = '%PDF-1.4\n';
  const offsets: number[] = [];
  objs.forEach((o, i) => { offsets.push(out.length); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = out.length;
  out += `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

/** A minimal .docx (WordprocessingML in a zip) with one paragraph per entry. */
export async function makeDocx(paragraphs: string[]): Promise<Buffer> {
  const JSZip = (await import('jszip')).default;
  const zip = new JSZip();
  zip.file('[Content_Types].xml', '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>');
  zip.file('_rels/.rels', '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>');
  const body = paragraphs.map((p) => `<w:p><w:r><w:t xml:space="preserve">${p.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</w:t></w:r></w:p>`).join('');
  zip.file('word/document.xml', `<?xml version="1.0" encoding="UTF-8"?><w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`);
  return zip.generateAsync({ type: 'nodebuffer' });
}

/** id of each ASCII byte under the byte-level tokenizer above (its alphabet is not in byte order). */
export async function asciiIds(tok: { encodeBatch(t: string[]): Promise<ArrayLike<number>[]> }): Promise<number[]> {
  const ids = (await tok.encodeBatch([String.fromCharCode(...Array.from({ length: 128 }, (_, i) => i))]))[0]!;
  return Array.from(ids);
}

/**
 * A minimal Parquet file (no library writes Parquet here): one REQUIRED UTF-8 BYTE_ARRAY column per
 * name, PLAIN encoding, uncompressed, one data page per column per row group. Thrift compact protocol
 * by hand, following the parquet-format spec.
 */
export function makeParquet(columns: Record<string, string[]>, rowsPerGroup: number): Buffer {
  type F = [id: number, type: number, value: unknown];
  const out: number[] = [];
  const varint = (buf: number[], v: bigint): void => { while (v >= 0x80n) { buf.push(Number(v & 0x7fn) | 0x80); v >>= 7n; } buf.push(Number(v)); };
  const zig = (v: number): bigint => { const b = BigInt(v); return b >= 0n ? b * 2n : -b * 2n - 1n; };
  const struct = (buf: number[], fields: F[]): void => {
    let last = 0;
    for (const [id, type, value] of fields) {
      buf.push(((id - last) << 4) | type);
      last = id;
      write(buf, type, value);
    }
    buf.push(0);
  };
  const write = (buf: number[], type: number, value: unknown): void => {
    if (type === 5 || type === 6) varint(buf, zig(value as number));
    else if (type === 8) { const b = Buffer.from(value as string); varint(buf, BigInt(b.length)); buf.push(...b); }
    else if (type === 12) struct(buf, value as F[]);
    else if (type === 9) {
      const [elemType, items] = value as [number, unknown[]];
      buf.push((items.length << 4) | elemType);
      for (const it of items) write(buf, elemType, it);
    }
  };
  out.push(...Buffer.from('PAR1'));
  const names = Object.keys(columns);
  const nRows = columns[names[0]!]!.length;
  const groups: F[][] = [];
  for (let start = 0; start < nRows; start += rowsPerGroup) {
    const end = Math.min(nRows, start + rowsPerGroup);
    const chunks: F[][] = [];
    let groupBytes = 0;
    for (const name of names) {
      const data: number[] = [];
      for (const v of columns[name]!.slice(start, end)) { const b = Buffer.from(v); const len = Buffer.alloc(4); len.writeUInt32LE(b.length); data.push(...len, ...b); }
      const header: number[] = [];
      struct(header, [[1, 5, 0], [2, 5, data.length], [3, 5, data.length], [5, 12, [[1, 5, end - start], [2, 5, 0], [3, 5, 3], [4, 5, 3]]]]);
      const offset = out.length;
      out.push(...header, ...data);
      const size = header.length + data.length;
      groupBytes += size;
      chunks.push([[2, 6, offset], [3, 12, [[1, 5, 6], [2, 9, [5, [0]]], [3, 9, [8, [name]]], [4, 5, 0], [5, 6, end - start], [6, 6, size], [7, 6, size], [9, 6, offset]]]]);
    }
    groups.push([[1, 9, [12, chunks]], [2, 6, groupBytes], [3, 6, end - start]]);
  }
  const schema: F[][] = [[[4, 8, 'schema'], [5, 5, names.length]], ...names.map((n): F[] => [[1, 5, 6], [3, 5, 0], [4, 8, n], [6, 5, 0]])];
  const footer: number[] = [];
  struct(footer, [[1, 5, 1], [2, 9, [12, schema]], [3, 6, nRows], [4, 9, [12, groups]]]);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(footer.length);
  out.push(...footer, ...len, ...Buffer.from('PAR1'));
  return Buffer.from(out);
}
