/** `lathe export`: a trained run -> merged Hugging Face model or PEFT adapter (thin wrapper over src-main/export). */
import type { CliCommand } from '../types';
import { flagNumber, flagString } from '../args';
import { cliWork, requireFlag } from '../work';
import type { ExportParams, ExportResult } from '../../export';
import { UserError } from '../../util/progress';

const HELP = 'Run `lathe help export` for the options.';

function printResult(r: ExportResult): string[] {
  const lines = [
    `${r.format === 'merged' ? 'Merged model' : 'PEFT adapter'} (${r.dtype}, ${r.tensors} tensors, ${(r.tensorBytes / 1e6).toFixed(1)} MB, ${r.loraModules} LoRA layers, step ${r.step}) written to ${r.out}`,
    `  files: ${r.files.join(', ')}`,
  ];
  const v = r.verification;
  lines.push(v
    ? `  check: reloaded and compared with the trained model on ${v.ids.length} tokens — max |Δlogit| ${v.maxAbsDiff.toExponential(2)}, relative ${v.relError.toExponential(2)} (allowed ${v.tolerance}): passed`
    : '  check: skipped (--no-verify)');
  return lines;
}

export const commands: CliCommand[] = [
  {
    path: ['export'],
    summary: 'Export a trained LoRA run as a merged Hugging Face model or a PEFT adapter (verified after writing)',
    usage: [
      'lathe export --format merged|peft --model DIR --adapter RUN_OR_CHECKPOINT --out DIR [options] [--json]',
      '  --dtype bf16|f16|f32   weight type (merged: default the base model\'s; peft: default f32)',
      '  --shard-size MB        split merged weights into shards above this size (default 5000)',
      '  --tokenizer DIR        ship this (extended) tokenizer instead of the model\'s',
      '  --base-name NAME       base_model_name_or_path written into the config/card (default: the model path)',
      '  --overwrite            replace a non-empty --out folder',
      '  --no-verify            skip reloading the export and comparing logits',
    ].join('\n'),
    run: async (ctx) => {
      const format = requireFlag(ctx, 'format', HELP);
      if (format !== 'merged' && format !== 'peft') throw new UserError('cli.format', `--format must be merged or peft (got "${format}").`);
      const dtype = flagString(ctx.flags, 'dtype');
      if (dtype !== undefined && dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'f32') {
        throw new UserError('cli.dtype', `--dtype must be bf16, f16 or f32 (got "${dtype}").`);
      }
      const params: ExportParams = {
        format,
        model: requireFlag(ctx, 'model', HELP),
        adapter: requireFlag(ctx, 'adapter', HELP),
        out: requireFlag(ctx, 'out', HELP),
        dtype,
        shardSizeMB: flagNumber(ctx.flags, 'shard-size'),
        overwrite: ctx.flags['overwrite'] === true,
        verify: ctx.flags['no-verify'] !== true,
        tokenizerDir: flagString(ctx.flags, 'tokenizer'),
        baseModelName: flagString(ctx.flags, 'base-name'),
      };
      const result = await (await import('../../export')).exportModel(params, cliWork(ctx));
      if (!ctx.json) for (const l of printResult(result)) ctx.out(l);
      return result;
    },
  },
];
