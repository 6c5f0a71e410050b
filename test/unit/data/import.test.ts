import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import { describe, expect, it } from 'vitest';
import { defaultImportOptions, htmlToText, importPaths, newImportStats, type ImportOptions } from '../../../src-main/data/import';
import { sniff } from '../../../src-main/data/import/decode';
import type { Doc } from '../../../src-main/data/types';
import { makeDocx, makeParquet, makePdf, tmp } from './helpers';

async function collect(paths: string[], o: Partial<ImportOptions> = {}) {
  const stats = newImportStats();
  const docs: Doc[] = [];
  for await (const d of importPaths(paths, { ...defaultImportOptions, ...o }, stats)) docs.push(d);
  return { docs, stats };
}

describe('import formats', () => {
  it('reads .txt and .md as documents, recursively and sorted', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'b.txt'), 'Second file.\n');
    writeFileSync(join(dir, 'sub', 'a.md'), '# Title\n\nBody text.');
    writeFileSync(join(dir, 'notes.xyz'), 'ignored');
    const { docs, stats } = await collect([dir]);
    expect(docs.map((d) => d.text)).toEqual(['Second file.\n', '# Title\n\nBody text.']);
    expect(stats.filesRead).toBe(2);
    expect(stats.filesSkipped).toEqual([{ path: join(dir, 'notes.xyz'), reason: 'unsupported file type ".xyz"' }]);
  });

  it('reads JSONL with a chosen field, skipping malformed lines with line numbers', async () => {
    const dir = tmp();
    const f = join(dir, 'a.jsonl');
    writeFileSync(f, ['{"body": "one", "id": 1}', '{"body": broken', '', '{"other": "x"}', '{"body": "four"}'].join('\n'));
    const { docs, stats } = await collect([f], { textField: 'body' });
    expect(docs).toEqual([{ text: 'one', source: `${f}:1` }, { text: 'four', source: `${f}:5` }]);
    expect(stats.badLineCount).toBe(2);
    expect(stats.badLines[0]).toMatchObject({ path: f, line: 2 });
    expect(stats.badLines[0]!.error).toMatch(/not valid JSON/);
    expect(stats.badLines[1]).toMatchObject({ line: 4 });
    expect(stats.badLines[1]!.error).toBe('missing text field "body" (fields found: other)');
  });

  it('reads nested JSON fields and JSON arrays', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a.json'), JSON.stringify([{ doc: { text: 'alpha' } }, { doc: { text: 'beta' } }]));
    const { docs } = await collect([join(dir, 'a.json')], { textField: 'doc.text' });
    expect(docs.map((d) => d.text)).toEqual(['alpha', 'beta']);
  });

  it('reads CSV with quoted fields (commas, doubled quotes, newlines) and TSV', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a.csv'), 'id,text\r\n1,"Hello, ""world""\nsecond line"\r\n2,plain\n');
    writeFileSync(join(dir, 'b.tsv'), 'title\tbody\nT\tthe body text\n');
    const { docs } = await collect([join(dir, 'a.csv')]);
    expect(docs.map((d) => d.text)).toEqual(['Hello, "world"\nsecond line', 'plain']);
    expect(docs[1]!.source).toBe(`${join(dir, 'a.csv')}:4`);
    const tsv = await collect([join(dir, 'b.tsv')], { column: 'body' });
    expect(tsv.docs.map((d) => d.text)).toEqual(['the body text']);
    const bad = await collect([join(dir, 'b.tsv')], { column: 'nope' });
    expect(bad.stats.filesSkipped[0]!.reason).toMatch(/no column "nope" \(columns: title, body\)/);
  });

  it('extracts the main text of HTML without navigation, scripts or footers', () => {
    const html = '<html><head><title>x</title><style>p{}</style></head><body><nav>Home | About</nav><main><h1>Bowl gouges</h1><p>Keep the bevel <b>rubbing</b>.</p><script>var a=1</script></main><footer>© 2024</footer></body></html>';
    expect(htmlToText(html)).toBe('Bowl gouges\n\nKeep the bevel rubbing.');
    const noMain = '<body><div role="navigation">Menu</div><p>Only this.</p><aside>ads</aside></body>';
    expect(htmlToText(noMain)).toBe('Only this.');
  });

  it('reads PDF and DOCX', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a.pdf'), makePdf('Sharpen the skew chisel at 25 degrees.'));
    writeFileSync(join(dir, 'b.docx'), await makeDocx(['First paragraph.', 'Second paragraph.']));
    const { docs, stats } = await collect([dir]);
    expect(stats.filesSkipped).toEqual([]);
    expect(docs[0]!.text).toContain('Sharpen the skew chisel at 25 degrees.');
    expect(docs[1]!.text).toMatch(/First paragraph\.\s+Second paragraph\./);
  });

  it('reads Parquet row group by row group, choosing the text column', async () => {
    const dir = tmp();
    const f = join(dir, 'a.parquet');
    writeFileSync(f, makeParquet({ id: ['1', '2', '3', '4', '5'], content: ['one', 'two', '', 'four', 'five é'] }, 2));
    const { docs, stats } = await collect([f]);
    expect(docs).toEqual([
      { text: 'one', source: `${f}#0` }, { text: 'two', source: `${f}#1` }, { text: 'four', source: `${f}#3` }, { text: 'five é', source: `${f}#4` },
    ]);
    expect(stats.filesRead).toBe(1);
    expect(stats.badLines).toEqual([{ path: f, line: 2, error: 'row 2: column "content" is empty, skipped' }]);
    expect((await collect([f], { column: 'id' })).docs.map((d) => d.text)).toEqual(['1', '2', '3', '4', '5']);
    expect((await collect([f], { column: 'body' })).stats.filesSkipped[0]!.reason).toBe('no text column "body"; columns: id, content');
    writeFileSync(join(dir, 'bad.parquet'), 'PAR1 not really');
    expect((await collect([join(dir, 'bad.parquet')])).stats.filesSkipped[0]!.reason).toMatch(/^not a readable Parquet file/);
  });

  it('detects legacy encodings and UTF-16 with BOM', async () => {
    const dir = tmp();
    const text = 'Café crème, déjà vu, naïve façade — über Straße. '.repeat(20);
    writeFileSync(join(dir, 'latin.txt'), iconv.encode(text.replaceAll('—', '-'), 'latin1'));
    writeFileSync(join(dir, 'u16.txt'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Grüße aus Köln', 'utf16le')]));
    const { docs, stats } = await collect([dir]);
    expect(docs[0]!.text).toBe(text.replaceAll('—', '-'));
    expect(docs[1]!.text).toBe('Grüße aus Köln');
    expect(stats.repairedChars).toBe(0);
    expect(Object.keys(stats.encodings).sort()).toEqual(['utf-16le', 'windows-1252']);
  });
});

