/**
 * CLI of the real-GPU check (check.ts), bundled to gpu-check.mjs by prepare.sh. One JSON line per result
 * on stdout; a failing row prints an `error` line and the next row runs.
 *   node gpu-check.mjs gen <model> [--root D] [--layers L]          writes <root>/<model> (random bf16)
 *   node gpu-check.mjs adapter                                        what Dawn reports for the GPU
 *   node gpu-check.mjs step <model> [--root D] [--layers L] [--T 2048,512] [--B 1] [--steps 3] [--recompute on|off]
 */
import path from 'node:path';
import { closeGpu } from '../../src-main/engine/backends/webgpu';
import { MODELS, adapterRow, checkStep, errorRow, hfConfig, writeRandomModel, type Row } from './check';

const out = (r: Row) => process.stdout.write(JSON.stringify(r) + '\n');

function flags(args: string[]): Record<string, string> {
  const f: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const v = args[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`Flag ${a} needs a value.`);
    f[a.slice(2)] = v;
    i++;
  }
  return f;
}

/** The folder of a model (layer cut in the name, so a cut and a whole model never share one). */
export function modelDir(root: string, model: string, layers: number): string {
  return path.join(root, layers > 0 ? `${model}-L${layers}` : model);
}

async function main(argv: string[]): Promise<number> {
  const [cmd, model = '', ...rest] = argv;
  const f = flags(cmd === 'adapter' ? [model, ...rest] : rest);
  const root = f['root'] ?? process.env['GC_ROOT'] ?? '/tmp/gpu-check';
  const layers = Number(f['layers'] ?? 0);
  let failed = 0;
  if (cmd === 'gen') {
    const t0 = performance.now();
    try {
      const r = await writeRandomModel(modelDir(root, model, layers), hfConfig(model, layers));
      out({ kind: 'gen', model, layers: layers || null, params: r.params, bytes: r.bytes, reused: r.reused, s: +((performance.now() - t0) / 1000).toFixed(1) });
    } catch (e) { out(errorRow({ kind: 'gen', model }, e)); failed++; }
  } else if (cmd === 'adapter') {
    try { out(await adapterRow()); } catch (e) { out(errorRow({ kind: 'adapter' }, e)); failed++; }
  } else if (cmd === 'step') {
    const m = MODELS[model];
    const Ts = (f['T'] ?? '2048').split(',').map(Number);
    const batch = Number(f['B'] ?? 1), steps = Number(f['steps'] ?? 3);
    const recompute = (f['recompute'] ?? 'on') === 'on';
    for (const seqLen of Ts) {
      const what = { kind: 'lathe', model, batch, seqLen, recompute };
      try {
        if (!m) throw new Error(`Unknown model "${model}" (known: ${Object.keys(MODELS).join(', ')}).`);
        out(await checkStep({ dir: modelDir(root, model, layers), model, batch, seqLen, recompute, steps, qlora: m.qlora, cacheRoot: f['cache'] ?? process.env['GC_CACHE'] }));
      } catch (e) { out(errorRow(what, e)); failed++; }
    }
  } else {
    process.stderr.write('usage: gpu-check.mjs gen|adapter|step <model> [--root D] [--layers L] [--T 2048,512] [--B 1] [--steps 3] [--recompute on|off]\n');
    return 2;
  }
  await closeGpu();
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then((c) => process.exit(c), (e: unknown) => { out(errorRow({ kind: 'fatal' }, e)); process.exit(1); });
