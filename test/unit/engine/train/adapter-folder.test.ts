/**
 * Adapter folders from other trainers: PEFT LoRA adapters and transformers Trainer checkpoint-N folders
 * load wherever a run is expected (same logits as the Lathe checkpoint they hold); full-model Trainer
 * checkpoints and PEFT extras are refused in plain words; the runs list says what each folder is.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel, openModel } from '../../../../src-main/engine/models';
import { peftModulePath } from '../../../../src-main/engine/llm/peft-adapter';
import { writeSafetensors } from '../../../../src-main/engine/safetensors';
import { describeAdapterFolder, loadAdapter } from '../../../../src-main/engine/train/adapter-folder';
import { CheckpointManager } from '../../../../src-main/engine/train/checkpoints';
import { computeLogits } from '../../../../src-main/engine/train/infer';
import { loadTrainedAdapter } from '../../../../src-main/export/adapter';
import { evaluationReport } from '../../../../src-main/eval/report';
import { listRuns } from '../../../../src-main/services/runs';
import { UserError } from '../../../../src-main/util/progress';
import { tempDir } from '../../../helpers/services';
import { handRun } from '../../export/helpers';

/** The hand run's adapter written as PEFT saves it. */
async function asPeft(modelDir: string, checkpointDir: string, out: string, extra = false): Promise<void> {
  const { config, layout, weights } = await openModel(modelDir);
  await weights.close();
  const ad = await loadAdapter(checkpointDir, config, layout);
  const p = ad.params.data as Float32Array;
  const r = ad.lora.rank;
  const tensors = ad.lora.modules.flatMap((m) => {
    const key = `base_model.model.${peftModulePath(config, m.module)}`;
    return [
      { name: `${key}.lora_A.weight`, dtype: 'F32' as const, shape: [r, m.inFeatures], data: p.slice(m.aOffset, m.aOffset + r * m.inFeatures) },
      { name: `${key}.lora_B.weight`, dtype: 'F32' as const, shape: [m.outFeatures, r], data: p.slice(m.bOffset, m.bOffset + m.outFeatures * r) },
    ];
  });
  if (extra) tensors.push({ name: 'base_model.model.lm_head.weight', dtype: 'F32' as const, shape: [2, 2], data: new Float32Array(4) });
  mkdirSync(out, { recursive: true });
  await writeSafetensors(path.join(out, 'adapter_model.safetensors'), tensors);
  writeFileSync(path.join(out, 'adapter_config.json'), JSON.stringify({
    peft_type: 'LORA', task_type: 'CAUSAL_LM', base_model_name_or_path: 'HuggingFaceTB/SmolLM2-135M', r, lora_alpha: 8,
    target_modules: ['q_proj', 'v_proj'], use_rslora: false, lora_dropout: 0.05,
  }));
}

async function caught(p: Promise<unknown>): Promise<UserError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

