/** The plan's placement of temporaries by lifetime (plan.ts assignTemporaries); no device needed. */
import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../../../../src-main/engine/graph/graph';
import { planGraph } from '../../../../../src-main/engine/backends/webgpu';

describe('GPU plan: temporaries placed by lifetime', () => {
  it('a small long-lived tensor does not pin a large freed buffer', () => {
    // a, a2, b, c: [1024] each, live two nodes at a time; s: one value, live from a2's sum to the end.
    // A pool handing s the smallest free buffer (a's, just freed) keeps 4 KiB for 4 bytes and needs a third
    // large buffer for c; placed by lifetime, two large buffers and a small one suffice.
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1024]);
    const a = g.tanh(x);
    const a2 = g.exp(a);
    const s = g.reduceSum(a2, [0], true); // [1]
    const b = g.tanh(g.neg(x));
    const c = g.exp(b);
    g.output('y', g.mul(g.sqrt(c), s));
    const p = planGraph(g, { noFusion: true });
    const temps = p.buffers.filter((q) => q.kind === 'temp');
    expect(temps.filter((q) => q.bytes === 4096).length).toBe(2);
    expect(p.bytes.temp).toBe(2 * 4096 + 4);
    // one live tensor per buffer: no dispatch binds a buffer twice
    for (const d of p.dispatches) {
      const bufs = d.bindings.map((q) => q.ref.buf).filter((q) => q.kind === 'temp');
      expect(new Set(bufs).size).toBe(bufs.length);
    }
  });
});
