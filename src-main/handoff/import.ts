/**
 * `lathe import-adapter`: a PEFT LoRA adapter trained anywhere (a hand-off job, or any PEFT adapter for a
 * supported family) -> a Lathe run folder (config.json + checkpoints/step-NNNNNN) that eval, chat and export
 * read like one Lathe trained. Refuses other PEFT types, DoRA, per-layer ranks, extra trainable tensors and
 * adapters whose modules or shapes do not fit the base model, naming what was found.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../engine/models';
import { CheckpointManager } from '../engine/train/checkpoints';
import { resolveTrainConfig } from '../engine/train/config';
import { readPeftAdapter, peftToLora, peftModulePath, PEFT_CONFIG_FILE, type PeftAdapter } from '../export/peft';
import { trainableLayout } from '../engine/train/trainable';
import type { ModelConfig } from '../engine/models/config';
import type { WeightsLayout } from '../engine/models/layout';
import type { ModelWeights } from '../engine/safetensors';
import { UserError } from '../util/progress';
import type { LinearRole } from '../engine/llm/lora';

export interface ImportAdapterParams {
  adapter: string;
  model: string;
  out: string;
  /** The extended tokenizer the adapter's new-token rows belong to (`lathe tokenizer extend`). */
  tokenizer?: string;
  overwrite?: boolean;
}
export interface ImportAdapterResult { out: string; checkpoint: string; rank: number; alpha: number; rslora: boolean; modules: number; roles: LinearRole[]; warnings: string[] }

function refuse(dir: string, what: string, hint: string): UserError {
  return new UserError('import.unsupported', `The adapter in ${dir} cannot be imported: ${what}.`, hint);
}

export async function importAdapter(p: ImportAdapterParams): Promise<ImportAdapterResult> {
  const dir = path.resolve(p.adapter);
  const out = path.resolve(p.out);
  if (existsSync(out) && readdirSync(out).length > 0 && !p.overwrite) {
    throw new UserError('import.out', `${out} is not empty.`, 'Choose a new run folder, or pass --overwrite.');
  }
  const adapter = await readPeftAdapter(dir); // refuses non-LoRA types (IA3, prompt tuning, ...), DoRA, rank patterns
  const cfg = adapter.config;
  if (cfg['bias'] !== undefined && cfg['bias'] !== 'none') {
    throw refuse(dir, `it trains biases (bias: ${JSON.stringify(cfg['bias'])}), which Lathe does not model`, 'Train with bias="none".');
  }
  if (adapter.extra.size > 0 && !p.tokenizer) {
    const names = [...adapter.extra.keys()].slice(0, 4).join(', ');
    throw refuse(dir, `besides LoRA pairs it holds ${adapter.extra.size} full or extra tensors (${names})`,
      'If these are resized embeddings for new tokens, pass --tokenizer with the extended tokenizer; adapters with modules_to_save or trainable_token_indices are not read.');
  }
  const modules = cfg['modules_to_save'];
  if (Array.isArray(modules) && modules.length > 0) {
    throw refuse(dir, `${PEFT_CONFIG_FILE} lists modules_to_save ${JSON.stringify(modules)}, whose weights are not in the adapter file`, 'Import an adapter trained without modules_to_save.');
  }
  const { config, layout, weights } = await openModel(p.model);
  let lora, params: Float32Array;
  try {
    ({ lora, params } = peftToLora(adapter, config, layout)); // refuses modules and shapes this model does not have
  } catch (err) {
    await weights.close();
    throw err;
  }
  const roles = [...new Set(lora.modules.map((m) => m.role))];
  const warnings: string[] = [];
  const base = cfg['base_model_name_or_path'];
  if (typeof base === 'string' && base && path.basename(base) !== path.basename(path.resolve(p.model))) {
    warnings.push(`adapter_config.json names base model "${base}"; it was imported onto ${p.model}, whose layer shapes match.`);
  }
  const dropout = typeof cfg['lora_dropout'] === 'number' ? Math.min(0.9, Math.max(0, cfg['lora_dropout'])) : 0;
  const train = resolveTrainConfig({
    model: path.resolve(p.model), dataset: dir, out,
    lora: { rank: adapter.rank, alpha: adapter.alpha, dropout, rslora: adapter.rslora, targets: roles },
    ...(p.tokenizer ? { tokenizer: path.resolve(p.tokenizer) } : {}),
  });
  // the layout the run's config rebuilds: the LoRA part first (as placed by peftToLora), then any new-token rows
  const t = trainableLayout(config, layout, train);
  if (t.lora.modules.length !== lora.modules.length || t.lora.modules[0]?.aOffset !== lora.modules[0]?.aOffset) throw new Error('internal: LoRA layout mismatch');
  const full = new Float32Array(t.lora.size);
  full.set(params);
  try {
    if (p.tokenizer) await placeNewRows(adapter, config, layout, weights, t.lora.newRows ?? null, full, p.tokenizer);
  } finally {
    await weights.close();
  }
  params = full;
  const mgr = new CheckpointManager(path.join(out, 'checkpoints'), 1);
  const checkpoint = await mgr.save(
    { step: 0, rng: {}, dataPosition: {}, valLoss: null, config: train, extra: { importedFrom: dir, peftConfig: cfg, loraSize: lora.size, newRows: t.lora.newRows?.ids.length ?? 0 } },
    new Map([['params', params], ['m', new Float32Array(params.length)], ['v', new Float32Array(params.length)]]),
  );
  writeFileSync(path.join(out, 'config.json'), JSON.stringify(train, null, 2) + '\n');
  writeFileSync(path.join(out, 'imported.json'), JSON.stringify({ from: dir, peftConfig: cfg, importedAt: new Date().toISOString(), warnings }, null, 2) + '\n');
  return { out, checkpoint, rank: adapter.rank, alpha: adapter.alpha, rslora: adapter.rslora, modules: adapter.modules.size, roles, warnings };
}

