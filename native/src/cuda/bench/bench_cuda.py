#!/usr/bin/env python3
"""Side-by-side check and benchmark of libpanatron_cuda against PyTorch on the same GPU.

Usage: python3 bench_cuda.py path/to/libpanatron_cuda.so [--quick] [--decode-only]

Loads the library with ctypes, runs our kernels on torch-allocated tensors, on torch's
current stream, so one set of CUDA events times both. For each shape: accuracy against a
float32 (upcast) PyTorch reference — ours and PyTorch's own bf16 result, as relative
Frobenius errors — then timings, ours and PyTorch interleaved rep by rep: median (min..max)
of REPS reps, each the mean of ITERS back-to-back launches. Prints a table last.
"""
import ctypes as C
import os
import math
import statistics
import sys

import torch
import torch.nn.functional as F

LIB = sys.argv[1]
QUICK = "--quick" in sys.argv
DECODE_ONLY = "--decode-only" in sys.argv  # copy ceiling + the decode cases (contiguous, paged)
lib = C.CDLL(LIB)

PT_F32, PT_F16, PT_BF16, PT_I32 = 0, 1, 2, 5
DT = {torch.float32: PT_F32, torch.float16: PT_F16, torch.bfloat16: PT_BF16, torch.int32: PT_I32}


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int32), ("device", C.c_int32), ("ndim", C.c_int32),
                ("reserved", C.c_int32), ("shape", C.c_int64 * 4), ("stride", C.c_int64 * 4)]


class CtxParams(C.Structure):
    _fields_ = [("device", C.c_int32), ("allow_tf32", C.c_int32), ("workspace_bytes", C.c_int64), ("stream", C.c_void_p)]


class MatmulParams(C.Structure):
    _fields_ = [("trans_b", C.c_int32), ("activation", C.c_int32), ("alpha", C.c_float), ("beta", C.c_float)]


class AttnParams(C.Structure):
    _fields_ = [("scale", C.c_float), ("causal", C.c_int32), ("cu_seqlens_q", C.c_void_p), ("cu_seqlens_k", C.c_void_p),
                ("batch", C.c_int32), ("max_seqlen_q", C.c_int32), ("max_seqlen_k", C.c_int32),
                ("num_splits", C.c_int32), ("variant", C.c_int32), ("reserved", C.c_int32)]


class DevInfo(C.Structure):
    _fields_ = [("name", C.c_char * 256), ("device", C.c_int32), ("cc_major", C.c_int32), ("cc_minor", C.c_int32),
                ("sm_count", C.c_int32), ("total_mem", C.c_int64), ("free_mem", C.c_int64), ("l2_bytes", C.c_int32),
                ("smem_per_block_optin", C.c_int32), ("mem_bus_width", C.c_int32), ("driver_version", C.c_int32),
                ("runtime_version", C.c_int32), ("reserved", C.c_int32 * 3)]


lib.pt_cuda_last_error.restype = C.c_char_p


def check(st, what):
    if st != 0:
        raise RuntimeError("%s: status %d: %s" % (what, st, lib.pt_cuda_last_error().decode()))


def desc(t):
    d = Tensor()
    d.data = t.data_ptr()
    d.dtype = DT[t.dtype]
    d.device = 1
    d.ndim = t.dim()
    for i in range(t.dim()):
        d.shape[i] = t.shape[i]
        d.stride[i] = t.stride(i) * t.element_size()
    return d


torch.manual_seed(0)
dev = torch.device("cuda")
info = DevInfo()
check(lib.pt_cuda_device_info_get(0, C.byref(info)), "device_info")
print("device: %s cc %d.%d, %d SMs, %.1f GiB, L2 %d MiB, driver %d; torch %s" % (
    info.name.decode(), info.cc_major, info.cc_minor, info.sm_count, info.total_mem / 2**30, info.l2_bytes >> 20,
    info.driver_version, torch.__version__))
# one explicit stream for torch and us (the legacy default stream, handle 0, would make our
# context create its own stream, unordered with torch's work)
STREAM = torch.cuda.Stream()
torch.cuda.set_stream(STREAM)
ctx = C.c_void_p()
cp = CtxParams(0, 0, 0, C.c_void_p(STREAM.cuda_stream))
check(lib.pt_cuda_ctx_create(C.byref(cp), C.byref(ctx)), "ctx_create")

REPS = 7 if QUICK else 15


