/**
 * `exportGguf`: a trained LoRA run -> one GGUF file (merged weights, tokenizer, chat template) + an Ollama
 * Modelfile, checked by llama.cpp before it gets its final name.
 *
 * Flow: refuse unsupported families/quant types/tokenizers before writing anything -> write
 * `.<file>.<pid>.tmp` beside the destination, tensor by tensor (merged in f32, permuted/transposed to
 * llama.cpp's layout, quantized in worker threads) -> load it in llama.cpp and compare with Lathe's merged
 * model (tokenization, next-token probabilities, greedy continuation, held-out perplexity) -> rename to
 * `<name>-<QUANT>.gguf`, write the Modelfile. A file that fails the check is kept as `<name>-<QUANT>.failed.gguf`
 * with the reason in `<name>-<QUANT>.failed.txt` (for a bug report); a write error or cancel removes the temp file.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { openModel } from '../../engine/models';
import { ropeInvFreq, type ModelConfig } from '../../engine/models/config';
import { computeLogits } from '../../engine/train/infer';
import { tempPathFor, writeError } from '../../engine/safetensors/writer';
import { UserError, throwIfCancelled, type WorkOptions } from '../../util/progress';
import { addLoraDelta, loadTrainedAdapter } from '../adapter';
import { adaptedWeights, newRowsOf, resizedFromTrainedRows, trainedTokenizerDir } from '../export';
import { BLOCK, GGUF_QUANTS, GgmlType, type GgufQuant } from './format';
import { loadGguf, llamaGreedy, llamaNextProbs, llamaTokenize } from './llama-cpp';
import { architectureMetadata, checkSupported, ggufFamiliesText, ropeFreqFactors, tokenizerMetadata } from './metadata';
import { HELD_OUT_TEXT, heldOutText, type HeldOut } from './held-out';
import { findOllama, modelfileText, ollamaCreateCommand, ollamaName, ollamaTemplate } from './modelfile';
import { QuantPool } from './pool';
import { permuteRopeRows, planTensors, tensorType, transpose } from './tensors';
import { GgufFileWriter, type GgufTensorInfo } from './writer';
import type { GgufCheck, GgufResult } from './types';

export type { GgufCheck, GgufResult };

export interface GgufParams {
  model: string;
  adapter: string;
  /** Destination folder (created). */
  out: string;
  quant: GgufQuant;
  /** File and Ollama name stem (default: the model folder's name). */
  name?: string;
  tokenizerDir?: string;
  overwrite?: boolean;
  verify?: boolean;
}

export interface GgufOptions extends WorkOptions {
  /**
   * Held-out text for the tokenization and perplexity checks (default: the run's validation split decoded, or a
   * built-in English paragraph when the run has none to read; see held-out.ts).
   */
  heldOutText?: string;
  /** Quantization threads (default: up to 4, the cores available). */
  threads?: number;
  /** Changes a tensor's f32 data (GGUF name, llama.cpp layout) before it is written: tests inject faults with it. */
  transformTensor?: (name: string, data: Float32Array) => Float32Array;
}

/**
 * Limits of the check: F16 must reproduce Lathe's probabilities (max |Δp| ≤ 2e-3 on the tiny models); BF16
 * within its 8-bit mantissa; every type is held to a held-out perplexity increase that catches a broken file
 * without failing honest quantization noise (the measured numbers are in docs/export.md).
 */
export const GGUF_LIMITS: Record<GgufQuant, { maxProbDiff: number | null; maxPplIncrease: number }> = {
  f16: { maxProbDiff: 2e-3, maxPplIncrease: 0.01 },
  bf16: { maxProbDiff: 2e-2, maxPplIncrease: 0.03 },
  q8_0: { maxProbDiff: null, maxPplIncrease: 0.05 },
  q6_k: { maxProbDiff: null, maxPplIncrease: 0.10 },
  q5_k_m: { maxProbDiff: null, maxPplIncrease: 0.20 },
  q4_k_m: { maxProbDiff: null, maxPplIncrease: 0.35 },
};

