/**
 * Wherever an adapter is asked for (logits, eval, chat, export, the runs list), a folder may be:
 *
 *   lathe-run           a Lathe run folder: checkpoints/step-NNNNNN/ (the latest is used)
 *   lathe-checkpoint    one Lathe checkpoint: state.json + tensors.safetensors
 *   peft                a PEFT LoRA adapter: adapter_config.json + adapter_model.safetensors
 *   hf-checkpoint       a transformers Trainer checkpoint-N of a PEFT run (the same, + trainer_state.json)
 *   hf-run              a Trainer output folder holding checkpoint-N folders (the highest N is used)
 *   hf-full-checkpoint  a Trainer checkpoint of a full fine-tune (model weights, no adapter): not an adapter
 *
 * PEFT LoRA adapters are loaded into Lathe's flat LoRA layout (engine/llm/peft-adapter.ts); what cannot
 * be loaded is refused in plain words saying what the folder is and what to do.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import { TokenRows, type LoraLayout } from '../llm/lora';
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, peftToLora, readPeftAdapter } from '../llm/peft-adapter';
import { hostTensor, type HostTensor } from '../backends/onnx';
import { CheckpointManager, type Checkpoint } from './checkpoints';
import { resolveTrainConfig } from './config';
import { trainableLayout } from './trainable';
import { UserError } from '../../util/progress';

export type AdapterFolderKind = 'lathe-run' | 'lathe-checkpoint' | 'peft' | 'hf-checkpoint' | 'hf-run' | 'hf-full-checkpoint' | 'unknown';

export interface AdapterFolderInfo {
  kind: AdapterFolderKind;
  /** The folder that holds the adapter itself (hf-run: its newest checkpoint-N). */
  dir: string;
  /** Training step when known (Lathe state, trainer_state.json's global_step, or the N of checkpoint-N). */
  step: number | null;
  /** adapter_config.json's base_model_name_or_path, when there is one. */
  baseModel: string | null;
  /** One sentence for people: what the folder is. */
  description: string;
}

const HF_CHECKPOINT = /^checkpoint-(\d+)$/;

const has = (dir: string, f: string): boolean => existsSync(path.join(dir, f));

