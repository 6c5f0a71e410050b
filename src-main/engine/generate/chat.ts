/**
 * Chat with a model through its chat template: render the conversation with add_generation_prompt,
 * generate, stop at the end-of-turn token (or EOS). `compareChat` answers the same conversation with the
 * base model and with the fine-tuned adapter, side by side, from ONE session: the base answer runs the
 * adapter graph with all-zero adapter values (the LoRA branch adds exactly 0), so the weights load once.
 */
import { openModel } from '../models';
import { loadAdapter } from '../train/adapter-folder';
import type { EpName } from '../backends/onnx';
import { compileTemplate, loadBuiltin, loadTemplateFromFolder, type ChatMessage, type ChatTemplate, type CompiledTemplate } from '../../templates';
import { endMarkersFor } from '../../templates/inspect';
import type { LatheTokenizer } from '../../tokenizer';
import { UserError } from '../../util/progress';
import { Generator, type GenerateOptions, type GenerateResult, type TokenEvent } from './generator';

/** End-of-turn markers of common families, used when the template's own is not known. */
const COMMON_END_MARKERS = ['<|im_end|>', '<|eot_id|>', '<end_of_turn>', '<|end|>', '</s>', '<|endoftext|>', '<|end_of_text|>'];

export interface ChatFormat {
  template: ChatTemplate;
  compiled: CompiledTemplate;
  /** End-of-turn markers that are single tokens. */
  stopIds: number[];
  /** Markers that are not single tokens: matched in the text. */
  stopStrings: string[];
}

/** The model folder's template, or a built-in by name, or the one given; with its stop tokens. */
export function chatFormat(modelDir: string, tokenizer: LatheTokenizer, template?: ChatTemplate | string): ChatFormat {
  let tpl: ChatTemplate;
  if (typeof template === 'string') tpl = loadBuiltin(template);
  else if (template) tpl = template;
  else {
    try {
      tpl = loadTemplateFromFolder(modelDir);
    } catch (e) {
      if (e instanceof UserError) {
        throw new UserError('chat.noTemplate', `This model has no chat template (${e.message})`, 'Pick a built-in template (for example --template chatml) to chat with a base model.');
      }
      throw e;
    }
  }
  const compiled = compileTemplate(tpl.source, tpl.origin);
  const markers = new Set(endMarkersFor(tpl).concat(COMMON_END_MARKERS.filter((m) => tpl.source.includes(m))));
  const stopIds: number[] = [], stopStrings: string[] = [];
  for (const m of markers) {
    const id = tokenizer.tokenToId(m);
    if (id !== undefined) stopIds.push(id);
    else stopStrings.push(m);
  }
  return { template: tpl, compiled, stopIds, stopStrings };
}

/** Rendered prompt text and its ids (the template decides BOS, as apply_chat_template). */
export async function renderChatPrompt(fmt: ChatFormat, tokenizer: LatheTokenizer, messages: ChatMessage[], extra?: Record<string, unknown>): Promise<{ text: string; ids: number[] }> {
  if (messages.length === 0) throw new UserError('chat.empty', 'The conversation has no messages.', 'Add at least one user message.');
  const text = fmt.compiled.render({ messages, tools: null, documents: null, addGenerationPrompt: true, specialTokens: fmt.template.specialTokens, ...(extra ? { extra } : {}) }).text;
  const ids = (await tokenizer.encode(text, { addSpecialTokens: false })).ids;
  return { text, ids };
}

export interface ChatOptions extends Omit<GenerateOptions, 'onToken'> {
  ep?: EpName | 'gpu';
  /** A run folder or checkpoint folder with a LoRA adapter. */
  adapter?: string;
  /** A template (or a built-in's name) instead of the model's own. */
  template?: ChatTemplate | string;
  /** Extra template arguments, e.g. { enable_thinking: false }. */
  extra?: Record<string, unknown>;
  onToken?: (ev: TokenEvent, which: 'base' | 'tuned') => void;
}

