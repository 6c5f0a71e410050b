import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createTinyModel, openModel } from '../../../../src-main/engine/models';
import { buildLoraLayout, initLoraParams } from '../../../../src-main/engine/llm/lora';
import { buildTrainGraph } from '../../../../src-main/engine/llm/train-graph';
import { adamwScalars } from '../../../../src-main/engine/nn/layers';
import { encodeModel } from '../../../../src-main/engine/onnx/encode';
import { Program, hostTensor } from '../../../../src-main/engine/backends/onnx';
import { bf16ToF32Array } from '../../../../src-main/engine/safetensors';
import { cacheInfo, clearCache } from '../../../../src-main/engine/weights/cache';
import { openWeightSource } from '../../../../src-main/engine/weights/source';
import { f32ToBf16Bits } from '../../../../src-main/engine/safetensors';
import { commands } from '../../../../src-main/cli/commands/cache';
import { dispatch } from '../../../../src-main/services';
import { bigBf16Model } from '../../../helpers/big';
import { tempDir } from '../../../helpers/services';

const optim = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 };
const digest = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('weight cache', () => {
  it('converts bf16 weights once into external files, reuses them, trains, reports its size and clears', async () => {
    const root = tempDir('lathe-cache-');
    const dir = path.join(tempDir(), 'm');
    await createTinyModel('llama3', dir, { seed: 2, dtype: 'bf16' });
    const before = digest(path.join(dir, 'model.safetensors'));
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const B = 1, T = 8, N = B * T, P = lora.size;
      const src = openWeightSource(weights, { cacheRoot: root });
      expect(src.cache).toBeDefined();
      expect(path.dirname(path.dirname(src.dir))).toBe(path.join(root));
      const tg = await buildTrainGraph(config, layout, src, lora, { batch: B, seqLen: T }, optim);
      expect(src.cache!.written).toBe(weights.names().length);
      // every model weight is external data in the cache folder; the .onnx holds none of their bytes
      for (const name of weights.names()) {
        const init = tg.model.graph.initializers.find((i) => i.name === name);
        expect(init?.data.kind, name).toBe('external');
      }
      // the cached f32 bytes are the bf16 values widened exactly
      const name = layout.layers[0]!.q!.weight;
      const f32 = bf16ToF32Array(new Uint16Array((await weights.readRaw(name)).slice().buffer));
      const loc = src.cache!.converted(name, 'float32');
      expect(Buffer.from(readFileSync(path.join(src.dir, loc.location))).equals(Buffer.from(f32.buffer))).toBe(true);
      expect(readdirSync(src.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

      // a second run finds every conversion
      const again = openWeightSource(weights, { cacheRoot: root });
      await buildTrainGraph(config, layout, again, lora, { batch: B, seqLen: T }, optim);
      expect(again.dir).toBe(src.dir);
      expect(again.cache!.written).toBe(0);

      const prog = await Program.create({ model: tg.model, state: tg.state, fetch: tg.fetch }, { ep: 'cpu', externalDataDir: src.dir });
      try {
        const z = () => hostTensor('float32', [P], new Float32Array(P));
        await prog.init({ params: hostTensor('float32', [P], initLoraParams(lora, 3)), m: z(), v: z(), gacc: z() });
        const ids = new BigInt64Array(N).map((_, i) => BigInt(((i * 7) % 40) + 3));
        const out = await prog.step({
          ids: hostTensor('int64', [B, T], ids), targets: hostTensor('int64', [N, 1], ids.map((_, i) => ids[(i + 1) % N]!)),
          mask: hostTensor('float32', [N, 1], new Float32Array(N).fill(1)), apply: hostTensor('bool', [], new Uint8Array([1])),
          invCount: hostTensor('float32', [], [1 / N]), adam: hostTensor('float32', [3], adamwScalars(optim, 1)),
        });
        expect(Number.isFinite(Number(out['loss_sum']!.data[0]))).toBe(true);
      } finally {
        await prog.dispose();
      }

      const info = cacheInfo(root);
      expect(info.entries).toHaveLength(1);
      expect(info.entries[0]!.model).toBe(weights.dir);
      const f32Bytes = weights.names().reduce((s, n) => s + 2 * weights.entry(n).byteLength, 0);
      expect(info.bytes).toBeGreaterThanOrEqual(f32Bytes);
      expect(info.bytes).toBeLessThan(f32Bytes + 4096);
      expect(clearCache(root).freed).toBe(info.bytes);
      expect(cacheInfo(root).bytes).toBe(0);
      expect(digest(path.join(dir, 'model.safetensors'))).toBe(before); // the model is only read
    } finally {
      await weights.close();
    }
  });

  it('QLoRA on an f32 model: codes in the cache, f32 weights through a hard link, reused without quantizing again', async () => {
    const root = tempDir('lathe-cache-');
    const dir = path.join(tempDir(), 'm');
    await createTinyModel('qwen2', dir, { seed: 2 });
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const build = async () => {
        const src = openWeightSource(weights, { cacheRoot: root, quantize: 'nf4' });
        const tg = await buildTrainGraph(config, layout, src, lora, { batch: 1, seqLen: 8 }, optim);
        return { src, model: tg.model };
      };
      const a = await build();
      const b = await build();
      expect(a.src.cache!.written).toBeGreaterThan(0);
      expect(b.src.cache!.written).toBe(0);
      expect(Buffer.from(encodeModel(b.model)).equals(Buffer.from(encodeModel(a.model)))).toBe(true);
      // no raw initializer or constant holds more than a few KB: codes and weights are all external
      const bytes = encodeModel(a.model).byteLength;
      const weightBytes = weights.names().reduce((s, n) => s + weights.entry(n).byteLength, 0);
      expect(bytes).toBeLessThan(weightBytes / 4);
      expect(readdirSync(a.src.dir).some((f) => f.startsWith('model-') && f.endsWith('.safetensors'))).toBe(true);
    } finally {
      await weights.close();
    }
  });

  it('refuses bf16 -> f16 when a weight exceeds f16 range, naming it; f32 keeps it', async () => {
    const root = tempDir('lathe-cache-');
    const bad = 'model.layers.0.mlp.up_proj.weight';
    const dir = await bigBf16Model('llama', {}, { edit: (n, bits) => { if (n === bad) bits[5] = f32ToBf16Bits(-1.5e5); } });
    const { config, layout, weights } = await openModel(dir);
    try {
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      const src16 = openWeightSource(weights, { cacheRoot: root, compute: 'float16' });
      const err = await buildTrainGraph(config, layout, src16, lora, { batch: 1, seqLen: 8 }, optim).catch((e: unknown) => e);
      expect(err).toMatchObject({ name: 'UserError', code: 'weights.f16Range' });
      expect((err as Error).message).toContain(bad);
      expect((err as Error).message).toMatch(/65,504/);
      expect(readdirSync(src16.dir).filter((f) => f.startsWith(bad))).toEqual([]); // nothing half-written
      const src32 = openWeightSource(weights, { cacheRoot: root });
      const tg = await buildTrainGraph(config, layout, src32, lora, { batch: 1, seqLen: 8 }, optim);
      expect(tg.nodes.total).toBeGreaterThan(0);
    } finally {
      await weights.close();
    }
  });
});

