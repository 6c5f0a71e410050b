/** Text generation with a KV cache (graphs, host sampling, streaming) and the services built on it. */
export { buildStepGraph, ropeRows, type StepGraph, type StepGraphShape } from './graph';
export { Sampler, argmax, checkSampling, DEFAULT_SAMPLING, type SamplingOptions } from './sampling';
export { Generator, readGenerationDefaults, type GeneratorOptions, type GenerateOptions, type GenerateResult, type TokenEvent, type FinishReason } from './generator';
export { chat, compareChat, completeText, chatFormat, renderChatPrompt, type ChatOptions, type ChatReply, type ChatFormat } from './chat';
export { SampleRunner, TrainingSamples, readRunSamples, sampleGenerations, type StepSamples, type SampleOptions, type SampleGeneration, type SampleGenerationsResult } from './samples';