export { HELD_OUT_TEXT };

export function ggufFileName(name: string, quant: GgufQuant): string {
  return `${name}-${quant.toUpperCase()}.gguf`;
}

function checkParams(p: GgufParams): void {
  if (!(GGUF_QUANTS as readonly string[]).includes(p.quant)) {
    throw new UserError('gguf.quant-unsupported', `"${String(p.quant)}" is not a GGUF type Lathe writes.`, `Choose one of: ${GGUF_QUANTS.join(', ')}.`);
  }
  if (p.name !== undefined && !/^[\w.-]{1,100}$/.test(p.name)) {
    throw new UserError('gguf.name', `The name "${p.name}" cannot be a file name.`, 'Use letters, digits, ".", "-" and "_" only.');
  }
}

/** Merged f32 data of one HF tensor (adapter applied; grown embedding/lm_head when tokens were added). */
type Source = (hf: string) => Promise<Float32Array>;

export async function exportGguf(p: GgufParams, opts: GgufOptions = {}): Promise<GgufResult> {
  checkParams(p);
  const t0 = Date.now();
  const report = (stage: string, fraction?: number, message?: string): void => opts.onProgress?.({ stage, fraction, message });
  report('Opening the model', 0);
  const modelDir = path.resolve(p.model);
  const { config, layout, weights } = await openModel(modelDir);
  const warnings: string[] = [];
  const pool = new QuantPool(opts.threads);
  let tmp: string | null = null;
  try {
    const why = checkSupported(config);
    if (why) throw new UserError('gguf.family-unsupported', `This model cannot be written as GGUF: ${why}.`, `Lathe writes GGUF for these families: ${ggufFamiliesText()}. Export as a merged Hugging Face model instead (llama.cpp's convert_hf_to_gguf.py can convert it).`);
    const adapter = await loadTrainedAdapter(p.adapter, config, layout);
    const rows = newRowsOf(adapter);
    const resized = rows ? await resizedFromTrainedRows(rows, adapter.params, config, layout, weights) : null;
    const vocab = resized?.vocabSize ?? config.vocabSize;
    const tokDir = path.resolve(p.tokenizerDir ?? trainedTokenizerDir(adapter) ?? modelDir);
    const tok = await tokenizerMetadata(tokDir, vocab, config);
    warnings.push(...tok.warnings);
    const runsWindow = config.family === 'gemma2' || config.family === 'gemma3'; // llama.cpp applies their windows
    if (config.slidingWindow !== null && config.slidingWindow < config.maxPositions && config.family !== 'gpt2' && !runsWindow) {
      warnings.push(`The model was trained with a ${config.slidingWindow}-token sliding window; llama.cpp attends to the whole context, so texts longer than the window may behave differently.`);
    }
    const sc = config.rope?.scaling;
    if (sc?.type === 'longrope') {
      warnings.push(`llama.cpp switches this model to its long-context RoPE factors whenever the context it is given is longer than ${sc.originalMaxPositions} tokens (Lathe and Hugging Face switch when the text is), so short texts in a long context may behave slightly differently.`);
    }
    const name = p.name ?? (path.basename(modelDir).replace(/[^\w.-]+/g, '-') || 'model');
    const outDir = path.resolve(p.out);
    const fileName = ggufFileName(name, p.quant);
    const target = path.join(outDir, fileName);
    if (existsSync(target) && !p.overwrite) {
      throw new UserError('export.out-exists', `${target} already exists.`, 'Choose another folder or name, or allow replacing it (--overwrite).');
    }
    const plan = planTensors(config, layout, vocab);
    const tied = !layout.lmHead;
    const infos: GgufTensorInfo[] = plan.map((t) => ({ name: t.name, shape: t.shape, type: tensorType(t, p.quant, config, tied) }));
    const kvs = [...architectureMetadata(config, p.quant, name), ...tok.kvs];

    const adapted = adaptedWeights(layout, adapter);
    const source: Source = async (hf) => {
      if (resized && hf === layout.embed) return resized.embed;
      if (resized && hf === layout.lmHead && resized.lmHead) return resized.lmHead;
      const W = await weights.readF32(hf);
      const a = adapted.get(hf);
      if (a) addLoraDelta(W, a.m, adapter.lora.rank, adapter.lora.scale, adapter.params, a.w.inOut);
      return W;
    };

    try {
      await fsp.mkdir(outDir, { recursive: true });
    } catch (err) {
      throw writeError(outDir, err);
    }
    tmp = tempPathFor(target);
    const counts: Record<string, number> = {};
    let writer: GgufFileWriter | null = null;
    try {
      writer = await GgufFileWriter.create(tmp, kvs, infos);
      for (let i = 0; i < plan.length; i++) {
        throwIfCancelled(opts.signal);
        const t = plan[i]!, info = infos[i]!;
        let data = await tensorData(t, config, source);
        if (opts.transformTensor) data = opts.transformTensor(t.name, data);
        const rowLen = info.shape[info.shape.length - 1]!;
        await writer.writeTensorParts((write) => pool.stream(info.type, data, rowLen, write));
        counts[BLOCK[info.type].name] = (counts[BLOCK[info.type].name] ?? 0) + 1;
        report('Writing the GGUF file', (i + 1) / plan.length, `${t.name} (${BLOCK[info.type].name})`);
      }
      await writer.finish();
      writer = null;
    } catch (err) {
      await writer?.abort();
      throw writeError(tmp, err);
    }
    const fileBytes = (await fsp.stat(tmp)).size;

    let check: GgufCheck | null = null;
    if (p.verify !== false) {
      report('Checking the file with llama.cpp', 0);
      const failedName = target.replace(/\.gguf$/, '.failed.gguf');
      try {
        const heldOut: HeldOut = opts.heldOutText !== undefined
          ? { text: opts.heldOutText, source: 'given', note: 'given by the caller' }
          : await heldOutText(adapter.train.dataset, tok.tokenizer, tokDir);
        if (tok.nfc) heldOut.text = heldOut.text.normalize('NFC'); // the difference is llama.cpp's, and warned about
        check = await checkGguf(tmp, p.quant, {
          modelDir, checkpoint: adapter.checkpointDir, tokDir, vocab, heldOut, tokenizer: tok.tokenizer, spliceSpecials: tok.specialsAlike,
        });
      } catch (err) {
        // llama.cpp refusing the file is a failed check too: keep it for the bug report, not under the real name.
        if ((err as { code?: string }).code === 'gguf.load-failed') {
          await fsp.rename(tmp, failedName);
          tmp = null;
          await fsp.writeFile(failedName.replace(/\.gguf$/, '.txt'), `${(err as Error).message}\n`).catch(() => undefined);
        }
        throw err;
      }
      report('Checking the file with llama.cpp', 1);
      opts.onLog?.('info', `GGUF check on ${check.heldOut.note}: tokenization ${check.tokenizationEqual ? 'equal' : 'DIFFERENT'}, max |Δp| ${check.maxAbsProbDiff.toExponential(2)}, `
        + `perplexity ${check.perplexity.toFixed(3)} vs ${check.referencePerplexity.toFixed(3)} (${(100 * check.perplexityIncrease).toFixed(2)}%).`);
      if (!check.passed) {
        const failed = failedName;
        await fsp.rename(tmp, failed);
        tmp = null;
        await fsp.writeFile(failed.replace(/\.gguf$/, '.txt'), `${check.reason}\n\n${JSON.stringify(check, null, 2)}\n`).catch(() => undefined);
        throw new UserError('export.verify-failed', `The GGUF file does not reproduce the trained model: ${check.reason}. It was kept as ${path.basename(failed)} (not under the real name).`,
          'This is a bug in Lathe\'s GGUF export; try f16, and report it with the model name and the .failed.txt file.');
      }
    }
    throwIfCancelled(opts.signal);
    report('Moving into place', 1);
    const ot = ollamaTemplate(tok.chatTemplate, tok.tokenizer.eosToken ?? null);
    if (ot.warning) warnings.push(ot.warning);
    const oName = ollamaName(name);
    try {
      await fsp.rename(tmp, target);
      tmp = null;
      await fsp.writeFile(path.join(outDir, 'Modelfile'), modelfileText(fileName, ot));
    } catch (err) {
      throw writeError(target, err);
    }
    return {
      file: target, quant: p.quant, fileBytes, tensors: plan.length, types: counts, pre: tok.pre, chatTemplate: tok.chatTemplate !== null,
      modelfile: path.join(outDir, 'Modelfile'), ollamaName: oName, ollamaCreate: ollamaCreateCommand(outDir, oName),
      ollamaAvailable: findOllama() !== null, check, warnings, loraModules: adapter.lora.modules.length, checkpoint: adapter.checkpointDir,
      step: adapter.step, vocabSize: vocab, seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    if (tmp) await fsp.rm(tmp, { force: true }).catch(() => undefined);
    await pool.close();
    await weights.close();
  }
}

/** One tensor's f32 data in llama.cpp's layout. */
async function tensorData(t: ReturnType<typeof planTensors>[number], cfg: ModelConfig, source: Source): Promise<Float32Array> {
  if (t.role === 'rope_freqs') return ropeFreqFactors(cfg, ropeInvFreq(cfg));
  if (t.role === 'rope_long' || t.role === 'rope_short') {
    const sc = cfg.rope!.scaling as { longFactor: number[]; shortFactor: number[] };
    return Float32Array.from(t.role === 'rope_long' ? sc.longFactor : sc.shortFactor);
  }
  let d = await source(t.hf!);
  if (t.transpose) d = transpose(d, t.shape[1]!, t.shape[0]!);
  if (t.permuteHeads !== null) d = permuteRopeRows(d, t.permuteHeads, t.shape.length === 2 ? t.shape[1]! : 1);
  if (t.unitOffset || t.scale !== 1) {
    const off = t.unitOffset ? 1 : 0;
    d = d.map((x) => (x + off) * t.scale);
  }
  return d;
}

function softmax(row: number[]): Float64Array {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  const out = new Float64Array(row.length);
  let s = 0;
  for (let i = 0; i < row.length; i++) { const e = Number.isFinite(row[i]!) ? Math.exp(row[i]! - m) : 0; out[i] = e; s += e; }
  for (let i = 0; i < out.length; i++) out[i]! /= s;
  return out;
}

function firstDiff(a: number[], b: number[]): string | null {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return `position ${i}: llama.cpp [${a.slice(i, i + 5).join(', ')}], Lathe [${b.slice(i, i + 5).join(', ')}]`;
  }
  return null;
}

