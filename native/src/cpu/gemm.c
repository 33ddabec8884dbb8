/* pt_matmul: argument checks, dispatch (oneDNN or our kernels), and the portable kernel. */
#include "cpu/gemm.h"

#include <math.h>
#include <stdlib.h>

void pt_apply_activation(float* x, int64_t n, int32_t act) {
    switch (act) {
    case PT_ACT_RELU: for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0; break;
    case PT_ACT_GELU_ERF: for (int64_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f)); break;
    case PT_ACT_GELU_TANH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i];
            x[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        }
        break;
    case PT_ACT_SILU: for (int64_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i])); break;
    default: break;
    }
}

/* ---- portable kernel: rows of C in parallel; B row panel converted to f32 once ---- */
typedef struct {
    const pt_gemm_problem* g;
    int64_t b_idx;
} portable_arg;

static inline float ld(const void* p, int32_t dt, int64_t i) {
    return dt == PT_BF16 ? pt_bf16_to_f32(((const uint16_t*)p)[i]) : ((const float*)p)[i];
}

static void portable_rows(int64_t r0, int64_t r1, void* argp) {
    portable_arg* pa = (portable_arg*)argp;
    const pt_gemm_problem* g = pa->g;
    int64_t bi = pa->b_idx;
    size_t es = pt_dtype_size(g->a_dtype), cs = pt_dtype_size(g->c_dtype);
    const char* A = (const char*)g->a + (size_t)(bi * g->batch_a) * es;
    const char* B = (const char*)g->b + (size_t)(bi * g->batch_b) * es;
    char* C = (char*)g->c + (size_t)(bi * g->batch_c) * cs;
    float* acc = (float*)pt_scratch(0, (size_t)g->n * 4);
    float* arow = (float*)pt_scratch(1, (size_t)g->k * 4);
    if (!acc || !arow) return; /* reported by the caller's pre-check */
    for (int64_t i = r0; i < r1; i++) {
        pt_load_row_f32(A + (size_t)(i * g->lda) * es, g->a_dtype, g->k, arow);
        if (g->trans_b) {
            for (int64_t j = 0; j < g->n; j++) {
                const char* brow = B + (size_t)(j * g->ldb) * es;
                float s = 0;
                if (g->a_dtype == PT_F32) {
                    const float* bp = (const float*)brow;
                    for (int64_t p = 0; p < g->k; p++) s += arow[p] * bp[p];
                } else {
                    for (int64_t p = 0; p < g->k; p++) s += arow[p] * ld(brow, g->a_dtype, p);
                }
                acc[j] = s;
            }
        } else {
            for (int64_t j = 0; j < g->n; j++) acc[j] = 0;
            for (int64_t p = 0; p < g->k; p++) {
                float av = arow[p];
                const char* brow = B + (size_t)(p * g->ldb) * es;
                if (g->a_dtype == PT_F32) {
                    const float* bp = (const float*)brow;
                    for (int64_t j = 0; j < g->n; j++) acc[j] += av * bp[j];
                } else {
                    for (int64_t j = 0; j < g->n; j++) acc[j] += av * ld(brow, g->a_dtype, j);
                }
            }
        }
        char* crow = C + (size_t)(i * g->ldc) * cs;
        for (int64_t j = 0; j < g->n; j++) {
            float v = g->alpha * acc[j];
            if (g->bias) v += g->bias[j];
            if (g->beta != 0.0f) v += g->beta * ld(crow, g->c_dtype, j);
            acc[j] = v;
        }
        pt_apply_activation(acc, g->n, g->activation);
        pt_store_row_f32(acc, g->n, g->c_dtype, crow);
    }
}

pt_status pt_matmul_portable(pt_ctx* ctx, const pt_gemm_problem* g) {
    for (int64_t b = 0; b < g->batch; b++) {
        portable_arg pa = {g, b};
        pt_parallel_range(ctx, g->m, 1, portable_rows, &pa);
    }
    return PT_OK;
}

/* Weak default so builds without the AVX-512 file still link; gemm_avx512.c overrides the
 * choice through pt_matmul_own's dispatch. */
pt_status pt_matmul_own(pt_ctx* ctx, const pt_gemm_problem* g) {
    return pt_matmul_portable(ctx, g);
}

