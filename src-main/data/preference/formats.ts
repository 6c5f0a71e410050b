/**
 * Preference pairs in the shapes people have, normalized to one prompt and two replies:
 *
 * - TRL standard:        {"prompt": "…", "chosen": "…", "rejected": "…"}
 * - TRL conversational:  {"prompt": [messages], "chosen": [assistant message(s)], "rejected": [...]}
 * - UltraFeedback-binarized: {"prompt": "…", "chosen": [user, assistant], "rejected": [user, assistant]}
 *   (full conversations that repeat the prompt turn; also without "prompt": the shared turns are the prompt)
 * - HH-RLHF:             {"chosen": "\n\nHuman: … \n\nAssistant: …", "rejected": "…"} (two whole
 *   conversations as text; the shared turns are the prompt, the last reply differs)
 *
 * Every shape becomes two full conversations; the prompt is their longest common run of messages and each
 * side must then have exactly one assistant reply left. A record that does not fit says why.
 */
import type { ChatMessage } from '../types';

export type PreferenceFormat = 'trl-standard' | 'trl-conversational' | 'ultrafeedback' | 'hh-rlhf';

export interface PreferencePair {
  format: PreferenceFormat;
  /** Messages before the reply (system/user, and earlier assistant turns in multi-turn prompts). */
  prompt: ChatMessage[];
  chosen: string;
  rejected: string;
}

/** Why a pair cannot be trained on; `kind` groups the counts in the report. */
export interface PairError { error: string; kind: 'shape' | 'identical' | 'empty' | 'prompt' }

const ROLES = new Set(['system', 'user', 'assistant']);

function messagesOf(v: unknown, field: string): ChatMessage[] | string {
  if (!Array.isArray(v)) return `"${field}" must be a list of messages`;
  const out: ChatMessage[] = [];
  for (const [i, m] of v.entries()) {
    const mm = m as { role?: unknown; content?: unknown } | null;
    if (!mm || typeof mm !== 'object' || !ROLES.has(mm.role as string)) return `${field}[${i}].role must be system, user or assistant (got ${JSON.stringify(mm?.role)})`;
    const content = typeof mm.content === 'string' ? mm.content
      : Array.isArray(mm.content) && mm.content.every((p) => p && typeof (p as { text?: unknown }).text === 'string') ? mm.content.map((p) => (p as { text: string }).text).join('') : null;
    if (content === null) return `${field}[${i}].content must be text`;
    out.push({ role: mm.role as ChatMessage['role'], content });
  }
  return out;
}

/** "\n\nHuman: … \n\nAssistant: …" -> messages (HH-RLHF); null when the text has no such turns. */
export function parseHhText(text: string): ChatMessage[] | null {
  const re = /(?:^|\n\n)(Human|Assistant):[ ]?/g;
  const marks: { role: ChatMessage['role']; start: number; end: number }[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) marks.push({ role: m[1] === 'Human' ? 'user' : 'assistant', start: m.index, end: m.index + m[0].length });
  if (!marks.length || text.slice(0, marks[0]!.start).trim()) return null;
  return marks.map((m, i) => ({ role: m.role, content: text.slice(m.end, i + 1 < marks.length ? marks[i + 1]!.start : text.length).trim() }));
}

const same = (a: ChatMessage, b: ChatMessage): boolean => a.role === b.role && a.content === b.content;

/** Two full conversations -> prompt + the two last replies (the shared turns are the prompt). */
export function splitConversations(format: PreferenceFormat, c: ChatMessage[], r: ChatMessage[]): PreferencePair | PairError {
  let k = 0;
  while (k < c.length && k < r.length && same(c[k]!, r[k]!)) k++;
  if (k === c.length && k === r.length) return { kind: 'identical', error: 'chosen and rejected are identical (nothing to prefer)' };
  const restC = c.slice(k), restR = r.slice(k);
  if (restC.length !== 1 || restR.length !== 1 || restC[0]!.role !== 'assistant' || restR[0]!.role !== 'assistant') {
    return { kind: 'shape', error: `chosen and rejected must differ only in their last assistant reply; they differ from message ${k + 1} on (${restC.length} vs ${restR.length} messages left)` };
  }
  const prompt = c.slice(0, k);
  if (!prompt.some((m) => m.role === 'user')) return { kind: 'prompt', error: 'no prompt: the pair has no user message before the replies' };
  const chosen = restC[0]!.content, rejected = restR[0]!.content;
  if (!chosen.trim() || !rejected.trim()) return { kind: 'empty', error: `the ${!chosen.trim() ? 'chosen' : 'rejected'} reply is empty` };
  if (chosen === rejected) return { kind: 'identical', error: 'chosen and rejected are identical (nothing to prefer)' };
  return { format, prompt, chosen, rejected };
}

/** One record -> a pair, or the reason it cannot be one. */
export function toPreferencePair(rec: unknown): PreferencePair | PairError {
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return { kind: 'shape', error: 'record is not a JSON object' };
  const o = rec as Record<string, unknown>;
  const { prompt, chosen, rejected } = o;
  if (chosen === undefined || rejected === undefined) {
    return { kind: 'shape', error: `unknown record shape (fields: ${Object.keys(o).slice(0, 8).join(', ')}); expected "chosen" and "rejected" (and usually "prompt")` };
  }
  if (typeof chosen === 'string' && typeof rejected === 'string') {
    if (typeof prompt === 'string') {
      if (!prompt.trim()) return { kind: 'prompt', error: '"prompt" is empty' };
      const p: ChatMessage[] = [{ role: 'user', content: prompt }];
      return splitConversations('trl-standard', [...p, { role: 'assistant', content: chosen }], [...p, { role: 'assistant', content: rejected }]);
    }
    if (prompt !== undefined) return { kind: 'shape', error: '"prompt" must be text when "chosen" and "rejected" are text' };
    const c = parseHhText(chosen), r = parseHhText(rejected);
    if (!c || !r) return { kind: 'shape', error: 'without "prompt", text "chosen"/"rejected" must be whole conversations ("\\n\\nHuman: … \\n\\nAssistant: …", HH-RLHF)' };
    return splitConversations('hh-rlhf', c, r);
  }
  const c = messagesOf(chosen, 'chosen');
  if (typeof c === 'string') return { kind: 'shape', error: c };
  const r = messagesOf(rejected, 'rejected');
  if (typeof r === 'string') return { kind: 'shape', error: r };
  // full conversations (UltraFeedback style: the prompt turn repeated in chosen and rejected)
  if (c.some((m) => m.role === 'user') || r.some((m) => m.role === 'user')) return splitConversations('ultrafeedback', c, r);
  let p: ChatMessage[];
  if (typeof prompt === 'string') p = [{ role: 'user', content: prompt }];
  else {
    const pm = messagesOf(prompt, 'prompt');
    if (typeof pm === 'string') return { kind: 'shape', error: prompt === undefined ? '"prompt" is missing (the replies hold no user turn)' : pm };
    p = pm;
  }
  return splitConversations('trl-conversational', [...p, ...c], [...p, ...r]);
}

export function isPairError(x: PreferencePair | PairError): x is PairError { return 'error' in x; }
