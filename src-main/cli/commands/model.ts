/**
 * `lathe model create-tiny` and `lathe model inspect`: thin wrappers over src-main/engine/models.
 */
import type { CliCommand, CliContext } from '../types';
import { UserError } from '../../util/progress';
import { TINY_ARCHS } from '../../engine/models/tiny-archs';

// The engine's model modules load when a command runs, so `lathe help` stays quick.
const models = () => import('../../engine/models');

function flagString(ctx: CliContext, name: string): string | undefined {
  const v = ctx.flags[name];
  if (v === undefined || v === false) return undefined;
  if (v === true) throw new UserError('cli-flag', `--${name} needs a value.`, `Write --${name} VALUE.`);
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

export const commands: CliCommand[] = [
  {
    path: ['model', 'create-tiny'],
    summary: 'Write a tiny deterministic random model (Hugging Face format) for tests and demos',
    usage: `lathe model create-tiny --arch ARCH --out DIR [--seed N] [--dtype f32|f16|bf16] [--shard-bytes N]\n  ARCH: ${TINY_ARCHS.join(', ')}`,
    async run(ctx) {
      const arch = flagString(ctx, 'arch');
      const out = flagString(ctx, 'out') ?? ctx.args[0];
      if (!arch || !out) throw new UserError('cli-usage', 'model create-tiny needs --arch and --out.', `Example: lathe model create-tiny --arch llama --out ./tiny-llama (archs: ${TINY_ARCHS.join(', ')}).`);
      const seedText = flagString(ctx, 'seed') ?? '0';
      const seed = Number(seedText);
      if (!Number.isSafeInteger(seed) || seed < 0) throw new UserError('cli-usage', `--seed must be a whole number ≥ 0, got "${seedText}".`, 'Example: --seed 42');
      const dtype = (flagString(ctx, 'dtype') ?? 'f32').toLowerCase();
      if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new UserError('cli-usage', `--dtype must be f32, f16 or bf16, got "${dtype}".`, 'Example: --dtype bf16');
      const shard = flagString(ctx, 'shard-bytes');
      const res = await (await models()).createTinyModel(arch, out, {
        seed, dtype, maxShardBytes: shard === undefined ? undefined : Number(shard), signal: ctx.signal,
      });
      const summary = { dir: res.dir, arch, architecture: res.config.architecture, parameters: res.parameters, dtype, seed, files: res.files };
      if (!ctx.json) ctx.out(`Wrote a tiny ${res.config.architecture} (${fmtCount(res.parameters)} parameters, ${dtype}) to ${res.dir}`);
      return summary;
    },
  },
  {
    path: ['model', 'inspect'],
    summary: 'Check a Hugging Face model folder and describe it (architecture, size, dtype, tokenizer)',
    usage: 'lathe model inspect DIR',
    async run(ctx) {
      const dir = ctx.args[0];
      if (!dir) throw new UserError('cli-usage', 'model inspect needs a folder.', 'Example: lathe model inspect ./my-model');
      const { inspectModelFolder, describeArchitecture } = await models();
      const ins = await inspectModelFolder(dir);
      const c = ins.config;
      const result = {
        dir: ins.dir,
        architecture: c.architecture,
        family: c.family,
        features: describeArchitecture(c),
        parameters: ins.parameters,
        dtype: ins.dtype,
        weightBytes: ins.weightBytes,
        weightFiles: ins.weightFiles,
        sharded: ins.sharded,
        config: c,
        tokenizer: {
          file: ins.tokenizer.file, vocabSize: ins.tokenizer.vocabSize, type: ins.tokenizer.modelType,
          chatTemplate: ins.tokenizer.hasChatTemplate, chatTemplateSource: ins.tokenizer.chatTemplateSource,
          bos: ins.tokenizer.bosToken, eos: ins.tokenizer.eosToken,
        },
        generationConfig: ins.hasGenerationConfig,
        ok: ins.problems.length === 0,
        problems: ins.problems,
        warnings: ins.warnings,
      };
      if (!ctx.json) {
        const lines = [
          `Model:        ${ins.dir}`,
          `Architecture: ${c.architecture} (${c.family})`,
          `Parameters:   ${fmtCount(ins.parameters)} (${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads} heads / ${c.numKvHeads} kv heads, head dim ${c.headDim}, MLP ${c.intermediateSize}, vocab ${c.vocabSize})`,
          ...describeArchitecture(c).map((f, i) => `${i === 0 ? 'Details:     ' : '             '} ${f}`),
          `Embeddings:   ${c.tieWordEmbeddings ? 'tied (lm_head = embedding)' : 'untied'}; positions: ${c.positions === 'rope' ? `RoPE θ=${c.rope!.theta}${c.rope!.scaling ? ` (${c.rope!.scaling.type} scaling)` : ''}${c.ropeLayers.some((x) => !x) ? `, NoPE layers ${c.ropeLayers.flatMap((x, i) => (x ? [] : [i])).join(',')}` : ''}` : 'learned'}`,
          `Weights:      ${ins.dtype ?? 'unreadable'}, ${(ins.weightBytes / 2 ** 20).toFixed(1)} MiB in ${ins.weightFiles.length} file(s)${ins.sharded ? ' (sharded)' : ''}`,
          `Tokenizer:    ${ins.tokenizer.file ? `${ins.tokenizer.file} (${ins.tokenizer.modelType ?? '?'}, ${ins.tokenizer.vocabSize} ids)` : 'missing'}`,
          `Chat template: ${ins.tokenizer.hasChatTemplate ? `found (${ins.tokenizer.chatTemplateSource})` : 'none'}`,
          ...ins.warnings.map((w) => `Warning: ${w}`),
          ...ins.problems.map((p) => `Problem: ${p.message}\n  HINT: ${p.hint}`),
          ins.problems.length === 0 ? 'OK: ready to fine-tune.' : `${ins.problems.length} problem(s) must be fixed first.`,
        ];
        ctx.out(lines.join('\n'));
      }
      return result;
    },
  },
];
