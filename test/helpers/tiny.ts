/** Tiny models and datasets for engine tests, made fresh in a temp folder (deterministic by seed). */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel } from '../../src-main/engine/models';
import { ModelWeights, writeSafetensors } from '../../src-main/engine/safetensors';
import { prepareCorpus } from '../../src-main/data/prepare';
import { Rng } from '../../src-main/engine/models/rng';
import { trainDomainTokenizer, extendTokenizerDir } from '../../src-main/tokenizer/service';
import { readExtensionManifest } from '../../src-main/tokenizer/extend';
import { loadTokenizerDir } from '../../src-main/data/tokenize';
import { chatRendererForModel } from '../../src-main/templates/for-model';
import { CancelledError } from '../../src-main/util/progress';
import { tempDir } from './services';

export async function tinyModel(arch = 'llama', seed = 1): Promise<string> {
  const dir = path.join(tempDir('lathe-tiny-'), arch);
  await createTinyModel(arch, dir, { seed });
  return dir;
}

/** Rewrites a tiny model's weights (as F32) with `change` applied to each tensor's values: broken-weight tests. */
export async function rewriteWeights(dir: string, change: (name: string, data: Float32Array) => void): Promise<void> {
  const mw = await ModelWeights.open(dir);
  const tensors = [];
  for (const n of mw.names()) {
    const data = await mw.readF32(n);
    change(n, data);
    tensors.push({ name: n, dtype: 'F32' as const, shape: mw.entry(n).shape, data });
  }
  await mw.close();
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
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

const TINY_DEFAULT = path.resolve(__dirname, '../../resources/models/tiny-default');
const PAIR_WORDS = 'the lathe spins the blank while the gouge cuts a clean bevel along the grain of maple oak and walnut'.split(' ');

/**
 * The bundled tiny model copied into a fresh folder (QLoRA writes its NF4 store beside the weights) and a
 * preference dataset of `pairs` synthetic pairs ({prompt, chosen, rejected}, word salad drawn with `seed`)
 * prepared through the model's own chat template: the setup of the preference-tuning trainer tests.
 */
export async function tinyPreferenceDataset(prefix: string, o: { pairs: number; seed: number; blockSize: number; valFraction: number }): Promise<{ model: string; dataset: string }> {
  const model = path.join(tempDir(`${prefix}-model-`), 'tiny');
  cpSync(TINY_DEFAULT, model, { recursive: true });
  const root = tempDir(`${prefix}-data-`);
  const rng = new Rng(o.seed);
  const say = (n: number) => Array.from({ length: n }, () => PAIR_WORDS[Math.floor(rng.next() * PAIR_WORDS.length)]!).join(' ');
  const lines = Array.from({ length: o.pairs }, (_, i) => JSON.stringify({ prompt: `Question ${i}: ${say(4)}?`, chosen: `Good: ${say(5)}.`, rejected: `Bad: ${say(3)}!` }));
  writeFileSync(path.join(root, 'pairs.jsonl'), lines.join('\n'));
  const tok = await loadTokenizerDir(model);
  const dataset = path.join(root, 'ds');
  await prepareCorpus({ mode: 'preference', inputs: [path.join(root, 'pairs.jsonl')], out: dataset, tokenizer: tok, renderer: chatRendererForModel(model, tok).renderer, blockSize: o.blockSize, valFraction: o.valFraction, seed: 3 });
  return { model, dataset };
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

/** A trainer pause hook that stops the run (like the Stop button) once `n` steps are done. */
export function stopAfter(n: number): () => Promise<void> {
  let calls = 0;
  return async () => {
    if (calls++ >= n) throw new CancelledError();
  };
}
