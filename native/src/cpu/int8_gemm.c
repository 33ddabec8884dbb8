/* int8 GEMM (issue 5): per-channel weight quantization, LLM.int8 (outlier decomposition),
 * plain W8A8 and weight-only W8A32.
 *
 * The rule between the two int8 GEMMs: oneDNN's s8 matmul when M >= PT_I8_DNN_MIN_M (64) on an
 * AMX-INT8 machine, built with oneDNN, with a weight packed by pt_pack_int8_weight, and y f32
 * or no outlier columns in this call; our kernels otherwise (pt-bench --op int8 and a min-of-N
 * timing, session 4, 1 thread: below M=64 our AMX kernel is 5-15% faster than oneDNN's, from
 * M=96 on oneDNN is 0-25% faster, at 64 they tie).
 * On AVX512-VNNI without AMX our VNNI kernel runs at every M (Zen 5, session 9, 2 threads: 0.88-1.38x
 * of oneDNN's s8 matmul at BERT-base shapes, 0-1% outlier columns; oneDNN gets x already quantized):
 * oneDNN 3.13's VNNI brgemm takes no per-row src scales with s8 src (it needs the s8s8 compensation
 * in the weight, and then refuses grouped src scales; a per-row binary post-op is refused too:
 * ref_int8 only). With u8 src it would, but the -128 * colsum_n * sx_m * ws_n correction then needs
 * a pass over y.
 *
 * oneDNN route: the same steps 1-2 with the rows quantized to s8, then oneDNN's s8 matmul (its
 * AMX brgemm) reads our packed blocks in place (they are its BA16a32b4a layout) with per-row
 * ("per-token") src scales s_m, per-channel weight scales, the bias and the activation,
 * writing y. With outlier columns oneDNN runs without the activation over column chunks of y
 * of ~2 MB, and right after each (the chunk still in cache) one pass of ours adds the f32
 * outlier product xo . Wo^T and applies the activation. Rows with a non-finite x are set to
 * NaN last. A shape oneDNN has no brgemm kernel for falls back to our kernels. With two threads
 * or more the columns of y are split among our workers and each runs oneDNN on its own thread
 * (a primitive made for one thread), its piece followed at once by the outlier pass (dnn_cols):
 * no hand-over between our pool and oneDNN's OpenMP team (each one a wake-up of a sleeping
 * thread) and no outlier pass over y read back from another core. With outlier columns, a small
 * weight and a few rows per thread (M=128 N=K=768) the rows are split instead (dnn_rows): each
 * worker stores the outlier product of its rows in a buffer and oneDNN adds it (a binary post-op)
 * before the activation, so y is written once and never read back.
 * With x f32 and AVX-512 the scan of step 1 quantizes each row in the same visit (s8 for oneDNN)
 * with the row's maximum below the threshold; after the column maxima only the outlier columns
 * are zeroed (and a row whose maximum lay in one is requantized): the q of steps 1-2 exactly.
 *
 * Run time of pt_matmul_int8 (modes LLM and W8A8) on our kernels:
 *  1. LLM only: column absmax of x over all rows; columns with absmax >= threshold are the
 *     outlier features of this call (gathered to xo [M, n_outliers] f32). With AVX-512 and x
 *     f32 one scan of x (parallel over row chunks) gives the column maxima, each row's largest
 *     |x| below the threshold (its absmax for step 2, unless an outlier column holds it: that
 *     row is rescanned) and the non-finite flags; step 2 then only quantizes.
 *  2. Every row m: s_m = absmax of its non-outlier entries / 127; q = rne(x * (127 / absmax))
 *     in [-127, 127], stored as u8 q + 128 (VNNI multiplies u8 by s8); outlier columns hold q 0.
 *  3. Over blocks of 64 output channels (parallel): pack the int8 weight block in VNNI layout
 *     with its column sums, run the micro kernel (AVX512-VNNI or portable) on MR-row tiles,
 *     and finish each tile in one epilogue:
 *       y = act((acc - 128 * colsum_n) * s_m * w_scale_n + xo_m . Wo[n, outliers] + bias_n)
 *     where Wo is w_outlier (full precision) or, when NULL, the dequantized int8 weight. The VNNI
 *     kernel with y f32 applies this epilogue to its accumulator registers (pt_i8_micro_vnni_epi,
 *     the outlier product over the whole 6 x 64 tile per outlier column: Zen 5, 2 threads, 1%
 *     outlier columns, llm/s8 +8-13% at M=128/512, in-process A/B, session 9). */
#include "cpu/int8_gemm.h"
#include "cpu/gemm.h"
#include "cpu/elem.h"

#include <math.h>

/* Passes over x (scan, quantization) and over y (the outlier product) run on more than one
 * thread only from this many elements on: a fork-join costs a worker's wake-up, and next to
 * oneDNN's OpenMP team on as many cores as threads it cost more than it saved at M=128 K=768
 * (2 threads, loaded machine: 2^16 249-352 us, 2^18 128-229 us, all serial 127-220 us per
 * call; oneDNN s8 160-240 us); 2^18 keeps M=512 or K=3072 parallel. */
#define PT_I8_PAR_MIN (1 << 18)

static inline float rne(float v) { /* round half to even for |v| < 2^22 (no libm call, vectorizes) */
    return (v + 12582912.0f) - 12582912.0f;
}

/* ================================================================ portable micro kernel */

void pt_i8_micro_portable(int64_t k4, const uint8_t* a, int64_t lda, int mr, const int8_t* b, int32_t* acc) {
    const int64_t half = ((k4 + 63) & ~(int64_t)63) * PT_I8_NH; /* bytes of a 32-channel half */
    for (int r = 0; r < mr; r++) {
        int32_t* c = acc + r * PT_I8_NB;
        for (int j = 0; j < PT_I8_NB; j++) c[j] = 0;
        const uint8_t* ar = a + r * lda;
        for (int64_t p = 0; p < k4; p += 4) {
            int32_t a0 = ar[p], a1 = ar[p + 1], a2 = ar[p + 2], a3 = ar[p + 3];
            for (int h = 0; h < 2; h++) {
                const int8_t* bp = b + h * half + p * PT_I8_NH;
                int32_t* ch = c + h * PT_I8_NH;
                for (int j = 0; j < PT_I8_NH; j++)
                    ch[j] += a0 * bp[4 * j] + a1 * bp[4 * j + 1] + a2 * bp[4 * j + 2] + a3 * bp[4 * j + 3];
            }
        }
    }
}

/* ================================================================ weight quantization */

