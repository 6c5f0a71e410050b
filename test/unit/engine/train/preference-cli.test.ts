/**
 * The command line around preference tuning: `lathe prepare --preference`, `lathe train --method dpo
 * --beta X` flags, and the export's model card naming the method.
 */
import { describe, expect, it } from 'vitest';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { commands as prepareCommands } from '../../../../src-main/cli/commands/prepare';
import { commands as exportCommands } from '../../../../src-main/cli/commands/export';
import { trainConfigFromFlags } from '../../../../src-main/cli/commands/train';
import type { CliContext } from '../../../../src-main/cli/types';
import type { PrepareReport } from '../../../../src-main/data/prepare';
import { resolveTrainConfig } from '../../../../src-main/engine/train/config';
import { train } from '../../../../src-main/engine/train/trainer';
import { JobRequest } from '../../../../src-main/contract';
import { tempDir } from '../../../helpers/services';

const TINY = path.resolve(__dirname, '../../../../resources/models/tiny-default');

function ctx(args: string[], flags: CliContext['flags'], json = false): CliContext & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [], stderr: string[] = [];
  return { args, flags, json, out: (s) => stdout.push(s), err: (s) => stderr.push(s), signal: new AbortController().signal, stdout, stderr };
}

describe('preference tuning from the command line', () => {
  it('--method/--beta/--loss/--label-smoothing/--orpo-lambda land in the config; bad values are refused', () => {
    const cfg = resolveTrainConfig(trainConfigFromFlags(ctx([], { model: 'm', data: 'd', out: 'o', method: 'dpo', beta: '0.25', loss: 'ipo', 'label-smoothing': '0.1' })));
    expect(cfg.method).toBe('dpo');
    expect(cfg.preference).toEqual({ beta: 0.25, loss: 'ipo', labelSmoothing: 0.1, orpoLambda: 0.1 });
    expect(resolveTrainConfig(trainConfigFromFlags(ctx([], { model: 'm', data: 'd', out: 'o', method: 'orpo', 'orpo-lambda': '0.2' }))).preference.orpoLambda).toBe(0.2);
    expect(() => resolveTrainConfig(trainConfigFromFlags(ctx([], { model: 'm', data: 'd', out: 'o', method: 'ppo' })))).toThrow(/method/);
    expect(() => resolveTrainConfig({ model: 'm', dataset: 'd', out: 'o', method: 'dpo', preference: { beta: 0.1, gamma: 1 } })).toThrow(/preference/);
    // the train job and the prepare job accept the new settings through the contract
    expect(JobRequest.safeParse({ kind: 'train', params: { model: '/m', dataset: '/d', out: '/o', method: 'dpo', preference: { beta: 0.2 } } }).success).toBe(true);
    expect(JobRequest.safeParse({ kind: 'prepare', params: { mode: 'preference', inputs: ['/p'], out: '/o', tokenizerDir: '/m' } }).success).toBe(true);
  });

  it('prepare --preference -> DPO run -> export: the card names the method', async () => {
    const model = path.join(tempDir('lathe-pref-cli-'), 'tiny');
    cpSync(TINY, model, { recursive: true });
    const root = tempDir('lathe-pref-cli-data-');
    const f = path.join(root, 'pairs.jsonl');
    writeFileSync(f, Array.from({ length: 8 }, (_, i) => JSON.stringify({ prompt: `Tip ${i} for turning?`, chosen: `Keep the gouge sharp (${i}).`, rejected: `Go faster ${i}.` })).concat(['not json']).join('\n'));
    const data = path.join(root, 'ds');
    const c = ctx([f], { out: data, tokenizer: model, preference: true, 'block-size': '48', 'val-fraction': '0.25' });
    const r = (await prepareCommands[0]!.run(c)) as PrepareReport;
    expect(r.mode).toBe('preference');
    expect(r.preference!.pairs).toBe(8);
    expect(r.splits['val-domain']!.docs).toBeGreaterThan(0);
    expect(c.stderr.join('\n')).toMatch(/Preference pairs are rendered with/);
    expect(c.stdout.join('\n')).toMatch(/preference: 8 pairs \(trl-standard 8\)/);
    expect(c.stdout.join('\n')).toMatch(/lines or records skipped: 1\n\s+.*pairs\.jsonl:9: not valid JSON/);

    const run = path.join(root, 'run');
    await train({ model, dataset: data, out: run, maxSteps: 2, batchSize: 1, evalEvery: 0, checkpointEvery: 2, ep: 'cpu', method: 'dpo', preference: { beta: 0.2 }, lora: { rank: 4, alpha: 8, targets: 'attention' } });
    const out = path.join(root, 'adapter');
    await exportCommands.find((x) => x.path.join(' ') === 'export')!.run(ctx([], { format: 'peft', model, adapter: run, out }, true));
    const card = readFileSync(path.join(out, 'README.md'), 'utf8');
    expect(card).toContain('- dpo');
    expect(card).toContain('- Method: DPO (sigmoid loss), β 0.2, reference = the base model (adapter off)');
    expect(card).toContain('- Batch: 1 pairs × 1 accumulation');
    expect(card).toMatch(/\| val-domain \| 0\.6931 \| \d\.\d{4} \| 0\.000 \| [01]\.\d{3} \| -?\d\.\d{4} \|/); // ln 2 before; accuracy 0 at the start
  }, 120_000);
});
