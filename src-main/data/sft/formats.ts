import type { ChatMessage } from '../types';

/** The three dataset shapes people actually have, detected per record. */
export type SftFormat = 'openai' | 'sharegpt' | 'alpaca';

const SHAREGPT_ROLES: Record<string, ChatMessage['role']> = {
  human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', chatgpt: 'assistant', bot: 'assistant', model: 'assistant', system: 'system',
};

/**
 * Normalizes one record into messages, or returns an error string saying what is wrong with it.
 * OpenAI: {"messages":[{"role","content"}]}; ShareGPT: {"conversations":[{"from","value"}]};
 * Alpaca: {"instruction","input"?,"output","system"?}.
 */
export function toConversation(rec: unknown): { format: SftFormat; messages: ChatMessage[] } | { error: string } {
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return { error: 'record is not a JSON object' };
  const r = rec as Record<string, unknown>;
  if (Array.isArray(r.messages)) {
    const messages: ChatMessage[] = [];
    for (const [i, m] of (r.messages as unknown[]).entries()) {
      const mm = m as { role?: unknown; content?: unknown };
      if (!mm || (mm.role !== 'system' && mm.role !== 'user' && mm.role !== 'assistant')) return { error: `messages[${i}].role must be system, user or assistant (got ${JSON.stringify(mm?.role)})` };
      const content = contentText(mm.content);
      if (content === null) return { error: `messages[${i}].content must be text` };
      messages.push({ role: mm.role, content });
    }
    return check('openai', messages);
  }
  if (Array.isArray(r.conversations)) {
    const messages: ChatMessage[] = [];
    for (const [i, m] of (r.conversations as unknown[]).entries()) {
      const mm = m as { from?: unknown; value?: unknown };
      const role = typeof mm?.from === 'string' ? SHAREGPT_ROLES[mm.from.toLowerCase()] : undefined;
      if (!role) return { error: `conversations[${i}].from is ${JSON.stringify(mm?.from)}; expected human, gpt or system` };
      if (typeof mm.value !== 'string') return { error: `conversations[${i}].value must be text` };
      messages.push({ role, content: mm.value });
    }
    if (typeof r.system === 'string' && r.system && messages[0]?.role !== 'system') messages.unshift({ role: 'system', content: r.system });
    return check('sharegpt', messages);
  }
  if (typeof r.instruction === 'string' && typeof r.output === 'string') {
    const input = typeof r.input === 'string' && r.input.trim() ? `\n\n${r.input}` : '';
    const messages: ChatMessage[] = [];
    if (typeof r.system === 'string' && r.system) messages.push({ role: 'system', content: r.system });
    messages.push({ role: 'user', content: r.instruction + input }, { role: 'assistant', content: r.output });
    return check('alpaca', messages);
  }
  return { error: `unknown record shape (fields: ${Object.keys(r).slice(0, 8).join(', ')}); expected "messages", "conversations" or "instruction"+"output"` };
}

function contentText(c: unknown): string | null {
  if (typeof c === 'string') return c;
  // OpenAI content parts: [{type:"text", text:"..."}]
  if (Array.isArray(c) && c.every((p) => p && typeof p === 'object' && typeof (p as { text?: unknown }).text === 'string')) {
    return c.map((p) => (p as { text: string }).text).join('');
  }
  return null;
}

function check(format: SftFormat, messages: ChatMessage[]): { format: SftFormat; messages: ChatMessage[] } | { error: string } {
  if (!messages.some((m) => m.role === 'assistant' && m.content.trim())) return { error: 'no assistant reply to learn from' };
  return { format, messages };
}
