/** Shared loading of the jinja2 fixtures (test/oracle/templates/fixtures.json) and their templates. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ChatMessage } from '../../../src-main/templates/render';

export const ORACLE = join(__dirname, '..', '..', 'oracle', 'templates');
export const TOKENIZERS = join(ORACLE, 'tokenizers');
export const RESOURCES = join(__dirname, '..', '..', '..', 'resources', 'templates');

export interface FixtureCase {
  template: string;
  source: string;
  conversation: string;
  bos_token: string;
  eos_token: string;
  tools: boolean;
  kwargs: { add_generation_prompt: boolean; [k: string]: unknown };
  output?: string;
  generation?: Array<[number, number]>;
  error?: string;
  errorType?: string;
}

export interface Fixtures {
  jinja2: string;
  now: string;
  cases: FixtureCase[];
  probes: Array<{ name: string; template: string; variables: Record<string, unknown>; output?: string; error?: string }>;
  syntaxErrors: Array<{ template: string; line: number | null; message?: string }>;
}

export const fixtures = JSON.parse(readFileSync(join(ORACLE, 'fixtures.json'), 'utf8')) as Fixtures;

export const conversations = JSON.parse(readFileSync(join(ORACLE, 'conversations.json'), 'utf8')) as {
  tools: unknown[];
  conversations: Array<{ id: string; tools?: boolean; messages: ChatMessage[] }>;
};

export function conversation(id: string): { messages: ChatMessage[]; tools?: unknown[] } {
  const c = conversations.conversations.find((x) => x.id === id);
  if (!c) throw new Error(`no conversation ${id}`);
  return c.tools ? { messages: c.messages, tools: conversations.tools } : { messages: c.messages };
}

/** "builtin:NAME" or "extra:FILE" -> template source. */
export function templateSource(ref: string): string {
  const [kind, name] = ref.split(':') as [string, string];
  if (kind === 'extra') return readFileSync(join(ORACLE, 'extra', name), 'utf8');
  const index = JSON.parse(readFileSync(join(RESOURCES, 'index.json'), 'utf8')) as { templates: Array<{ name: string; file: string }> };
  const meta = index.templates.find((t) => t.name === name);
  if (!meta) throw new Error(`no builtin ${name}`);
  return readFileSync(join(RESOURCES, meta.file), 'utf8');
}

export const NOW = new Date(fixtures.now);
