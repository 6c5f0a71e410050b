/**
 * What the model will see for one conversation: the rendered text, its tokens (special ones flagged,
 * with character offsets), which tokens are trained (assistant turns and their end-of-turn), and the
 * generation prompt used at inference. Also a diff between two templates' renders.
 */
import { diffSequences, diffText, type TextDiffChunk } from './diff';
import type { ChatTemplate } from './load';
import { compileTemplate, type ChatMessage, type CompiledTemplate, type RenderOptions } from './render';
import { assistantSpans, type SpanMethod, type TurnSpan } from './spans';
import type { TemplateTokenizer } from './tokenizer';

export interface ConversationInput {
  messages: ChatMessage[];
  tools?: unknown[];
  documents?: unknown[];
  /** Extra template arguments (enable_thinking, ...). */
  extra?: Record<string, unknown>;
}

export interface InspectToken {
  id: number;
  token: string;
  special: boolean;
  /** [start, end) UTF-16 offsets in `text`; [0, 0] for tokens the tokenizer inserted. */
  start: number;
  end: number;
  /** 1 = the loss is computed on this token (assistant turn). */
  train: 0 | 1;
  /** Index of the assistant message whose trained span this token overlaps; -1 for everything else. */
  message: number;
}

export interface Inspection {
  text: string;
  spans: TurnSpan[];
  maskMethod: SpanMethod;
  unresolvedTurns: number[];
  warnings: string[];
  /** What add_generation_prompt appends, and the full prompt for the conversation before its last reply. */
  generationPrompt: { marker: string; prompt: string };
  tokens?: InspectToken[];
  counts?: { tokens: number; trained: number };
}

export interface InspectOptions {
  now?: Date;
  /** Let the tokenizer add BOS/EOS as for plain text. Default false: the template decides (as transformers' apply_chat_template). */
  addSpecialTokens?: boolean;
  endMarkers?: string[];
}

export function renderOptions(tpl: ChatTemplate, conv: ConversationInput, now?: Date): RenderOptions {
  // tools/documents are None when not given, as transformers' apply_chat_template passes them.
  const opts: RenderOptions = {
    messages: conv.messages, specialTokens: tpl.specialTokens, tools: conv.tools ?? null, documents: conv.documents ?? null,
  };
  if (conv.extra) opts.extra = conv.extra;
  if (now) opts.now = now;
  return opts;
}

/** End markers for span ends: the template's own end-of-turn (built-ins), eos, and what the caller adds. */
export function endMarkersFor(tpl: ChatTemplate, extra: string[] = []): string[] {
  const list = [...extra];
  if (tpl.builtin?.endOfTurn) list.push(tpl.builtin.endOfTurn);
  if (tpl.specialTokens.eos_token) list.push(tpl.specialTokens.eos_token);
  return list;
}

/** The conversation up to (not including) its last assistant reply, rendered with the generation prompt. */
export function generationPrompt(compiled: CompiledTemplate, opts: RenderOptions): { marker: string; prompt: string } {
  const msgs = opts.messages;
  let cut = msgs.length;
  while (cut > 0 && msgs[cut - 1]!.role === 'assistant') cut--;
  const head = msgs.slice(0, cut);
  const withGen = compiled.render({ ...opts, messages: head, addGenerationPrompt: true }).text;
  const without = compiled.render({ ...opts, messages: head, addGenerationPrompt: false }).text;
  const marker = withGen.startsWith(without) ? withGen.slice(without.length) : withGen;
  return { marker, prompt: withGen };
}

/** Token i is trained when its characters overlap an assistant span (a token straddling the edge counts). */
export function maskFromSpans(offsets: Array<[number, number]>, spans: TurnSpan[]): Uint8Array {
  const mask = new Uint8Array(offsets.length);
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  let j = 0;
  for (let i = 0; i < offsets.length; i++) {
    const [s, e] = offsets[i]!;
    if (e <= s) continue; // inserted by the tokenizer, covers no text
    while (j < sorted.length && sorted[j]!.end <= s) j++;
    if (j < sorted.length && sorted[j]!.start < e) mask[i] = 1;
  }
  return mask;
}

