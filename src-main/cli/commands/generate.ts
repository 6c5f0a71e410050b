/** `lathe generate`, `lathe chat`, `lathe eval report`: thin wrappers over engine/generate and eval/report. */
import type { CliCommand, CliContext } from '../types';
import { flagList, flagNumber, flagString } from '../args';
import type { ChatOptions } from '../../engine/generate/chat';

// Heavy modules (onnxruntime-node, tokenizers) load when a command runs, so `lathe help` stays quick.
const chatModule = () => import('../../engine/generate/chat');
import type { GenerateResult } from '../../engine/generate/generator';
import type { ChatMessage } from '../../templates';
import { UserError } from '../../util/progress';
import { closingGpu, resolveEpFlag } from '../gpu';

function required(ctx: CliContext, name: string): string {
  const v = flagString(ctx.flags, name);
  if (!v) throw new UserError('cli.missing', `Missing --${name}.`, 'Run `lathe help <command>` for the options.');
  return v;
}

/** Sampling and stopping flags shared by generate and chat. */
async function generationFlags(ctx: CliContext): Promise<ChatOptions> {
  const o: ChatOptions = { ep: await resolveEpFlag(ctx), signal: ctx.signal };
  const num = (n: string) => flagNumber(ctx.flags, n);
  const set = <K extends keyof ChatOptions>(k: K, v: ChatOptions[K] | undefined) => { if (v !== undefined) o[k] = v; };
  set('maxTokens', num('max-tokens'));
  set('temperature', num('temperature'));
  set('topK', num('top-k'));
  set('topP', num('top-p'));
  set('repetitionPenalty', num('repetition-penalty'));
  set('seed', num('seed'));
  if (ctx.flags['greedy'] === true) o.greedy = true;
  const stops = flagList(ctx.flags, 'stop');
  if (stops.length) o.stopStrings = stops;
  set('adapter', flagString(ctx.flags, 'adapter'));
  return o;
}

const SAMPLING_USAGE = [
  '  --max-tokens N (128)   --greedy | --temperature X --top-k N --top-p X --repetition-penalty X --seed N',
  '  --stop TEXT (repeatable)   --adapter RUN_OR_CHECKPOINT_DIR   --ep auto|cpu|webgpu|cuda|gpu (auto: the GPU where one exists)',
  'Without sampling flags the model\'s generation_config.json decides (greedy when it does not ask to sample).',
].join('\n');

function summary(r: GenerateResult): string {
  const t = r.timings;
  return `[${r.ids.length} tokens, stopped: ${r.finish}; prompt ${r.promptTokens} tokens at ${Math.round(t.prefillTokensPerSecond)} tok/s, ` +
    `generation ${Math.round(t.decodeTokensPerSecond)} tok/s]`;
}

