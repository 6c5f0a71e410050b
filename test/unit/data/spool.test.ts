import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpoolWriter, decodeRecordTexts, readSpool, readSpoolBatches } from '../../../src-main/data/spool';
import { mulberry32 } from '../../../src-main/util/random';

/** Documents of every size around the batch size (one far bigger than a batch), non-ASCII included. */
function docs(): { source: string; text: string }[] {
  const r = mulberry32(11);
  const out: { source: string; text: string }[] = [];
  for (let i = 0; i < 300; i++) {
    const n = i === 150 ? 70000 : Math.floor(r() * 3000);
    let text = '';
    while (text.length < n) text += r() < 0.1 ? 'Grüße — 木工 ' : 'turning the bowl blank ';
    out.push({ source: `corpus/file-${i % 7}.jsonl:${i + 1}`, text: text.slice(0, n) });
  }
  return out;
}

async function written(dir: string): Promise<{ path: string; docs: { source: string; text: string }[] }> {
  const d = docs();
  const w = new SpoolWriter(join(dir, 'a.spool'));
  for (const x of d) await w.write(x);
  await w.close();
  return { path: w.path, docs: d };
}

describe('spool', () => {
  it('reads back in batches exactly what was written (records never split, one bigger than a batch)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-spool-'));
    try {
      const { path, docs: d } = await written(dir);
      const plain: string[] = [];
      for await (const x of readSpool(path)) plain.push(x.text);
      expect(plain).toEqual(d.map((x) => x.text));
      for (const batch of [1, 4096, 20000, 1 << 20]) {
        const got: { source: string; text: string }[] = [];
        let batches = 0;
        for await (const b of readSpoolBatches(path, batch)) {
          batches++;
          const { texts } = decodeRecordTexts(b.records);
          expect(texts.length).toBe(b.sources.length);
          texts.forEach((text, i) => got.push({ source: b.sources[i]!, text }));
        }
        expect(got).toEqual(d);
        if (batch === 4096) expect(batches).toBeGreaterThan(50);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stops with a clear error on a truncated spool, and can be left early', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-spool-'));
    try {
      const { path } = await written(dir);
      const full = readFileSync(path);
      // Left early: the read under way finishes before the file is closed (no error, no leak).
      for await (const b of readSpoolBatches(path, 4096)) { expect(b.sources.length).toBeGreaterThan(0); break; }
      truncateSync(path, statSync(path).size - 5);
      await expect((async () => { for await (const b of readSpoolBatches(path, 4096)) void b; })()).rejects.toThrow(/is truncated/);
      truncateSync(path, 3);
      await expect((async () => { for await (const b of readSpoolBatches(path, 4096)) void b; })()).rejects.toThrow(/is truncated \(3 stray bytes/);
      expect(full.length).toBeGreaterThan(100000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('stays intact across many hand-offs to the disk (buffers are reused once written)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-spool-'));
    try {
      const w = new SpoolWriter(join(dir, 'big.spool'));
      const r = mulberry32(5);
      const want: string[] = [];
      for (let i = 0; i < 6000; i++) {
        const text = `${i} `.repeat(200 + Math.floor(r() * 800));
        want.push(text);
        const p = i % 2 ? w.write({ source: `s${i}`, text }) : w.writeRaw(`s${i}`, Buffer.from(text), text.length);
        if (p) await p;
      }
      await w.close();
      expect(statSync(w.path).size).toBeGreaterThan(12 << 20);
      let i = 0;
      for await (const d of readSpool(w.path)) { expect(d.text).toBe(want[i]); expect(d.source).toBe(`s${i}`); i++; }
      expect(i).toBe(6000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a file it cannot write instead of crashing', async () => {
    const w = new SpoolWriter(join(tmpdir(), 'lathe-no-such-folder-' + process.pid, 'x.spool'));
    await w.write({ source: 's', text: 'text' });
    await expect(w.close()).rejects.toThrow(/Writing .*x\.spool failed/);
  });
});
