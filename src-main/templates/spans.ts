/**
 * Where each assistant turn lies in a rendered conversation: the characters the model must learn to
 * produce (reply, tool calls, and the end-of-turn token that teaches it to stop).
 *
 * Never found by searching the render for the reply text (a reply "OK" after a user "OK" would match
 * the wrong place). Three methods, best first:
 *  1. `{% generation %}` blocks in the template: exact, the template says so.
 *  2. Prefix renders: render(messages[:k], add_generation_prompt) is a prefix of the full render; what
 *     render(messages[:k+1]) adds after it is turn k. Exact for templates that render earlier turns the
 *     same whatever follows (ChatML, Llama 3, Gemma, Qwen 2.5, ...).
 *  3. Sentinels, for templates that rewrite earlier turns (system prompt moved to the last user turn,
 *     thinking removed from old replies): each reply is replaced by a unique marker, the marker render
 *     is aligned piece by piece with the real one (the pieces between replies are literal template text),
 *     and the marker render tells where each reply and its end-of-turn lie.
 */
import type { ChatMessage, CompiledTemplate, RenderOptions } from './render';

export interface TurnSpan {
  /** Index of the assistant message in `messages`. */
  message: number;
  /** [start, end) UTF-16 offsets in the full render. */
  start: number;
  end: number;
}

export type SpanMethod = 'generation' | 'prefix' | 'sentinel';

export interface SpanResult {
  text: string;
  spans: TurnSpan[];
  /** Method used per turn (a conversation can mix prefix and sentinel turns). */
  method: SpanMethod;
  /** Assistant messages whose text could not be located (masked out, with a warning). */
  unresolved: number[];
  warnings: string[];
}

/** End-of-turn strings the span end snaps to when the template writes no explicit marker list. */
export const COMMON_END_MARKERS = [
  '<|im_end|>', '<|eot_id|>', '<|end_of_text|>', '<end_of_turn>', '<|end|>', '<|endoftext|>', '</s>', '<eos>',
  '<|eom_id|>', '[/TOOL_CALLS]', '<｜end▁of▁sentence｜>',
];

export interface SpanOptions {
  /** Strings that close an assistant turn (eos_token, end-of-turn tokens). The span ends after the last one. */
  endMarkers?: string[];
}

function lcp(a: string, b: string, bStart = 0): number {
  const n = Math.min(a.length, b.length - bStart);
  let i = 0;
  while (i < n && a.charCodeAt(i) === b.charCodeAt(bStart + i)) i++;
  return i;
}

/** Length of the common suffix of a and b[0:bEnd]. */
function commonSuffix(a: string, b: string, bEnd: number): number {
  let i = 0;
  while (i < a.length && i < bEnd && a.charCodeAt(a.length - 1 - i) === b.charCodeAt(bEnd - 1 - i)) i++;
  return i;
}

/** Length of `tail` up to and including the last end marker fully inside it; 0 when none. */
function snapToMarker(tail: string, markers: string[]): number {
  let best = 0;
  for (const m of markers) {
    if (!m) continue;
    let i = tail.indexOf(m);
    while (i !== -1) {
      best = Math.max(best, i + m.length);
      i = tail.indexOf(m, i + 1);
    }
  }
  return best;
}

function markerList(opts: RenderOptions, spanOpts: SpanOptions): string[] {
  const list = new Set(spanOpts.endMarkers ?? []);
  const eos = opts.specialTokens?.eos_token;
  if (eos) list.add(eos);
  for (const m of COMMON_END_MARKERS) list.add(m);
  return [...list];
}

const render = (tpl: CompiledTemplate, opts: RenderOptions, messages: ChatMessage[], gen: boolean): string =>
  tpl.render({ ...opts, messages, addGenerationPrompt: gen }).text;

