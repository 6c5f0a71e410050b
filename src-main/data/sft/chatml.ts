import type { ChatMessage, ChatRenderer } from '../types';

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
