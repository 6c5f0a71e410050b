/** Tiny models and datasets for engine tests, made fresh in a temp folder (deterministic by seed). */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../src-main/engine/models';
import { prepareCorpus } from '../../src-main/data/prepare';
import { Rng } from '../../src-main/engine/models/rng';
import { tempDir } from './services';

export async function tinyModel(arch = 'llama', seed = 1): Promise<string> {
  const dir = path.join(tempDir('lathe-tiny-'), arch);
  await createTinyModel(arch, dir, { seed });
  return dir;
}

const WORDS = 'the lathe spins the blank while the gouge cuts a clean bevel along the grain of maple oak and walnut bowls need sharp tools and steady hands'.split(' ');

/** A small synthetic domain corpus (varied word salad, so documents differ) packed with the model's tokenizer. */
export async function tinyDataset(modelDir: string, opts: { docs?: number; blockSize?: number; seed?: number } = {}): Promise<string> {
  const base = tempDir('lathe-ds-');
  const corpus = path.join(base, 'corpus');
  mkdirSync(corpus);
  const rng = new Rng(opts.seed ?? 7);
  for (let d = 0; d < (opts.docs ?? 24); d++) {
    const words = Array.from({ length: 300 }, () => WORDS[Math.floor(rng.next() * WORDS.length)]!);
    writeFileSync(path.join(corpus, `doc${d}.txt`), words.join(' ') + '.\n');
  }
  const out = path.join(base, 'dataset');
  await prepareCorpus({ inputs: [corpus], out, tokenizerDir: modelDir, blockSize: opts.blockSize ?? 32, seed: 1, valFraction: 0.1 });
  return out;
}
