/** Tiny models and datasets for engine tests, made fresh in a temp folder (deterministic by seed). */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../src-main/engine/models';
import { prepareCorpus } from '../../src-main/data/prepare';
import { Rng } from '../../src-main/engine/models/rng';
import { trainDomainTokenizer, extendTokenizerDir } from '../../src-main/tokenizer/service';
import { readExtensionManifest } from '../../src-main/tokenizer/extend';
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

/**
 * A tiny llama, a small corpus of wood-turning words, the model's tokenizer extended with the 4 best domain
 * tokens trained on it (`tok`, its manifest) and the corpus packed with that tokenizer (`dataset`), all under
 * one fresh folder (`base`): the setup of the tests of runs with new-token rows.
 */
export async function tinyExtendedTokenizer() {
  const model = await tinyModel('llama');
  const base = tempDir();
  const corpus = path.join(base, 'corpus');
  mkdirSync(corpus);
  const rng = new Rng(4);
  const words = ['spindle', 'tailstock', 'headstock', 'faceplate', 'chuck', 'gouge', 'skew', 'the', 'a', 'turn'];
  for (let d = 0; d < 12; d++) writeFileSync(path.join(corpus, `d${d}.txt`), Array.from({ length: 150 }, () => words[Math.floor(rng.next() * words.length)]).join(' ') + '.\n');
  const cands = await trainDomainTokenizer({ baseDir: model, corpus: [corpus], maxCandidates: 30 });
  const tok = path.join(base, 'tok');
  await extendTokenizerDir({ baseDir: model, candidates: cands, topN: 4, outDir: tok });
  const manifest = readExtensionManifest(tok);
  const dataset = path.join(base, 'ds');
  await prepareCorpus({ inputs: [corpus], out: dataset, tokenizerDir: tok, blockSize: 32, seed: 1, valFraction: 0.1 });
  return { model, base, corpus, tok, manifest, dataset };
}