static pt_status check_2d(const pt_tensor* t, const char* what, int32_t dt0, int32_t dt1) {
    PT_CHECK(dt1 >= 0 ? pt_check_dtype(t, what, 2, dt0, dt1) : pt_check_dtype(t, what, 1, dt0));
    if (t->ndim != 2) {
        char d[96];
        pt_describe(t, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s must be 2-D, got %s", what, d);
    }
    return PT_OK;
}

static pt_status check_vec(const pt_tensor* t, const char* what, int64_t n) {
    PT_CHECK(pt_check_dtype(t, what, 1, PT_F32));
    if (t->ndim != 1 || t->shape[0] != n) {
        char d[96];
        pt_describe(t, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s must be f32[%lld], got %s", what, (long long)n, d);
    }
    return PT_OK;
}

pt_status pt_quantize_int8_weight(pt_ctx* ctx, const pt_tensor* w, pt_tensor* wq, pt_tensor* scale) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(check_2d(w, "pt_quantize_int8_weight w", PT_F32, PT_BF16));
    PT_CHECK(check_2d(wq, "pt_quantize_int8_weight wq", PT_I8, -1));
    int64_t n = w->shape[0], k = w->shape[1];
    if (wq->shape[0] != n || wq->shape[1] != k) {
        char dw[96], dq[96];
        pt_describe(w, dw, sizeof dw);
        pt_describe(wq, dq, sizeof dq);
        return pt_fail(PT_ERR_SHAPE, "pt_quantize_int8_weight: wq %s must have w's shape %s", dq, dw);
    }
    PT_CHECK(check_vec(scale, "pt_quantize_int8_weight scale", n));
    float* row = (float*)pt_scratch(0, (size_t)(k > 0 ? k : 1) * sizeof(float));
    if (!row) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_quantize_int8_weight: cannot allocate a row of K=%lld", (long long)k);
    float* sc = (float*)scale->data;
    for (int64_t i = 0; i < n; i++) {
        pt_load_row_f32(pt_row_ptr(w, i), w->dtype, k, row);
        float amax = 0.0f;
        for (int64_t p = 0; p < k; p++) {
            if (!isfinite(row[p]))
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_quantize_int8_weight: w[%lld, %lld] = %g is not finite", (long long)i,
                               (long long)p, (double)row[p]);
            float v = fabsf(row[p]);
            amax = v > amax ? v : amax;
        }
        float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
        int8_t* q = (int8_t*)pt_row_ptr(wq, i);
        for (int64_t p = 0; p < k; p++) {
            float v = rne(row[p] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[p] = (int8_t)v;
        }
        sc[i * (scale->stride[0] / 4)] = amax / 127.0f;
    }
    return PT_OK;
}

/* ================================================================ weight packing */

/* Packed weight: the B blocks of all 64-channel groups one after the other, each two halves
 * of 32 channels [2][k64 / 4][32][4] s8 (zero past K and N) -- as a whole exactly oneDNN's
 * BA16a32b4a layout of W^T [K, N], the one its s8 matmul prefers (BA16a64b4a, forced, was up
 * to 1.7x slower at M=512 K=768 N=3072), so oneDNN reads it as it is -- then the column sums
 * [nblk][64] s32. */
static int64_t block_bytes(int64_t k) { return 256 + ((k + 63) & ~(int64_t)63) * PT_I8_NB; }
static int64_t b_bytes(int64_t k) { return ((k + 63) & ~(int64_t)63) * PT_I8_NB; }

int64_t pt_int8_packed_bytes(int64_t n, int64_t k) {
    if (n < 0 || k < 0) return 0;
    return (n + PT_I8_NB - 1) / PT_I8_NB * block_bytes(k);
}

/* Packs channels [n0, n0 + 64) of wq into one block (K padded to 64, see above). */
static void pack_block(const pt_tensor* wq, int64_t n0, int32_t* colsum, int8_t* bp) {
    const int64_t n = wq->shape[0], k = wq->shape[1], k64 = (k + 63) & ~(int64_t)63;
    const int nb = (int)(n - n0 < PT_I8_NB ? n - n0 : PT_I8_NB);
    const int64_t kfull = k & ~(int64_t)3;
    if (nb < PT_I8_NB || k64 != kfull) memset(bp, 0, (size_t)k64 * PT_I8_NB);
    for (int j = 0; j < PT_I8_NB; j++) {
        colsum[j] = 0;
        if (j >= nb) continue;
        const int8_t* w = (const int8_t*)pt_row_ptr(wq, n0 + j);
        int8_t* d = bp + (j / PT_I8_NH) * k64 * PT_I8_NH + (j % PT_I8_NH) * 4;
        for (int64_t p = 0; p < kfull; p += 4) memcpy(d + p * PT_I8_NH, w + p, 4);
        for (int64_t p = kfull; p < k; p++) d[kfull * PT_I8_NH + (p & 3)] = w[p];
        int32_t s = 0;
        for (int64_t p = 0; p < k; p++) s += w[p];
        colsum[j] = s;
    }
}

pt_status pt_pack_int8_weight(pt_ctx* ctx, const pt_tensor* wq, pt_tensor* packed) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(check_2d(wq, "pt_pack_int8_weight wq", PT_I8, -1));
    PT_CHECK(pt_check_dtype(packed, "pt_pack_int8_weight packed", 1, PT_I8));
    const int64_t n = wq->shape[0], k = wq->shape[1], need = pt_int8_packed_bytes(n, k);
    if (packed->ndim != 1 || packed->shape[0] != need)
        return pt_fail(PT_ERR_SHAPE, "pt_pack_int8_weight: packed must be 1-D i8[%lld] (pt_int8_packed_bytes(%lld, %lld)), got ndim %d shape[0] %lld",
                       (long long)need, (long long)n, (long long)k, packed->ndim, (long long)packed->shape[0]);
    const int64_t bb = b_bytes(k), nblk = (n + PT_I8_NB - 1) / PT_I8_NB;
    for (int64_t blk = 0; blk < nblk; blk++) {
        int32_t colsum[PT_I8_NB];
        pack_block(wq, blk * PT_I8_NB, colsum, (int8_t*)packed->data + blk * bb);
        memcpy((char*)packed->data + nblk * bb + blk * 256, colsum, sizeof colsum);
    }
    return PT_OK;
}

/* ================================================================ pt_matmul_int8 driver */

typedef struct {
    int64_t m, n, k, k4, lda;
    const pt_tensor* x;
    const pt_tensor* wq;
    const float* wscale;
    int64_t wscale_stride;    /* elements */
    const pt_tensor* wo;      /* NULL: dequantized wq */
    const float* bias;
    int64_t bias_stride;
    const pt_tensor* y;
    int32_t act, mode;
    float thr;
    float* colmax;            /* [k] */
    int32_t* ocols;           /* [no] */
    int64_t no;
    uint8_t* keep;            /* [k]: 1 for a quantized column */
    uint8_t* aq;              /* [m][lda] */
    float* sx;                /* [m] */
    uint8_t* bad;             /* [m] nonzero: a non-finite x in the row */
    float* xo;                /* [m][no] */
    float* wfull;             /* oneDNN route with outliers: [no][n] f32 outlier weights */
    int64_t n0, nc;           /* the column chunk of y outlier_rows finishes */
    pt_ctx* ctx;              /* oneDNN route (s8_piece; split among our threads: dnn_cols): */
    const float* dws;         /*   contiguous weight scales, bias (or NULL) */
    const float* dbias;
    int64_t ldy, pw, sub;     /*   y's row stride (elements); per part columns (dnn_cols) or rows (dnn_rows); dnn_cols: columns per oneDNN call */
    volatile int32_t dnn_st;  /*   the first failed status of a part */
    int32_t fused;            /* AVX-512, x f32: one scan (scan_rows) for the column and row maxima */
    int32_t preq;             /* fused: scan_rows quantized the rows too; quant_rows only fixes up outlier columns */
    int64_t grain;            /* rows per scan_rows chunk */
    float* cmpart;            /* [chunks][k]: each scan chunk's column maxima */
    float* rmax;              /* [m]: |x| max below the threshold over all columns (scan_rows) */
    pt_i8_micro_fn micro;
    int32_t mr;               /* rows per micro call */
    int32_t amx;
    int32_t s8;               /* aq holds s8 q (oneDNN), else u8 q + 128 */
    int32_t avx512;           /* AVX-512 row quantization and epilogue */
    int32_t epi_fused;        /* VNNI kernel, y f32: the kernel applies the epilogue to its registers (pt_i8_micro_vnni_epi) */
    int32_t dyn;              /* gemm_blocks takes its blocks one at a time from next_blk (not AMX) */
    volatile int64_t next_blk;
    const char* packed;       /* pt_pack_int8_weight's blocks, or NULL */
    int64_t kp;               /* K as the micro kernel sees it: k4 (VNNI, portable) or k64 (AMX); blocks hold k64 */
    volatile int failed;
    float* addbuf;            /* dnn_rows: per part [pw][n] f32, the outlier product oneDNN adds (binary post-op) */
} i8_arg;

static const float* load_x_row(const i8_arg* g, int64_t r, int64_t c0, int64_t c1, float* buf) {
    const char* p = pt_row_ptr(g->x, r);
    if (g->x->dtype == PT_F32) return (const float*)p + c0;
    pt_load_row_f32((const uint16_t*)p + c0, PT_BF16, c1 - c0, buf);
    return buf;
}

