/* FP4 (LLM-FP4 E2M1/E1M2/E3M0 and bitsandbytes NF4): levels, quantize/dequantize, the
 * weight-only and W4A4 matmul entry point (dispatch to AVX-512 or the portable kernels) and
 * the format/clipping search. */
#include "cpu/fp4.h"

#include <math.h>
#include <stdlib.h>

#define FP4_GEMM_NAME fp4_gemm_generic
#include "cpu/fp4_gemm_inl.h"

static const float NF4_LEVELS[16] = {
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

/* The levels of E2M1, E1M2 and E3M0 (code c: sign c >> 3, magnitude c & 7; E2M1: exponent
 * bits 2, mantissa 1, subnormal at 0; E1M2: exponent 1, mantissa 2; E3M0: 2^(mag - 3), 0 at 0),
 * as constants: every call of the matmul needs them, and 16 ldexpf per call were a measurable
 * part of a small GEMV's fixed cost. */
static const float FP_LEVELS[3][16] = {
    {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f},
    {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, -0.0f, -0.25f, -0.5f, -0.75f, -1.0f, -1.25f, -1.5f, -1.75f},
    {0.0f, 0.25f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 16.0f, -0.0f, -0.25f, -0.5f, -1.0f, -2.0f, -4.0f, -8.0f, -16.0f}};

static void fp4_levels(int32_t f, float* out) { memcpy(out, f == PT_FP4_NF4 ? NF4_LEVELS : FP_LEVELS[f], sizeof NF4_LEVELS); }

static float max_level(const float* lv) {
    float m = 0.0f;
    for (int i = 0; i < 16; i++) m = fabsf(lv[i]) > m ? fabsf(lv[i]) : m;
    return m;
}

/* Nearest level to v (ties: smaller magnitude, then the lower code; NaN: code 0), with selects
 * instead of a data-dependent branch per level (the branchy loop dominated pt_fp4_quantize). */
static inline int nearest_code(const float* lv, float v) {
    int best = 0;
    float bd = fabsf(v - lv[0]), ab = fabsf(lv[0]);
    for (int c = 1; c < 16; c++) {
        const float d = fabsf(v - lv[c]), a = fabsf(lv[c]);
        const int better = (d < bd) | ((d == bd) & (a < ab));
        best = better ? c : best;
        bd = better ? d : bd;
        ab = better ? a : ab;
    }
    return best;
}

static int zero_code(int32_t f) { return f == PT_FP4_NF4 ? 7 : 0; }

pt_status pt_fp4_levels(int32_t format, float* out) {
    pt_clear_error();
    if (format < PT_FP4_E2M1 || format > PT_FP4_NF4)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_levels: unknown format %d (expected 0..3: E2M1, E1M2, E3M0, NF4)", format);
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_levels: out is NULL");
    fp4_levels(format, out);
    return PT_OK;
}

/* ---------------------------------------------------------------- shared checks */

static pt_status check_format(const char* op, const char* what, int32_t f) {
    if (f < PT_FP4_E2M1 || f > PT_FP4_NF4)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown %s %d (expected 0..3: E2M1, E1M2, E3M0, NF4)", op, what, f);
    return PT_OK;
}

/* Checks codes [N, K] u4 and scales [N, K/G] for `group`; returns G (K for per channel). */
static pt_status check_codes_scales(const char* op, const pt_tensor* codes, const pt_tensor* scales, int32_t group,
                                    int64_t* n_out, int64_t* k_out, int64_t* g_out) {
    char dc[96] = "", ds[96] = "";
    PT_CHECK(pt_check_dtype(codes, "codes", 1, PT_U4));
    PT_CHECK(pt_check_dtype(scales, "scales", 2, PT_F32, PT_BF16));
    if (group != 0 && group != 32 && group != 64 && group != 128)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: group %d not supported (0 = per channel, 32, 64 or 128)", op, group);
    /* the descriptions only where a message needs them (snprintf costs about as much as a small GEMV) */
#define FP4_DESCRIBE() (pt_describe(codes, dc, sizeof dc), pt_describe(scales, ds, sizeof ds))
    if (codes->ndim != 2) return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: codes %s must be 2-D [N, K]", op, dc);
    int64_t n = codes->shape[0], k = codes->shape[1];
    if (k % 2 != 0) return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: codes %s: K = %lld must be even (two codes per byte)", op, dc, (long long)k);
    if (n > 1 && codes->stride[0] < k / 2)
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: codes %s rows overlap (row stride %lld bytes < K/2 = %lld)", op, dc,
                       (long long)codes->stride[0], (long long)(k / 2));
    if (group != 0 && k % group != 0)
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: K = %lld (codes %s) is not a multiple of the group size %d", op, (long long)k, dc, group);
    int64_t ng = group ? k / group : 1;
    if (scales->ndim != 2 || scales->shape[0] != n || scales->shape[1] != ng)
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: scales %s, expected [%lld, %lld] (N, K/group; group %d) for codes %s", op, ds,
                       (long long)n, (long long)ng, group, dc);
    int64_t es = (int64_t)pt_dtype_size(scales->dtype);
    if (n > 1 && (scales->stride[0] % es != 0 || scales->stride[0] < ng * es))
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "%s: scales %s row stride %lld bytes is not a multiple of the element size or overlaps",
                       op, ds, (long long)scales->stride[0]);
    *n_out = n; *k_out = k;
    *g_out = group ? group : (k > 0 ? k : 1);
    return PT_OK;