/** llama.cpp vs Lathe's merged model on held-out text (see GgufCheck). */
export async function checkGguf(file: string, quant: GgufQuant, ref: {
  modelDir: string; checkpoint: string; tokDir: string; vocab: number; heldOut: HeldOut;
  /** Also compare the text with special tokens spliced in (false where a known llama.cpp difference is warned about). */
  spliceSpecials?: boolean;
  tokenizer: Awaited<ReturnType<typeof tokenizerMetadata>>['tokenizer'];
}): Promise<GgufCheck> {
  const tok = ref.tokenizer;
  const text = ref.heldOut.text;
  const g = await loadGguf(file);
  try {
    // Tokenization: plain held-out text, and the same with every special token's text spliced in.
    const specials = tok.addedTokens.map((a) => a.content);
    const words = text.split(' ');
    const withSpecial = words.map((w, i) => (specials.length && i % 7 === 3 ? `${specials[i % specials.length]}${w}` : w)).join(' ');
    let diff: string | null = null;
    const plainLathe = (await tok.encode(text, { addSpecialTokens: false })).ids;
    diff = firstDiff(llamaTokenize(g, text, false), plainLathe);
    const splice = ref.spliceSpecials !== false;
    if (!diff && splice) diff = firstDiff(llamaTokenize(g, withSpecial, true), (await tok.encode(withSpecial, { addSpecialTokens: false })).ids);

    // Probabilities after each prefix of the held-out tokens (bos first when the model has one).
    const bos = tok.bosId;
    const ids = [...(bos !== undefined ? [bos] : []), ...plainLathe].slice(0, 128);
    const got = await llamaNextProbs(g, ids, ref.vocab);
    const want = (await computeLogits(ref.modelDir, ids, { checkpoint: ref.checkpoint })).logits.map(softmax);
    let maxAbs = 0, nll = 0, nllRef = 0;
    for (let t = 0; t < ids.length; t++) {
      const a = got[t]!, b = want[t]!;
      for (let v = 0; v < ref.vocab; v++) maxAbs = Math.max(maxAbs, Math.abs(a[v]! - (b[v] ?? 0)));
      if (t + 1 < ids.length) {
        nll -= Math.log(Math.max(a[ids[t + 1]!]!, 1e-30));
        nllRef -= Math.log(Math.max(b[ids[t + 1]!]!, 1e-30));
      }
    }
    const n = ids.length - 1;
    const ppl = Math.exp(nll / n), pplRef = Math.exp(nllRef / n);

    // Greedy continuation: llama.cpp's tokens, then Lathe's argmax at each of those positions.
    const prompt = ids.slice(0, Math.min(16, ids.length));
    const greedy = await llamaGreedy(g, prompt, 8);
    const seq = [...prompt, ...greedy];
    const refLogits = (await computeLogits(ref.modelDir, seq, { checkpoint: ref.checkpoint })).logits;
    let greedyEqual = true;
    for (let k = 0; k < greedy.length; k++) {
      const row = refLogits[prompt.length - 1 + k]!;
      let best = 0, second = -Infinity;
      for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
      for (let v = 0; v < row.length; v++) if (v !== best && row[v]! > second) second = row[v]!;
      // A near-tie (logits within 1e-3) may go either way in another runtime: not a disagreement.
      if (greedy[k] !== best && row[best]! - row[greedy[k]!]! > 1e-3) greedyEqual = false;
      void second;
    }

    const lim = GGUF_LIMITS[quant];
    const increase = ppl / pplRef - 1;
    let reason: string | null = null;
    if (diff) reason = `llama.cpp tokenizes the held-out text differently (${diff})`;
    else if (lim.maxProbDiff !== null && maxAbs > lim.maxProbDiff) reason = `next-token probabilities differ by up to ${maxAbs.toExponential(2)} (allowed ${lim.maxProbDiff})`;
    else if (lim.maxProbDiff !== null && !greedyEqual) reason = `the greedy continuation differs (llama.cpp: ${greedy.join(', ')})`;
    else if (!(increase <= lim.maxPplIncrease)) reason = `held-out perplexity rises by ${(100 * increase).toFixed(1)}% (allowed ${100 * lim.maxPplIncrease}%)`;
    return {
      tokenizationTexts: splice ? 2 : 1, heldOut: { source: ref.heldOut.source, note: ref.heldOut.note }, tokenizationEqual: diff === null, tokenizationDiff: diff, positions: ids.length, maxAbsProbDiff: maxAbs,
      greedy, greedyEqual, perplexity: ppl, referencePerplexity: pplRef, perplexityIncrease: increase,
      maxProbDiffAllowed: lim.maxProbDiff, maxPerplexityIncrease: lim.maxPplIncrease, passed: reason === null, reason,
    };
  } finally {
    await g.dispose();
  }
}

export { GgmlType };