static void colmax_range(int64_t b0, int64_t b1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    int64_t c0 = b0 * 256, c1 = b1 * 256 < g->k ? b1 * 256 : g->k;
    float* buf = (float*)pt_scratch(1, (size_t)(c1 - c0) * sizeof(float) + 64);
    if (!buf) { g->failed = 1; return; }
    float* cm = g->colmax + c0;
    for (int64_t j = 0; j < c1 - c0; j++) cm[j] = 0.0f;
    for (int64_t r = 0; r < g->m; r++) {
        const float* xr = load_x_row(g, r, c0, c1, buf);
        for (int64_t j = 0; j < c1 - c0; j++) {
            float v = fabsf(xr[j]);
            cm[j] = v > cm[j] ? v : cm[j];
        }
    }
}

/* The fused scan (AVX-512, x f32) of row chunks [c0, c1) (g->grain rows each): each chunk's
 * column maxima, the rows' maxima below the threshold and their non-finite flags, reading x
 * once. */
static void scan_rows(int64_t c0, int64_t c1, void* argp) {
#if defined(PT_HAVE_X86_KERNELS)
    i8_arg* g = (i8_arg*)argp;
    for (int64_t c = c0; c < c1; c++) {
        float* cm = g->mode == PT_INT8_LLM ? g->cmpart + c * g->k : NULL; /* W8A8: no column maxima */
        if (cm)
            for (int64_t j = 0; j < g->k; j++) cm[j] = 0.0f;
        const int64_t r1 = (c + 1) * g->grain < g->m ? (c + 1) * g->grain : g->m;
        for (int64_t r = c * g->grain; r < r1; r++) {
            int nf;
            const float thr = g->mode == PT_INT8_LLM ? g->thr : INFINITY;
            if (g->preq) {
                uint8_t* q = g->aq + r * g->lda;
                pt_i8_scanq_row_avx512((const float*)pt_row_ptr(g->x, r), g->k, thr, cm, q, g->s8, &g->rmax[r], &nf);
                memset(q + g->k, g->s8 ? 0 : 128, (size_t)(g->lda - g->k));
                g->sx[r] = g->rmax[r] / 127.0f; /* final unless an outlier column held the row's maximum (quant_rows) */
            } else {
                pt_i8_scan_row_avx512((const float*)pt_row_ptr(g->x, r), g->k, thr, cm, &g->rmax[r], &nf);
            }
            g->bad[r] = (uint8_t)nf;
        }
    }
#else
    (void)c0; (void)c1; (void)argp;
#endif
}

static void quant_rows(int64_t r0, int64_t r1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    const int64_t k = g->k;
    float* buf = (float*)pt_scratch(1, (size_t)(k > 0 ? k : 1) * sizeof(float));
    if (!buf) { g->failed = 1; return; }
    const uint8_t* keep = g->keep;
    for (int64_t r = r0; r < r1; r++) {
        const float* xr = load_x_row(g, r, 0, k, buf);
        uint8_t* q = g->aq + r * g->lda;
#if defined(PT_HAVE_X86_KERNELS)
        if (g->fused) { /* the absmax of the kept columns from scan_rows, corrected where an outlier column may hold it */
            float am = g->rmax[r], om = 0.0f;
            for (int64_t o = 0; o < g->no; o++) {
                const float v = fabsf(xr[g->ocols[o]]);
                om = v < g->thr && v > om ? v : om;
            }
            if (g->no > 0 && om >= am) { /* rare: recompute over the kept columns */
                am = 0.0f;
                for (int64_t j = 0; j < k; j++) {
                    const float v = keep[j] ? fabsf(xr[j]) : 0.0f;
                    am = v > am ? v : am;
                }
                pt_i8_quantize_row_avx512(xr, keep, k, q, am, g->bad[r], g->s8);
            } else if (g->preq) { /* quantized by scan_rows with this am: only the outlier columns become 0 */
                for (int64_t o = 0; o < g->no; o++) q[g->ocols[o]] = (uint8_t)(g->s8 ? 0 : 128);
            } else {
                pt_i8_quantize_row_avx512(xr, keep, k, q, am, g->bad[r], g->s8);
            }
            g->sx[r] = am / 127.0f;
            if (!g->preq) memset(q + k, g->s8 ? 0 : 128, (size_t)(g->lda - k));
            float* xo = g->xo + r * g->no;
            for (int64_t o = 0; o < g->no; o++) xo[o] = xr[g->ocols[o]];
            continue;
        }
        if (g->avx512) {
            float am;
            int nf;
            pt_i8_quant_row_avx512(xr, keep, k, q, &am, &nf, g->s8);
            g->bad[r] = (uint8_t)nf;
            g->sx[r] = am / 127.0f;
            memset(q + k, g->s8 ? 0 : 128, (size_t)(g->lda - k));
            float* xo = g->xo + r * g->no;
            for (int64_t o = 0; o < g->no; o++) xo[o] = xr[g->ocols[o]];
            continue;
        }
#endif
        uint32_t nonfinite = 0;
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) {
            uint32_t u;
            memcpy(&u, &xr[j], 4);
            nonfinite |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
            float v = keep[j] ? fabsf(xr[j]) : 0.0f;
            amax = v > amax ? v : amax;
        }
        g->bad[r] = (uint8_t)(nonfinite != 0);
        float inv = amax > 0.0f && !nonfinite ? 127.0f / amax : 0.0f;
        g->sx[r] = amax / 127.0f;
        for (int64_t j = 0; j < k; j++) {
            float v = keep[j] ? rne(xr[j] * inv) : 0.0f;
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v; /* only rounding of amax * inv can reach past */
            q[j] = (uint8_t)((int32_t)v + 128);
        }
        for (int64_t j = k; j < g->lda; j++) q[j] = 128;
        float* xo = g->xo + r * g->no;
        for (int64_t o = 0; o < g->no; o++) xo[o] = xr[g->ocols[o]];
    }
}

static float wo_value(const i8_arg* g, int64_t n, int64_t col) {
    if (g->wo) {
        const char* p = pt_row_ptr(g->wo, n);
        return g->wo->dtype == PT_F32 ? ((const float*)p)[col] : pt_bf16_to_f32(((const uint16_t*)p)[col]);
    }
    return (float)((const int8_t*)pt_row_ptr(g->wq, n))[col] * g->wscale[n * g->wscale_stride];
}

/* Per-block constants of the epilogue: channel scales, bias, and the outlier weights
 * wop [no][64] (w_outlier, or the dequantized int8 weight from the packed block bk). */
static int block_params(const i8_arg* g, int64_t n0, const int8_t* bk, float* wsc, float* bias, float* wop) {
    const int nb = (int)(g->n - n0 < PT_I8_NB ? g->n - n0 : PT_I8_NB);
    for (int j = 0; j < PT_I8_NB; j++) {
        wsc[j] = j < nb ? g->wscale[(n0 + j) * g->wscale_stride] : 0.0f;
        bias[j] = j < nb && g->bias ? g->bias[(n0 + j) * g->bias_stride] : 0.0f;
    }
    if (g->wo) {
        for (int64_t o = 0; o < g->no; o++)
            for (int j = 0; j < PT_I8_NB; j++) wop[o * PT_I8_NB + j] = j < nb ? wo_value(g, n0 + j, g->ocols[o]) : 0.0f;
    } else { /* the dequantized int8 weight, from the packed block: 32 channels of a column in 2 lines per half */
        const int64_t half = ((g->k + 63) & ~(int64_t)63) * PT_I8_NH;
#if defined(PT_HAVE_X86_KERNELS)
        if (g->avx512) { /* all 64 (wsc is 0 past nb) */
            for (int64_t o = 0; o < g->no; o++)
                pt_i8_outlier_wcol_avx512(bk + (g->ocols[o] >> 2) * (4 * PT_I8_NH), half, (int)(g->ocols[o] & 3), wsc, PT_I8_NB, wop + o * PT_I8_NB);
            return nb;
        }
#endif
        for (int64_t o = 0; o < g->no; o++) {
            const int64_t col = g->ocols[o];
            const int8_t* src = bk + (col >> 2) * (4 * PT_I8_NH) + (col & 3);
            for (int j = 0; j < PT_I8_NB; j++) wop[o * PT_I8_NB + j] = (float)src[(j / PT_I8_NH) * half + 4 * (j % PT_I8_NH)] * wsc[j];
        }
    }
    return nb;
}