#undef FP4_DESCRIBE
}

/* ---------------------------------------------------------------- quantize */

typedef struct {
    const pt_tensor* w; int64_t k, g; float clip; float lv[16]; float inv_max;
    const int32_t* shift; int32_t format;
    uint8_t* codes; int64_t ldw;
    void* scales; int64_t lds; int32_t scale_bf16;
    volatile int failed;
} quant_arg;

static void quant_rows(int64_t r0, int64_t r1, void* ap) {
    quant_arg* a = (quant_arg*)ap;
    float* v = (float*)pt_scratch(0, (size_t)(a->g > 0 ? a->g : 1) * sizeof(float));
    if (!v) { a->failed = 1; return; }
    const int z = zero_code(a->format);
    const size_t es = pt_dtype_size(a->w->dtype);
    for (int64_t n = r0; n < r1; n++) {
        const char* src = pt_row_ptr(a->w, n);
        uint8_t* c = a->codes + n * a->ldw;
        for (int64_t k0 = 0; k0 < a->k; k0 += a->g) {
            const int64_t len = k0 + a->g < a->k ? a->g : a->k - k0;
            pt_load_row_f32(src + k0 * es, a->w->dtype, len, v);
            float amax = 0.0f;
            for (int64_t j = 0; j < len; j++) {
                if (a->shift) v[j] = ldexpf(v[j], a->shift[k0 + j]);
                amax = fabsf(v[j]) > amax ? fabsf(v[j]) : amax;
            }
            float s = a->clip * amax * a->inv_max;
            if (a->scale_bf16) {
                uint16_t h = pt_f32_to_bf16(s);
                s = pt_bf16_to_f32(h);
                ((uint16_t*)a->scales)[n * a->lds + k0 / a->g] = h;
            } else {
                ((float*)a->scales)[n * a->lds + k0 / a->g] = s;
            }
            const int ok = s > 0.0f && isfinite(s);
            for (int64_t j = 0; j < len; j += 2) {
                int q0 = ok ? nearest_code(a->lv, v[j] / s) : z;
                int q1 = ok ? nearest_code(a->lv, v[j + 1] / s) : z;
                c[(k0 + j) >> 1] = (uint8_t)(q0 | (q1 << 4));
            }
        }
    }
}

