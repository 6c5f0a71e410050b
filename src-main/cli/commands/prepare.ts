/** `lathe prepare`: a thin wrapper over prepareCorpus (src-main/data/prepare.ts). */
import { readFileSync } from 'node:fs';
import type { CliCommand, CliContext } from '../types';
import { flagList, flagNumber, flagString } from '../args';
import type { PrepareConfig, PrepareReport } from '../../data/prepare';
import { UserError } from '../../util/progress';

function fmt(n: number): string {
  return n.toLocaleString('en-US');
}

/** What import skipped, repaired, split or guessed, file by file, in plain words (all of it is in report.json). */
function importLines(imp: PrepareReport['corpora']['domain']['import'], out: (s: string) => void): void {
  const list = <T>(title: string, items: T[], total: number, line: (x: T) => string, shown = 20): void => {
    if (!total) return;
    out(`  ${title}: ${fmt(total)}`);
    for (const x of items.slice(0, shown)) out(`    ${line(x)}`);
    if (total > Math.min(shown, items.length)) out(`    … ${fmt(total - Math.min(shown, items.length))} more in report.json`);
  };
  list('files skipped', imp.filesSkipped, imp.filesSkipped.length, (s) => `${s.path}: ${s.reason}`);
  list('lines or records skipped', imp.badLines, imp.badLineCount, (b) => `${b.path}:${b.line}: ${b.error}`, 10);
  list('repaired, split or guessed (kept)', imp.notes, imp.noteCount, (n) => `${n.path}${n.line !== undefined ? `:${n.line}` : ''}: ${n.what}`);
  if (imp.repairedChars) out(`  invalid UTF-8 characters replaced: ${fmt(imp.repairedChars)}`);
}

function summary(r: PrepareReport, out: (s: string) => void): void {
  for (const [name, c] of Object.entries(r.corpora)) {
    if (!c) continue;
    out(`${name}: ${fmt(c.import.filesRead)} files, ${fmt(c.docsIn)} documents in, ${fmt(c.docsOut)} kept (${fmt(c.trainDocs)} train, ${fmt(c.valDocs)} validation); ${fmt(c.charsIn)} -> ${fmt(c.charsOut)} characters`);
    for (const f of c.filters) {
      if (!f.enabled) continue;
      const what = [f.removed ? `removed ${fmt(f.removed)}` : '', f.modified ? `changed ${fmt(f.modified)}` : ''].filter(Boolean).join(', ') || 'nothing';
      const reasons = Object.entries(f.reasons).map(([k, v]) => `${k} ${fmt(v)}`).join(', ');
      out(`  ${f.name.padEnd(12)} ${what}${reasons ? ` (${reasons})` : ''}`);
    }
    importLines(c.import, out);
  }
  if (r.preference) {
    const p = r.preference;
    out(`preference: ${fmt(p.pairs)} pairs (${Object.entries(p.formats).map(([k, v]) => `${k} ${fmt(v)}`).join(', ')}); mean ${p.meanPromptTokens.toFixed(0)} prompt + ${p.meanCompletionTokens.toFixed(0)} reply tokens`);
    if (p.promptTruncated) out(`  ${fmt(p.promptTruncated)} pairs had their prompt cut from the start to fit${p.completionTruncated ? `; ${fmt(p.completionTruncated)} also lost the end of a reply` : ''}`);
    const sk = Object.entries(p.skipped).filter(([, v]) => v > 0);
    if (sk.length) out(`  skipped: ${sk.map(([k, v]) => `${k} ${fmt(v)}`).join(', ')} (each named by file and line in report.json)`);
  }
  if (r.mix) out(`mix: ${((r.mix.measured?.ratio ?? r.mix.achievedRatio) * 100).toFixed(1)}% domain tokens (asked ${(r.mix.ratio * 100).toFixed(0)}%), domain ×${r.mix.domainRepeat.toFixed(2)}, general ×${r.mix.generalRepeat.toFixed(2)}`);
  for (const [k, v] of Object.entries(r.splits)) out(`${k}: ${fmt(v.tokens)} tokens in ${fmt(v.rows)} rows of ${r.blockSize}`);
  for (const w of r.warnings) out(`warning: ${w}`);
  out(`done in ${r.seconds.toFixed(1)} s -> ${r.out}`);
}

