/** Worker-thread entry of the offload pool: runs one task at a time and answers with its value or error. */
import { parentPort } from 'node:worker_threads';
import { UserError } from '../../util/progress';
import { tasks } from './tasks';
import type { TaskName } from './limits';
import type { FromWorker, ToWorker } from './pool';

const port = parentPort!;
port.on('message', (m: ToWorker) => {
  void (async () => {
    let reply: FromWorker;
    try {
      const value = await (tasks[m.task as TaskName] as (i: unknown) => unknown)(m.input);
      reply = { id: m.id, ok: true, value };
    } catch (err) {
      const e = err as Error;
      reply = err instanceof UserError
        ? { id: m.id, ok: false, error: { user: true, code: err.code, message: err.message, hint: err.hint } }
        : { id: m.id, ok: false, error: { user: false, code: 'internal', message: e?.message ?? String(err) } };
    }
    port.postMessage(reply);
  })();
});
port.postMessage({ ready: true } satisfies FromWorker);
