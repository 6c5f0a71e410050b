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
  /**
   * Assistant messages whose turn ends the render with no end-of-turn token or role tag after it (GLM-4's
   * last reply): SFT appends the EOS token, trained, so the model learns to stop (applyTemplate).
   */
  openEnded?: number[];
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

function tryRender(tpl: CompiledTemplate, opts: RenderOptions, messages: ChatMessage[], gen: boolean): string | null {
  try {
    return render(tpl, opts, messages, gen);
  } catch {
    return null;
  }
}

/**
 * How much of the generation prompt's tail `g` a rendered reply in history starts with. Reasoning templates
 * (QwQ, DeepSeek-R1 distills) end the generation prompt with `<think>\n` that earlier replies do not show
 * (their reasoning is cut): the turn header is `g` up to where the render parts from it, cut back to the end
 * of a line or of a special token so a reply that happens to begin like `<think>` keeps its first characters.
 */
function headerLength(g: string, text: string, at: number): number {
  const common = lcp(g, text, at);
  if (common === g.length) return common;
  for (let b = common; b > 0; b--) {
    const c = g[b - 1];
    if (c === '\n' || c === '>' || c === ']') return b;
  }
  return 0;
}

/**
 * Where turn k starts in `full`, given the prompt rendered with and without the generation prompt. Normally
 * the generation prompt is a prefix of the turn; when it is not (`<think>\n` added only for generation), the
 * turn starts after the part of the generation prompt that the render of the turn repeats.
 */
function turnStart(prompt: string, base: () => string | null, withTurn: string, full: string): number {
  if (withTurn.startsWith(prompt) && full.startsWith(prompt)) return prompt.length;
  const b = base();
  if (b === null || !prompt.startsWith(b) || !withTurn.startsWith(b) || !full.startsWith(b)) return -1;
  const h = headerLength(prompt.slice(b.length), withTurn, b.length);
  if (!full.startsWith(withTurn.slice(b.length, b.length + h), b.length)) return -1;
  return b.length + h;
}

/**
 * Turns that write no end-of-turn token (GLM-4: `<|assistant|>\n{reply}<|user|>...`) end where the model
 * stops: at the next turn's role tag, which is trained with the reply (the model must learn to emit it),
 * as GLM's own fine-tuning code does. Returns the tag's length when `text` starts with one at `at`.
 */
export const ROLE_TAG_NAMES = 'user|observation|system|assistant|tool|human|function|ipython|User|Assistant|System';
// A tag that names the next turn's role (`<|user|>`, `<｜User｜>`); generic headers such as `<|im_start|>` do not
// stop generation and do not count.
const ROLE_TAG = new RegExp(`^(?:<\\|(?:${ROLE_TAG_NAMES})\\|>|<｜(?:${ROLE_TAG_NAMES})｜>)`);
function followingRoleTag(text: string, at: number): number {
  const m = ROLE_TAG.exec(text.slice(at, at + 40));
  return m ? m[0].length : 0;
}

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
  const openEnded: number[] = [];
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
    const start = turnStart(prompt, () => tryRender(tpl, opts, messages.slice(0, k), false), withTurn, F);
    if (start < 0) {
      needSentinel.push(k);
      continue;
    }
    const added = withTurn.slice(start);
    let wanted = snapToMarker(added, markers);
    if (wanted === 0) {
      // No end-of-turn token: the reply, then the next turn's role tag when one follows (see followingRoleTag).
      const tag = followingRoleTag(F, start + added.length);
      const atEnd = tag === 0 && start + added.length === F.length;
      // Trailing whitespace is the template's layout between turns, except on a reply that ends the text.
      wanted = tag > 0 || atEnd ? added.length + tag : added.trimEnd().length;
      if (atEnd) openEnded.push(k);
    }
    // (A role tag past the turn's own text was read from F itself.)
    if (lcp(added, F, start) < Math.min(wanted, added.length)) {
      // The full render shows this turn differently from the prefix render (e.g. thinking removed).
      needSentinel.push(k);
      continue;
    }
    spans.push({ message: k, start, end: start + wanted });
  }
  if (needSentinel.length === 0) return { text: F, spans, method: 'prefix', unresolved: [], warnings, openEnded };

  const viaSentinel = sentinelSpans(tpl, opts, F, needSentinel, markers);
  spans.push(...viaSentinel.spans);
  spans.sort((a, b) => a.start - b.start);
  warnings.push(...viaSentinel.warnings);
  return { text: F, spans, method: 'sentinel', unresolved: viaSentinel.unresolved, warnings };
}

