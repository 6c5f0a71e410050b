/**
 * The calls whose work is CPU-bound or unbounded by its input (template rendering, model and run files,
 * LoRA planning): they run in a worker thread under a time limit (offload/pool.ts), never on the thread
 * that serves the window. This table is imported by the worker only.
 */
import { inspectModel, planLora } from '../models';
import { listDatasets, listRuns, listTokenizers, readRun } from '../runs';
import { loadTemplate, previewTemplate } from '../templates';
import type { TaskName } from './limits';

type Task = (input: never) => unknown;

export const tasks: Record<TaskName, Task> = {
  'templates.preview': previewTemplate,
  'templates.load': loadTemplate,
  'lora.plan': planLora,
  'models.inspect': (input: { path: string }) => inspectModel(input.path),
  'runs.read': (input: { runDir: string }) => readRun(input.runDir),
  'runs.list': (input: { project: string }) => listRuns(input.project),
  'datasets.list': (input: { project: string }) => listDatasets(input.project),
  'tokenizers.list': (input: { project: string }) => listTokenizers(input.project),
};
