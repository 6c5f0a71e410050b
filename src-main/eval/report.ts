/**
 * The evaluation report for a finished run: did fine-tuning work, and what did it cost?
 *
 * - Perplexity on every held-out split of the run's dataset (val-domain, val-general) and of an optional
 *   extra general dataset, before (base model) and after (with the adapter): the forgetting check.
 * - Generations for fixed prompts before and after (greedy, so the report is reproducible).
 * - For an SFT evaluation set with references (JSONL): BLEU (sacreBLEU-style corpus BLEU-4) and ROUGE-L
 *   of the base and the fine-tuned answers.
 *
 * Written as RUN/eval-report.json and RUN/eval-report.md. "Before" answers come from the same session as
 * "after" with an all-zero adapter (exactly the base model), so the weights load once.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { openModel } from '../engine/models';
import { openDataset } from '../data/pack/dataset';
import { adapterLayout, evaluatePerplexity, loadCheckpoint } from '../engine/train/infer';
import { describeAdapterFolder } from '../engine/train/adapter-folder';
import { resolveTrainConfig } from '../engine/train/config';
import type { EpName } from '../engine/backends/onnx';
import { Generator } from '../engine/generate/generator';
import { chatFormat, renderChatPrompt } from '../engine/generate/chat';
import type { ChatMessage } from '../templates';
import { writeFileAtomicSync } from '../util/atomic';
import { UserError, throwIfCancelled, type WorkOptions } from '../util/progress';
import { corpusBleu, meanRougeL, type BleuResult, type RougeScore } from './metrics';

export interface EvalReportOptions extends WorkOptions {
  /** Run folder (config.json, checkpoints/). */
  run: string;
  /** A checkpoint folder; default: the run's best by validation loss, else its latest. */
  checkpoint?: string;
  /** Overrides of the run's model / dataset folders. */
  model?: string;
  dataset?: string;
  /** Another prepared dataset whose held-out splits are general text (reported as general:<split>). */
  general?: string;
  /** Prompts for before/after generations; default: the run's samplePrompts, else two generic ones. */
  prompts?: string[];
  /** JSONL evaluation set: {"prompt": "...", "reference": "..."} or {"messages": [..., {"role": "assistant", "content": REF}]}. */
  sftEval?: string;
  /** At most this many SFT examples (default 100). */
  maxExamples?: number;
  /** New tokens per generation (default 64). */
  maxTokens?: number;
  /** Held-out blocks per split at most (default 64). */
  maxBlocks?: number;
  ep?: EpName | 'gpu';
  /** Write eval-report.json/.md into the run folder (default true). */
  write?: boolean;
}

export interface PerplexityRow { split: string; before: { loss: number; ppl: number }; after: { loss: number; ppl: number }; tokens: number; change: number }

export interface EvalReport {
  run: string;
  checkpoint: string;
  step: number;
  model: string;
  dataset: string;
  createdAt: string;
  perplexity: PerplexityRow[];
  /** Worst relative perplexity rise on general text (positive = forgot), null without general text. */
  forgetting: { split: string; change: number; warning: boolean } | null;
  generations: { prompt: string; before: string; after: string }[];
  sft: null | {
    file: string;
    examples: number;
    bleu: { before: BleuResult; after: BleuResult };
    rougeL: { before: RougeScore; after: RougeScore };
    samples: { prompt: string; reference: string; before: string; after: string }[];
  };
  seconds: number;
}

/** A general-text perplexity rise above this (10 %) is flagged as forgetting. */
const FORGETTING_WARN = 0.1;
const DEFAULT_PROMPTS = ['Once upon a time', 'The most important thing to know is'];