pt_status pt_fp4_quantize(pt_ctx* ctx, const pt_tensor* w, const pt_fp4_quant_params* params, pt_tensor* codes, pt_tensor* scales) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_quantize: params is NULL");
    PT_CHECK(check_format("pt_fp4_quantize", "format", params->format));
    PT_CHECK(pt_check_dtype(w, "pt_fp4_quantize w", 2, PT_F32, PT_BF16));
    float clip = params->clip == 0.0f ? 1.0f : params->clip;
    if (!(clip > 0.0f && clip <= 1.0f))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_quantize: clip %g must be in (0, 1] (0 means 1)", (double)params->clip);
    int64_t n, k, g;
    PT_CHECK(check_codes_scales("pt_fp4_quantize", codes, scales, params->group, &n, &k, &g));
    char dw[96], dc[96];
    pt_describe(w, dw, sizeof dw);
    pt_describe(codes, dc, sizeof dc);
    if (w->ndim != 2 || w->shape[0] != n || w->shape[1] != k)
        return pt_fail(PT_ERR_SHAPE, "pt_fp4_quantize: w %s must be [N, K] = [%lld, %lld] like codes %s", dw, (long long)n, (long long)k, dc);
    const int32_t* shift = NULL;
    if (params->act_shift) {
        const pt_tensor* t = params->act_shift;
        PT_CHECK(pt_check_dtype(t, "pt_fp4_quantize act_shift", 1, PT_I32));
        if (t->ndim != 1 || t->shape[0] != k)
            return pt_fail(PT_ERR_SHAPE, "pt_fp4_quantize: act_shift must be i32[%lld] (K), got ndim %d shape[0] %lld", (long long)k,
                           t->ndim, (long long)t->shape[0]);
        shift = (const int32_t*)t->data;
        for (int64_t i = 0; i < k; i++)
            if (shift[i] < -64 || shift[i] > 64)
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_quantize: act_shift[%lld] = %d outside [-64, 64]", (long long)i, shift[i]);
    }
    quant_arg a;
    memset(&a, 0, sizeof a);
    a.w = w; a.k = k; a.g = g; a.clip = clip; a.shift = shift; a.format = params->format;
    fp4_levels(params->format, a.lv);
    a.inv_max = 1.0f / max_level(a.lv);
    a.codes = (uint8_t*)codes->data; a.ldw = codes->stride[0];
    a.scales = scales->data; a.lds = scales->stride[0] / (int64_t)pt_dtype_size(scales->dtype);
    a.scale_bf16 = scales->dtype == PT_BF16;
    if (n == 0 || k == 0) return PT_OK;
    pt_parallel_range(ctx, n, 16, quant_rows, &a);
    if (a.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_quantize: a worker could not allocate %lld floats of scratch", (long long)g);
    return PT_OK;
}

/* ---------------------------------------------------------------- dequantize */

pt_status pt_fp4_dequantize(pt_ctx* ctx, const pt_tensor* codes, const pt_tensor* scales, int32_t format, int32_t group,
                            pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(check_format("pt_fp4_dequantize", "format", format));
    int64_t n, k, g;
    PT_CHECK(check_codes_scales("pt_fp4_dequantize", codes, scales, group, &n, &k, &g));
    PT_CHECK(pt_check_dtype(out, "pt_fp4_dequantize out", 2, PT_F32, PT_BF16));
    if (out->ndim != 2 || out->shape[0] != n || out->shape[1] != k) {
        char d[96];
        pt_describe(out, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "pt_fp4_dequantize: out %s must be [%lld, %lld]", d, (long long)n, (long long)k);
    }
    pt_fp4_problem p;
    memset(&p, 0, sizeof p);
    fp4_levels(format, p.lut);
    p.scales = scales->data; p.lds = scales->stride[0] / (int64_t)pt_dtype_size(scales->dtype); p.scale_bf16 = scales->dtype == PT_BF16;
    for (int64_t r = 0; r < n; r++) {
        const uint8_t* c = (const uint8_t*)codes->data + r * codes->stride[0];
        char* o = pt_row_ptr(out, r);
        for (int64_t j = 0; j < k; j++) {
            float v = p.lut[(j & 1) ? c[j >> 1] >> 4 : c[j >> 1] & 15] * pt_fp4_scale(&p, r, j / g);
            if (out->dtype == PT_BF16) ((uint16_t*)o)[j] = pt_f32_to_bf16(v);
            else ((float*)o)[j] = v;
        }
    }
    return PT_OK;
}