export const commands: CliCommand[] = [
  {
    path: ['generate'],
    summary: 'Continue a prompt with a model (optionally with a LoRA adapter), streaming the text',
    usage: ['lathe generate --model DIR --prompt TEXT [options] [--json]', SAMPLING_USAGE].join('\n'),
    run: async (ctx) => closingGpu(ctx, async () => {
      const prompt = flagString(ctx.flags, 'prompt') ?? ctx.args.join(' ');
      if (!prompt) throw new UserError('cli.missing', 'Missing --prompt.', 'Give the text to continue, e.g. --prompt "Once upon a time".');
      const o = await generationFlags(ctx);
      if (!ctx.json) process.stdout.write(prompt);
      const r = await (await chatModule()).completeText(required(ctx, 'model'), prompt, { ...o, onToken: ctx.json ? undefined : (ev) => process.stdout.write(ev.text) });
      if (!ctx.json) { ctx.out(''); ctx.err(summary(r)); }
      return { prompt, ...r };
    }),
  },
  {
    path: ['chat'],
    summary: 'One chat turn through the model\'s chat template; --compare answers with the base model and the adapter side by side',
    usage: [
      'lathe chat --model DIR --message TEXT [--system TEXT] [--template BUILTIN] [--adapter RUN [--compare]] [options] [--json]',
      'lathe chat --gguf FILE --message TEXT [--system TEXT] [--max-tokens N] [--temperature T] [--cpu] [--json]',
      '  --gguf FILE       chat with an exported GGUF file through llama.cpp (its own chat template; GPU when available, --cpu to avoid it)',
      SAMPLING_USAGE,
      '  --template NAME   a built-in template (chatml, llama3, ...) for models without their own',
    ].join('\n'),
    run: async (ctx) => closingGpu(ctx, async () => {
      const message = flagString(ctx.flags, 'message') ?? ctx.args.join(' ');
      if (!message) throw new UserError('cli.missing', 'Missing --message.', 'Give the user message, e.g. --message "How do I sharpen a gouge?".');
      const messages: ChatMessage[] = [];
      const system = flagString(ctx.flags, 'system');
      if (system) messages.push({ role: 'system', content: system });
      messages.push({ role: 'user', content: message });
      const gguf = flagString(ctx.flags, 'gguf');
      if (gguf) {
        const { chatWithGguf } = await import('../../export/gguf/chat');
        const r = await chatWithGguf(gguf, message, {
          system, maxTokens: flagNumber(ctx.flags, 'max-tokens'), temperature: flagNumber(ctx.flags, 'temperature'),
          gpu: ctx.flags['cpu'] === true ? false : 'auto', signal: ctx.signal, onText: ctx.json ? undefined : (t) => process.stdout.write(t),
        });
        if (!ctx.json) { ctx.out(''); ctx.err(`${r.tokens} tokens in ${r.seconds.toFixed(2)} s (llama.cpp, ${r.backend})`); }
        return r;
      }
      const o = await generationFlags(ctx);
      const template = flagString(ctx.flags, 'template');
      if (template) o.template = template;
      const model = required(ctx, 'model');
      if (ctx.flags['compare'] === true) {
        if (!o.adapter) throw new UserError('cli.missing', '--compare needs --adapter (the fine-tuned run to compare with the base model).');
        const { adapter, ...rest } = o;
        const r = await (await chatModule()).compareChat(model, adapter, messages, rest);
        if (!ctx.json) {
          ctx.out(`Base model:\n${r.base.text.trim()}\n\nFine-tuned:\n${r.tuned.text.trim()}`);
          ctx.err(`base ${summary(r.base)}\ntuned ${summary(r.tuned)}`);
        }
        return r;
      }
      const r = await (await chatModule()).chat(model, messages, { ...o, onToken: ctx.json ? undefined : (ev) => process.stdout.write(ev.text) });
      if (!ctx.json) { ctx.out(''); ctx.err(summary(r)); }
      return r;
    }),
  },
  {
    path: ['eval', 'report'],
    summary: 'Evaluation report of a finished run: perplexity, generations and BLEU/ROUGE-L before and after',
    usage: [
      'lathe eval report --run RUN_DIR [--checkpoint DIR] [--general DATASET_DIR] [--eval-set FILE.jsonl] [--prompt TEXT ...]',
      '                  [--max-tokens N (64)] [--max-examples N (100)] [--max-blocks N (64)] [--ep auto|cpu|webgpu|cuda|gpu] [--json]',
      'Writes RUN_DIR/eval-report.json and eval-report.md. --eval-set lines: {"prompt","reference"} or {"messages": [..., assistant reply]}.',
    ].join('\n'),
    run: async (ctx) => closingGpu(ctx, async () => {
      const prompts = flagList(ctx.flags, 'prompt');
      const r = await (await import('../../eval/report')).evaluationReport({
        run: required(ctx, 'run'), checkpoint: flagString(ctx.flags, 'checkpoint'), general: flagString(ctx.flags, 'general'),
        sftEval: flagString(ctx.flags, 'eval-set'), prompts: prompts.length ? prompts : undefined,
        maxTokens: flagNumber(ctx.flags, 'max-tokens'), maxExamples: flagNumber(ctx.flags, 'max-examples'), maxBlocks: flagNumber(ctx.flags, 'max-blocks'),
        ep: await resolveEpFlag(ctx), signal: ctx.signal, onProgress: ctx.json ? undefined : (p) => { if (p.stage) ctx.err(p.stage); },
      });
      if (!ctx.json) ctx.out((await import('../../eval/report')).reportMarkdown(r));
      return r;
    }),
  },
];
