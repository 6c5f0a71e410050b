/** `lathe memory`: how much memory a LoRA/QLoRA run needs, and what to change so it fits a budget. */
import type { CliCommand } from '../types';
import { flagNumber, flagString } from '../args';
import { readModelConfig } from '../../engine/models/validate';
import { estimateMemory, formatBytes, type MemoryEp } from '../../engine/memory/estimate';
import { suggestFit } from '../../engine/memory/fit';
import { UserError } from '../../util/progress';

export const commands: CliCommand[] = [
  {
    path: ['memory'],
    summary: 'Estimate the memory a training run needs (and what to change to fit a budget)',
    usage: 'lathe memory --model MODEL_DIR [--batch 4] [--grad-accum 1] [--seq-len 512] [--rank 8] [--targets all-linear|attention|mlp] ' +
      '[--quantization none|nf4] [--paged] [--recompute] [--ep cpu|webgpu|cuda] [--budget-gb 8] [--json]',
    run: async (ctx) => {
      const modelDir = flagString(ctx.flags, 'model');
      if (!modelDir) throw new UserError('cli.missing', 'Missing --model.', 'Pass the model folder: lathe memory --model ./my-model');
      const model = await readModelConfig(modelDir);
      const ep = (flagString(ctx.flags, 'ep') ?? 'webgpu') as MemoryEp;
      if (!['cpu', 'webgpu', 'cuda'].includes(ep)) throw new UserError('cli.badFlag', `--ep is "${ep}".`, 'Use cpu, webgpu or cuda.');
      const quantization = (flagString(ctx.flags, 'quantization') ?? 'none') as 'none' | 'nf4';
      if (quantization !== 'none' && quantization !== 'nf4') throw new UserError('cli.badFlag', `--quantization is "${String(quantization)}".`, 'Use none or nf4.');
      const targets = (flagString(ctx.flags, 'targets') ?? 'all-linear') as 'all-linear' | 'attention' | 'mlp';
      const est = estimateMemory(model, {
        batchSize: flagNumber(ctx.flags, 'batch') ?? 4, seqLen: flagNumber(ctx.flags, 'seq-len') ?? 512,
        lora: { rank: flagNumber(ctx.flags, 'rank') ?? 8, targets }, quantization,
        pagedOptimizer: ctx.flags['paged'] === true, recompute: ctx.flags['recompute'] === true,
        gradAccum: flagNumber(ctx.flags, 'grad-accum') ?? 1,
      }, ep);
      const budgetGb = flagNumber(ctx.flags, 'budget-gb');
      const fit = budgetGb !== undefined ? suggestFit(est, budgetGb * 2 ** 30) : null;
      if (!ctx.json) {
        ctx.out(`${model.architecture}, ${((est.params.linear + est.params.other) / 1e9).toFixed(2)}B parameters, ${est.params.lora.toLocaleString('en-US')} LoRA parameters, ${ep}:`);
        for (const [k, v] of Object.entries(est.device)) ctx.out(`  ${k.padEnd(12)} ${formatBytes(v)}`);
        ctx.out(`  ${'total'.padEnd(12)} ${formatBytes(est.deviceTotal)}${est.host ? ` (+ ${formatBytes(est.host)} host memory)` : ''}`);
        ctx.out(`  activations with recomputation (--recompute): ${formatBytes(est.activationsWithRecompute)}`);
        if (fit) ctx.out(fit.message);
      }
      const { model: _m, ...rest } = est;
      return { estimate: rest, fit: fit ? { fits: fit.fits, changes: fit.changes, message: fit.message, total: fit.estimate.deviceTotal } : null };
    },
  },
];
