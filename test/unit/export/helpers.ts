/**
 * Hand-made training runs for export tests: a checkpoint with a random, non-zero adapter (B ≠ 0, so the
 * merge changes every adapted weight), written by the real CheckpointManager in the trainer's layout.
 * Deterministic by seed, so the oracle fixtures can be regenerated bit for bit.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams, type LinearRole, type TargetPreset } from '../../../src-main/engine/llm/lora';
import { Rng } from '../../../src-main/engine/models/rng';
import { CheckpointManager } from '../../../src-main/engine/train/checkpoints';
import { resolveTrainConfig } from '../../../src-main/engine/train/config';

export interface HandRunOptions {
  rank?: number;
  alpha?: number;
  rslora?: boolean;
  targets?: TargetPreset | LinearRole[];
  seed?: number;
  step?: number;
  /** Std of B's entries (A is the standard init, ±1/√in). */
  bStd?: number;
}

/** Writes <runDir>/config.json, summary.json and checkpoints/step-NNNNNN; returns the checkpoint folder. */
export async function handRun(modelDir: string, runDir: string, o: HandRunOptions = {}): Promise<string> {
  const train = resolveTrainConfig({
    model: modelDir, dataset: '/nonexistent/dataset', out: runDir, seed: o.seed ?? 5,
    lora: { rank: o.rank ?? 4, alpha: o.alpha ?? 8, rslora: o.rslora ?? false, targets: o.targets ?? 'all-linear' },
  });
  const { config, layout, weights } = await openModel(modelDir);
  await weights.close();
  const lora = buildLoraLayout(config, layout, { ...train.lora, seed: train.seed });
  const params = initLoraParams(lora, train.seed);
  const rng = new Rng(train.seed + 1);
  for (const m of lora.modules) params.set(rng.normalArray(m.outFeatures * lora.rank, o.bStd ?? 0.05), m.bOffset);
  const step = o.step ?? 7;
  writeFileSync(path.join(runDir, 'config.json'), JSON.stringify(train, null, 2));
  const dir = await new CheckpointManager(path.join(runDir, 'checkpoints')).save(
    { step, rng: {}, dataPosition: {}, valLoss: 2.5, config: train },
    new Map([['params', params], ['m', new Float32Array(lora.size)], ['v', new Float32Array(lora.size)]]),
  );
  writeFileSync(path.join(runDir, 'summary.json'), JSON.stringify({
    runDir, steps: step, finalLoss: 2.345, val: { 'val-domain': { loss: 2.5, ppl: Math.exp(2.5) } },
    valBefore: { 'val-domain': { loss: 3.1, ppl: Math.exp(3.1) } },
  }, null, 2));
  return dir;
}
