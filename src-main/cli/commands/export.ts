/** `lathe export`: a trained run -> merged Hugging Face model or PEFT adapter (thin wrapper over src-main/export). */
import type { CliCommand } from '../types';
import { flagNumber, flagString } from '../args';
import { cliWork, requireFlag } from '../work';
import type { ExportParams, ExportResult } from '../../export';
import { UserError } from '../../util/progress';
import { GGUF_QUANTS, type GgufQuant } from '../../export/gguf/format';

const HELP = 'Run `lathe help export` for the options.';

function printGguf(r: ExportResult): string[] {
  const g = r.gguf!;
  const types = Object.entries(g.types).map(([k, v]) => `${v} ${k}`).join(', ');
  const lines = [
    `GGUF ${g.quant.toUpperCase()} (${(g.fileBytes / 1e6).toFixed(1)} MB; tensors: ${types}; pre-tokenizer ${g.pre}; ${r.loraModules} LoRA layers merged, step ${r.step}) written to ${g.file}`,
  ];
  const c = g.check;
  lines.push(c
    ? `  check (llama.cpp): tokenization equal; max |Δp| ${c.maxAbsProbDiff.toExponential(2)} over ${c.positions} positions${c.maxProbDiffAllowed !== null ? ` (allowed ${c.maxProbDiffAllowed})` : ''}; `
      + `greedy continuation ${c.greedyEqual ? 'same' : 'differs'}; held-out perplexity ${c.perplexity.toFixed(3)} vs ${c.referencePerplexity.toFixed(3)} unquantized (${c.perplexityIncrease >= 0 ? '+' : ''}${(100 * c.perplexityIncrease).toFixed(2)}%): passed`
    : '  check: skipped (--no-verify)');
  if (c?.heldOut) lines.push(`  held-out text: ${c.heldOut.note}`);
  lines.push(`  Ollama: ${g.modelfile}`, `    ${g.ollamaCreate}${g.ollamaAvailable ? '' : '   (ollama is not installed here)'}`);
  for (const w of g.warnings) lines.push(`  warning: ${w}`);
  return lines;
}

function printResult(r: ExportResult): string[] {
  if (r.format === 'gguf') return printGguf(r);
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
    summary: 'Export a trained LoRA run as a merged Hugging Face model, a PEFT adapter or a GGUF file (verified after writing)',
    usage: [
      'lathe export --format merged|peft --model DIR --adapter RUN_OR_CHECKPOINT --out DIR [options] [--json]',
      'lathe export --format gguf --quant f16|bf16|q8_0|q6_k|q5_k_m|q4_k_m --model DIR --adapter RUN --out DIR [--name NAME] [--tokenizer DIR] [--overwrite] [--no-verify] [--json]',
      '  --quant TYPE           GGUF tensor types: f16 (exact, largest), bf16, q8_0 (~half of f16, near-lossless), q6_k, q5_k_m, q4_k_m (smallest)',
      '  --name NAME            GGUF file name stem and Ollama model name (default: the model folder\'s name)',
      '  --dtype bf16|f16|f32   weight type (merged: default the base model\'s; peft: default f32)',
      '  --shard-size MB        split merged weights into shards above this size (default 5000)',
      '  --tokenizer DIR        ship this (extended) tokenizer instead of the model\'s',
      '  --base-name NAME       base_model_name_or_path written into the config/card (default: the model path)',
      '  --overwrite            replace a non-empty --out folder',
      '  --no-verify            skip reloading the export and comparing logits',
    ].join('\n'),
    run: async (ctx) => {
      const format = requireFlag(ctx, 'format', HELP);
      if (format !== 'merged' && format !== 'peft' && format !== 'gguf') throw new UserError('cli.format', `--format must be merged, peft or gguf (got "${format}").`);
      const quant = flagString(ctx.flags, 'quant');
      if (format === 'gguf' && !(GGUF_QUANTS as readonly string[]).includes(quant ?? '')) {
        throw new UserError('cli.quant', quant ? `--quant ${quant} is not a GGUF type Lathe writes.` : 'A GGUF export needs --quant.', `Choose one of: ${GGUF_QUANTS.join(', ')}.`);
      }
      if (format !== 'gguf' && quant !== undefined) throw new UserError('cli.quant', '--quant applies to --format gguf only.', 'Use --dtype for merged and PEFT exports.');
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
        ...(format === 'gguf' ? { quant: quant as GgufQuant, name: flagString(ctx.flags, 'name') } : {}),
      };
      const result = await (await import('../../export')).exportModel(params, cliWork(ctx));
      if (!ctx.json) for (const l of printResult(result)) ctx.out(l);
      return result;
    },
  },
];
