/**
 * Where a chat template comes from: a model folder (chat_template.jinja, or chat_template in
 * tokenizer_config.json as a string or a named list), a .jinja file, or one of our built-ins.
 * The special tokens transformers hands the template (bos_token, eos_token, ...) come along.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/progress';

export interface BuiltinMeta {
  name: string;
  file: string;
  description: string;
  /** The BOS the family's tokenizer uses (null: none). */
  bosToken: string | null;
  eosToken: string;
  /** The template writes BOS itself: the tokenizer must not add another. */
  templateAddsBos: boolean;
  /** The token that closes an assistant turn; the model must learn to produce it. */
  endOfTurn: string;
  /** What add_generation_prompt appends. */
  generationPrompt: string;
  specialTokens: string[];
  roles: string[];
}

export interface ChatTemplate {
  source: string;
  /** Human description of where it came from, e.g. "tokenizer_config.json (default)" or "built-in llama3". */
  origin: string;
  /** Strings transformers passes as template variables: bos_token, eos_token, unk_token, pad_token. */
  specialTokens: Record<string, string>;
  builtin?: BuiltinMeta;
}

const SPECIAL_KEYS = ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const;

/** tokenizer_config.json writes special tokens as strings or AddedToken dicts ({"content": "<s>", ...}). */
export function specialTokenString(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

export function specialTokensFromConfig(config: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of SPECIAL_KEYS) {
    const s = specialTokenString(config[k]);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

export interface SelectOptions {
  /** A name from a named template list; default 'default' ('tool_use' when tools are given and it exists). */
  name?: string;
  hasTools?: boolean;
}

/** Picks one template from tokenizer_config's chat_template (a string or [{name, template}]). */
export function selectTemplate(chatTemplate: unknown, opts: SelectOptions = {}, where = 'tokenizer_config.json'): { source: string; name?: string } {
  if (typeof chatTemplate === 'string') {
    if (opts.name && opts.name !== 'default') {
      throw new UserError('template-name-unknown', `${where} has a single chat template, not one named "${opts.name}".`,
        'Leave out the template name to use the only one.');
    }
    return { source: chatTemplate };
  }
  if (Array.isArray(chatTemplate)) {
    const named = new Map<string, string>();
    for (const item of chatTemplate) {
      const it = item as { name?: unknown; template?: unknown };
      if (typeof it?.name === 'string' && typeof it.template === 'string') named.set(it.name, it.template);
    }
    let name = opts.name;
    if (!name) name = opts.hasTools && named.has('tool_use') ? 'tool_use' : 'default';
    const source = named.get(name);
    if (source === undefined) {
      throw new UserError('template-name-unknown',
        `${where} has chat templates named ${[...named.keys()].map((n) => `"${n}"`).join(', ') || '(none)'}, not "${name}".`,
        'Pick one of those names.');
    }
    return { source, name };
  }
  throw new UserError('template-missing', `${where} has no chat_template.`,
    'This looks like a base model. Pick a built-in template (e.g. --builtin chatml) that matches how you want to format conversations.');
}

function readJson(path: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError('template-bad-json', `${path} is not valid JSON: ${(e as Error).message}`,
      'Download the file again from the model page.');
  }
}

/**
 * A model folder's chat template. chat_template.jinja wins over tokenizer_config.json (transformers saves
 * it there since 4.43 and reads it first); additional_chat_templates/NAME.jinja supply named templates.
 */
export function loadTemplateFromFolder(dir: string, opts: SelectOptions = {}): ChatTemplate {
  const cfgPath = join(dir, 'tokenizer_config.json');
  const config = existsSync(cfgPath) ? readJson(cfgPath) : {};
  const specialTokens = specialTokensFromConfig(config);
  const stmPath = join(dir, 'special_tokens_map.json');
  if (existsSync(stmPath)) {
    const stm = specialTokensFromConfig(readJson(stmPath));
    for (const [k, v] of Object.entries(stm)) specialTokens[k] ??= v;
  }
  const extraDir = join(dir, 'additional_chat_templates');
  if (opts.name && opts.name !== 'default' && existsSync(join(extraDir, `${opts.name}.jinja`))) {
    return { source: readFileSync(join(extraDir, `${opts.name}.jinja`), 'utf8'), origin: `additional_chat_templates/${opts.name}.jinja`, specialTokens };
  }
  const jinjaPath = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaPath) && (!opts.name || opts.name === 'default') && !(opts.hasTools && existsSync(join(extraDir, 'tool_use.jinja')))) {
    return { source: readFileSync(jinjaPath, 'utf8'), origin: 'chat_template.jinja', specialTokens };
  }
  if (opts.hasTools && !opts.name && existsSync(join(extraDir, 'tool_use.jinja'))) {
    return { source: readFileSync(join(extraDir, 'tool_use.jinja'), 'utf8'), origin: 'additional_chat_templates/tool_use.jinja', specialTokens };
  }
  if (!existsSync(cfgPath)) {
    throw new UserError('template-missing', `No tokenizer_config.json or chat_template.jinja in ${dir}.`,
      'Point Lathe at the model folder, or pick a built-in template (--builtin NAME).');
  }
  const picked = selectTemplate(config.chat_template, opts, cfgPath);
  return {
    source: picked.source,
    origin: picked.name ? `tokenizer_config.json (${picked.name})` : 'tokenizer_config.json',
    specialTokens,
  };
}

