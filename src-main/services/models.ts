/** Model-folder checks and LoRA planning for the Start page and the LoRA wizard. */
import { readFileSync, existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { z } from 'zod';
import type { LoraPlan, LoraPlanRequest, ModelSummary } from '../contract/wizards';
import { describeArchitecture, inspectModelFolder, readModelConfig, weightsLayout, parameterCount } from '../engine/models';
import { buildLoraLayout } from '../engine/llm/lora';
import { trainableLayout } from '../engine/train/trainable';
import os from 'node:os';
import { suggestFit } from '../engine/memory/fit';
import { estimateMemory, type MemoryEstimate } from '../engine/memory/estimate';
import { PRESETS, presetArithmetic } from '../engine/train/config';
import type { DatasetManifest } from '../data/pack/dataset';
import { UserError } from '../util/progress';
import { expectedDevice, gpuUnsupported, hasGpuDevice } from '../engine/backends/webgpu/choose';

/**
 * Largest sizes a model Lathe can plan for may declare (config.json keys of every family). Far above real
 * models (405B: 126 layers, hidden 16384); a damaged or hostile config.json with, say, 1e9 layers would
 * otherwise have the config reader allocate per-layer tables until the process dies — V8 ends the whole
 * process on some of those allocations, worker thread or not — so it is refused before anything is built.
 */
const SIZE_LIMITS: Record<string, number> = {
  num_hidden_layers: 1024, n_layer: 1024, num_layers: 1024,
  hidden_size: 1 << 18, n_embd: 1 << 18, d_model: 1 << 18, head_dim: 1 << 14,
  intermediate_size: 1 << 21, n_inner: 1 << 21, ffn_dim: 1 << 21,
  num_attention_heads: 1 << 12, n_head: 1 << 12, num_key_value_heads: 1 << 12,
  vocab_size: 1 << 23, max_position_embeddings: 1 << 25, n_positions: 1 << 25, n_ctx: 1 << 25,
};
const CONFIG_MAX_BYTES = 4 << 20;

export function checkConfigSizes(dir: string): void {
  const file = path.join(dir, 'config.json');
  let raw: unknown;
  try {
    if (statSync(file).size > CONFIG_MAX_BYTES) {
      throw new UserError('models.configTooBig', `${file} is larger than ${CONFIG_MAX_BYTES >> 20} MiB; a model's config.json is a few KB.`, 'Choose the model folder itself; download config.json again if it is damaged.');
    }
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    if (err instanceof UserError) throw err;
    return; // missing or unreadable: the engine's reader says so in its own words
  }
  const sections = [raw, (raw as { text_config?: unknown } | null)?.text_config];
  for (const section of sections) {
    if (!section || typeof section !== 'object') continue;
    for (const [key, limit] of Object.entries(SIZE_LIMITS)) {
      const v = (section as Record<string, unknown>)[key];
      if (typeof v === 'number' && !(v <= limit)) {
        throw new UserError('models.implausibleConfig', `${file} says ${key} = ${v}; no model Lathe can train has more than ${limit}.`,
          'The file looks damaged or edited: download config.json again from the model’s page.');
      }
    }
  }
}

export async function inspectModel(dir: string): Promise<ModelSummary> {
  if (!path.isAbsolute(dir)) {
    throw new UserError('models.relativePath', `"${dir}" is not a full path.`, 'Paste the full path of the model folder, e.g. /home/me/models/SmolLM2-135M.');
  }
  checkConfigSizes(dir);
  const ins = await inspectModelFolder(dir);
  const c = ins.config;
  return {
    dir: ins.dir,
    architecture: c.architecture,
    family: c.family,
    features: describeArchitecture(c),
    parameters: ins.parameters,
    layers: c.numLayers,
    hiddenSize: c.hiddenSize,
    vocabSize: c.vocabSize,
    maxPositions: c.maxPositions,
    dtype: ins.dtype ?? c.torchDtype,
    weightBytes: ins.weightBytes,
    tokenizer: { found: ins.tokenizer.file !== null, modelType: ins.tokenizer.modelType, vocabSize: ins.tokenizer.vocabSize, error: ins.tokenizer.error },
    chatTemplate: { found: ins.tokenizer.hasChatTemplate, source: ins.tokenizer.chatTemplateSource },
    problems: ins.problems,
    warnings: ins.warnings,
  };
}

function readDatasetManifest(dir: string): DatasetManifest | null {
  const file = path.join(dir, 'manifest.json');
  if (!existsSync(file)) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as DatasetManifest;
  } catch {
    return null;
  }
}