describe('reading in chunks', () => {
  // Files are read 1 MiB at a time and decoded 64 KiB at a time: characters, genuine U+FFFD and
  // invalid bytes that straddle those boundaries must come out as they would from one whole read.
  it('keeps multi-byte characters, genuine U+FFFD and repairs exact across read and decode boundaries', async () => {
    const dir = tmp();
    const texts: string[] = [];
    const lines: Buffer[] = [];
    let size = 0;
    /** Appends a JSONL line whose text has `mark` (raw bytes) starting at file offset `at`, if given. */
    const add = (text: string, at?: number, mark?: Buffer): void => {
      let line = Buffer.from(JSON.stringify({ text }) + '\n');
      if (at !== undefined && mark) {
        const prefix = Buffer.from('{"text":"');
        const pad = at - size - prefix.length;
        line = Buffer.concat([prefix, Buffer.from('x'.repeat(pad)), mark, Buffer.from('tail"}\n')]);
        text = 'x'.repeat(pad) + (mark.equals(Buffer.from([0xff])) ? '\ufffd' : mark.toString('utf8')) + 'tail';
      }
      texts.push(text);
      lines.push(line);
      size += line.length;
    };
    const fill = (until: number): void => {
      for (let i = 0; size < until - 3000; i++) add(`Grüße aus Köln, 木工 ${i} 😀 — `.repeat(1 + (i % 40)));
    };
    fill(60000);
    add('', 65535, Buffer.from('\ufffd')); // a genuine U+FFFD over the first 64 KiB edge
    fill(131000);
    add('', 131071, Buffer.from('😀')); // four bytes over the second edge
    fill((1 << 20) - 5000);
    add('', (1 << 20) - 1, Buffer.from([0xff])); // an invalid byte just before the 1 MiB read edge
    fill((1 << 20) + 60000);
    add('', (1 << 20) + 65536 - 1, Buffer.from('é'));
    fill(3 << 20);
    writeFileSync(join(dir, 'big.jsonl'), Buffer.concat(lines));
    const { docs, stats } = await collect([dir]);
    expect(docs.map((d) => d.text)).toEqual(texts);
    expect(docs[texts.length - 1]!.source).toBe(`${join(dir, 'big.jsonl')}:${texts.length}`);
    expect(stats.repairedChars).toBe(1);
    expect(stats.bytesRead).toBe(size);

    // The same texts in UTF-16LE with a BOM (decoded through iconv, which is given copies of the reused buffers).
    const u16 = join(dir, 'u16.txt');
    const body = texts.slice(0, 1500).join('\n\n');
    writeFileSync(u16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(body, 'utf16le')]));
    const r = await collect([u16], { maxDocChars: 10_000_000 });
    // (Plain text is split into documents at blank lines and trimmed: compare the characters, not the layout.)
    const flat = (t: string): string => t.replace(/\s+/g, ' ').trim();
    expect(flat(r.docs.map((d) => d.text).join(' '))).toBe(flat(body));
    expect(r.stats.encodings).toEqual({ 'utf-16le': 1 });
    expect(r.stats.repairedChars).toBe(0);
  });
});

