/**
 * `exportModel`: a trained LoRA run -> a merged Hugging Face model or a PEFT adapter, written to a staging
 * folder, verified by reloading it through the engine, then renamed into place.
 *
 * Merged: every tensor is read, (for LoRA targets) W' = W + scale·B·A added in f32, converted to the
 * chosen dtype and written, one tensor at a time, so memory holds one weight matrix beyond the reader.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { openModel } from '../engine/models';
import type { ModelConfig } from '../engine/models/config';
import type { LinearWeights, WeightsLayout } from '../engine/models/layout';
import { layerLinears, type LoraModule } from '../engine/llm/lora';
import { floatDtypeFromName, type FloatDtype, type FloatDtypeName } from '../engine/safetensors/dtype';
import { writeModelWeights, type ModelWeights } from '../engine/safetensors/sharded';
import { writeSafetensors, type TensorData, type TensorSpec } from '../engine/safetensors/writer';
import { computeLogits } from '../engine/train/infer';
import { UserError, throwIfCancelled, type WorkOptions } from '../util/progress';
import { addLoraDelta, loadTrainedAdapter, moduleAB, readRunSummary, type TrainedAdapter } from './adapter';
import { modelCard } from './card';
import { StagingFolder, TOKENIZER_FILES } from './folder';
import { ExportParamsSchema, type ExportParams, type ExportResult, type ResizedEmbeddings } from './options';
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, peftAdapterConfig, peftKeys, peftModulePath, peftToLora, readPeftAdapter, targetModuleNames } from './peft';
import { compareLogits, defaultPromptIds, engineLogits, failedVerification, type Verification } from './verify';

export interface ExportOptions extends WorkOptions {
  /** Grown embedding / lm_head matrices for added tokens (library only). */
  resized?: ResizedEmbeddings;
  /** Prompt for the verification (default: defaultPromptIds). */
  verifyIds?: number[];
}

const TORCH_DTYPE: Record<FloatDtypeName, string> = { f32: 'float32', f16: 'float16', bf16: 'bfloat16' };

function defaultDtype(cfg: ModelConfig): FloatDtypeName {
  switch (cfg.torchDtype) {
    case 'bfloat16': return 'bf16';
    case 'float16': return 'f16';
    default: return 'f32';
  }
}

