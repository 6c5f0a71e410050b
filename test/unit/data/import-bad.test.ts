import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { defaultImportOptions, importPaths, newImportStats, type ImportOptions } from '../../../src-main/data/import';
import { jsonErrorPosition, zipTooLarge } from '../../../src-main/data/import/guards';
import type { Doc } from '../../../src-main/data/types';
import { makeDocx, makeParquet, makePdf, tmp } from './helpers';

/**
 * Bad inputs a user may bring (issue 16's hidden corpus and its neighbours): each is imported or
 * skipped, never a crash or hang, and the report names the file, the line or record, and the reason.
 */
async function collect(paths: string[], o: Partial<ImportOptions> = {}) {
  const stats = newImportStats();
  const docs: Doc[] = [];
  for await (const d of importPaths(paths, { ...defaultImportOptions, ...o }, stats)) docs.push(d);
  const notes = (p: string): string[] => stats.notes.filter((n) => n.path === p).map((n) => n.what);
  const skipped = Object.fromEntries(stats.filesSkipped.map((s) => [s.path, s.reason]));
  return { docs, stats, notes, skipped };
}

describe('encodings', () => {
  it('decodes Latin-1 / Windows-1252 text as Windows-1252 and says so, short files included', async () => {
    const dir = tmp();
    const cases: Record<string, string> = {
      'short.txt': 'Café crème', // chardet calls this ASCII
      'fr.txt': 'Le café est très bon à Paris. Où est la bibliothèque? Élève naïf.', // chardet: ISO-8859-1 with "es"
      'de.txt': 'Über uns', // chardet: 98% ISO-8859-1, 33% others
      'quotes.txt': 'He said \u201chello\u201d \u2014 it\u2019s fine, costs \u20ac5.', // only Windows-1252 has these
    };
    for (const [n, t] of Object.entries(cases)) writeFileSync(join(dir, n), iconv.encode(t, 'windows-1252'));
    const { docs, stats, notes } = await collect([dir]);
    const byName = Object.fromEntries(docs.map((d) => [d.source.slice(dir.length + 1), d.text]));
    expect(byName).toEqual(cases);
    expect(stats.encodings).toEqual({ 'windows-1252': 4 });
    for (const n of Object.keys(cases)) expect(notes(join(dir, n))).toEqual(['decoded as Windows-1252 (not UTF-8)']);
    expect(stats.repairedChars).toBe(0);
  });

  it('switches to Windows-1252 when accents that are not UTF-8 first appear after 64 KiB of plain ASCII', async () => {
    const dir = tmp();
    const ascii = 'A plain ASCII line of a long licence header.\n'.repeat(2000); // 90 KB, lines 1-2000
    const body = 'Le café est très bon, déjà vu.\nÜber Straße.\n';
    writeFileSync(join(dir, 'late.txt'), Buffer.concat([Buffer.from(ascii), iconv.encode(body, 'windows-1252')]));
    writeFileSync(join(dir, 'late.html'), Buffer.concat([Buffer.from(`<p>${ascii}</p>`), iconv.encode(`<p>${body}</p>`, 'windows-1252')]));
    // Real UTF-8 later in the file is left alone.
    writeFileSync(join(dir, 'utf8.txt'), Buffer.from(ascii + body));
    // One damaged byte is repaired, not taken for another encoding (the UTF-8 after it stays right).
    writeFileSync(join(dir, 'damaged.txt'), Buffer.concat([Buffer.from(ascii + 'bad '), Buffer.from([0xe9]), Buffer.from(' byte\n' + body)]));
    const { docs, stats, notes } = await collect([dir], { maxDocChars: 10_000_000 });
    expect(docs.find((d) => d.source.endsWith('damaged.txt'))!.text).toBe(`${ascii}bad \ufffd byte\n${body}`);
    expect(notes(join(dir, 'damaged.txt'))).toEqual(['1 invalid UTF-8 byte sequence replaced by U+FFFD (�) on line 2001']);
    expect(docs.find((d) => d.source.endsWith('late.txt'))!.text).toBe(ascii + body);
    expect(docs.find((d) => d.source.endsWith('late.html'))!.text).toContain('Le café est très bon, déjà vu.');
    expect(docs.find((d) => d.source.endsWith('utf8.txt'))!.text).toBe(ascii + body);
    const note = 'decoded as Windows-1252 (not UTF-8): plain ASCII up to line 2001, then accented letters that are not UTF-8';
    expect(notes(join(dir, 'late.txt'))).toEqual([note]);
    expect(notes(join(dir, 'late.html'))).toEqual([note]);
    expect(notes(join(dir, 'utf8.txt'))).toEqual([]);
    expect(stats.encodings).toEqual({ 'utf-8': 2, 'windows-1252': 2 });
    expect(stats.repairedChars).toBe(1);
  });

  it('names a low-confidence guess for other code pages, and reads UTF-16 without a byte-order mark', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'pl.txt'), iconv.encode('Zażółć gęślą jaźń. Pójdźże, kiń tę chmurność w głąb flaszy.', 'iso-8859-2'));
    const u16 = 'Hello, this is UTF-16 text without a byte-order mark. Grüße.\nSecond line.';
    writeFileSync(join(dir, 'u16le.txt'), Buffer.from(u16, 'utf16le'));
    writeFileSync(join(dir, 'u16be.txt'), iconv.encode(u16, 'utf16be'));
    const { docs, notes } = await collect([dir]);
    // Polish is not Western text: not forced into Windows-1252; chardet's guess is named as a guess.
    expect(notes(join(dir, 'pl.txt'))[0]).toMatch(/^decoded as [A-Z0-9-]+ \(not UTF-8; .*confidence: check the text/);
    expect(notes(join(dir, 'pl.txt'))[0]).not.toMatch(/Windows-1252/);
    expect(docs.filter((d) => d.source.includes('u16')).map((d) => d.text)).toEqual([u16, u16]);
    expect(notes(join(dir, 'u16le.txt'))).toEqual(['decoded as UTF-16LE (no byte-order mark; NUL bytes at every other position)']);
    expect(notes(join(dir, 'u16be.txt'))[0]).toMatch(/^decoded as UTF-16BE/);
  });

  it('lists the lines of invalid UTF-8 per file, also deep in a big file and in a file read whole', async () => {
    const dir = tmp();
    const ok = 'Good text with ümlauts and a real \ufffd replacement char.\n';
    const lines: Buffer[] = [];
    for (let i = 1; i <= 40_000; i++) {
      // Invalid bytes on lines 3, 7 (twice) and 39,000 (past the 1 MiB read edge); a genuine U+FFFD on every line.
      const bad = i === 3 || i === 7 || i === 39_000;
      lines.push(bad ? Buffer.concat([Buffer.from('bad '), Buffer.from([0xff]), Buffer.from(i === 7 ? ' and \xc3(\n' : ' here\n', 'latin1')]) : Buffer.from(ok));
    }
    const big = Buffer.concat(lines);
    expect(big.length).toBeGreaterThan(2 << 20);
    writeFileSync(join(dir, 'big.txt'), big);
    const html = Buffer.concat([Buffer.from('<html><body><p>Grüße aus Köln</p>\n<p>tw'), Buffer.from([0xfe]), Buffer.from('o</p>\n</body></html>')]);
    writeFileSync(join(dir, 'page.html'), html);
    const { stats, notes } = await collect([dir], { maxDocChars: 10_000_000 });
    expect(stats.repairedChars).toBe(5);
    expect(notes(join(dir, 'big.txt'))).toEqual(['4 invalid UTF-8 byte sequences replaced by U+FFFD (�) on lines 3, 7 and 39000']);
    expect(stats.notes.find((n) => n.path === join(dir, 'big.txt'))!.line).toBe(3);
    expect(notes(join(dir, 'page.html'))).toEqual(['1 invalid UTF-8 byte sequence replaced by U+FFFD (�) on line 2']);
  });
});

