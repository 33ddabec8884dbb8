#!/usr/bin/env python3
"""Sparse matmul of libpanatron_cuda side by side with PyTorch on the same GPU (issue 7 item 6).

Usage: python3 bench_sparse_torch.py path/to/libpanatron_cuda.so [--quick]

y = x @ w^T, bf16, w [8192, 8192]; M = 8192 (the 8192^3 GEMM) and decode shapes M = 1 .. 256:
  dense    torch.matmul (cuBLAS), the baseline of every ratio
  2:4      ours: pt_cuda_sparse24_matmul through cuSPARSELt (mode 1 = always sparse, with
           cusparseLtMatmulSearch once per plan; 'default alg' = params.no_search), its dense fallback
           (mode 2: cuBLASLt on the pruned weight) and the automatic mode;
           torch: torch._cslt_sparse_mm on torch._cslt_compress(w) (what
           to_sparse_semi_structured runs on cuSPARSELt), and F.linear on the
           to_sparse_semi_structured weight
  block    ours: pt_cuda_bsr_matmul with 50% and 90% of the 64 x 64 blocks zero
TFLOP/s are dense-equivalent (2 M N K / t). Floor: max(dense-equivalent FLOPs / spec peak
(989 TFLOP/s dense bf16, x2 for 2:4 on the sparse tensor cores, x1/density for block-sparse),
bytes read once / measured copy bandwidth). Timings: ITERS calls back to back per rep (CUDA
graph replays for decode shapes), all implementations interleaved rep by rep, median
(min..max) of REPS reps. Accuracy: relative Frobenius error against float64 of the same pruned
weight. The table comes last.
"""
import ctypes as C
import statistics
import sys

import torch
import torch.nn.functional as F

LIB = sys.argv[1]
QUICK = "--quick" in sys.argv
lib = C.CDLL(LIB)
lib.pt_cuda_last_error.restype = C.c_char_p
PT_F32, PT_F16, PT_BF16 = 0, 1, 2
DT = {torch.float32: PT_F32, torch.float16: PT_F16, torch.bfloat16: PT_BF16}


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("dtype", C.c_int32), ("device", C.c_int32), ("ndim", C.c_int32),
                ("reserved", C.c_int32), ("shape", C.c_int64 * 4), ("stride", C.c_int64 * 4)]


class CtxParams(C.Structure):
    _fields_ = [("device", C.c_int32), ("allow_tf32", C.c_int32), ("workspace_bytes", C.c_int64), ("stream", C.c_void_p)]


class S24Params(C.Structure):
    _fields_ = [("prune", C.c_int32), ("dense_max_m", C.c_int32), ("no_search", C.c_int32), ("reserved", C.c_int32)]


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
props = torch.cuda.get_device_properties(0)
print("device: %s, %d SMs; torch %s" % (props.name, props.multi_processor_count, torch.__version__))
STREAM = torch.cuda.Stream()
torch.cuda.set_stream(STREAM)
ctx = C.c_void_p()
check(lib.pt_cuda_ctx_create(C.byref(CtxParams(0, 0, 0, C.c_void_p(STREAM.cuda_stream))), C.byref(ctx)), "ctx_create")
REPS = 7 if QUICK else 11
PEAK = 989e12


def graphed(f, iters):
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
        print("graph capture failed (%s): timing direct launches" % str(ex)[:200])
        torch.cuda.set_stream(STREAM)
        torch.cuda.synchronize()
        return None


def bench(fns, iters, graph=False):
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


def copy_bw():
    a = torch.empty(1 << 29, dtype=torch.uint8, device=dev)
    b = torch.empty_like(a)
    t = bench({"copy": lambda: b.copy_(a)}, 20)["copy"]
    return 2 * a.numel() / (t[0] * 1e-6)


BW = copy_bw()
print("measured copy bandwidth: %.0f GB/s" % (BW / 1e9))

