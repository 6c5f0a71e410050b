/**
 * Data pipeline bench: generates a corpus (LATHE_BENCH_DATA_MB, default 1024 MB of JSONL built from
 * the bundled sample sentences, with planted duplicates, near-duplicates and PII), then measures:
 *   1. import + normalize + boilerplate + quality + language + exact dedup + PII  (two passes, as prepareCorpus runs them)
 *   2. near-dedup (MinHash + LSH) on the cleaned documents
 *   3. tokenize + pack, next to the bare `tokenizers` encodeBatch speed on the same text
 * and the peak RSS. Targets: >= 50 MB/s, >= 10 MB/s, tokenizer speed, < 1 GB.
 * LATHE_BENCH_TOKENIZER=DIR uses a real tokenizer.json; otherwise a BPE is trained on 8 MB of the corpus.
 * LATHE_BENCH_DATA_QUICK=1 skips the tokenizer stage; LATHE_BENCH_THREADS=N sets the cleaning threads;
 * LATHE_BENCH_DATA_RUNS=N repeats stage 1 and reports the median.
 */
import { closeSync, createWriteStream, fsyncSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveCleanConfig } from '../../src-main/data/config';
import { Cleaner } from '../../src-main/data/clean/pipeline';
import { CleanPool, autoThreads, cleanFirstPass, cleanSecondPass, writeKept } from '../../src-main/data/clean/pool';
import { NearDedup } from '../../src-main/data/clean/minhash';
import { rng } from '../../src-main/data/clean/hash';
import { defaultImportOptions, importPaths, newImportStats } from '../../src-main/data/import';
import { BlockPacker } from '../../src-main/data/pack/dataset';
import { SpoolWriter, readSpool } from '../../src-main/data/spool';
import { loadTokenizerDir } from '../../src-main/data/tokenize';

const MB = 1024 * 1024;

function sentences(): string[] {
  const root = join(import.meta.dirname, '../../resources/corpus');
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(md|txt)$/.test(f)) for (const s of readFileSync(p, 'utf8').split(/(?<=[.!?])\s+/)) if (s.length > 40 && !s.includes('#')) out.add(s.trim());
    }
  };
  walk(root);
  return [...out];
}

export async function generate(dir: string, mb: number): Promise<number> {
  const r = rng(42);
  const pool = sentences();
  const words = [...new Set(pool.join(' ').toLowerCase().match(/[a-z]+/g)!)];
  const pii = ['Contact j.smith@example.com for details.', 'Call +1 (555) 010-4477 after six.', 'Card 4539 1488 0343 6467 was charged.', 'The host 10.20.30.40 is the shop server.'];
  const target = mb * MB;
  let written = 0, file = 0;
  const recent: string[] = [];
  while (written < target) {
    const ws = createWriteStream(join(dir, `part-${String(file++).padStart(3, '0')}.jsonl`));
    let fileBytes = 0;
    while (fileBytes < 64 * MB && written < target) {
      let text: string;
      const u = r();
      if (u < 0.04 && recent.length) text = recent[Math.floor(r() * recent.length)]!; // exact duplicate
      else if (u < 0.07 && recent.length) text = recent[Math.floor(r() * recent.length)]!.replace(/ the /, ' a ') + ' Edited.'; // near-duplicate
      else {
        const n = 12 + Math.floor(r() * 30);
        const parts: string[] = [];
        for (let i = 0; i < n; i++) {
          // Each content word swapped with probability 1/2: the prose keeps its function words and
          // shape, but unrelated documents share few word 5-grams, as in a real corpus (the pool has only
          // ~300 sentences; reused whole, every pair of documents would look 5-10% similar).
          const s = pool[Math.floor(r() * pool.length)]!.replace(/\b[a-z]{4,}\b/g, (w) => (r() < 0.5 ? words[Math.floor(r() * words.length)]! : w));
          parts.push(s);
          if (i % 5 === 4) parts.push('\n\n');
        }
        if (r() < 0.05) parts.push(pii[Math.floor(r() * pii.length)]!);
        text = parts.join(' ');
        if (recent.length < 1000) recent.push(text); else recent[Math.floor(r() * 1000)] = text;
      }
      const line = JSON.stringify({ text }) + '\n';
      if (!ws.write(line)) await new Promise<void>((res) => ws.once('drain', () => res()));
      fileBytes += Buffer.byteLength(line);
      written += Buffer.byteLength(line);
    }
    await new Promise<void>((res) => ws.end(() => res()));
    // On disk before anything is timed: a user's corpus was written long before, and the kernel
    // flushing this one in the background would otherwise compete with the stages for the CPU.
    const fd = openSync(ws.path as string, 'r');
    fsyncSync(fd);
    closeSync(fd);
  }
  return written;
}