describe('CSV', () => {
  it('detects ; and tab separators from the header instead of refusing the file', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'semi.csv'), 'id;text;author\n1;Le tour à bois, premier pas;Ann\n2;"Un texte; avec point-virgule";Bob\n');
    writeFileSync(join(dir, 'tabs.csv'), 'id\ttext\n1\tTab separated, with a comma\n');
    const { docs, notes } = await collect([dir], { column: 'text' });
    expect(docs.map((d) => d.text)).toEqual(['Le tour à bois, premier pas', 'Un texte; avec point-virgule', 'Tab separated, with a comma']);
    expect(notes(join(dir, 'semi.csv'))).toEqual(['columns are separated by semicolons (detected from the header), not commas']);
    expect(notes(join(dir, 'tabs.csv'))).toEqual(['columns are separated by tabs (detected from the header), not commas']);
  });

  it('reports ragged rows by line: kept when the text field is there, skipped when not', async () => {
    const dir = tmp();
    const f = join(dir, 'a.csv');
    writeFileSync(f, 'id,text,author\n1,first,Ann\n2,second,Bob,extra\n3\n4,fourth\n5,fifth,Eve\n6,,Max\n\n');
    const { docs, stats, notes } = await collect([f]);
    expect(docs.map((d) => d.text)).toEqual(['first', 'second', 'fourth', 'fifth']);
    expect(notes(f)).toEqual(['2 rows have more or fewer fields than the header\'s 3: kept, the text read from field 2 ("text"): lines 3 (4 fields), 5 (2 fields)']);
    expect(stats.badLines).toEqual([
      { path: f, line: 4, error: 'row has 1 field, the header 3: no field 2 ("text") for the text, skipped' },
      { path: f, line: 7, error: 'field 2 ("text") is empty, skipped' },
    ]);
    // The text in the last column, with unquoted commas in it: the extra fields are joined back.
    const g = join(dir, 'b.csv');
    writeFileSync(g, 'id,text\n1,Hello, world, again\n2,plain\n');
    const r = await collect([g]);
    expect(r.docs.map((d) => d.text)).toEqual(['Hello, world, again', 'plain']);
    expect(r.notes(g)).toEqual(['a row has more fields than the header\'s 2: kept, the extra fields joined back into the text (last column "text"), as commas inside unquoted text: line 2 (4 fields)']);
  });

  it('re-reads the lines an unclosed quote would swallow, and says where the quote opened', async () => {
    const dir = tmp();
    const f = join(dir, 'a.csv');
    writeFileSync(f, 'id,text\n1,fine\n2,"the quote opens here\n3,swallowed one\n4,swallowed two\n');
    const { docs, notes } = await collect([f]);
    expect(docs.map((d) => [d.source.slice(f.length), d.text])).toEqual([[':2', 'fine'], [':3', '"the quote opens here'], [':4', 'swallowed one'], [':5', 'swallowed two']]);
    expect(notes(f)).toEqual(['a quote opened at line 3 is never closed and would have swallowed lines 3–5 into one field: those lines were read again as ordinary rows (the quote kept as a character); close or remove that quote']);
    // A stray quote "closed" by another in the middle of a later field: the same recovery.
    const g = join(dir, 'b.csv');
    writeFileSync(g, 'id,text\n1,"12 inch bowl\n2,a 6" gouge\n3,last\n');
    const r = await collect([g]);
    expect(r.docs.map((d) => d.text)).toEqual(['"12 inch bowl', 'a 6" gouge', 'last']);
    expect(r.notes(g)[0]).toMatch(/^a quote opened at line 2 closes only in the middle of a field at line 3: lines 2–3 were read again as ordinary rows/);
    // A proper multi-line quoted field is not touched.
    const h = join(dir, 'c.csv');
    writeFileSync(h, 'id,text\n1,"two\nlines, ""quoted"""\n2,x\n');
    const q = await collect([h]);
    expect(q.docs.map((d) => d.text)).toEqual(['two\nlines, "quoted"', 'x']);
    expect(q.stats.noteCount).toBe(0);
  });
});