export const commands: CliCommand[] = [
  {
    path: ['prepare'],
    summary: 'Import, clean, mix and pack a corpus for training (or an SFT dataset)',
    usage: [
      'lathe prepare INPUT... --out DIR [--tokenizer MODEL_DIR] [--general PATH]... [--ratio 0.7] [--block-size 1024]',
      '              [--sft | --preference] [--truncate] [--text-field NAME] [--column NAME] [--val-fraction 0.02] [--seed 1]',
      '              [--max-repeat 4] [--total-chars N] [--threads N] [--config CLEAN.json] [--json]',
      'INPUT: files or folders (.txt .md .jsonl .json .csv .tsv .parquet .html .pdf .docx).',
      'Without --tokenizer only cleaning runs (report.json). --config: cleaning settings (see docs/data-pipeline.md).',
      '--preference: prompt/chosen/rejected pairs (TRL, UltraFeedback, HH-RLHF; docs/preference.md) for `lathe train --method dpo|orpo`.',
    ].join('\n'),
    run: async (ctx: CliContext) => {
      // --sft and --truncate take no value; the shared parser may have taken the next input path as one.
      for (const b of ['sft', 'preference', 'truncate']) {
        const v = ctx.flags[b];
        if (typeof v === 'string' || Array.isArray(v)) { ctx.args.push(...(Array.isArray(v) ? v : [v])); ctx.flags[b] = true; }
      }
      const out = flagString(ctx.flags, 'out');
      if (!out) throw new UserError('cli.missing', 'Missing --out DIR.', 'Name the folder for the prepared dataset.');
      if (!ctx.args.length) throw new UserError('cli.missing', 'No input files or folders.', 'Example: lathe prepare notes/ --out data/ --tokenizer models/tiny');
      const preference = ctx.flags.preference === true;
      if (preference && ctx.flags.sft === true) throw new UserError('cli.flags', '--sft and --preference cannot be combined.', 'Use --sft for conversations, --preference for chosen/rejected pairs.');
      const sft = ctx.flags.sft === true || preference;
      const tokDir = flagString(ctx.flags, 'tokenizer');
      const configFile = flagString(ctx.flags, 'config');
      let clean: unknown;
      if (configFile) {
        try { clean = JSON.parse(readFileSync(configFile, 'utf8')); } catch (e) {
          throw new UserError('cli.config', `Could not read cleaning settings from ${configFile}: ${(e as Error).message}`, 'Give a JSON file like {"quality": {"minChars": 50}}.');
        }
      }
      const column = flagString(ctx.flags, 'column');
      const cfg: PrepareConfig = {
        inputs: ctx.args,
        general: flagList(ctx.flags, 'general'),
        out,
        mode: preference ? 'preference' : sft ? 'sft' : 'pretrain',
        ...(tokDir ? { tokenizer: await (await import('../../data/tokenize')).loadTokenizerDir(tokDir) } : {}),
        ...(flagNumber(ctx.flags, 'block-size') !== undefined ? { blockSize: flagNumber(ctx.flags, 'block-size')! } : {}),
        ...(flagNumber(ctx.flags, 'ratio') !== undefined ? { ratio: flagNumber(ctx.flags, 'ratio')! } : {}),
        ...(flagNumber(ctx.flags, 'seed') !== undefined ? { seed: flagNumber(ctx.flags, 'seed')! } : {}),
        ...(flagNumber(ctx.flags, 'val-fraction') !== undefined ? { valFraction: flagNumber(ctx.flags, 'val-fraction')! } : {}),
        ...(flagNumber(ctx.flags, 'max-repeat') !== undefined ? { maxRepeat: flagNumber(ctx.flags, 'max-repeat')! } : {}),
        ...(flagNumber(ctx.flags, 'threads') !== undefined ? { threads: flagNumber(ctx.flags, 'threads')! } : {}),
        ...(flagNumber(ctx.flags, 'total-chars') !== undefined ? { totalChars: flagNumber(ctx.flags, 'total-chars')! } : {}),
        ...(clean !== undefined ? { clean: clean as PrepareConfig['clean'] } : {}),
        import: {
          ...(flagString(ctx.flags, 'text-field') ? { textField: flagString(ctx.flags, 'text-field')! } : {}),
          ...(column !== undefined ? { column: /^\d+$/.test(column) ? Number(column) : column } : {}),
        },
        ...(ctx.flags.truncate === true ? { truncation: 'truncate' as const } : {}),
      };
      if (sft) {
        if (!cfg.tokenizer) throw new UserError('cli.missing', `${preference ? 'Preference' : 'SFT'} preparation needs --tokenizer MODEL_DIR.`);
        const r = (await import('../../templates/for-model')).chatRendererForModel(tokDir!, cfg.tokenizer);
        cfg.renderer = r.renderer;
        ctx.err(`${preference ? 'Preference pairs' : 'Conversations'} are rendered with ${r.origin}.`);
        if (r.warning) ctx.err(`[warn] ${r.warning}`);
      }
      let last = '';
      const report = await (await import('../../data/prepare')).prepareCorpus(cfg, {
        signal: ctx.signal,
        onProgress: (p) => {
          const line = `${p.fraction === undefined ? '' : `${Math.round(p.fraction * 100)}% `}${p.stage ?? ''}${p.message ? ` — ${p.message}` : ''}`;
          if (line !== last) ctx.err(line);
          last = line;
        },
        onLog: (level, m) => ctx.err(`[${level}] ${m}`),
      });
      if (!ctx.json) summary(report, ctx.out);
      return report;
    },
  },
];
