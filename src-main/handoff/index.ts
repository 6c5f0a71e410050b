export { createHandoff, readRunConfig, type HandoffParams, type HandoffResult } from './job';
export { importAdapter, type ImportAdapterParams, type ImportAdapterResult } from './import';
export { planBatch, TARGETS, type HandoffTarget } from './plan';
export { STRATEGIES, type Strategy } from './configs';