export function assistantSpans(tpl: CompiledTemplate, opts: RenderOptions, spanOpts: SpanOptions = {}): SpanResult {
  const messages = opts.messages;
  const full = tpl.render({ ...opts, addGenerationPrompt: false });
  const assistants = messages.map((m, i) => (m.role === 'assistant' ? i : -1)).filter((i) => i >= 0);
  const warnings: string[] = [];

  if (tpl.hasGeneration) {
    const g = full.generationSpans;
    if (g.length !== assistants.length) {
      warnings.push(`The template marks ${g.length} {% generation %} block(s) but the conversation has ${assistants.length} assistant message(s); spans are paired in order.`);
    }
    const spans = g.map(([start, end], i) => ({ message: assistants[i] ?? -1, start, end }));
    const unresolved = assistants.slice(g.length);
    return { text: full.text, spans, method: 'generation', unresolved, warnings };
  }

  const markers = markerList(opts, spanOpts);
  const F = full.text;
  const spans: TurnSpan[] = [];
  const needSentinel: number[] = [];
  for (const k of assistants) {
    let prompt: string;
    let withTurn: string;
    try {
      prompt = render(tpl, opts, messages.slice(0, k), true);
      withTurn = render(tpl, opts, messages.slice(0, k + 1), false);
    } catch {
      needSentinel.push(k);
      continue;
    }
    if (!withTurn.startsWith(prompt) || !F.startsWith(prompt)) {
      needSentinel.push(k);
      continue;
    }
    const added = withTurn.slice(prompt.length);
    const wanted = snapToMarker(added, markers) || added.trimEnd().length;
    const common = lcp(added, F, prompt.length);
    if (common < wanted) {
      // The full render shows this turn differently from the prefix render (e.g. thinking removed).
      needSentinel.push(k);
      continue;
    }
    spans.push({ message: k, start: prompt.length, end: prompt.length + wanted });
  }
  if (needSentinel.length === 0) return { text: F, spans, method: 'prefix', unresolved: [], warnings };

  const viaSentinel = sentinelSpans(tpl, opts, F, needSentinel, markers);
  spans.push(...viaSentinel.spans);
  spans.sort((a, b) => a.start - b.start);
  warnings.push(...viaSentinel.warnings);
  return { text: F, spans, method: 'sentinel', unresolved: viaSentinel.unresolved, warnings };
}

// Private-use characters: a marker no real reply contains (checked).
const sentinel = (k: number): string => `\uE000${k}\uE001`;