describe('sizes', () => {
  it('skips a DOCX that expands beyond the limit, by its declared or its real inflated size, without inflating it whole', async () => {
    const dir = tmp();
    const JSZip = (await import('jszip')).default;
    const base = await JSZip.loadAsync(await makeDocx(['A normal paragraph.']));
    base.file('word/bloat.xml', Buffer.alloc(8 << 20, 32));
    base.file('word/media/photo.png', Buffer.alloc(8 << 20)); // pictures are not counted
    const bomb = await base.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' });
    expect(bomb.length).toBeLessThan(100_000);
    writeFileSync(join(dir, 'bomb.docx'), bomb);
    // The same archive with every declared size forged to 1 byte: only inflating and counting finds it.
    const forged = Buffer.from(bomb);
    for (let p = forged.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])); p >= 0; p = forged.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]), p + 4)) forged.writeUInt32LE(1, p + 24);
    writeFileSync(join(dir, 'forged.docx'), forged);
    const photos = await JSZip.loadAsync(await makeDocx(['Small and fine.']));
    photos.file('word/media/photo.png', Buffer.alloc(8 << 20));
    writeFileSync(join(dir, 'fine.docx'), await photos.generateAsync({ type: 'nodebuffer', compression: 'DEFLATE' }));
    const { docs, skipped } = await collect([dir], { maxExpandedBytes: 4 << 20 });
    expect(docs.map((d) => d.text.trim())).toEqual(['Small and fine.']);
    expect(skipped[join(dir, 'bomb.docx')]).toBe('expands to more than 4 MB (a zip bomb, or a document with huge text parts): skipped');
    expect(skipped[join(dir, 'forged.docx')]).toBe(skipped[join(dir, 'bomb.docx')]);
    expect(await zipTooLarge(forged, 16 << 20)).toBeNull();
  });

  it('rejects a 1 GiB deflate bomb at the default limit, counting no more than the limit', async () => {
    // 1 GiB of zeros as raw deflate, built cheaply: 1 MiB deflated with a full flush (a byte-aligned,
    // self-contained block run) repeated 1024 times, then an empty final block.
    const { constants, deflateRawSync } = await import('node:zlib');
    const block = deflateRawSync(Buffer.alloc(1 << 20), { finishFlush: constants.Z_FULL_FLUSH, level: 9 });
    const data = Buffer.concat([...Array.from({ length: 1024 }, () => block), Buffer.from([3, 0])]);
    const name = Buffer.from('word/document.xml');
    const local = Buffer.alloc(30); local.writeUInt32LE(0x04034b50, 0); local.writeUInt16LE(8, 8); local.writeUInt32LE(data.length, 18); local.writeUInt32LE(1 << 30, 22); local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46); cd.writeUInt32LE(0x02014b50, 0); cd.writeUInt16LE(8, 10); cd.writeUInt32LE(data.length, 20); cd.writeUInt32LE(100, 24); cd.writeUInt16LE(name.length, 28); cd.writeUInt32LE(0, 42);
    const cdStart = 30 + name.length + data.length;
    const eocd = Buffer.alloc(22); eocd.writeUInt32LE(0x06054b50, 0); eocd.writeUInt16LE(1, 8); eocd.writeUInt16LE(1, 10); eocd.writeUInt32LE(46 + name.length, 12); eocd.writeUInt32LE(cdStart, 16);
    const zip = Buffer.concat([local, name, data, cd, name, eocd]);
    const dir = tmp();
    writeFileSync(join(dir, 'gig.docx'), zip);
    const { skipped } = await collect([dir]);
    expect(skipped[join(dir, 'gig.docx')]).toBe('expands to more than 128 MB (a zip bomb, or a document with huge text parts): skipped');
  });

  it('skips a PDF whose compressed streams expand beyond the limit, and reads one with a small compressed stream', async () => {
    const { deflateSync } = await import('node:zlib');
    const pdfWith = (content: Buffer): Buffer => {
      const objs = [
        Buffer.from('<< /Type /Catalog /Pages 2 0 R >>'),
        Buffer.from('<< /Type /Pages /Kids [3 0 R] /Count 1 >>'),
        Buffer.from('<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>'),
        Buffer.concat([Buffer.from(`<< /Length ${content.length} /Filter /FlateDecode >>\nstream\n`), content, Buffer.from('\nendstream')]),
        Buffer.from('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>'),
      ];
      const parts: Buffer[] = [Buffer.from('%PDF-1.4\n')];
      let size = parts[0]!.length;
      const offsets: number[] = [];
      objs.forEach((o, i) => { offsets.push(size); const b = Buffer.concat([Buffer.from(`${i + 1} 0 obj\n`), o, Buffer.from('\nendobj\n')]); parts.push(b); size += b.length; });
      let tail = `xref\n0 ${objs.length + 1}\n0000000000 65535 f \n`;
      for (const off of offsets) tail += `${String(off).padStart(10, '0')} 00000 n \n`;
      tail += `trailer\n<< /Size ${objs.length + 1} /Root 1 0 R >>\nstartxref\n${size}\n%%EOF\n`;
      return Buffer.concat([...parts, Buffer.from(tail)]);
    };
    const dir = tmp();
    writeFileSync(join(dir, 'small.pdf'), pdfWith(deflateSync('BT /F1 12 Tf 72 720 Td (Compressed page text.) Tj ET')));
    writeFileSync(join(dir, 'bomb.pdf'), pdfWith(deflateSync(Buffer.alloc(8 << 20, 32))));
    const { docs, skipped } = await collect([dir], { maxExpandedBytes: 1 << 20 });
    expect(docs.map((d) => d.text.trim())).toEqual(['Compressed page text.']);
    expect(skipped).toEqual({ [join(dir, 'bomb.pdf')]: 'its compressed streams expand to more than 4 MB (a decompression bomb, or huge images): skipped' });
  });

  it('parses deeply nested HTML without a stack overflow, and caps PDF text and Parquet row groups', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'deep.html'), `<body>${'<div>'.repeat(200_000)}Deep text.${'</div>'.repeat(200_000)}</body>`);
    writeFileSync(join(dir, 'doc.pdf'), makePdf('Sharpen the skew chisel at 25 degrees.'));
    writeFileSync(join(dir, 'rows.parquet'), makeParquet({ text: ['one', 'two', 'x'.repeat(5000), 'four'] }, 2));
    const { docs, notes } = await collect([join(dir, 'deep.html'), join(dir, 'rows.parquet')], { maxExpandedBytes: 1000 });
    expect(docs.map((d) => d.text)).toEqual(['Deep text.', 'one', 'two']);
    expect(notes(join(dir, 'rows.parquet'))[0]).toMatch(/^rows 2–3 skipped: their row group's "text" column expands to 5,\d+ bytes, more than 1,000/);
    const pdf = await collect([join(dir, 'doc.pdf')], { maxExpandedBytes: 20 });
    expect(pdf.skipped).toEqual({ [join(dir, 'doc.pdf')]: 'no text in the PDF (scanned pages are images: run OCR on it first)' });
    expect(pdf.notes(join(dir, 'doc.pdf'))).toEqual(['text cut after page 0 of 1: it would be more than 20 characters']);
    expect((await collect([join(dir, 'doc.pdf')])).docs[0]!.text).toContain('Sharpen the skew chisel');
  });
});

