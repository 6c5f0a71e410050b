import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chatRendererForModel } from '../../../src-main/templates/for-model';
import { createChatRenderer, loadTemplateFromFolder, loadTemplateTokenizer } from '../../../src-main/templates';
import { loadTokenizerDir } from '../../../src-main/data/tokenize';
import { makeTokenizerDir, tmp } from '../data/helpers';

const TINY = join(import.meta.dirname, '../../../resources/models/tiny-default');
const CHAT = [{ role: 'user' as const, content: 'Which gouge?' }, { role: 'assistant' as const, content: 'A bowl gouge.' }];

describe('chatRendererForModel (SFT preparation)', () => {
  it("uses the model's own chat template", async () => {
    const r = chatRendererForModel(TINY, await loadTokenizerDir(TINY));
    expect(r.origin).toMatch(/tokenizer_config\.json|chat_template\.jinja/);
    expect(r.warning).toBeUndefined();
    const want = await createChatRenderer(loadTemplateFromFolder(TINY), loadTemplateTokenizer(TINY))(CHAT);
    const got = await r.renderer(CHAT);
    expect(Array.from(got.ids)).toEqual(Array.from(want.ids));
    expect(Array.from(got.mask)).toEqual(Array.from(want.mask));
    expect(Array.from(got.mask).some((m) => m === 1)).toBe(true);
  });

  it('falls back to ChatML with a warning for a model without a template', async () => {
    const dir = makeTokenizerDir(tmp());
    const r = chatRendererForModel(dir, await loadTokenizerDir(dir));
    expect(r.origin).toBe('ChatML (built in)');
    expect(r.warning).toMatch(/no chat template.*ChatML/);
    const got = await r.renderer(CHAT);
    expect(got.ids.length).toBeGreaterThan(10);
    expect(Array.from(got.mask).filter((m) => m === 1).length).toBeGreaterThan(0);
  });
});