function sentinelSpans(
  tpl: CompiledTemplate,
  opts: RenderOptions,
  F: string,
  turns: number[],
  markers: string[],
): { spans: TurnSpan[]; unresolved: number[]; warnings: string[] } {
  const messages = opts.messages;
  const warnings: string[] = [];
  const unresolved: number[] = [];
  const replaced = new Map<number, string>();
  const marked = messages.map((m, i) => {
    const c = m.content;
    if (m.role !== 'assistant' || typeof c !== 'string' || c.length === 0) return m;
    if (c.includes('\uE000') || c.includes('\uE001')) return m;
    replaced.set(i, c);
    return { ...m, content: sentinel(i) };
  });
  let Fm: string;
  try {
    Fm = render(tpl, opts, marked, false);
  } catch (e) {
    return { spans: [], unresolved: turns, warnings: [`Rendering with reply markers failed (${(e as Error).message}); those replies are not trained.`] };
  }

  // Pieces of literal text between replies, in render order.
  const order: Array<{ k: number; at: number }> = [];
  for (const k of replaced.keys()) {
    const s = sentinel(k);
    const at = Fm.indexOf(s);
    if (at === -1) continue; // the template dropped this reply
    if (Fm.indexOf(s, at + 1) !== -1) continue; // printed twice: cannot tell which is the turn
    order.push({ k, at });
  }
  order.sort((a, b) => a.at - b.at);
  const pieces: string[] = [];
  let last = 0;
  for (const { k, at } of order) {
    pieces.push(Fm.slice(last, at));
    last = at + sentinel(k).length;
  }
  pieces.push(Fm.slice(last));
  const contents = order.map(({ k }) => replaced.get(k)!);
  const bounds = align(F, pieces, contents);
  if (!bounds) {
    return {
      spans: [],
      unresolved: turns,
      warnings: ['The template renders replies in a way Lathe cannot line up (it changes text around replies depending on their content); those replies are not trained. A template with {% generation %} markers fixes this.'],
    };
  }
  const where = new Map<number, { x: number; y: number; at: number }>();
  order.forEach(({ k, at }, i) => where.set(k, { x: bounds[i]![0], y: bounds[i]![1], at }));

  const spans: TurnSpan[] = [];
  for (const k of turns) {
    const w = where.get(k);
    if (!w) {
      unresolved.push(k);
      continue;
    }
    // What this turn looks like when generated: head (before the reply) and tail (after it).
    let head = '';
    let tail = '';
    try {
      const prompt = render(tpl, opts, marked.slice(0, k), true);
      const withTurn = render(tpl, opts, marked.slice(0, k + 1), false);
      const s = sentinel(k);
      if (withTurn.startsWith(prompt)) {
        const added = withTurn.slice(prompt.length);
        const i = added.indexOf(s);
        if (i !== -1) {
          head = added.slice(0, i);
          tail = added.slice(i + s.length);
        }
      } else {
        // The prompt render differs earlier on (Mistral moves the system prompt into the last user turn),
        // but its end still lines up with the text before the reply: the head is what lies between.
        const i = withTurn.indexOf(s);
        if (i !== -1) {
          tail = withTurn.slice(i + s.length);
          const before = withTurn.slice(0, i);
          const need = Math.min(8, prompt.length);
          for (let h = 0; h <= Math.min(64, before.length); h++) {
            if (commonSuffix(prompt, before, before.length - h) >= need) {
              head = before.slice(before.length - h);
              break;
            }
          }
        }
      }
    } catch {
      // Prefix renders can be refused (e.g. roles must alternate); the reply itself is still known.
    }
    const sLen = sentinel(k).length;
    const headOk = head.length > 0 && Fm.slice(w.at - head.length, w.at) === head;
    const common = lcp(tail, Fm, w.at + sLen);
    let tailLen = snapToMarker(tail.slice(0, common), markers);
    if (tailLen === 0) {
      // No prefix render to learn the tail from: take an end marker right after the reply.
      const after = Fm.slice(w.at + sLen, w.at + sLen + 200);
      const ws = after.length - after.trimStart().length;
      const m = markers.filter((x) => x && after.startsWith(x, ws)).sort((a, b) => b.length - a.length)[0];
      if (m) tailLen = ws + m.length;
    }
    spans.push({ message: k, start: headOk ? w.x - head.length : w.x, end: w.y + tailLen });
  }
  return { spans, unresolved, warnings };
}

/**
 * Finds the replies in F given the literal pieces around them: F = p0 r1 p1 r2 ... pn. Where a piece
 * also occurs inside a reply, the choice that keeps each reply a substring of what the user wrote
 * (templates trim or cut replies, never invent text) is tried first. Returns [start, end) per reply.
 */
function align(F: string, pieces: string[], contents: string[]): Array<[number, number]> | null {
  if (!F.startsWith(pieces[0]!)) return null;
  const n = contents.length;
  const out: Array<[number, number]> = [];
  let budget = 10_000; // backtracking steps; real conversations need a handful
  const go = (i: number, pos: number): boolean => {
    if (--budget < 0) return false;
    if (i === n) return pos === F.length;
    const next = pieces[i + 1]!;
    const candidates: number[] = [];
    if (i + 1 === n) {
      // The last piece must end the render.
      const q = F.length - next.length;
      if (q >= pos && F.endsWith(next)) candidates.push(q);
    } else {
      for (let q = F.indexOf(next, pos); q !== -1; q = F.indexOf(next, q + 1)) candidates.push(q);
    }
    const original = contents[i]!;
    candidates.sort((a, b) => {
      const fa = original.includes(F.slice(pos, a)) ? 0 : 1;
      const fb = original.includes(F.slice(pos, b)) ? 0 : 1;
      return fa - fb || Math.abs(a - pos - original.length) - Math.abs(b - pos - original.length);
    });
    for (const q of candidates) {
      out[i] = [pos, q];
      if (go(i + 1, q + next.length)) return true;
    }
    return false;
  };
  return go(0, pieces[0]!.length) ? out : null;
}