describe('PEFT adapters and Trainer checkpoint-N folders', () => {
  it('load wherever a run is expected and give the logits of the same adapter trained in Lathe', async () => {
    const root = tempDir();
    const model = path.join(root, 'model');
    await createTinyModel('llama', model, { seed: 4 });
    const project = path.join(root, 'project');
    const lathe = path.join(project, 'runs', 'lathe-run');
    mkdirSync(lathe, { recursive: true });
    const ck = await handRun(model, lathe, { rank: 4, alpha: 8, targets: ['q', 'v'] });

    const peft = path.join(project, 'runs', 'peft-adapter');
    await asPeft(model, ck, peft);
    const trainer = path.join(project, 'runs', 'hf-output');
    await asPeft(model, ck, path.join(trainer, 'checkpoint-2'));
    await asPeft(model, ck, path.join(trainer, 'checkpoint-10'));
    writeFileSync(path.join(trainer, 'checkpoint-10', 'trainer_state.json'), JSON.stringify({ global_step: 10, log_history: [] }));
    const full = path.join(project, 'runs', 'full-ft', 'checkpoint-3');
    mkdirSync(full, { recursive: true });
    cpSync(path.join(model, 'model.safetensors'), path.join(full, 'model.safetensors'));
    writeFileSync(path.join(full, 'trainer_state.json'), JSON.stringify({ global_step: 3 }));

    expect(describeAdapterFolder(peft).kind).toBe('peft');
    expect(describeAdapterFolder(trainer)).toMatchObject({ kind: 'hf-run', dir: path.join(trainer, 'checkpoint-10'), step: 10 });
    expect(describeAdapterFolder(path.join(trainer, 'checkpoint-2'))).toMatchObject({ kind: 'hf-checkpoint', step: 2 });

    const ids = [1, 5, 9, 2];
    const want = await computeLogits(model, ids, { checkpoint: lathe, ep: 'cpu' });
    const base = await computeLogits(model, ids, { ep: 'cpu' });
    expect(want.logits).not.toEqual(base.logits); // the adapter changes something
    for (const dir of [peft, trainer, path.join(trainer, 'checkpoint-2')]) {
      const got = await computeLogits(model, ids, { checkpoint: dir, ep: 'cpu' });
      got.logits.forEach((row, t) => row.forEach((x, v) => expect(Math.abs(x - want.logits[t]![v]!)).toBeLessThan(1e-5)));
    }
    // export reads it too, with the PEFT settings standing in for a training config
    const { config, layout, weights } = await openModel(model);
    await weights.close();
    const ad = await loadTrainedAdapter(peft, config, layout);
    expect(ad.train.lora).toMatchObject({ rank: 4, alpha: 8 });
    expect(ad.train.model).toBe('HuggingFaceTB/SmolLM2-135M');

    const err = await caught(computeLogits(model, ids, { checkpoint: path.dirname(full), ep: 'cpu' }));
    expect(err.code).toBe('adapter.full-model');
    expect(err.message).toMatch(/Trainer checkpoints \(checkpoint-3\) of a full fine-tune .*It is a whole model, not an adapter\./);

    const runs = listRuns(project);
    const by = (name: string) => runs.find((r) => r.name === name)!;
    expect(by('lathe-run').source).toBeUndefined();
    expect(by('peft-adapter')).toMatchObject({ source: 'peft', status: 'finished', model: 'HuggingFaceTB/SmolLM2-135M' });
    expect(by('peft-adapter').note).toMatch(/is a PEFT LoRA adapter .* trained outside Lathe/);
    expect(by('hf-output')).toMatchObject({ source: 'hf-trainer', lastStep: 10, checkpoints: [{ dir: path.join(trainer, 'checkpoint-10'), step: 10 }] });
    expect(by('full-ft')).toMatchObject({ source: 'hf-full-model', status: 'empty' });
    expect(new CheckpointManager(path.join(lathe, 'checkpoints')).list()).toHaveLength(1);
  });

  it('refuses what it cannot apply, saying what the folder is', async () => {
    const root = tempDir();
    const model = path.join(root, 'model');
    await createTinyModel('llama', model, { seed: 4 });
    const run = path.join(root, 'run');
    mkdirSync(run);
    const ck = await handRun(model, run, { rank: 2, targets: ['q'] });
    const withExtra = path.join(root, 'extra');
    await asPeft(model, ck, withExtra, true);
    const { config, layout, weights } = await openModel(model);
    await weights.close();
    let err = await caught(loadAdapter(withExtra, config, layout));
    expect(err.code).toBe('adapter.peft-extra');
    expect(err.message).toMatch(/PEFT LoRA adapter .*whole tensors \(lm_head\.weight/);
    const peft = path.join(root, 'peft');
    await asPeft(model, ck, peft);
    err = await caught(evaluationReport({ run: peft }));
    expect(err.code).toBe('report.foreignRun');
    expect(err.message).toMatch(/is a PEFT LoRA adapter .*needs a Lathe training run/);
    expect(err.hint).toContain(`--adapter ${peft}`);
    const empty = path.join(root, 'empty');
    mkdirSync(empty);
    err = await caught(loadAdapter(empty, config, layout));
    expect(err.code).toBe('adapter.unknown');
    expect(err.hint).toMatch(/PEFT LoRA adapter folder/);
  });
});
