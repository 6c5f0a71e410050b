import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createHandoff, planBatch } from '../../../src-main/handoff';
import { openDataset, SplitWriter, writeManifest } from '../../../src-main/data/pack/dataset';
import { readBatch } from '../../../src-main/engine/train/batch';
import { TokenRows } from '../../../src-main/engine/llm/lora';
import { toYaml } from '../../../src-main/handoff/yaml';
import { tinyDataset, tinyModel } from '../../helpers/tiny';
import { tempDir } from '../../helpers/services';

const PY = '/usr/bin/python3';
const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

/** Parses YAML files with PyYAML and returns them as JSON (the YAML the other trainers read). */
function pyYaml(files: string[]): unknown[] {
  const code = 'import json,sys,yaml\nprint(json.dumps([yaml.safe_load(open(f)) for f in sys.argv[1:]]))';
  return JSON.parse(execFileSync(PY, ['-c', code, ...files], { encoding: 'utf8' })) as unknown[];
}

async function readParquet(file: string): Promise<Record<string, number[]>[]> {
  const { parquetReadObjects } = await import('hyparquet');
  const buf = readFileSync(file);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return (await parquetReadObjects({ file: ab })) as Record<string, number[]>[];
}

/** Imports the job's train.py with stand-ins for datasets/peft/transformers (not installed here) and runs its
 * collate() on rows read back from the Parquet shards: ids, labels, positions as given, and the 4-D mask lets
 * position i see j exactly when j <= i in the same packed sample (Lathe's rule), padding only itself. */
function checkCollate(job: string, rows: Record<string, number[]>[]): string {
  const code = [
    'import importlib.util, json, sys, types',
    'for name in ("datasets", "peft", "transformers"):',
    '    sys.modules[name] = types.ModuleType(name)',
    'for name in ("load_dataset",): setattr(sys.modules["datasets"], name, None)',
    'for name in ("LoraConfig", "get_peft_model", "prepare_model_for_kbit_training"): setattr(sys.modules["peft"], name, None)',
    'for name in ("AutoModelForCausalLM", "AutoTokenizer", "BitsAndBytesConfig", "Trainer", "TrainingArguments", "set_seed"): setattr(sys.modules["transformers"], name, None)',
    'sys.modules["transformers"].TrainerCallback = object',
    'spec = importlib.util.spec_from_file_location("train", sys.argv[1]); train = importlib.util.module_from_spec(spec); spec.loader.exec_module(train)',
    'rows = json.load(sys.stdin)',
    'b = train.collate(rows)',
    'assert b["input_ids"].tolist() == [r["input_ids"] for r in rows]',
    'assert b["labels"].tolist() == [r["labels"] for r in rows]',
    'assert b["position_ids"].tolist() == [r["position_ids"] for r in rows]',
    'm = b["attention_mask"]',
    'assert list(m.shape) == [len(rows), 1, len(rows[0]["input_ids"]), len(rows[0]["input_ids"])], m.shape',
    'n = 0',
    'for k, r in enumerate(rows):',
    '    s = r["segment_ids"]',
    '    for i in range(len(s)):',
    '        for j in range(len(s)):',
    '            want = i == j or (j <= i and s[i] == s[j] and s[i] != 0)',
    '            assert (m[k, 0, i, j].item() == 0) == want, (k, i, j)',
    '            n += 1',
    'print("ok", n)',
  ].join('\n');
  return execFileSync(PY, ['-c', code, path.join(job, 'train.py')], { input: JSON.stringify(rows), encoding: 'utf8' }).trim();
}

function writeRun(dir: string, config: Record<string, unknown>): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return dir;
}

/** Every row of every split read back from the Parquet shards; ids equal Lathe's, labels give Lathe's targets. */
async function checkShardsAgainstLathe(job: string, datasetDir: string): Promise<number> {
  const ds = openDataset(datasetDir);
  const index = readJson(path.join(job, 'data', 'index.json'));
  let checked = 0;
  for (const [split, info] of Object.entries(ds.manifest.splits)) {
    const rows = (await Promise.all((index.splits[split].files as string[]).map((f) => readParquet(path.join(job, 'data', f))))).flat();
    expect(rows.length).toBe(info.rows);
    const reader = ds.split(split);
    const T = ds.manifest.blockSize;
    // Lathe's own batch for all rows: position t predicts targets[t] where mask[t] = 1
    const batch = readBatch(reader, ds.manifest, rows.map((_, i) => i), new TokenRows(ds.manifest.tokenizer.vocabSize + 1000, null));
    rows.forEach((r, i) => {
      const ids = ds.manifest.kind === 'sft' ? reader.sftRow(i).ids : reader.row(i);
      expect(r['input_ids']).toEqual(Array.from(ids));
      for (let t = 0; t < T; t++) {
        const k = i * T + t;
        // transformers predicts labels[t + 1] from position t
        const label = t + 1 < T ? r['labels']![t + 1]! : -100;
        expect(label !== -100).toBe(batch.mask[k] === 1);
        if (label !== -100) expect(BigInt(label)).toBe(batch.targets[k]);
      }
      expect(r['labels']![0]).toBe(-100);
      if (ds.manifest.kind === 'sft') {
        const s = reader.sftRow(i);
        expect(r['segment_ids']).toEqual(Array.from(s.segments));
        expect(r['position_ids']).toEqual(Array.from(s.positions));
        expect(r['attention_mask']).toEqual(Array.from(s.segments, (x) => (x ? 1 : 0)));
      }
      checked++;
    });
    reader.close();
  }
  return checked;
}

