/**
 * Chat template applied to SFT data: one conversation -> token ids + loss mask (1 = assistant token to
 * learn, end-of-turn included). Masks come from assistantSpans (generation markers, prefix renders or
 * aligned sentinels), never from searching the text for the reply.
 */
import { UserError } from '../util/progress';
import type { ChatTemplate } from './load';
import { compileTemplate, TemplateRaisedError, type ChatMessage, type CompiledTemplate } from './render';
import { assistantSpans } from './spans';
import { endMarkersFor, maskFromSpans, renderOptions, type ConversationInput } from './inspect';
import type { TemplateTokenizer } from './tokenizer';

export interface ApplyOptions {
  /** Cut to at most this many tokens. */
  maxLength?: number;
  /**
   * 'right' (default): keep the first maxLength tokens. 'error': throw instead of cutting.
   * 'left-keep-system' is not offered on purpose: cutting the prompt side changes what the reply answers.
   */
  truncation?: 'right' | 'error';
  /** Let the tokenizer add BOS/EOS as for plain text (default false: the template decides). */
  addSpecialTokens?: boolean;
  /** Extra end-of-turn strings for span ends. */
  endMarkers?: string[];
  now?: Date;
}

export interface AppliedConversation {
  ids: number[];
  mask: Uint8Array;
  /** Tokens before truncation. */
  fullLength: number;
  truncated: boolean;
  /** Trained tokens after truncation; 0 means the example teaches nothing. */
  trained: number;
  warnings: string[];
}

/** A template prepared once for many conversations. */
export interface PreparedTemplate {
  template: ChatTemplate;
  compiled: CompiledTemplate;
}

export function prepareTemplate(template: ChatTemplate): PreparedTemplate {
  return { template, compiled: compileTemplate(template.source, template.origin) };
}

export async function applyTemplate(
  conversation: ConversationInput | ChatMessage[],
  template: ChatTemplate | PreparedTemplate,
  tokenizer: TemplateTokenizer,
  options: ApplyOptions = {},
): Promise<AppliedConversation> {
  const conv: ConversationInput = Array.isArray(conversation) ? { messages: conversation } : conversation;
  const prepared = 'compiled' in template ? template : prepareTemplate(template);
  const tpl = prepared.template;
  let spans;
  try {
    spans = assistantSpans(prepared.compiled, renderOptions(tpl, conv, options.now), {
      endMarkers: endMarkersFor(tpl, options.endMarkers),
    });
  } catch (e) {
    if (e instanceof TemplateRaisedError) {
      throw new UserError('template-rejected', `The chat template (${tpl.origin}) refused this conversation: ${e.message}`,
        'Fix the conversation (roles, order) or pick a template that accepts it; `lathe template lint` shows which roles it takes.');
    }
    throw new UserError('template-render-failed', `The chat template (${tpl.origin}) failed on this conversation: ${(e as Error).message}`,
      'Check that every message has a role and text content; `lathe template lint` explains template problems.');
  }
  const warnings = [...spans.warnings];
  if (spans.unresolved.length > 0) {
    warnings.push(`Assistant message(s) ${spans.unresolved.join(', ')} could not be located in the render and are not trained.`);
  }
  const enc = await tokenizer.encode(spans.text, options.addSpecialTokens ?? false);
  let ids = enc.ids;
  let mask = maskFromSpans(enc.offsets, spans.spans);
  if ((spans.openEnded?.length ?? 0) > 0) {
    // The last reply ends the render with no end-of-turn token (GLM-4): append EOS and train it, or the
    // model never learns to stop (GLM's own fine-tuning appends it the same way).
    if (tokenizer.eosId !== undefined) {
      ids = [...ids, tokenizer.eosId];
      mask = Uint8Array.from([...mask, 1]);
    } else {
      warnings.push('The last reply has no end-of-turn token and the tokenizer names no EOS token; the model may not learn to stop.');
    }
  }
  const fullLength = ids.length;
  let truncated = false;
  if (options.maxLength !== undefined && ids.length > options.maxLength) {
    if (options.truncation === 'error') {
      throw new UserError('template-too-long', `This conversation is ${ids.length} tokens, more than the limit of ${options.maxLength}.`,
        'Raise the sequence length, or split long conversations before training.');
    }
    ids = ids.slice(0, options.maxLength);
    mask = mask.slice(0, options.maxLength);
    truncated = true;
  }
  let trained = 0;
  for (const m of mask) trained += m;
  if (trained === 0) warnings.push('No assistant tokens are trained in this conversation.');
  return { ids, mask, fullLength, truncated, trained, warnings };
}

/**
 * The data pipeline's ChatRenderer shape, (messages) => { ids, mask }. Tokenizing is asynchronous in
 * the `tokenizers` package, so the function returns a Promise of it.
 */
export function createChatRenderer(
  template: ChatTemplate,
  tokenizer: TemplateTokenizer,
  options: ApplyOptions = {},
): (messages: ChatMessage[]) => Promise<{ ids: number[]; mask: Uint8Array }> {
  const prepared = prepareTemplate(template);
  return async (messages) => {
    const r = await applyTemplate(messages, prepared, tokenizer, options);
    return { ids: r.ids, mask: r.mask };
  };
}