describe('bad input', () => {
  it('skips binary files', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'a.txt'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 1, 2, 3]));
    const { docs, stats } = await collect([dir]);
    expect(docs).toEqual([]);
    expect(stats.filesSkipped[0]!.reason).toMatch(/binary/);
    expect(sniff(Buffer.from('plain text\n')).binary).toBe(false);
  });

  it('repairs invalid UTF-8 and counts the repairs (not genuine U+FFFD)', async () => {
    const dir = tmp();
    const good = Buffer.from('Good text with ümlauts and a real \ufffd replacement char. '.repeat(10));
    writeFileSync(join(dir, 'a.txt'), Buffer.concat([good, Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(' end')]));
    const { docs, stats } = await collect([dir]);
    expect(docs[0]!.text.endsWith('\ufffd(\ufffd end')).toBe(true);
    expect(stats.repairedChars).toBe(2);
    expect(stats.encodings).toEqual({ 'utf-8': 1 });
  });

  it('streams a huge single line without holding it whole, and skips over-long JSONL lines', async () => {
    const dir = tmp();
    const word = 'turning ';
    writeFileSync(join(dir, 'big.txt'), word.repeat(400_000)); // 3.2 MB, no newline
    const { docs } = await collect([join(dir, 'big.txt')], { maxDocChars: 100_000 });
    expect(docs.length).toBe(32);
    expect(Math.max(...docs.map((d) => d.text.length))).toBeLessThanOrEqual(100_000);
    expect(docs.map((d) => d.text).join('')).toBe(word.repeat(400_000));
    writeFileSync(join(dir, 'big.jsonl'), `{"text":"${'x'.repeat(50_000)}"}\n{"text":"ok"}\n`);
    const j = await collect([join(dir, 'big.jsonl')], { maxLineChars: 10_000 });
    expect(j.docs.map((d) => d.text)).toEqual(['ok']);
    expect(j.stats.badLines[0]).toMatchObject({ line: 1, error: 'line longer than 10,000 characters (the limit for one record): skipped; split the record or raise maxLineChars' });
  });

  it('reports unreadable files, broken links and symlink loops instead of failing', async () => {
    const dir = tmp();
    mkdirSync(join(dir, 'a'));
    writeFileSync(join(dir, 'a', 'ok.txt'), 'fine');
    symlinkSync(join(dir), join(dir, 'a', 'loop')); // a/loop -> dir (contains a)
    symlinkSync(join(dir, 'self'), join(dir, 'self')); // ELOOP
    symlinkSync(join(dir, 'missing.txt'), join(dir, 'dangling.txt'));
    const { docs, stats } = await collect([dir, '/proc/self/mem', join(dir, 'nope.txt')]);
    expect(docs.map((d) => d.text)).toEqual(['fine']);
    const reasons = Object.fromEntries(stats.filesSkipped.map((s) => [s.path, s.reason]));
    expect(reasons[join(dir, 'a', 'loop')]).toMatch(/symbolic link loop/);
    expect(reasons[join(dir, 'self')]).toBe('symbolic link loop');
    expect(reasons[join(dir, 'dangling.txt')]).toBe('broken symbolic link');
    expect(reasons['/proc/self/mem']).toMatch(/read error|binary/);
    expect(reasons[join(dir, 'nope.txt')]).toBe('does not exist');
  });

  it('does not follow links inside a chosen folder that lead out of it (a folder is not a way into /etc)', async () => {
    const dir = tmp(), outside = tmp();
    writeFileSync(join(outside, 'secret.txt'), 'not part of the corpus');
    mkdirSync(join(dir, 'docs'));
    writeFileSync(join(dir, 'docs', 'ok.txt'), 'fine');
    symlinkSync(outside, join(dir, 'elsewhere')); // a folder outside
    symlinkSync(join(outside, 'secret.txt'), join(dir, 'secret.txt')); // a file outside
    symlinkSync(join(dir, 'docs', 'ok.txt'), join(dir, 'inside.txt')); // a link that stays inside: read
    const { docs, stats } = await collect([dir]);
    expect(docs.map((d) => d.text)).toEqual(['fine', 'fine']);
    const reasons = Object.fromEntries(stats.filesSkipped.map((s) => [s.path, s.reason]));
    expect(reasons[join(dir, 'elsewhere')]).toMatch(/symbolic link that leads outside the chosen folder/);
    expect(reasons[join(dir, 'secret.txt')]).toMatch(/symbolic link that leads outside the chosen folder/);
    // a file named explicitly is the user's choice, wherever it lives
    const named = await collect([join(dir, 'secret.txt')]);
    expect(named.docs.map((d) => d.text)).toEqual(['not part of the corpus']);
  });

  it('never modifies the originals', async () => {
    const dir = tmp();
    const bytes = Buffer.concat([Buffer.from('Text  with   spaces\r\n'), Buffer.from([0xff])]);
    writeFileSync(join(dir, 'a.txt'), bytes);
    await collect([dir]);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(dir, 'a.txt')).equals(bytes)).toBe(true);
  });
});
