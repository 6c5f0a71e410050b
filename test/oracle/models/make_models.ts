/**
 * Writes the tiny model of every architecture (f32, seed 0) into a folder, for gen_fixtures.py:
 *   npx tsx test/oracle/models/make_models.ts /tmp/lathe-tiny
 */
import { createTinyModel, TINY_ARCHS } from '../../../src-main/engine/models';
import path from 'node:path';

const out = process.argv[2];
if (!out) throw new Error('usage: make_models.ts OUT_DIR');
for (const arch of TINY_ARCHS) {
  await createTinyModel(arch, path.join(out, arch), { seed: 0, dtype: 'f32' });
  console.log(`wrote ${arch}`);
}
// For gen_fixtures.py's loader check: the llama model again in bf16 (sharded) and f16.
await createTinyModel('llama', path.join(out, 'llama-bf16-sharded'), { seed: 0, dtype: 'bf16', maxShardBytes: 100_000 });
await createTinyModel('llama', path.join(out, 'llama-f16'), { seed: 0, dtype: 'f16' });
console.log('wrote llama-bf16-sharded, llama-f16');
