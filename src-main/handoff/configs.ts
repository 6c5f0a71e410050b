/**
 * The files each target reads: job.json + accelerate config YAMLs (accelerate), axolotl.yaml, llamafactory.yaml,
 * DeepSpeed JSONs (all three), and the launch scripts. Pure functions of the plan, so tests check the values.
 */
import type { HandoffPlan } from './plan';
import type { ParquetData } from './shards';
import { toYaml, type YamlValue } from './yaml';

export type Strategy = 'ddp' | 'fsdp' | 'zero2' | 'zero3';
export const STRATEGIES: readonly Strategy[] = ['ddp', 'fsdp', 'zero2', 'zero3'];
export const MODEL_DIR = 'model';

/** job.json: what train.py reads (accelerate target). */
export function jobJson(p: HandoffPlan, data: ParquetData, modelRef: string): Record<string, unknown> {
  const tc = p.tc;
  return {
    format: 'lathe-handoff', version: 1,
    model: modelRef,
    kind: p.kind, blockSize: p.blockSize, data,
    lora: { r: tc.lora.rank, alpha: tc.lora.alpha, dropout: tc.lora.dropout, rslora: tc.lora.rslora, targetModules: p.targetModules, fanInFanOut: p.model.family === 'gpt2' },
    qlora: tc.quantization === 'nf4',
    optim: tc.optim,
    schedule: { type: p.schedule.hfType, kwargs: p.schedule.hfKwargs, warmupSteps: tc.schedule.warmupSteps },
    batch: p.batch,
    epochs: tc.epochs, maxSteps: tc.maxSteps ?? null,
    evalEvery: tc.evalEvery, evalBlocks: tc.evalBlocks, checkpointEvery: tc.checkpointEvery, keepLast: tc.keepLast,
    seed: tc.seed, gradientCheckpointing: tc.recompute, pagedOptimizer: tc.pagedOptimizer,
    newTokens: p.newTokens,
    newTokenInit: tc.newTokenInit,
    newTokenModules: p.model.family === 'gpt2' ? ['wte'] : p.model.tieWordEmbeddings ? ['embed_tokens'] : ['embed_tokens', 'lm_head'],
    tiedEmbeddings: p.model.tieWordEmbeddings,
    baseVocabSize: p.model.vocabSize,
  };
}

export function deepspeedJson(stage: 2 | 3): Record<string, unknown> {
  return {
    bf16: { enabled: 'auto' },
    zero_optimization: {
      stage, overlap_comm: true, contiguous_gradients: true, reduce_bucket_size: 'auto',
      ...(stage === 3 ? { stage3_prefetch_bucket_size: 'auto', stage3_param_persistence_threshold: 'auto', stage3_gather_16bit_weights_on_model_save: true } : { allgather_bucket_size: 5e8 }),
    },
    gradient_accumulation_steps: 'auto', gradient_clipping: 'auto',
    train_batch_size: 'auto', train_micro_batch_size_per_gpu: 'auto',
  };
}

/** accelerate config files, one per strategy; launch commands override rank and address per node. */
export function accelerateConfig(p: HandoffPlan, s: Strategy, layerClass: string): string {
  const world = p.gpus * p.nodes;
  const common: Record<string, YamlValue> = {
    compute_environment: 'LOCAL_MACHINE', num_machines: p.nodes, num_processes: world, machine_rank: 0,
    main_training_function: 'main', rdzv_backend: 'static', same_network: true, use_cpu: false, debug: false,
  };
  let body: Record<string, YamlValue>;
  if (s === 'ddp') body = { distributed_type: world > 1 ? 'MULTI_GPU' : 'NO', mixed_precision: 'bf16', ...common };
  else if (s === 'fsdp') {
    body = {
      distributed_type: 'FSDP', mixed_precision: 'bf16', ...common,
      fsdp_config: {
        fsdp_sharding_strategy: 'FULL_SHARD', fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP',
        fsdp_transformer_layer_cls_to_wrap: layerClass, fsdp_backward_prefetch: 'BACKWARD_PRE',
        fsdp_state_dict_type: 'SHARDED_STATE_DICT', fsdp_use_orig_params: true, fsdp_offload_params: false,
        fsdp_cpu_ram_efficient_loading: true, fsdp_sync_module_states: true, fsdp_forward_prefetch: false,
      },
    };
  } else {
    // mixed precision, clipping and accumulation come from the DeepSpeed file ("auto" = TrainingArguments)
    body = { distributed_type: 'DEEPSPEED', ...common, deepspeed_config: { deepspeed_config_file: `deepspeed/${s}.json`, zero3_init_flag: s === 'zero3' } };
  }
  return toYaml(body, [`accelerate config: ${s}, ${p.nodes} node(s) × ${p.gpus} GPU(s). Written by Lathe (lathe handoff).`]);
}

