/**
 * Chat with an exported GGUF file through llama.cpp (node-llama-cpp): its chat template comes from the file
 * (tokenizer.chat_template, rendered by node-llama-cpp's Jinja support), the reply streams as it is generated.
 * On users' machines node-llama-cpp picks Vulkan/CUDA/Metal when present (gpu: 'auto').
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { UserError } from '../../util/progress';
import { getLlamaCpp, llamaThreads } from './llama-cpp';

export interface GgufChatOptions {
  system?: string;
  maxTokens?: number;
  temperature?: number;
  seed?: number;
  /** 'auto' (default): a GPU backend when one works; false: the CPU. */
  gpu?: 'auto' | false;
  onText?: (text: string) => void;
  /** Earlier turns of the conversation (before `message`), oldest first. */
  history?: Array<{ role: 'user' | 'assistant'; content: string }>;
  signal?: AbortSignal;
}

export interface GgufChatResult {
  text: string; tokens: number; seconds: number; backend: string;
  /** The reply stopped because the model's context (its longest readable text) was full. */
  contextFull?: boolean;
}

export async function chatWithGguf(file: string, message: string, o: GgufChatOptions = {}): Promise<GgufChatResult> {
  if (!existsSync(file)) throw new UserError('gguf.missing', `${file} does not exist.`, 'Pass a .gguf file written by `lathe export --format gguf`.');
  checkGgufHeader(file);
  const { LlamaChatSession } = await import('node-llama-cpp');
  const llama = await chatLlama(o.gpu ?? 'auto');
  const model = await llama.loadModel({ modelPath: file }).catch((err: unknown) => {
    throw new UserError('gguf.load-failed', `llama.cpp could not load ${file}: ${(err as Error).message}`, 'Check that it is a GGUF file (re-export it if needed).');
  });
  const context = await model.createContext({ contextSize: { max: 4096 }, threads: llama.gpu === false ? llamaThreads() : undefined });
  try {
    const session = new LlamaChatSession({ contextSequence: context.getSequence(), ...(o.system ? { systemPrompt: o.system } : {}) });
    if (o.history?.length) {
      session.setChatHistory([
        ...session.getChatHistory().filter((h) => h.type === 'system'),
        ...o.history.map((h) => (h.role === 'user' ? { type: 'user' as const, text: h.content } : { type: 'model' as const, response: [h.content] })),
      ]);
    }
    const t0 = Date.now();
    let tokens = 0, streamed = '';
    const backend = llama.gpu === false ? 'cpu' : llama.gpu;
    try {
      const text = await session.prompt(message, {
        maxTokens: o.maxTokens ?? 256, temperature: o.temperature ?? 0, seed: o.seed, signal: o.signal, stopOnAbortSignal: true,
        onTextChunk: (t) => { streamed += t; o.onText?.(t); }, onToken: (t) => { tokens += t.length; },
      });
      return { text, tokens, seconds: (Date.now() - t0) / 1000, backend };
    } catch (err) {
      // node-llama-cpp gives up when the context is full and the conversation cannot be shortened
      if (!/context shift|context size/i.test((err as Error).message ?? '')) throw err;
      if (streamed) return { text: streamed, tokens, seconds: (Date.now() - t0) / 1000, backend, contextFull: true };
      throw new UserError('gguf.contextFull', `The conversation is longer than this model can read at once (${context.contextSize} tokens).`, 'Start a new chat, or shorten the message or the instructions.');
    }
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/** A file that does not start with GGUF's magic and a known version is refused before llama.cpp opens it. */
function checkGgufHeader(file: string): void {
  const head = Buffer.alloc(8);
  let n = 0;
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    const fd = openSync(file, 'r');
    try { n = readSync(fd, head, 0, 8, 0); } finally { closeSync(fd); }
  } catch (err) {
    throw new UserError('gguf.unreadable', `${file} could not be read (${(err as Error).message}).`, 'Choose a .gguf file exported by Lathe.');
  }
  const version = head.readUInt32LE(4);
  if (n < 8 || head.toString('latin1', 0, 4) !== 'GGUF' || version < 2 || version > 3) {
    throw new UserError('gguf.notGguf', `${file} is not a GGUF file (it does not start with GGUF's header), or it is damaged.`, 'Export the model again as GGUF on the Export page, then choose the new file.');
  }
}

/**
 * llama.cpp for chat: a GPU backend when it has a real device; a Vulkan backend that lists no GPU device (a
 * software driver such as Mesa's lavapipe) is slower than the CPU backend, so the CPU is used then, as the
 * engine's own device choice does (engine/backends/onnx).
 */
async function chatLlama(gpu: 'auto' | false) {
  if (gpu === false) return getLlamaCpp(false);
  const llama = await getLlamaCpp('auto');
  if (llama.gpu !== false && (await llama.getGpuDeviceNames().catch(() => [])).length === 0) return getLlamaCpp(false);
  return llama;
}