export async function bench(report: (row: Record<string, unknown>) => void): Promise<void> {
  const mb = Number(process.env.LATHE_BENCH_DATA_MB ?? 1024);
  const root = mkdtempSync(join(tmpdir(), 'lathe-bench-data-'));
  let peak = 0;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 50);
  try {
    const corpus = join(root, 'corpus');
    (await import('node:fs')).mkdirSync(corpus);
    let t = performance.now();
    const bytes = await generate(corpus, mb);
    report({ stage: 'generate corpus', MB: +(bytes / MB).toFixed(1), seconds: +((performance.now() - t) / 1000).toFixed(1) });
    const inMB = bytes / MB;

    // Calibration: a trivial JS loop (hash over chars) runs at ~1 ns/char on an idle modern core;
    // a higher figure means the machine is shared or slow, and every JS stage below scales with it.
    {
      const str = 'abcdefghij'.repeat(250);
      const tc = performance.now();
      let h = 0;
      for (let r = 0; r < 20000; r++) for (let i = 0; i < str.length; i++) h = Math.imul(h ^ str.charCodeAt(i), 16777619);
      report({ stage: 'calibration: trivial JS loop', 'ns/char': +(((performance.now() - tc) * 1e6) / (20000 * str.length)).toFixed(2), note: h === 0.5 ? '' : '~1 on an idle core' });
    }

    // 0. Reference on this machine: read + decode + JSON.parse only (the ceiling for stage 1).
    t = performance.now();
    let refDocs = 0;
    for await (const d of importPaths([corpus], defaultImportOptions, newImportStats())) refDocs += d.text.length > 0 ? 1 : 0;
    const sRef = (performance.now() - t) / 1000;
    report({ stage: 'reference: import only (read+decode+JSON.parse)', MB: +inMB.toFixed(1), seconds: +sRef.toFixed(1), 'MB/s': +(inMB / sRef).toFixed(1), docsIn: refDocs });

    // 1. import + clean (no near-dedup), two passes through a spool, worker threads as prepareCorpus uses them.
    const cfg = resolveCleanConfig({ nearDedup: { enabled: false } });
    const threads = process.env.LATHE_BENCH_THREADS !== undefined ? Number(process.env.LATHE_BENCH_THREADS) : autoThreads(bytes);
    // LATHE_BENCH_DATA_RUNS=N repeats the stage (the host's speed varies from second to second); the
    // later stages use the last run's output.
    const runs = Math.max(1, Number(process.env.LATHE_BENCH_DATA_RUNS ?? 1));
    const speeds: number[] = [];
    let cleaner!: Cleaner, stats!: ReturnType<typeof newImportStats>, b!: SpoolWriter, s = 0;
    for (let run = 1; run <= runs; run++) {
      cleaner = new Cleaner(cfg);
      stats = newImportStats();
      t = performance.now();
      peak = 0;
      const pool = threads > 0 ? CleanPool.start(cfg, 1, threads) : null;
      const a = new SpoolWriter(join(root, 'a.spool'));
      await cleanFirstPass(cleaner, importPaths([corpus], defaultImportOptions, stats), pool, a);
      await a.close();
      b = new SpoolWriter(join(root, 'b.spool'));
      await cleanSecondPass(cleaner, a.path, pool, (x) => (x ? writeKept(b, x) : undefined));
      await b.close();
      await pool?.close();
      s = (performance.now() - t) / 1000;
      speeds.push(inMB / s);
      rmSync(a.path);
      report({
        stage: runs > 1 ? `import+clean+exact-dedup+PII (run ${run} of ${runs})` : 'import+clean+exact-dedup+PII', MB: +inMB.toFixed(1), seconds: +s.toFixed(1), 'MB/s': +(inMB / s).toFixed(1), target: '>= 50', threads,
        docsIn: stats.docs, docsOut: b.docs, exactDups: cleaner.exactDedup.removed, qualityRemoved: cleaner.quality.removed, piiDocs: cleaner.pii.modified, peakRSS_MB: Math.round(peak / MB),
      });
    }
    if (runs > 1) {
      const sorted = [...speeds].sort((x, y) => x - y);
      const median = runs % 2 ? sorted[(runs - 1) / 2]! : (sorted[runs / 2 - 1]! + sorted[runs / 2]!) / 2;
      report({ stage: `import+clean+exact-dedup+PII: median of ${runs} runs (min ${sorted[0]!.toFixed(1)}, max ${sorted[runs - 1]!.toFixed(1)})`, MB: +inMB.toFixed(1), 'MB/s': +median.toFixed(1), target: '>= 50', threads });
    }

    // 2. near-dedup on the cleaned documents.
    const cleanMB = (statSync(b.path).size) / MB;
    // The index is capped as prepareCorpus caps it (nearDedup.maxMemoryMB): the memory a user's run takes.
    const nd = new NearDedup(cfg.nearDedup.numPerm, cfg.nearDedup.bands, cfg.nearDedup.threshold, cfg.nearDedup.shingleWords, 1, cfg.nearDedup.maxMemoryMB * MB);
    t = performance.now();
    let near = 0;
    for await (const d of readSpool(b.path)) if (nd.check(d.text) >= 0) near++;
    s = (performance.now() - t) / 1000;
    report({ stage: 'near-dedup (MinHash 128 perm, 32 bands)', MB: +cleanMB.toFixed(1), seconds: +s.toFixed(1), 'MB/s': +(cleanMB / s).toFixed(1), target: '>= 10', nearDups: near, structureMB: Math.round(nd.bytes / MB), indexedDocs: nd.keptDocs, indexFull: nd.full, peakRSS_MB: Math.round(peak / MB) });

    // LATHE_BENCH_DATA_QUICK=1 stops here (the tokenizer stage takes minutes on a 1 GB corpus).
    if (process.env.LATHE_BENCH_DATA_QUICK === '1') return;

    // 3. tokenizer: given, or a BPE trained on the first 8 MB.
    let tokDir = process.env.LATHE_BENCH_TOKENIZER;
    if (!tokDir) {
      tokDir = join(root, 'tok');
      (await import('node:fs')).mkdirSync(tokDir);
      const sample: string[] = [];
      let n = 0;
      for await (const d of readSpool(b.path)) { sample.push(d.text); n += d.text.length; if (n > 8 * MB) break; }
      writeFileSync(join(root, 'train.txt'), sample.join('\n'));
      const tk = (await import('tokenizers')).default;
      const tok = new tk.Tokenizer(tk.BPE.empty());
      tok.setPreTokenizer(tk.byteLevelPreTokenizer(false));
      tok.train([join(root, 'train.txt')]);
      tok.addSpecialTokens(['<|endoftext|>']);
      tok.save(join(tokDir, 'tokenizer.json'));
    }
    const tok = await loadTokenizerDir(tokDir);
    const batches = async function* (): AsyncGenerator<string[]> {
      let batch: string[] = [], chars = 0;
      for await (const d of readSpool(b.path)) { batch.push(d.text); chars += d.text.length; if (chars >= MB) { yield batch; batch = []; chars = 0; } }
      if (batch.length) yield batch;
    };
    // One pass; the time inside encodeBatch and the time in packing/writing are summed separately, so
    // the packing overhead is measured on the same batches as the tokenizer (robust to machine noise).
    const outDir = join(root, 'packed');
    (await import('node:fs')).mkdirSync(outDir);
    const packer = new BlockPacker(outDir, 'train', 1024, tok.vocabSize <= 65536 ? 2 : 4, tok.eosId);
    let tEncode = 0, tPack = 0;
    t = performance.now();
    for await (const batch of batches()) {
      const t0 = performance.now();
      const encs = await tok.encodeBatch(batch);
      const t1 = performance.now();
      for (const ids of encs) packer.addDoc(ids);
      tEncode += t1 - t0;
      tPack += performance.now() - t1;
    }
    const info = packer.finish();
    s = (performance.now() - t) / 1000;
    report({ stage: 'tokenizers encodeBatch (inside the pass)', MB: +cleanMB.toFixed(1), seconds: +(tEncode / 1000).toFixed(1), 'MB/s': +(cleanMB / (tEncode / 1000)).toFixed(1), tokens: info.tokens, vocab: tok.vocabSize });
    report({ stage: 'packing + shard writes (inside the pass)', MB: +cleanMB.toFixed(1), seconds: +(tPack / 1000).toFixed(1), 'MB/s': +(cleanMB / (tPack / 1000)).toFixed(1), rows: info.rows });
    report({ stage: 'tokenize+pack total (read spool, encode, pack, write)', MB: +cleanMB.toFixed(1), seconds: +s.toFixed(1), 'MB/s': +(cleanMB / s).toFixed(1), target: 'tokenizer speed', peakRSS_MB: Math.round(peak / MB) });
    report({ stage: 'peak RSS, whole bench', MB: +inMB.toFixed(1), peakRSS_MB: Math.round(Math.max(peak, process.memoryUsage().rss) / MB), target: '< 1024' });
  } finally {
    clearInterval(timer);
    rmSync(root, { recursive: true, force: true });
  }
}
