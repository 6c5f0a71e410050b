/**
 * The accelerate target's train.py: transformers' Trainer + PEFT and nothing else. It is the same file for
 * every job; the settings come from job.json beside it (written by accelerate.ts), so what was translated
 * can be read and tested as data.
 */
export const TRAIN_PY = String.raw`#!/usr/bin/env python3
"""Lathe hand-off: LoRA / QLoRA training on transformers' Trainer + PEFT.

Reads job.json (Lathe's settings, translated) and data/*.parquet (Lathe's prepared blocks: input_ids,
labels with -100 where Lathe computes no loss, position_ids, and segment_ids for packed SFT rows).
Run it through one of the launch/ scripts; the adapter lands in output/adapter (copy that folder back).
"""
import json
import os

import torch
from datasets import load_dataset
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, Trainer, TrainerCallback,
                          TrainingArguments, set_seed)

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "job.json"), encoding="utf-8") as f:
    JOB = json.load(f)
OUT = os.environ.get("LATHE_OUTPUT", os.path.join(HERE, "output"))
DTYPE = torch.bfloat16


def model_path():
    path = os.environ.get("LATHE_MODEL", JOB["model"])
    local = os.path.join(HERE, path)
    return local if os.path.isdir(local) else path


def load_split(split, limit=None):
    info = JOB["data"]["splits"][split]
    files = [os.path.join(HERE, "data", name) for name in info["files"]]
    ds = load_dataset("parquet", data_files={split: files}, split=split)
    if limit is not None and len(ds) > limit:
        ds = ds.select(range(limit))
    return ds


def collate(rows):
    """Lathe blocks -> model inputs. Packed SFT rows get a block-diagonal causal mask (attention stays
    inside each sample, as in Lathe) and positions restarting at each sample."""
    batch = {
        "input_ids": torch.tensor([r["input_ids"] for r in rows], dtype=torch.long),
        "labels": torch.tensor([r["labels"] for r in rows], dtype=torch.long),
        "position_ids": torch.tensor([r["position_ids"] for r in rows], dtype=torch.long),
    }
    if "segment_ids" in rows[0]:
        seg = torch.tensor([r["segment_ids"] for r in rows], dtype=torch.long)
        T = seg.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        allowed = (seg[:, :, None] == seg[:, None, :]) & (seg[:, :, None] != 0) & causal
        allowed |= torch.eye(T, dtype=torch.bool)  # padding attends to itself: finite softmax, no loss there
        mask = torch.zeros(allowed.shape, dtype=DTYPE).masked_fill(~allowed, torch.finfo(DTYPE).min)
        batch["attention_mask"] = mask[:, None, :, :]
    else:
        batch["attention_mask"] = torch.tensor([r["attention_mask"] for r in rows], dtype=torch.long)
    return batch


class JsonlLosses(TrainerCallback):
    """output/metrics.jsonl: one line per logged step, to compare with Lathe's metrics.jsonl."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            with open(os.path.join(OUT, "metrics.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps({"step": state.global_step, **logs}) + "\n")


def init_new_rows(model, tokenizer):
    """Extended tokenizer: grow the embeddings and start each new row as Lathe does."""
    new = JOB["newTokens"]
    if not new:
        return []
    size = max(model.get_input_embeddings().weight.shape[0], max(t["id"] for t in new) + 1, len(tokenizer))
    model.resize_token_embeddings(size)
    with torch.no_grad():
        mats = [model.get_input_embeddings().weight]
        if model.get_output_embeddings() is not None and not JOB["tiedEmbeddings"]:
            mats.append(model.get_output_embeddings().weight)
        base = JOB["baseVocabSize"]
        for w in mats:
            mean_all = w[:base].float().mean(dim=0)
            for t in new:
                ids = t["baseIds"] if JOB["newTokenInit"] == "mean-of-subtokens" and t["baseIds"] else None
                w[t["id"]] = (w[ids].float().mean(dim=0) if ids else mean_all).to(w.dtype)
    return [t["id"] for t in new]


def main():
    set_seed(JOB["seed"])
    os.makedirs(OUT, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(HERE, "tokenizer"))
    distributed = os.environ.get("ACCELERATE_USE_FSDP") == "true" or os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true"
    kwargs = {"torch_dtype": DTYPE}
    if JOB["qlora"]:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=DTYPE, bnb_4bit_quant_storage=DTYPE)
        if not distributed:
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    model = AutoModelForCausalLM.from_pretrained(model_path(), **kwargs)
    new_ids = init_new_rows(model, tokenizer)
    if JOB["qlora"]:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=JOB["gradientCheckpointing"])
    lora = JOB["lora"]
    extra = {}
    if new_ids:
        # only the new tokens' rows train (PEFT trainable_token_indices, peft >= 0.15), as in Lathe
        extra["trainable_token_indices"] = {name: new_ids for name in JOB["newTokenModules"]}
    config = LoraConfig(
        task_type="CAUSAL_LM", r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"],
        use_rslora=lora["rslora"], target_modules=lora["targetModules"], fan_in_fan_out=lora["fanInFanOut"],
        bias="none", **extra)
    model = get_peft_model(model, config)
    model.print_trainable_parameters()

    train = load_split("train")
    evals = {s: load_split(s, JOB["evalBlocks"]) for s in JOB["data"]["splits"] if s != "train"}
    opt = JOB["optim"]
    args = TrainingArguments(
        output_dir=os.path.join(OUT, "checkpoints"),
        per_device_train_batch_size=JOB["batch"]["perDevice"],
        per_device_eval_batch_size=JOB["batch"]["perDevice"],
        gradient_accumulation_steps=JOB["batch"]["accumulation"],
        learning_rate=opt["lr"], adam_beta1=opt["beta1"], adam_beta2=opt["beta2"], adam_epsilon=opt["eps"],
        weight_decay=opt["weightDecay"], max_grad_norm=opt["maxGradNorm"],  # 0 = no clipping, as in Lathe
        optim="paged_adamw_32bit" if JOB["pagedOptimizer"] else "adamw_torch",
        lr_scheduler_type=JOB["schedule"]["type"], lr_scheduler_kwargs=JOB["schedule"]["kwargs"],
        warmup_steps=JOB["schedule"]["warmupSteps"],
        num_train_epochs=JOB["epochs"], max_steps=JOB["maxSteps"] if JOB["maxSteps"] else -1,
        eval_strategy="steps" if JOB["evalEvery"] > 0 and evals else "no", eval_steps=JOB["evalEvery"] or None,
        save_strategy="steps", save_steps=JOB["checkpointEvery"], save_total_limit=JOB["keepLast"],
        logging_steps=1, seed=JOB["seed"], data_seed=JOB["seed"], bf16=True,
        gradient_checkpointing=JOB["gradientCheckpointing"],
        gradient_checkpointing_kwargs={"use_reentrant": False} if JOB["gradientCheckpointing"] else None,
        # the loss is the mean over every loss token of the optimizer step, across GPUs too, as in Lathe
        average_tokens_across_devices=True,
        remove_unused_columns=False, report_to=[], ddp_find_unused_parameters=False)
    trainer = Trainer(model=model, args=args, train_dataset=train, eval_dataset=evals or None,
                      data_collator=collate, callbacks=[JsonlLosses()])
    trainer.train()
    if evals:
        trainer.evaluate()
    if trainer.is_fsdp_enabled:
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(os.path.join(OUT, "adapter"))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(os.path.join(OUT, "adapter"))


if __name__ == "__main__":
    main()
`;
