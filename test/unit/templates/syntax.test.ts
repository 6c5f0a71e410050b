import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { applyTemplate } from '../../../src-main/templates/apply';
import { loadTemplateFromFolder } from '../../../src-main/templates/load';
import { lintTemplate } from '../../../src-main/templates/lint';
import { compileTemplate, TemplateSyntaxError } from '../../../src-main/templates/render';
import { loadTemplateTokenizer } from '../../../src-main/templates/tokenizer';
import { UserError } from '../../../src-main/util/progress';
import { tempDir } from '../../helpers/services';
import { fixtures, TOKENIZERS } from './fixtures';
import { previewTemplate } from '../../../src-main/services/templates';

function syntaxError(source: string, origin?: string): TemplateSyntaxError {
  try {
    compileTemplate(source, origin);
  } catch (e) {
    expect(e).toBeInstanceOf(TemplateSyntaxError);
    return e as TemplateSyntaxError;
  }
  throw new Error('no syntax error');
}

describe('broken chat templates', () => {
  it.each(fixtures.syntaxErrors.map((x) => [x.template.split('\n')[0]!, x] as const))('names the line jinja2 names: %s', (_n, x) => {
    const e = syntaxError(x.template, 'chat_template.jinja');
    expect(e.line).toBe(x.line);
    expect(e.message).toMatch(new RegExp(`^The chat template in chat_template\\.jinja has a syntax error at line ${x.line} of the template, `));
  });

  it('is one UserError naming the file and line, from applyTemplate and lint, with the reason said once', async () => {
    const dir = join(tempDir(), 'model');
    mkdirSync(dir);
    const cfg = { chat_template: "{% for m in messages %}\n{{ m.content }}\n{% if m.role == 'user' %}\nx\n{% endfor %}", eos_token: '<|im_end|>' };
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    const tpl = loadTemplateFromFolder(dir);
    const tok = loadTemplateTokenizer(join(TOKENIZERS, 'chatml'));
    const err = await applyTemplate([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }], tpl, tok).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    const u = err as UserError;
    expect(u.code).toBe('template-syntax');
    expect(u.message).toBe('The chat template in tokenizer_config.json has a syntax error at line 5 of the template, {% endfor %}: {% endfor %} found where {% endif %} was expected (the {% if %} on line 3 is still open).');
    expect(u.message.match(/endif/g)!.length).toBe(1);
    expect(u.hint).toMatch(/tokenizer_config\.json at line 5/);
    const issues = await lintTemplate(tpl);
    expect(issues).toHaveLength(1);
    expect(issues[0]!.message).toBe(u.message);
  });

  it('the preview service says it once (error, not also a lint finding), with the line', async () => {
    const p = await previewTemplate({ source: "{% for m in messages %}\n{{ m.content }\n{% endfor %}", specialTokens: {}, modelDir: null, messages: [{ role: 'user', content: 'hi' }] });
    expect(p.error).toBe('The chat template in the editor has a syntax error at line 2 of the template, {{ m.content }: "{{" is never closed with "}}".');
    expect(p.lint.filter((i) => i.message === p.error)).toEqual([]);
  });
});
