/**
 * One GGUF (or merged safetensors) export in its own process, for the gguf bench: prints one JSON line with
 * the seconds, the bytes written and the process's peak RSS (worker threads included). Verification off:
 * the bench measures the writer. Args: one JSON object (GgufChildJob).
 */
import { exportModel } from '../../src-main/export';

export interface GgufChildJob { model: string; run: string; out: string; format: 'gguf' | 'merged'; quant?: string }

const job = JSON.parse(process.argv[2]!) as GgufChildJob;
const t0 = performance.now();
const r = await exportModel(job.format === 'gguf'
  ? { format: 'gguf', model: job.model, adapter: job.run, out: job.out, quant: job.quant as 'f16', verify: false, name: 'bench' }
  : { format: 'merged', model: job.model, adapter: job.run, out: job.out, dtype: 'f16', verify: false });
const seconds = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ seconds, bytes: r.tensorBytes, peakRssMb: process.resourceUsage().maxRSS / 1024 }));
