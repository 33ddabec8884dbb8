/* Internal interface of the elementwise / normalization family (elementwise.c, norm.c,
 * softmax.c, rope.c, embed.c, convert.c and their _avx512.c fast paths).
 *
 * Each public op validates its arguments, picks a row kernel (AVX-512 when ctx->caps has
 * PT_CPU_AVX512F and the build has x86 kernels, else the portable one in the op's .c file)
 * and runs it over rows with pt_parallel_range. Row kernels take their dtypes at run time
 * (f32 | bf16, f16 where noted) and never fail. */
#ifndef PT_CPU_ELEM_H
#define PT_CPU_ELEM_H
#include "common/internal.h"

#include <math.h>

/* A thread gets at least this many elements of work before another one is started, so
 * small calls (a 16x384 LayerNorm: 6144 elements) never pay for waking the pool. At
 * ~5-20 GB/s per core, 32k f32 elements are ~10-25 us of work, a few times the cost of an
 * OpenMP fork/join. */
#define PT_ELEM_GRAIN 32768
/* Elementwise ops split long rows into blocks of this many elements (parallel items). */
#define PT_ELEM_BLOCK 8192

/* Rows per parallel chunk for rows of `cols` elements (each element costing ~`weight`
 * elements of plain streaming work). */
static inline int64_t pt_elem_grain_rows(int64_t cols, int64_t weight) {
    int64_t per = cols * (weight > 0 ? weight : 1);
    if (per <= 0) per = 1;
    int64_t g = PT_ELEM_GRAIN / per;
    return g > 0 ? g : 1;
}

static inline int pt_elem_use_avx512(const pt_ctx* ctx) {
#if defined(PT_HAVE_X86_KERNELS)
    return (ctx->caps & PT_CPU_AVX512F) != 0;
#else
    (void)ctx;
    return 0;
#endif
}

/* ---- argument checks that cost nothing on success (messages are formatted only on
 * failure: small calls must stay cheap) ---- */
#define PT_DT_BIT(d) (1u << (unsigned)(d))
#define PT_DT_DATA (PT_DT_BIT(PT_F32) | PT_DT_BIT(PT_BF16))
#define PT_DT_FLOAT (PT_DT_DATA | PT_DT_BIT(PT_F16))
/* t valid (pt_check_tensor), dtype one of the `dtypes` bits, innermost dim contiguous;
 * a message names "op arg". */
PT_HIDDEN pt_status pt_elem_check(const pt_tensor* t, const char* op, const char* arg, uint32_t dtypes);
/* a and b have the same shape; the message names "op an" and "bn" with both shapes. */
PT_HIDDEN pt_status pt_elem_same_shape(const char* op, const pt_tensor* a, const char* an, const pt_tensor* b,
                                       const char* bn);
/* "f32[2, 3]", as a temporary: pt_fail(..., "%s", pt_desc(t).s) (failure paths only) */
typedef struct {
    char s[96];
} pt_desc_t;
static inline pt_desc_t pt_desc(const pt_tensor* t) {
    pt_desc_t d;
    pt_describe(t, d.s, sizeof d.s);
    return d;
}

/* Bytes from the first to one past the last element of t (0 when empty). */
PT_HIDDEN int64_t pt_elem_span(const pt_tensor* t);
/* True when the memory of a and b overlaps without being the same view (exact alias). */
PT_HIDDEN bool pt_elem_bad_overlap(const pt_tensor* a, const pt_tensor* b);
/* Row pointer helper: base + r * row_stride when uniform, else pt_row_ptr. */
typedef struct {
    const pt_tensor* t;
    char* base;
    int64_t rs;
    bool uniform;
} pt_rows_t;
static inline pt_rows_t pt_rows_of(const pt_tensor* t) {
    pt_rows_t r;
    r.t = t;
    r.base = t ? (char*)t->data : NULL;
    r.rs = 0;
    r.uniform = t ? pt_rows_uniform(t, &r.rs) : true;
    return r;
}
static inline char* pt_rows_at(const pt_rows_t* r, int64_t i) {
    if (!r->t) return NULL;
    return r->uniform ? r->base + i * r->rs : pt_row_ptr(r->t, i);
}

/* ---- row kernels (n elements, contiguous); dtypes f32 | bf16 unless noted ---- */
typedef void (*pt_add_row_fn)(const void* a, int adt, const void* b, int bdt, void* out, int odt, int64_t n);
typedef void (*pt_unary_row_fn)(int op, const void* x, int xdt, void* out, int odt, int64_t n);
typedef void (*pt_swiglu_row_fn)(const void* g, int gdt, const void* u, int udt, void* out, int odt, int64_t n);
/* x -> out, dtypes f32 | bf16 | f16 */
typedef void (*pt_convert_row_fn)(const void* x, int xdt, void* out, int odt, int64_t n);
/* Normalizes v = x (+ r when r is not NULL) over n columns. beta may be NULL.
 * rms != 0: RMSNorm (no mean, no beta). */
typedef void (*pt_norm_row_fn)(const void* x, int xdt, const void* r, int rdt, const float* gamma,
                               const float* beta, float eps, int rms, void* out, int odt, int64_t n);
