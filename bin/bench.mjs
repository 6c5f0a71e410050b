#!/usr/bin/env node
// `npm run bench [-- name ...]`: runs the bench modules listed in test/bench/index.ts and prints a
// markdown table per bench (paste into BENCHMARKS.md with the command and the machine).
import { register } from 'tsx/esm/api';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
register();
// Benches run with the job processes' V8 flags, as the app runs the work they measure.
const { relaunchWithJobFlags } = await import('../src-main/util/v8-flags.ts');
const relaunched = relaunchWithJobFlags(fileURLToPath(import.meta.url), process.argv.slice(2));
if (relaunched !== null) process.exit(relaunched);
const { benches } = await import('../test/bench/index.ts');
const only = process.argv.slice(2);
console.log(`# Lathe bench — ${new Date().toISOString()}`);
console.log(`machine: ${os.cpus()[0]?.model ?? 'cpu'} × ${os.cpus().length}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform}-${process.arch}, Node ${process.version}\n`);
for (const b of benches) {
  if (only.length && !only.includes(b.name)) continue;
  const rows = [];
  const mod = await b.load();
  console.log(`## ${b.name}\n`);
  await mod.bench((row) => {
    rows.push(row);
    console.error(`[${b.name}] ${JSON.stringify(row)}`);
  });
  if (rows.length) {
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    console.log(`| ${cols.join(' | ')} |\n|${cols.map(() => '---').join('|')}|`);
    for (const r of rows) console.log(`| ${cols.map((c) => (r[c] === undefined ? '' : String(r[c]))).join(' | ')} |`);
    console.log('');
  }
}