def bench_pair(fns, iters):
    """fns: {name: fn}. Interleaved: each rep times every fn (iters launches) in turn."""
    times = {k: [] for k in fns}
    for f in fns.values():  # warm-up
        f()
    torch.cuda.synchronize()
    for _ in range(REPS):
        for k, f in fns.items():
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(iters):
                f()
            e.record()
            e.synchronize()
            times[k].append(s.elapsed_time(e) / iters * 1e3)  # us
    return {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}


def relerr(x, ref):
    x = x.float()
    return ((x - ref).norm() / ref.norm()).item()


rows = []  # (case, impl, median_us, min, max, metric, unit, ratio_vs_torch, err)


def add(case, impl, t, metric, unit, base=None, err=None):
    rows.append((case, impl, t[0], t[1], t[2], metric, unit, None if base is None else base / t[0], err))


# ---------------------------------------------------------------- copy bandwidth ceiling
n = 1 << 30
src = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
dst = torch.empty_like(src)
t = bench_pair({"copy": lambda: dst.copy_(src)}, 5)["copy"]
copy_bw = 2 * n / (t[0] * 1e-6) / 1e12
add("D2D copy 1 GiB (read+write)", "torch copy_", t, copy_bw, "TB/s")
del src, dst

# ---------------------------------------------------------------- GEMM bf16 8192^3
gemm_peak = 0.0
from torch.nn.attention import SDPBackend, sdpa_kernel


def sdpa(q, k, v, causal, backend):
    with sdpa_kernel(backend):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)

