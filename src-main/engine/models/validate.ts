/**
 * Checks a Hugging Face model folder before any work starts and says everything that is wrong at once:
 * unsupported architecture, missing or truncated shards, missing or mis-shaped tensors, missing
 * tokenizer, a tokenizer with more ids than the model has embedding rows.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../util/progress';
import { ModelWeights } from '../safetensors/sharded';
import { numel } from '../safetensors/reader';
import { parameterCount, type ModelConfig } from './config';
import type { WeightsLayout } from './layout';
import { parseModelConfig, weightsLayout } from './registry';
import { inspectTokenizerFiles, type TokenizerFilesInfo } from './tokenizer-files';

export interface ModelProblem {
  code: string;
  message: string;
  hint: string;
}

export interface ModelInspection {
  dir: string;
  config: ModelConfig;
  /** Expected tensors, with the checkpoint's naming (GPT-2 prefix) applied. */
  layout: WeightsLayout;
  /** Parameters implied by the config (tied lm_head once). */
  parameters: number;
  /** Count of stored tensors per dtype ("BF16": 291, ...); empty when the weights could not be opened. */
  dtypes: Record<string, number>;
  /** The dtype most weights are stored in, or null. */
  dtype: string | null;
  weightBytes: number;
  weightFiles: string[];
  sharded: boolean;
  tokenizer: TokenizerFilesInfo;
  hasGenerationConfig: boolean;
  problems: ModelProblem[];
  warnings: string[];
}

export interface InspectOptions {
  /** Skip tokenizer checks (e.g. when a tokenizer is supplied separately). */
  skipTokenizer?: boolean;
}

const MAX_LISTED = 5;

function listSome(names: string[]): string {
  return names.slice(0, MAX_LISTED).join(', ') + (names.length > MAX_LISTED ? ` and ${names.length - MAX_LISTED} more` : '');
}

/** Reads and parses config.json; throws a UserError when there is none or it names an unsupported architecture. */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = path.join(dir, 'config.json');
  if (!existsSync(dir)) throw new UserError('model-folder-missing', `The model folder ${dir} does not exist.`, 'Choose the folder that holds config.json and the .safetensors files.');
  if (!existsSync(file)) {
    throw new UserError('model-config-missing', `${path.basename(dir)} has no config.json, so it is not a Hugging Face model folder.`, `Choose the folder that holds config.json and the .safetensors files (looked in ${path.resolve(dir)}).`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new UserError('model-config-invalid', `config.json cannot be read: ${(err as Error).message}.`, 'Download config.json again.');
  }
  return parseModelConfig(raw);
}

/**
 * Everything about a folder, with all problems collected (not thrown). Throws only when config.json is
 * missing, unreadable or names an unsupported architecture, since nothing else can be checked then.
 */
export async function inspectModelFolder(dir: string, opts: InspectOptions = {}): Promise<ModelInspection> {
  const abs = path.resolve(dir);
  const config = await readModelConfig(abs);
  const problems: ModelProblem[] = [];
  const warnings: string[] = [];
  let weights: ModelWeights | undefined;
  try {
    weights = await ModelWeights.open(abs);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    problems.push({ code: err.code, message: err.message, hint: err.hint ?? '' });
  }
  const layout = weightsLayout(config, weights?.names());
  const dtypes: Record<string, number> = {};
  let weightBytes = 0;
  // A quantized checkpoint explains every missing/odd tensor at once: said alone, in plain words.
  const quantized = problems.find((p) => p.code === 'model-quantized') ?? await quantizationProblem(abs, weights?.names() ?? [], weights);
  if (quantized && !problems.includes(quantized)) problems.push(quantized);
  try {
    if (weights && !quantized) {
      const missing: string[] = [];
      for (const [name, shape] of layout.shapes) {
        const e = weights.tryEntry(name);
        if (!e) { missing.push(name); continue; }
        if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
          problems.push({
            code: 'model-shape-mismatch',
            message: `Tensor "${name}" has shape [${e.shape.join(', ')}] but config.json implies [${shape.join(', ')}].`,
            hint: 'config.json and the weights do not belong together. Download the model folder again (both files from the same version).',
          });
        }
        if (e.dtype !== 'F32' && e.dtype !== 'F16' && e.dtype !== 'BF16') {
          problems.push({
            code: 'model-dtype-unsupported',
            message: `Tensor "${name}" is stored as ${e.dtype}; Lathe reads f32, f16 and bf16 weights.`,
            hint: 'Use the unquantized (f16/bf16/f32) version of this model.',
          });
        }
      }
      if (missing.length > 0) {
        problems.push({
          code: 'model-tensor-missing',
          message: `${missing.length} weight${missing.length === 1 ? ' is' : 's are'} missing from the model files: ${listSome(missing)}.`,
          hint: 'The weight files are incomplete or belong to a different architecture than config.json says. Download the model folder again.',
        });
      }
    }
    if (weights) {
      const unexpected = weights.names().filter((n) => !layout.shapes.has(n) && !layout.ignorable.some((re) => re.test(n)));
      if (unexpected.length > 0) warnings.push(`${unexpected.length} tensor${unexpected.length === 1 ? '' : 's'} in the files will not be used: ${listSome(unexpected)}.`);
      for (const name of weights.names()) {
        const e = weights.entry(name);
        dtypes[e.dtype] = (dtypes[e.dtype] ?? 0) + numel(e.shape);
        weightBytes += e.byteLength;
      }
    }
  } finally {
    await weights?.close();
  }
  const tokenizer = await inspectTokenizerFiles(abs);
  if (!opts.skipTokenizer) {
    if (tokenizer.error) {
      problems.push({ code: 'model-tokenizer-invalid', message: tokenizer.error + '.', hint: 'Download the tokenizer files again.' });
    } else if (!tokenizer.file) {
      problems.push({
        code: 'model-tokenizer-missing',
        message: tokenizer.otherFiles.length > 0
          ? `The model has only ${tokenizer.otherFiles.join(', ')}; Lathe needs tokenizer.json.`
          : 'The model folder has no tokenizer.json.',
        hint: 'Download tokenizer.json (and tokenizer_config.json) from the model\'s page into the folder.',
      });
    } else if (tokenizer.vocabSize !== null && tokenizer.vocabSize > config.vocabSize) {
      problems.push({
        code: 'model-tokenizer-mismatch',
        message: `The tokenizer uses ${tokenizer.vocabSize} token ids but the model has only ${config.vocabSize} embedding rows (vocab_size).`,
        hint: 'The tokenizer belongs to a different model. Use the tokenizer files from the same model folder.',
      });
    }
  }
  if (config.slidingWindow !== null && config.windowLayers.some(Boolean) && config.slidingWindow < config.maxPositions) {
    warnings.push(`Attention is limited to a sliding window of ${config.slidingWindow} tokens on ${config.windowLayers.every(Boolean) ? 'every layer' : 'some layers'}; tokens further back are not seen there.`);
  }
  // The dtype holding most parameters.
  const dtype = Object.entries(dtypes).sort((a, b) => b[1] - a[1])[0]?.[0] ?? null;
  const weightFiles = weights ? weights.readers.map((r) => path.basename(r.file)) : [];
  return {
    dir: abs, config, layout, parameters: parameterCount(config), dtypes, dtype, weightBytes, weightFiles,
    sharded: weights?.sharded ?? false, tokenizer,
    hasGenerationConfig: existsSync(path.join(abs, 'generation_config.json')), problems, warnings,
  };
}