/* The epilogue's activation, on the AVX-512 unary kernels where the context allows AVX-512
 * (libm's scalar erff was a quarter of an int8 MiniLM forward), else the scalar reference. */
static void activation_row(const i8_arg* g, float* x, int64_t n) {
    if (g->act == PT_ACT_NONE) return;
#if defined(PT_HAVE_X86_KERNELS)
    static const int op[] = {0, PT_UNARY_RELU, PT_UNARY_GELU_ERF, PT_UNARY_GELU_TANH, PT_UNARY_SILU};
    if (g->avx512) {
        pt_unary_row_avx512(op[g->act], x, PT_F32, x, PT_F32, n);
        return;
    }
#endif
    pt_apply_activation(x, n, g->act);
}

/* Whether y takes the f32 epilogue written straight into it (finish_tile's fast path, and the
 * VNNI kernel's fused epilogue): f32 with whole-float row strides. */
static int y_f32_direct(const pt_tensor* y, int64_t m) {
    return y->dtype == PT_F32 && (m == 1 || y->stride[0] % 4 == 0);
}

/* Where y_f32_direct: y's element (m0, n0) and its row stride in floats (0 for M = 1). */
static float* y_f32_at(const i8_arg* g, int64_t m0, int64_t n0, int64_t* ldy) {
    *ldy = g->m > 1 ? g->y->stride[0] / 4 : 0;
    return (float*)pt_row_ptr(g->y, m0) + n0;
}

/* Rows [m0, m0 + mr) of y (y0, row stride ldy, nb columns) after the f32 epilogue: NaN rows, activation. */
static void finish_rows(const i8_arg* g, float* y0, int64_t ldy, int64_t m0, int mr, int nb) {
    for (int r = 0; r < mr; r++) {
        float* yr = y0 + r * ldy;
        if (g->bad[m0 + r])
            for (int j = 0; j < nb; j++) yr[j] = NAN;
        activation_row(g, yr, nb);
    }
}

/* Rows [m0, m0 + mr) x channels [n0, n0 + nb) of y from the s32 sums acc (row stride ldacc):
 * dequantization, outlier product, bias, NaN rows, activation, store. */
static void finish_tile(const i8_arg* g, const int32_t* acc, int64_t ldacc, const int32_t* colsum, int64_t m0, int mr, int64_t n0,
                        int nb, const float* wsc, const float* bias, const float* wop, float* etile) {
#if defined(PT_HAVE_X86_KERNELS)
    /* f32 output: the AVX-512 epilogue writes straight into y, activation and NaN rows after */
    if (g->avx512 && y_f32_direct(g->y, g->m)) {
        int64_t ldy;
        float* y0 = y_f32_at(g, m0, n0, &ldy);
        pt_i8_epilogue_avx512(acc, ldacc, mr, colsum, g->sx + m0, wsc, bias, g->xo + m0 * g->no, g->no, wop, y0, ldy, nb);
        finish_rows(g, y0, ldy, m0, mr, nb);
        return;
    }
    if (g->avx512)
        pt_i8_epilogue_avx512(acc, ldacc, mr, colsum, g->sx + m0, wsc, bias, g->xo + m0 * g->no, g->no, wop, etile, PT_I8_NB, PT_I8_NB);
#endif
    for (int r = 0; r < mr; r++) {
        const int64_t row = m0 + r;
        float* tmp = etile + r * PT_I8_NB;
        if (!g->avx512) {
            const int32_t* c = acc + r * ldacc;
            const float s = g->sx[row];
            for (int j = 0; j < nb; j++) tmp[j] = (float)(c[j] - 128 * colsum[j]) * (s * wsc[j]) + bias[j];
            const float* xo = g->xo + row * g->no;
            for (int64_t o = 0; o < g->no; o++) {
                const float xv = xo[o];
                const float* wr = wop + o * PT_I8_NB;
                for (int j = 0; j < nb; j++) tmp[j] += xv * wr[j];
            }
        }
        if (g->bad[row])
            for (int j = 0; j < nb; j++) tmp[j] = NAN;
        activation_row(g, tmp, nb);
        pt_store_row_f32(tmp, nb, g->y->dtype, pt_row_ptr(g->y, row) + n0 * (int64_t)pt_dtype_size(g->y->dtype));
    }
}

static void gemm_blocks(int64_t b0, int64_t b1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    const int64_t k = g->k;
    const int64_t kp = g->kp;
    int8_t* bp = (int8_t*)pt_scratch(1, (size_t)b_bytes(k > 0 ? k : 1));
    float* wop = (float*)pt_scratch(2, (size_t)(g->no + 1) * PT_I8_NB * sizeof(float));
    if (!bp || !wop) { g->failed = 1; return; }
    int32_t colsum[PT_I8_NB];
    float wsc[PT_I8_NB], bias[PT_I8_NB];
    int32_t acc[PT_I8_MR_MAX * PT_I8_NB];
    float etile[PT_I8_MR_MAX * PT_I8_NB];
#if defined(PT_HAVE_X86_KERNELS)
    if (g->amx) pt_i8_amx_begin();
#endif
    const int64_t nblk = (g->n + PT_I8_NB - 1) / PT_I8_NB;
    for (int64_t i = b0;; i++) {
        /* dyn: every thread takes the next block not taken yet, so a worker that starts late or
         * shares its core (with oneDNN's spinning OpenMP threads, say) leaves its share to the others */
        const int64_t blk = g->dyn ? pt_fetch_add(&g->next_blk, 1) : i; /* (next_blk: 0 from the memset of i8_arg) */
        if (blk >= (g->dyn ? nblk : b1)) break;
        const int64_t n0 = blk * PT_I8_NB;
        const int8_t* bk = bp;
        if (g->packed) {
            memcpy(colsum, g->packed + nblk * b_bytes(k) + blk * 256, sizeof colsum);
            bk = (const int8_t*)(g->packed + blk * b_bytes(k));
        } else {
            pack_block(g->wq, n0, colsum, bp);
        }
        const int nb = block_params(g, n0, bk, wsc, bias, wop);
        for (int64_t m0 = 0; m0 < g->m; m0 += g->mr) {
            const int mr = (int)(g->m - m0 < g->mr ? g->m - m0 : g->mr);
#if defined(PT_HAVE_X86_KERNELS)
            if (g->epi_fused) { /* the VNNI kernel writes its tile of y itself */
                int64_t ldy;
                float* y0 = y_f32_at(g, m0, n0, &ldy);
                const pt_i8_epi e = {colsum, g->sx + m0, wsc, bias, g->xo + m0 * g->no, g->no, wop, y0, ldy, nb};
                pt_i8_micro_vnni_epi(kp, g->aq + m0 * g->lda, g->lda, mr, bk, &e);
                finish_rows(g, y0, ldy, m0, mr, nb);
                continue;
            }
#endif
            g->micro(kp, g->aq + m0 * g->lda, g->lda, mr, bk, acc);
            finish_tile(g, acc, PT_I8_NB, colsum, m0, mr, n0, nb, wsc, bias, wop, etile);
        }
    }
#if defined(PT_HAVE_X86_KERNELS)
    if (g->amx) pt_i8_amx_end();
#endif
}

