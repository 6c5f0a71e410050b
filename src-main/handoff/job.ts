/**
 * `lathe handoff`: a Lathe run (its config.json, or a training config file) -> a self-contained job folder
 * for Hugging Face accelerate, Axolotl or LLaMA-Factory: Lathe's prepared blocks as Parquet, the tokenizer
 * and chat template, the target's configs, launch scripts and a README. Built in a temporary folder and
 * renamed into place, so a failed hand-off leaves nothing half-written under the chosen name.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { openModel } from '../engine/models';
import { buildLoraLayout } from '../engine/llm/lora';
import { resolveTrainConfig, type TrainConfig } from '../engine/train/config';
import { targetModuleNames } from '../export/peft';
import { readExtensionManifest } from '../tokenizer/extend';
import { UserError, type WorkOptions } from '../util/progress';
import { accelerateConfig, axolotlConfig, deepspeedJson, jobJson, llamafactoryConfig, MODEL_DIR, PREPARE_LLAMAFACTORY_PY, STRATEGIES, type Strategy } from './configs';
import { commonNotes, commonWarnings, decoderLayerClass, planBatch, planSchedule, TARGETS, type HandoffPlan, type HandoffTarget } from './plan';
import { refusePreference, writeParquetDataset, type ParquetData } from './shards';
import { TRAIN_PY } from './train-py';
import { openDataset } from '../data/pack/dataset';
import { readme } from './readme';

export interface HandoffParams {
  /** A run folder (with config.json) or a training config JSON file. */
  run: string;
  target: HandoffTarget;
  gpus: number;
  nodes?: number;
  out: string;
  /** Default launch strategy (all accelerate configs are written either way). */
  strategy?: Strategy;
  /** Model reference written into the configs (a hub id); default: the folder `model/` beside the job. */
  baseName?: string;
  overwrite?: boolean;
}

export interface HandoffResult {
  out: string;
  target: HandoffTarget;
  files: string[];
  warnings: string[];
  notes: string[];
  batch: HandoffPlan['batch'];
  rows: Record<string, number>;
}

const TOKENIZER_FILES = /^(tokenizer(_config)?\.json|special_tokens_map\.json|added_tokens\.json|chat_template\.(jinja|json)|vocab\.json|merges\.txt|tokenizer\.model|generation_config\.json)$/;

export function readRunConfig(run: string): TrainConfig {
  const file = existsSync(run) && statSync(run).isDirectory() ? path.join(run, 'config.json') : run;
  if (!existsSync(file)) {
    throw new UserError('handoff.run', `${run} is neither a Lathe run folder (no config.json in it) nor a training config file.`, 'Pass the run folder Lathe trained into (it holds config.json) or a training config JSON file.');
  }
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UserError('handoff.run', `${file} is not valid JSON (${(err as Error).message}).`, 'Pass a run folder or a training config written by Lathe.');
  }
  return resolveTrainConfig(raw);
}

function checkInt(name: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new UserError('handoff.args', `--${name} must be a whole number from 1 to ${max} (got ${v}).`);
}