/* ---------------------------------------------------------------- matmul */

/* Portable GEMV rows (M = 1) and the GEMM body. */
void pt_fp4_rows_generic(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    if (p->m != 1) { fp4_gemm_generic(p, n0, n1); return; }
    for (int64_t n = n0; n < n1; n++) {
        const uint8_t* c = p->codes + n * p->ldw;
        float acc = 0.0f;
        for (int64_t k0 = 0; k0 < p->k; k0 += p->group) {
            float lt[16], s = pt_fp4_scale(p, n, k0 / p->group), a0 = 0.0f, a1 = 0.0f;
            for (int i = 0; i < 16; i++) lt[i] = p->lut[i] * s;
            int64_t k1 = k0 + p->group < p->k ? k0 + p->group : p->k;
            for (int64_t k = k0; k < k1; k += 2) {
                uint8_t b = c[k >> 1];
                a0 += p->x[k] * lt[b & 15];
                a1 += p->x[k + 1] * lt[b >> 4];
            }
            acc += a0 + a1;
        }
        pt_fp4_store_y(p, 0, n, acc + (p->bias ? p->bias[n] : 0.0f));
    }
}

typedef struct {
    const pt_fp4_problem* p;
    int64_t block;
    void (*rows)(const pt_fp4_problem*, int64_t, int64_t);
    size_t xv_bytes;   /* the VNNI GEMV: each chunk quantizes x into this many bytes of its thread's scratch; 0: not used */
    volatile int failed;
} mm_arg;

static void mm_units(int64_t u0, int64_t u1, void* ap) {
    mm_arg* a = (mm_arg*)ap;
    int64_t n0 = u0 * a->block, n1 = u1 * a->block;
    if (n1 > a->p->n) n1 = a->p->n;
    if (n0 >= n1) return;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (a->xv_bytes) {
        /* each thread quantizes x itself (~0.3 us at K = 768) into its own scratch instead of the caller
         * doing it before the hand-off: the threads do it side by side, and a worker reads its x from
         * its own cache rather than from the caller's */
        void* xv = pt_scratch(2, a->xv_bytes);
        if (!xv) { a->failed = 1; return; }
        pt_fp4_problem q = *a->p;
        q.xv = xv;
        pt_fp4_gemv_prefetch(&q, n0, n1); /* the first rows' DRAM latency overlaps the quantization */
        pt_fp4_vnni_quant(&q, xv);
        a->rows(&q, n0, n1);
        return;
    }
    if (a->rows == pt_fp4_rows_avx512) pt_fp4_gemv_prefetch(a->p, n0, n1);
#endif
    a->rows(a->p, n0, n1);
}

/* Quantizes the activations for W4A4 into xq [M, K] (see the header). */
static void quantize_acts(const float* x, int64_t ldx, int64_t m, int64_t k, const int32_t* shift, int32_t fmt, float clip,
                          float* xq) {
    float lv[16];
    fp4_levels(fmt, lv);
    const float inv_max = 1.0f / max_level(lv);
    for (int64_t r = 0; r < m; r++) {
        const float* xr = x + r * ldx;
        float* q = xq + r * k;
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) {
            float v = shift ? ldexpf(xr[j], -shift[j]) : xr[j];
            q[j] = v;
            amax = fabsf(v) > amax ? fabsf(v) : amax;
        }
        float a = clip * amax * inv_max;
        for (int64_t j = 0; j < k; j++) q[j] = (a > 0.0f && isfinite(a)) ? a * lv[nearest_code(lv, q[j] / a)] : 0.0f;
    }
}