/* W8A32: a block of 64 channels dequantized to f32 [k][64] in scratch, 4 rows of x at a time. */
static void wonly_blocks(int64_t b0, int64_t b1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    const int64_t k = g->k;
    float* wt = (float*)pt_scratch(1, (size_t)(k > 0 ? k : 1) * PT_I8_NB * sizeof(float));
    float* xb = (float*)pt_scratch(2, (size_t)(k > 0 ? k : 1) * 4 * sizeof(float));
    if (!wt || !xb) { g->failed = 1; return; }
    float acc[4][PT_I8_NB], bias[PT_I8_NB];
    for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t n0 = blk * PT_I8_NB;
        const int nb = (int)(g->n - n0 < PT_I8_NB ? g->n - n0 : PT_I8_NB);
        for (int j = 0; j < PT_I8_NB; j++) {
            bias[j] = j < nb && g->bias ? g->bias[(n0 + j) * g->bias_stride] : 0.0f;
            if (j < nb) {
                const int8_t* w = (const int8_t*)pt_row_ptr(g->wq, n0 + j);
                const float s = g->wscale[(n0 + j) * g->wscale_stride];
                for (int64_t p = 0; p < k; p++) wt[p * PT_I8_NB + j] = (float)w[p] * s;
            } else {
                for (int64_t p = 0; p < k; p++) wt[p * PT_I8_NB + j] = 0.0f;
            }
        }
        for (int64_t m0 = 0; m0 < g->m; m0 += 4) {
            const int mr = (int)(g->m - m0 < 4 ? g->m - m0 : 4);
            for (int r = 0; r < mr; r++) {
                const float* xr = load_x_row(g, m0 + r, 0, k, xb + r * k);
                if (xr != xb + r * k) memcpy(xb + r * k, xr, (size_t)k * sizeof(float));
                for (int j = 0; j < PT_I8_NB; j++) acc[r][j] = 0.0f;
            }
            for (int64_t p = 0; p < k; p++) {
                const float* wr = wt + p * PT_I8_NB;
                for (int r = 0; r < mr; r++) {
                    const float xv = xb[r * k + p];
                    for (int j = 0; j < PT_I8_NB; j++) acc[r][j] += xv * wr[j];
                }
            }
            for (int r = 0; r < mr; r++) {
                for (int j = 0; j < PT_I8_NB; j++) acc[r][j] += bias[j];
                activation_row(g, acc[r], nb);
                pt_store_row_f32(acc[r], nb, g->y->dtype,
                                 pt_row_ptr(g->y, m0 + r) + n0 * (int64_t)pt_dtype_size(g->y->dtype));
            }
        }
    }
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The oneDNN route from this many rows on (see step 2 of pt_matmul_int8): below, our AMX
 * kernel was as fast or faster (pt-bench --op int8, llm.int8 against llm.int8_own). */
#define PT_I8_DNN_MIN_M 64
/* The rows split (dnn_rows), with outlier columns: weights of at most PT_I8_ROWS_W bytes (read
 * whole by every part) and parts of y of at most PT_I8_ROWS_Y bytes, 64 rows or more. Session 6,
 * 2 threads, paused machine, pt-bench llm.int8 GOP/s rows / columns split, three runs each:
 * M=128 768x768 669 / 555, 612 / 561, 788 / 591; M=64 (32 rows per part) 526 / 478, 517 / 556,
 * 404 / 585; M=512 768x768 (one part 1.5 MiB of y + product) and 768x3072 (2.4 MB weight per
 * part: 2x slower) not. Rechecked in one calm window (time ratio to the column split, control
 * 0.97-0.99): M=512 768x768 one piece per part 0.84-0.95, pieces of 128 / 64 / 32 rows 0.92 /
 * 0.85-0.87 / 0.68; M=512 768x3072 0.58-0.63. */
#define PT_I8_ROWS_W (1 << 20)
#define PT_I8_ROWS_Y (1 << 18)
/* bytes of y per oneDNN call with outlier columns (see int8_onednn). M=512 K=768 N=3072, 1 thread,
 * CPU time on the shared machine: 2^18 0.42x of oneDNN s8, 2^19 0.52x, 2^20 0.60x, 2^21 0.63x,
 * 2^22 0.56x (with the product written first and a sum post-op); with the pass after oneDNN
 * 2^20 and 2^21 about equal, 2^22 0.52x. */
#define PT_I8_SUM_CHUNK (1 << 21)

/* The outlier weights of channels [c0, c1), wf [no][n]: the dequantized int8 weight read from the
 * packed blocks (32 channels of a column lie in 2 lines of each half), or w_outlier. */
static void outlier_weights(const i8_arg* g, float* wf, int64_t c0, int64_t c1) {
    const int64_t n = g->n, no = g->no;
    if (g->wo || !g->packed) {
        for (int64_t j = c0; j < c1; j++)
            for (int64_t o = 0; o < no; o++) wf[o * n + j] = wo_value(g, j, g->ocols[o]);
        return;
    }
    const int64_t bb = b_bytes(g->k), half = bb / 2;
    for (int64_t n0 = c0; n0 < c1; n0 += PT_I8_NB) { /* (c0 a multiple of 64) */
        const int nb = (int)(c1 - n0 < PT_I8_NB ? c1 - n0 : PT_I8_NB);
        const int8_t* bk = (const int8_t*)g->packed + (n0 / PT_I8_NB) * bb;
#if defined(PT_HAVE_X86_KERNELS)
        if (g->avx512) { /* g->dws: the contiguous weight scales */
            for (int64_t o = 0; o < no; o++)
                pt_i8_outlier_wcol_avx512(bk + (g->ocols[o] >> 2) * (4 * PT_I8_NH), half, (int)(g->ocols[o] & 3), g->dws + n0, nb, wf + o * n + n0);
            continue;
        }
#endif
        for (int64_t o = 0; o < no; o++) {
            const int64_t col = g->ocols[o];
            const int8_t* src = bk + (col >> 2) * (4 * PT_I8_NH) + (col & 3);
            float* d = wf + o * n + n0;
            for (int j = 0; j < nb; j++)
                d[j] = (float)src[(j / PT_I8_NH) * half + 4 * (j % PT_I8_NH)] * g->wscale[(n0 + j) * g->wscale_stride];
        }
    }
}

/* oneDNN route with outlier columns: rows [r0, r1) x columns [n0, n0 + nc) of y (the s8
 * matmul's result) += xo . wf (f32), then the activation, four rows at a time (still in L1) */
static void outlier_rows(int64_t r0, int64_t r1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
#if defined(PT_HAVE_X86_KERNELS)
    for (int64_t r = r0; r < r1; r += 4) {
        const int64_t rr = r1 - r < 4 ? r1 - r : 4;
        float* y0 = (float*)pt_row_ptr(g->y, r) + g->n0;
        const int64_t ldy = g->m > 1 ? g->y->stride[0] / 4 : g->n;
        pt_i8_outlier_rows_avx512(g->xo + r * g->no, g->no, rr, g->wfull + g->n0, g->n, g->nc, y0, ldy);
        for (int64_t q = 0; q < rr; q++) activation_row(g, y0 + q * ldy, g->nc);
    }
#else
    (void)g; (void)r0; (void)r1;
#endif
}

/* oneDNN's s8 matmul over columns [n0, n0 + w) of y (without the activation when an outlier pass
 * follows); one_thread: a primitive for the calling thread alone (dnn_cols). */
static pt_onednn_s8_problem s8_piece(const i8_arg* g, int64_t n0, int64_t w, int one_thread) {
    const pt_onednn_s8_problem q = {g->m, w, g->k, g->lda, g->ldy, g->y->dtype, g->no > 0 ? PT_ACT_NONE : g->act, (const int8_t*)g->aq,
                                    (const int8_t*)g->packed + (n0 / PT_I8_NB) * b_bytes(g->k), g->sx, g->dws + n0,
                                    g->dbias ? g->dbias + n0 : NULL, (char*)g->y->data + n0 * (int64_t)pt_dtype_size(g->y->dtype), one_thread,
                                    NULL, 0};
    return q;
}

/* oneDNN route split among our threads: part p = columns [p * pw, (p + 1) * pw) of y, each
 * worker running oneDNN's s8 matmul on its own thread over pieces of sub columns, each piece
 * followed at once by the outlier product and the activation (the piece still in this core's
 * L2). */