export async function evaluationReport(opts: EvalReportOptions): Promise<EvalReport> {
  const t0 = performance.now();
  const runCfgFile = path.join(opts.run, 'config.json');
  const foreign = describeAdapterFolder(opts.run);
  if (['peft', 'hf-checkpoint', 'hf-run', 'hf-full-checkpoint'].includes(foreign.kind)) {
    // The report compares against the run's own dataset and settings, which only a Lathe run records.
    throw new UserError('report.foreignRun', `${foreign.description} The evaluation report needs a Lathe training run (it reads the run's dataset and settings).`,
      foreign.kind === 'hf-full-checkpoint'
        ? 'Use the folder as the model (lathe eval --model DIR --data DATASET_DIR).'
        : `Measure it with \`lathe eval --model MODEL --data DATASET_DIR --adapter ${opts.run}\`, or talk to it with \`lathe chat --model MODEL --adapter ${opts.run} --compare\`.`);
  }
  if (!existsSync(runCfgFile)) throw new UserError('report.noRun', `${opts.run} is not a run folder (no config.json).`, 'Point at the folder you trained into (--out of lathe train).');
  const runCfg = resolveTrainConfig(JSON.parse(readFileSync(runCfgFile, 'utf8')));
  const modelDir = opts.model ?? runCfg.model;
  const datasetDir = opts.dataset ?? runCfg.dataset;
  const ck = await loadCheckpoint(opts.checkpoint ?? (await bestCheckpoint(opts.run)));
  const stage = (s: string, f?: number) => opts.onProgress?.({ stage: s, fraction: f });
  const evalOpts = { ep: opts.ep, maxBlocks: opts.maxBlocks ?? 64, signal: opts.signal };

  // ---- perplexity before / after ----
  const perplexity: PerplexityRow[] = [];
  const sets: [string, string][] = [['', datasetDir]];
  if (opts.general) sets.push(['general:', opts.general]);
  for (const [prefix, dir] of sets) {
    stage(`Perplexity before (${prefix || 'run dataset'})`);
    const before = await evaluatePerplexity(modelDir, dir, evalOpts);
    throwIfCancelled(opts.signal);
    stage(`Perplexity after (${prefix || 'run dataset'})`);
    const after = await evaluatePerplexity(modelDir, dir, { ...evalOpts, checkpoint: ck.dir });
    for (const [split, b] of Object.entries(before.splits)) {
      const a = after.splits[split]!;
      perplexity.push({ split: prefix + split, before: { loss: b.loss, ppl: b.ppl }, after: { loss: a.loss, ppl: a.ppl }, tokens: b.tokens, change: a.ppl / b.ppl - 1 });
    }
  }
  const general = perplexity.filter((r) => r.split.includes('general'));
  const worst = general.sort((a, b) => b.change - a.change)[0];
  const forgetting = worst ? { split: worst.split, change: worst.change, warning: worst.change > FORGETTING_WARN } : null;

  // ---- generations before / after, SFT metrics ----
  const chatMode = openDataset(datasetDir).manifest.kind === 'sft';
  const { config, layout, weights } = await openModel(modelDir);
  let gen: Generator | null = null;
  try {
    const ad = adapterLayout(ck, config, layout);
    const params = ad.params.data as Float32Array;
    gen = await Generator.create({ config, layout, weights }, modelDir, {
      ep: opts.ep, capacity: Math.min(config.maxPositions, 2048), lora: { layout: ad.lora, params },
      tokenizerDir: resolveTrainConfig(ck.state.config).tokenizer,
    });
    const fmt = chatMode && gen.tokenizer ? chatFormat(modelDir, gen.tokenizer) : null;
    const zeros = new Float32Array(params.length);
    const maxTokens = opts.maxTokens ?? 64;
    const answer = async (messagesOrText: ChatMessage[] | string): Promise<string> => {
      let ids: number[];
      let stops: { stopIds: number[]; stopStrings: string[] } = { stopIds: [], stopStrings: [] };
      if (typeof messagesOrText !== 'string') {
        if (!fmt || !gen!.tokenizer) throw new UserError('report.noTemplate', 'The evaluation set holds chats but this run has no chat template to render them.', 'Use a run trained on an SFT dataset, or give prompts as plain text.');
        ids = (await renderChatPrompt(fmt, gen!.tokenizer, messagesOrText)).ids;
        stops = { stopIds: fmt.stopIds, stopStrings: fmt.stopStrings };
      } else if (fmt && gen!.tokenizer) {
        ids = (await renderChatPrompt(fmt, gen!.tokenizer, [{ role: 'user', content: messagesOrText }])).ids;
        stops = { stopIds: fmt.stopIds, stopStrings: fmt.stopStrings };
      } else {
        ids = await gen!.encode(messagesOrText);
      }
      const room = gen!.capacity - ids.length - 1;
      if (room < 1) return '';
      return (await gen!.generate(ids, { greedy: true, maxTokens: Math.min(maxTokens, room), ...stops, signal: opts.signal })).text;
    };
    const both = async (input: ChatMessage[] | string) => {
      await gen!.setAdapter(zeros);
      const before = await answer(input);
      await gen!.setAdapter(params);
      return { before, after: await answer(input) };
    };

    const prompts = opts.prompts ?? (runCfg.samplePrompts.length ? runCfg.samplePrompts : DEFAULT_PROMPTS);
    const generations: EvalReport['generations'] = [];
    for (const [i, prompt] of prompts.entries()) {
      stage('Generations before and after', i / prompts.length);
      throwIfCancelled(opts.signal);
      generations.push({ prompt, ...(await both(prompt)) });
    }

    let sft: EvalReport['sft'] = null;
    if (opts.sftEval) {
      const examples = readSftEval(opts.sftEval).slice(0, opts.maxExamples ?? 100);
      const rows: { prompt: string; reference: string; before: string; after: string }[] = [];
      for (const [i, ex] of examples.entries()) {
        stage('Evaluation set', i / examples.length);
        throwIfCancelled(opts.signal);
        rows.push({ prompt: ex.promptText, reference: ex.reference, ...(await both(ex.input)) });
      }
      const refs = [rows.map((r) => r.reference)];
      sft = {
        file: opts.sftEval, examples: rows.length,
        bleu: { before: corpusBleu(rows.map((r) => r.before), refs), after: corpusBleu(rows.map((r) => r.after), refs) },
        rougeL: { before: meanRougeL(refs[0]!, rows.map((r) => r.before)), after: meanRougeL(refs[0]!, rows.map((r) => r.after)) },
        samples: rows.slice(0, 5),
      };
    }

    const report: EvalReport = {
      run: path.resolve(opts.run), checkpoint: ck.dir, step: ck.state.step, model: modelDir, dataset: datasetDir,
      createdAt: new Date().toISOString(), perplexity, forgetting, generations, sft, seconds: (performance.now() - t0) / 1000,
    };
    if (opts.write !== false) {
      writeFileAtomicSync(path.join(opts.run, 'eval-report.json'), JSON.stringify(report, null, 2) + '\n');
      writeFileAtomicSync(path.join(opts.run, 'eval-report.md'), reportMarkdown(report));
    }
    return report;
  } finally {
    await gen?.dispose();
    await weights.close();
  }
}

