import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BlockPacker, openDataset, writeManifest, type DatasetManifest } from '../../../src-main/data/pack/dataset';
import { HEADER_BYTES } from '../../../src-main/data/pack/shards';
import { SftPacker } from '../../../src-main/data/sft/pack';
import { makeValSelector, mixStreams, planMix } from '../../../src-main/data/mix';
import { SpoolWriter } from '../../../src-main/data/spool';
import { tmp } from './helpers';

function manifest(kind: 'pretrain' | 'sft', blockSize: number, tokenBytes: 2 | 4, splits: DatasetManifest['splits']): DatasetManifest {
  return { format: 'lathe-dataset', version: 1, kind, tokenizer: { hash: 'h', vocabSize: 70000, eosId: 0 }, blockSize, tokenBytes, splits, createdAt: 'now' };
}

describe('pretraining blocks', () => {
  it.each([2, 4] as const)('joins documents with EOS, cuts fixed blocks, reads back by index (uint%s)', (tb) => {
    const dir = tmp();
    const eos = 9;
    const p = new BlockPacker(dir, 'train', 4, tb, eos);
    const big = tb === 4 ? 70000 : 60000;
    p.addDoc([1, 2, 3]);
    p.addDoc([4, 5, 6, 7, 8, big]);
    p.addDoc([]);
    const info = p.finish();
    // stream: 1 2 3 E 4 5 6 7 8 big E E -> [1 2 3 E] [4 5 6 7] [8 big E E]
    expect(info).toMatchObject({ rows: 3, tokens: 12, docs: 3, lastRowTokens: 4 });
    writeManifest(dir, manifest('pretrain', 4, tb, { train: info }));
    const ds = openDataset(dir);
    const r = ds.split('train');
    expect(r.rows).toBe(3);
    expect([...r.row(2)]).toEqual([8, big, eos, eos]);
    expect([...r.row(0)]).toEqual([1, 2, 3, eos]);
    expect(() => r.row(3)).toThrow(RangeError);
    r.close();
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const bytes = readFileSync(join(dir, 'train-00000.bin'));
    expect(bytes.toString('latin1', 0, 8)).toBe('LATHETOK');
    expect(bytes.length).toBe(HEADER_BYTES + 3 * 4 * tb);
  });

  it('pads the final partial row with EOS and records its valid length', () => {
    const dir = tmp();
    const p = new BlockPacker(dir, 'val-domain', 8, 2, 0);
    p.addDoc([5, 5, 5]);
    expect(p.finish()).toMatchObject({ rows: 1, tokens: 4, lastRowTokens: 4 });
  });

  it('rejects a folder without a complete manifest, and unknown splits', () => {
    const dir = tmp();
    expect(() => openDataset(dir)).toThrow(/No manifest\.json/);
    const p = new BlockPacker(dir, 'train', 2, 2, 0);
    p.addDoc([1]);
    writeManifest(dir, manifest('pretrain', 2, 2, { train: p.finish() }));
    expect(() => openDataset(dir).split('val-general')).toThrow(/no split "val-general" \(it has train\)/);
  });
});

