#!/usr/bin/python3
"""PyTorch oracle for the engine's composite functions.

Writes small float64 fixtures next to this script (test/oracle/engine/*.bin). Run:
    /usr/bin/python3 test/oracle/engine/gen_engine.py
Format (little-endian): b"LATHEFX\\0", u32 version (1), u32 header length, JSON header
{"meta": {...}, "tensors": [{"name", "dtype" ("f64"|"i64"), "shape", "offset", "nbytes"}]},
zero padding to a multiple of 8, then the tensor bytes (offsets relative to the data start).
"""
import json
import math
import os
import struct

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))


def write_fixture(name, meta, tensors):
    entries, chunks, off = [], [], 0
    for key, arr in tensors:
        arr = np.ascontiguousarray(arr)
        if arr.dtype.kind == 'f':
            arr, dt = arr.astype('<f8'), 'f64'
        else:
            arr, dt = arr.astype('<i8'), 'i64'
        b = arr.tobytes()
        entries.append({'name': key, 'dtype': dt, 'shape': list(arr.shape), 'offset': off, 'nbytes': len(b)})
        chunks.append(b)
        off += len(b)
    header = json.dumps({'meta': meta, 'tensors': entries}, sort_keys=True).encode()
    head = b'LATHEFX\0' + struct.pack('<II', 1, len(header)) + header
    head += b'\0' * ((-len(head)) % 8)
    with open(os.path.join(HERE, name), 'wb') as f:
        f.write(head + b''.join(chunks))


def t(x):
    return x.detach().numpy().copy()  # copy: optimizer steps change tensors in place


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


# ---------------------------------------------------------------- MLP + AdamW
def gen_mlp():
    # x [B, D] -> linear(W1, b1) -> silu -> rmsnorm -> linear(W2, b2) -> logits [B, K] -> mean xent
    B, D, H, K, eps = 8, 6, 10, 5, 1e-6
    lr, wd, steps = 1e-2, 0.01, 5
    g = torch.Generator().manual_seed(7)
    w1 = torch.rand(H, D, generator=g) - 0.5
    b1 = torch.rand(H, generator=g) - 0.5
    nw = 1 + 0.3 * (torch.rand(H, generator=g) - 0.5)
    w2 = torch.rand(K, H, generator=g) - 0.5
    b2 = torch.rand(K, generator=g) - 0.5
    x = torch.rand(B, D, generator=g) * 2 - 1
    y = torch.randint(0, K, (B,), generator=g)
    params = [w1, b1, nw, w2, b2]  # the flat layout of src-main/engine/nn/mlp.ts
    for p in params:
        p.requires_grad_(True)
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_fn():
        h = torch.nn.functional.silu(x @ w1.T + b1)
        h = rmsnorm(h, nw, eps)
        return torch.nn.functional.cross_entropy(h @ w2.T + b2, y)

    loss = loss_fn()
    loss.backward()
    grad0 = torch.cat([p.grad.detach().reshape(-1).clone() for p in params])
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    opt.zero_grad()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        L = loss_fn()
        losses.append(L.item())
        L.backward()
        opt.step()
    flat_end = torch.cat([p.detach().reshape(-1) for p in params])
    write_fixture('mlp.bin', {'B': B, 'D': D, 'H': H, 'K': K, 'eps': eps, 'lr': lr, 'weightDecay': wd,
                              'steps': steps, 'activation': 'silu'},
                  [('params', t(flat0)), ('x', t(x)), ('targets', y.numpy()), ('loss', np.array(loss.item())),
                   ('grad', t(grad0)), ('losses', np.array(losses)), ('params_end', t(flat_end))])


