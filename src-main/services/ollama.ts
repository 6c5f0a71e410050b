/**
 * Registering a GGUF export with Ollama from the app (issue 19 item 3): the binary is found by PATH lookup
 * (export/gguf/modelfile.ts findOllama; never a shell), and the command run is exactly the one the Export page
 * shows (`ollama create NAME -f DIR/Modelfile`).
 */
import { UserError } from '../util/progress';
import { findOllama, ollamaCreateCommand, ollamaName, registerWithOllama } from '../export/gguf/modelfile';

export function ollamaBinary(env: NodeJS.ProcessEnv = process.env): string | null {
  return findOllama(env);
}

export async function registerOllama(dir: string, name: string, env: NodeJS.ProcessEnv = process.env): Promise<{ name: string; command: string; output: string }> {
  const binary = findOllama(env);
  const n = ollamaName(name);
  if (!binary) throw new UserError('ollama.missing', 'Ollama is not installed (no `ollama` on the PATH).', 'Install Ollama from ollama.com, or copy the shown `ollama create` command and run it later.');
  const done = await registerWithOllama(dir, n, { binary });
  return { name: done.name, command: ollamaCreateCommand(dir, n), output: done.output };
}