def dense_and_prefill():
    global gemm_peak, VNAME
    M = N = K = 4096 if QUICK else 8192
    a = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    b = torch.randn(K, N, device=dev, dtype=torch.bfloat16)
    w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)  # Linear weight layout
    c = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
    mp0, mp1 = MatmulParams(0, 0, 1.0, 0.0), MatmulParams(1, 0, 1.0, 0.0)
    da, db, dw, dc = desc(a), desc(b), desc(w), desc(c)
    check(lib.pt_cuda_matmul(ctx, C.byref(da), C.byref(db), None, C.byref(dc), C.byref(mp0)), "matmul")
    ref = a.float() @ b.float()
    e_ours, e_torch = relerr(c, ref), relerr(a @ b, ref)
    check(lib.pt_cuda_matmul(ctx, C.byref(da), C.byref(dw), None, C.byref(dc), C.byref(mp1)), "matmul trans_b")
    e_ours_t = relerr(c, a.float() @ w.float().t())
    tt = bench_pair({
        "ours": lambda: lib.pt_cuda_matmul(ctx, C.byref(da), C.byref(db), None, C.byref(dc), C.byref(mp0)),
        "torch": lambda: torch.matmul(a, b, out=c),
        "ours_tb": lambda: lib.pt_cuda_matmul(ctx, C.byref(da), C.byref(dw), None, C.byref(dc), C.byref(mp1)),
        "torch_tb": lambda: torch.matmul(a, w.t(), out=c),
    }, 10)
    fl = 2.0 * M * N * K
    case = "GEMM bf16 %d^3" % M
    add(case, "torch.matmul", tt["torch"], fl / tt["torch"][0] * 1e-6, "TFLOP/s", err=e_torch)
    add(case, "ours (cuBLASLt)", tt["ours"], fl / tt["ours"][0] * 1e-6, "TFLOP/s", tt["torch"][0], e_ours)
    add(case + " x W^T", "torch a@w.t()", tt["torch_tb"], fl / tt["torch_tb"][0] * 1e-6, "TFLOP/s")
    add(case + " x W^T", "ours trans_b", tt["ours_tb"], fl / tt["ours_tb"][0] * 1e-6, "TFLOP/s", tt["torch_tb"][0], e_ours_t)
    gemm_peak = max(fl / tt[k][0] * 1e-6 for k in tt)
    del a, b, w, c, ref

    # decode-shaped GEMM: one token through a 4096 x 4096 Linear (bytes-bound; host overhead shows)
    for Mx in (1, 16):
        x = torch.randn(Mx, 4096, device=dev, dtype=torch.bfloat16)
        wl = torch.randn(4096, 4096, device=dev, dtype=torch.bfloat16)
        bl = torch.randn(4096, device=dev, dtype=torch.bfloat16)
        yl = torch.empty(Mx, 4096, device=dev, dtype=torch.bfloat16)
        dx, dwl, dbl, dyl = desc(x), desc(wl), desc(bl), desc(yl)
        mpl = MatmulParams(1, 0, 1.0, 0.0)
        check(lib.pt_cuda_matmul(ctx, C.byref(dx), C.byref(dwl), C.byref(dbl), C.byref(dyl), C.byref(mpl)), "linear")
        e_l = relerr(yl, x.float() @ wl.float().t() + bl.float())
        tl = bench_pair({
            "torch": lambda: F.linear(x, wl, bl),
            "ours": lambda: lib.pt_cuda_matmul(ctx, C.byref(dx), C.byref(dwl), C.byref(dbl), C.byref(dyl), C.byref(mpl)),
        }, 50)
        byl = 4096 * 4096 * 2
        case = "Linear bf16 M%d 4096x4096 + bias" % Mx
        add(case, "torch F.linear", tl["torch"], byl / tl["torch"][0] * 1e-6, "TB/s")
        add(case, "ours (cached plan)", tl["ours"], byl / tl["ours"][0] * 1e-6, "TB/s", tl["torch"][0], e_l)
        del x, wl, bl, yl

    # ---------------------------------------------------------------- attention prefill


    def sdpa(q, k, v, causal, backend):
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


    def attn_case(B, H, S, D, causal, variants):
        q = torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16)
        k = torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16)
        v = torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16)
        o = torch.empty_like(q)
        # ours takes [B, S, H, D] views: transpose(1, 2) of PyTorch's [B, H, S, D]
        dq, dk, dv, do = desc(q.transpose(1, 2)), desc(k.transpose(1, 2)), desc(v.transpose(1, 2)), desc(o.transpose(1, 2))
        params = {vv: AttnParams(0.0, int(causal), None, None, 0, 0, 0, 0, vv, 0) for vv in variants}

        def ours(vv):
            return lambda: lib.pt_cuda_flash_attn_fwd(ctx, C.byref(dq), C.byref(dk), C.byref(dv), C.byref(do), None,
                                                      C.byref(params[vv]))

        ref = sdpa(q.float(), k.float(), v.float(), causal, SDPBackend.EFFICIENT_ATTENTION)
        errs = {}
        for vv in variants:
            o.fill_(float("nan"))
            check(ours(vv)(), "flash_attn_fwd variant %d" % vv)
            torch.cuda.synchronize()
            errs[vv] = relerr(o, ref)
        e_fa2 = relerr(sdpa(q, k, v, causal, SDPBackend.FLASH_ATTENTION), ref)
        fns = {"torch_fa2": lambda: sdpa(q, k, v, causal, SDPBackend.FLASH_ATTENTION)}
        have_cudnn = True
        try:
            e_cudnn = relerr(sdpa(q, k, v, causal, SDPBackend.CUDNN_ATTENTION), ref)
            fns["torch_cudnn"] = lambda: sdpa(q, k, v, causal, SDPBackend.CUDNN_ATTENTION)
        except Exception as ex:  # noqa: BLE001
            have_cudnn = False
            print("cuDNN attention unavailable:", ex)
        for vv in variants:
            fns["ours_v%d" % vv] = ours(vv)
        iters = 3 if S >= 8192 else 10
        tt = bench_pair(fns, iters)
        flops = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)
        case = "attn fwd bf16 B%d H%d S%d D%d %s" % (B, H, S, D, "causal" if causal else "full")
        base = tt["torch_fa2"][0]
        add(case, "torch SDPA flash (FA2)", tt["torch_fa2"], flops / base * 1e-6, "TFLOP/s", err=e_fa2)
        if have_cudnn:
            add(case, "torch SDPA cuDNN", tt["torch_cudnn"], flops / tt["torch_cudnn"][0] * 1e-6, "TFLOP/s", base, e_cudnn)
        for vv in variants:
            t = tt["ours_v%d" % vv]
            add(case, VNAME.get(vv, "ours v%d" % vv), t, flops / t[0] * 1e-6, "TFLOP/s", base, errs[vv])


    VNAME = {0: "ours (auto)", 4: "ours mma.sync 128x64", 1: "ours mma.sync 128x32", 2: "ours mma.sync 64x64",
             3: "ours mma.sync 8 warps", 5: "ours wgmma cp.async", 6: "ours wgmma TMA ping-pong", 7: "ours wgmma TMA no ping-pong"}
    VARIANTS = [0, 6, 5, 4]
    attn_case(4, 32, 2048, 128, False, VARIANTS)
    attn_case(4, 32, 2048, 128, True, VARIANTS)
    attn_case(1, 32, 8192, 128, True, [0, 5, 4])
    attn_case(4, 32, 2048, 64, False, [0, 4])
    attn_case(4, 32, 2048, 64, True, [0, 4])
    attn_case(2, 16, 2048, 256, False, [0, 4])