/* How far ahead (bytes of codes per row stream) the bf16 / VNNI GEMV prefetches where it is not
 * tuned for AMX CPUs (see pt_fp4_problem.pf_bytes). Zen 5, cold weights, E2M1 G = 32, against one
 * pass ahead: 1 thread 0.78x the time at 768x768 and 3072x768 (1536 B: 4 rows ahead at K = 768;
 * 2048 B did 2% better on 1 thread but 5% worse on 2); at K = 3072 and 4096 it is one row ahead,
 * as before (two rows: 10..16% slower). */
#define FP4_PF_BYTES 1536
/* The matmul after validation: x is f32 [M, K] with row stride ldx (elements). */
static pt_status fp4_run(pt_ctx* ctx, pt_fp4_problem* p, int32_t format) {
    void (*rows)(const pt_fp4_problem*, int64_t, int64_t) = pt_fp4_rows_generic;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (ctx->caps & PT_CPU_AVX512F) rows = pt_fp4_rows_avx512;
#endif
    float* xd = NULL;
    size_t xv_bytes = 0;
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (rows != pt_fp4_rows_generic && (ctx->caps & PT_CPU_AVX512_VNNI) && p->m == 1 && p->bf16_ok && p->k > 0 &&
        pt_fp4_vnni_prep(p, format)) {
        /* VNNI GEMV: x in 16-bit fixed point with a power-of-two scale per 8-element block (see
         * fp4_avx512.c), quantized by each thread (mm_units); x holding a NaN or an infinity takes
         * the kernels below */
        xv_bytes = (size_t)((p->k + 127) >> 7) * PT_FP4_XV_BYTES;
        /* vpermb (AVX512_VBMI) for the level lookup: every CPU with AVX512_FP16 (Sapphire Rapids
         * and later, AVX10) has VBMI, and the caps hold no VBMI flag of their own */
        p->vbmi = (ctx->caps & PT_CPU_AVX512_FP16) != 0;
    }
    if (rows != pt_fp4_rows_generic && !xv_bytes && (ctx->caps & PT_CPU_AVX512_BF16) && p->m == 1 && p->bf16_ok && p->k > 0) {
        /* W4A16 GEMV: x rounded to bf16 once, in the nibble order of a 128-chunk (see fp4.h) */
        const int64_t kp = (p->k + 127) & ~(int64_t)127;
        uint16_t* xb = (uint16_t*)pt_scratch(2, (size_t)kp * sizeof(uint16_t));
        if (!xb) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_matmul: no memory for %lld bf16 of x", (long long)kp);
        for (int64_t c = 0; c < kp; c += 128)
            for (int r = 0; r < 4; r++)
                for (int j = 0; j < 32; j++) {
                    const int64_t k = c + 4 * j + r;
                    xb[c + 32 * r + j] = k < p->k ? pt_f32_to_bf16(p->x[k]) : 0;
                }
        p->xb = xb;
        for (int i = 0; i < 32; i++) p->lutb[i] = pt_f32_to_bf16(p->lut[i & 15]);
    }
#endif
    if (rows != pt_fp4_rows_generic && !p->xb && !xv_bytes) { /* AVX-512: x rows deinterleaved per 32-chunk, row stride K */
        xd = (float*)pt_scratch(2, (size_t)(p->m * p->k + 32) * sizeof(float));
        if (!xd) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_matmul: no memory for %lld x %lld floats of x", (long long)p->m,
                                (long long)p->k);
        const int64_t k32 = p->k & ~(int64_t)31;
        for (int64_t r = 0; r < p->m; r++) {
            const float* x = p->x + r * p->ldx;
            float* d = xd + r * p->k;
            for (int64_t k = 0; k < k32; k += 32)
                for (int i = 0; i < 16; i++) { d[k + i] = x[k + 2 * i]; d[k + 16 + i] = x[k + 2 * i + 1]; }
            for (int64_t k = k32; k < p->k; k++) d[k] = x[k];
        }
    }
    /* the GEMV's prefetch distance, measured on Zen 5 (no AMX); CPUs with AMX (Sapphire Rapids and
     * later, where it was tuned) keep one pass ahead and no prologue */
    if (!(ctx->caps & (PT_CPU_AMX_INT8 | PT_CPU_AMX_BF16))) p->pf_bytes = FP4_PF_BYTES;
    p->xd = xd;
    mm_arg a;
    a.p = p; a.rows = rows; a.xv_bytes = xv_bytes; a.failed = 0;
    a.block = p->m == 1 ? 4 : 16;
    int64_t units = (p->n + a.block - 1) / a.block;
    /* a worker per ~256 KiB of packed weight (M = 1) or ~2 MFLOP */
    double work = p->m == 1 ? (double)p->n * (double)p->k / 2.0 / 262144.0 : 2.0 * (double)p->m * (double)p->n * (double)p->k / 2e6;
    int64_t threads = (int64_t)work + 1;
    if (threads > ctx->n_threads) threads = ctx->n_threads;
    int64_t grain = (units + threads - 1) / threads;
    pt_parallel_range(ctx, units, grain, mm_units, &a);
    if (a.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_matmul: a thread had no memory for the quantized x (K = %lld)", (long long)p->k);
    return PT_OK;
}