static void dnn_cols(int64_t p0, int64_t p1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    const int64_t m = g->m;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t c1 = (p + 1) * g->pw < g->n ? (p + 1) * g->pw : g->n;
        if (g->no > 0) outlier_weights(g, g->wfull, p * g->pw, c1); /* this part's, from its own slice of the weight */
        for (int64_t n0 = p * g->pw; n0 < c1; n0 += g->sub) {
            const int64_t w = c1 - n0 < g->sub ? c1 - n0 : g->sub;
            const pt_onednn_s8_problem q = s8_piece(g, n0, w, 1);
            const pt_status st = pt_matmul_onednn_s8(g->ctx, &q);
            if (st != PT_OK) {
                g->dnn_st = st;
                return;
            }
#if defined(PT_HAVE_X86_KERNELS)
            for (int64_t r = 0; g->no > 0 && r < m; r += 4) {
                const int64_t rr = m - r < 4 ? m - r : 4;
                float* y0 = (float*)pt_row_ptr(g->y, r) + n0;
                pt_i8_outlier_rows_avx512(g->xo + r * g->no, g->no, rr, g->wfull + n0, g->n, w, y0, g->ldy);
                for (int64_t i = 0; i < rr; i++) activation_row(g, y0 + i * g->ldy, w);
            }
#endif
        }
    }
}

/* oneDNN route split among our threads by rows, with outlier columns and y dense (ldy == n): part
 * p = rows [p * pw, (p + 1) * pw); the outlier product of its rows is stored in this part's
 * buffer (in L2), and oneDNN's s8 matmul adds it (binary post-op: oneDNN's brgemm takes one only
 * on a dense y) before the activation, writing y once. */
static void dnn_rows(int64_t p0, int64_t p1, void* argp) {
    i8_arg* g = (i8_arg*)argp;
    const int64_t m = g->m, n = g->n;
    for (int64_t p = p0; p < p1; p++) {
        const int64_t r0 = p * g->pw, rows = m - r0 < g->pw ? m - r0 : g->pw;
        float* buf = g->addbuf + r0 * n;
#if defined(PT_HAVE_X86_KERNELS)
        pt_i8_outlier_set_avx512(g->xo + r0 * g->no, g->no, rows, g->wfull, n, n, buf, n);
#endif
        pt_onednn_s8_problem q = s8_piece(g, 0, n, 1);
        q.m = rows;
        q.a = (const int8_t*)g->aq + r0 * g->lda;
        q.sx = g->sx + r0;
        q.y = (char*)g->y->data + r0 * g->ldy * (int64_t)pt_dtype_size(g->y->dtype);
        q.add = buf;
        q.ldadd = n;
        q.activation = g->act;
        const pt_status st = pt_matmul_onednn_s8(g->ctx, &q);
        if (st != PT_OK) {
            g->dnn_st = st;
            return;
        }
    }
}

/* Runs dnn_cols or dnn_rows over nparts parts on our workers; the first status a part failed with. */
static pt_status dnn_parts(pt_ctx* ctx, i8_arg* g, int64_t nparts, void (*fn)(int64_t, int64_t, void*)) {
    g->dnn_st = PT_OK;
    pt_parallel_range(ctx, nparts, 1, fn, g);
    if (g->dnn_st == PT_OK || g->dnn_st == PT_ERR_UNSUPPORTED) return (pt_status)g->dnn_st;
    return pt_fail(g->dnn_st, "pt_matmul_int8: oneDNN's s8 matmul failed on a worker (M=%lld N=%lld K=%lld)", (long long)g->m,
                   (long long)g->n, (long long)g->k);
}

/* oneDNN route, after the row quantization (s8): oneDNN's s8 matmul with per-row src scales,
 * per-channel weight scales, bias and activation writes y; with outlier columns per column
 * chunk, without the activation, then outlier_rows on the chunk. Rows with a non-finite x are
 * set to NaN last. (Session 3's outlier pass after oneDNN over the whole y, read back from
 * memory, was 0.75-0.85x of our AMX kernel. Session 4, 1 thread: per ~2 MB chunk it beats our
 * kernel from M=96 on; writing the product into y first with oneDNN's sum post-op adding onto
 * it was 0-12% slower than this at K=768 (its first write of y is not overlapped with any
 * compute), equal at K=3072, and was deleted. Session 8, 2 threads, in-process A/B against the
 * column split below (BENCHMARKS, issue 5, "Session 8"): the whole GEMM as ONE oneDNN call on its
 * OpenMP team with the outlier product fused (our pool stores it, oneDNN adds it) ran at 0.53-0.82x
 * of the split at M=128/512 (binary post-op from an [M, N] buffer 0.53-0.76x, sum post-op onto y
 * pre-set with the product 0.78-0.82x); one call with our pass after it in 2 MB column chunks
 * 0.90-1.08x; W8A8 as one call 0.51-1.27x (M=512 3072x768 0.51x). A binary post-op on a column
 * slice of y stays ref_int8 even with the added tensor at y's strides.) */
static pt_status int8_onednn(pt_ctx* ctx, i8_arg* g, int64_t threads) {
    const int64_t m = g->m, n = g->n;
    const float* ws = g->wscale;
    const float* bias = g->bias;
    if ((n > 1 && g->wscale_stride != 1) || (bias && n > 1 && g->bias_stride != 1)) { /* oneDNN wants them contiguous */
        float* c = (float*)pt_scratch(1, (size_t)n * 2 * sizeof(float));
        if (!c) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: cannot allocate scales (N=%lld)", (long long)n);
        for (int64_t j = 0; j < n; j++) c[j] = g->wscale[j * g->wscale_stride];
        if (bias)
            for (int64_t j = 0; j < n; j++) c[n + j] = g->bias[j * g->bias_stride];
        ws = c;
        bias = bias ? c + n : NULL;
    }
    const int64_t es = pt_dtype_size(g->y->dtype), ldy = m > 1 ? g->y->stride[0] / es : n;
    /* With outlier columns: over column chunks of y of about PT_I8_SUM_CHUNK bytes (a multiple
     * of 64 channels: the packed weight of a chunk is a slice of it), so that oneDNN's result is
     * still in cache when outlier_rows adds the outlier product. */
    int64_t nc = n;
    if (g->no > 0) {
        g->wfull = (float*)pt_scratch(2, (size_t)(g->no * n) * sizeof(float));
        if (!g->wfull) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: cannot allocate the outlier weights (%lld x N=%lld)",
                                      (long long)g->no, (long long)n);
    }
    /* Two threads or more: the columns split among our workers, oneDNN on each worker's own
     * thread (one wake-up of our pool per call, no hand-over to oneDNN's OpenMP team and back for
     * the outlier pass; each thread's piece of y stays in its own L2) */
    const int64_t nparts = threads < n / PT_I8_NB ? threads : n / PT_I8_NB;
    g->ctx = ctx;
    g->dws = ws;
    g->dbias = bias;
    g->ldy = ldy;
    /* With outlier columns, a small weight (read whole by each part: it stays in L2) and parts of
     * y of at most PT_I8_ROWS_Y bytes from 64 rows on, y dense and f32: the rows split among the
     * workers instead (dnn_rows), oneDNN adding the outlier product (one piece per part) */
    const int64_t rp = ceil_div(m, threads);
    if (g->no > 0 && threads > 1 && n * g->k <= PT_I8_ROWS_W && rp >= 64 && rp * n * 4 <= PT_I8_ROWS_Y && ldy == n && g->y->dtype == PT_F32) {
        g->pw = rp;
        const size_t wb = ((size_t)(g->no * n) * sizeof(float) + 63) & ~(size_t)63;
        char* s2 = (char*)pt_scratch(2, wb + (size_t)(threads * rp * n) * sizeof(float));
        if (!s2) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: cannot allocate the outlier product (M=%lld N=%lld)", (long long)m, (long long)n);
        g->wfull = (float*)s2;
        g->addbuf = (float*)(s2 + wb);
        outlier_weights(g, g->wfull, 0, n);
        PT_CHECK(dnn_parts(ctx, g, ceil_div(m, rp), dnn_rows));
    } else if (nparts > 1) {
        g->pw = ceil_div(ceil_div(n, nparts), PT_I8_NB) * PT_I8_NB;
        g->sub = g->pw;
        if (g->no > 0) {
            /* pieces of y of about 256 KiB (read back from L2 by the outlier pass), at most 3 per
             * part (each piece is one more oneDNN call). Quiet machine, 2 threads, llm.int8 / s8
             * (two runs): M=512 768x768 pieces of 1 MiB 0.52 / 0.66, 256 KiB 0.73 / 0.77; M=512
             * 768x3072 (12 pieces of 256 KiB) 0.69 / 0.57, 3 of 1 MiB 0.77 / 0.76 */
            const int64_t want = (1 << 18) / (m * 4) / PT_I8_NB * PT_I8_NB;
            int64_t pieces = ceil_div(g->pw, want > PT_I8_NB ? want : PT_I8_NB);
            pieces = pieces < 3 ? pieces : 3;
            g->sub = ceil_div(ceil_div(g->pw, pieces), PT_I8_NB) * PT_I8_NB;
        }
        PT_CHECK(dnn_parts(ctx, g, ceil_div(n, g->pw), dnn_cols));
    } else {
        if (g->no > 0) {
            outlier_weights(g, g->wfull, 0, n);
            const int64_t want = PT_I8_SUM_CHUNK / (m * 4) / PT_I8_NB * PT_I8_NB;
            const int64_t parts = ceil_div(n, want > PT_I8_NB ? want : PT_I8_NB);
            nc = ceil_div(ceil_div(n, parts), PT_I8_NB) * PT_I8_NB;
        }
        for (int64_t n0 = 0; n0 < n; n0 += nc) {
            const int64_t w = n - n0 < nc ? n - n0 : nc;
            g->n0 = n0;
            g->nc = w;
            pt_onednn_s8_problem q = s8_piece(g, n0, w, 0);
            pt_status st = pt_matmul_onednn_s8(ctx, &q);
            if (st != PT_OK) return st;
            if (g->no > 0) /* while the chunk is in cache: + the outlier product, then the activation */
                pt_parallel_range(ctx, m, threads > 1 && m * w > PT_I8_PAR_MIN ? ceil_div(m, threads) : m, outlier_rows, g);
        }
    }
    for (int64_t r = 0; r < m; r++)
        if (g->bad[r]) {
            char* yr = pt_row_ptr(g->y, r);
            for (int64_t j = 0; j < n; j++) {
                if (g->y->dtype == PT_F32) ((float*)yr)[j] = NAN;
                else ((uint16_t*)yr)[j] = 0x7fc0;
            }
        }
    return PT_OK;
}

