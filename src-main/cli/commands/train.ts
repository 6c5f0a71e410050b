/** `lathe train`, `lathe eval`, `lathe logits`, `lathe demo`: thin wrappers over the engine's training services. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CliCommand, CliContext } from '../types';
import { flagNumber, flagString } from '../args';
import { runJobFromCli } from './core';
import { cliWork, requireFlag } from '../work';
import type { TrainConfigInput } from '../../engine/train/config';
import type { TrainSummary } from '../../engine/train/trainer';
import { UserError } from '../../util/progress';
import { closingGpu, resolveEpFlag } from '../gpu';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');


/** Flags -> TrainConfig input (a --config JSON file is the base; flags override). */
export function trainConfigFromFlags(ctx: CliContext): TrainConfigInput {
  const file = flagString(ctx.flags, 'config');
  const base = file ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const num = (n: string) => flagNumber(ctx.flags, n);
  const set = <T>(obj: Record<string, unknown>, key: string, v: T | undefined) => { if (v !== undefined) obj[key] = v; };
  const cfg: Record<string, unknown> = { ...base };
  set(cfg, 'model', flagString(ctx.flags, 'model'));
  set(cfg, 'dataset', flagString(ctx.flags, 'data'));
  set(cfg, 'out', flagString(ctx.flags, 'out'));
  set(cfg, 'maxSteps', num('steps'));
  set(cfg, 'epochs', num('epochs'));
  set(cfg, 'batchSize', num('batch'));
  set(cfg, 'gradAccum', num('accum'));
  set(cfg, 'evalEvery', num('eval-every'));
  set(cfg, 'checkpointEvery', num('checkpoint-every'));
  set(cfg, 'seed', num('seed'));
  set(cfg, 'ep', flagString(ctx.flags, 'ep'));
  if (ctx.flags['paged'] === true) cfg['pagedOptimizer'] = true;
  if (ctx.flags['recompute'] === true) cfg['recompute'] = true;
  if (ctx.flags['f16'] === true) cfg['compute'] = 'float16';
  if (ctx.flags['bf16'] === true) cfg['compute'] = 'bfloat16';
  if (ctx.flags['qlora'] === true) cfg['quantization'] = 'nf4';
  const lora: Record<string, unknown> = { ...(base['lora'] as object | undefined) };
  set(lora, 'rank', num('rank')); set(lora, 'alpha', num('alpha')); set(lora, 'targets', flagString(ctx.flags, 'targets'));
  if (ctx.flags['rslora'] === true) lora['rslora'] = true;
  if (Object.keys(lora).length) cfg['lora'] = lora;
  const optim: Record<string, unknown> = { ...(base['optim'] as object | undefined) };
  set(optim, 'lr', num('lr')); set(optim, 'maxGradNorm', num('clip')); set(optim, 'weightDecay', num('weight-decay'));
  if (Object.keys(optim).length) cfg['optim'] = optim;
  set(cfg, 'method', flagString(ctx.flags, 'method'));
  const preference: Record<string, unknown> = { ...(base['preference'] as object | undefined) };
  set(preference, 'beta', num('beta')); set(preference, 'loss', flagString(ctx.flags, 'loss'));
  set(preference, 'labelSmoothing', num('label-smoothing')); set(preference, 'orpoLambda', num('orpo-lambda'));
  if (Object.keys(preference).length) cfg['preference'] = preference;
  const schedule: Record<string, unknown> = { ...(base['schedule'] as object | undefined) };
  set(schedule, 'kind', flagString(ctx.flags, 'schedule')); set(schedule, 'warmupSteps', num('warmup'));
  if (Object.keys(schedule).length) cfg['schedule'] = schedule;
  return cfg as TrainConfigInput;
}

function printSummary(ctx: CliContext, s: TrainSummary): void {
  if (ctx.json) return;
  for (const d of s.damagedCheckpoints ?? []) ctx.out(`[warn] ${d.message}`);
  ctx.out(`${s.stopped ? 'Stopped' : 'Finished'} after ${s.steps} steps on ${s.ep} (${Math.round(s.tokensPerSecond).toLocaleString('en-US')} tokens/s). Run folder: ${s.runDir}`);
  for (const [k, after] of Object.entries(s.val)) {
    const before = s.valBefore[k];
    const a = after as typeof after & { rewardAccuracy?: number; rewardMargin?: number };
    if (a.rewardAccuracy !== undefined) ctx.out(`  ${k.padEnd(12)} loss ${before ? `${before.loss.toFixed(4)} -> ` : ''}${a.loss.toFixed(4)}, reward accuracy ${(a.rewardAccuracy * 100).toFixed(0)}%, margin ${a.rewardMargin!.toFixed(3)}`);
    else ctx.out(`  ${k.padEnd(12)} perplexity ${before ? `${before.ppl.toFixed(2)} -> ` : ''}${after.ppl.toFixed(2)}`);
  }
}

