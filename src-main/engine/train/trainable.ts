/**
 * What a run trains: the LoRA tensors, plus — with an extended tokenizer — the embedding (and lm_head)
 * rows of the new tokens, all in one flat vector. Shared by the trainer, inference on checkpoints and export.
 */
import { readExtensionManifest } from '../../tokenizer/extend';
import { resizeEmbeddings, type NewTokenRows } from '../../tokenizer/embeddings';
import type { ModelConfig } from '../models/config';
import type { WeightsLayout } from '../models/layout';
import type { ModelWeights } from '../safetensors';
import { addNewRows, buildLoraLayout, initLoraParams, TokenRows, type LoraLayout } from '../llm/lora';
import type { TrainConfig } from './config';

export interface Trainable {
  lora: LoraLayout;
  rows: TokenRows;
  /** New tokens of the extended tokenizer (id and the base ids it replaces), [] without one. */
  newTokens: NewTokenRows[];
}

export function trainableLayout(model: ModelConfig, layout: WeightsLayout, tc: Pick<TrainConfig, 'lora' | 'seed' | 'tokenizer'>): Trainable {
  const newTokens = tc.tokenizer ? readExtensionManifest(tc.tokenizer).newTokens.map((t) => ({ id: t.id, baseIds: t.baseIds })) : [];
  const lora = addNewRows(buildLoraLayout(model, layout, { ...tc.lora, seed: tc.seed }), model, newTokens.map((t) => t.id));
  return { lora, rows: new TokenRows(model.vocabSize, lora.newRows), newTokens };
}

/** Starting values: LoRA A random / B zero; new rows from the base embedding (mean of the sub-tokens they replace, or global mean). */
export async function initTrainable(t: Trainable, model: ModelConfig, layout: WeightsLayout, weights: ModelWeights,
  tc: Pick<TrainConfig, 'seed' | 'newTokenInit'>): Promise<Float32Array> {
  const p = initLoraParams(t.lora, tc.seed);
  const nr = t.lora.newRows;
  if (!nr) return p;
  const C = model.hiddenSize, V = model.vocabSize;
  const fill = async (tensor: string, offset: number) => {
    // one matrix in memory at a time; resizeEmbeddings returns [V', C] with the new rows set
    const { matrix } = resizeEmbeddings(await weights.readF32(tensor), V, C, t.newTokens, tc.newTokenInit);
    nr.ids.forEach((id, j) => p.set(matrix.subarray(id * C, (id + 1) * C), offset + j * C));
  };
  await fill(layout.embed, nr.embedOffset);
  if (nr.headOffset !== null) await fill(layout.lmHead ?? layout.embed, nr.headOffset);
  return p;
}
