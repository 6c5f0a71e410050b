import type { ChatMessage, ChatRenderer, TokenizerAdapter } from '../types';
import { UserError } from '../../util/progress';

/**
 * A minimal ChatML renderer over a synchronous text encoder: `<|im_start|>role\ncontent<|im_end|>\n`,
 * loss on assistant content and its closing marker only. Used by tests and as a fallback until the
 * chat-template module (src-main/templates) supplies the model's own template.
 */
export function chatmlRenderer(encode: (text: string) => number[], imStart: number, imEnd: number): ChatRenderer {
  const nl = encode('\n');
  return (messages: ChatMessage[]) => {
    const ids: number[] = [];
    const mask: number[] = [];
    const push = (xs: number[], loss: 0 | 1): void => { for (const x of xs) { ids.push(x); mask.push(loss); } };
    for (const m of messages) {
      push([imStart], 0);
      push(encode(`${m.role}\n`), 0);
      const learn = m.role === 'assistant' ? 1 : 0;
      push(encode(m.content), learn);
      push([imEnd], learn);
      push(nl, 0);
    }
    return { ids, mask: Uint8Array.from(mask) };
  };
}

/** ChatML over an async batch tokenizer (one encodeBatch call per conversation). */
export function chatmlRendererFor(tok: TokenizerAdapter): ChatRenderer {
  const imStart = tok.tokenToId?.('<|im_start|>') ?? null;
  const imEnd = tok.tokenToId?.('<|im_end|>') ?? null;
  if (imStart === null || imEnd === null) {
    throw new UserError('data.sft', 'This tokenizer has no <|im_start|>/<|im_end|> tokens, so the built-in ChatML layout cannot be used.', 'Use the model\'s own chat template (choose the model in the wizard), or a ChatML model.');
  }
  return async (messages: ChatMessage[]) => {
    const pieces = messages.flatMap((m) => [`${m.role}\n`, m.content]);
    const enc = await tok.encodeBatch([...pieces, '\n']);
    const nl = Array.from(enc[enc.length - 1]!);
    const ids: number[] = [];
    const mask: number[] = [];
    const push = (xs: ArrayLike<number>, loss: 0 | 1): void => { for (let i = 0; i < xs.length; i++) { ids.push(xs[i]!); mask.push(loss); } };
    messages.forEach((m, i) => {
      const learn = m.role === 'assistant' ? 1 : 0;
      push([imStart], 0);
      push(enc[2 * i]!, 0);
      push(enc[2 * i + 1]!, learn);
      push([imEnd], learn);
      push(nl, 0);
    });
    return { ids, mask: Uint8Array.from(mask) };
  };
}