if not DECODE_ONLY:
    dense_and_prefill()

# ---------------------------------------------------------------- decode
def decode_case(B, Hq, Hkv, L, D, block_sizes=(16, 128), splits_sweep=()):
    """Contiguous cache: torch SDPA, ours auto / register kernel (v1) / cp.async stages (v2);
    paged cache (the same keys scattered over a shuffled pool, vLLM-style block table): ours
    auto per block size. The paged output must equal the contiguous one bit for bit."""
    q = torch.randn(B, Hq, 1, D, device=dev, dtype=torch.bfloat16)
    kc = torch.randn(B, Hkv, L, D, device=dev, dtype=torch.bfloat16)
    vc = torch.randn(B, Hkv, L, D, device=dev, dtype=torch.bfloat16)
    o = torch.empty(B, Hq, D, device=dev, dtype=torch.bfloat16)
    lens = torch.full((B,), L, device=dev, dtype=torch.int32)
    dq, dk, dv, do, dl = desc(q.view(B, Hq, D)), desc(kc), desc(vc), desc(o), desc(lens)
    # auto, registers, cp.async 3 / 4 stages, tensor cores; +8: combine without PDL. PT_DEC_VARS picks a subset
    VARS = tuple(int(x) for x in os.environ.get("PT_DEC_VARS", "0,1,2,3,4,9,10,12").split(","))
    prm = {vv: AttnParams(0.0, 0, None, None, 0, 0, 0, 0, vv, 0) for vv in VARS}
    for ns in splits_sweep:
        prm["s%d" % ns] = AttnParams(0.0, 0, None, None, 0, 0, 0, ns, 0, 0)

    def ours(vv):
        return lambda: lib.pt_cuda_flash_attn_decode(ctx, C.byref(dq), C.byref(dk), C.byref(dv), C.byref(dl), C.byref(do),
                                                     C.byref(prm[vv]))

    kr = kc.float().repeat_interleave(Hq // Hkv, dim=1)
    vr = vc.float().repeat_interleave(Hq // Hkv, dim=1)
    ref = F.scaled_dot_product_attention(q.float(), kr, vr).view(B, Hq, D)
    del kr, vr
    errs, ok, outs = {}, [], {}
    for vv in list(VARS) + ["s%d" % ns for ns in splits_sweep]:
        o.fill_(float("nan"))
        try:
            check(ours(vv)(), "decode variant %s" % vv)
        except RuntimeError as ex:
            print(ex)
            continue
        errs[vv] = relerr(o, ref)
        outs[vv] = o.clone()
        ok.append(vv)
    gqa = Hq != Hkv
    tfn = lambda: F.scaled_dot_product_attention(q, kc, vc, enable_gqa=gqa)
    e_torch = relerr(tfn().view(B, Hq, D), ref)
    fns = {"torch": tfn}
    for vv in ok:
        fns["ours" if vv == 0 else "ours_%s" % vv] = ours(vv)
    PAGED_VARS = [v for v in (0, 4) if v in ok and (gqa or v == 0)]
    paged = {}
    for bs in block_sizes:
        nblk = L // bs
        blocks = kc.view(B, Hkv, nblk, bs, D).permute(0, 2, 1, 3, 4).reshape(B * nblk, Hkv, bs, D)
        vblocks = vc.view(B, Hkv, nblk, bs, D).permute(0, 2, 1, 3, 4).reshape(B * nblk, Hkv, bs, D)
        perm = torch.randperm(B * nblk, device=dev)
        kp = torch.empty_like(blocks)
        vp = torch.empty_like(vblocks)
        kp[perm] = blocks
        vp[perm] = vblocks
        del blocks, vblocks
        table = perm.view(B, nblk).to(torch.int32).contiguous()
        dkp, dvp, dbt = desc(kp), desc(vp), desc(table)
        paged[bs] = (kp, vp, table, dkp, dvp, dbt)
        for pv in PAGED_VARS:
            if pv not in ok:
                continue
            fnp = (lambda dkp=dkp, dvp=dvp, dbt=dbt, pv=pv: lib.pt_cuda_flash_attn_decode_paged(
                ctx, C.byref(dq), C.byref(dkp), C.byref(dvp), C.byref(dbt), C.byref(dl), C.byref(do), C.byref(prm[pv])))
            o.fill_(float("nan"))
            try:
                check(fnp(), "decode_paged bs %d variant %d" % (bs, pv))
            except RuntimeError as ex:
                print(ex)
                continue
            torch.cuda.synchronize()
            same = torch.equal(o, outs[pv])
            print("paged bs %d variant %d: equal to contiguous: %s, rel err %.2e" % (bs, pv, same, relerr(o, ref)))
            errs["p%d_%d" % (bs, pv)] = relerr(o, ref)
            fns["paged%d_%d" % (bs, pv)] = fnp
    if not gqa:
        try:
            sdpa(q, kc, vc, False, SDPBackend.FLASH_ATTENTION)
            fns["torch_fa2"] = lambda: sdpa(q, kc, vc, False, SDPBackend.FLASH_ATTENTION)
        except Exception as ex:  # noqa: BLE001
            print("flash backend refused decode:", ex)
    tt = bench_pair(fns, 20)
    byts = 2.0 * B * Hkv * L * D * 2
    case = "decode bf16 B%d Hq%d Hkv%d D%d KV%d" % (B, Hq, Hkv, D, L)
    pct = lambda k: "%.0f%% of copy" % (100 * byts / tt[k][0] * 1e-6 / copy_bw)
    add(case, "torch SDPA (default)", tt["torch"], byts / tt["torch"][0] * 1e-6, "TB/s", err=e_torch)
    if "torch_fa2" in tt:
        add(case, "torch SDPA flash", tt["torch_fa2"], byts / tt["torch_fa2"][0] * 1e-6, "TB/s", tt["torch"][0])
    names = {0: "ours auto", 1: "ours v1 registers", 2: "ours v2 cp.async 3st", 3: "ours v3 cp.async 4st",
             4: "ours v4 mma", 9: "ours v1 no PDL", 10: "ours v2 no PDL", 12: "ours v4 no PDL"}
    for vv in ok:
        k = "ours" if vv == 0 else "ours_%s" % vv
        name = names.get(vv, "ours splits=%s" % str(vv)[1:])
        add(case, name + " " + pct(k), tt[k], byts / tt[k][0] * 1e-6, "TB/s", tt["torch"][0], errs[vv])
    for bs in block_sizes:
        for pv in PAGED_VARS:
            k = "paged%d_%d" % (bs, pv)
            if k not in tt:
                continue
            add(case, "ours paged bs%d v%d %s" % (bs, pv, pct(k)), tt[k], byts / tt[k][0] * 1e-6, "TB/s", tt["torch"][0],
                errs["p%d_%d" % (bs, pv)])
            kc_ = "ours" if pv == 0 else "ours_%d" % pv
            print("%s: paged bs %d / contiguous time, variant %d: %.3f" % (case, bs, pv, tt[k][0] / tt[kc_][0]))
    best = min((k for k in tt if k.startswith("ours")), key=lambda k: tt[k][0], default=None)
    if best:
        print("%s: fastest contiguous variant %s, %.1f us, %.0f%% of copy" % (case, best, tt[best][0], 100 * byts / tt[best][0] * 1e-6 / copy_bw))
    del paged
    return byts / tt["ours"][0] * 1e-6 if "ours" in tt else 0.0


GQA_ONLY = os.environ.get("PT_DEC_GQA_ONLY") == "1"
dec_bw = 0.0 if GQA_ONLY else decode_case(1, 32, 32, 32768, 128)
decode_case(1, 32, 8, 32768, 128, splits_sweep=() if GQA_ONLY else (32, 128, 264))
decode_case(8, 32, 8, 4096, 128)
decode_case(1, 32, 8, 131072, 128, (16,))
decode_case(32, 32, 8, 2048, 128, (16,))

# ---------------------------------------------------------------- table
print()
print("%-44s %-24s %10s %21s %9s %-8s %8s %9s" % ("case", "impl", "median us", "(min..max)", "rate", "unit", "vs torch", "rel err"))
for case, impl, med, mn, mx, metric, unit, ratio, err in rows:
    print("%-44s %-24s %10.1f %21s %9.2f %-8s %8s %9s" % (
        case, impl, med, "(%.1f..%.1f)" % (mn, mx), metric, unit, "" if ratio is None else "%.2fx" % ratio,
        "" if err is None else "%.2e" % err))
print("ceilings: copy %.2f TB/s (read+write), best bf16 GEMM %.0f TFLOP/s; MHA decode reaches %.0f%% of copy bandwidth" % (
    copy_bw, gemm_peak, 100 * dec_bw / copy_bw))
lib.pt_cuda_ctx_destroy(ctx)
