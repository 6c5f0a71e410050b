/**
 * Checks a chat template (with its tokenizer) for the mistakes behind the most common fine-tuning
 * bugs, each reported in plain words with what to do about it.
 */
import type { ChatTemplate } from './load';
import { compileTemplate, TemplateRaisedError, type ChatMessage, type CompiledTemplate } from './render';
import { assistantSpans, ROLE_TAG_NAMES, COMMON_END_MARKERS } from './spans';
import { endMarkersFor, renderOptions, type ConversationInput } from './inspect';
import type { TemplateTokenizer } from './tokenizer';

export type LintCode =
  | 'template-error'
  | 'no-end-of-turn'
  | 'eos-differs'
  | 'bos-doubled'
  | 'bos-missing'
  | 'special-not-in-vocab'
  | 'special-not-special'
  | 'role-rejected'
  | 'generation-prompt-mismatch'
  | 'no-generation-prompt'
  | 'stray-whitespace'
  | 'unlocated-turn';

export interface LintIssue {
  code: LintCode;
  severity: 'error' | 'warning' | 'info';
  message: string;
  fix: string;
  /** Message index the issue is about, when there is one. */
  message_index?: number;
}

export interface LintOptions {
  now?: Date;
  endMarkers?: string[];
}

/** A small conversation that every chat template should accept, used when the caller gives none. */
export const PROBE_CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant.' },
  { role: 'user', content: 'What is the capital of France?' },
  { role: 'assistant', content: 'The capital of France is Paris.' },
  { role: 'user', content: 'And of Italy?' },
  { role: 'assistant', content: 'Rome.' },
];

const show = (s: string): string => JSON.stringify(s.length > 80 ? s.slice(0, 77) + '...' : s);

