export { linear, loraLinear, softmaxCrossEntropy, causalMask, adamw, adamwScalars, ropeCache, type AdamWConfig } from './layers';
export { buildMlpTrainStep, initMlpParams, mlpLayout, mlpSyntheticBatch, type MlpConfig, type MlpTrainStep, type ParamSlot } from './mlp';
