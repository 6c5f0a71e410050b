/** Worker-thread entry: quantizes row chunks for the GGUF writer (pure function of the message). */
import { parentPort } from 'node:worker_threads';
import { quantize } from './quant';
import type { GgmlType } from './format';

interface Job { id: number; type: GgmlType; data: Float32Array; rowLen: number }

parentPort!.on('message', (m: Job | { exit: true }) => {
  if ('exit' in m) { process.exit(0); }
  try {
    const bytes = quantize(m.type, m.data, m.rowLen);
    parentPort!.postMessage({ id: m.id, bytes }, [bytes.buffer as ArrayBuffer]);
  } catch (err) {
    parentPort!.postMessage({ id: m.id, error: (err as Error).message });
  }
});
