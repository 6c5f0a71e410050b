import { describe, expect, it } from 'vitest';
import { toConversation } from '../../../src-main/data/sft/formats';
import { chatmlRenderer } from '../../../src-main/data/sft/chatml';

describe('SFT formats', () => {
  it('normalizes OpenAI, ShareGPT and Alpaca records', () => {
    expect(toConversation({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: [{ type: 'text', text: 'Hello' }] }] }))
      .toEqual({ format: 'openai', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }] });
    expect(toConversation({ conversations: [{ from: 'human', value: 'Q' }, { from: 'gpt', value: 'A' }], system: 'S' }))
      .toEqual({ format: 'sharegpt', messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Q' }, { role: 'assistant', content: 'A' }] });
    expect(toConversation({ instruction: 'Translate', input: 'Holz', output: 'wood' }))
      .toEqual({ format: 'alpaca', messages: [{ role: 'user', content: 'Translate\n\nHolz' }, { role: 'assistant', content: 'wood' }] });
  });
  it('explains what is wrong with a record', () => {
    expect(toConversation([1])).toEqual({ error: 'record is not a JSON object' });
    expect(toConversation({ messages: [{ role: 'bot', content: 'x' }] })).toEqual({ error: 'messages[0].role must be system, user or assistant (got "bot")' });
    expect(toConversation({ messages: [{ role: 'user', content: 'x' }] })).toEqual({ error: 'no assistant reply to learn from' });
    expect(toConversation({ conversations: [{ from: 'alien', value: 'x' }] })).toMatchObject({ error: expect.stringMatching(/from is "alien"/) });
    expect(toConversation({ prompt: 'x', completion: 'y' })).toMatchObject({ error: expect.stringMatching(/unknown record shape \(fields: prompt, completion\)/) });
  });
});

describe('ChatML reference renderer', () => {
  it('masks only assistant content and its end marker', () => {
    const enc = (t: string) => [...Buffer.from(t)];
    const render = chatmlRenderer(enc, 1000, 1001);
    const { ids, mask } = render([{ role: 'user', content: 'Q' }, { role: 'assistant', content: 'AB' }]) as { ids: number[]; mask: Uint8Array };
    const nl = 10;
    expect(ids).toEqual([1000, ...enc('user\n'), ...enc('Q'), 1001, nl, 1000, ...enc('assistant\n'), ...enc('AB'), 1001, nl]);
    const learned = ids.filter((_, i) => mask[i] === 1);
    expect(learned).toEqual([...enc('AB'), 1001]);
  });
});
