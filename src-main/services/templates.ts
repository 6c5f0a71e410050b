/** Chat-template preview: built-ins, a model's own template, render + tokens + training mask + lint. */
import path from 'node:path';
import { existsSync } from 'node:fs';
import type { TemplatePreview, TemplateSource } from '../contract/wizards';
import {
  inspectConversation, lintTemplate, listBuiltins, loadBuiltin, loadTemplateFromFolder, loadTemplateTokenizer,
  type ChatMessage, type ChatTemplate, type TemplateTokenizer,
} from '../templates';
import { UserError } from '../util/progress';

export function builtinTemplates(): { name: string; description: string }[] {
  return listBuiltins().map((b) => ({ name: b.name, description: b.description }));
}

export function loadTemplate(req: { builtin?: string | undefined; modelDir?: string | undefined }): TemplateSource {
  let tpl: ChatTemplate;
  if (req.builtin) tpl = loadBuiltin(req.builtin);
  else if (req.modelDir) tpl = loadTemplateFromFolder(req.modelDir);
  else throw new UserError('templates.noSource', 'Neither a built-in template nor a model folder was named.', 'Pick a built-in template or choose a model first.');
  return { source: tpl.source, origin: tpl.origin, specialTokens: tpl.specialTokens };
}

// Loading a tokenizer takes a moment on big vocabularies; previews come with every keystroke.
const tokenizers = new Map<string, TemplateTokenizer>();
function tokenizerFor(dir: string): TemplateTokenizer {
  let t = tokenizers.get(dir);
  if (!t) {
    t = loadTemplateTokenizer(dir);
    if (tokenizers.size > 4) tokenizers.clear();
    tokenizers.set(dir, t);
  }
  return t;
}

export async function previewTemplate(req: { source: string; specialTokens: Record<string, string>; modelDir: string | null; messages: ChatMessage[] }): Promise<TemplatePreview> {
  const tpl: ChatTemplate = { source: req.source, origin: 'the editor', specialTokens: req.specialTokens };
  const tok = req.modelDir && existsSync(path.join(req.modelDir, 'tokenizer.json')) ? tokenizerFor(req.modelDir) : undefined;
  const conv = { messages: req.messages };
  const lint = await lintTemplate(tpl, tok);
  try {
    const ins = await inspectConversation(tpl, conv, tok);
    return { text: ins.text, tokens: ins.tokens ?? [], counts: ins.counts ?? null, maskMethod: ins.maskMethod, warnings: ins.warnings, lint, error: null };
  } catch (e) {
    // A template that does not render is the normal state while someone is typing: answer, do not throw.
    const error = (e as Error).message;
    // Said once, as the error: not again as the linter's finding with the same text.
    return { text: null, tokens: [], counts: null, maskMethod: null, warnings: [], lint: lint.filter((i) => !(i.code === 'template-error' && i.message === error)), error };
  }
}