/* Slot 0 of the scratch, read by every worker: the quantized rows aq [mpad][lda] (rows past m
 * the zero point of the route, g->s8), the outlier values xo [m][xo_cols] and the row scales sx [m]. */
static pt_status slot0(i8_arg* g, int64_t mpad, int64_t xo_cols) {
    const int64_t m = g->m;
    const size_t abytes = (size_t)mpad * (size_t)g->lda, xob = (size_t)(m * xo_cols) * sizeof(float);
    char* s0 = (char*)pt_scratch(0, abytes + xob + (size_t)m * sizeof(float) + 256);
    if (!s0) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: cannot allocate the quantized activations (M=%lld K=%lld)",
                            (long long)m, (long long)g->k);
    g->aq = (uint8_t*)s0;
    g->xo = (float*)(s0 + ((abytes + 63) & ~(size_t)63));
    g->sx = (float*)((char*)g->xo + ((xob + 63) & ~(size_t)63));
    if (mpad > m) memset(g->aq + m * g->lda, g->s8 ? 0 : 128, (size_t)((mpad - m) * g->lda));
    return PT_OK;
}

pt_status pt_matmul_int8(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* wq, const pt_tensor* w_scale,
                         const pt_tensor* w_outlier, const pt_tensor* bias, pt_tensor* y,
                         const pt_int8_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    pt_int8_matmul_params p = {PT_INT8_LLM, PT_ACT_NONE, 6.0f, 0, NULL};
    if (params) p = *params;
    if (p.threshold == 0.0f) p.threshold = 6.0f;
    if (p.mode < PT_INT8_LLM || p.mode > PT_INT8_WEIGHT_ONLY)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_int8: unknown mode %d (expected 0..%d)", p.mode, PT_INT8_WEIGHT_ONLY);
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_int8: unknown activation %d (expected 0..%d)", p.activation, PT_ACT_SILU);
    if (!(p.threshold > 0.0f))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_int8: threshold must be > 0 (0 means 6.0), got %g", (double)p.threshold);
    PT_CHECK(check_2d(x, "pt_matmul_int8 x", PT_F32, PT_BF16));
    PT_CHECK(check_2d(wq, "pt_matmul_int8 wq", PT_I8, -1));
    PT_CHECK(check_2d(y, "pt_matmul_int8 y", PT_F32, PT_BF16));
    const int64_t m = x->shape[0], k = x->shape[1], n = wq->shape[0];
    char dx[96], dw[96], dy[96];
    if (wq->shape[1] != k) {
        pt_describe(x, dx, sizeof dx);
        pt_describe(wq, dw, sizeof dw);
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_int8: x %s has K=%lld but wq %s has K=%lld (wq is [N, K])", dx, (long long)k, dw,
                       (long long)wq->shape[1]);
    }
    if (y->shape[0] != m || y->shape[1] != n) {
        pt_describe(x, dx, sizeof dx);
        pt_describe(wq, dw, sizeof dw);
        pt_describe(y, dy, sizeof dy);
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_int8: y %s, expected [%lld, %lld] for x %s and wq %s", dy, (long long)m, (long long)n,
                       dx, dw);
    }
    PT_CHECK(check_vec(w_scale, "pt_matmul_int8 w_scale", n));
    if (bias) PT_CHECK(check_vec(bias, "pt_matmul_int8 bias", n));
    if (w_outlier) {
        PT_CHECK(check_2d(w_outlier, "pt_matmul_int8 w_outlier", PT_F32, PT_BF16));
        if (w_outlier->shape[0] != n || w_outlier->shape[1] != k) {
            pt_describe(w_outlier, dw, sizeof dw);
            return pt_fail(PT_ERR_SHAPE, "pt_matmul_int8: w_outlier %s must be [N=%lld, K=%lld] like wq", dw, (long long)n, (long long)k);
        }
    }
    if (p.w_packed) {
        PT_CHECK(pt_check_dtype(p.w_packed, "pt_matmul_int8 params->w_packed", 1, PT_I8));
        if (p.w_packed->ndim != 1 || p.w_packed->shape[0] != pt_int8_packed_bytes(n, k))
            return pt_fail(PT_ERR_SHAPE, "pt_matmul_int8: params->w_packed must be i8[%lld] (pt_pack_int8_weight of wq [%lld, %lld]), got shape[0] %lld",
                           (long long)pt_int8_packed_bytes(n, k), (long long)n, (long long)k, (long long)p.w_packed->shape[0]);
    }
    if (m > 1 && n > 1 && y->stride[0] < n * (int64_t)pt_dtype_size(y->dtype)) {
        pt_describe(y, dy, sizeof dy);
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_int8: y %s rows overlap", dy);
    }
    if (m == 0 || n == 0) return PT_OK;

    i8_arg g;
    memset(&g, 0, sizeof g);
    g.m = m; g.n = n; g.k = k; g.k4 = (k + 3) & ~(int64_t)3;
    g.lda = (g.k4 + 63) & ~(int64_t)63;
    g.x = x; g.wq = wq; g.y = y; g.wo = w_outlier;
    g.wscale = (const float*)w_scale->data; g.wscale_stride = n > 1 ? w_scale->stride[0] / 4 : 0;
    g.bias = bias ? (const float*)bias->data : NULL; g.bias_stride = bias && n > 1 ? bias->stride[0] / 4 : 0;
    g.act = p.activation; g.mode = p.mode; g.thr = p.threshold;
    g.packed = p.w_packed ? (const char*)p.w_packed->data : NULL;
    g.micro = pt_i8_micro_portable;
    g.mr = PT_I8_MR;
    g.kp = g.k4;
#if defined(PT_HAVE_X86_KERNELS)
    if (ctx->caps & PT_CPU_AVX512F) g.avx512 = 1;
    if ((ctx->caps & PT_CPU_AVX512F) && (ctx->caps & PT_CPU_AVX512_VNNI)) {
        g.micro = pt_i8_micro_vnni;
        g.epi_fused = y_f32_direct(y, m);
    }
    if ((ctx->caps & PT_CPU_AMX_INT8) && g.avx512) {
        g.micro = pt_i8_micro_amx;
        g.epi_fused = 0;
        g.mr = PT_I8_MR_MAX;
        g.amx = 1;
        g.kp = g.lda; /* K padded to 64 */
    }