describe('lathe cache and the cache.* channels', () => {
  it('report the cache size per model and clear it', async () => {
    const root = tempDir('lathe-cache-');
    const saved = process.env['LATHE_CACHE_DIR'];
    process.env['LATHE_CACHE_DIR'] = root;
    try {
      const dir = path.join(tempDir(), 'm');
      await createTinyModel('qwen2', dir, { seed: 4, dtype: 'bf16' });
      const { config, layout, weights } = await openModel(dir);
      const lora = buildLoraLayout(config, layout, { rank: 4, alpha: 8, dropout: 0, rslora: false, targets: 'all-linear', seed: 3 });
      await buildTrainGraph(config, layout, openWeightSource(weights), lora, { batch: 1, seqLen: 8 }, optim);
      await weights.close();

      const lines: string[] = [];
      const cli = (p: string, json: boolean) => commands.find((c) => c.path.join(' ') === p)!.run({
        args: [], flags: {}, json, out: (t) => lines.push(t), err: () => undefined, signal: new AbortController().signal,
      }) as Promise<{ bytes?: number; freed?: number; entries?: { model: string | null }[] }>;
      const size = await cli('cache size', false);
      expect(size.bytes).toBeGreaterThan(0);
      expect(size.entries!.map((e) => e.model)).toEqual([dir]);
      expect(lines.join('\n')).toMatch(new RegExp(`^Weight cache ${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\d+\\.\\d [kMG]B in 1 model\\n.*${path.basename(dir)}`));

      const services = { } as Parameters<typeof dispatch>[0];
      const info = await dispatch(services, 'cache.info', {});
      expect(info).toMatchObject({ ok: true, value: { root, bytes: size.bytes } });
      const cleared = await dispatch(services, 'cache.clear', {});
      expect(cleared).toMatchObject({ ok: true, value: { root, freed: size.bytes } });
      expect((await cli('cache size', true)).bytes).toBe(0);
      expect(await cli('cache clear', true)).toMatchObject({ freed: 0 });
    } finally {
      if (saved === undefined) delete process.env['LATHE_CACHE_DIR'];
      else process.env['LATHE_CACHE_DIR'] = saved;
    }
  });
});