function hfOptimName(p: HandoffPlan): string { return p.tc.pagedOptimizer ? 'paged_adamw_32bit' : 'adamw_torch'; }

export function axolotlConfig(p: HandoffPlan, data: ParquetData, modelRef: string, strategy: Strategy, layerClass: string): string {
  const tc = p.tc;
  const files = (s: string) => data.splits[s]!.files.map((f) => `data/${f}`);
  const evalSplits = Object.keys(data.splits).filter((s) => s !== 'train');
  const cfg: Record<string, YamlValue> = {
    base_model: modelRef,
    tokenizer_config: 'tokenizer',
    ...(tc.quantization === 'nf4' ? { load_in_4bit: true, adapter: 'qlora', bnb_4bit_use_double_quant: true, bnb_4bit_quant_type: 'nf4' } : { adapter: 'lora' }),
    lora_r: tc.lora.rank, lora_alpha: tc.lora.alpha, lora_dropout: tc.lora.dropout,
    lora_target_modules: p.targetModules, peft_use_rslora: tc.lora.rslora,
    ...(p.newTokens.length ? { lora_modules_to_save: p.model.family === 'gpt2' ? ['wte'] : p.model.tieWordEmbeddings ? ['embed_tokens'] : ['embed_tokens', 'lm_head'] } : {}),
    // pre-tokenized rows: no `type`, columns input_ids / attention_mask / labels used as they are
    // one entry per local Parquet file (Axolotl's documented local-file form: path + ds_type)
    datasets: files('train').map((f) => ({ path: f, ds_type: 'parquet', split: 'train' })),
    ...(evalSplits.length ? { test_datasets: evalSplits.flatMap((s) => files(s).map((f) => ({ path: f, ds_type: 'parquet', split: 'train' }))) } : {}),
    val_set_size: 0,
    sequence_len: p.blockSize, sample_packing: false, pad_to_sequence_len: true,
    micro_batch_size: p.batch.perDevice, gradient_accumulation_steps: p.batch.accumulation,
    ...(tc.maxSteps ? { max_steps: tc.maxSteps } : {}), num_epochs: tc.epochs,
    optimizer: hfOptimName(p), learning_rate: tc.optim.lr, adam_beta1: tc.optim.beta1, adam_beta2: tc.optim.beta2, adam_epsilon: tc.optim.eps,
    weight_decay: tc.optim.weightDecay, max_grad_norm: tc.optim.maxGradNorm,
    lr_scheduler: p.schedule.hfType === 'cosine_with_min_lr' ? 'cosine' : p.schedule.hfType,
    ...(p.schedule.hfType === 'cosine_with_min_lr' ? { cosine_min_lr_ratio: tc.schedule.minLrRatio } : {}),
    warmup_steps: tc.schedule.warmupSteps,
    seed: tc.seed, bf16: true, tf32: false, gradient_checkpointing: tc.recompute,
    ...(tc.evalEvery > 0 ? { eval_steps: tc.evalEvery } : {}), save_steps: tc.checkpointEvery, save_total_limit: tc.keepLast,
    logging_steps: 1, output_dir: 'output',
    ...(strategy === 'zero2' || strategy === 'zero3' ? { deepspeed: `deepspeed/${strategy}.json` } : {}),
    ...(strategy === 'fsdp' ? {
      fsdp: ['full_shard', 'auto_wrap'],
      fsdp_config: { fsdp_transformer_layer_cls_to_wrap: layerClass, fsdp_state_dict_type: 'FULL_STATE_DICT', fsdp_use_orig_params: true, fsdp_cpu_ram_efficient_loading: true, fsdp_sync_module_states: true },
    } : {}),
  };
  return toYaml(cfg, ['Axolotl config written by Lathe (lathe handoff): the same settings and data as the Lathe run.', 'Run: axolotl train axolotl.yaml  (see README.md)']);
}