export async function exportModel(input: ExportParams, opts: ExportOptions = {}): Promise<ExportResult> {
  const parsed = ExportParamsSchema.safeParse(input);
  if (!parsed.success) {
    const issues = parsed.error.issues.slice(0, 4).map((i) => `${i.path.join('.') || '(params)'}: ${i.message}`).join('; ');
    throw new UserError('export.params', `The export settings are not valid: ${issues}.`, 'Fix the named settings and try again.');
  }
  const p = parsed.data;
  if (p.format === 'gguf') return exportGgufResult(p, opts);
  const t0 = Date.now();
  const report = (stage: string, fraction?: number, message?: string) => opts.onProgress?.({ stage, fraction, message });
  report('Opening the model', 0);
  const modelDir = path.resolve(p.model);
  const { config, layout, weights } = await openModel(modelDir);
  let staging: StagingFolder | undefined;
  try {
    const adapter = await loadTrainedAdapter(p.adapter, config, layout);
    const dtype: FloatDtypeName = p.dtype ?? (p.format === 'merged' ? defaultDtype(config) : 'f32');
    const trainedRows = newRowsOf(adapter);
    if (opts.resized && trainedRows) {
      throw new UserError('export.resize', 'This run trained rows for new tokens itself, so no resized matrices may be passed in.', 'Export without the resized matrices.');
    }
    const resized = opts.resized ? checkResized(opts.resized, config)
      : trainedRows ? await resizedFromTrainedRows(trainedRows, adapter.params, config, layout, weights) : null;
    const vocabSize = resized?.vocabSize ?? config.vocabSize;
    // Tokenizer: explicit folder, else the run's extended tokenizer, else the model's own.
    const tokenizerDir = path.resolve(p.tokenizerDir ?? trainedTokenizerDir(adapter) ?? modelDir);
    if (!existsSync(path.join(tokenizerDir, 'tokenizer.json'))) {
      throw new UserError('export.tokenizer-missing', `${tokenizerDir} has no tokenizer.json.`, 'Choose the folder of the (extended) tokenizer to ship with the export.');
    }
    const baseModel = p.baseModelName ?? modelDir;
    const targetModules = targetModuleNames(config, layout, adapter.lora);
    staging = await StagingFolder.create(p.out, p.overwrite);

    let written: { files: string[]; tensorBytes: number; tensors: number };
    if (p.format === 'merged') {
      written = await writeMerged(staging, layout, weights, adapter, floatDtypeFromName(dtype), resized, p.shardSizeMB, opts);
      await writeMergedConfigs(staging, modelDir, dtype, vocabSize, config);
      written.files.push('config.json', 'generation_config.json');
    } else {
      written = await writePeft(staging, config, layout, adapter, floatDtypeFromName(dtype), resized, baseModel);
    }
    // Tokenizer files: always for merged models; for adapters only when tokens were added (the base's no longer fit).
    if (p.format === 'merged' || resized || tokenizerDir !== modelDir) written.files.push(...await staging.copyFrom(tokenizerDir, TOKENIZER_FILES));
    throwIfCancelled(opts.signal);

    let verification: Verification | null = null;
    if (p.verify) {
      report('Checking the export', 0, 'Reloading the written files and comparing logits with the trained model');
      const newIds = new Set(trainedRows?.ids ?? []);
      const ids = opts.verifyIds ?? defaultPromptIds(config.vocabSize, config.bosTokenId, newIds);
      // A merged model must also reproduce a trained new token's embedding: put one in the prompt.
      if (!opts.verifyIds && p.format === 'merged' && trainedRows) ids.push(trainedRows.ids[0]!);
      // The reference is the engine's own inference on the checkpoint (handles trained new rows too).
      const ref = flatLogits(await computeLogits(modelDir, ids, { checkpoint: adapter.checkpointDir }));
      throwIfCancelled(opts.signal);
      report('Checking the export', 0.5);
      let got: { vocab: number; logits: Float32Array };
      let skip = new Set<number>();
      if (p.format === 'merged') {
        got = flatLogits(await computeLogits(staging.dir, ids));
      } else {
        // Base + the LoRA read back from the files; new-token columns come from the saved matrices, checked below.
        got = await engineLogits(modelDir, ids, peftToLora(await readPeftAdapter(staging.dir), config, layout));
        skip = newIds;
      }
      verification = compareLogits(ref, got, ids, dtype, skip);
      if (!verification.passed) throw failedVerification(verification, p.format === 'merged' ? 'model' : 'adapter');
      if (resized) await checkResizedRows(staging, p.format, config, layout, resized, dtype);
      opts.onLog?.('info', `Export check: max |Δlogit| ${verification.maxAbsDiff.toExponential(2)}, relative ${verification.relError.toExponential(2)} (allowed ${verification.tolerance}).`);
      report('Checking the export', 1);
    }

    await staging.writeText('README.md', modelCard({
      format: p.format, baseModel, config, adapter, targetModules, dtype, vocabSize,
      summary: readRunSummary(adapter.runDir), verification,
    }));
    written.files.push('README.md');
    throwIfCancelled(opts.signal);
    report('Moving into place', 1);
    await staging.publish();
    staging = undefined;
    return {
      format: p.format, out: path.resolve(p.out), dtype, files: written.files, tensorBytes: written.tensorBytes, tensors: written.tensors,
      loraModules: adapter.lora.modules.length, vocabSize, checkpoint: adapter.checkpointDir, step: adapter.step, verification,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await weights.close();
    if (staging) await staging.discard();
  }
}

/** format "gguf": src-main/export/gguf (loaded on demand: it pulls in llama.cpp for the check). */
async function exportGgufResult(p: ReturnType<typeof ExportParamsSchema.parse>, opts: ExportOptions): Promise<ExportResult> {
  if (!p.quant) throw new UserError('export.params', 'A GGUF export needs a quant type.', 'Choose one of: f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m.');
  if (p.dtype || p.shardSizeMB || p.baseModelName || opts.resized) {
    throw new UserError('export.params', 'dtype, shard size, base name and resized matrices do not apply to GGUF exports.', 'Choose the number format with quant instead.');
  }
  const { exportGguf } = await import('./gguf/export');
  const g = await exportGguf({ model: p.model, adapter: p.adapter, out: p.out, quant: p.quant, name: p.name, tokenizerDir: p.tokenizerDir, overwrite: p.overwrite, verify: p.verify }, opts);
  return {
    format: 'gguf', out: path.dirname(g.file), dtype: g.quant, files: [path.basename(g.file), 'Modelfile'], tensorBytes: g.fileBytes, tensors: g.tensors,
    loraModules: g.loraModules, vocabSize: g.vocabSize, checkpoint: g.checkpoint, step: g.step, verification: null, seconds: g.seconds, gguf: g,
  };
}

/** Trained new-token rows (LoraLayout.newRows, when the trainer trains an extended tokenizer's rows). */
export interface TrainedRows { ids: number[]; hidden: number; embedOffset: number; headOffset: number | null }

export function newRowsOf(adapter: TrainedAdapter): TrainedRows | null {
  const nr = (adapter.lora as { newRows?: TrainedRows | null }).newRows;
  return nr && nr.ids.length > 0 ? nr : null;
}

export function trainedTokenizerDir(adapter: TrainedAdapter): string | undefined {
  const t = (adapter.train as { tokenizer?: unknown }).tokenizer;
  return typeof t === 'string' && t.length > 0 ? t : undefined;
}

function flatLogits(l: { vocabSize: number; logits: number[][] }): { vocab: number; logits: Float32Array } {
  return { vocab: l.vocabSize, logits: Float32Array.from(l.logits.flat()) };
}

/**
 * Base embedding (and untied lm_head) grown to V' = max(V, largest new id + 1) with the trained rows put at
 * their ids (ids below V re-use padding rows). One [V', C] matrix per tensor, as the trainer's init does.
 */
export async function resizedFromTrainedRows(nr: TrainedRows, params: Float32Array, cfg: ModelConfig, layout: WeightsLayout,
  weights: ModelWeights): Promise<ResizedEmbeddings> {
  const C = cfg.hiddenSize, V = cfg.vocabSize;
  const V2 = Math.max(V, ...nr.ids.map((id) => id + 1));
  const grow = async (tensor: string, offset: number): Promise<Float32Array> => {
    const m = new Float32Array(V2 * C);
    m.set(await weights.readF32(tensor));
    nr.ids.forEach((id, j) => m.set(params.subarray(offset + j * C, offset + (j + 1) * C), id * C));
    return m;
  };
  const embed = await grow(layout.embed, nr.embedOffset);
  const lmHead = layout.lmHead ? await grow(layout.lmHead, nr.headOffset ?? nr.embedOffset) : undefined;
  return { vocabSize: V2, embed, lmHead };
}

function checkResized(r: ResizedEmbeddings, cfg: ModelConfig): ResizedEmbeddings {
  const C = cfg.hiddenSize;
  if (!Number.isInteger(r.vocabSize) || r.vocabSize < cfg.vocabSize) {
    throw new UserError('export.resize', `The resized vocabulary (${r.vocabSize}) is smaller than the model's (${cfg.vocabSize}).`, 'Pass matrices grown from the base model\'s embeddings.');
  }
  if (r.embed.length !== r.vocabSize * C) throw new UserError('export.resize', `The resized embedding has ${r.embed.length} values, expected ${r.vocabSize}×${C}.`, 'Pass a [V\', hidden] row-major matrix.');
  if (cfg.tieWordEmbeddings && r.lmHead) throw new UserError('export.resize', 'This model ties lm_head to the embeddings, so no separate lm_head matrix may be given.', 'Pass only the embedding matrix.');
  if (!cfg.tieWordEmbeddings) {
    if (!r.lmHead) throw new UserError('export.resize', 'This model has its own lm_head, so a resized lm_head matrix is needed too.', 'Resize lm_head.weight the same way as the embeddings.');
    if (r.lmHead.length !== r.vocabSize * C) throw new UserError('export.resize', `The resized lm_head has ${r.lmHead.length} values, expected ${r.vocabSize}×${C}.`, 'Pass a [V\', hidden] row-major matrix.');
  }
  return r;
}

/** Module of each LoRA-adapted weight name, with the weight's orientation. */
export function adaptedWeights(layout: WeightsLayout, adapter: TrainedAdapter): Map<string, { m: LoraModule; w: LinearWeights }> {
  const out = new Map<string, { m: LoraModule; w: LinearWeights }>();
  for (const m of adapter.lora.modules) {
    const w = layerLinears(layout, m.layer).find(([role]) => role === m.role)![1];
    out.set(w.weight, { m, w });
  }
  return out;
}

async function writeMerged(staging: StagingFolder, layout: WeightsLayout, weights: ModelWeights,
  adapter: TrainedAdapter, dtype: FloatDtype, resized: ResizedEmbeddings | null, shardSizeMB: number | undefined,
  opts: WorkOptions): Promise<{ files: string[]; tensorBytes: number; tensors: number }> {
  const adapted = adaptedWeights(layout, adapter);
  const replaced = new Map<string, Float32Array>();
  if (resized) {
    replaced.set(layout.embed, resized.embed);
    if (layout.lmHead && resized.lmHead) replaced.set(layout.lmHead, resized.lmHead);
  }
  // Exactly the tensors the architecture defines (drops rotary buffers, tied lm_head copies, GPT-2 mask buffers).
  const specs: TensorSpec[] = [...layout.shapes].map(([name, shape]) => ({
    name, dtype, shape: replaced.has(name) ? [resized!.vocabSize, shape[1]!] : shape,
  }));
  const missing = specs.filter((s) => !weights.has(s.name)).map((s) => s.name);
  if (missing.length) throw new UserError('export.base-incomplete', `The base model lacks ${missing.slice(0, 3).join(', ')}.`, 'Check the model folder (lathe model inspect).');
  const getData = async (s: TensorSpec): Promise<TensorData> => {
    const r = replaced.get(s.name);
    if (r) return r;
    const a = adapted.get(s.name);
    const e = weights.entry(s.name);
    // Untouched tensors already in the target dtype are copied bit for bit.
    if (!a && e.dtype === s.dtype) return weights.readRaw(s.name);
    const W = await weights.readF32(s.name);
    if (a) addLoraDelta(W, a.m, adapter.lora.rank, adapter.lora.scale, adapter.params, a.w.inOut);
    return W;
  };
  const { files, totalBytes } = await writeModelWeights(staging.dir, specs, getData, {
    maxShardBytes: (shardSizeMB ?? 5000) * 1e6,
    metadata: { format: 'pt' },
    signal: opts.signal,
    onProgress: (r) => opts.onProgress?.({ ...r, stage: 'Writing merged weights' }),
  });
  return { files: files.length > 1 ? [...files, 'model.safetensors.index.json'] : files, tensorBytes: totalBytes, tensors: specs.length };
}

async function writeMergedConfigs(staging: StagingFolder, modelDir: string, dtype: FloatDtypeName, vocabSize: number, config: ModelConfig): Promise<void> {
  const raw = JSON.parse(await fsp.readFile(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  raw['torch_dtype'] = TORCH_DTYPE[dtype];
  if ('dtype' in raw) raw['dtype'] = TORCH_DTYPE[dtype]; // transformers ≥ 4.56 spells it "dtype"
  raw['vocab_size'] = vocabSize;
  await staging.writeJson('config.json', raw);
  const genFile = path.join(modelDir, 'generation_config.json');
  if (existsSync(genFile)) {
    await staging.copyFrom(modelDir, ['generation_config.json']);
  } else {
    const gen: Record<string, unknown> = { _from_model_config: true };
    if (config.bosTokenId !== null) gen['bos_token_id'] = config.bosTokenId;
    if (config.eosTokenIds.length) gen['eos_token_id'] = config.eosTokenIds.length === 1 ? config.eosTokenIds[0] : config.eosTokenIds;
    if (config.padTokenId !== null) gen['pad_token_id'] = config.padTokenId;
    await staging.writeJson('generation_config.json', gen);
  }
}

async function writePeft(staging: StagingFolder, config: ModelConfig, layout: WeightsLayout, adapter: TrainedAdapter,
  dtype: FloatDtype, resized: ResizedEmbeddings | null, baseModel: string): Promise<{ files: string[]; tensorBytes: number; tensors: number }> {
  const { lora } = adapter;
  const tensors: Array<TensorSpec & { data: TensorData }> = [];
  for (const m of lora.modules) {
    const { A, B } = moduleAB(m, lora.rank, adapter.params);
    const k = peftKeys(config, m.module);
    tensors.push({ name: k.a, dtype, shape: [lora.rank, m.inFeatures], data: A.slice() });
    tensors.push({ name: k.b, dtype, shape: [m.outFeatures, lora.rank], data: B.slice() });
  }
  if (resized) {
    const C = config.hiddenSize;
    tensors.push({ name: `base_model.model.${peftModulePath(config, layout.embed)}`, dtype, shape: [resized.vocabSize, C], data: resized.embed });
    if (layout.lmHead && resized.lmHead) tensors.push({ name: `base_model.model.${layout.lmHead}`, dtype, shape: [resized.vocabSize, C], data: resized.lmHead });
  }
  await writeSafetensors(staging.file(PEFT_WEIGHTS_FILE), tensors, { format: 'pt' });
  const t = adapter.train.lora;
  await staging.writeJson(PEFT_CONFIG_FILE, peftAdapterConfig(config, layout, lora, { alpha: t.alpha, rslora: t.rslora, dropout: t.dropout, baseModel }));
  const bytes = tensors.reduce((n, x) => n + x.shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2), 0);
  return { files: [PEFT_WEIGHTS_FILE, PEFT_CONFIG_FILE], tensorBytes: bytes, tensors: tensors.length };
}

/** The written embedding rows equal the given ones (after rounding to the export dtype). */
async function checkResizedRows(staging: StagingFolder, format: 'merged' | 'peft', config: ModelConfig, layout: WeightsLayout,
  resized: ResizedEmbeddings, dtype: FloatDtypeName): Promise<void> {
  const { ModelWeights } = await import('../engine/safetensors/sharded');
  const { SafetensorsReader } = await import('../engine/safetensors/reader');
  const pairs: Array<[string, Float32Array]> = [[layout.embed, resized.embed]];
  if (layout.lmHead && resized.lmHead) pairs.push([layout.lmHead, resized.lmHead]);
  const tol = dtype === 'f32' ? 0 : dtype === 'f16' ? 1e-3 : 8e-3;
  const read = async (name: string): Promise<Float32Array> => {
    if (format === 'merged') {
      const w = await ModelWeights.open(staging.dir);
      try { return await w.readF32(name); } finally { await w.close(); }
    }
    const r = await SafetensorsReader.open(staging.file(PEFT_WEIGHTS_FILE));
    try { return await r.readF32(`base_model.model.${peftModulePath(config, name)}`); } finally { await r.close(); }
  };
  for (const [name, want] of pairs) {
    const got = await read(name);
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / Math.max(Math.abs(want[i]!), 1e-3));
    if (got.length !== want.length || worst > tol) {
      throw new UserError('export.verify-failed', `The written ${name} differs from the resized matrix (relative ${worst.toPrecision(3)}).`, 'This is a bug in Lathe; export in f32 or report it.');
    }
  }
}
