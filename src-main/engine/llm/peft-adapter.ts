/**
 * Reading LoRA adapters saved by PEFT (huggingface/peft `save_pretrained`; also what transformers'
 * Trainer writes into checkpoint-N folders of a PEFT run) into the engine's flat LoRA layout. Writing
 * them is export/peft.ts; the file layout is described there.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import { buildLoraLayout, loraScale, type LinearRole, type LoraLayout, type LoraModule } from './lora';
import { SafetensorsReader } from '../safetensors/reader';
import { UserError } from '../../util/progress';

export const PEFT_CONFIG_FILE = 'adapter_config.json';
export const PEFT_WEIGHTS_FILE = 'adapter_model.safetensors';
const PREFIX = 'base_model.model.';

/** The module path PEFT sees for one of our layout names. */
export function peftModulePath(cfg: ModelConfig, module: string): string {
  return cfg.family === 'gpt2' && !module.startsWith('transformer.') ? `transformer.${module}` : module;
}

// ---- reading ------------------------------------------------------------------------------------

export interface PeftAdapter {
  dir: string;
  config: Record<string, unknown>;
  rank: number;
  alpha: number;
  rslora: boolean;
  scale: number;
  /** Module path (as PEFT names it) -> A [r, in], B [out, r]. */
  modules: Map<string, { A: Float32Array; B: Float32Array; inFeatures: number; outFeatures: number }>;
  /** Full tensors that are not LoRA pairs (resized embeddings), keyed by their model name. */
  extra: Map<string, { shape: number[]; data: Float32Array }>;
}

function bad(dir: string, what: string): UserError {
  return new UserError('peft.invalid', `${dir} is not a LoRA adapter Lathe can load: ${what}.`,
    `Choose a folder holding ${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE} of a LoRA adapter (PEFT format).`);
}