describe('batch plan for N GPUs', () => {
  it('keeps the effective batch, preferring the largest per-device batch', () => {
    expect(planBatch(4, 4, 1, 1)).toMatchObject({ effective: 16, perDevice: 4, accumulation: 4, achieved: 16 });
    expect(planBatch(4, 4, 4, 1)).toMatchObject({ perDevice: 4, accumulation: 1, achieved: 16, worldSize: 4 });
    expect(planBatch(4, 4, 8, 1)).toMatchObject({ perDevice: 2, accumulation: 1, achieved: 16 });
    expect(planBatch(4, 8, 2, 2)).toMatchObject({ perDevice: 4, accumulation: 2, achieved: 32, worldSize: 4 });
    expect(planBatch(3, 1, 2, 1)).toMatchObject({ perDevice: 1, accumulation: 2, achieved: 4, effective: 3 }); // cannot: warned
  });
});

describe('YAML emitter', () => {
  it('round-trips through PyYAML with types kept', () => {
    const v = { a: 'yes', b: 2e-4, c: 1e-8, d: [1, 'x y', { e: true, f: null }], g: {}, h: [], i: 'data/train-00000.parquet', j: 0.1, k: '1.5' };
    const dir = tempDir();
    writeFileSync(path.join(dir, 'x.yaml'), toYaml(v, ['comment']));
    expect(pyYaml([path.join(dir, 'x.yaml')])[0]).toEqual(v);
  });
});

