#!/usr/bin/env python3
"""PyTorch side of the Java CUDA benchmark (tests/.../cuda/CudaBench.java): the same shapes, the
same timing method (CUDA events around `reps` back-to-back calls after 3 warm-ups, 7 repeats,
median/min/max; host time per call for the decode-shaped Linear). Prints
name<TAB>median<TAB>min<TAB>max<TAB>unit lines with CudaBench's names.

Usage: python3 bench_java_torch.py [quick]
"""
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

QUICK = len(sys.argv) > 1 and sys.argv[1] == "quick"
ONLY_MINILM = len(sys.argv) > 1 and sys.argv[1] == "minilm"
dev = "cuda"
torch.backends.cuda.matmul.allow_tf32 = False


def rand(*shape):
    return (torch.rand(*shape, device=dev, dtype=torch.float32) * 2 - 1).to(torch.bfloat16)


def gpu_time(reps, op):
    for _ in range(3):
        op()
    torch.cuda.synchronize()
    out = []
    a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(7):
        a.record()
        for _ in range(reps):
            op()
        e.record()
        e.synchronize()
        out.append(a.elapsed_time(e) / reps)
    return out


def line(name, med, mn, mx, unit):
    print("%s\t%.2f\t%.2f\t%.2f\t%s" % (name, med, mn, mx, unit), flush=True)


def report(name, flops, ms, unit):
    t = sorted(flops / (m * 1e-3) / 1e12 for m in ms)
    line(name, t[3], t[0], t[6], unit)


def gemm(n):
    a, b = rand(n, n), rand(n, n)
    report("gemm_bf16_%d" % n, 2.0 * n ** 3, gpu_time(10, lambda: F.linear(a, b)), "TFLOP/s")


def linear(m, k, n):
    x, w, bias = rand(m, k), rand(n, k), rand(n)
    if m >= 1024:
        ms = gpu_time(10, lambda: F.gelu(F.linear(x, w, bias), approximate="tanh"))
        report("linear_gelu_bf16_m%d_%dx%d" % (m, k, n), 2.0 * m * k * n, ms, "TFLOP/s")
        return
    calls = 2000
    for _ in range(200):
        F.linear(x, w, bias)
    torch.cuda.synchronize()
    us = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(calls):
            F.linear(x, w, bias)
        torch.cuda.synchronize()
        us.append((time.perf_counter() - t0) * 1e6 / calls)
    us.sort()
    line("linear_bf16_m%d_%dx%d_us_per_call" % (m, k, n), us[3], us[0], us[6], "us")


def attention(b, h, s, d, causal):
    q, k, v = rand(b, h, s, d), rand(b, h, s, d), rand(b, h, s, d)

    def op():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1)
    report("attn_fwd_bf16_B%d_H%d_S%d_D%d%s" % (b, h, s, d, "_causal" if causal else ""), flops, gpu_time(5, op), "TFLOP/s")


def decode(b, hq, hkv, kv, d):
    q, kc, vc = rand(b, hq, 1, d), rand(b, hkv, kv, d), rand(b, hkv, kv, d)
    gqa = hq != hkv
    ms = gpu_time(20, lambda: F.scaled_dot_product_attention(q, kc, vc, enable_gqa=gqa))
    byts = 2.0 * b * hkv * kv * d * 2
    tbs = sorted(byts / (m * 1e-3) / 1e12 for m in ms)
    name = "decode_bf16_B%d_Hq%d_Hkv%d_KV%d_D%d" % (b, hq, hkv, kv, d)
    line(name, tbs[3], tbs[0], tbs[6], "TB/s")
    ms.sort()
    line(name + "_us", ms[3] * 1e3, ms[0] * 1e3, ms[6] * 1e3, "us")