/* ---- public entry point ---- */
pt_status pt_matmul(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b, const pt_tensor* bias,
                    pt_tensor* c, const pt_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_check_dtype(a, "pt_matmul a", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(b, "pt_matmul b", 2, PT_F32, PT_BF16));
    PT_CHECK(pt_check_dtype(c, "pt_matmul c", 2, PT_F32, PT_BF16));
    pt_matmul_params p = {0, PT_ACT_NONE, 1.0f, 0.0f};
    if (params) p = *params;
    if (p.alpha == 0.0f) p.alpha = 1.0f;
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul: unknown activation %d", p.activation);
    if (b->dtype != a->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_matmul: a is %s but b is %s (must match)", pt_dtype_name(a->dtype), pt_dtype_name(b->dtype));
    if (a->dtype == PT_F32 && c->dtype != PT_F32)
        return pt_fail(PT_ERR_DTYPE, "pt_matmul: f32 inputs need an f32 output, got %s", pt_dtype_name(c->dtype));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || c->ndim != a->ndim)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: ranks a=%d b=%d c=%d; expected a,c 2-D or 3-D and b 2-D or 3-D",
                       a->ndim, b->ndim, c->ndim);
    int ba = a->ndim == 3, bb = b->ndim == 3;
    int64_t batch = ba ? a->shape[0] : 1;
    int64_t m = a->shape[ba], k = a->shape[ba + 1];
    int64_t bk = p.trans_b ? b->shape[bb + 1] : b->shape[bb], n = p.trans_b ? b->shape[bb] : b->shape[bb + 1];
    char da[96], db[96], dc[96];
    pt_describe(a, da, sizeof da); pt_describe(b, db, sizeof db); pt_describe(c, dc, sizeof dc);
    if (bk != k)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: inner dims differ: a %s has K=%lld, b %s (trans_b=%d) has K=%lld",
                       da, (long long)k, db, p.trans_b, (long long)bk);
    if (bb && (!ba || b->shape[0] != batch))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: batched b %s needs a with the same batch, got a %s", db, da);
    if (c->shape[ba] != m || c->shape[ba + 1] != n || (ba && c->shape[0] != batch))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: c %s, expected [%s%lld, %lld] for a %s and b %s", dc,
                       ba ? "B, " : "", (long long)m, (long long)n, da, db);
    if (bias) {
        PT_CHECK(pt_check_dtype(bias, "pt_matmul bias", 1, PT_F32));
        if (bias->ndim != 1 || bias->shape[0] != n)
            return pt_fail(PT_ERR_SHAPE, "pt_matmul: bias must be [%lld], got ndim %d shape[0] %lld", (long long)n,
                           bias->ndim, (long long)bias->shape[0]);
    }
    size_t ea = pt_dtype_size(a->dtype), ec = pt_dtype_size(c->dtype);
    pt_gemm_problem g = {0};
    g.m = m; g.n = n; g.k = k; g.batch = batch;
    g.a_dtype = a->dtype; g.c_dtype = c->dtype;
    g.a = a->data; g.b = b->data; g.bias = bias ? (const float*)bias->data : NULL; g.c = c->data;
    g.lda = m > 1 ? a->stride[ba] / (int64_t)ea : k;
    g.ldb = b->shape[bb] > 1 ? b->stride[bb] / (int64_t)ea : (p.trans_b ? k : n);
    g.ldc = m > 1 ? c->stride[ba] / (int64_t)ec : n;
    g.batch_a = ba ? a->stride[0] / (int64_t)ea : 0;
    g.batch_b = bb ? b->stride[0] / (int64_t)ea : 0;
    g.batch_c = ba ? c->stride[0] / (int64_t)ec : 0;
    g.trans_b = p.trans_b != 0; g.activation = p.activation; g.alpha = p.alpha; g.beta = p.beta;
    if (m == 0 || n == 0) return PT_OK;
    if (k == 0) { /* empty reduction: c = act(bias + beta c) */
        g.alpha = 0.0f;
    }
    if (!pt_scratch(0, (size_t)n * 4 + 64) || !pt_scratch(1, (size_t)k * 4 + 64))
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul: scratch allocation failed");
    if (ctx->use_onednn && ctx->onednn && k > 0) return pt_matmul_onednn(ctx, &g);
    return pt_matmul_own(ctx, &g);
}