/** bf16 keeps 8 significant bits: a stored base row may differ from the base weight by its rounding, no more. */
const ROUNDING = 2 ** -8;

/**
 * PEFT trainable-token rows (trainable_token_indices, what the hand-off's train.py trains) or resized embedding
 * (and untied lm_head) matrices, as Lathe's PEFT export writes them, -> the new tokens' rows
 * in the flat vector. The base vocabulary's rows must be the base model's: Lathe trains only the new rows, so a
 * matrix trained whole (modules_to_save) is refused rather than cut down.
 */
async function placeNewRows(adapter: PeftAdapter, cfg: ModelConfig, layout: WeightsLayout, weights: ModelWeights,
  nr: { ids: number[]; embedOffset: number; headOffset: number | null } | null, full: Float32Array, tokenizer: string): Promise<void> {
  const dir = adapter.dir;
  if (!nr) throw refuse(dir, `the tokenizer ${tokenizer} adds no new tokens`, 'Pass the extended tokenizer the adapter was trained with, or leave --tokenizer out.');
  const C = cfg.hiddenSize, V = cfg.vocabSize;
  const used = new Set<string>();
  const indices = adapter.config['trainable_token_indices'];
  const take = async (name: string, offset: number) => {
    // PEFT trainable tokens: <module>.token_adapter.trainable_tokens_delta [n, C] holds the rows' values (index_copy)
    const modules = [peftModulePath(cfg, name), name].map((m) => m.replace(/\.weight$/, ''));
    const tokKey = modules.flatMap((m) => [`${m}.token_adapter.trainable_tokens_delta`, `${m}.token_adapter.trainable_tokens_delta.default`]).find((k) => adapter.extra.has(k));
    if (tokKey) {
      used.add(tokKey);
      const listed = Array.isArray(indices) ? indices
        : indices && typeof indices === 'object' ? Object.entries(indices).find(([k]) => modules.some((m) => m === k || m.endsWith(`.${k}`)))?.[1] : undefined;
      const e = adapter.extra.get(tokKey)!;
      if (!Array.isArray(listed) || !listed.every((x) => Number.isInteger(x)) || e.shape.length !== 2 || e.shape[0] !== listed.length || e.shape[1] !== C) {
        throw refuse(dir, `${tokKey} is ${JSON.stringify(e.shape)} but trainable_token_indices gives ${JSON.stringify(listed ?? null)} for it`, 'Import the adapter as PEFT saved it.');
      }
      const ids = listed as number[];
      if ([...ids].sort((a, b) => a - b).join(',') !== nr.ids.join(',')) {
        throw refuse(dir, `it trains the rows of tokens ${JSON.stringify(ids.slice(0, 8))}${ids.length > 8 ? '...' : ''}, but ${tokenizer} adds ${JSON.stringify(nr.ids.slice(0, 8))}${nr.ids.length > 8 ? '...' : ''}`, 'Pass the extended tokenizer the adapter was trained with.');
      }
      ids.forEach((id, j) => full.set(e.data.subarray(j * C, (j + 1) * C), offset + nr.ids.indexOf(id) * C));
      return;
    }
    const key = [peftModulePath(cfg, name), name].find((k) => adapter.extra.has(k));
    if (!key) throw refuse(dir, `it holds no ${name} matrix for the ${nr.ids.length} new tokens of ${tokenizer}`, 'Import the adapter exported together with this tokenizer.');
    used.add(key);
    const e = adapter.extra.get(key)!;
    const maxId = nr.ids.at(-1)!;
    if (e.shape.length !== 2 || e.shape[1] !== C || e.shape[0]! <= maxId) {
      throw refuse(dir, `${key} is ${JSON.stringify(e.shape)}, but the new tokens need [> ${maxId}, ${C}]`, 'Pass the extended tokenizer the adapter was trained with.');
    }
    const base = await weights.readF32(name);
    let changed = 0;
    for (let i = 0; i < V * C; i++) if (Math.abs(e.data[i]! - base[i]!) > ROUNDING * Math.abs(base[i]!) + 1e-12) changed++;
    if (changed > 0) {
      throw refuse(dir, `${key} changes ${changed} values in the base vocabulary's rows (the whole matrix was trained, e.g. modules_to_save), and Lathe trains only the new tokens' rows`,
        'Train with only the new rows trainable (the hand-off\'s accelerate target does), or export a merged model on the cluster.');
    }
    nr.ids.forEach((id, j) => full.set(e.data.subarray(id * C, (id + 1) * C), offset + j * C));
  };
  await take(layout.embed, nr.embedOffset);
  if (nr.headOffset !== null) await take(layout.lmHead ?? layout.embed, nr.headOffset);
  const left = [...adapter.extra.keys()].filter((k) => !used.has(k));
  if (left.length) throw refuse(dir, `it holds tensors Lathe does not model: ${left.slice(0, 4).join(', ')}`, 'Import an adapter with LoRA pairs and, at most, resized embeddings.');
}