/* buf: f32 scratch of n (may be NULL: exp is then computed twice when out is not f32) */
typedef void (*pt_softmax_row_fn)(const void* x, int xdt, float scale, void* out, int odt, int64_t n, float* buf);
/* RoPE, for pairs [p0, p0 + k) of one head (half = r/2 pairs in all):
 *   NEOX: (x[p0+j], x[p0+j+half]) rotated by (cs[j], cs[k+j]) = (cos, sin)
 *   GPTJ: x[2p0 .. 2p0+2k) = x * cs[0..2k) + pairswap(x) * cs[2k..4k)  (interleaved table:
 *         cos duplicated per pair, sin as (-sin, +sin))
 * The table comes from pt_rope_table_fn with the same gptj flag. */
typedef void (*pt_rope_pairs_fn)(const void* x, int xdt, void* out, int odt, const float* cs, int64_t p0, int64_t k,
                                 int64_t half, int gptj);
/* cos/sin of pos * freq[j] for j < k, angles reduced by pi/2 in double, float polynomials. */
typedef void (*pt_rope_table_fn)(double pos, const double* freq, int64_t k, int gptj, float* cs);
/* acc[j] += x[j] (x f32 | bf16) */
typedef void (*pt_acc_row_fn)(float* acc, const void* x, int xdt, int64_t n);

PT_HIDDEN void pt_add_row_avx512(const void* a, int adt, const void* b, int bdt, void* out, int odt, int64_t n);
PT_HIDDEN void pt_unary_row_avx512(int op, const void* x, int xdt, void* out, int odt, int64_t n);
PT_HIDDEN void pt_swiglu_row_avx512(const void* g, int gdt, const void* u, int udt, void* out, int odt, int64_t n);
PT_HIDDEN void pt_convert_row_avx512(const void* x, int xdt, void* out, int odt, int64_t n);
PT_HIDDEN void pt_norm_row_avx512(const void* x, int xdt, const void* r, int rdt, const float* gamma,
                                  const float* beta, float eps, int rms, void* out, int odt, int64_t n);
PT_HIDDEN void pt_softmax_row_avx512(const void* x, int xdt, float scale, void* out, int odt, int64_t n, float* buf);
PT_HIDDEN void pt_rope_pairs_avx512(const void* x, int xdt, void* out, int odt, const float* cs, int64_t p0, int64_t k,
                                    int64_t half, int gptj);
PT_HIDDEN void pt_rope_table_avx512(double pos, const double* freq, int64_t k, int gptj, float* cs);
PT_HIDDEN void pt_acc_row_avx512(float* acc, const void* x, int xdt, int64_t n);

/* The elementwise driver (elementwise.c): out = kernel(a[, b]) over (row, column block)
 * items; tensors whose rows are packed are treated as one dense run. */
enum { PT_EW_ADD, PT_EW_UNARY, PT_EW_SWIGLU, PT_EW_CONVERT };
typedef struct {
    int kind, op;              /* set by the caller, with bcast and the kernel of `kind` */
    int bcast;                 /* b is [cols], broadcast over rows (PT_EW_ADD) */
    pt_add_row_fn add;
    pt_unary_row_fn unary;
    pt_swiglu_row_fn swiglu;
    pt_convert_row_fn convert;
    /* filled by pt_elem_run */
    int adt, bdt, odt;
    pt_rows_t ra, rb, ro;
    int64_t cols, nblk, blk;
    size_t ea, eb, eo;
} pt_elem_job;
/* a, out (and b unless NULL) already validated. weight: relative cost per element. */
PT_HIDDEN void pt_elem_run(pt_ctx* ctx, pt_elem_job* j, const pt_tensor* a, const pt_tensor* b, pt_tensor* out,
                           int64_t weight);

/* Portable kernels shared between op files. */
PT_HIDDEN void pt_add_row_portable(const void* a, int adt, const void* b, int bdt, void* out, int odt, int64_t n);
PT_HIDDEN void pt_convert_row_portable(const void* x, int xdt, void* out, int odt, int64_t n);

/* Scalar cos/sin of a double angle: reduced by pi/2 in double, float polynomials on
 * [-pi/4, pi/4] (|error| < 2e-7). Shared by the portable RoPE table and the tests' intent. */
static inline void pt_sincos_reduced(double a, float* s, float* c) {
    const double two_over_pi = 0.63661977236758134308, pio2_hi = 1.5707963267341256, pio2_lo = 6.077100506506192e-11;
    double j = a * two_over_pi;
    if (!(fabs(j) < 4503599627370496.0)) { /* |a| >= 2^52 * pi/2, inf or NaN: libm */
        *s = (float)sin(a);
        *c = (float)cos(a);
        return;
    }
    j = j >= 0 ? (double)(int64_t)(j + 0.5) : -(double)(int64_t)(0.5 - j);
    double yd = (a - j * pio2_hi) - j * pio2_lo;
    float y = (float)yd, z = y * y;
    float sn = ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * y + y;
    float cn = ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z - 0.5f * z + 1.0f;
    int q = (int)((int64_t)j & 3);
    switch (q) {
    case 0: *s = sn; *c = cn; break;
    case 1: *s = cn; *c = -sn; break;
    case 2: *s = -sn; *c = -cn; break;
    default: *s = -cn; *c = sn; break;
    }
}
#endif
