/** The tokenizer subsystem: load/encode, domain training, merge into the base, measure, embedding init. */
export { LatheTokenizer, isByteToken, type LatheEncoding, type TokenizerKind, type EncodeOptions } from './tokenizer';
export { parseTokenizerJson, parseTokenizerConfig, type TokenizerJson, type TokenizerConfigJson } from './json';
export { trainDomainCandidates, countWords, type Candidate, type TrainResult, type TrainOptions, type SkippedCandidate } from './train';
export { extendTokenizer, writeExtendedTokenizer, readExtensionManifest, EXTENSION_MANIFEST, type ExtensionManifest, type NewToken,
  type ExtendResult } from './extend';
export { compareTokenizers, type TokenizerComparison, type SetComparison, type TextStats } from './compare';
export { resizeEmbeddings, type EmbeddingInitMode, type NewTokenRows } from './embeddings';
export { asDataTokenizer } from './adapter';
export { displayToken } from './display';
export { trainDomainTokenizer, extendTokenizerDir, compareTokenizerDirs, readCandidates, corpusTexts, readTexts } from './service';
