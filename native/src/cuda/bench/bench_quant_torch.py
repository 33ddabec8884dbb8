#!/usr/bin/env python3
"""Quantized matmul of libpanatron_cuda side by side with PyTorch on the same GPU (issue 7,
items 4 and 5).

Usage: python3 bench_quant_torch.py path/to/libpanatron_cuda.so [--quick]

  int8:  pt_cuda_matmul_s8 (s8 x s8 -> s32) against torch._int_mm at 4096^3 and 8192^3 (same
         layout: A [M,K] row-major, B = W^T with W [N,K] contiguous), plus torch.matmul bf16
         (cuBLASLt) for reference; the whole W8A8 / LLM.int8 linear (pt_cuda_matmul_int8)
         against the same steps composed from torch ops.
  FP4:   pt_cuda_fp4_matmul (E2M1 codes + group scales, W4A16) against
         torch._weight_int4pack_mm (int4 + bf16 scale/zero, tinygemm) at 8192x8192 and
         4096x4096, M = 1 (decode) and M = 4; the bytes each reads and GB/s against the
         measured device copy bandwidth. M > 4 (tensor-core GEMM, M = 16..1024 at 8192^2 and
         4096^2): TFLOP/s against torch bf16 matmul, the old dequantize + cuBLASLt path (stood in
         by torch ops: gather/scale into a dense bf16 weight + torch.matmul) and tinygemm; W4A4
         emulated. --fp4-gemm: only the FP4 part (skips int8 and most GEMV cases).
Timings: each op run ITERS times back to back per rep (CUDA-graph replays where capture
works), ours and PyTorch interleaved rep by rep, median (min..max) of REPS reps. Accuracy:
relative Frobenius error against a float64 reference. Prints a table last.
"""
import ctypes as C
import statistics
import sys

import torch

LIB = sys.argv[1]
QUICK = "--quick" in sys.argv
FP4_GEMM = "--fp4-gemm" in sys.argv
lib = C.CDLL(LIB)
lib.pt_cuda_last_error.restype = C.c_char_p

PT_F32, PT_F16, PT_BF16, PT_I8, PT_U8, PT_I32, PT_U4 = 0, 1, 2, 3, 4, 5, 6
DT = {torch.float32: PT_F32, torch.float16: PT_F16, torch.bfloat16: PT_BF16, torch.int8: PT_I8, torch.int32: PT_I32,
      torch.uint8: PT_U8}


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int32), ("device", C.c_int32), ("ndim", C.c_int32),
                ("reserved", C.c_int32), ("shape", C.c_int64 * 4), ("stride", C.c_int64 * 4)]


class CtxParams(C.Structure):
    _fields_ = [("device", C.c_int32), ("allow_tf32", C.c_int32), ("workspace_bytes", C.c_int64), ("stream", C.c_void_p)]


class Int8Params(C.Structure):
    _fields_ = [("mode", C.c_int32), ("activation", C.c_int32), ("threshold", C.c_float), ("reserved", C.c_int32),
                ("w_packed", C.c_void_p)]


class Fp4Params(C.Structure):
    _fields_ = [("format", C.c_int32), ("group", C.c_int32), ("w4a4", C.c_int32), ("act_format", C.c_int32),
                ("act_clip", C.c_float), ("reserved", C.c_int32), ("act_shift", C.c_void_p)]


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


def desc_u4(codes_u8, k):
    """codes [N, K/2] uint8 -> a PT_U4 [N, K] descriptor"""
    d = desc(codes_u8)
    d.dtype = PT_U4
    d.shape[1] = k
    d.stride[1] = 1
    return d


torch.manual_seed(0)
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(0)
print("device: %s, %d SMs; torch %s" % (props.name, props.multi_processor_count, torch.__version__))
STREAM = torch.cuda.Stream()
torch.cuda.set_stream(STREAM)
ctx = C.c_void_p()
check(lib.pt_cuda_ctx_create(C.byref(CtxParams(0, 0, 0, C.c_void_p(STREAM.cuda_stream))), C.byref(ctx)), "ctx_create")
REPS = 7 if QUICK else 15


