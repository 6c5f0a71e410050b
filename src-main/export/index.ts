export { exportModel, type ExportOptions } from './export';
export { ExportParamsSchema, type ExportParams, type ExportResult, type ResizedEmbeddings } from './options';
export { readPeftAdapter, peftToLora, peftAdapterConfig, targetModuleNames, type PeftAdapter } from './peft';
export { loadTrainedAdapter, addLoraDelta, readRunSummary, type TrainedAdapter } from './adapter';
export { VERIFY_TOLERANCE, compareLogits, defaultPromptIds, engineLogits, type Verification } from './verify';
