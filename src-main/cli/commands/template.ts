/**
 * `lathe template list|render|inspect|lint`: thin wrappers over src-main/templates.
 * The template comes from --model DIR (its chat template), --template FILE (.jinja or a
 * tokenizer_config.json) or --builtin NAME; the conversation from a JSON file (a list of messages, or
 * { messages, tools?, documents?, ...template arguments }).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CliCommand, CliContext } from '../types';
import { UserError } from '../../util/progress';
import {
  compileTemplate,
  diffTemplates,
  inspectConversation,
  lintTemplate,
  listBuiltins,
  loadBuiltin,
  loadTemplateFile,
  loadTemplateFromFolder,
  loadTemplateTokenizer,
  type ChatTemplate,
  type ConversationInput,
  type TemplateTokenizer,
} from '../../templates';

function flagString(ctx: CliContext, name: string): string | undefined {
  const v = ctx.flags[name];
  if (v === undefined || v === false) return undefined;
  if (v === true) throw new UserError('cli-flag', `--${name} needs a value.`, `Write --${name} VALUE.`);
  return Array.isArray(v) ? v[v.length - 1] : v;
}

/** A yes/no flag. The shared parser gives a bare flag's following word to it; hand such a word back. */
function flagBool(ctx: CliContext, name: string): boolean {
  const v = ctx.flags[name];
  if (v === undefined || v === false) return false;
  if (v === true) return true;
  const s = Array.isArray(v) ? v[v.length - 1]! : v;
  if (['true', '1', 'yes'].includes(s.toLowerCase())) return true;
  if (['false', '0', 'no'].includes(s.toLowerCase())) return false;
  ctx.args.push(s);
  return true;
}

const SOURCE_USAGE = `  Template: --model DIR (tokenizer_config.json / chat_template.jinja) | --template FILE | --builtin NAME
            [--name NAME] picks one of a model's named templates (default; tool_use when tools are given)
  Tokenizer: --tokenizer DIR (default: the --model folder)
  Arguments: --kwargs '{"enable_thinking": false}'  --now 2026-01-31T12:00:00Z (strftime_now's clock)`;

function readConversation(path: string | undefined): ConversationInput | undefined {
  if (!path) return undefined;
  if (!existsSync(path)) throw new UserError('cli-usage', `No conversation file at ${path}.`, 'Give a JSON file: [{"role": "user", "content": "..."}, ...].');
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError('cli-usage', `${path} is not valid JSON: ${(e as Error).message}`, 'Fix the JSON (a list of {role, content} messages).');
  }
  if (Array.isArray(data)) return { messages: data as ConversationInput['messages'] };
  const obj = data as Record<string, unknown>;
  if (!obj || !Array.isArray(obj.messages)) {
    throw new UserError('cli-usage', `${path} holds neither a list of messages nor an object with "messages".`,
      'Write [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}].');
  }
  const { messages, tools, documents, ...extra } = obj;
  const conv: ConversationInput = { messages: messages as ConversationInput['messages'] };
  if (Array.isArray(tools)) conv.tools = tools;
  if (Array.isArray(documents)) conv.documents = documents;
  if (Object.keys(extra).length) conv.extra = extra;
  return conv;
}

function withKwargs(ctx: CliContext, conv: ConversationInput): ConversationInput {
  const raw = flagString(ctx, 'kwargs');
  if (!raw) return conv;
  let kw: unknown;
  try {
    kw = JSON.parse(raw);
  } catch (e) {
    throw new UserError('cli-usage', `--kwargs is not valid JSON: ${(e as Error).message}`, `Example: --kwargs '{"enable_thinking": false}'`);
  }
  return { ...conv, extra: { ...(conv.extra ?? {}), ...(kw as Record<string, unknown>) } };
}