export const commands: CliCommand[] = [
  {
    path: ['train'],
    summary: 'Fine-tune a model with LoRA on a prepared dataset (resumes a run folder)',
    usage: [
      'lathe train --model DIR --data DATASET_DIR --out RUN_DIR [options] [--json]',
      '  --config FILE        JSON training config (flags override it)',
      '  --steps N | --epochs N, --batch N, --accum N, --lr X, --warmup N, --schedule cosine|linear|constant',
      '  --rank N --alpha X --targets attention|mlp|all-linear [--rslora], --clip X, --weight-decay X',
      '  --eval-every N, --checkpoint-every N, --seed N, --ep auto|cpu|webgpu|cuda|gpu (gpu: Lathe\'s own WebGPU kernels), --qlora (NF4 base), --paged (optimizer state in host memory), --recompute (gradient checkpointing), --f16 (f16 compute on a GPU), --bf16 (bf16 compute, --ep gpu)',
      '  --method lm|dpo|orpo (dpo/orpo need `lathe prepare --preference` data), --beta X (DPO, 0.1), --loss sigmoid|ipo, --label-smoothing X, --orpo-lambda X (0.1)',
      'Prepare DATASET_DIR first with `lathe prepare`. Ctrl+C stops after the current step and saves a checkpoint.',
    ].join('\n'),
    run: async (ctx) => {
      const s = (await runJobFromCli({ kind: 'train', params: trainConfigFromFlags(ctx) as never }, ctx)) as TrainSummary;
      printSummary(ctx, s);
      return s;
    },
  },
  {
    path: ['eval'],
    summary: 'Perplexity on a prepared dataset\'s held-out splits (optionally with a LoRA checkpoint)',
    usage: 'lathe eval --model DIR --data DATASET_DIR [--adapter RUN_OR_CHECKPOINT_DIR] [--max-blocks N] [--ep auto|cpu|webgpu|cuda|gpu] [--json]\n'
      + 'lathe eval --report --run RUN_DIR ...   the before/after evaluation report (same as `lathe eval report`)',
    run: async (ctx) => {
      if (ctx.flags['report'] === true) {
        const report = (await import('./generate')).commands.find((c) => c.path.join(' ') === 'eval report')!;
        return report.run(ctx);
      }
      const r = await closingGpu(ctx, async () => (await import('../../engine/train/infer')).evaluatePerplexity(requireFlag(ctx, 'model'), requireFlag(ctx, 'data'), {
        checkpoint: flagString(ctx.flags, 'adapter'), ep: await resolveEpFlag(ctx), maxBlocks: flagNumber(ctx.flags, 'max-blocks'), signal: ctx.signal,
      }));
      if (!ctx.json) for (const [k, v] of Object.entries(r.splits)) ctx.out(`${k.padEnd(12)} loss ${v.loss.toFixed(4)}  perplexity ${v.ppl.toFixed(3)}  (${v.tokens} tokens)`);
      return r;
    },
  },
  {
    path: ['logits'],
    summary: 'Print a model\'s logits for token ids as JSON (with or without an adapter)',
    usage: 'lathe logits --model DIR --ids 1,2,3 [--adapter RUN_OR_CHECKPOINT_DIR] [--ep auto|cpu|webgpu|cuda|gpu]',
    run: async (ctx) => {
      const ids = requireFlag(ctx, 'ids').split(',').map((s) => Number(s.trim()));
      const r = await closingGpu(ctx, async () => (await import('../../engine/train/infer')).computeLogits(requireFlag(ctx, 'model'), ids, { checkpoint: flagString(ctx.flags, 'adapter'), ep: await resolveEpFlag(ctx) }));
      ctx.out(JSON.stringify(r));
      return undefined;
    },
  },
  {
    path: ['demo'],
    summary: 'Fine-tune the bundled tiny model on the bundled sample corpus and show held-out perplexity falling',
    usage: [
      'lathe demo [--out DIR] [--steps N] [--ep auto|cpu|webgpu|cuda|gpu] [--json]',
      '  --out DIR   where the demo keeps its files (default ./lathe-demo, or ./lathe-demo-2, ... when that is taken):',
      '              dataset/ (the prepared corpus), run/ (training run, checkpoints), merged/ (the exported model)',
    ].join('\n'),
    run: async (ctx) => {
      const out = path.resolve(flagString(ctx.flags, 'out') ?? freeDemoFolder(process.cwd()));
      ctx.err(`The demo keeps its files in ${out}`);
      const model = path.join(root, 'resources/models/tiny-default');
      const domain = path.join(root, 'resources/corpus/sample');
      const general = path.join(root, 'resources/corpus/general');
      if (!existsSync(domain)) throw new UserError('demo.noCorpus', `The bundled sample corpus is missing (${domain}).`, 'Reinstall Lathe or pass your own data to `lathe prepare` and `lathe train`.');
      ctx.err(`Preparing the sample corpus into ${out}/dataset ...`);
      const rep = await (await import('../../data/prepare')).prepareCorpus({
        inputs: [domain], ...(existsSync(general) ? { general: [general] } : {}), out: path.join(out, 'dataset'),
        tokenizerDir: model, blockSize: 64, seed: 1, valFraction: 0.1,
      }, { signal: ctx.signal, onProgress: (p) => p.stage && ctx.err(`  ${p.stage}${p.fraction !== undefined ? ` ${Math.round(p.fraction * 100)}%` : ''}`) });
      ctx.err(`Dataset: ${Object.entries(rep.tokens).map(([k, v]) => `${k} ${v} tokens`).join(', ')}`);
      const params: TrainConfigInput = {
        model, dataset: path.join(out, 'dataset'), out: path.join(out, 'run'),
        maxSteps: flagNumber(ctx.flags, 'steps') ?? 120, batchSize: 8, evalEvery: 20, checkpointEvery: 40,
        optim: { lr: 3e-3 }, schedule: { warmupSteps: 10 }, lora: { rank: 8, alpha: 16, targets: 'all-linear' },
        ep: (flagString(ctx.flags, 'ep') as TrainConfigInput['ep']) ?? 'auto',
      };
      const { completeText } = await import('../../engine/generate/chat');
      // samples on the device asked for (automatic: the GPU backend where a hardware adapter exists, else the CPU EP)
      const sample = { greedy: true, maxTokens: 32, ep: await resolveEpFlag(ctx), signal: ctx.signal };
      const before = await closingGpu(ctx, () => completeText(model, DEMO_PROMPT, sample));
      ctx.err(`Sample before training: "${DEMO_PROMPT}" → "${before.text}"`);
      const s = (await runJobFromCli({ kind: 'train', params: params as never }, ctx)) as TrainSummary;
      printSummary(ctx, s);
      const after = await closingGpu(ctx, () => completeText(model, DEMO_PROMPT, { ...sample, adapter: s.runDir }));
      ctx.err(`Sample after training:  "${DEMO_PROMPT}" → "${after.text}"`);
      ctx.err(`Exporting the merged model to ${path.join(out, 'merged')} ...`);
      const { exportModel } = await import('../../export');
      const exported = await exportModel({ format: 'merged', model, adapter: s.runDir, out: path.join(out, 'merged'), overwrite: true, verify: true }, cliWork(ctx));
      ctx.err(`Merged model (Hugging Face safetensors, checked after writing) in ${exported.out}: ${exported.files.join(', ')}`);
      ctx.err(`Done. Everything is in ${out}`);
      return { ...s, out, samples: { prompt: DEMO_PROMPT, before: before.text, after: after.text }, export: exported };
    },
  },
];

/** The prompt the demo completes before and after training (the sample corpus is woodturning notes). */
const DEMO_PROMPT = 'Sharpening notes: the bevel';

/** ./lathe-demo, or the first of ./lathe-demo-2, -3, ... that does not exist or is empty. */
function freeDemoFolder(cwd: string): string {
  for (let i = 1; ; i++) {
    const dir = path.join(cwd, i === 1 ? 'lathe-demo' : `lathe-demo-${i}`);
    if (!existsSync(dir) || readdirSync(dir).length === 0) return dir;
  }
}
