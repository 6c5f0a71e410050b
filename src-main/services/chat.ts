/**
 * Trying a model in the app: the chat job (engine/generate/chat.ts, the code paths of `lathe chat`, or
 * llama.cpp for an exported GGUF file), the evaluation-report job (eval/report.ts, `lathe eval report`) and
 * the readers behind `runs.evalReport` / `exports.ggufFiles`. The job handlers run inside a job process.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DEVICE_LABEL, type ChatParams, type ChatReplyView, type ChatResultView, type DevicePref } from '../contract/chat';
import type { EvalReportView } from '../contract/reports';
import type { EvalReport } from '../eval/report';
import type { GenerateResult } from '../engine/generate/generator';
import type { ChatMessage } from '../templates';
import { UserError, throwIfCancelled, type WorkOptions } from '../util/progress';
import { deviceLogLine, resolveDevice } from './device';

type Sink = WorkOptions & { text(stream: string, text: string): void; signal?: AbortSignal };

function replyView(side: ChatReplyView['side'], r: GenerateResult): ChatReplyView {
  const ms = r.timings.prefillMs + r.timings.decodeMs;
  return { side, text: r.text, tokens: r.ids.length, finish: r.finish, seconds: ms / 1000, tokensPerSecond: r.timings.decodeTokensPerSecond };
}

/** One chat turn, streamed through `sink.text(side, piece)`; the same functions `lathe chat` calls. */
export async function runChat(p: ChatParams, sink: Sink): Promise<ChatResultView> {
  const last = p.messages.at(-1)!;
  if (last.role !== 'user') throw new UserError('chat.lastNotUser', 'The conversation must end with your message.', 'Type a message, then send it.');
  if (!last.content.trim()) throw new UserError('chat.empty', 'The message is empty.', 'Type something for the model to answer.');
  if (p.gguf) {
    if (p.compare) throw new UserError('chat.ggufCompare', 'Side by side compares the base model with a training run; a GGUF file is one model on its own.', 'Turn off side by side, or choose a training run.');
    sink.onProgress?.({ stage: 'Loading the GGUF file in llama.cpp' });
    const { chatWithGguf } = await import('../export/gguf/chat');
    const system = p.messages.find((m) => m.role === 'system')?.content;
    const history = p.messages.slice(0, -1).filter((m): m is { role: 'user' | 'assistant'; content: string } => m.role !== 'system');
    const s = p.sampling;
    const r = await chatWithGguf(p.gguf, last.content, {
      system, history, maxTokens: s.maxTokens, temperature: s.greedy ? 0 : (s.temperature ?? 0.7), seed: s.seed,
      gpu: p.ep === 'cpu' ? false : 'auto', signal: sink.signal, onText: (t) => sink.text('gguf', t),
    });
    throwIfCancelled(sink.signal);
    return { replies: [{ side: 'gguf', text: r.text, tokens: r.tokens, finish: r.contextFull ? 'capacity' : r.tokens >= s.maxTokens ? 'length' : 'stop', seconds: r.seconds, tokensPerSecond: r.seconds > 0 ? r.tokens / r.seconds : 0 }] };
  }
  if (!p.model) throw new UserError('chat.noModel', 'No model is chosen to chat with.', 'Choose the project\'s model (and a training run) or an exported GGUF file.');
  if (p.compare && !p.adapter) throw new UserError('chat.compareNeedsRun', 'Side by side needs a training run to compare with the base model.', 'Choose a finished training run, or turn off side by side.');
  const device = await resolveDevice(p.ep);
  sink.onLog?.('info', deviceLogLine(device));
  const mod = await import('../engine/generate/chat');
  const s = p.sampling;
  const opts = {
    ep: device.device, signal: sink.signal, maxTokens: s.maxTokens,
    ...(s.greedy ? { greedy: true } : {}),
    ...(s.temperature !== undefined ? { temperature: s.temperature } : {}),
    ...(s.topK !== undefined ? { topK: s.topK } : {}),
    ...(s.topP !== undefined ? { topP: s.topP } : {}),
    ...(s.repetitionPenalty !== undefined ? { repetitionPenalty: s.repetitionPenalty } : {}),
    ...(s.seed !== undefined ? { seed: s.seed } : {}),
    ...(p.template ? { template: p.template } : {}),
  };
  const messages = p.messages as ChatMessage[];
  sink.onProgress?.({ stage: `Loading the model on the ${DEVICE_LABEL[device.device]}`, message: device.reason });
  if (p.compare) {
    const r = await mod.compareChat(p.model, p.adapter!, messages, { ...opts, onToken: (ev, which) => sink.text(which, ev.text) });
    throwIfCancelled(sink.signal);
    return { replies: [replyView('base', r.base), replyView('tuned', r.tuned)], device };
  }
  const side = p.adapter ? 'tuned' : 'base';
  const r = await mod.chat(p.model, messages, { ...opts, ...(p.adapter ? { adapter: p.adapter } : {}), onToken: (ev) => sink.text(side, ev.text) });
  throwIfCancelled(sink.signal);
  return { replies: [replyView(side, r)], device };
}

// ---- evaluation report ------------------------------------------------------------------------------

const pct = (x: number) => {
  const v = Math.abs(x) * 100;
  return `${v < 10 ? v.toFixed(1) : Math.round(v)}%`;
};

