/**
 * Ollama: a Modelfile next to the GGUF (FROM, the chat template in Ollama's Go-template syntax, stop
 * parameters) and the `ollama create` command; registration when an `ollama` binary is on the PATH.
 *
 * Templates: Jinja chat templates cannot be translated in general, so we recognise the families Lathe's
 * models use by their markers — ChatML (<|im_start|>, SmolLM2/Qwen/the tiny models), Llama 3
 * (<|start_header_id|>), Llama 2 / Mistral ([INST]) — and write Ollama's template for each. An unknown template
 * gets a generic "role: content" template and a warning; a model without a chat template gets none (raw prompt).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../util/progress';

export interface OllamaTemplate {
  family: 'chatml' | 'llama3' | 'llama2' | 'generic' | 'none';
  template: string | null;
  stops: string[];
  warning: string | null;
}

const CHATML = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`;

const LLAMA3 = `{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

`;

const LLAMA2 = `{{- range $i, $m := .Messages }}
{{- if eq $m.Role "user" }}[INST] {{ $m.Content }} [/INST]
{{- else if eq $m.Role "assistant" }} {{ $m.Content }}</s>
{{- else if eq $m.Role "system" }}<<SYS>>
{{ $m.Content }}
<</SYS>>

{{ end }}
{{- end }}`;

const GENERIC = `{{- range .Messages }}{{ .Role }}: {{ .Content }}
{{ end }}assistant: `;

/** Ollama's template for a Jinja chat template (by family markers). */
export function ollamaTemplate(jinja: string | null, eosText: string | null): OllamaTemplate {
  if (!jinja) return { family: 'none', template: null, stops: eosText ? [eosText] : [], warning: null };
  if (jinja.includes('<|im_start|>')) return { family: 'chatml', template: CHATML, stops: ['<|im_start|>', '<|im_end|>'], warning: null };
  if (jinja.includes('<|start_header_id|>')) return { family: 'llama3', template: LLAMA3, stops: ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'], warning: null };
  if (jinja.includes('[INST]')) return { family: 'llama2', template: LLAMA2, stops: ['[INST]', '[/INST]'], warning: null };
  return {
    family: 'generic', template: GENERIC, stops: eosText ? [eosText] : [],
    warning: 'The chat template is none Lathe recognises (ChatML, Llama 3, Llama 2/Mistral); the Modelfile uses a generic "role: content" template. Check it before sharing the model.',
  };
}

function quote(s: string): string {
  return JSON.stringify(s);
}

/** The Modelfile text for a GGUF file in the same folder. */
export function modelfileText(ggufName: string, t: OllamaTemplate): string {
  const lines = [`# Made by Lathe. Register with: ollama create NAME -f Modelfile`, `FROM ./${ggufName}`];
  if (t.template !== null) {
    if (t.template.includes('"""')) throw new Error('template contains """');
    lines.push(`TEMPLATE """${t.template}"""`);
  }
  for (const s of t.stops) lines.push(`PARAMETER stop ${quote(s)}`);
  return lines.join('\n') + '\n';
}

/** An Ollama model name from free text: lowercase letters, digits, '.', '-' and '_'. */
export function ollamaName(name: string): string {
  const n = name.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[-._]+|[-._]+$/g, '');
  return n || 'lathe-model';
}

export function ollamaCreateCommand(dir: string, name: string): string {
  const q = (s: string): string => (/^[A-Za-z0-9._/:-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  return `ollama create ${q(name)} -f ${q(path.join(dir, 'Modelfile'))}`;
}

/** The `ollama` binary on the PATH, or null. */
export function findOllama(env: NodeJS.ProcessEnv = process.env): string | null {
  const exts = process.platform === 'win32' ? ['.exe', '.cmd', ''] : [''];
  for (const dir of (env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    for (const e of exts) {
      const f = path.join(dir, `ollama${e}`);
      if (existsSync(f)) return f;
    }
  }
  return null;
}

/** Runs `ollama create NAME -f Modelfile` in the export folder. */
export async function registerWithOllama(dir: string, name: string, opts: { binary?: string; timeoutMs?: number } = {}): Promise<{ name: string; output: string }> {
  const bin = opts.binary ?? findOllama();
  if (!bin) throw new UserError('ollama.missing', 'Ollama is not installed (no `ollama` on the PATH).', 'Install Ollama from ollama.com, or run the shown `ollama create` command later.');
  if (!existsSync(path.join(dir, 'Modelfile'))) throw new UserError('ollama.no-modelfile', `${dir} has no Modelfile.`, 'Export the model as GGUF first.');
  const n = ollamaName(name);
  return new Promise((resolve, reject) => {
    execFile(bin, ['create', n, '-f', path.join(dir, 'Modelfile')], { cwd: dir, timeout: opts.timeoutMs ?? 600_000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new UserError('ollama.create-failed', `ollama create failed: ${(stderr || err.message).trim().slice(-400)}`, 'Is the Ollama service running (`ollama serve`)? Then try again.'));
      } else resolve({ name: n, output: `${stdout}${stderr}`.trim() });
    });
  });
}
