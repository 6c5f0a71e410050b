/**
 * One measurement for the gguf bench in its own process, printing one JSON line with the seconds, the bytes
 * written and the process's peak RSS (worker threads included). Jobs:
 * - export: a whole GGUF (or merged safetensors) export of a model + adapter run, verification off;
 * - writer: the GGUF writer alone — `tensors` synthetic [rows, cols] f32 tensors converted/quantized as the export
 *   does after reading and merging each tensor (QuantPool.stream, 2 threads), to one file; `joined`: the
 *   previous path (each tensor's bytes joined in memory, then written) as the peer.
 * Args: one JSON object (GgufChildJob).
 */
import { rmSync } from 'node:fs';
import { exportModel } from '../../src-main/export';
import { GgmlType } from '../../src-main/export/gguf/format';
import { QuantPool } from '../../src-main/export/gguf/pool';
import { GgufFileWriter, kv } from '../../src-main/export/gguf/writer';
import { Rng } from '../../src-main/engine/models/rng';

export type GgufChildJob =
  | { kind: 'export'; model: string; run: string; out: string; format: 'gguf' | 'merged'; quant?: string }
  | { kind: 'writer'; out: string; type: 'F16' | 'BF16' | 'Q8_0' | 'Q4_K'; tensors: number; rows: number; cols: number; joined?: boolean };

/** CPU time of the process, all threads (user + system): the work, whatever else runs on the machine. */
let cpuStart = process.cpuUsage();
function cpuSeconds(): number {
  const u = process.cpuUsage(cpuStart);
  return (u.user + u.system) / 1e6;
}

const job = JSON.parse(process.argv[2]!) as GgufChildJob;
const t0 = performance.now();
let bytes: number;
if (job.kind === 'export') {
  const r = await exportModel(job.format === 'gguf'
    ? { format: 'gguf', model: job.model, adapter: job.run, out: job.out, quant: job.quant as 'f16', verify: false, name: 'bench' }
    : { format: 'merged', model: job.model, adapter: job.run, out: job.out, dtype: 'f16', verify: false });
  bytes = r.tensorBytes;
} else {
  const type = GgmlType[job.type];
  const src = new Rng(1).normalArray(job.rows * job.cols, 0.02);
  const infos = Array.from({ length: job.tensors }, (_, i) => ({ name: `blk.${i}.ffn_up.weight`, shape: [job.rows, job.cols], type }));
  const pool = new QuantPool(2);
  const start = performance.now();
  cpuStart = process.cpuUsage(); // the synthetic data is made; measure the writer
  const w = await GgufFileWriter.create(job.out, [kv.str('general.architecture', 'llama')], infos);
  for (let i = 0; i < job.tensors; i++) {
    // The export's path: streamed in chunks (pool.stream); `joined`: the whole tensor's bytes first (pool.quantize).
    if (job.joined) await w.writeTensor(await pool.quantize(type, src, job.cols));
    else await w.writeTensorParts((write) => pool.stream(type, src, job.cols, write));
  }
  await w.finish();
  await pool.close();
  bytes = w.totalBytes;
  rmSync(job.out, { force: true });
  console.log(JSON.stringify({ seconds: (performance.now() - start) / 1000, bytes, peakRssMb: process.resourceUsage().maxRSS / 1024, cpuSeconds: cpuSeconds() }));
  process.exit(0);
}
console.log(JSON.stringify({ seconds: (performance.now() - t0) / 1000, bytes, peakRssMb: process.resourceUsage().maxRSS / 1024, cpuSeconds: cpuSeconds() }));