/** A bare template file; special tokens come from the caller (or a tokenizer). */
export function loadTemplateFile(path: string, specialTokens: Record<string, string> = {}): ChatTemplate {
  if (!existsSync(path)) {
    throw new UserError('template-missing', `No template file at ${path}.`, 'Check the path.');
  }
  const text = readFileSync(path, 'utf8');
  if (path.endsWith('.json')) {
    // A tokenizer_config.json given directly.
    const config = readJson(path);
    return { source: selectTemplate(config.chat_template, {}, path).source, origin: basename(path), specialTokens: specialTokensFromConfig(config) };
  }
  return { source: text, origin: basename(path), specialTokens };
}

/** resources/templates, found from this file (src-main/templates) in the source tree. */
export function defaultBuiltinDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, '..', '..', 'resources', 'templates'), join(here, '..', 'resources', 'templates'), join(process.cwd(), 'resources', 'templates')]) {
    if (existsSync(join(candidate, 'index.json'))) return candidate;
  }
  throw new UserError('template-builtins-missing', 'The built-in templates (resources/templates) were not found.',
    'Reinstall Lathe; the resources folder is part of the app.');
}

export function listBuiltins(dir = defaultBuiltinDir()): BuiltinMeta[] {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { templates: BuiltinMeta[] };
  return index.templates;
}

export function loadBuiltin(name: string, dir = defaultBuiltinDir()): ChatTemplate {
  const all = listBuiltins(dir);
  const key = name.toLowerCase().replace(/[\s_-]/g, '');
  const meta = all.find((m) => m.name.replace(/[\s_.-]/g, '') === key.replace(/\./g, ''));
  if (!meta) {
    throw new UserError('template-builtin-unknown', `There is no built-in template called "${name}".`,
      `Pick one of: ${all.map((m) => m.name).join(', ')}.`);
  }
  const specialTokens: Record<string, string> = { eos_token: meta.eosToken };
  if (meta.bosToken) specialTokens.bos_token = meta.bosToken;
  // Sanity: every listed file exists (index.json and the folder ship together).
  if (!readdirSync(dir).includes(meta.file)) {
    throw new UserError('template-builtins-missing', `Built-in template file ${meta.file} is missing.`, 'Reinstall Lathe.');
  }
  return { source: readFileSync(join(dir, meta.file), 'utf8'), origin: `built-in ${meta.name}`, specialTokens, builtin: meta };
}
