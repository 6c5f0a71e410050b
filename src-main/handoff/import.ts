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
import { readPeftAdapter, peftToLora, PEFT_CONFIG_FILE } from '../export/peft';
import { UserError } from '../util/progress';
import type { LinearRole } from '../engine/llm/lora';

export interface ImportAdapterParams { adapter: string; model: string; out: string; overwrite?: boolean }
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
  if (adapter.extra.size > 0) {
    const names = [...adapter.extra.keys()].slice(0, 4).join(', ');
    throw refuse(dir, `besides LoRA pairs it holds ${adapter.extra.size} full or extra tensors (${names}) — modules_to_save, trainable tokens or resized embeddings, which import-adapter does not read yet`,
      'Import an adapter without modules_to_save / trainable_token_indices, or export a merged model on the cluster.');
  }
  const modules = cfg['modules_to_save'];
  if (Array.isArray(modules) && modules.length > 0) {
    throw refuse(dir, `${PEFT_CONFIG_FILE} lists modules_to_save ${JSON.stringify(modules)}, whose weights are not in the adapter file`, 'Import an adapter trained without modules_to_save.');
  }
  const { config, layout, weights } = await openModel(p.model);
  await weights.close();
  const { lora, params } = peftToLora(adapter, config, layout); // refuses modules and shapes this model does not have
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
  });
  // the layout the run's config rebuilds must be the one the params were placed in
  if (lora.size !== params.length) throw new Error('internal: LoRA layout size mismatch');
  const mgr = new CheckpointManager(path.join(out, 'checkpoints'), 1);
  const checkpoint = await mgr.save(
    { step: 0, rng: {}, dataPosition: {}, valLoss: null, config: train, extra: { importedFrom: dir, peftConfig: cfg, loraSize: lora.size } },
    new Map([['params', params], ['m', new Float32Array(params.length)], ['v', new Float32Array(params.length)]]),
  );
  writeFileSync(path.join(out, 'config.json'), JSON.stringify(train, null, 2) + '\n');
  writeFileSync(path.join(out, 'imported.json'), JSON.stringify({ from: dir, peftConfig: cfg, importedAt: new Date().toISOString(), warnings }, null, 2) + '\n');
  return { out, checkpoint, rank: adapter.rank, alpha: adapter.alpha, rslora: adapter.rslora, modules: adapter.modules.size, roles, warnings };
}
