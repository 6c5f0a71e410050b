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
    // (squares x·x: a kernel reading one tensor twice never writes over it, kernels/elementwise.ts, so a2, c and
    // c·c each need a buffer of their own while their input is live)
    const a = g.tanh(x);
    const a2 = g.mul(a, a);
    const s = g.reduceSum(a2, [0], true); // [1]
    const b = g.tanh(g.neg(x));
    const c = g.mul(b, b);
    g.output('y', g.mul(g.mul(c, c), s));
    const p = planGraph(g, { noFusion: true });
    const temps = p.buffers.filter((q) => q.kind === 'temp');
    expect(temps.filter((q) => q.bytes === 4096).length).toBe(2);
    expect(p.bytes.temp).toBe(2 * 4096 + 4);
    // one live tensor per buffer: no dispatch binds a buffer it writes twice (a·a reads one tensor twice: allowed)
    for (const d of p.dispatches) {
      for (const w of d.bindings.filter((q) => q.write)) expect(d.bindings.filter((q) => q.ref.buf === w.ref.buf)).toHaveLength(1);
    }
  });
});