describe('lathe handoff', () => {
  it('accelerate: Parquet shards hold exactly Lathe\'s blocks, job.json translates the settings, the Python compiles, the YAML parses', async () => {
    const model = await tinyModel('llama');
    const dataset = await tinyDataset(model, { docs: 12, blockSize: 32 });
    const run = writeRun(path.join(tempDir(), 'run'), {
      model, dataset, out: '/x/run', seed: 42, batchSize: 4, gradAccum: 4, maxSteps: 30, recompute: true, quantization: 'nf4',
      lora: { rank: 16, alpha: 32, dropout: 0.05, rslora: true, targets: 'attention' },
      optim: { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 0.5 }, schedule: { kind: 'cosine', warmupSteps: 5, minLrRatio: 0.1 },
    });
    const out = path.join(tempDir(), 'job');
    const r = await createHandoff({ run, target: 'accelerate', gpus: 2, nodes: 2, out, strategy: 'fsdp' });
    expect(r.batch).toMatchObject({ perDevice: 4, accumulation: 1, achieved: 16, worldSize: 4 });
    expect(r.warnings.some((w) => w.startsWith('maxBadSteps'))).toBe(true);
    expect(r.warnings.some((w) => w.startsWith('batch:'))).toBe(false);
    for (const f of ['train.py', 'job.json', 'README.md', 'handoff.json', 'accelerate/ddp.yaml', 'accelerate/fsdp.yaml', 'accelerate/zero2.yaml', 'accelerate/zero3.yaml',
      'deepspeed/zero2.json', 'deepspeed/zero3.json', 'launch/local.sh', 'launch/multinode.sh', 'launch/slurm.sbatch', 'launch/torchrun.sh', 'tokenizer/tokenizer.json', 'data/index.json']) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(statSync(path.join(out, 'launch', 'local.sh')).mode & 0o111).not.toBe(0);
    expect(readdirSync(path.dirname(out)).filter((n) => n.includes('.tmp-'))).toEqual([]);

    expect(await checkShardsAgainstLathe(out, dataset)).toBeGreaterThan(0);

    const job = readJson(path.join(out, 'job.json'));
    expect(job).toMatchObject({
      model: 'model', kind: 'pretrain', blockSize: 32, qlora: true, seed: 42, maxSteps: 30, gradientCheckpointing: true,
      lora: { r: 16, alpha: 32, dropout: 0.05, rslora: true, targetModules: ['k_proj', 'o_proj', 'q_proj', 'v_proj'], fanInFanOut: false },
      optim: { lr: 1e-4, weightDecay: 0.01, maxGradNorm: 0.5 },
      schedule: { type: 'cosine_with_min_lr', kwargs: { min_lr_rate: 0.1 }, warmupSteps: 5 },
      batch: { perDevice: 4, accumulation: 1 }, newTokens: [],
    });
    execFileSync(PY, ['-m', 'py_compile', path.join(out, 'train.py')]);
    // every key train.py reads from job.json exists in it
    const keys = [...readFileSync(path.join(out, 'train.py'), 'utf8').matchAll(/JOB\["(\w+)"\]/g)].map((m) => m[1]!);
    for (const k of new Set(keys)) expect(job, k).toHaveProperty(k);

    const [ddp, fsdp, zero3] = pyYaml(['ddp', 'fsdp', 'zero3'].map((s) => path.join(out, 'accelerate', `${s}.yaml`))) as Record<string, unknown>[];
    expect(ddp).toMatchObject({ distributed_type: 'MULTI_GPU', num_machines: 2, num_processes: 4, mixed_precision: 'bf16' });
    expect(fsdp).toMatchObject({ distributed_type: 'FSDP', fsdp_config: { fsdp_sharding_strategy: 'FULL_SHARD', fsdp_auto_wrap_policy: 'TRANSFORMER_BASED_WRAP', fsdp_transformer_layer_cls_to_wrap: 'LlamaDecoderLayer', fsdp_use_orig_params: true } });
    expect(zero3).toMatchObject({ distributed_type: 'DEEPSPEED', deepspeed_config: { deepspeed_config_file: 'deepspeed/zero3.json', zero3_init_flag: true } });
    expect(readJson(path.join(out, 'deepspeed', 'zero2.json')).zero_optimization.stage).toBe(2);
    const multi = readFileSync(path.join(out, 'launch', 'multinode.sh'), 'utf8');
    expect(multi).toContain('accelerate launch --config_file "accelerate/${STRATEGY:-fsdp}.yaml" --num_machines 2 --num_processes 4 --machine_rank "$NODE_RANK"');
    expect(readFileSync(path.join(out, 'launch', 'slurm.sbatch'), 'utf8')).toMatch(/#SBATCH --nodes=2[\s\S]*#SBATCH --gpus-per-node=2[\s\S]*srun/);
    expect(readFileSync(path.join(out, 'launch', 'torchrun.sh'), 'utf8')).toContain('torchrun --nnodes 2 --nproc_per_node 2');
    for (const s of ['local.sh', 'multinode.sh', 'torchrun.sh', 'slurm.sbatch']) execFileSync('bash', ['-n', path.join(out, 'launch', s)]);
    const readme = readFileSync(path.join(out, 'README.md'), 'utf8');
    for (const s of ['pip install', 'launch/local.sh', 'sbatch launch/slurm.sbatch', 'lathe import-adapter output/adapter', '## Not carried over exactly', 'maxBadSteps', '4 per GPU × 1 accumulation × 4 GPUs = 16']) expect(readme).toContain(s);

    // an existing non-empty folder is refused; --overwrite replaces it
    await expect(createHandoff({ run, target: 'accelerate', gpus: 1, out })).rejects.toMatchObject({ code: 'handoff.out' });
    const again = await createHandoff({ run, target: 'axolotl', gpus: 3, out, overwrite: true });
    expect(again.warnings.some((w) => w.startsWith('batch:') && w.includes('= 15 blocks'))).toBe(true);
    expect(readFileSync(path.join(out, 'README.md'), 'utf8')).toContain('= 15 blocks');
    expect(existsSync(path.join(out, 'train.py'))).toBe(false);
    const lf = await createHandoff({ run, target: 'llamafactory', gpus: 1, out, overwrite: true });
    expect(lf.warnings.some((w) => w.startsWith('pretraining labels: LLaMA-Factory'))).toBe(true);
    expect(pyYaml([path.join(out, 'llamafactory.yaml')])[0]).toMatchObject({ stage: 'pt', quantization_bit: 4, double_quantization: true, use_rslora: true, lora_target: 'k_proj,o_proj,q_proj,v_proj', max_steps: 30 });
  });

  it('SFT rows: labels, segment ids and positions match Lathe; axolotl and LLaMA-Factory YAML carry the settings and warn about packing', async () => {
    const model = await tinyModel('qwen3');
    const dataset = path.join(tempDir(), 'sft');
    mkdirSync(dataset);
    const T = 16;
    const w = new SplitWriter(dataset, 'train', 'sft', T, 2);
    const v = new SplitWriter(dataset, 'val-domain', 'sft', T, 2);
    for (let i = 0; i < 6; i++) {
      const ids = Array.from({ length: T }, (_, t) => (i * 31 + t * 7) % 200 + 3);
      const segments = Uint16Array.from({ length: T }, (_, t) => (t < 6 ? 1 : t < 13 - (i % 3) ? 2 : 0));
      const mask = Uint8Array.from({ length: T }, (_, t) => ((t >= 3 && t < 6) || (t >= 9 && segments[t]) ? 1 : 0));
      (i < 5 ? w : v).write(ids, mask, segments);
    }
    writeManifest(dataset, { format: 'lathe-dataset', version: 1, kind: 'sft', tokenizer: { hash: 'x', vocabSize: 256, eosId: 2 }, blockSize: T, tokenBytes: 2,
      splits: { train: { ...w.finish(), lossTokens: 1 }, 'val-domain': v.finish() }, createdAt: new Date().toISOString() });
    const run = writeRun(path.join(tempDir(), 'run'), { model, dataset, out: '/x/run', batchSize: 2, gradAccum: 3, epochs: 2, schedule: { kind: 'linear', warmupSteps: 0, minLrRatio: 0.2 } });

    const ax = path.join(tempDir(), 'ax');
    const ra = await createHandoff({ run, target: 'axolotl', gpus: 3, out: ax, strategy: 'zero2' });
    expect(await checkShardsAgainstLathe(ax, dataset)).toBe(6);
    expect(ra.warnings.some((x) => x.startsWith('packed SFT rows: Axolotl'))).toBe(true);
    expect(ra.warnings.some((x) => x.startsWith('schedule.minLrRatio'))).toBe(true);
    const lf = path.join(tempDir(), 'lf');
    const rl = await createHandoff({ run, target: 'llamafactory', gpus: 1, nodes: 3, out: lf, baseName: 'org/base' });
    expect(rl.warnings.some((x) => x.startsWith('packed SFT rows: LLaMA-Factory'))).toBe(true);
    execFileSync(PY, ['-m', 'py_compile', path.join(lf, 'prepare_llamafactory.py')]);
    const [a, l] = pyYaml([path.join(ax, 'axolotl.yaml'), path.join(lf, 'llamafactory.yaml')]) as Record<string, unknown>[];
    expect(a).toMatchObject({
      base_model: 'model', adapter: 'lora', lora_r: 8, lora_alpha: 16, lora_dropout: 0, peft_use_rslora: false,
      lora_target_modules: ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'],
      datasets: [{ path: 'data/train-00000.parquet', ds_type: 'parquet', split: 'train' }], test_datasets: [{ path: 'data/val-domain-00000.parquet', ds_type: 'parquet' }], val_set_size: 0,
      sequence_len: 16, sample_packing: false, micro_batch_size: 2, gradient_accumulation_steps: 1, num_epochs: 2,
      learning_rate: 2e-4, lr_scheduler: 'linear', warmup_steps: 0, max_grad_norm: 1, seed: 1234, deepspeed: 'deepspeed/zero2.json',
    });
    expect(l).toMatchObject({
      model_name_or_path: 'org/base', stage: 'sft', finetuning_type: 'lora', lora_rank: 8, lora_target: 'down_proj,gate_proj,k_proj,o_proj,q_proj,up_proj,v_proj',
      tokenized_path: 'data/llamafactory', cutoff_len: 16, per_device_train_batch_size: 2, gradient_accumulation_steps: 1,
      learning_rate: 2e-4, lr_scheduler_type: 'linear', num_train_epochs: 2, seed: 1234,
    });
    expect(readFileSync(path.join(lf, 'launch', 'multinode.sh'), 'utf8')).toContain('FORCE_TORCHRUN=1 NNODES=3 NPROC_PER_NODE=1');

    // accelerate: train.py's collator builds Lathe's attention pattern from the shards' segment ids
    const acc = path.join(tempDir(), 'acc');
    await createHandoff({ run, target: 'accelerate', gpus: 1, out: acc });
    const rows = await readParquet(path.join(acc, 'data', 'train-00000.parquet'));
    expect(checkCollate(acc, rows)).toBe(`ok ${5 * T * T}`);
  });

  it('refuses what it cannot hand off, naming it', async () => {
    const dir = tempDir();
    await expect(createHandoff({ run: path.join(dir, 'nope'), target: 'accelerate', gpus: 1, out: path.join(dir, 'o') })).rejects.toMatchObject({ code: 'handoff.run' });
    await expect(createHandoff({ run: dir, target: 'deepspeed' as never, gpus: 1, out: path.join(dir, 'o') })).rejects.toMatchObject({ code: 'handoff.target' });
    await expect(createHandoff({ run: dir, target: 'accelerate', gpus: 0, out: path.join(dir, 'o') })).rejects.toMatchObject({ code: 'handoff.args' });
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model: 'm', dataset: 'd', out: 'o', bogus: 1 }));
    await expect(createHandoff({ run: dir, target: 'accelerate', gpus: 1, out: path.join(dir, 'o') })).rejects.toMatchObject({ code: 'train.config' });
  });
});