function loadTemplateFromFlags(ctx: CliContext, hasTools: boolean, prefix = ''): ChatTemplate {
  const model = flagString(ctx, prefix + 'model');
  const file = flagString(ctx, prefix + 'template');
  const builtin = flagString(ctx, prefix + 'builtin');
  const given = [model, file, builtin].filter(Boolean).length;
  if (given !== 1) {
    throw new UserError('cli-usage', `Give exactly one of --${prefix}model DIR, --${prefix}template FILE or --${prefix}builtin NAME (got ${given}).`,
      `Built-ins: ${listBuiltins().map((b) => b.name).join(', ')}.`);
  }
  if (model) {
    const name = flagString(ctx, 'name');
    return loadTemplateFromFolder(model, name ? { name, hasTools } : { hasTools });
  }
  if (file) {
    // Special tokens for a bare file come from the tokenizer folder when there is one.
    const tokDir = flagString(ctx, 'tokenizer');
    const cfg = tokDir ? join(tokDir, 'tokenizer_config.json') : undefined;
    const t = loadTemplateFile(file);
    if (cfg && existsSync(cfg) && Object.keys(t.specialTokens).length === 0) {
      try {
        t.specialTokens = loadTemplateFromFolder(tokDir!).specialTokens;
      } catch {
        // A tokenizer folder without a chat template still has its special tokens in the config.
        t.specialTokens = loadTemplateFile(cfg).specialTokens;
      }
    }
    return t;
  }
  return loadBuiltin(builtin!);
}

function loadTokenizerFromFlags(ctx: CliContext, required: boolean): TemplateTokenizer | undefined {
  const dir = flagString(ctx, 'tokenizer') ?? flagString(ctx, 'model');
  if (!dir) {
    if (required) throw new UserError('cli-usage', 'This command needs a tokenizer.', 'Add --tokenizer DIR (a folder with tokenizer.json) or use --model DIR.');
    return undefined;
  }
  if (!existsSync(join(dir, 'tokenizer.json'))) {
    if (required || flagString(ctx, 'tokenizer')) loadTemplateTokenizer(dir); // throws the plain-words error
    return undefined;
  }
  return loadTemplateTokenizer(dir);
}

function nowFlag(ctx: CliContext): Date | undefined {
  const s = flagString(ctx, 'now');
  if (!s) return undefined;
  const d = new Date(s);
  if (Number.isNaN(d.getTime())) throw new UserError('cli-usage', `--now "${s}" is not a date.`, 'Example: --now 2026-01-31T12:00:00Z');
  return d;
}

function needConversation(ctx: CliContext): ConversationInput {
  const conv = readConversation(ctx.args[0]);
  if (!conv) throw new UserError('cli-usage', 'Give a conversation JSON file.', 'Example: lathe template render chat.json --builtin chatml');
  return withKwargs(ctx, conv);
}

/** Shows trained text in [brackets] and special tokens as they are. */
function markedText(text: string, spans: Array<{ start: number; end: number }>): string {
  let out = '';
  let last = 0;
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    out += text.slice(last, s.start) + '\u27e6' + text.slice(s.start, s.end) + '\u27e7';
    last = s.end;
  }
  return out + text.slice(last);
}

