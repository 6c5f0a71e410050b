/** Export parameters: one zod schema shared by the job kind, the CLI and the service. Unknown keys are rejected. */
import { z } from 'zod';
import type { FloatDtypeName } from '../engine/safetensors/dtype';
import { GGUF_QUANTS, type GgufQuant } from './gguf/format';
import type { GgufResult } from './gguf/types';

export const ExportParamsSchema = z.object({
  /**
   * merged: a full Hugging Face model with the adapter folded in; peft: the adapter alone in PEFT's format;
   * gguf: the merged model as one GGUF file (llama.cpp, Ollama, LM Studio) + an Ollama Modelfile.
   */
  format: z.enum(['merged', 'peft', 'gguf']),
  /** The base model folder the adapter was trained on. */
  model: z.string().min(1),
  /** A training run folder (its latest checkpoint) or one checkpoints/step-NNNNNN folder. */
  adapter: z.string().min(1),
  /** Destination folder (created; must be empty unless overwrite). */
  out: z.string().min(1),
  /** Weight dtype. Default: merged -> the base model's torch_dtype (f32 if unknown); peft -> f32. */
  dtype: z.enum(['bf16', 'f16', 'f32']).optional(),
  /** Start a new shard above this many MB (decimal, as Hugging Face: 5000 = 5 GB, the default). */
  shardSizeMB: z.number().positive().max(1e6).optional(),
  /** Replace a non-empty destination. */
  overwrite: z.boolean().default(false),
  /** Reload the written files and compare logits with the trained model (on by default). */
  verify: z.boolean().default(true),
  /** Take tokenizer files from here instead of the model folder (an extended tokenizer). */
  tokenizerDir: z.string().min(1).optional(),
  /** base_model_name_or_path for adapter_config.json / the model card (default: the model folder's path). */
  baseModelName: z.string().min(1).optional(),
  /** gguf only (required there): the tensor type mix, f16 | bf16 | q8_0 | q6_k | q5_k_m | q4_k_m. */
  quant: z.enum(GGUF_QUANTS).optional(),
  /** gguf only: file and Ollama name stem (default: the model folder's name). */
  name: z.string().regex(/^[\w.-]{1,100}$/).optional(),
}).strict();

export type ExportParams = z.input<typeof ExportParamsSchema>;
export type ResolvedExportParams = z.output<typeof ExportParamsSchema>;

/**
 * Grown embedding (and untied lm_head) matrices for added tokens, [V', C] row-major f32, V' ≥ the base
 * vocabulary; the first V rows must be the base rows (as tokenizer/embeddings.ts resizeEmbeddings makes
 * them). Library-only, for rows made outside training; a run that trained new-token rows
 * (TrainConfig.tokenizer) is exported with its trained rows automatically.
 */
export interface ResizedEmbeddings {
  vocabSize: number;
  embed: Float32Array;
  /** Required for models with an untied lm_head; must be absent for tied ones. */
  lmHead?: Float32Array;
}

export interface ExportResult {
  format: 'merged' | 'peft' | 'gguf';
  out: string;
  /** The weights' number format; for GGUF the quant type. */
  dtype: FloatDtypeName | GgufQuant;
  /** Files written (relative to out). */
  files: string[];
  /** Bytes of tensor data written. */
  tensorBytes: number;
  tensors: number;
  /** LoRA modules merged (merged) or saved (peft). */
  loraModules: number;
  vocabSize: number;
  checkpoint: string;
  step: number;
  verification: Verification | null;
  seconds: number;
  /** GGUF exports: the file, its tensor types, the llama.cpp check and the Ollama command. */
  gguf?: GgufResult;
}

/** The check after every export (defined here, beside the params, so the contract stays free of Node-only code). */
export interface Verification {
  /** Prompt token ids used. */
  ids: number[];
  /** Logit columns compared (the base vocabulary when the export has added tokens). */
  comparedVocab: number;
  maxAbsDiff: number;
  /** Largest |logit| of the reference, the scale of the relative error. */
  maxAbsRef: number;
  relError: number;
  tolerance: number;
  passed: boolean;
}