/** Trainable parameters from the model config (no weights read), steps and tokens from the dataset manifest. */
export async function planLora(req: z.output<typeof LoraPlanRequest>): Promise<LoraPlan> {
  checkConfigSizes(req.model);
  const cfg = await readModelConfig(req.model);
  const layout = weightsLayout(cfg);
  const count = (rank: number, targets: typeof req.targets): number =>
    buildLoraLayout(cfg, layout, { rank, alpha: rank * 2, dropout: 0, rslora: false, targets, seed: 1 }).size;
  const rank = Number.isInteger(req.rank) && req.rank >= 1 ? req.rank : 1;
  const main = buildLoraLayout(cfg, layout, { rank, alpha: 2 * rank, dropout: 0, rslora: false, targets: req.targets, seed: 1 });
  // With an extended tokenizer the new tokens' embedding (and untied head) rows are trained as well.
  const withRows = req.tokenizer
    ? trainableLayout(cfg, layout, { lora: { rank, alpha: 2 * rank, dropout: 0, rslora: false, targets: req.targets }, seed: 1, tokenizer: req.tokenizer }).lora
    : main;
  const trainable = withRows.size;
  const newTokenRows = withRows.size - main.size;
  const modelParams = parameterCount(cfg);
  const manifest = req.dataset ? readDatasetManifest(req.dataset) : null;
  const blockSize = manifest?.blockSize ?? null;
  const trainBlocks = manifest?.splits['train']?.rows ?? null;
  const B = Math.max(1, Math.floor(req.batchSize) || 1), A = Math.max(1, Math.floor(req.gradAccum) || 1);
  const stepsPerEpoch = trainBlocks !== null ? Math.max(1, Math.floor(trainBlocks / (B * A))) : null;
  const totalSteps = req.maxSteps ?? (stepsPerEpoch !== null ? Math.max(1, Math.round(req.epochs * stepsPerEpoch)) : null);
  const device = expectedDevice(req.ep, hasGpuDevice(), gpuUnsupported({ quantization: req.quantization, pagedOptimizer: req.pagedOptimizer }));
  // estimated for the device expected (Lathe's GPU backend is estimated as a GPU, like the WebGPU EP)
  const memEp = device.device === 'gpu' ? 'webgpu' : device.device;
  const est = estimateMemory(cfg, { batchSize: B, seqLen: blockSize ?? Math.min(1024, cfg.maxPositions), lora: { rank, targets: req.targets }, quantization: req.quantization, pagedOptimizer: req.pagedOptimizer, recompute: req.recompute, gradAccum: A }, memEp);
  const MB = 2 ** 20;
  const memoryMB = est.deviceTotal / MB;
  const memory = {
    ep: memEp, weights: est.device.weights / MB, adapters: est.device.adapters / MB, optimizer: est.device.optimizer / MB,
    activations: est.device.activations / MB, workspace: est.device.workspace / MB, hostMB: est.host / MB,
  };
  const presets = Object.entries(PRESETS).map(([id, p]) => ({
    id, label: p.label, rank: p.lora.rank, alpha: p.lora.alpha, targets: p.lora.targets, lr: p.optim.lr,
    batchSize: p.batchSize, gradAccum: p.gradAccum, epochs: p.epochs,
    arithmetic: blockSize !== null ? presetArithmetic(p, blockSize) : null,
    trainableParams: count(p.lora.rank, p.lora.targets),
  }));
  return {
    trainableParams: trainable, modelParams, trainablePct: (100 * trainable) / modelParams, modules: main.modules.length,
    blockSize, trainBlocks, stepsPerEpoch, totalSteps,
    tokensPerStep: blockSize !== null ? B * A * blockSize : null,
    arithmetic: blockSize !== null ? presetArithmetic({ batchSize: B, gradAccum: A }, blockSize) : null,
    memoryMB, memory, device, newTokenRows, presets, fit: fitFor(est, req.budgetGB, memEp),
  };
}

/** The budget check shown before a run: the user's number for a GPU, this machine's RAM for the CPU. */
function fitFor(est: MemoryEstimate, budgetGB: number | null, ep: string): LoraPlan['fit'] {
  const budget = budgetGB !== null ? budgetGB * 2 ** 30 : ep === 'cpu' ? os.totalmem() : null;
  if (budget === null) return null;
  const f = suggestFit(est, budget);
  return {
    fits: f.fits && f.changes.length === 0, budgetMB: budget / 2 ** 20, message: f.message, changes: f.changes.map((c) => c.words),
    fixes: f.changes.map((c) => ({ setting: c.setting, from: c.from, to: c.to })), fixable: f.fits,
  };
}
