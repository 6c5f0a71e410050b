/** The job kinds, keyed like the contract's JobRequest union. Runs inside the job process only. */
import type { JobKind, JobRequest } from '../../../contract';
import type { JobHandler } from '../context';
import { selftest } from './selftest';
import { trainJob } from './train';
import { exportJob } from './export';
import { prepareJob } from './prepare';
import { tokenizerExtendJob, tokenizerTrainJob } from './tokenizer';
import { hubDownloadJob } from './hub';
import { calibrateJob } from './calibrate';
import { handoffJob, importAdapterJob } from './handoff';
import { chatJob, evalReportJob } from './chat';

type HandlerTable = { [K in JobKind]: JobHandler<Extract<JobRequest, { kind: K }>['params']> };

export const jobKinds: HandlerTable = {
  selftest,
  train: trainJob,
  export: exportJob,
  prepare: prepareJob,
  'tokenizer-train': tokenizerTrainJob,
  'tokenizer-extend': tokenizerExtendJob,
  'hub-download': hubDownloadJob,
  calibrate: calibrateJob,
  handoff: handoffJob,
  'import-adapter': importAdapterJob,
  chat: chatJob,
  'eval-report': evalReportJob,
};