# ---------------------------------------------------------------- attention + GPT-2 MLP block
def gen_block():
    # x [B, T, C]; heads Hn, head dim Dh; LoRA rank r on q and v with non-zero B.
    B, T, C, Hn, r, scale, eps = 2, 4, 8, 2, 2, 2.0, 1e-6
    Dh, F = C // Hn, 12
    g = torch.Generator().manual_seed(11)
    rnd = lambda *s: (torch.rand(*s, generator=g) - 0.5)
    P = {
        'x': rnd(B, T, C) * 2, 'norm': 1 + 0.3 * rnd(C),
        'wq': rnd(C, C), 'wk': rnd(C, C), 'wv': rnd(C, C), 'wo': rnd(C, C),
        'aq': rnd(r, C), 'bq': rnd(C, r), 'av': rnd(r, C), 'bv': rnd(C, r),
        'ln_w': 1 + 0.3 * rnd(C), 'ln_b': 0.2 * rnd(C),
        'w1': rnd(F, C), 'b1': 0.2 * rnd(F), 'w2': rnd(C, F), 'b2': 0.2 * rnd(C),
        'cot': rnd(B, T, C),
    }
    for k, v in P.items():
        if k != 'cot':
            v.requires_grad_(True)
    x = P['x']
    h = rmsnorm(x, P['norm'], eps)
    q = h @ P['wq'].T + scale * (h @ P['aq'].T) @ P['bq'].T
    k = h @ P['wk'].T
    v = h @ P['wv'].T + scale * (h @ P['av'].T) @ P['bv'].T
    split = lambda z: z.reshape(B, T, Hn, Dh).transpose(1, 2)  # [B, Hn, T, Dh]
    q, k, v = split(q), split(k), split(v)
    mask = torch.triu(torch.full((T, T), -1e9), diagonal=1)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(Dh) + mask, dim=-1)
    o = (att @ v).transpose(1, 2).reshape(B, T, C)
    x1 = x + o @ P['wo'].T
    hm = torch.nn.functional.layer_norm(x1, (C,), P['ln_w'], P['ln_b'], 1e-5)
    hm = torch.nn.functional.gelu(hm @ P['w1'].T + P['b1'], approximate='tanh')
    out = x1 + hm @ P['w2'].T + P['b2']
    loss = (out * P['cot']).sum()
    loss.backward()
    tensors = [(k, t(v)) for k, v in P.items()]
    tensors += [('out', t(out)), ('loss', np.array(loss.item()))]
    tensors += [('grad_' + k, t(v.grad)) for k, v in P.items() if k != 'cot']
    write_fixture('block.bin', {'B': B, 'T': T, 'C': C, 'heads': Hn, 'r': r, 'scale': scale, 'eps': eps, 'F': F}, tensors)


# ---------------------------------------------------------------- RoPE (HF rotate_half convention)
def gen_rope():
    # x [B, Hn, S, D]; positions [B, S] (not 0..S-1, to check the cache lookup); theta 10000
    B, Hn, S, D, theta, max_pos = 2, 3, 5, 8, 10000.0, 16
    g = torch.Generator().manual_seed(13)
    x = (torch.rand(B, Hn, S, D, generator=g) - 0.5) * 2
    x.requires_grad_(True)
    pos = torch.tensor([[0, 1, 2, 3, 4], [7, 8, 9, 10, 11]])
    cot = torch.rand(B, Hn, S, D, generator=g) - 0.5
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))  # [D/2]
    freqs = pos[..., None].double() * inv_freq  # [B, S, D/2]
    emb = torch.cat([freqs, freqs], dim=-1)  # [B, S, D]
    cos, sin = emb.cos()[:, None], emb.sin()[:, None]  # [B, 1, S, D]

    def rotate_half(z):
        z1, z2 = z[..., : D // 2], z[..., D // 2:]
        return torch.cat([-z2, z1], dim=-1)

    y = x * cos + rotate_half(x) * sin
    (y * cot).sum().backward()
    write_fixture('rope.bin', {'B': B, 'heads': Hn, 'S': S, 'D': D, 'theta': theta, 'maxPos': max_pos},
                  [('x', t(x)), ('positions', pos.numpy()), ('cot', t(cot)), ('inv_freq', t(inv_freq)),
                   ('y', t(y)), ('grad_x', t(x.grad))])


if __name__ == '__main__':
    gen_mlp()
    gen_block()
    gen_rope()
    print('wrote', sorted(f for f in os.listdir(HERE) if f.endswith('.bin')))
