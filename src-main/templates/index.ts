/** Chat templates: render exactly as transformers does, inspect tokens and loss masks, lint, apply to SFT data. */
export { compileTemplate, TemplateRaisedError, TemplateRenderError } from './render';
export type { ChatMessage, CompiledTemplate, RenderOptions, RenderResult } from './render';
export { loadTemplateFromFolder, loadTemplateFile, loadBuiltin, listBuiltins, selectTemplate, specialTokenString } from './load';
export type { BuiltinMeta, ChatTemplate } from './load';
export { loadTemplateTokenizer, fromLatheTokenizer } from './tokenizer';
export type { TemplateTokenizer, TemplateEncoding } from './tokenizer';
export { assistantSpans } from './spans';
export type { TurnSpan, SpanResult } from './spans';
export { inspectConversation, diffTemplates, maskFromSpans, generationPrompt } from './inspect';
export type { Inspection, InspectToken, ConversationInput, TemplateDiff } from './inspect';
export { lintTemplate, PROBE_CONVERSATION } from './lint';
export type { LintIssue, LintCode } from './lint';
export { applyTemplate, createChatRenderer, prepareTemplate } from './apply';
export { chatRendererForModel } from './for-model';
export type { ApplyOptions, AppliedConversation } from './apply';
