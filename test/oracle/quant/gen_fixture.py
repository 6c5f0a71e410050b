#!/usr/bin/python3
"""NF4 + double quantization oracle (PyTorch), same definition as src-main/engine/quant/nf4.ts.

QLoRA / bitsandbytes quantize_4bit(quant_type='nf4', blocksize=64, compress_statistics=True):
  blocks of 64 -> absmax; code = nearest NF4 value to w/absmax (midpoint thresholds, ties go down);
  absmax -> offset = mean (f64, rounded to f32) -> a = absmax - offset -> blocks of 256 -> scale2 = max|a|;
  acode = nearest value of the signed 8-bit dynamic map (create_dynamic_map) to a/scale2 (ties go down).
Writes nf4_fixture.json: inputs, codes, absmax codes, scale2, offset, dequantized values.

Run: /usr/bin/python3 test/oracle/quant/gen_fixture.py
"""
import json, os
import torch

NF4 = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0], dtype=torch.float32)


def dynamic_map():
    # bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)
    data = []
    for i in range(7):
        items = 2 ** i + 1
        b = torch.linspace(0.1, 1, items, dtype=torch.float32)
        means = (b[:-1] + b[1:]) / 2.0
        data += (10 ** (-6 + i) * means).tolist()
        data += (-(10 ** (-6 + i)) * means).tolist()
    data += [0.0, 1.0]
    data.sort()
    return torch.tensor(data, dtype=torch.float32)


def nearest(table, x):
    # ties go to the lower index: distance to the left neighbour <= distance to the right one
    d = (x.unsqueeze(-1) - table).abs()
    return torch.argmin(d, dim=-1)  # argmin returns the first minimum


def quantize(w):
    n = w.numel()
    nb = (n + 63) // 64
    nb2 = (nb + 255) // 256
    flat = torch.zeros(nb * 64, dtype=torch.float32)
    flat[:n] = w.reshape(-1)
    blocks = flat.reshape(nb, 64)
    absmax = blocks.abs().max(dim=1).values
    mids = (NF4[1:] + NF4[:-1]) / 2
    safe = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    x = blocks / safe.unsqueeze(1)
    codes = torch.bucketize(x, mids, right=False)  # number of midpoints strictly below x
    codes[absmax == 0] = 7
    codes.reshape(-1)[n:] = 7
    offset = torch.tensor(float(absmax.double().mean()), dtype=torch.float32)
    a = torch.zeros(nb2 * 256, dtype=torch.float32)
    a[:nb] = absmax - offset
    ab = a.reshape(nb2, 256)
    valid = (torch.arange(nb2 * 256) < nb).reshape(nb2, 256)
    scale2 = torch.where(valid, ab.abs(), torch.zeros_like(ab)).max(dim=1).values
    dmap = dynamic_map()
    s2 = torch.where(scale2 > 0, scale2, torch.ones_like(scale2))
    acodes = nearest(dmap, ab / s2.unsqueeze(1))
    zero = int(nearest(dmap, torch.tensor([0.0]))[0])
    acodes[~valid] = zero
    acodes[scale2 == 0] = zero
    deq_abs = (dmap[acodes] * scale2.unsqueeze(1) + offset).reshape(-1)[:nb]
    deq = (NF4[codes] * deq_abs.unsqueeze(1)).reshape(-1)[:n]
    return dict(codes=codes.reshape(-1)[:n].tolist(), absCodes=acodes.reshape(-1)[:nb].tolist(),
                scale2=scale2.tolist(), offset=float(offset), dequant=deq.tolist(), absmax=absmax.tolist())


def main():
    torch.manual_seed(0)
    cases = []
    # normal weights like a linear layer [out, in]; heavy tails; a ragged size (partial blocks); zeros
    shapes = [('normal', torch.randn(96, 256) * 0.02), ('student_t', torch.distributions.StudentT(3.0).sample((40, 128)) * 0.05),
              ('ragged', torch.randn(17, 33)), ('zeros_block', torch.cat([torch.zeros(64), torch.randn(100)])),
              ('many_blocks', torch.randn(300 * 64) * torch.linspace(0.01, 3, 300 * 64))]
    for name, w in shapes:
        w = w.to(torch.float32)
        q = quantize(w)
        cases.append(dict(name=name, shape=list(w.shape), w=w.reshape(-1).tolist(), **q))
    out = dict(version=1, nf4=NF4.tolist(), dynamicMap=dynamic_map().tolist(), cases=cases)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'nf4_fixture.json')
    with open(path, 'w') as f:
        json.dump(out, f)
    print('wrote', path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