async function bestCheckpoint(run: string): Promise<string> {
  const { CheckpointManager } = await import('../engine/train/checkpoints');
  const m = new CheckpointManager(path.join(run, 'checkpoints'));
  const best = await m.best();
  if (best) return best.dir;
  if (m.list().length) return run; // loadCheckpoint(run) takes the latest
  throw new UserError('report.noCheckpoint', `The run in ${run} has no checkpoint yet.`, 'Train first (or wait for the first checkpoint), then make the report.');
}

interface SftExample { input: ChatMessage[] | string; promptText: string; reference: string }

/** JSONL lines: {prompt, reference} or {messages} whose last assistant message is the reference. */
export function readSftEval(file: string): SftExample[] {
  if (!existsSync(file)) throw new UserError('report.noEvalSet', `No evaluation set at ${file}.`, 'Give a JSONL file with {"prompt", "reference"} or {"messages"} per line.');
  const out: SftExample[] = [];
  readFileSync(file, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: { prompt?: unknown; reference?: unknown; messages?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      throw new UserError('report.badEvalSet', `Line ${i + 1} of ${file} is not valid JSON.`, 'Each line must be one JSON object.');
    }
    if (typeof o.prompt === 'string' && typeof o.reference === 'string') {
      out.push({ input: o.prompt, promptText: o.prompt, reference: o.reference });
      return;
    }
    const msgs = Array.isArray(o.messages) ? (o.messages as ChatMessage[]) : null;
    const last = msgs?.[msgs.length - 1];
    if (msgs && last && last.role === 'assistant' && typeof last.content === 'string' && msgs.length > 1) {
      const head = msgs.slice(0, -1);
      const lastUser = [...head].reverse().find((m) => m.role === 'user');
      out.push({ input: head, promptText: typeof lastUser?.content === 'string' ? lastUser.content : '', reference: last.content });
      return;
    }
    throw new UserError('report.badEvalSet', `Line ${i + 1} of ${file} has neither "prompt" + "reference" nor "messages" ending with an assistant reply.`, 'Fix that line or remove it.');
  });
  if (out.length === 0) throw new UserError('report.emptyEvalSet', `${file} holds no examples.`);
  return out;
}

export function reportMarkdown(r: EvalReport): string {
  const f2 = (x: number) => x.toFixed(2);
  const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
  const lines = [
    `# Evaluation report`, '',
    `Run \`${r.run}\`, checkpoint at step ${r.step}. Model \`${r.model}\`, dataset \`${r.dataset}\`. ${r.createdAt}.`, '',
    '## Perplexity (lower is better)', '',
    '| held-out set | before | after | change | tokens |', '|---|---|---|---|---|',
    ...r.perplexity.map((p) => `| ${p.split} | ${f2(p.before.ppl)} | ${f2(p.after.ppl)} | ${pct(p.change)} | ${p.tokens} |`), '',
  ];
  if (r.forgetting) {
    lines.push(r.forgetting.warning
      ? `**Forgetting:** perplexity on general text (${r.forgetting.split}) rose ${pct(r.forgetting.change)}. Consider a lower learning rate, fewer steps, or mixing in general text.`
      : `General text (${r.forgetting.split}): ${pct(r.forgetting.change)} — no sign of forgetting.`, '');
  }
  lines.push('## Generations (greedy)', '');
  for (const g of r.generations) lines.push(`**Prompt:** ${g.prompt}`, '', `- before: ${g.before.trim() || '(nothing)'}`, `- after: ${g.after.trim() || '(nothing)'}`, '');
  if (r.sft) {
    const s = r.sft;
    lines.push(`## Evaluation set (${s.examples} examples, ${s.file})`, '',
      '| metric | before | after |', '|---|---|---|',
      `| BLEU (sacreBLEU-style, 13a) | ${f2(s.bleu.before.score)} | ${f2(s.bleu.after.score)} |`,
      `| ROUGE-L F1 | ${s.rougeL.before.fmeasure.toFixed(4)} | ${s.rougeL.after.fmeasure.toFixed(4)} |`, '');
  }
  lines.push(`_Made in ${r.seconds.toFixed(1)} s._`, '');
  return lines.join('\n');
}
