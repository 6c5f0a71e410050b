/** The job folder's README.md: every command, what to install, what to copy back, and every warning. */
import type { Strategy } from './configs';
import type { HandoffPlan } from './plan';
import type { ParquetData } from './shards';

const INSTALL: Record<HandoffPlan['target'], string> = {
  accelerate: 'pip install "torch>=2.3" "transformers>=4.46" "peft>=0.15" "accelerate>=1.0" "datasets>=2.20" "pyarrow>=15"\n# QLoRA or the paged optimizer: pip install "bitsandbytes>=0.43"   ZeRO: pip install "deepspeed>=0.15"',
  axolotl: 'pip install "axolotl>=0.8" "deepspeed>=0.15"   # brings torch, transformers, peft, accelerate, datasets, bitsandbytes',
  llamafactory: 'pip install "llamafactory>=0.9.2" "deepspeed>=0.15" "bitsandbytes>=0.43"   # or a LLaMA-Factory checkout: pip install -e ".[torch,metrics]"',
};

export function readme(p: HandoffPlan, o: { strategy: Strategy; modelRef: string; sourceModel: string; launch: string[]; data: ParquetData }): string {
  const tc = p.tc;
  const b = p.batch;
  const rows = Object.entries(o.data.splits).map(([s, v]) => `| ${s} | ${v.files.length} | ${v.rows} | ${v.lossTokens} |`);
  const configFile = p.target === 'accelerate' ? 'job.json + train.py' : p.target === 'axolotl' ? 'axolotl.yaml' : 'llamafactory.yaml';
  return [
    `# Lathe hand-off: ${p.target}`,
    '',
    `This folder trains the same LoRA${tc.quantization === 'nf4' ? ' (QLoRA)' : ''} as the Lathe run, on ${p.nodes} node(s) × ${p.gpus} GPU(s), with ${p.target === 'accelerate' ? "transformers' Trainer + PEFT through accelerate" : p.target === 'axolotl' ? 'Axolotl' : 'LLaMA-Factory'}.`,
    `Written by \`lathe handoff\`. Settings: ${configFile}. Default strategy: ${o.strategy} (set STRATEGY=ddp|fsdp|zero2|zero3 for the accelerate launches).`,
    '',
    '## 1. Copy to the cluster',
    '',
    `Copy this whole folder. The base model is ${o.modelRef === 'model' ? `not included: copy the model folder (\`${o.sourceModel}\`) into \`model/\` here` : `read as \`${o.modelRef}\` (a hub id or a path on the cluster)`}.`,
    '',
    '## 2. Install (on the cluster)',
    '',
    '```sh',
    INSTALL[p.target],
    '```',
    '',
    '## 3. Run',
    '',
    '```sh',
    `launch/local.sh                 # one node, ${p.gpus} GPU(s)`,
    `MASTER_ADDR=node0 NODE_RANK=0 launch/multinode.sh   # on each of the ${p.nodes} node(s), NODE_RANK 0..${p.nodes - 1}`,
    'sbatch launch/slurm.sbatch      # SLURM: all nodes at once',
    ...(o.launch.includes('torchrun.sh') ? ['launch/torchrun.sh              # DDP through torchrun instead of accelerate'] : []),
    '```',
    '',
    'Strategies: `accelerate/ddp.yaml` (each GPU holds the whole model), `accelerate/fsdp.yaml` (full shard, wrapped per decoder layer), `accelerate/zero2.yaml` + `deepspeed/zero2.json` (optimizer and gradients sharded), `accelerate/zero3.yaml` + `deepspeed/zero3.json` (weights sharded too: models that do not fit one GPU).',
    '',
    `Batch: Lathe trains ${tc.batchSize} blocks × ${tc.gradAccum} accumulation = ${b.effective} blocks per step; here ${b.perDevice} per GPU × ${b.accumulation} accumulation × ${b.worldSize} GPUs = ${b.achieved} blocks of ${p.blockSize} tokens per step.`,
    '',
    '## 4. Copy back and import',
    '',
    `Copy \`output/${p.target === 'accelerate' ? 'adapter' : ''}\` back (adapter_config.json + adapter_model.safetensors${p.target === 'accelerate' ? '; output/metrics.jsonl has the losses' : ''}), then:`,
    '',
    '```sh',
    `lathe import-adapter ${p.target === 'accelerate' ? 'output/adapter' : 'output'} --model ${o.sourceModel}${tc.tokenizer ? ` --tokenizer ${tc.tokenizer}` : ''} --out RUN`,
    `lathe eval --model ${o.sourceModel} --data ${p.tc.dataset} --adapter RUN`,
    `lathe chat --model ${o.sourceModel} --adapter RUN ...      # and lathe export, as for any Lathe run`,
    '```',
    '',
    '## Data',
    '',
    `\`data/*.parquet\`: Lathe's prepared ${p.kind === 'sft' ? 'SFT rows (packed conversations)' : 'pretraining blocks'}, one row per block of ${p.blockSize} tokens, INT32 list columns: input_ids, labels (-100 where Lathe computes no loss), attention_mask, position_ids${p.kind === 'sft' ? ', segment_ids (the packed sample of each token, 0 = padding)' : ''}. \`tokenizer/\` holds the tokenizer${tc.tokenizer ? ' (extended: its new tokens are in the shards)' : ''} and chat template.`,
    '',
    '| split | files | rows | loss tokens |', '|---|---|---|---|', ...rows,
    '',
    '## Settings translated',
    '',
    `LoRA r ${tc.lora.rank}, alpha ${tc.lora.alpha}${tc.lora.rslora ? ' (rsLoRA)' : ''}, dropout ${tc.lora.dropout}, target modules ${p.targetModules.join(', ')}; lr ${tc.optim.lr}, ${p.schedule.hfType}${Object.keys(p.schedule.hfKwargs).length ? ` ${JSON.stringify(p.schedule.hfKwargs)}` : ''}, warmup ${tc.schedule.warmupSteps} steps, AdamW betas (${tc.optim.beta1}, ${tc.optim.beta2}), eps ${tc.optim.eps}, weight decay ${tc.optim.weightDecay}, clip ${tc.optim.maxGradNorm || 'off'}, ${tc.maxSteps ? `${tc.maxSteps} steps` : `${tc.epochs} epoch(s)`}, seed ${tc.seed}${tc.recompute ? ', gradient checkpointing' : ''}${tc.pagedOptimizer ? ', paged AdamW' : ''}.`,
    ...(p.newTokens.length ? ['', `New tokens: ${p.newTokens.length} rows (ids ${p.newTokens[0]!.id}..${p.newTokens.at(-1)!.id}) ${p.target === 'accelerate' ? "trained as embedding rows through PEFT's trainable_token_indices (only those rows), started as Lathe does (" + tc.newTokenInit + ')' : 'trained through modules_to_save (see the warnings)'}.`] : []),
    '',
    '## Not carried over exactly (warnings)',
    '',
    ...(p.warnings.length ? p.warnings.map((w) => `- ${w}`) : ['- none']),
    '',
    '## Small known differences',
    '',
    ...p.notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}