describe('splits and records', () => {
  it('reports a huge single line cut into pieces, with its line number and length', async () => {
    const dir = tmp();
    const f = join(dir, 'big.txt');
    writeFileSync(f, `A short first line.\n${'turning '.repeat(250_000)}\nlast line\n`); // line 2: 2,000,000 characters
    const { docs, notes } = await collect([f]);
    expect(docs.length).toBe(21);
    expect(docs.map((d) => d.text).join('')).toBe(`A short first line.\n${'turning '.repeat(250_000)}\nlast line\n`);
    expect(notes(f)).toEqual(['line 2 (2,000,000 characters) was cut into 21 documents at spaces: a document holds at most 100,000 characters and the line has no line break near that']);
    // A long file of ordinary lines is split at breaks, with one note for the file.
    const g = join(dir, 'long.txt');
    writeFileSync(g, 'A line of ordinary text.\n'.repeat(10_000));
    expect((await collect([g])).notes(g)).toEqual(['3 documents: the file is longer than 100,000 characters, so it was split at paragraph or line breaks']);
  });

  it('reads files with old Mac line ends (CR only) line by line', async () => {
    const dir = tmp();
    const f = join(dir, 'mac.jsonl');
    writeFileSync(f, '{"text": "one"}\r{"text": "two"}\r');
    const g = join(dir, 'mac.csv');
    writeFileSync(g, 'id,text\r1,alpha\r2,beta\r');
    const { docs, notes } = await collect([f, g]);
    expect(docs.map((d) => d.text)).toEqual(['one', 'two', 'alpha', 'beta']);
    expect(notes(f)).toEqual(['lines end with CR only (old Mac format): read as line breaks']);
  });

  it('gives every skipped JSONL line its own reason, and notes split records and byte-order marks', async () => {
    const dir = tmp();
    const f = join(dir, 'a.jsonl');
    writeFileSync(f, [
      '{"text": "fine"}', '{"text": "broken}', '{"body": 1, "id": 2}', '{"text": 42}', '{"text": "   "}', 'null', '[1,2]',
      '\ufeff{"text": "after a BOM"}', `{"text": "${'y'.repeat(250)}"}`, '{"title": "no text here"}',
    ].join('\r\n'));
    const { docs, stats, notes } = await collect([f], { maxDocChars: 100 });
    expect(docs.map((d) => d.text.slice(0, 12))).toEqual(['fine', 'after a BOM', 'y'.repeat(12), 'y'.repeat(12), 'y'.repeat(12)]);
    expect(stats.badLines.map((b) => [b.line, b.error])).toEqual([
      [2, 'not valid JSON at column 18: Unterminated string'],
      [3, 'field "body" is a number, not a string'],
      [4, 'field "text" is a number, not a string'],
      [5, 'field "text" is empty'],
      [6, 'the record is null, not an object with a text field'],
      [7, 'the record is an array, not an object with a text field'],
      [10, 'missing text field (looked for text/content/body/document/article; fields found: title); name one with textField'],
    ]);
    expect(notes(f)).toEqual([
      'byte-order mark (U+FEFF) removed at the start of a line: line 8',
      'a record longer than 100 characters split into documents: line 9 (250 characters, 3 documents)',
    ]);
    expect(jsonErrorPosition('{"a": [1, 2,, 3]}')).toEqual({ line: 1, column: 13 });
    expect(jsonErrorPosition('{\n  "a": tru\n}')).toEqual({ line: 2, column: 8 });
    expect(jsonErrorPosition('[{"a": 1}]')).toBeNull();
  });
});