def graphed(f, iters):
    """f() iters times captured in one CUDA graph (None when capture fails)."""
    try:
        f()
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g, stream=STREAM):
            for _ in range(iters):
                f()
        torch.cuda.synchronize()
        return g.replay
    except Exception as ex:  # noqa: BLE001
        print("graph capture failed (%s): timing direct launches" % ex)
        torch.cuda.set_stream(STREAM)
        return None


def bench(fns, iters, graph=False):
    """fns: {name: fn}. Interleaved reps; each rep times iters calls of each fn."""
    runs = {}
    for k, f in fns.items():
        g = graphed(f, iters) if graph else None
        runs[k] = (g, 1) if g else (f, iters)
        f()
    torch.cuda.synchronize()
    times = {k: [] for k in fns}
    for _ in range(REPS):
        for k, (f, n) in runs.items():
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(n):
                f()
            e.record()
            e.synchronize()
            times[k].append(s.elapsed_time(e) / iters * 1e3)  # us per call
    return {k: (statistics.median(v), min(v), max(v)) for k, v in times.items()}


def relerr(x, ref):
    x = x.double()
    return ((x - ref).norm() / ref.norm()).item()


rows = []


def add(case, impl, t, metric, unit, base=None, err=None):
    rows.append((case, impl, t[0], t[1], t[2], metric, unit, None if base is None else base / t[0], err))
    print("row: %s | %s | %.1f us (%.1f..%.1f) | %.1f %s%s" % (case, impl, t[0], t[1], t[2], metric, unit,
          "" if err is None else " | err %.2e" % err), flush=True)


# ---------------------------------------------------------------- ceilings
n = 1 << 30
src = torch.empty(n, dtype=torch.uint8, device=dev).random_(0, 255)
dst = torch.empty_like(src)
t = bench({"copy": lambda: dst.copy_(src)}, 5)["copy"]
copy_bw = 2 * n / (t[0] * 1e-6) / 1e9
add("D2D copy 1 GiB (read+write)", "torch copy_", t, copy_bw, "GB/s")
del src, dst

# ---------------------------------------------------------------- int8 GEMM
for S in (() if FP4_GEMM else (4096,) if QUICK else (4096, 8192)):
    M = N = K = S
    a = torch.randint(-127, 128, (M, K), device=dev, dtype=torch.int8)
    w = torch.randint(-127, 128, (N, K), device=dev, dtype=torch.int8)
    c = torch.empty(M, N, device=dev, dtype=torch.int32)
    da, dw, dc = desc(a), desc(w), desc(c)
    ours = lambda: lib.pt_cuda_matmul_s8(ctx, C.byref(da), C.byref(dw), None, None, None, C.byref(dc), 0)
    c.fill_(-1)
    check(ours(), "matmul_s8")
    ref = torch._int_mm(a, w.t())
    exact = bool(torch.equal(c, ref))
    wt_rm = w.t().contiguous()  # B row-major [K, N]: the other layout torch accepts
    ab, wb = a.to(torch.bfloat16), w.to(torch.bfloat16)
    cb = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
    tt = bench({
        "torch_int_mm": lambda: torch._int_mm(a, w.t()),
        "ours": ours,
        "torch_int_mm_rm": lambda: torch._int_mm(a, wt_rm),
        "torch_bf16": lambda: torch.matmul(ab, wb.t(), out=cb),
    }, 5 if S == 8192 else 10)
    ops = 2.0 * M * N * K
    case = "int8 GEMM %d^3 (s32 out)" % S
    add(case, "torch._int_mm (B col-major)", tt["torch_int_mm"], ops / tt["torch_int_mm"][0] * 1e-6, "TOPS")
    add(case, "ours pt_cuda_matmul_s8", tt["ours"], ops / tt["ours"][0] * 1e-6, "TOPS", tt["torch_int_mm"][0],
        0.0 if exact else float("nan"))
    add(case, "torch._int_mm (B row-major)", tt["torch_int_mm_rm"], ops / tt["torch_int_mm_rm"][0] * 1e-6, "TOPS",
        tt["torch_int_mm"][0])
    add(case, "torch.matmul bf16 (ref)", tt["torch_bf16"], ops / tt["torch_bf16"][0] * 1e-6, "TFLOP/s", tt["torch_int_mm"][0])
    del a, w, c, ref, wt_rm, ab, wb, cb