export async function createHandoff(params: HandoffParams, work: WorkOptions = {}): Promise<HandoffResult> {
  if (!TARGETS.includes(params.target)) throw new UserError('handoff.target', `--target must be one of ${TARGETS.join(', ')} (got "${params.target}").`);
  const strategy = params.strategy ?? 'ddp';
  if (!STRATEGIES.includes(strategy)) throw new UserError('handoff.strategy', `--strategy must be one of ${STRATEGIES.join(', ')} (got "${strategy}").`);
  const nodes = params.nodes ?? 1;
  checkInt('gpus', params.gpus, 64);
  checkInt('nodes', nodes, 1024);
  const out = path.resolve(params.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !params.overwrite) {
    throw new UserError('handoff.out', `${out} is not empty.`, 'Choose a new folder, or pass --overwrite to replace it.');
  }
  const tc = readRunConfig(params.run);
  const ds = openDataset(tc.dataset);
  refusePreference(ds.manifest.kind, tc.dataset);
  const { config: model, layout, weights } = await openModel(tc.model);
  await weights.close();
  const lora = buildLoraLayout(model, layout, { ...tc.lora, seed: tc.seed });
  const newTokens = tc.tokenizer ? readExtensionManifest(tc.tokenizer).newTokens.map((t) => ({ id: t.id, baseIds: t.baseIds })) : [];
  const batch = planBatch(tc.batchSize, tc.gradAccum, params.gpus, nodes);
  const plan: HandoffPlan = {
    target: params.target, tc, model, kind: ds.manifest.kind, blockSize: ds.manifest.blockSize, batch,
    schedule: planSchedule(tc), targetModules: targetModuleNames(model, layout, lora), newTokens,
    gpus: params.gpus, nodes, warnings: commonWarnings(tc, batch), notes: [],
  };
  plan.notes = commonNotes(tc, plan);
  plan.warnings.push(...targetWarnings(plan, strategy));
  const modelRef = params.baseName ?? MODEL_DIR;
  const layerClass = decoderLayerClass(model);

  const tmp = path.join(path.dirname(out), `.${path.basename(out)}.tmp-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp, { recursive: true });
  try {
    const files: string[] = [];
    const put = (rel: string, text: string, mode?: number) => {
      mkdirSync(path.dirname(path.join(tmp, rel)), { recursive: true });
      writeFileSync(path.join(tmp, rel), text, mode ? { mode } : undefined);
      files.push(rel);
    };
    const data: ParquetData = await writeParquetDataset(tc.dataset, path.join(tmp, 'data'), work);
    for (const s of Object.values(data.splits)) files.push(...s.files.map((f) => `data/${f}`));
    files.push('data/index.json');
    const tokDir = tc.tokenizer ?? tc.model;
    mkdirSync(path.join(tmp, 'tokenizer'));
    for (const f of readdirSync(tokDir).filter((n) => TOKENIZER_FILES.test(n))) {
      copyFileSync(path.join(tokDir, f), path.join(tmp, 'tokenizer', f));
      files.push(`tokenizer/${f}`);
    }
    put('deepspeed/zero2.json', JSON.stringify(deepspeedJson(2), null, 2) + '\n');
    put('deepspeed/zero3.json', JSON.stringify(deepspeedJson(3), null, 2) + '\n');
    for (const s of STRATEGIES) put(`accelerate/${s}.yaml`, accelerateConfig(plan, s, layerClass));
    if (params.target === 'accelerate') {
      put('job.json', JSON.stringify(jobJson(plan, data, modelRef), null, 2) + '\n');
      put('train.py', TRAIN_PY);
    } else if (params.target === 'axolotl') {
      put('axolotl.yaml', axolotlConfig(plan, data, modelRef, strategy, layerClass));
    } else {
      put('llamafactory.yaml', llamafactoryConfig(plan, modelRef, strategy));
      put('prepare_llamafactory.py', PREPARE_LLAMAFACTORY_PY);
    }
    const launch = launchScripts(plan, strategy);
    for (const [name, text] of Object.entries(launch)) put(`launch/${name}`, text, 0o755);
    put('handoff.json', JSON.stringify({ format: 'lathe-handoff', version: 1, target: params.target, strategy, gpus: params.gpus, nodes, model: modelRef, sourceModel: tc.model, dataset: tc.dataset, batch, warnings: plan.warnings, notes: plan.notes, trainConfig: tc }, null, 2) + '\n');
    put('README.md', readme(plan, { strategy, modelRef, sourceModel: tc.model, launch: Object.keys(launch), data }));
    if (existsSync(out)) rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    return {
      out, target: params.target, files: files.sort(), warnings: plan.warnings, notes: plan.notes, batch,
      rows: Object.fromEntries(Object.entries(data.splits).map(([k, v]) => [k, v.rows])),
    };
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
}

function targetWarnings(p: HandoffPlan, strategy: Strategy): string[] {
  const w: string[] = [];
  const tc = p.tc;
  if (p.target === 'accelerate') return w;
  const name = p.target === 'axolotl' ? 'Axolotl' : 'LLaMA-Factory';
  if (p.kind === 'sft') {
    w.push(`packed SFT rows: ${name} trains the pre-tokenized rows as they are, so attention is not kept inside each packed sample as Lathe does (the loss mask and labels are kept). Use --target accelerate for exact packing.`);
  }
  if (p.newTokens.length) {
    w.push(`new tokens: ${name} trains the whole embedding${p.model.tieWordEmbeddings ? '' : ' and lm_head'} matrices (modules_to_save), not just the ${p.newTokens.length} new rows, and starts them its own way, not "${tc.newTokenInit}". Use --target accelerate to train only the new rows.`);
  }
  if (p.target === 'llamafactory' && p.kind === 'pretrain') {
    w.push('pretraining labels: LLaMA-Factory\'s pretraining stage builds labels from input_ids itself, so the EOS padding of each split\'s final row gets a loss (Lathe masks it); at most one row per split.');
  }
  if (tc.evalEvery > 0) w.push(`evalBlocks: ${tc.evalBlocks} has no counterpart in ${name}; it evaluates the whole held-out split${p.target === 'llamafactory' ? ' (and only the first one: val-domain)' : 's as one set'}.`);
  if (p.target === 'llamafactory' && strategy === 'fsdp') {
    w.push('strategy fsdp: LLaMA-Factory takes FSDP from an accelerate config, not from its YAML; launch with `accelerate launch --config_file accelerate/fsdp.yaml src/train.py llamafactory.yaml` from a LLaMA-Factory checkout (launch/local.sh does).');
  }
  return w;
}

function launchScripts(p: HandoffPlan, strategy: Strategy): Record<string, string> {
  const world = p.gpus * p.nodes;
  const head = (what: string) => `#!/usr/bin/env bash\n# ${what} (written by lathe handoff)\nset -euo pipefail\ncd "$(dirname "$0")/.."\n`;
  const multi = `: "\${MASTER_ADDR:?set MASTER_ADDR to node 0's address}" "\${NODE_RANK:?set NODE_RANK to this node's rank, 0..${p.nodes - 1}}"\nMASTER_PORT="\${MASTER_PORT:-29500}"\n`;
  const accel = (cfg: string, rest: string, rankArgs: string) => `accelerate launch --config_file "accelerate/\${STRATEGY:-${cfg}}.yaml" --num_machines ${p.nodes} --num_processes ${world}${rankArgs} ${rest}`;
  const rankArgs = ' --machine_rank "$NODE_RANK" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT"';
  let single: string, multiNode: string, slurmCmd: string;
  if (p.target === 'accelerate') {
    single = accel(strategy, 'train.py', '');
    multiNode = accel(strategy, 'train.py', rankArgs);
    slurmCmd = accel(strategy, 'train.py', ' --machine_rank "$SLURM_NODEID" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT"');
  } else if (p.target === 'axolotl') {
    single = `accelerate launch --num_processes ${p.gpus} -m axolotl.cli.train axolotl.yaml  # axolotl >= 0.8 also: axolotl train axolotl.yaml`;
    multiNode = `accelerate launch --num_machines ${p.nodes} --num_processes ${world}${rankArgs} -m axolotl.cli.train axolotl.yaml`;
    slurmCmd = `accelerate launch --num_machines ${p.nodes} --num_processes ${world} --machine_rank "$SLURM_NODEID" --main_process_ip "$MASTER_ADDR" --main_process_port "$MASTER_PORT" -m axolotl.cli.train axolotl.yaml`;
  } else {
    const prep = 'test -d data/llamafactory || python prepare_llamafactory.py\n';
    const fsdp = strategy === 'fsdp';
    single = prep + (fsdp ? `accelerate launch --config_file accelerate/fsdp.yaml --num_processes ${p.gpus} "\${LLAMAFACTORY_SRC:?set LLAMAFACTORY_SRC to a LLaMA-Factory checkout}/src/train.py" llamafactory.yaml` : `FORCE_TORCHRUN=1 NPROC_PER_NODE=${p.gpus} llamafactory-cli train llamafactory.yaml`);
    multiNode = prep + `FORCE_TORCHRUN=1 NNODES=${p.nodes} NPROC_PER_NODE=${p.gpus} NODE_RANK="$NODE_RANK" MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$MASTER_PORT" llamafactory-cli train llamafactory.yaml`;
    slurmCmd = `FORCE_TORCHRUN=1 NNODES=${p.nodes} NPROC_PER_NODE=${p.gpus} NODE_RANK="$SLURM_NODEID" MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$MASTER_PORT" llamafactory-cli train llamafactory.yaml`;
  }
  const scripts: Record<string, string> = {
    'local.sh': head(`one node, ${p.gpus} GPU(s)`) + (p.target === 'accelerate' ? single.replace(`--num_machines ${p.nodes} --num_processes ${world}`, `--num_machines 1 --num_processes ${p.gpus}`) : single) + '\n',
    'multinode.sh': head(`node NODE_RANK of ${p.nodes}, ${p.gpus} GPU(s) each; run on every node`) + multi + multiNode + '\n',
    'slurm.sbatch': [
      '#!/usr/bin/env bash', `#SBATCH --job-name=lathe-${p.target}`, `#SBATCH --nodes=${p.nodes}`, '#SBATCH --ntasks-per-node=1',
      `#SBATCH --gpus-per-node=${p.gpus}`, '#SBATCH --cpus-per-task=16', '#SBATCH --output=output/slurm-%j.log',
      '# written by lathe handoff; submit from the job folder: sbatch launch/slurm.sbatch', 'set -euo pipefail', 'mkdir -p output',
      'export MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"', 'export MASTER_PORT="${MASTER_PORT:-29500}"',
      ...(p.target === 'llamafactory' ? ['test -d data/llamafactory || python prepare_llamafactory.py'] : []),
      `srun --kill-on-bad-exit=1 bash -c '${slurmCmd.replace(/'/g, "'\\''")}'`, '',
    ].join('\n'),
  };
  if (p.target === 'accelerate') {
    scripts['torchrun.sh'] = head(`DDP through torchrun: ${p.nodes} node(s) × ${p.gpus} GPU(s); on every node`)
      + (p.nodes > 1 ? multi : 'NODE_RANK="${NODE_RANK:-0}"; MASTER_ADDR="${MASTER_ADDR:-127.0.0.1}"; MASTER_PORT="${MASTER_PORT:-29500}"\n')
      + `torchrun --nnodes ${p.nodes} --nproc_per_node ${p.gpus} --node_rank "$NODE_RANK" --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" train.py\n`;
  }
  return scripts;
}