#endif
    const int64_t nblk = ceil_div(n, PT_I8_NB);
    const double flops = 2.0 * (double)m * (double)n * (double)(k > 0 ? k : 1);
    const int64_t threads = flops < 4e5 ? 1 : ctx->n_threads;
    if (p.mode == PT_INT8_WEIGHT_ONLY) {
        pt_parallel_range(ctx, nblk, ceil_div(nblk, threads), wonly_blocks, &g);
        if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: a worker could not allocate its scratch (K=%lld)", (long long)k);
        return PT_OK;
    }
    /* 1. outlier columns (slot 3: colmax, their indices, the kept-column mask; with the fused
     *    scan also each chunk's column maxima, the rows' maxima and non-finite flags) */
#if defined(PT_HAVE_X86_KERNELS)
    g.fused = g.avx512 && x->dtype == PT_F32 && (m == 1 || x->stride[0] % 4 == 0) && k > 0;
#endif
    /* Whether oneDNN may run the GEMM, all but the outlier condition (known after the scan): the
     * fused scan quantizes the rows for it (s8) in the same visit of x (no second read of x; see
     * scan_rows and quant_rows). */
    int dnn_ok = 0;
#if defined(PT_HAVE_X86_KERNELS)
    dnn_ok = g.amx && g.packed && ctx->use_onednn && ctx->onednn && m >= PT_I8_DNN_MIN_M && (m == 1 || y->stride[0] % pt_dtype_size(y->dtype) == 0);
#endif
    const int64_t mpad = g.amx ? (m + PT_I8_MR_MAX - 1) / PT_I8_MR_MAX * PT_I8_MR_MAX : m;
    const int64_t xo_cap = g.fused && p.mode == PT_INT8_LLM ? 16 + k / 32 : 0; /* outlier columns the early buffer holds */
    size_t abytes = (size_t)mpad * (size_t)g.lda;
    if (g.fused) {
        g.s8 = dnn_ok;
        PT_CHECK(slot0(&g, mpad, xo_cap));
        g.preq = 1;
    }
    /* the passes over x in parallel from PT_I8_PAR_MIN elements, or from 2^14 when oneDNN will run
     * split among our workers or when our VNNI kernel runs (no OpenMP team to hand over to: the
     * worker woken here is the one that runs the other part of the GEMM; Zen 5, 2 threads, M=128
     * K=768 N=768 llm.int8 +4%, in-process A/B, session 9) */
    const int64_t par_min = (dnn_ok || !g.amx) && threads > 1 && n >= 2 * PT_I8_NB ? (1 << 14) : PT_I8_PAR_MIN;
    const int64_t chunks = g.fused && threads > 1 && m * k > par_min ? (threads < m ? threads : m) : 1;
    g.grain = ceil_div(m, chunks);
    const size_t cbytes = ((size_t)(k + 1) * (sizeof(float) + sizeof(int32_t) + 1) + 63) & ~(size_t)63;
    const size_t pbytes = g.fused ? (size_t)(chunks * k + m) * sizeof(float) : 0;
    char* s3 = (char*)pt_scratch(3, cbytes + pbytes + (size_t)m + 128);
    if (!s3) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: cannot allocate column scratch (M=%lld K=%lld)", (long long)m, (long long)k);
    g.colmax = (float*)s3;
    g.ocols = (int32_t*)(s3 + (size_t)(k + 1) * sizeof(float));
    g.keep = (uint8_t*)(s3 + (size_t)(k + 1) * (sizeof(float) + sizeof(int32_t)));
    g.cmpart = (float*)(s3 + cbytes);
    g.rmax = g.cmpart + chunks * k;
    g.bad = (uint8_t*)(s3 + cbytes + pbytes);
    memset(g.keep, 1, (size_t)k);
    if (g.fused) {
        pt_parallel_range(ctx, ceil_div(m, g.grain), 1, scan_rows, &g);
        if (p.mode == PT_INT8_LLM) {
            for (int64_t j = 0; j < k; j++) g.colmax[j] = g.cmpart[j];
            for (int64_t c = 1; c < ceil_div(m, g.grain); c++)
                for (int64_t j = 0; j < k; j++) g.colmax[j] = g.cmpart[c * k + j] > g.colmax[j] ? g.cmpart[c * k + j] : g.colmax[j];
            for (int64_t j = 0; j < k; j++)
                if (g.colmax[j] >= p.threshold) { g.ocols[g.no++] = (int32_t)j; g.keep[j] = 0; }
        }
    } else if (p.mode == PT_INT8_LLM && k > 0) {
        int64_t cblk = ceil_div(k, 256);
        pt_parallel_range(ctx, cblk, threads > 1 && m * k > PT_I8_PAR_MIN ? ceil_div(cblk, threads) : cblk, colmax_range, &g);
        if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: a worker could not allocate its scratch (K=%lld)", (long long)k);
        for (int64_t j = 0; j < k; j++)
            if (g.colmax[j] >= p.threshold) { g.ocols[g.no++] = (int32_t)j; g.keep[j] = 0; }
    }
    /* 2. oneDNN route: AMX, a packed weight (whose blocks are oneDNN's layout), no outlier columns */
    const int dnn = dnn_ok && (g.no == 0 || y->dtype == PT_F32);
    if (g.preq && g.no > xo_cap) g.preq = 0; /* more outlier columns than the early buffer holds: the general path */
    if (g.preq) {
        /* 3. the rows were quantized by the scan: flip s8 <-> u8 + 128 if the route changed (bf16 y
         *    with outlier columns), then with outlier columns zero them (quant_rows) */
        if (g.s8 != dnn) {
            for (size_t i = 0; i < abytes; i++) g.aq[i] ^= 0x80;
            g.s8 = dnn;
        }
        if (g.no > 0)
            pt_parallel_range(ctx, m, threads > 1 && m * k > par_min ? ceil_div(m, threads) : m, quant_rows, &g);
    } else {
        g.s8 = dnn;
        /* 3. quantized rows (slot 0, read by every worker in step 4) */
        PT_CHECK(slot0(&g, mpad, g.no));
        pt_parallel_range(ctx, m, threads > 1 && m * k > PT_I8_PAR_MIN ? ceil_div(m, threads) : m, quant_rows, &g);
    }
    if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: a worker could not allocate its scratch (K=%lld)", (long long)k);
    if (dnn) {
        pt_status st = int8_onednn(ctx, &g, threads);
        if (st != PT_ERR_UNSUPPORTED) return st;
        /* oneDNN has no fast kernel for this shape: requantize for ours (u8 + 128) */
        g.s8 = 0;
        g.preq = 0;
        if (mpad > m) memset(g.aq + m * g.lda, 128, (size_t)((mpad - m) * g.lda));
        pt_parallel_range(ctx, m, threads > 1 && m * k > PT_I8_PAR_MIN ? ceil_div(m, threads) : m, quant_rows, &g);
        if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: a worker could not allocate its scratch (K=%lld)", (long long)k);
    }
    /* 4. int8 GEMM + epilogue over blocks of 64 output channels */
    /* not AMX: the blocks handed out one at a time (gemm_blocks, dyn); Zen 5, 2 threads, 1% outlier
     * columns, in-process A/B against the static halves: llm/s8 +0.01 on a quiet machine, +0.03-0.08
     * right after a oneDNN call (its OpenMP worker still spinning on a core) */
    g.dyn = !g.amx && threads > 1 && nblk > 1;
    if (g.dyn)
        pt_parallel_range(ctx, threads < nblk ? threads : nblk, 1, gemm_blocks, &g);
    else
        pt_parallel_range(ctx, nblk, ceil_div(nblk, threads), gemm_blocks, &g);
    if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_int8: a worker could not allocate its packing scratch (K=%lld)", (long long)k);
    return PT_OK;
}
