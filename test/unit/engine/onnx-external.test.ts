import { mkdirSync, mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeModel } from '../../../src-main/engine/onnx/encode';
import { externalInitializer } from '../../../src-main/engine/onnx/external';
import type { OnnxModel } from '../../../src-main/engine/onnx/spec';
import { SafetensorsReader, writeSafetensors } from '../../../src-main/engine/safetensors';
import { runModel } from '../../../src-main/engine/backends/onnx/session';
import { hostTensor, toNumbers } from '../../../src-main/engine/runtime/tensor';

describe('weights referenced in place inside a safetensors file', () => {
  it('runs f32, f16 and bf16 tensors straight from the file (CPU), f32 on WebGPU too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lathe-ext-'));
    mkdirSync(join(dir, 'weights'));
    const file = join(dir, 'weights', 'model.safetensors');
    const W = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((v) => v / 4)); // [3, 4]
    await writeSafetensors(file, [
      { name: 'layer.weight', dtype: 'F32', shape: [3, 4], data: W },
      { name: 'layer.bias', dtype: 'F16', shape: [4], data: Float32Array.from([0.5, -0.5, 1, 2]) },
      { name: 'layer.scale', dtype: 'BF16', shape: [4], data: Float32Array.from([1, 2, 0.5, -1]) },
    ]);
    const r = await SafetensorsReader.open(file);
    const inits = [...r.tensors.values()].map((e) => externalInitializer(e, dir, e.name.replace('layer.', '')));
    await r.close();
    expect(inits.map((t) => [t.name, t.type, t.data.kind === 'external' && t.data.location])).toEqual([
      ['weight', 'float32', 'weights/model.safetensors'], ['bias', 'float16', 'weights/model.safetensors'], ['scale', 'bfloat16', 'weights/model.safetensors'],
    ]);
    const model: OnnxModel = {
      opsets: [{ domain: '', version: 21 }],
      graph: {
        name: 'ext', initializers: inits,
        inputs: [{ name: 'x', type: 'float32', shape: [1, 3] }],
        outputs: [{ name: 'y', type: 'float32', shape: [1, 4] }],
        nodes: [
          { op: 'MatMul', inputs: ['x', 'weight'], outputs: ['xw'] },
          { op: 'Cast', inputs: ['bias'], outputs: ['b32'], attributes: { to: { type: 'int', value: 1 } } },
          { op: 'Cast', inputs: ['scale'], outputs: ['s32'], attributes: { to: { type: 'int', value: 1 } } },
          { op: 'Add', inputs: ['xw', 'b32'], outputs: ['z'] },
          { op: 'Mul', inputs: ['z', 's32'], outputs: ['y'] },
        ],
      },
    };
    const bytes = encodeModel(model);
    expect(bytes.length).toBeLessThan(1000);
    expect(statSync(file).size).toBeGreaterThan(48);
    const x = hostTensor('float32', [1, 3], [1, 0, -1]);
    const out = await runModel(model, { x }, { externalDataDir: dir });
    // x·W = row0 − row2 = [-2, -2, -2, -2]; + bias; × scale
    expect(toNumbers(out.y!)).toEqual([-1.5, -5, -0.5, -0]); // (−2 + 2) × −1 = −0

    const f32only: OnnxModel = { ...model, graph: { ...model.graph, initializers: [inits[0]!], nodes: [model.graph.nodes[0]!], outputs: [{ name: 'xw', type: 'float32', shape: [1, 4] }] } };
    const gpu = await runModel(f32only, { x }, { ep: 'webgpu', externalDataDir: dir, disableCpuFallback: true });
    expect(toNumbers(gpu.xw!)).toEqual([-2, -2, -2, -2]);
  });

  it('refuses files outside the model folder and size mismatches', () => {
    const ref = { name: 'w', dtype: 'F32', shape: [2], fileOffset: 8, byteLength: 8, file: '/elsewhere/w.safetensors' };
    expect(() => externalInitializer(ref, '/models/m')).toThrow(/outside \/models\/m/);
    expect(() => externalInitializer({ ...ref, file: '/models/m/w.safetensors', byteLength: 4 }, '/models/m')).toThrow(/needs 8 bytes, the file holds 4/);
    expect(() => externalInitializer({ ...ref, file: '/models/m/w.safetensors', dtype: 'F8_E4M3' }, '/models/m')).toThrow(/dtype F8_E4M3/);
  });
});
