/** The tiny architectures `createTinyModel` writes (its own module, so the CLI's help lists them without loading the engine). */
export const TINY_ARCHS = [
  'llama', 'llama3', 'tinyllama', 'smollm2', 'mistral', 'qwen2', 'qwen3', 'smollm3', 'gpt2',
  'granite', 'mistral-nemo', 'olmo2', 'gemma2', 'gemma3', 'phi3', 'phi4mini',
] as const;
export type TinyArch = (typeof TINY_ARCHS)[number];
