/* Helpers shared by the elementwise-family tests (test_elementwise.c, test_norm.c,
 * test_rope.c, test_embed.c): tensors with padded (strided) rows, f32/bf16/f16 storage,
 * NaN poisoning with a check that padding was never written, and a NaN/inf-aware compare.
 * Header-only (static): each test_*.c is its own executable. */
#ifndef PT_ELEM_UTIL_H
#define PT_ELEM_UTIL_H
#include <stdint.h>
#include <string.h>

#include "pt_test.h"

/* ---- storage conversions, written independently of the library ---- */
static uint16_t tu_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    uint32_t lower = u & 0xffffu, upper = u >> 16;
    if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) upper++;
    return (uint16_t)upper;
}
static float tu_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* f16 bits -> value, by the definition (ldexp), not by bit tricks */
static double tu_f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1024.0 + m, e - 25);
    return s ? -v : v;
}
/* nearest f16 (ties to even mantissa), overflow to inf at >= 65520 */
static uint16_t tu_f32_to_f16(float f) {
    double x = f;
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (x != x) return sign | 0x7e00;
    double a = fabs(x);
    if (a >= 65520.0) return sign | 0x7c00;
    /* binary search over the 0x7c00 non-negative finite patterns (monotonic in value) */
    int lo = 0, hi = 0x7bff;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (tu_f16_value((uint16_t)mid) <= a) lo = mid;
        else hi = mid - 1;
    }
    int best = lo;
    if (lo < 0x7bff) {
        double dlo = a - tu_f16_value((uint16_t)lo), dhi = tu_f16_value((uint16_t)(lo + 1)) - a;
        if (dhi < dlo || (dhi == dlo && ((lo + 1) & 1) == 0)) best = lo + 1;
    } else if (a > tu_f16_value(0x7bff)) {
        best = 0x7bff; /* between max and 65520: rounds down */
    }
    return (uint16_t)(sign | best);
}

/* value after a store to `dt` and a load back */
static float tu_round(float v, int dt) {
    if (dt == PT_BF16) return tu_bf16_to_f32(tu_f32_to_bf16(v));
    if (dt == PT_F16) return (float)tu_f16_value(tu_f32_to_f16(v));
    return v;
}
static const char* tu_dt(int dt) { return dt == PT_F32 ? "f32" : dt == PT_BF16 ? "bf16" : dt == PT_F16 ? "f16" : "i32"; }

/* ---- tensors with padded rows: row stride = (cols + pad) elements, outer dims packed ---- */
typedef struct {
    pt_tensor t;
    unsigned char* mem;
    size_t bytes;
    int64_t rows, cols, rs; /* rs: row stride in bytes */
    size_t es;
} tbuf;