// Private-use characters: a marker no real message contains (checked).
const sentinel = (k: number): string => `\uE000${k}\uE001`;

/** Which non-assistant roles get markers; later variants keep more real text (SmolLM3 reads "/think" from the system prompt). */
const SENTINEL_ROLES: Array<(role: string) => boolean> = [
  (r) => r !== 'assistant',
  (r) => r === 'user' || r === 'tool' || r === 'ipython',
  (r) => r === 'user',
];

interface Marked {
  messages: ChatMessage[];
  /** Render with markers, the marker positions in it, and the real render's offset for each piece between markers. */
  Fm: string;
  anchors: Map<number, number>; // message index -> marker start in Fm
  toReal: (pos: number) => number;
}

/**
 * The messages around the replies (user, system, tool) become unique markers, replies stay real so the
 * template takes the same branches. The marker render is the real render with each marker standing for
 * a known message: aligning the two maps any position in template text or reply text across.
 */
function markNeighbours(tpl: CompiledTemplate, opts: RenderOptions, F: string): Marked | null {
  for (const chosen of SENTINEL_ROLES) {
    const replaced = new Map<number, string>();
    const messages = opts.messages.map((m, i) => {
      const c = m.content;
      if (!chosen(m.role) || typeof c !== 'string' || c.length === 0 || c.includes('\uE000') || c.includes('\uE001')) return m;
      replaced.set(i, c);
      return { ...m, content: sentinel(i) };
    });
    let Fm: string;
    try {
      Fm = render(tpl, opts, messages, false);
    } catch {
      continue;
    }
    const order: Array<{ k: number; at: number }> = [];
    for (const k of replaced.keys()) {
      const s = sentinel(k);
      const at = Fm.indexOf(s);
      if (at === -1 || Fm.indexOf(s, at + 1) !== -1) continue; // dropped or printed twice: not an anchor
      order.push({ k, at });
    }
    order.sort((a, b) => a.at - b.at);
    const pieces: string[] = [];
    const pieceStarts: number[] = [];
    let last = 0;
    for (const { k, at } of order) {
      pieces.push(Fm.slice(last, at));
      pieceStarts.push(last);
      last = at + sentinel(k).length;
    }
    pieces.push(Fm.slice(last));
    pieceStarts.push(last);
    const bounds = align(F, pieces, order.map(({ k }) => replaced.get(k)!));
    if (!bounds) continue;
    // Real offset where each piece starts: 0, then the end of each aligned message.
    const realStarts = [0, ...bounds.map(([, end]) => end)];
    const anchors = new Map(order.map(({ k, at }) => [k, at] as const));
    const toReal = (pos: number): number => {
      let i = pieceStarts.length - 1;
      while (i > 0 && pieceStarts[i]! > pos) i--;
      return realStarts[i]! + (pos - pieceStarts[i]!);
    };
    return { messages, Fm, anchors, toReal };
  }
  return null;
}

/** Position just after message j's marker in text (0 when j < 0: anchored at the start), -1 if absent. */
function afterSentinel(text: string, j: number): number {
  if (j < 0) return 0;
  const i = text.indexOf(sentinel(j));
  return i === -1 ? -1 : i + sentinel(j).length;
}

