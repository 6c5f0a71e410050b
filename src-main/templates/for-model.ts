/**
 * The renderer SFT preparation uses: the model's own chat template (tokenizer_config.json or
 * chat_template.jinja) with its tokenizer; a base model without a template falls back to ChatML,
 * with a warning that says so.
 */
import { chatmlRendererFor } from '../data/sft/chatml';
import type { ChatRenderer, TokenizerAdapter } from '../data/types';
import { UserError } from '../util/progress';
import { createChatRenderer } from './apply';
import { loadTemplateFromFolder } from './load';
import { loadTemplateTokenizer } from './tokenizer';

export function chatRendererForModel(dir: string, tokenizer: TokenizerAdapter): { renderer: ChatRenderer; origin: string; warning?: string } {
  try {
    const t = loadTemplateFromFolder(dir);
    return { renderer: createChatRenderer(t, loadTemplateTokenizer(dir)), origin: t.origin };
  } catch (e) {
    if (!(e instanceof UserError && e.code === 'template-missing')) throw e;
    return {
      renderer: chatmlRendererFor(tokenizer),
      origin: 'ChatML (built in)',
      warning: `${dir} has no chat template (a base model?): conversations are rendered as ChatML. Use the same format when you chat with the fine-tuned model.`,
    };
  }
}