export interface ChatReply extends GenerateResult {
  /** The rendered prompt the model saw. */
  prompt: string;
}

/** One reply from the model (with the adapter when `adapter` is given). */
export async function chat(modelDir: string, messages: ChatMessage[], opts: ChatOptions = {}): Promise<ChatReply> {
  return withChat(modelDir, opts, async (gen, format, tok) => {
    const fmt = format();
    const which = opts.adapter ? 'tuned' : 'base';
    return reply(gen, fmt, tok, messages, opts, which);
  });
}

/** The same conversation answered by the base model and the fine-tuned one (same sampling seed). */
export async function compareChat(modelDir: string, adapter: string, messages: ChatMessage[], opts: Omit<ChatOptions, 'adapter'> = {}): Promise<{ base: ChatReply; tuned: ChatReply }> {
  return withChat(modelDir, { ...opts, adapter }, async (gen, format, tok, params) => {
    const fmt = format();
    await gen.setAdapter(new Float32Array(params!.length));
    const base = await reply(gen, fmt, tok, messages, opts, 'base');
    await gen.setAdapter(params!);
    const tuned = await reply(gen, fmt, tok, messages, opts, 'tuned');
    return { base, tuned };
  });
}

async function reply(gen: Generator, fmt: ChatFormat, tok: LatheTokenizer, messages: ChatMessage[], opts: ChatOptions, which: 'base' | 'tuned'): Promise<ChatReply> {
  const { text, ids } = await renderChatPrompt(fmt, tok, messages, opts.extra);
  const res = await gen.generate(ids, {
    ...opts,
    stopIds: [...fmt.stopIds, ...(opts.stopIds ?? [])],
    stopStrings: [...fmt.stopStrings, ...(opts.stopStrings ?? [])],
    onToken: opts.onToken ? (ev) => opts.onToken!(ev, which) : undefined,
  });
  return { ...res, prompt: text };
}

async function withChat<T>(modelDir: string, opts: ChatOptions,
  fn: (gen: Generator, format: () => ChatFormat, tok: LatheTokenizer, params: Float32Array | null) => Promise<T>): Promise<T> {
  const { config, layout, weights } = await openModel(modelDir);
  let gen: Generator | null = null;
  try {
    // a Lathe run/checkpoint, a PEFT adapter or a Trainer checkpoint-N folder
    const ad = opts.adapter ? await loadAdapter(opts.adapter, config, layout) : null;
    const params = ad ? (ad.params.data as Float32Array) : null;
    gen = await Generator.create({ config, layout, weights }, modelDir, {
      ep: opts.ep, capacity: Math.min(config.maxPositions, 2048),
      lora: ad ? { layout: ad.lora, params: params! } : null,
      // an adapter trained with an extended tokenizer reads and writes its new tokens
      tokenizerDir: ad?.tokenizerDir,
    });
    if (!gen.tokenizer) throw new UserError('chat.noTokenizer', `No tokenizer.json in ${modelDir}.`, 'Copy the tokenizer files into the model folder.');
    const tok = gen.tokenizer;
    return await fn(gen, () => chatFormat(modelDir, tok, opts.template), tok, params);
  } finally {
    await gen?.dispose();
    await weights.close();
  }
}

/** Plain continuation of a prompt text (no template), with the adapter when `adapter` is given. */
export async function completeText(modelDir: string, prompt: string, opts: Omit<ChatOptions, 'template' | 'extra' | 'onToken'> & { onToken?: (ev: TokenEvent) => void } = {}): Promise<GenerateResult> {
  return withChat(modelDir, opts, async (gen, _format, tok) => {
    let ids = (await tok.encode(prompt, { addSpecialTokens: true })).ids;
    if (ids.length === 0 && gen.config.bosTokenId !== null) ids = [gen.config.bosTokenId];
    return gen.generate(ids, opts);
  });
}