# ---------------------------------------------------------------- W8A8 / LLM.int8 linear, bf16 x -> bf16 y
for S in (() if FP4_GEMM else (4096,) if QUICK else (4096, 8192)):
    M = N = K = S
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    w = torch.randn(N, K, device=dev, dtype=torch.float32) * 0.02
    ws = (w.abs().amax(1) / 127).float()
    wq = torch.round(w * (127 / w.abs().amax(1, keepdim=True))).clamp(-127, 127).to(torch.int8)
    bias = torch.randn(N, device=dev, dtype=torch.float32)
    y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
    # LLM: plant ~0.1% outlier columns (the paper's regime: a handful of feature dims)
    xl = x.clone()
    cols = torch.randperm(K, device=dev)[: max(1, K // 1024)]
    xl[:, cols] *= 8.0
    dx, dxl, dwq, dws, db, dy = desc(x), desc(xl), desc(wq), desc(ws), desc(bias), desc(y)
    p_w8a8, p_llm = Int8Params(1, 0, 6.0, 0, None), Int8Params(0, 0, 6.0, 0, None)
    f_w8a8 = lambda: lib.pt_cuda_matmul_int8(ctx, C.byref(dx), C.byref(dwq), C.byref(dws), None, C.byref(db), C.byref(dy), C.byref(p_w8a8))
    f_llm = lambda: lib.pt_cuda_matmul_int8(ctx, C.byref(dxl), C.byref(dwq), C.byref(dws), None, C.byref(db), C.byref(dy), C.byref(p_llm))

    def torch_w8a8(xx=x):
        xf = xx.float()
        amax = xf.abs().amax(1, keepdim=True)
        xq = torch.round(xf * (127 / amax)).clamp(-127, 127).to(torch.int8)
        acc = torch._int_mm(xq, wq.t())
        return (acc.float() * (amax / 127) * ws + bias).to(torch.bfloat16)

    y.fill_(float("nan"))
    check(f_w8a8(), "matmul_int8 W8A8")
    torch.cuda.synchronize()
    ref = (x.double() @ (wq.double() * ws.double()[:, None]).t()) + bias.double()
    e_ours, e_torch = relerr(y, ref), relerr(torch_w8a8(), ref)
    y.fill_(float("nan"))
    check(f_llm(), "matmul_int8 LLM")
    torch.cuda.synchronize()
    ref_l = (xl.double() @ (wq.double() * ws.double()[:, None]).t()) + bias.double()
    e_llm = relerr(y, ref_l)
    wbf = (wq.float() * ws[:, None]).to(torch.bfloat16)
    tt = bench({
        "torch_w8a8": torch_w8a8,
        "ours_w8a8": f_w8a8,
        "ours_llm": f_llm,
        "torch_bf16": lambda: torch.nn.functional.linear(x, wbf, bias.to(torch.bfloat16)),
    }, 5 if S == 8192 else 10)
    ops = 2.0 * M * N * K
    case = "W8A8 linear bf16 %d^3" % S
    add(case, "torch ops (quant+_int_mm+deq)", tt["torch_w8a8"], ops / tt["torch_w8a8"][0] * 1e-6, "TOPS", err=e_torch)
    add(case, "ours matmul_int8 W8A8", tt["ours_w8a8"], ops / tt["ours_w8a8"][0] * 1e-6, "TOPS", tt["torch_w8a8"][0], e_ours)
    add(case, "ours LLM.int8 (%d outl.)" % len(cols), tt["ours_llm"], ops / tt["ours_llm"][0] * 1e-6, "TOPS", tt["torch_w8a8"][0], e_llm)
    add(case, "torch F.linear bf16 (ref)", tt["torch_bf16"], ops / tt["torch_bf16"][0] * 1e-6, "TFLOP/s", tt["torch_w8a8"][0])
    del x, xl, w, wq, ws, bias, y, ref, ref_l, wbf

# ---------------------------------------------------------------- FP4 W4A16
E2M1 = torch.tensor([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=torch.float64, device=dev)


def fp4_case(N, K, M, G):
    codes = torch.randint(0, 256, (N, K // 2), device=dev, dtype=torch.uint8)
    scales = (torch.rand(N, K // G, device=dev) * 0.01 + 0.001).to(torch.bfloat16)
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
    dq, ds, dx, dy = desc_u4(codes, K), desc(scales), desc(x), desc(y)
    prm = Fp4Params(0, G, 0, 0, 0.0, 0, None)
    raw = lambda: lib.pt_cuda_fp4_matmul(ctx, C.byref(dx), C.byref(dq), C.byref(ds), None, C.byref(dy), C.byref(prm))
    ours = lambda: check(raw(), "fp4_matmul")  # raises inside a graph capture too
    y.fill_(float("nan"))
    ours()
    torch.cuda.synchronize()
    lo, hi = (codes & 15).long(), (codes >> 4).long()
    idx = torch.stack([lo, hi], dim=2).reshape(N, K)
    wref = E2M1[idx] * scales.double().repeat_interleave(G, dim=1)
    ref = x.double() @ wref.t()
    e_ours = relerr(y, ref)
    del wref, idx, lo, hi
    fns = {"ours": ours}
    # torch int4 weight-only (tinygemm): uint8 [N, K/2] -> packed, bf16 scale/zero [K/G, N, 2]
    tname = None
    try:
        wpk = torch._convert_weight_to_int4pack(codes, 8)
        sz = torch.stack([scales.t().contiguous(), torch.zeros_like(scales.t())], dim=2).contiguous()
        tfn = lambda: torch._weight_int4pack_mm(x, wpk, G, sz)
        tfn()
        fns = {"torch_int4": tfn, "ours": ours}
        tname = "torch._weight_int4pack_mm"
    except Exception as ex:  # noqa: BLE001
        print("torch._weight_int4pack_mm unavailable (%s)" % ex)
    wb = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
    fns["torch_bf16"] = lambda: torch.matmul(x, wb.t())
    tt = bench(fns, 50 if M <= 4 else 10, graph=True)
    byts = N * K / 2 + scales.numel() * 2 + x.numel() * 2 + y.numel() * 2
    case = "W4A16 %dx%d M%d G%d" % (N, K, M, G)
    base = tt["torch_int4"][0] if tname else None
    if tname:
        add(case, tname, tt["torch_int4"], N * K / 2 / (tt["torch_int4"][0] * 1e-6) / 1e9, "GB/s codes")
    add(case, "ours fp4 E2M1 (%s)" % ("GEMV" if M <= 4 else "TC GEMM"), tt["ours"], byts / (tt["ours"][0] * 1e-6) / 1e9, "GB/s", base, e_ours)
    add(case, "torch bf16 matmul (ref)", tt["torch_bf16"], N * K * 2 / (tt["torch_bf16"][0] * 1e-6) / 1e9, "GB/s", base)
    return byts / (tt["ours"][0] * 1e-6) / 1e9


def fp4_gemm_case(N, K, M, G, w4a4=False):
    """M > 4: our tensor-core GEMM (codes decoded per tile, no dense weight) against the old
    path's cost stood in by torch (dequantize to bf16 with torch ops + torch.matmul, i.e.
    cuBLASLt), torch bf16 matmul alone (the old path's GEMM part, a lower bound for it) and
    torch._weight_int4pack_mm. TFLOP/s of 2MNK; GB/s of code bytes."""
    codes = torch.randint(0, 256, (N, K // 2), device=dev, dtype=torch.uint8)
    scales = (torch.rand(N, K // G, device=dev) * 0.01 + 0.001).to(torch.bfloat16)
    x = torch.randn(M, K, device=dev, dtype=torch.bfloat16)
    y = torch.empty(M, N, device=dev, dtype=torch.bfloat16)
    dq, ds, dx, dy = desc_u4(codes, K), desc(scales), desc(x), desc(y)
    prm = Fp4Params(0, G, 1 if w4a4 else 0, 0, 0.0, 0, None)
    raw = lambda: lib.pt_cuda_fp4_matmul(ctx, C.byref(dx), C.byref(dq), C.byref(ds), None, C.byref(dy), C.byref(prm))
    ours = lambda: check(raw(), "fp4_matmul")
    y.fill_(float("nan"))
    ours()
    torch.cuda.synchronize()
    lo, hi = (codes & 15).long(), (codes >> 4).long()
    idx = torch.stack([lo, hi], dim=2).reshape(N, K)
    lv16 = E2M1.to(torch.bfloat16)
    sc_rep = scales.repeat_interleave(G, dim=1)
    wq = (E2M1[idx] * scales.double().repeat_interleave(G, dim=1)).to(torch.bfloat16)  # level * scale rounded to bf16
    e_ours = None if w4a4 else relerr(y, x.double() @ wq.double().t())
    del lo, hi
    idx32 = idx.to(torch.int32)
    del idx
    wdq = torch.empty(N, K, device=dev, dtype=torch.bfloat16)
    yo = torch.empty(M, N, device=dev, dtype=torch.bfloat16)

    def old_path():  # dequantize (torch ops: gather + scale) into a dense bf16 weight, then cuBLASLt
        torch.mul(lv16[idx32], sc_rep, out=wdq)
        torch.matmul(x, wdq.t(), out=yo)

    fns = {"ours": ours, "old": old_path}
    tname = None
    if not w4a4:
        try:
            wpk = torch._convert_weight_to_int4pack(codes, 8)
            sz = torch.stack([scales.t().contiguous(), torch.zeros_like(scales.t())], dim=2).contiguous()
            tfn = lambda: torch._weight_int4pack_mm(x, wpk, G, sz)
            tfn()
            fns["torch_int4"] = tfn
            tname = "torch._weight_int4pack_mm"
        except Exception as ex:  # noqa: BLE001
            print("torch._weight_int4pack_mm unavailable (%s)" % ex)
    fns["torch_bf16"] = lambda: torch.matmul(x, wq.t(), out=yo)
    tt = bench(fns, 10 if M <= 256 else 5, graph=True)
    ops = 2.0 * M * N * K
    case = "%s %dx%d M%d G%d" % ("W4A4 emu" if w4a4 else "W4A16", N, K, M, G)
    gbs = lambda t: N * K / 2 / (t[0] * 1e-6) / 1e9
    base = tt["torch_bf16"][0]
    add(case, "ours TC GEMM (%.0f GB/s codes)" % gbs(tt["ours"]), tt["ours"], ops / tt["ours"][0] * 1e-6, "TFLOP/s", base, e_ours)
    add(case, "old: deq (torch) + cuBLASLt", tt["old"], ops / tt["old"][0] * 1e-6, "TFLOP/s", base)
    if tname:
        add(case, "%s (%.0f GB/s)" % (tname, gbs(tt["torch_int4"])), tt["torch_int4"], ops / tt["torch_int4"][0] * 1e-6, "TFLOP/s", base)
    add(case, "torch bf16 matmul (base)", tt["torch_bf16"], ops / tt["torch_bf16"][0] * 1e-6, "TFLOP/s", base)
    del wq, wdq, idx32, sc_rep


if not FP4_GEMM:
    gemv_bw = fp4_case(8192, 8192, 1, 32)
    fp4_case(8192, 8192, 1, 128)
    fp4_case(4096, 4096, 1, 32)
    fp4_case(8192, 8192, 4, 32)
else:
    gemv_bw = fp4_case(8192, 8192, 1, 128)
for S in (8192, 4096):
    for M in (16, 64, 256, 1024):
        fp4_gemm_case(S, S, M, 128)
fp4_gemm_case(8192, 8192, 256, 32)
fp4_gemm_case(8192, 8192, 256, 128, w4a4=True)
fp4_gemm_case(8192, 8192, 16, 128, w4a4=True)

print()
print("%-30s %-44s %10s %23s %9s %-10s %8s %9s" % ("case", "impl", "median us", "(min..max)", "rate", "unit", "vs torch", "rel err"))
for case, impl, med, mn, mx, metric, unit, ratio, err in rows:
    print("%-30s %-44s %10.1f %23s %9.1f %-10s %8s %9s" % (
        case, impl, med, "(%.1f..%.1f)" % (mn, mx), metric, unit, "" if ratio is None else "%.2fx" % ratio,
        "" if err is None else "%.2e" % err))
print("ceiling: copy %.0f GB/s (read+write); W4A16 GEMV 8192^2 M1 G32 at %.0f GB/s = %.0f%% of it" % (
    copy_bw, gemv_bw, 100 * gemv_bw / copy_bw))
lib.pt_cuda_ctx_destroy(ctx)
