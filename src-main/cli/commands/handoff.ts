/** `lathe handoff` and `lathe import-adapter`: hand a run to accelerate / Axolotl / LLaMA-Factory and take the adapter back (src-main/handoff). */
import type { CliCommand } from '../types';
import { flagNumber, flagString } from '../args';
import { cliWork, requireFlag } from '../work';
import { createHandoff, importAdapter, STRATEGIES, TARGETS, type HandoffTarget, type Strategy } from '../../handoff';
import { UserError } from '../../util/progress';

export const commands: CliCommand[] = [
  {
    path: ['handoff'],
    summary: 'Write a job folder that trains this run with Hugging Face accelerate, Axolotl or LLaMA-Factory on bigger hardware',
    usage: [
      'lathe handoff --run RUN_OR_CONFIG --target accelerate|axolotl|llamafactory --gpus N [--nodes M] --out DIR [options] [--json]',
      '  --strategy ddp|fsdp|zero2|zero3   default launch strategy (all accelerate configs are written; default ddp)',
      '  --base-name ID                    model the job loads (a hub id); default: model/ inside the job folder',
      '  --overwrite                       replace a non-empty --out folder',
    ].join('\n'),
    run: async (ctx) => {
      const help = 'Run `lathe help handoff` for the options.';
      const target = requireFlag(ctx, 'target', help);
      if (!TARGETS.includes(target as HandoffTarget)) throw new UserError('cli.target', `--target must be one of ${TARGETS.join(', ')} (got "${target}").`);
      const strategy = flagString(ctx.flags, 'strategy');
      if (strategy !== undefined && !STRATEGIES.includes(strategy as Strategy)) throw new UserError('cli.strategy', `--strategy must be one of ${STRATEGIES.join(', ')} (got "${strategy}").`);
      const gpus = flagNumber(ctx.flags, 'gpus');
      if (gpus === undefined) throw new UserError('cli.missing', 'Missing --gpus N (GPUs per node).', help);
      const r = await createHandoff({
        run: requireFlag(ctx, 'run', help), target: target as HandoffTarget, gpus, nodes: flagNumber(ctx.flags, 'nodes'),
        out: requireFlag(ctx, 'out', help), strategy: strategy as Strategy | undefined,
        baseName: flagString(ctx.flags, 'base-name'), overwrite: ctx.flags['overwrite'] === true,
      }, cliWork(ctx));
      if (!ctx.json) {
        ctx.out(`${r.target} job written to ${r.out} (${r.files.length} files; rows ${Object.entries(r.rows).map(([k, v]) => `${k} ${v}`).join(', ')})`);
        ctx.out(`  batch: ${r.batch.perDevice} per GPU × ${r.batch.accumulation} accumulation × ${r.batch.worldSize} GPUs = ${r.batch.achieved} blocks per step (Lathe: ${r.batch.effective})`);
        for (const w of r.warnings) ctx.out(`  warning: ${w}`);
        ctx.out(`  next: read ${r.out}/README.md`);
      }
      return r;
    },
  },
  {
    path: ['import-adapter'],
    summary: 'Turn a PEFT LoRA adapter (from a hand-off job or anywhere) into a Lathe run for eval, chat and export',
    usage: [
      'lathe import-adapter DIR --model BASE --out RUN [--tokenizer EXTENDED_DIR] [--overwrite] [--json]',
      '  --tokenizer   the extended tokenizer whose new tokens\' rows the adapter carries (resized embeddings)',
      '  DIR holds adapter_config.json + adapter_model.safetensors; BASE is the model folder it was trained on',
    ].join('\n'),
    run: async (ctx) => {
      const dir = ctx.args[0];
      if (!dir) throw new UserError('cli.missing', 'Give the adapter folder: lathe import-adapter DIR --model BASE --out RUN.');
      const r = await importAdapter({ adapter: dir, model: requireFlag(ctx, 'model'), out: requireFlag(ctx, 'out'), tokenizer: flagString(ctx.flags, 'tokenizer'), overwrite: ctx.flags['overwrite'] === true });
      if (!ctx.json) {
        ctx.out(`Imported a rank-${r.rank} LoRA (alpha ${r.alpha}${r.rslora ? ', rsLoRA' : ''}, ${r.modules} layers: ${r.roles.join(', ')}) into ${r.out}`);
        for (const w of r.warnings) ctx.out(`  warning: ${w}`);
      }
      return r;
    },
  },
];