static tbuf tb_new(int dt, int ndim, const int64_t* shape, int64_t pad) {
    tbuf b;
    memset(&b, 0, sizeof b);
    b.es = pt_dtype_size(dt);
    b.cols = shape[ndim - 1];
    b.rows = 1;
    for (int i = 0; i < ndim - 1; i++) b.rows *= shape[i];
    b.rs = (b.cols + pad) * (int64_t)b.es;
    b.bytes = (size_t)(b.rows * b.rs) + 64;
    b.mem = (unsigned char*)malloc(b.bytes);
    memset(b.mem, 0xff, b.bytes);
    b.t.data = b.mem;
    b.t.dtype = dt;
    b.t.device = PT_DEVICE_CPU;
    b.t.ndim = ndim;
    int64_t s = b.rs;
    for (int i = ndim - 1; i >= 0; i--) {
        b.t.shape[i] = shape[i];
        if (i == ndim - 1) b.t.stride[i] = (int64_t)b.es;
        else {
            b.t.stride[i] = s;
            s *= shape[i];
        }
    }
    return b;
}
static void tb_free(tbuf* b) { free(b->mem); b->mem = NULL; }
static int64_t tb_numel(const tbuf* b) { return b->rows * b->cols; }
static unsigned char* tb_at(const tbuf* b, int64_t idx) {
    return b->mem + (idx / b->cols) * b->rs + (idx % b->cols) * (int64_t)b->es;
}
static double tb_get(const tbuf* b, int64_t idx) {
    unsigned char* p = tb_at(b, idx);
    uint16_t h;
    switch (b->t.dtype) {
    case PT_F32: { float f; memcpy(&f, p, 4); return f; }
    case PT_BF16: memcpy(&h, p, 2); return tu_bf16_to_f32(h);
    case PT_F16: memcpy(&h, p, 2); return tu_f16_value(h);
    default: { int32_t i; memcpy(&i, p, 4); return i; }
    }
}
static void tb_set(tbuf* b, int64_t idx, float v) {
    unsigned char* p = tb_at(b, idx);
    uint16_t h;
    switch (b->t.dtype) {
    case PT_F32: memcpy(p, &v, 4); break;
    case PT_BF16: h = tu_f32_to_bf16(v); memcpy(p, &h, 2); break;
    case PT_F16: h = tu_f32_to_f16(v); memcpy(p, &h, 2); break;
    default: { int32_t i = (int32_t)v; memcpy(p, &i, 4); } break;
    }
}
/* random values in [lo, hi), stored (rounded to the dtype) */
static void tb_rand(tbuf* b, double lo, double hi) {
    for (int64_t i = 0; i < tb_numel(b); i++) tb_set(b, i, (float)pt_test_uniform(lo, hi));
}
/* poison every byte (elements and padding) with 0xff: NaN in f32/bf16/f16 */
static void tb_poison(tbuf* b) { memset(b->mem, 0xff, b->bytes); }
/* 1 when no padding byte (between rows, after the last) was written */
static int tb_pads_intact(const tbuf* b) {
    for (int64_t r = 0; r < b->rows; r++)
        for (int64_t o = b->cols * (int64_t)b->es; o < b->rs; o++)
            if (b->mem[r * b->rs + o] != 0xff) return 0;
    for (size_t o = (size_t)(b->rows * b->rs); o < b->bytes; o++)
        if (b->mem[o] != 0xff) return 0;
    return 1;
}

/* ---- comparison: NaN must stay NaN, inf must match exactly ---- */
static int tu_close(double got, double want, double atol, double rtol) {
    if (want != want) return got != got;
    if (isinf(want)) return got == want;
    if (got != got) return 0;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

/* Compares every element of out with want[]; records one check, prints the first misses. */
#define TU_COMPARE(out, want, atol, rtol, ...)                                                       \
    do {                                                                                            \
        int64_t bad_ = 0, first_ = -1;                                                              \
        for (int64_t i_ = 0; i_ < tb_numel(out); i_++)                                              \
            if (!tu_close(tb_get(out, i_), (want)[i_], (atol), (rtol))) {                           \
                if (first_ < 0) first_ = i_;                                                        \
                bad_++;                                                                             \
            }                                                                                       \
        char ctx_[256];                                                                             \
        snprintf(ctx_, sizeof ctx_, __VA_ARGS__);                                                   \
        EXPECT(bad_ == 0, "%s: %lld/%lld elements off, first [%lld] got %.9g want %.9g", ctx_,      \
               (long long)bad_, (long long)tb_numel(out), (long long)first_,                        \
               first_ >= 0 ? tb_get(out, first_) : 0.0, first_ >= 0 ? (want)[first_] : 0.0);        \
        EXPECT(tb_pads_intact(out), "%s: wrote outside the tensor (padding changed)", ctx_);         \
    } while (0)

/* ---- the two code paths: fast (all caps) and portable (AVX-512 disabled) ---- */
typedef struct {
    pt_ctx* ctx;
    const char* name;
} tu_path;

static int tu_paths(tu_path* p, int threads) {
    pt_ctx_params fast = {threads, 0, 1, 0}, port = {threads, PT_CPU_AVX512F, 1, 0};
    int n = 0;
    if (pt_ctx_create(&fast, &p[n].ctx) == PT_OK) p[n++].name = (pt_cpu_caps() & PT_CPU_AVX512F) ? "avx512" : "fast(=portable)";
    if (pt_ctx_create(&port, &p[n].ctx) == PT_OK) p[n++].name = "portable";
    if (!(pt_cpu_caps() & PT_CPU_AVX512F)) printf("note: this CPU has no AVX-512; both paths are the portable one\n");
    return n;
}

/* bf16 outputs round once at the end: a relative error of 2^-9, plus the op's own */
static double tu_rtol(int odt, double f32_rtol) { return odt == PT_BF16 ? 4.0e-3 + f32_rtol : f32_rtol; }

static const int tu_dts[2] = {PT_F32, PT_BF16};
#endif