const QUANT_METHODS: Record<string, string> = {
  fp8: 'FP8', gptq: 'GPTQ', awq: 'AWQ', bitsandbytes: 'bitsandbytes (4/8-bit)', 'compressed-tensors': 'compressed-tensors',
  aqlm: 'AQLM', hqq: 'HQQ', eetq: 'EETQ', quanto: 'Quanto', exl2: 'EXL2', fbgemm_fp8: 'FP8', torchao: 'torchao', mxfp4: 'MXFP4',
};

/** Tensor-name suffixes of quantized formats (the packed weights or their scales). */
const QUANT_TENSORS: Array<[RegExp, string]> = [
  [/\.(qweight|qzeros|g_idx)$/, 'GPTQ/AWQ'],
  [/\.(absmax|quant_map|nested_absmax|nested_quant_map|SCB)$|\.quant_state\./, 'bitsandbytes (4/8-bit)'],
  [/\.(weight_scale_inv|weight_scale|input_scale)$/, 'FP8'],
];

/**
 * Quantized checkpoints (GPTQ, AWQ, bitsandbytes, FP8, ...) store packed integers and scales in place of
 * the float weights Lathe trains on: recognised from config.json's quantization_config or the tensor
 * names, and explained instead of reported as missing tensors.
 */
async function quantizationProblem(dir: string, names: string[], weights: ModelWeights | undefined): Promise<ModelProblem | null> {
  let method: string | null = null;
  let evidence = '';
  try {
    const raw = JSON.parse(await fsp.readFile(path.join(dir, 'config.json'), 'utf8')) as { quantization_config?: { quant_method?: unknown } };
    if (raw.quantization_config && typeof raw.quantization_config === 'object') {
      const m = String(raw.quantization_config.quant_method ?? 'unknown');
      method = QUANT_METHODS[m] ?? m;
      evidence = `config.json has a quantization_config (quant_method "${m}")`;
    }
  } catch {
    // readModelConfig already read it; an unreadable file was reported there.
  }
  if (!method) {
    for (const [re, kind] of QUANT_TENSORS) {
      const hit = names.find((n) => re.test(n));
      if (hit) {
        method = kind;
        const file = weights?.tryEntry(hit)?.file;
        evidence = `tensor "${hit}"${file ? ` in ${path.basename(file)}` : ''} belongs to that format`;
        break;
      }
    }
  }
  if (!method) return null;
  return {
    code: 'model-quantized',
    message: `This is a ${method}-quantized checkpoint (${evidence}); Lathe cannot train from quantized weights. The files are not damaged.`,
    hint: 'Use the bf16/f16 original of this model instead (the repository the quantized version was made from). Lathe can quantize it itself for QLoRA (quantization "nf4").',
  };
}

/** Like `inspectModelFolder`, but throws one UserError listing every problem. */
export async function validateModelFolder(dir: string, opts: InspectOptions = {}): Promise<ModelInspection> {
  const ins = await inspectModelFolder(dir, opts);
  if (ins.problems.length === 1) {
    const p = ins.problems[0]!;
    throw new UserError(p.code, p.message, p.hint);
  }
  if (ins.problems.length > 1) {
    throw new UserError(
      ins.problems[0]!.code,
      `The model folder has ${ins.problems.length} problems:\n` + ins.problems.map((p) => `- ${p.message}`).join('\n'),
      [...new Set(ins.problems.map((p) => p.hint))].join(' '),
    );
  }
  return ins;
}

/** A validated model with its weights open for streaming reads (close `weights` when done). */
export async function openModel(dir: string, opts: InspectOptions = {}): Promise<{ inspection: ModelInspection; config: ModelConfig; layout: WeightsLayout; weights: ModelWeights }> {
  const inspection = await validateModelFolder(dir, opts);
  const weights = await ModelWeights.open(inspection.dir);
  return { inspection, config: inspection.config, layout: inspection.layout, weights };
}
