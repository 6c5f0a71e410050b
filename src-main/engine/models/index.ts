export * from './config';
export * from './layout';
export * from './registry';
export * from './validate';
export * from './tokenizer-files';
export * from './tiny';
export * from './describe';
export { buildTinyTokenizer, CHATML_TEMPLATE, SPECIAL_TOKENS } from './tiny-tokenizer';