export function llamafactoryConfig(p: HandoffPlan, modelRef: string, strategy: Strategy): string {
  const tc = p.tc;
  const cfg: Record<string, YamlValue> = {
    model_name_or_path: modelRef,
    stage: p.kind === 'sft' ? 'sft' : 'pt', do_train: true, finetuning_type: 'lora',
    lora_rank: tc.lora.rank, lora_alpha: tc.lora.alpha, lora_dropout: tc.lora.dropout,
    lora_target: p.targetModules.join(','), use_rslora: tc.lora.rslora,
    ...(p.newTokens.length ? { additional_target: (p.model.family === 'gpt2' ? ['wte'] : p.model.tieWordEmbeddings ? ['embed_tokens'] : ['embed_tokens', 'lm_head']).join(',') } : {}),
    ...(tc.quantization === 'nf4' ? { quantization_bit: 4, quantization_method: 'bnb', quantization_type: 'nf4', double_quantization: true } : {}),
    // the Parquet shards converted once by prepare_llamafactory.py (datasets.save_to_disk); no re-tokenizing
    tokenized_path: 'data/llamafactory',
    cutoff_len: p.blockSize,
    per_device_train_batch_size: p.batch.perDevice, gradient_accumulation_steps: p.batch.accumulation,
    learning_rate: tc.optim.lr, adam_beta1: tc.optim.beta1, adam_beta2: tc.optim.beta2, adam_epsilon: tc.optim.eps,
    weight_decay: tc.optim.weightDecay, max_grad_norm: tc.optim.maxGradNorm, optim: hfOptimName(p),
    lr_scheduler_type: p.schedule.hfType,
    ...(Object.keys(p.schedule.hfKwargs).length ? { lr_scheduler_kwargs: p.schedule.hfKwargs } : {}),
    warmup_steps: tc.schedule.warmupSteps,
    num_train_epochs: tc.epochs, ...(tc.maxSteps ? { max_steps: tc.maxSteps } : {}),
    seed: tc.seed, bf16: true,
    ...(tc.recompute ? {} : { disable_gradient_checkpointing: true }),
    ...(tc.evalEvery > 0 ? { eval_strategy: 'steps', eval_steps: tc.evalEvery, per_device_eval_batch_size: p.batch.perDevice } : {}),
    save_steps: tc.checkpointEvery, save_total_limit: tc.keepLast, logging_steps: 1,
    output_dir: 'output', overwrite_output_dir: true, plot_loss: true, report_to: 'none',
    ...(strategy === 'zero2' || strategy === 'zero3' ? { deepspeed: `deepspeed/${strategy}.json` } : {}),
  };
  return toYaml(cfg, ['LLaMA-Factory config written by Lathe (lathe handoff): the same settings and data as the Lathe run.', 'Run: python prepare_llamafactory.py && llamafactory-cli train llamafactory.yaml  (see README.md)']);
}

/** Converts the Parquet shards into the datasets folder LLaMA-Factory's tokenized_path loads. */
export const PREPARE_LLAMAFACTORY_PY = String.raw`#!/usr/bin/env python3
"""Lathe hand-off: data/*.parquet -> data/llamafactory (datasets.save_to_disk), read by LLaMA-Factory's
tokenized_path without re-tokenizing. Run once on the cluster before llamafactory-cli train."""
import json
import os

from datasets import DatasetDict, load_dataset

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "data", "index.json"), encoding="utf-8") as f:
    INDEX = json.load(f)


def split(name):
    files = [os.path.join(HERE, "data", x) for x in INDEX["splits"][name]["files"]]
    ds = load_dataset("parquet", data_files={"train": files}, split="train")
    keep = ["input_ids", "attention_mask", "labels"]
    return ds.remove_columns([c for c in ds.column_names if c not in keep])


parts = {"train": split("train")}
held_out = [s for s in INDEX["splits"] if s != "train"]
if held_out:
    parts["validation"] = split(held_out[0])
DatasetDict(parts).save_to_disk(os.path.join(HERE, "data", "llamafactory"))
print("wrote", os.path.join(HERE, "data", "llamafactory"))
`;