function sentinelSpans(
  tpl: CompiledTemplate,
  opts: RenderOptions,
  F: string,
  turns: number[],
  markers: string[],
): { spans: TurnSpan[]; unresolved: number[]; warnings: string[] } {
  const marked = markNeighbours(tpl, opts, F);
  if (!marked) {
    return {
      spans: [],
      unresolved: turns,
      warnings: ['The template renders this conversation in a way Lathe cannot line up; its replies are not trained. A template with {% generation %} markers fixes this.'],
    };
  }
  const { Fm, anchors, toReal } = marked;
  const spans: TurnSpan[] = [];
  const unresolved: number[] = [];
  const anchorPositions = [...anchors.values()].sort((a, b) => a - b);
  // Pass 1: where each turn starts (right after the previous marker message and the generation prompt).
  const starts = new Map<number, { start: number; p: string; pAnchorJ: number }>();
  // Every reply's start bounds the one before it, so all are found, not only the turns asked for.
  const allReplies = opts.messages.map((m, i) => (m.role === 'assistant' ? i : -1)).filter((i) => i >= 0);
  for (const k of allReplies) {
    let j = k - 1;
    while (j >= 0 && !anchors.has(j)) j--;
    let prompt: string;
    try {
      prompt = render(tpl, opts, marked.messages.slice(0, k), true);
    } catch {
      continue;
    }
    const fAnchor = afterSentinel(Fm, j);
    const pAnchor = afterSentinel(prompt, j);
    if (fAnchor < 0 || pAnchor < 0) continue;
    // The prompt's text after the anchor (the previous turn's end + the generation prompt) must follow it here too.
    let p = prompt.slice(pAnchor);
    if (!Fm.startsWith(p, fAnchor)) {
      // A generation prompt the turn does not repeat (`<think>\n`): keep the part of it the render shows.
      const base = tryRender(tpl, opts, marked.messages.slice(0, k), false);
      const bAnchor = base === null ? -1 : afterSentinel(base, j);
      if (base === null || bAnchor < 0 || !prompt.startsWith(base)) continue;
      const b = base.slice(bAnchor);
      if (!p.startsWith(b) || !Fm.startsWith(b, fAnchor)) continue;
      p = b + p.slice(b.length, b.length + headerLength(p.slice(b.length), Fm, fAnchor + b.length));
    }
    starts.set(k, { start: fAnchor + p.length, p, pAnchorJ: j });
  }
  const startPositions = [...starts.values()].map((x) => x.start).sort((a, b) => a - b);
  // Pass 2: where each ends.
  for (const k of turns) {
    const st = starts.get(k);
    if (!st) {
      unresolved.push(k);
      continue;
    }
    const { start, p } = st;
    let end = -1;
    // Exact: the prefix render with this turn shows what the turn adds after the prompt.
    try {
      const withTurn = render(tpl, opts, marked.messages.slice(0, k + 1), false);
      const qAnchor = afterSentinel(withTurn, st.pAnchorJ);
      const q = qAnchor < 0 ? '' : withTurn.slice(qAnchor);
      if (q.startsWith(p)) {
        const added = q.slice(p.length);
        const wanted = snapToMarker(added, markers);
        if (wanted > 0 && lcp(added, Fm, start) >= wanted) end = start + wanted;
      }
    } catch {
      // Some templates refuse a conversation that ends with a reply; the bounded search below still works.
    }
    // Otherwise: the turn runs to the next marker message or the next turn, whichever comes first, and
    // ends after the last end-of-turn token there (turn headers hold none).
    if (end < 0) {
      const bound = Math.min(
        anchorPositions.find((a) => a >= start) ?? Fm.length,
        startPositions.find((a) => a > start) ?? Fm.length,
      );
      const cut = snapToMarker(Fm.slice(start, bound), markers);
      if (cut > 0) end = start + cut;
    }
    if (end < 0) {
      unresolved.push(k);
      continue;
    }
    spans.push({ message: k, start: toReal(start), end: toReal(end) });
  }
  const warnings = unresolved.length
    ? [`Assistant message(s) ${unresolved.join(', ')} could not be placed in the render and are not trained. A template with {% generation %} markers fixes this.`]
    : [];
  return { spans, unresolved, warnings };
}

/**
 * Finds the marked messages in F given the literal pieces around them: F = p0 m1 p1 m2 ... pn. Where a
 * piece also occurs inside a message, the choice that keeps each message a substring of what was
 * written (templates trim or cut text, never invent it) is tried first. Returns [start, end) per message.
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