def minilm(batch, seq, mixed=False):
    """MiniLM-L6-shaped post-LN BERT encoder in PyTorch eager (F.linear, SDPA, layer_norm, gelu),
    and HF transformers' BertModel encoder of the same shape when it loads. mixed: lengths
    16 + (37 i mod 113) as CudaBench, padded to seq with a key-padding mask (what PyTorch runs)."""
    hdim, heads, inter, nl = 384, 12, 1536, 6
    ws = []
    for _ in range(nl):
        ws.append(dict(wqkv=rand(3 * hdim, hdim) * 0.09, bqkv=rand(3 * hdim), wo=rand(hdim, hdim) * 0.09, bo=rand(hdim),
                       g1=torch.ones(hdim, device=dev, dtype=torch.bfloat16), b1n=rand(hdim),
                       w1=rand(inter, hdim) * 0.09, b1=rand(inter), w2=rand(hdim, inter) * 0.04, b2=rand(hdim),
                       g2=torch.ones(hdim, device=dev, dtype=torch.bfloat16), b2n=rand(hdim)))
    x = rand(batch, seq, hdim)
    mask = None
    if mixed:
        lens = torch.tensor([16 + (37 * i) % 113 for i in range(batch)], device=dev)
        mask = (torch.arange(seq, device=dev)[None, :] < lens[:, None])[:, None, None, :]

    def fwd():
        h = x
        for w in ws:
            qkv = F.linear(h, w["wqkv"], w["bqkv"]).view(batch, seq, 3, heads, hdim // heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask).transpose(1, 2).reshape(batch, seq, hdim)
            h = F.layer_norm(F.linear(a, w["wo"], w["bo"]) + h, (hdim,), w["g1"], w["b1n"], 1e-12)
            f = F.linear(F.gelu(F.linear(h, w["w1"], w["b1"])), w["w2"], w["b2"])
            h = F.layer_norm(f + h, (hdim,), w["g2"], w["b2n"], 1e-12)
        return h
    with torch.inference_mode():
        ms = sorted(gpu_time(10, fwd))
    name = "minilm_l6_bf16_B%d_S%d%s" % (batch, seq, "_mixed" if mixed else "")
    line(name + "_ms", ms[3], ms[0], ms[6], "ms")
    line(name + "_seq_per_s", batch / (ms[3] * 1e-3), batch / (ms[6] * 1e-3), batch / (ms[0] * 1e-3), "seq/s")
    try:
        from transformers import BertConfig, BertModel
        cfg = BertConfig(hidden_size=hdim, num_hidden_layers=nl, num_attention_heads=heads, intermediate_size=inter)
        try:
            cfg._attn_implementation = "sdpa"
        except Exception:  # noqa: BLE001
            pass
        model = BertModel(cfg).to(dev, torch.bfloat16).eval()
        ext = None if mask is None else model.get_extended_attention_mask(mask[:, 0, 0, :].long(), (batch, seq))
        with torch.inference_mode():
            ms = sorted(gpu_time(10, lambda: model.encoder(x, attention_mask=ext)))
        line(name + "_hf_ms", ms[3], ms[0], ms[6], "ms")
        line(name + "_hf_seq_per_s", batch / (ms[3] * 1e-3), batch / (ms[6] * 1e-3), batch / (ms[0] * 1e-3), "seq/s")
    except Exception as ex:  # noqa: BLE001
        print("# HF BertModel unavailable:", ex, file=sys.stderr)


print("#", torch.cuda.get_device_name(0), torch.__version__)
if ONLY_MINILM:
    minilm(32, 128)
    minilm(128, 128)
    minilm(32, 128, mixed=True)
    sys.exit(0)
for n in ([4096] if QUICK else [4096, 8192]):
    gemm(n)
for m in (1, 16, 4096):
    linear(m, 4096, 4096)
attention(4, 32, 2048, 128, False)
attention(4, 32, 2048, 128, True)
if not QUICK:
    attention(1, 32, 8192, 128, True)
decode(1, 32, 32, 32768, 128)
decode(1, 32, 8, 32768, 128)
minilm(32, 128)