/** Reads a PEFT LoRA adapter folder (f32/f16/bf16 weights). Keys with or without the adapter name ("default") load. */
export async function readPeftAdapter(dir: string): Promise<PeftAdapter> {
  const cfgFile = path.join(dir, PEFT_CONFIG_FILE);
  if (!existsSync(cfgFile)) throw bad(dir, `there is no ${PEFT_CONFIG_FILE}`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await fsp.readFile(cfgFile, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw bad(dir, `${PEFT_CONFIG_FILE} cannot be parsed (${(err as Error).message})`);
  }
  if (config['peft_type'] !== 'LORA') throw bad(dir, `peft_type is ${JSON.stringify(config['peft_type'])}, not "LORA"`);
  if (config['use_dora'] === true) throw bad(dir, 'it is a DoRA adapter (use_dora), which Lathe does not support');
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const v = config[k];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw bad(dir, `it sets per-layer ranks or alphas (${k}), which Lathe does not support`);
  }
  const r = config['r'], alpha = config['lora_alpha'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw bad(dir, `r is ${JSON.stringify(r)}`);
  if (typeof alpha !== 'number' || !(alpha > 0)) throw bad(dir, `lora_alpha is ${JSON.stringify(alpha)}`);
  const rslora = config['use_rslora'] === true;
  const weightsFile = path.join(dir, PEFT_WEIGHTS_FILE);
  if (!existsSync(weightsFile)) {
    throw bad(dir, existsSync(path.join(dir, 'adapter_model.bin')) ? 'its weights are in adapter_model.bin (pickle), which Lathe does not read' : `there is no ${PEFT_WEIGHTS_FILE}`);
  }
  const reader = await SafetensorsReader.open(weightsFile);
  const modules: PeftAdapter['modules'] = new Map();
  const extra: PeftAdapter['extra'] = new Map();
  try {
    const pairs = new Map<string, { a?: string; b?: string }>();
    for (const name of reader.tensors.keys()) {
      const m = /^(?:base_model\.model\.)?(.+)\.lora_([AB])(?:\.[^.]+)?\.weight$/.exec(name);
      if (m) {
        const p = pairs.get(m[1]!) ?? {};
        if (m[2] === 'A') p.a = name; else p.b = name;
        pairs.set(m[1]!, p);
      } else if (/\.lora_(embedding_)?[AB]\b|lora_magnitude/.test(name)) {
        throw bad(dir, `tensor "${name}" is a kind of LoRA weight Lathe does not support`);
      } else {
        const e = reader.entry(name);
        extra.set(name.startsWith(PREFIX) ? name.slice(PREFIX.length) : name, { shape: e.shape, data: await reader.readF32(name) });
      }
    }
    for (const [mod, p] of pairs) {
      if (!p.a || !p.b) throw bad(dir, `module ${mod} has lora_${p.a ? 'A' : 'B'} but not lora_${p.a ? 'B' : 'A'}`);
      const ea = reader.entry(p.a), eb = reader.entry(p.b);
      if (ea.shape.length !== 2 || eb.shape.length !== 2 || ea.shape[0] !== r || eb.shape[1] !== r) {
        throw bad(dir, `module ${mod} has lora_A ${JSON.stringify(ea.shape)} and lora_B ${JSON.stringify(eb.shape)}, expected [${r}, in] and [out, ${r}]`);
      }
      modules.set(mod, { A: await reader.readF32(p.a), B: await reader.readF32(p.b), inFeatures: ea.shape[1]!, outFeatures: eb.shape[0]! });
    }
  } finally {
    await reader.close();
  }
  if (modules.size === 0) throw bad(dir, `${PEFT_WEIGHTS_FILE} holds no lora_A/lora_B weights`);
  return { dir, config, rank: r, alpha, rslora, scale: loraScale({ rank: r, alpha, rslora }), modules, extra };
}

/**
 * A read adapter as the engine's flat LoRA layout for `cfg`: roles come from the modules present; a
 * module of such a role that the adapter skips (layers_to_transform) gets A = B = 0, which adds nothing.
 */
export function peftToLora(adapter: PeftAdapter, cfg: ModelConfig, layout: WeightsLayout): { lora: LoraLayout; params: Float32Array } {
  const full = buildLoraLayout(cfg, layout, { rank: adapter.rank, alpha: adapter.alpha, dropout: 0, rslora: adapter.rslora, targets: 'all-linear', seed: 0 });
  const byPath = new Map<string, LoraModule>(full.modules.map((m) => [peftModulePath(cfg, m.module), m]));
  const roles = new Set<LinearRole>();
  for (const mod of adapter.modules.keys()) {
    const m = byPath.get(mod) ?? byPath.get(peftModulePath(cfg, mod));
    if (!m) {
      throw new UserError('peft.model-mismatch', `The adapter in ${adapter.dir} adapts "${mod}", which is not a linear layer of this ${cfg.architecture} model.`,
        'Use the adapter with the base model it was trained on (adapter_config.json names it in base_model_name_or_path).');
    }
    roles.add(m.role);
  }
  const lora = buildLoraLayout(cfg, layout, { rank: adapter.rank, alpha: adapter.alpha, dropout: 0, rslora: adapter.rslora, targets: [...roles], seed: 0 });
  const params = new Float32Array(lora.size);
  for (const m of lora.modules) {
    const t = adapter.modules.get(peftModulePath(cfg, m.module)) ?? adapter.modules.get(m.module);
    if (!t) continue;
    if (t.inFeatures !== m.inFeatures || t.outFeatures !== m.outFeatures) {
      throw new UserError('peft.model-mismatch', `The adapter's ${m.module} is ${t.outFeatures}×${t.inFeatures}, but the model's layer is ${m.outFeatures}×${m.inFeatures}.`,
        'Use the adapter with the base model it was trained on.');
    }
    params.set(t.A, m.aOffset);
    params.set(t.B, m.bOffset);
  }
  return { lora, params };
}