describe('files in a folder', () => {
  it('reports empty, blank, code, script-only and all-bad files by name and reason', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'empty.txt'), '');
    writeFileSync(join(dir, 'blank.md'), '\n\n   \n');
    writeFileSync(join(dir, 'tool.js'), 'console.log(1)');
    writeFileSync(join(dir, 'run.py'), 'print(1)');
    writeFileSync(join(dir, 'script.html'), '<html><head><script>var a = 1;</script></head><body><script>go()</script></body></html>');
    writeFileSync(join(dir, 'bad.jsonl'), '{"x": 1}\n');
    writeFileSync(join(dir, 'zero.jsonl'), '');
    writeFileSync(join(dir, 'header.csv'), 'id,text\n');
    writeFileSync(join(dir, 'nul.txt'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2]));
    writeFileSync(join(dir, 'ok.txt'), 'Some prose.');
    const { docs, skipped, stats } = await collect([dir]);
    expect(docs.map((d) => d.text)).toEqual(['Some prose.']);
    expect(stats.filesRead).toBe(1);
    expect(skipped).toEqual({
      [join(dir, 'empty.txt')]: 'empty file (0 characters)',
      [join(dir, 'blank.md')]: 'no text: only spaces and blank lines',
      [join(dir, 'tool.js')]: 'unsupported file type ".js" (program code)',
      [join(dir, 'run.py')]: 'unsupported file type ".py" (program code)',
      [join(dir, 'script.html')]: 'no visible text (only markup, scripts, styles or navigation)',
      [join(dir, 'bad.jsonl')]: 'no record with text: all 1 non-blank lines were skipped (see the bad lines)',
      [join(dir, 'zero.jsonl')]: 'empty file (no records)',
      [join(dir, 'header.csv')]: 'no rows with text in column 2 ("text")',
      [join(dir, 'nul.txt')]: 'looks like a binary file (contains NUL or control bytes), not text',
    });
  });

  it('reports named pipes (in a folder or named) without waiting on them', async () => {
    const dir = tmp();
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(dir, 'pipe.txt')]);
    writeFileSync(join(dir, 'ok.txt'), 'Prose.');
    const { docs, skipped } = await collect([dir, join(dir, 'pipe.txt')]);
    expect(docs.map((d) => d.text)).toEqual(['Prose.']);
    expect(skipped).toEqual({ [join(dir, 'pipe.txt')]: 'a named pipe, not a file' });
  });

  it('imports files whose names are not UTF-8, under a readable name', async () => {
    const dir = tmp();
    const sub = Buffer.concat([Buffer.from(dir + '/'), Buffer.from('r\xe9sum\xe9s', 'latin1')]);
    mkdirSync(sub);
    writeFileSync(Buffer.concat([sub, Buffer.from('/caf\xe9.txt', 'latin1')]), 'Notes from the café.');
    writeFileSync(join(dir, 'plain.txt'), 'Plain name.');
    const { docs, stats, notes } = await collect([dir]);
    expect(stats.filesSkipped).toEqual([]);
    expect(docs).toEqual([
      { text: 'Plain name.', source: join(dir, 'plain.txt') },
      { text: 'Notes from the café.', source: join(dir, 'résumés', 'café.txt') },
    ]);
    expect(notes(join(dir, 'résumés'))).toEqual(['the file name is not valid UTF-8: shown here decoded as Windows-1252; the file was read by its original name']);
  });
});