/** The assistant message each token's span belongs to (-1: prompt side). */
function messageOfOffsets(spans: TurnSpan[], offsets: Array<[number, number]>): number[] {
  return offsets.map(([s, e]) => {
    for (const sp of spans) if (sp.start < e && s < sp.end) return sp.message;
    return -1;
  });
}

export async function inspectConversation(
  tpl: ChatTemplate,
  conv: ConversationInput,
  tokenizer?: TemplateTokenizer,
  options: InspectOptions = {},
): Promise<Inspection> {
  const compiled = compileTemplate(tpl.source, tpl.origin);
  const opts = renderOptions(tpl, conv, options.now);
  const spanResult = assistantSpans(compiled, opts, { endMarkers: endMarkersFor(tpl, options.endMarkers) });
  const result: Inspection = {
    text: spanResult.text,
    spans: spanResult.spans,
    maskMethod: spanResult.method,
    unresolvedTurns: spanResult.unresolved,
    warnings: spanResult.warnings,
    generationPrompt: { marker: '', prompt: '' },
  };
  try {
    result.generationPrompt = generationPrompt(compiled, opts);
  } catch (e) {
    // e.g. a template that refuses a conversation ending on a user turn; the render itself worked.
    result.warnings.push(`The generation prompt could not be rendered: ${(e as Error).message}`);
  }
  if (!tokenizer) return result;
  const enc = await tokenizer.encode(result.text, options.addSpecialTokens ?? false);
  const mask = maskFromSpans(enc.offsets, result.spans);
  const owner = messageOfOffsets(result.spans, enc.offsets);
  result.tokens = enc.ids.map((id, i) => ({
    id,
    token: enc.tokens[i]!,
    special: tokenizer.isSpecial(id),
    start: enc.offsets[i]![0],
    end: enc.offsets[i]![1],
    train: mask[i] as 0 | 1,
    message: owner[i]!,
  }));
  let trained = 0;
  for (const m of mask) trained += m;
  result.counts = { tokens: enc.ids.length, trained };
  return result;
}

export interface TemplateDiff {
  a: { origin: string; text: string; tokens?: number };
  b: { origin: string; text: string; tokens?: number };
  identical: boolean;
  text: TextDiffChunk[];
  /** Token runs that differ, as token strings; absent without a tokenizer. */
  tokens?: Array<{ op: 'equal' | 'delete' | 'insert'; tokens: string[]; ids: number[] }>;
}

/** Renders one conversation with two templates and diffs the texts (and tokens, given a tokenizer). */
export async function diffTemplates(
  a: ChatTemplate,
  b: ChatTemplate,
  conv: ConversationInput,
  tokenizer?: TemplateTokenizer,
  options: { now?: Date; addGenerationPrompt?: boolean } = {},
): Promise<TemplateDiff> {
  const ra = compileTemplate(a.source, a.origin).render({ ...renderOptions(a, conv, options.now), addGenerationPrompt: options.addGenerationPrompt ?? false }).text;
  const rb = compileTemplate(b.source, b.origin).render({ ...renderOptions(b, conv, options.now), addGenerationPrompt: options.addGenerationPrompt ?? false }).text;
  const out: TemplateDiff = {
    a: { origin: a.origin, text: ra },
    b: { origin: b.origin, text: rb },
    identical: ra === rb,
    text: diffText(ra, rb),
  };
  if (tokenizer) {
    const ea = await tokenizer.encode(ra, false);
    const eb = await tokenizer.encode(rb, false);
    out.a.tokens = ea.ids.length;
    out.b.tokens = eb.ids.length;
    out.tokens = diffSequences(ea.ids, eb.ids).map((o) => {
      const src = o.op === 'insert' ? eb : ea;
      const [s, e] = o.op === 'insert' ? o.b : o.a;
      return { op: o.op, tokens: src.tokens.slice(s, e), ids: src.ids.slice(s, e) };
    });
  }
  return out;
}