/** Strings in the template source that look like special tokens: <|x|>, <x>, [INST], <s>. */
export function specialTokensInSource(source: string): string[] {
  const found = new Set<string>();
  const literals = source.match(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g) ?? [];
  const text = literals.join(' ') + ' ' + source.replace(/\{[{%#][\s\S]*?[}%#]\}/g, ' ');
  for (const m of text.matchAll(/<\|[^|<>\s'"]{1,40}\|>|<(?:\/?s|bos|eos|pad|unk|start_of_turn|end_of_turn|start_of_image|think|\/think|tool_call|\/tool_call|tool_response|\/tool_response)>|\[\/?(?:INST|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS|SYSTEM_PROMPT)\]/g)) {
    found.add(m[0]);
  }
  return [...found];
}

function tryRender(c: CompiledTemplate, tpl: ChatTemplate, conv: ConversationInput, gen: boolean, now?: Date): { text?: string; error?: Error } {
  try {
    return { text: c.render({ ...renderOptions(tpl, conv, now), addGenerationPrompt: gen }).text };
  } catch (e) {
    return { error: e as Error };
  }
}

export async function lintTemplate(
  tpl: ChatTemplate,
  tokenizer?: TemplateTokenizer,
  conversation: ConversationInput = { messages: PROBE_CONVERSATION },
  options: LintOptions = {},
): Promise<LintIssue[]> {
  const issues: LintIssue[] = [];
  let compiled: CompiledTemplate;
  try {
    compiled = compileTemplate(tpl.source, tpl.origin);
  } catch (e) {
    return [{ code: 'template-error', severity: 'error', message: (e as Error).message, fix: 'Correct the Jinja syntax of the template.' }];
  }
  const messages = conversation.messages;
  const now = options.now;

  // Roles the template rejects: the conversation itself, then a system message on its own.
  const full = tryRender(compiled, tpl, conversation, false, now);
  if (full.error) {
    const raised = full.error instanceof TemplateRaisedError;
    issues.push({
      code: raised ? 'role-rejected' : 'template-error',
      severity: 'error',
      message: raised
        ? `The template refuses this conversation: "${full.error.message}".`
        : `The template fails on this conversation: ${full.error.message}.`,
      fix: raised
        ? 'Change the conversation to what the template accepts (often: no system role, or strictly alternating user/assistant), or pick another template.'
        : 'Check the message fields the template reads (content must be text for most templates).',
    });
    return issues;
  }
  const roles = [...new Set(messages.map((m) => m.role))];
  if (!roles.includes('system')) {
    const probe = tryRender(compiled, tpl, { ...conversation, messages: [{ role: 'system', content: 'Be brief.' }, ...messages] }, false, now);
    if (probe.error instanceof TemplateRaisedError) {
      issues.push({
        code: 'role-rejected', severity: 'warning',
        message: `The template refuses system messages: "${probe.error.message}".`,
        fix: 'Put instructions into the first user message instead, or pick a template with a system role.',
      });
    }
  }

  // Assistant turns must end with an end-of-turn token the model learns.
  const markers = endMarkersFor(tpl, options.endMarkers);
  const spans = assistantSpans(compiled, renderOptions(tpl, conversation, now), { endMarkers: markers });
  const text = spans.text;
  const eos = tpl.specialTokens.eos_token;
  const allMarkers = [...new Set([...markers, ...COMMON_END_MARKERS])];
  for (const k of spans.unresolved) {
    issues.push({
      code: 'unlocated-turn', severity: 'warning', message_index: k,
      message: `Lathe could not tell where assistant message ${k} is in the rendered text, so it would not be trained.`,
      fix: 'Use a template with {% generation %} ... {% endgeneration %} around assistant replies, or one that renders earlier turns the same way whatever follows.',
    });
  }
  let endToken: string | undefined;
  for (const sp of spans.spans) {
    const turn = text.slice(sp.start, sp.end);
    const end = allMarkers.filter((m) => turn.endsWith(m)).sort((a, b) => b.length - a.length)[0];
    // No end-of-turn token, but the turn ends with the next role tag (GLM-4) or is the last reply (SFT appends
    // EOS after it): the model learns to stop there (spans.ts), so this is a note, not an error.
    const roleTag = new RegExp(`(<\\|(?:${ROLE_TAG_NAMES})\\|>|<｜(?:${ROLE_TAG_NAMES})｜>)$`).exec(turn)?.[1];
    if (!end && (roleTag || spans.openEnded?.includes(sp.message))) {
      if (roleTag) endToken ??= roleTag;
      issues.push({
        code: 'no-end-of-turn', severity: 'info', message_index: sp.message,
        message: roleTag
          ? `Assistant message ${sp.message} has no end-of-turn token; the next role tag ${show(roleTag)} ends it and is trained with the reply, so the model learns to stop there.`
          : `Assistant message ${sp.message} ends the text with no end-of-turn token; SFT appends the EOS token after it, trained.`,
        fix: `Make sure generation stops on the role tags (and ${eos ? show(eos) : 'EOS'}) when chatting with the model.`,
      });
      continue;
    }
    if (!end) {
      issues.push({
        code: 'no-end-of-turn', severity: 'error', message_index: sp.message,
        message: `Assistant message ${sp.message} ends without an end-of-turn or EOS token (it ends with ${show(turn.slice(-20))}), so the model never learns to stop and will ramble on at inference.`,
        fix: `Make the template write ${eos ? show(eos) : 'the EOS token'} (or the model's end-of-turn token) right after each assistant reply, e.g. {{ message['content'] + eos_token }}.`,
      });
    } else {
      endToken ??= end;
    }
  }
  if (endToken && eos && endToken !== eos && !text.includes(eos)) {
    issues.push({
      code: 'eos-differs', severity: 'info',
      message: `Replies end with ${show(endToken)} but the tokenizer's eos_token is ${show(eos)}. Generation must stop on ${show(endToken)}.`,
      fix: `Make sure ${show(endToken)} is a stop token when chatting with the model (generation_config.json eos_token_id, or set eos_token to ${show(endToken)}).`,
    });
  }

  // Generation prompt: what the model is prompted with must be what it was trained on.
  const assistants = messages.map((m, i) => (m.role === 'assistant' ? i : -1)).filter((i) => i >= 0);
  for (const k of assistants) {
    const prompt = tryRender(compiled, tpl, { ...conversation, messages: messages.slice(0, k) }, true, now);
    const withReply = tryRender(compiled, tpl, { ...conversation, messages: messages.slice(0, k + 1) }, false, now);
    if (!prompt.text || withReply.text === undefined) continue;
    if (!withReply.text.startsWith(prompt.text)) {
      let i = 0;
      while (i < prompt.text.length && prompt.text[i] === withReply.text[i]) i++;
      if (/^<think>/.test(prompt.text.slice(i)) && prompt.text.length - i <= 40) {
        // Reasoning templates (QwQ, DeepSeek-R1 distills, Qwen 3) open the model's thinking in the generation
        // prompt and cut reasoning from replies in history: expected, and the mask trains the reply after it.
        issues.push({
          code: 'generation-prompt-mismatch', severity: 'info', message_index: k,
          message: `The generation prompt opens the model's reasoning with ${show(prompt.text.slice(i))}, which replies in the training text do not show (a reasoning template). The replies are trained from their first character after the turn header.`,
          fix: 'Nothing to do for a reasoning model. To train its reasoning too, keep <think>...</think> in the replies with a template that keeps them in history.',
        });
        break;
      }
      issues.push({
        code: 'generation-prompt-mismatch', severity: 'warning', message_index: k,
        message: `At inference the prompt for reply ${k} reads ${show(prompt.text.slice(i, i + 60))} where training shows ${show(withReply.text.slice(i, i + 60))} (from character ${i}). The model is trained on a layout it will not see when chatting.`,
        fix: 'Make add_generation_prompt write exactly what the template writes before an assistant reply (the same header, the same line breaks).',
      });
      break;
    }
  }
  if (assistants.length > 0) {
    const head = messages.slice(0, assistants[0]);
    const a = tryRender(compiled, tpl, { ...conversation, messages: head }, true, now);
    const b = tryRender(compiled, tpl, { ...conversation, messages: head }, false, now);
    if (a.text !== undefined && a.text === b.text && !tpl.builtin) {
      issues.push({
        code: 'no-generation-prompt', severity: 'info',
        message: 'add_generation_prompt changes nothing: the template has no assistant header (normal for Llama 2 / Mistral [INST] formats).',
        fix: 'Nothing to do if the model is meant to answer right after [/INST]; otherwise add an {% if add_generation_prompt %} block.',
      });
    }
  }

  // Whitespace between turns: extra blank lines after an end-of-turn token, or a render that starts with whitespace.
  if (/^\s/.test(text)) {
    issues.push({
      code: 'stray-whitespace', severity: 'warning',
      message: `The render starts with whitespace (${show(text.slice(0, 10))}).`,
      fix: 'Use {%- ... %} / {{- ... }} at the start of the template so nothing is printed before the first token.',
    });
  }
  const allSpecial = [...new Set([...allMarkers, ...specialTokensInSource(tpl.source), ...Object.values(tpl.specialTokens)])];
  const separators = new Map<string, number>();
  for (const m of allMarkers) {
    for (let i = text.indexOf(m); i !== -1; i = text.indexOf(m, i + 1)) {
      const after = text.slice(i + m.length).match(/^\s*/)![0];
      const next = i + m.length + after.length;
      if (next >= text.length) continue; // the end of the render
      // Only separators before the next turn's header token count (Alpaca's "### Instruction" is prose).
      if (!allSpecial.some((t) => text.startsWith(t, next))) continue;
      separators.set(after, (separators.get(after) ?? 0) + 1);
    }
  }
  const blank = [...separators.keys()].filter((s) => (s.match(/\n/g) ?? []).length >= 2);
  if (blank.length > 0) {
    issues.push({
      code: 'stray-whitespace', severity: 'warning',
      message: `There is a blank line between turns (${show(blank[0]!)} after an end-of-turn token). This usually comes from a line break outside {{- -}} in the template, and the model will learn it.`,
      fix: 'Add whitespace control ({%- -%}, {{- -}}) around the statements that end each turn.',
    });
  } else if (separators.size > 1) {
    issues.push({
      code: 'stray-whitespace', severity: 'info',
      message: `Turns are separated inconsistently (${[...separators.keys()].map(show).join(' and ')}).`,
      fix: 'Check the template for line breaks that only some branches print.',
    });
  }

  if (!tokenizer) return issues;

  // Special tokens the template writes must exist in the vocab as single (special) tokens.
  for (const s of specialTokensInSource(tpl.source + ' ' + Object.values(tpl.specialTokens).join(' '))) {
    const id = tokenizer.tokenToId(s);
    if (id === undefined) {
      const enc = await tokenizer.encode(s, false);
      // The stop token must be one token; other markers may be plain text by design (Zephyr's <|user|>).
      const isStop = s === endToken;
      issues.push({
        code: 'special-not-in-vocab', severity: isStop ? 'error' : 'warning',
        message: isStop
          ? `Replies end with ${show(s)} but the tokenizer has no such token: it becomes ${enc.ids.length} ordinary pieces (${enc.tokens.slice(0, 8).map(show).join(' ')}), so the model has no single token to stop on. The template does not fit this tokenizer.`
          : `The template writes ${show(s)} but the tokenizer has no such token, so it becomes ${enc.ids.length} ordinary pieces (${enc.tokens.slice(0, 8).map(show).join(' ')}). That is fine only if the model was trained that way (Zephyr/TinyLlama do); otherwise the template belongs to another model.`,
        fix: `Use the template made for this model, or add ${show(s)} to the tokenizer as a special token (Lathe can extend the vocabulary and train the new embedding).`,
      });
    } else if (!tokenizer.isSpecial(id) && text.includes(s)) {
      const enc = await tokenizer.encode(s, false);
      if (enc.ids.length !== 1) {
        issues.push({
          code: 'special-not-special', severity: 'warning',
          message: `${show(s)} is in the vocabulary but is not an added special token, so text containing it is split into ${enc.ids.length} tokens.`,
          fix: `Mark ${show(s)} as a special added token in tokenizer.json.`,
        });
      }
    }
  }

  // BOS: written by the template and again by the tokenizer's post-processor.
  const bos = tokenizer.bosToken ?? tpl.specialTokens.bos_token;
  const plain = await tokenizer.encode('Hello', true);
  const tokenizerAddsBos = tokenizer.bosId !== undefined && plain.ids[0] === tokenizer.bosId;
  const templateAddsBos = bos !== undefined && text.startsWith(bos);
  if (tokenizerAddsBos && templateAddsBos) {
    issues.push({
      code: 'bos-doubled', severity: 'warning',
      message: `The template starts with ${show(bos!)} and the tokenizer adds ${show(bos!)} too when asked for special tokens, so the sequence would start with two BOS tokens.`,
      fix: 'Tokenize rendered chats without special tokens (Lathe does: add_special_tokens=False); check any other training or serving script does the same.',
    });
  } else if (tokenizerAddsBos && !templateAddsBos && bos !== undefined) {
    issues.push({
      code: 'bos-missing', severity: 'info',
      message: `The tokenizer puts ${show(bos)} in front of plain text but the template does not write it, so rendered chats (tokenized without special tokens) start without BOS.`,
      fix: 'If the model was pre-trained with BOS, start the template with {{ bos_token }}.',
    });
  }
  return issues;
}