function splitWords(split: string): { label: string; kind: 'domain' | 'general' } {
  const general = split.includes('general');
  const extra = split.startsWith('general:');
  const name = extra ? split.slice('general:'.length) : split;
  if (general) return { kind: 'general', label: extra ? `general text (the extra dataset's ${name})` : 'general text (held out from your dataset)' };
  return { kind: 'domain', label: name === 'val-domain' || name === 'val' ? 'your domain text (held out, never trained on)' : `your text (${name})` };
}

/** The report with plain-words labels and verdicts (what the Evaluation page shows). */
export function evalReportView(r: EvalReport): EvalReportView {
  const perplexity = r.perplexity.map((row) => ({ ...row, ...splitWords(row.split) }));
  const domain = perplexity.find((x) => x.kind === 'domain');
  let learning: string | null = null;
  if (domain) {
    learning = domain.change < 0
      ? `Your domain text got ${pct(domain.change)} easier for the model to predict (perplexity ${domain.before.ppl.toFixed(1)} → ${domain.after.ppl.toFixed(1)}): it learned from your data.`
      : `Your domain text did not get easier (${pct(domain.change)} worse): the run learned little. Train longer or with a higher learning rate.`;
  }
  let forgetting: string | null = null;
  const f = r.forgetting;
  if (f) {
    forgetting = f.change <= 0.005
      ? `General text got ${f.change < 0 ? `${pct(f.change)} better` : 'no worse'}: no forgetting.`
      : f.warning
        ? `General text got ${pct(f.change)} worse: the model is forgetting some general language. Lower the learning rate, train fewer steps, or mix in more general text.`
        : `General text got ${pct(f.change)} worse: little forgetting.`;
  } else {
    forgetting = 'No general text was held out, so forgetting was not measured. Add general text when you prepare the data (or choose a general dataset here) to check it.';
  }
  const tone = (f?.warning ?? false) || (domain !== undefined && domain.change >= 0) ? 'warn' : 'ok';
  return {
    run: r.run, checkpoint: r.checkpoint, step: r.step, model: r.model, dataset: r.dataset, createdAt: r.createdAt, seconds: r.seconds,
    perplexity, forgetting: r.forgetting, verdict: { learning, forgetting, tone }, generations: r.generations, sft: r.sft,
  };
}

/** Makes the report (the same function as `lathe eval report`) and answers its view. */
export async function runEvalReport(p: { run: string; general: string | null; evalSet: string | null; prompts?: string[]; maxTokens: number; maxBlocks: number; ep?: DevicePref }, o: WorkOptions): Promise<EvalReportView> {
  const device = await resolveDevice(p.ep);
  o.onLog?.('info', deviceLogLine(device));
  const { evaluationReport } = await import('../eval/report');
  const r = await evaluationReport({
    run: p.run, ...(p.general ? { general: p.general } : {}), ...(p.evalSet ? { sftEval: p.evalSet } : {}), ...(p.prompts?.length ? { prompts: p.prompts } : {}),
    maxTokens: p.maxTokens, maxBlocks: p.maxBlocks, ep: device.device, signal: o.signal, onProgress: o.onProgress, onLog: o.onLog,
  });
  return { ...evalReportView(r), device };
}

const MAX_REPORT_BYTES = 32 << 20;

/** RUN/eval-report.json as its view, or null when none was made yet; a damaged file is said in plain words. */
export function readEvalReport(runDir: string): EvalReportView | null {
  const file = path.join(runDir, 'eval-report.json');
  let st;
  try {
    st = statSync(file);
  } catch {
    return null;
  }
  if (!st.isFile() || st.size > MAX_REPORT_BYTES) throw new UserError('report.damaged', `${file} is not a report Lathe wrote (not a file, or too large).`, 'Make the report again.');
  let r: EvalReport;
  try {
    r = JSON.parse(readFileSync(file, 'utf8')) as EvalReport;
    if (!Array.isArray(r.perplexity) || !Array.isArray(r.generations) || typeof r.step !== 'number') throw new Error('missing fields');
  } catch (err) {
    throw new UserError('report.damaged', `The evaluation report in ${runDir} is damaged (${(err as Error).message}).`, 'Make the report again on this page.');
  }
  return evalReportView(r);
}

/** GGUF files under <project>/exports (two levels), newest first, at most 100. */
export function listGgufFiles(project: string): Array<{ file: string; bytes: number; modifiedAt: string }> {
  const root = path.join(project, 'exports');
  const out: Array<{ file: string; bytes: number; modifiedAt: string; t: number }> = [];
  let budget = 5000; // entries looked at, at most: the call runs in the serving thread
  const scan = (dir: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      if (budget-- <= 0) return;
      const full = path.join(dir, name);
      let st;
      try { st = statSync(full); } catch { continue; }
      if (st.isDirectory() && depth > 0) scan(full, depth - 1);
      else if (st.isFile() && name.endsWith('.gguf') && !name.endsWith('.failed.gguf')) out.push({ file: full, bytes: st.size, modifiedAt: st.mtime.toISOString(), t: st.mtimeMs });
    }
  };
  scan(root, 1);
  return out.sort((a, b) => b.t - a.t).slice(0, 100).map(({ t: _t, ...x }) => x);
}