function readJson(file: string): Record<string, unknown> | null {
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function hfStep(dir: string): number | null {
  const g = readJson(path.join(dir, 'trainer_state.json'))?.['global_step'];
  if (typeof g === 'number' && Number.isInteger(g)) return g;
  const m = HF_CHECKPOINT.exec(path.basename(dir));
  return m ? Number(m[1]) : null;
}

function baseModelOf(dir: string): string | null {
  const b = readJson(path.join(dir, PEFT_CONFIG_FILE))?.['base_model_name_or_path'];
  return typeof b === 'string' && b ? b : null;
}

function peftInfo(dir: string, kind: 'peft' | 'hf-checkpoint' | 'hf-run', top: string): AdapterFolderInfo {
  const step = kind === 'peft' ? null : hfStep(dir);
  const base = baseModelOf(dir);
  const what = kind === 'peft'
    ? 'a PEFT LoRA adapter (adapter_config.json + adapter_model.safetensors)'
    : kind === 'hf-checkpoint'
      ? `a Hugging Face Trainer checkpoint of a LoRA run (${path.basename(dir)}, step ${step ?? '?'})`
      : `a Hugging Face Trainer output folder; its newest LoRA checkpoint is ${path.relative(top, dir)}`;
  return { kind, dir, step, baseModel: base, description: `${top} is ${what}${base ? `, for ${base}` : ''}.` };
}

/** What kind of adapter folder `dir` is (no weights are read). */
export function describeAdapterFolder(dir: string): AdapterFolderInfo {
  const abs = path.resolve(dir);
  const info = (kind: AdapterFolderKind, description: string, step: number | null = null, at = abs): AdapterFolderInfo =>
    ({ kind, dir: at, step, baseModel: null, description });
  if (!existsSync(abs) || !statSync(abs).isDirectory()) return info('unknown', `${abs} is not a folder.`);
  if (new CheckpointManager(path.join(abs, 'checkpoints')).list().length > 0) return info('lathe-run', `${abs} is a Lathe training run.`);
  if (has(abs, 'state.json') && has(abs, 'tensors.safetensors')) return info('lathe-checkpoint', `${abs} is a Lathe checkpoint.`);
  if (has(abs, PEFT_CONFIG_FILE)) {
    const hf = has(abs, 'trainer_state.json') || HF_CHECKPOINT.test(path.basename(abs));
    return peftInfo(abs, hf ? 'hf-checkpoint' : 'peft', abs);
  }
  if (has(abs, 'trainer_state.json') && (has(abs, 'model.safetensors') || has(abs, 'model.safetensors.index.json') || has(abs, 'pytorch_model.bin'))) {
    return info('hf-full-checkpoint', `${abs} is a Hugging Face Trainer checkpoint of a full fine-tune (model weights, no LoRA adapter).`, hfStep(abs));
  }
  const checkpoints = readdirSync(abs, { withFileTypes: true })
    .filter((d) => d.isDirectory() && HF_CHECKPOINT.test(d.name))
    .map((d) => ({ dir: path.join(abs, d.name), n: Number(HF_CHECKPOINT.exec(d.name)![1]) }))
    .sort((a, b) => b.n - a.n);
  const withAdapter = checkpoints.find((c) => has(c.dir, PEFT_CONFIG_FILE));
  if (withAdapter) return peftInfo(withAdapter.dir, 'hf-run', abs);
  if (checkpoints.length > 0) {
    return info('hf-full-checkpoint', `${abs} holds Hugging Face Trainer checkpoints (${checkpoints.map((c) => path.basename(c.dir)).slice(0, 3).join(', ')}) of a full fine-tune (model weights, no LoRA adapter).`, checkpoints[0]!.n, checkpoints[0]!.dir);
  }
  return info('unknown', `${abs} holds no training checkpoint or LoRA adapter.`);
}

export interface LoadedAdapter {
  lora: LoraLayout;
  rows: TokenRows;
  params: HostTensor;
  info: AdapterFolderInfo;
  /** The Lathe checkpoint (its state and training config); null for PEFT adapters. */
  checkpoint: Checkpoint | null;
  /** The extended tokenizer a Lathe run trained with, if any. */
  tokenizerDir: string | undefined;
  /** A PEFT adapter's own LoRA settings (null for Lathe checkpoints, whose training config has them). */
  peft: { alpha: number; rslora: boolean } | null;
}

function notAnAdapter(info: AdapterFolderInfo): UserError {
  if (info.kind === 'hf-full-checkpoint') {
    return new UserError('adapter.full-model', `${info.description} It is a whole model, not an adapter.`,
      `Use ${info.dir} as the model folder (with config.json and the tokenizer files copied in), without an adapter.`);
  }
  return new UserError('adapter.unknown', info.description,
    'Choose a Lathe run folder (with checkpoints/), one checkpoints/step-NNNNNN folder, a PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) or a Trainer checkpoint-N folder of a LoRA run.');
}

/**
 * A Lathe checkpoint folder, or a run folder (its latest checkpoint). A damaged newest checkpoint is not
 * skipped silently: the error names it and the usable one before it (resuming the run sets it aside).
 */
export async function loadLatheCheckpoint(dir: string): Promise<Checkpoint> {
  const m = new CheckpointManager(`${dir}/checkpoints`);
  if (m.list().length === 0) return new CheckpointManager(dir).load(dir);
  const { checkpoint, damaged } = await m.latestUsable();
  if (damaged.length > 0) {
    const d = damaged[0]!;
    throw new UserError('checkpoint.damaged',
      `The newest checkpoint of ${dir}, ${path.basename(d.dir)}, is damaged (${d.reason}).`,
      checkpoint
        ? `Pass the one before it, ${checkpoint.dir}, or resume the training (which sets the damaged one aside and continues from ${path.basename(checkpoint.dir)}).`
        : 'No earlier checkpoint is usable; train the run again.');
  }
  return checkpoint!;
}

/** Any adapter folder (see the table above) as the engine's LoRA layout + values for this model. */
export async function loadAdapter(dir: string, cfg: ModelConfig, layout: WeightsLayout): Promise<LoadedAdapter> {
  const info = describeAdapterFolder(dir);
  if (info.kind === 'lathe-run' || info.kind === 'lathe-checkpoint') {
    const ck = await loadLatheCheckpoint(dir);
    const tc = resolveTrainConfig(ck.state.config);
    const { lora, rows } = trainableLayout(cfg, layout, tc);
    const p = ck.tensors.get('params');
    if (!p || p.length !== lora.size) {
      throw new UserError('adapter.mismatch', `The checkpoint in ${ck.dir} does not fit this model (${p?.length ?? 0} adapter values, expected ${lora.size}).`, 'Use the model the adapter was trained on.');
    }
    return { lora, rows, params: hostTensor('float32', [lora.size], p), info: { ...info, step: ck.state.step }, checkpoint: ck, tokenizerDir: tc.tokenizer, peft: null };
  }
  if (info.kind === 'peft' || info.kind === 'hf-checkpoint' || info.kind === 'hf-run') {
    if (!has(info.dir, PEFT_WEIGHTS_FILE)) {
      throw new UserError('adapter.peft-weights', `${info.description} Its weights (${PEFT_WEIGHTS_FILE}) are missing${has(info.dir, 'adapter_model.bin') ? ': it has only adapter_model.bin (a pickle file), which Lathe does not read' : ''}.`,
        'Save the adapter with safetensors (PEFT: save_pretrained(..., safe_serialization=True)), or copy adapter_model.safetensors into the folder.');
    }
    const adapter = await readPeftAdapter(info.dir);
    if (adapter.extra.size > 0) {
      const names = [...adapter.extra.keys()];
      throw new UserError('adapter.peft-extra', `${info.description} Besides LoRA weights it stores whole tensors (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', ...' : ''}: resized embeddings or modules_to_save), which Lathe cannot apply.`,
        'Merge the adapter into the model with PEFT (merge_and_unload) and use the merged folder as the model, or train the adapter without modules_to_save.');
    }
    const { lora, params } = peftToLora(adapter, cfg, layout);
    return { lora, rows: new TokenRows(cfg.vocabSize, null), params: hostTensor('float32', [lora.size], params), info, checkpoint: null, tokenizerDir: undefined, peft: { alpha: adapter.alpha, rslora: adapter.rslora } };
  }
  throw notAnAdapter(info);
}