N = K = 8192
w = torch.randn(N, K, device=dev, dtype=torch.bfloat16)
# ours: prune + compress once; the same pruned weight goes to torch
h24 = C.c_void_p()
check(lib.pt_cuda_sparse24_create(ctx, C.byref(desc(w)), C.byref(S24Params(1, -1, 0, 0)), C.byref(h24)), "sparse24_create")
h24s = C.c_void_p()
check(lib.pt_cuda_sparse24_create(ctx, C.byref(desc(w)), C.byref(S24Params(1, -1, 1, 0)), C.byref(h24s)), "sparse24_create(no_search)")
wp = torch.empty_like(w)
check(lib.pt_cuda_sparse24_pruned(ctx, h24, C.byref(desc(wp))), "sparse24_pruned")
torch.cuda.synchronize()
nz = (wp.view(N, K // 4, 4) != 0).sum(-1)
print("2:4 pruned weight: max non-zeros per group %d, density %.3f" % (nz.max().item(), (wp != 0).float().mean().item()))

torch_cslt = None
try:
    wc = torch._cslt_compress(wp)

    def torch_cslt(x, out=None):
        return torch._cslt_sparse_mm(wc, x.t(), transpose_result=True)
except Exception as ex:  # noqa: BLE001
    print("torch._cslt_compress unavailable: %s" % ex)
torch_semi = None
try:
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured
    SparseSemiStructuredTensor._FORCE_CUTLASS = False
    ws_semi = to_sparse_semi_structured(wp)
    torch_semi = lambda x: F.linear(x, ws_semi)  # noqa: E731
    print("to_sparse_semi_structured: %s" % type(ws_semi).__name__)
except Exception as ex:  # noqa: BLE001
    print("to_sparse_semi_structured unavailable: %s" % ex)


def block_weight(density):
    nb = N // 64
    keep = torch.rand(nb, nb, device=dev) < density
    mask = keep.repeat_interleave(64, 0).repeat_interleave(64, 1)
    return w * mask


bsr = {}
for d in (0.5, 0.1):
    wb = block_weight(d)
    hb = C.c_void_p()
    check(lib.pt_cuda_bsr_create(ctx, C.byref(desc(wb)), C.byref(hb)), "bsr_create")
    nnz, tot = C.c_int64(), C.c_int64()
    check(lib.pt_cuda_bsr_info(hb, C.byref(nnz), C.byref(tot)), "bsr_info")
    bsr[d] = (wb, hb, nnz.value / tot.value)
    print("block-sparse %.0f%% zero: %d of %d blocks" % (100 * (1 - d), nnz.value, tot.value))

rows = []


def relerr(y, ref):
    return ((y.double() - ref).norm() / ref.norm()).item()


def run_case(m):
    x = torch.randn(m, K, device=dev, dtype=torch.bfloat16)
    ys = {}

    def ours24(h, mode, key):
        y = torch.empty(m, N, device=dev, dtype=torch.bfloat16)
        ys[key] = y
        dx, dy = desc(x), desc(y)
        return lambda: check(lib.pt_cuda_sparse24_matmul(ctx, h, C.byref(dx), None, C.byref(dy), mode), "sparse24_matmul")

    def oursb(d, key):
        y = torch.empty(m, N, device=dev, dtype=torch.bfloat16)
        ys[key] = y
        dx, dy = desc(x), desc(y)
        hb = bsr[d][1]
        return lambda: check(lib.pt_cuda_bsr_matmul(ctx, hb, C.byref(dx), None, C.byref(dy)), "bsr_matmul")

    yd = torch.empty(m, N, device=dev, dtype=torch.bfloat16)
    fns = {"torch dense (cuBLAS)": lambda: torch.matmul(x, w.t(), out=yd)}
    fns["ours 2:4 cuSPARSELt"] = ours24(h24, 1, "s")
    fns["ours 2:4 cuSPARSELt default alg"] = ours24(h24s, 1, "ss")
    fns["ours 2:4 dense fallback"] = ours24(h24, 2, "d")
    fns["ours 2:4 auto"] = ours24(h24, 0, "a")
    if torch_cslt:
        def tc():
            ys["tc"] = torch_cslt(x)
        fns["torch _cslt_sparse_mm"] = tc
    if torch_semi:
        def ts():
            ys["ts"] = torch_semi(x)
        fns["torch semi-structured F.linear"] = ts
    fns["ours block-sparse 50%"] = oursb(0.5, "b5")
    fns["ours block-sparse 90%"] = oursb(0.1, "b1")
    # drop what fails, once, before timing
    for k in list(fns):
        try:
            fns[k]()
            torch.cuda.synchronize()
        except Exception as ex:  # noqa: BLE001
            print("m=%d %s: %s" % (m, k, str(ex)[:300]))
            del fns[k]
    iters = 10 if m >= 4096 else 100
    t = bench(fns, iters, graph=m < 4096)
    ref24 = (x.double() @ wp.double().t()) if m <= 256 or m == 8192 else None
    flops = 2.0 * m * N * K
    base = t["torch dense (cuBLAS)"][0]
    semi = t.get("torch _cslt_sparse_mm", (None,))[0]
    for k, v in t.items():
        err = None
        if k == "torch dense (cuBLAS)":
            floor = max(flops / PEAK, (2 * N * K + 2 * m * K + 2 * m * N) / BW)
        elif "block" in k:
            d = 0.5 if "50" in k else 0.1
            dens = bsr[d][2]
            floor = max(flops * dens / PEAK, (2 * N * K * dens + 2 * m * K + 2 * m * N) / BW)
            refb = x.double() @ bsr[d][0].double().t()
            err = relerr(ys["b5" if d == 0.5 else "b1"], refb)
        else:
            sparse = "fallback" not in k and not (k == "ours 2:4 auto" and m <= 128)
            wbytes = 2 * N * K * (0.5 + 1 / 16) if sparse else 2 * N * K  # values + 2-bit metadata per kept value
            floor = max(flops / (2 * PEAK if sparse else PEAK), (wbytes + 2 * m * K + 2 * m * N) / BW)
            key = {"ours 2:4 cuSPARSELt": "s", "ours 2:4 cuSPARSELt default alg": "ss", "ours 2:4 dense fallback": "d",
                   "ours 2:4 auto": "a", "torch _cslt_sparse_mm": "tc", "torch semi-structured F.linear": "ts"}[k]
            err = relerr(ys[key], ref24) if ref24 is not None and key in ys else None
        rows.append(("M=%d N=K=8192" % m, k, v, flops / (v[0] * 1e-6) / 1e12, base / v[0],
                     (semi / v[0]) if semi else None, floor * 1e6, err))
    del x, ys


ms = [8192, 1, 4, 16, 64, 256] if QUICK else [8192, 2048, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
for m in ms:
    run_case(m)
    print("done M=%d" % m, flush=True)

print()
print("%-18s %-32s %26s %9s %8s %8s %9s %9s" % ("case", "impl", "us median (min..max)", "TFLOP/s", "x dense", "x cslt",
                                                 "floor us", "rel err"))
for case, impl, v, tf, r, rs, floor, err in rows:
    print("%-18s %-32s %9.1f (%6.1f..%6.1f) %9.1f %7.2fx %8s %9.1f %9s" % (
        case, impl, v[0], v[1], v[2], tf, r, ("%.2fx" % rs) if rs else "-", floor, ("%.1e" % err) if err is not None else "-"))
lib.pt_cuda_sparse24_destroy(ctx, h24)
lib.pt_cuda_sparse24_destroy(ctx, h24s)
for d in bsr:
    lib.pt_cuda_bsr_destroy(ctx, bsr[d][1])
