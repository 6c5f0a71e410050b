import { it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTinyModel, validateModelFolder } from '../../../../src-main/engine/models';

const BUNDLED = path.resolve(__dirname, '../../../../resources/models/tiny-default');

it('the bundled tiny-default model is valid and equals `model create-tiny --arch llama --seed 0`', async () => {
  const ins = await validateModelFolder(BUNDLED);
  expect(ins.config).toMatchObject({ family: 'llama', hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2 });
  expect(ins.config.vocabSize).toBe(ins.tokenizer.vocabSize);
  const tmp = mkdtempSync(path.join(tmpdir(), 'lathe-bundled-'));
  try {
    await createTinyModel('llama', tmp, { seed: 0, dtype: 'f32' });
    for (const f of readdirSync(tmp)) {
      expect(readFileSync(path.join(BUNDLED, f)).equals(readFileSync(path.join(tmp, f))), f).toBe(true);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
