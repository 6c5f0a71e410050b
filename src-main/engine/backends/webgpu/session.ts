/**
 * A forward-only graph (evaluation loss, logits) on the GPU backend behind EngineSession's `run(feeds,
 * fetches)`, so evaluation code runs on either backend unchanged. Feeds the graph does not read for the
 * planned outputs are ignored (`lathe logits` passes no targets' worth of use); weights are the device's
 * shared uploads (program.ts), so a trainer's eval program adds no second copy of the model.
 */
import type { GraphBuilder } from '../../graph/graph';
import type { HostTensor } from '../../runtime/tensor';
import { GpuProgram, type GpuProgramOptions } from './program';

export class GpuSession {
  private constructor(readonly program: GpuProgram) {}

  /** Plans `graph` for the outputs in `fetch` (the only ones run() can return). */
  static async create(graph: GraphBuilder, fetch: string[], opts: GpuProgramOptions = {}): Promise<GpuSession> {
    return new GpuSession(await GpuProgram.create({ graph, state: [], fetch }, opts));
  }

  async run(feeds: Record<string, HostTensor>, fetches?: string[]): Promise<Record<string, HostTensor>> {
    const planned = this.program.info.fetch;
    const bad = (fetches ?? []).filter((f) => !planned.includes(f));
    if (bad.length) throw new Error(`GpuSession.run: ${bad.join(', ')} not planned (this session returns ${planned.join(', ')}).`);
    const used: Record<string, HostTensor> = {};
    for (const k of this.program.info.feeds) if (k in feeds) used[k] = feeds[k]!;
    const out = await this.program.step(used);
    if (!fetches) return out;
    return Object.fromEntries(fetches.map((f) => [f, out[f]!]));
  }

  async dispose(): Promise<void> {
    await this.program.dispose();
  }
}