export const commands: CliCommand[] = [
  {
    path: ['template', 'list'],
    summary: 'List the built-in chat templates',
    usage: 'lathe template list [--json]',
    async run(ctx) {
      const all = listBuiltins();
      if (!ctx.json) for (const b of all) ctx.out(`${b.name.padEnd(10)} ${b.description}`);
      return all;
    },
  },
  {
    path: ['template', 'render'],
    summary: 'Render a conversation with a chat template, exactly as transformers would',
    usage: `lathe template render CONVERSATION.json [--generation-prompt] [--json]\n${SOURCE_USAGE}`,
    async run(ctx) {
      const gen = flagBool(ctx, 'generation-prompt');
      const conv = needConversation(ctx);
      const tpl = loadTemplateFromFlags(ctx, Boolean(conv.tools?.length));
      const now = nowFlag(ctx);
      const r = compileTemplate(tpl.source, tpl.origin).render({
        messages: conv.messages, tools: conv.tools ?? null, documents: conv.documents ?? null, extra: conv.extra,
        specialTokens: tpl.specialTokens, addGenerationPrompt: gen, ...(now ? { now } : {}),
      });
      if (!ctx.json) ctx.out(r.text);
      return { origin: tpl.origin, text: r.text, generationSpans: r.generationSpans };
    },
  },
  {
    path: ['template', 'inspect'],
    summary: 'Show the tokens of a rendered conversation and which ones are trained',
    usage: `lathe template inspect CONVERSATION.json [--compare-builtin NAME | --compare-template FILE | --compare-model DIR] [--json]\n${SOURCE_USAGE}`,
    async run(ctx) {
      const conv = needConversation(ctx);
      const tpl = loadTemplateFromFlags(ctx, Boolean(conv.tools?.length));
      const tok = loadTokenizerFromFlags(ctx, false);
      const now = nowFlag(ctx);
      const insp = await inspectConversation(tpl, conv, tok, now ? { now } : {});
      const compare = ['compare-builtin', 'compare-template', 'compare-model'].some((f) => flagString(ctx, f));
      const diff = compare
        ? await diffTemplates(tpl, loadTemplateFromFlags(ctx, Boolean(conv.tools?.length), 'compare-'), conv, tok, now ? { now } : {})
        : undefined;
      if (!ctx.json) {
        ctx.out(`Template: ${tpl.origin}   mask: ${insp.maskMethod}${insp.counts ? `   tokens: ${insp.counts.tokens}, trained: ${insp.counts.trained}` : ''}`);
        ctx.out('--- rendered (trained text in \u27e6 \u27e7) ---');
        ctx.out(markedText(insp.text, insp.spans));
        ctx.out(`--- generation prompt appends: ${JSON.stringify(insp.generationPrompt.marker)}`);
        if (insp.tokens) {
          ctx.out('--- tokens (id token, * special, + trained) ---');
          ctx.out(insp.tokens.map((t) => `${t.id}:${JSON.stringify(t.token)}${t.special ? '*' : ''}${t.train ? '+' : ''}`).join(' '));
        }
        for (const w of insp.warnings) ctx.err(`warning: ${w}`);
        if (diff) {
          ctx.out(`--- diff ${diff.a.origin} -> ${diff.b.origin}${diff.identical ? ' (identical)' : ''} ---`);
          ctx.out(diff.text.map((c) => (c.op === 'equal' ? c.text : c.op === 'delete' ? `[-${c.text}-]` : `{+${c.text}+}`)).join(''));
          if (diff.tokens) ctx.out(`tokens: ${diff.a.tokens} -> ${diff.b.tokens}`);
        }
      }
      return { origin: tpl.origin, ...insp, ...(diff ? { diff } : {}) };
    },
  },
  {
    path: ['template', 'lint'],
    summary: 'Check a chat template (and tokenizer) for problems that spoil fine-tuning',
    usage: `lathe template lint [CONVERSATION.json] [--json]\n${SOURCE_USAGE}\n  Without a conversation a short system/user/assistant probe is used.`,
    async run(ctx) {
      const conv = readConversation(ctx.args[0]);
      const tpl = loadTemplateFromFlags(ctx, Boolean(conv?.tools?.length));
      const tok = loadTokenizerFromFlags(ctx, false);
      const now = nowFlag(ctx);
      const issues = await lintTemplate(tpl, tok, conv ? withKwargs(ctx, conv) : undefined, now ? { now } : {});
      if (!ctx.json) {
        if (issues.length === 0) ctx.out(`No problems found in ${tpl.origin}${tok ? '' : ' (give --tokenizer DIR to check tokens too)'}.`);
        for (const i of issues) ctx.out(`${i.severity.toUpperCase()} [${i.code}] ${i.message}\n  Fix: ${i.fix}`);
      }
      return { origin: tpl.origin, issues, errors: issues.filter((i) => i.severity === 'error').length };
    },
  },
];
