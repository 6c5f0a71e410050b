/** The chat job (reply streamed as text events) and the evaluation-report job (services/chat.ts). */
import type { JobHandler } from '../context';
import type { JobRequest } from '../../../contract';
import { runChat, runEvalReport } from '../../chat';

type ChatJobParams = Extract<JobRequest, { kind: 'chat' }>['params'];
type EvalJobParams = Extract<JobRequest, { kind: 'eval-report' }>['params'];

export const chatJob: JobHandler<ChatJobParams> = (params, ctx) =>
  runChat(params, { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal, text: ctx.text });

export const evalReportJob: JobHandler<EvalJobParams> = (params, ctx) =>
  runEvalReport(params, { onProgress: ctx.onProgress, onLog: ctx.onLog, signal: ctx.signal });