describe('SFT packing', () => {
  it('packs samples per row with masks, segment ids and restarting positions', () => {
    const dir = tmp();
    const p = new SftPacker(dir, 'train', 8, 2, 99, 'drop', true);
    expect(p.add([1, 2, 3], [0, 1, 1])).toBe(true);
    expect(p.add([4, 5, 6, 7], [0, 0, 1, 1])).toBe(true);
    expect(p.add([1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1])).toBe(false); // too long: dropped
    expect(p.add([8, 9], [0, 0])).toBe(false); // nothing to learn
    expect(p.add([10, 11, 12], [0, 1, 1])).toBe(true);
    const info = p.finish();
    expect(info).toMatchObject({ docs: 3, rows: 2, tokens: 10, lossTokens: 6 });
    expect(p.dropped).toBe(2);
    writeManifest(dir, manifest('sft', 8, 2, { train: info }));
    const r = openDataset(dir).split('train');
    const rows = [r.sftRow(0), r.sftRow(1)];
    const row0 = rows.find((x) => x.ids[0] === 1)!;
    expect([...row0.ids]).toEqual([1, 2, 3, 4, 5, 6, 7, 99]);
    expect([...row0.mask]).toEqual([0, 1, 1, 0, 0, 1, 1, 0]);
    expect([...row0.segments]).toEqual([1, 1, 1, 2, 2, 2, 2, 0]);
    expect([...row0.positions]).toEqual([0, 1, 2, 0, 1, 2, 3, 0]);
    r.close();
  });

  it('round-trips rows of an odd block size (unaligned segment ids)', () => {
    const dir = tmp();
    const p = new SftPacker(dir, 'train', 5, 4, 7, 'drop', true);
    p.add([70000, 2], [0, 1]);
    p.add([3, 4, 5], [1, 1, 0]);
    writeManifest(dir, manifest('sft', 5, 4, { train: p.finish() }));
    const row = openDataset(dir).split('train').sftRow(0);
    expect([...row.ids]).toEqual([70000, 2, 3, 4, 5]);
    expect([...row.mask]).toEqual([0, 1, 1, 1, 0]);
    expect([...row.segments]).toEqual([1, 1, 2, 2, 2]);
  });

  it('truncates instead of dropping when asked, and can leave samples unpacked', () => {
    const dir = tmp();
    const p = new SftPacker(dir, 'train', 4, 2, 0, 'truncate', false);
    expect(p.add([1, 2, 3, 4, 5, 6], [0, 0, 1, 1, 1, 1])).toBe(true);
    expect(p.add([7], [1])).toBe(true);
    const info = p.finish();
    expect(p.truncated).toBe(1);
    expect(info).toMatchObject({ rows: 2, tokens: 5, lossTokens: 3 });
  });
});

describe('mixing and splits', () => {
  it('plans the ratio (in tokens), oversampling and capping', () => {
    const a = planMix(1000, 10_000, 0.5, 4);
    expect(a).toMatchObject({ domainRepeat: 1, generalTarget: 1000, achievedRatio: 0.5 });
    expect(a.generalRepeat).toBeCloseTo(0.1);
    const b = planMix(1000, 100, 0.5, 4);
    expect(b.generalRepeat).toBe(4);
    expect(b.achievedRatio).toBeCloseTo(1000 / 1400);
    expect(b.warnings[0]).toMatch(/general corpus is too small/);
    const c = planMix(1000, 100_000, 0.25, 4, 8000);
    expect(c).toMatchObject({ domainRepeat: 2, domainTarget: 2000, generalTarget: 6000 });
  });

  it('streams a seeded, interleaved mix with the planned amounts', async () => {
    const dir = tmp();
    const d = new SpoolWriter(join(dir, 'd'));
    const g = new SpoolWriter(join(dir, 'g'));
    for (let i = 0; i < 100; i++) await d.write({ text: 'd'.repeat(10), source: `d${i}` });
    for (let i = 0; i < 1000; i++) await g.write({ text: 'g'.repeat(10), source: `g${i}` });
    await d.close();
    await g.close();
    const plan = planMix(1000, 10_000, 0.4, 4, 5000); // domain 2000 chars = 2 passes, general 3000 = 0.3 of it
    const run = async (seed: number) => { const out: string[] = []; for await (const x of mixStreams(d.path, g.path, plan, seed)) out.push(x.source); return out; };
    const a = await run(5);
    expect(a.filter((s) => s.startsWith('d')).length).toBe(200);
    const gen = a.filter((s) => s.startsWith('g')).length;
    expect(gen).toBeGreaterThan(250);
    expect(gen).toBeLessThan(350);
    // Interleaved: domain documents are spread through the whole stream, not bunched.
    const firstHalf = a.slice(0, a.length / 2).filter((s) => s.startsWith('d')).length;
    expect(firstHalf).toBeGreaterThan(70);
    expect(firstHalf).toBeLessThan(130);
    expect(await run(5)).toEqual(a);
    expect(await run(6)).not.toEqual(a);
    expect(existsSync(d.path)).toBe(true);
  });

  it('selects validation documents evenly and deterministically', () => {
    const sel = makeValSelector(0.1, 3);
    const picks = Array.from({ length: 1000 }, (_, i) => sel(i));
    expect(picks.filter(Boolean).length).toBe(100);
    expect(Array.from({ length: 1000 }, (_, i) => makeValSelector(0.1, 3)(i))).toEqual(picks);
  });
});
