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