pt_status pt_fp4_matmul(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* codes, const pt_tensor* scales, const pt_tensor* bias,
                        pt_tensor* y, const pt_fp4_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_matmul: params is NULL");
    PT_CHECK(check_format("pt_fp4_matmul", "format", params->format));
    if (params->w4a4 != 0 && params->w4a4 != 1)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_matmul: w4a4 must be 0 or 1, got %d", params->w4a4);
    float act_clip = params->act_clip == 0.0f ? 1.0f : params->act_clip;
    if (params->w4a4) {
        PT_CHECK(check_format("pt_fp4_matmul", "act_format", params->act_format));
        if (!(act_clip > 0.0f && act_clip <= 1.0f))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_matmul: act_clip %g must be in (0, 1]", (double)params->act_clip);
    }
    PT_CHECK(pt_check_dtype(x, "pt_fp4_matmul x", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(y, "pt_fp4_matmul y", 2, PT_F32, PT_BF16));
    int64_t n, k, g;
    PT_CHECK(check_codes_scales("pt_fp4_matmul", codes, scales, params->group, &n, &k, &g));
    char dx[96] = "", dy[96] = "", dc[96] = "";
#define FP4_DESCRIBE() (pt_describe(x, dx, sizeof dx), pt_describe(y, dy, sizeof dy), pt_describe(codes, dc, sizeof dc))
    if (x->ndim != 2 || x->shape[1] != k)
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "pt_fp4_matmul: x %s must be [M, K] with K = %lld (codes %s)", dx, (long long)k, dc);
    int64_t m = x->shape[0];
    if (y->ndim != 2 || y->shape[0] != m || y->shape[1] != n)
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "pt_fp4_matmul: y %s must be [M, N] = [%lld, %lld] (x %s, codes %s)", dy, (long long)m,
                       (long long)n, dx, dc);
    int64_t esx = (int64_t)pt_dtype_size(x->dtype), esy = (int64_t)pt_dtype_size(y->dtype);
    if (m > 1 && (x->stride[0] % esx != 0 || y->stride[0] % esy != 0 || y->stride[0] < n * esy))
        return FP4_DESCRIBE(), pt_fail(PT_ERR_SHAPE, "pt_fp4_matmul: row strides of x %s / y %s must be whole elements, y rows must not overlap", dx, dy);
    if (bias) {
        PT_CHECK(pt_check_dtype(bias, "pt_fp4_matmul bias", 1, PT_F32));
        if (bias->ndim != 1 || bias->shape[0] != n)
            return pt_fail(PT_ERR_SHAPE, "pt_fp4_matmul: bias must be f32[%lld] (N), got ndim %d shape[0] %lld", (long long)n,
                           bias->ndim, (long long)bias->shape[0]);
    }
    const int32_t* shift = NULL;
    if (params->w4a4 && params->act_shift) {
        const pt_tensor* t = params->act_shift;
        PT_CHECK(pt_check_dtype(t, "pt_fp4_matmul act_shift", 1, PT_I32));
        if (t->ndim != 1 || t->shape[0] != k)
            return pt_fail(PT_ERR_SHAPE, "pt_fp4_matmul: act_shift must be i32[%lld] (K)", (long long)k);
        shift = (const int32_t*)t->data;
        for (int64_t i = 0; i < k; i++)
            if (shift[i] < -64 || shift[i] > 64)
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_matmul: act_shift[%lld] = %d outside [-64, 64]", (long long)i, shift[i]);
    }
    if (m == 0 || n == 0) return PT_OK;
    pt_fp4_problem p;
    memset(&p, 0, sizeof p);
    p.m = m; p.n = n; p.k = k; p.group = g;
    fp4_levels(params->format, p.lut);
    p.bf16_ok = !params->w4a4 && params->format != PT_FP4_NF4;
    p.codes = (const uint8_t*)codes->data; p.ldw = codes->stride[0];
    p.scales = scales->data; p.lds = scales->stride[0] / (int64_t)pt_dtype_size(scales->dtype); p.scale_bf16 = scales->dtype == PT_BF16;
    p.bias = bias ? (const float*)bias->data : NULL;
    p.y = y->data; p.ldy = m > 1 ? y->stride[0] / esy : n; p.y_bf16 = y->dtype == PT_BF16;
    int64_t ldx = m > 1 ? x->stride[0] / esx : k;
    if (x->dtype == PT_F32 && !params->w4a4) {
        p.x = (const float*)x->data; p.ldx = ldx;
    } else {
        float* xf = (float*)pt_scratch(3, (size_t)(m * k + 1) * sizeof(float) * (params->w4a4 ? 2 : 1));
        if (!xf) return FP4_DESCRIBE(), pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_matmul: no memory to convert x %s", dx);
        for (int64_t r = 0; r < m; r++) pt_load_row_f32((const char*)x->data + r * (m > 1 ? x->stride[0] : 0), x->dtype, k, xf + r * k);
        p.x = xf; p.ldx = k;
        if (params->w4a4) {
            float* xq = xf + m * k + 1;
            quantize_acts(xf, k, m, k, shift, params->act_format, act_clip, xq);
            p.x = xq;
        }
    }
    return fp4_run(ctx, &p, params->format);
#undef FP4_DESCRIBE
}

/* ---------------------------------------------------------------- search */

pt_status pt_fp4_search(pt_ctx* ctx, const pt_tensor* w, const pt_tensor* x, const pt_fp4_search_params* params,
                        pt_fp4_search_result* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params || !out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_search: params and out must not be NULL");
    PT_CHECK(pt_check_dtype(w, "pt_fp4_search w", 1, PT_F32));
    PT_CHECK(pt_check_dtype(x, "pt_fp4_search x", 1, PT_F32));
    if (w->ndim != 2 || x->ndim != 2 || x->shape[1] != w->shape[1])
        return pt_fail(PT_ERR_SHAPE, "pt_fp4_search: w must be [N, K] and x [M, K]; got ndim %d / %d, K %lld / %lld", w->ndim, x->ndim,
                       (long long)w->shape[w->ndim - 1], (long long)x->shape[x->ndim - 1]);
    int64_t n = w->shape[0], k = w->shape[1], m = x->shape[0];
    if (k % 2 || (params->group && k % params->group))
        return pt_fail(PT_ERR_SHAPE, "pt_fp4_search: K = %lld must be even and a multiple of the group %d", (long long)k, params->group);
    if (params->group != 0 && params->group != 32 && params->group != 64 && params->group != 128)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_search: group %d not supported (0, 32, 64, 128)", params->group);
    if (params->n_clips < 0 || (params->n_clips > 0 && !params->clips))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_search: n_clips %d with clips %p", params->n_clips, (const void*)params->clips);
    for (int i = 0; i < params->n_clips; i++)
        if (!(params->clips[i] > 0.0f && params->clips[i] <= 1.0f))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_search: clips[%d] = %g outside (0, 1]", i, (double)params->clips[i]);
    uint32_t formats = params->formats ? params->formats : 7u;
    if (formats & ~15u) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_fp4_search: formats mask 0x%x has bits beyond NF4 (0xf)", formats);
    if (m == 0 || n == 0 || k == 0) return pt_fail(PT_ERR_SHAPE, "pt_fp4_search: empty w or x (M=%lld N=%lld K=%lld)", (long long)m, (long long)n, (long long)k);
    const float one = 1.0f;
    const float* clips = params->n_clips ? params->clips : &one;
    int nclips = params->n_clips ? params->n_clips : 1;
    int64_t ng = params->group ? k / params->group : 1;
    uint8_t* cbuf = (uint8_t*)malloc((size_t)(n * k / 2));
    float* sbuf = (float*)malloc((size_t)(n * ng) * sizeof(float));
    float* yr = (float*)malloc((size_t)(m * n) * sizeof(float));
    float* yq = (float*)malloc((size_t)(m * n) * sizeof(float));
    pt_status st = PT_OK;
    if (!cbuf || !sbuf || !yr || !yq) { st = pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_fp4_search: no memory for the workspace"); goto done; }
    pt_tensor tc = {cbuf, PT_U4, PT_DEVICE_CPU, 2, 0, {n, k}, {k / 2, 1}};
    pt_tensor ts = {sbuf, PT_F32, PT_DEVICE_CPU, 2, 0, {n, ng}, {ng * 4, 4}};
    pt_tensor tyr = {yr, PT_F32, PT_DEVICE_CPU, 2, 0, {m, n}, {n * 4, 4}};
    pt_tensor tyq = {yq, PT_F32, PT_DEVICE_CPU, 2, 0, {m, n}, {n * 4, 4}};
    pt_matmul_params mp = {1, PT_ACT_NONE, 1.0f, 0.0f};
    st = pt_matmul(ctx, x, w, NULL, &tyr, &mp);
    if (st != PT_OK) goto done;
    double pw = 0.0;
    for (int64_t i = 0; i < m * n; i++) pw += (double)yr[i] * yr[i];
    out->ref_power = pw / (double)(m * n);
    out->mse = INFINITY; out->format = -1; out->clip = 0.0f;
    for (int f = 0; f < 4; f++) {
        if (!(formats & (1u << f))) continue;
        for (int c = 0; c < nclips; c++) {
            pt_fp4_quant_params qp = {f, params->group, clips[c], 0, NULL};
            st = pt_fp4_quantize(ctx, w, &qp, &tc, &ts);
            if (st != PT_OK) goto done;
            pt_fp4_matmul_params fp = {f, params->group, 0, 0, 0.0f, 0, NULL};
            st = pt_fp4_matmul(ctx, x, &tc, &ts, NULL, &tyq, &fp);
            if (st != PT_OK) goto done;
            double e = 0.0;
            for (int64_t i = 0; i < m * n; i++) { double d = (double)yr[i] - yq[i]; e += d * d; }
            e /= (double)(m * n);
            if (e < out->mse) { out->mse = e; out->format = f; out->clip = clips[c]; }
        }
    }
done:
    free(cbuf); free(sbuf); free(yr); free(yq);
    return st;
}
