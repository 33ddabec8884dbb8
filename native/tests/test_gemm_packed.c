/* pt_matmul_pack / pt_matmul_packed against a double-precision reference written plainly here.
 *
 * Each backend is forced through pt_ctx_params.disable_caps (AMX-BF16, AVX512-BF16, AVX-512
 * f32, AVX2, portable). Inputs are random, sizes odd (tile tails, several K blocks, M = 16 as
 * 12 + 4 rows), outputs NaN-poisoned. f32 packings must match the exact result to a few ulps of
 * the sum of |terms|; bf16 packings a reference computed from b rounded to bf16, with a's
 * rounding to bf16 allowed for (the bf16 kernels round a while packing it). */
#include "pt_test.h"

#include <string.h>

typedef struct {
    const char* name;
    int32_t threads;
    uint32_t disable;
} config;

static const config CONFIGS[] = {
    {"own (AMX for bf16, AVX-512 for f32)", 2, 0},
    {"no AMX/FP16 (AVX512-BF16 dot products)", 2, PT_CPU_AMX_BF16 | PT_CPU_AVX512_FP16},
    {"no AMX (bf16 on the f32 kernel)", 3, PT_CPU_AMX_BF16},
    {"no AVX-512 (AVX2)", 2, PT_CPU_AVX512F},
    {"portable", 2, PT_CPU_AVX512F | PT_CPU_AVX2},
    {"1 thread", 1, 0},
};
#define NCONFIGS (int)(sizeof CONFIGS / sizeof CONFIGS[0])

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    uint32_t r = u >> 16, rest = u & 0xffffu;
    if (rest > 0x8000u || (rest == 0x8000u && (r & 1u))) r++;
    return (uint16_t)r;
}
static float from_bf16(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static double gelu_ref(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

typedef struct {
    int64_t batch, m, n, k;
    int tb, bias, gelu;
    float beta;
    int32_t bdt, pdt, adt, cdt; /* b's storage, the packing, a's and c's dtypes */
    int64_t pad;                /* extra elements after each row of b and a */
} pcase;

static int run_case(pt_ctx* ctx, const config* cfg, const pcase* t) {
    const int64_t nb = t->batch > 0 ? t->batch : 1, M = t->m, N = t->n, K = t->k, P = t->pad;
    const int64_t brows = t->tb ? N : K, bcols = t->tb ? K : N, ldb = bcols + P, lda = K + P;
    const size_t eb = t->bdt == PT_BF16 ? 2 : 4, ea = t->adt == PT_BF16 ? 2 : 4, ec = t->cdt == PT_BF16 ? 2 : 4;
    const size_t bn = (size_t)(brows * ldb + 1), an = (size_t)(nb * M * lda + 1), cn = (size_t)(nb * M * N + 1);
    float* bf = malloc(bn * 4);
    float* af = malloc(an * 4);
    void* b = malloc(bn * eb);
    void* a = malloc(an * ea);
    void* c = malloc(cn * ec);
    float* c0 = malloc(cn * 4);
    float* bias = malloc((size_t)(N + 1) * 4);
    pt_test_fill(bf, bn, -1, 1);
    pt_test_fill(af, an, -1, 1);
    pt_test_fill(bias, (size_t)N + 1, -1, 1);
    for (size_t i = 0; i < bn; i++) {
        if (t->bdt == PT_BF16) { ((uint16_t*)b)[i] = bf16(bf[i]); bf[i] = from_bf16(bf16(bf[i])); }
        else ((float*)b)[i] = bf[i];
    }
    for (size_t i = 0; i < an; i++) {
        if (t->adt == PT_BF16) { ((uint16_t*)a)[i] = bf16(af[i]); af[i] = from_bf16(bf16(af[i])); }
        else ((float*)a)[i] = af[i];
    }
    /* row padding of a and b is NaN: reading it would show */
    for (int64_t r = 0; r < brows; r++) for (int64_t j = bcols; j < ldb; j++) pt_test_poison((char*)b + (size_t)(r * ldb + j) * eb, eb);
    for (int64_t r = 0; r < nb * M; r++) for (int64_t j = K; j < lda; j++) pt_test_poison((char*)a + (size_t)(r * lda + j) * ea, ea);
    pt_test_poison(c, cn * ec);
    if (t->beta != 0.0f) {
        for (size_t i = 0; i < cn; i++) {
            float v = (float)pt_test_uniform(-1, 1);
            if (t->cdt == PT_BF16) { ((uint16_t*)c)[i] = bf16(v); c0[i] = from_bf16(bf16(v)); }
            else { ((float*)c)[i] = v; c0[i] = v; }
        }
    }
    pt_tensor tb, ta, tc, tbias;
    memset(&tb, 0, sizeof tb); memset(&ta, 0, sizeof ta); memset(&tc, 0, sizeof tc);
    tb.data = b; tb.dtype = t->bdt; tb.ndim = 2;
    tb.shape[0] = brows; tb.shape[1] = bcols; tb.stride[0] = (int64_t)eb * ldb; tb.stride[1] = (int64_t)eb;
    const int a3 = t->batch > 0, o = a3;
    ta.data = a; ta.dtype = t->adt; ta.ndim = a3 ? 3 : 2;
    tc.data = c; tc.dtype = t->cdt; tc.ndim = ta.ndim;
    if (a3) {
        ta.shape[0] = nb; ta.stride[0] = (int64_t)ea * M * lda;
        tc.shape[0] = nb; tc.stride[0] = (int64_t)ec * M * N;
    }
    ta.shape[o] = M; ta.shape[o + 1] = K; ta.stride[o] = (int64_t)ea * lda; ta.stride[o + 1] = (int64_t)ea;
    tc.shape[o] = M; tc.shape[o + 1] = N; tc.stride[o] = (int64_t)ec * N; tc.stride[o + 1] = (int64_t)ec;
    int64_t ns[1] = {N};
    tbias = pt_test_tensor(bias, PT_F32, 1, ns);

    char label[200];
    snprintf(label, sizeof label, "[%s] batch=%lld M=%lld N=%lld K=%lld tb=%d b=%s packed=%s a=%s c=%s bias=%d gelu=%d beta=%g pad=%lld",
             cfg->name, (long long)t->batch, (long long)M, (long long)N, (long long)K, t->tb, t->bdt == PT_BF16 ? "bf16" : "f32",
             t->pdt == PT_BF16 ? "bf16" : "f32", t->adt == PT_BF16 ? "bf16" : "f32", t->cdt == PT_BF16 ? "bf16" : "f32", t->bias,
             t->gelu, (double)t->beta, (long long)P);
    pt_packed_matrix* pk = NULL;
    pt_status st = pt_matmul_pack(ctx, &tb, t->tb, t->pdt, &pk);
    EXPECT(st == PT_OK, "%s: pack status %d: %s", label, (int)st, pt_last_error());
    int ok = st == PT_OK;
    if (ok) {
        int64_t kk = -1, nn = -1, bytes = -1;
        int32_t dt = -1;
        EXPECT_OK(pt_packed_matrix_info(pk, &kk, &nn, &dt, &bytes));
        EXPECT(kk == K && nn == N && dt == t->pdt && bytes >= K * N * (t->pdt == PT_BF16 ? 2 : 4), "%s: info %lld %lld %d %lld", label,
               (long long)kk, (long long)nn, dt, (long long)bytes);
        /* b may be freed after packing: poison it to prove it is not read any more */
        pt_test_poison(b, bn * eb);
        pt_matmul_params p = {0, t->gelu ? PT_ACT_GELU_ERF : PT_ACT_NONE, 1.0f, t->beta};
        st = pt_matmul_packed(ctx, &ta, pk, t->bias ? &tbias : NULL, &tc, &p);
        EXPECT(st == PT_OK, "%s: status %d: %s", label, (int)st, pt_last_error());
        ok = st == PT_OK;
    }
    double worst = 0, wgot = 0, wwant = 0;
    const int bfp = t->pdt == PT_BF16;
    for (int64_t q = 0; ok && q < nb; q++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0, sabs = 0;
                for (int64_t pp = 0; pp < K; pp++) {
                    double x = af[(q * M + i) * lda + pp];
                    double y = bf[t->tb ? j * ldb + pp : pp * ldb + j];
                    if (bfp) y = from_bf16(bf16((float)y));
                    s += x * y;
                    sabs += fabs(x * y);
                }
                size_t ci = (size_t)((q * M + i) * N + j);
                double pre = s + (t->bias ? bias[j] : 0.0) + (t->beta != 0.0f ? (double)t->beta * c0[ci] : 0.0);
                double want = t->gelu ? gelu_ref(pre) : pre;
                double got = t->cdt == PT_BF16 ? from_bf16(((uint16_t*)c)[ci]) : ((float*)c)[ci];
                double scale = sabs + (t->bias ? fabs(bias[j]) : 0.0) + fabs((double)t->beta * (t->beta != 0.0f ? c0[ci] : 0.0));
                /* a rounded to bf16 (relative 2^-9 per term) under a bf16 packing; a bf16 c's rounding */
                double allowed = (bfp ? 1.0 / 256 : 2e-6) * scale + 2e-6 * fabs(pre) + (t->cdt == PT_BF16 ? 1.0 / 128 : 1e-6) * fabs(want) + 1e-30;
                double e = fabs(got - want) / allowed;
                if (!(e == e)) e = INFINITY;
                if (e > worst) { worst = e; wgot = got; wwant = want; }
            }
    if (ok) EXPECT(worst <= 1.0, "%s: error %.3g x tolerance (got %.9g want %.9g)", label, worst, wgot, wwant);
    pt_packed_matrix_destroy(pk);
    free(bf); free(af); free(b); free(a); free(c); free(c0); free(bias);
    return ok && worst <= 1.0 ? 0 : 1;
}

static pcase mk(int64_t m, int64_t n, int64_t k, int tb, int32_t pdt) {
    pcase t;
    memset(&t, 0, sizeof t);
    t.m = m; t.n = n; t.k = k; t.tb = tb; t.pdt = pdt; t.bdt = PT_F32; t.adt = PT_F32; t.cdt = PT_F32;
    return t;
}

static void run_config(const config* cfg) {
    pt_ctx_params params = {cfg->threads, cfg->disable, 0, 0};
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(&params, &ctx));
    if (!ctx) return;
    int fails = 0;
    static const int64_t sizes[][3] = {{1, 1, 1}, {16, 65, 63}, {7, 33, 600}, {63, 1, 31}, {130, 70, 129}, {16, 384, 384}, {4, 100, 1100}, {25, 47, 64}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int tb = 0; tb <= 1; tb++)
            for (int d = 0; d < 4; d++) {
                pcase t = mk(sizes[s][0], sizes[s][1], sizes[s][2], tb, d & 1 ? PT_BF16 : PT_F32);
                t.bdt = d & 2 ? PT_BF16 : PT_F32;           /* b stored in either dtype */
                t.adt = (s + (size_t)d) % 3 == 0 ? PT_BF16 : PT_F32;
                t.cdt = (d & 1) && s % 2 ? PT_BF16 : PT_F32;
                t.bias = (int)(s & 1);
                t.gelu = (int)((s + (size_t)tb) % 3 == 1);
                t.beta = s % 4 == 3 ? 1.0f : 0.0f;
                t.pad = s % 3 == 1 ? 3 : 0;
                fails += run_case(ctx, cfg, &t);
            }
    {
        pcase t = mk(9, 40, 50, 1, PT_BF16); /* 3-D a: a batch of row blocks against one packed b */
        t.batch = 3; t.bias = 1;
        fails += run_case(ctx, cfg, &t);
        t.pdt = PT_F32; t.pad = 2;            /* strided rows: the batches cannot be folded */
        fails += run_case(ctx, cfg, &t);
    }
    {
        pcase t = mk(3, 9, 0, 0, PT_F32);    /* empty reduction: c = bias */
        t.bias = 1;
        fails += run_case(ctx, cfg, &t);
    }
    printf("  %-42s %s\n", cfg->name, fails ? "FAILED" : "ok");
    pt_ctx_destroy(ctx);
}

static void expect_error(pt_status got, pt_status want, const char* needle, const char* what) {
    const char* msg = pt_last_error();
    EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
    EXPECT(msg && strstr(msg, needle), "%s: message '%s' lacks '%s'", what, msg ? msg : "(null)", needle);
}

static void bad_inputs(void) {
    pt_ctx* ctx = NULL;
    EXPECT_OK(pt_ctx_create(NULL, &ctx));
    float bdata[6 * 4], adata[2 * 6], cdata[2 * 4];
    pt_test_fill(bdata, 24, -1, 1);
    pt_test_fill(adata, 12, -1, 1);
    int64_t bs[2] = {6, 4}, as[2] = {2, 6}, cs[2] = {2, 4}, as5[2] = {2, 5};
    pt_tensor b = pt_test_tensor(bdata, PT_F32, 2, bs), a = pt_test_tensor(adata, PT_F32, 2, as), c = pt_test_tensor(cdata, PT_F32, 2, cs);
    pt_tensor a5 = pt_test_tensor(adata, PT_F32, 2, as5);
    pt_packed_matrix* pk = (pt_packed_matrix*)1;
    expect_error(pt_matmul_pack(ctx, &b, 0, PT_I8, &pk), PT_ERR_DTYPE, "dtype", "pack dtype i8");
    EXPECT(pk == NULL, "out must be cleared on failure");
    expect_error(pt_matmul_pack(ctx, &b, 2, PT_F32, &pk), PT_ERR_INVALID_ARGUMENT, "trans_b", "pack trans_b 2");
    expect_error(pt_matmul_pack(ctx, &b, 0, PT_F32, NULL), PT_ERR_INVALID_ARGUMENT, "out", "pack out NULL");
    expect_error(pt_matmul_pack(NULL, &b, 0, PT_F32, &pk), PT_ERR_INVALID_ARGUMENT, "context", "pack ctx NULL");
    EXPECT_OK(pt_matmul_pack(ctx, &b, 0, PT_F32, &pk));
    expect_error(pt_matmul_packed(ctx, &a5, pk, NULL, &c, NULL), PT_ERR_SHAPE, "K=5", "K mismatch");
    int64_t cbad[2] = {2, 3};
    pt_tensor c3 = pt_test_tensor(cdata, PT_F32, 2, cbad);
    expect_error(pt_matmul_packed(ctx, &a, pk, NULL, &c3, NULL), PT_ERR_SHAPE, "expected [2, 4]", "c shape");
    expect_error(pt_matmul_packed(ctx, &a, NULL, NULL, &c, NULL), PT_ERR_INVALID_ARGUMENT, "packed matrix", "b NULL");
    int64_t bis[1] = {3};
    pt_tensor bias3 = pt_test_tensor(bdata, PT_F32, 1, bis);
    expect_error(pt_matmul_packed(ctx, &a, pk, &bias3, &c, NULL), PT_ERR_SHAPE, "bias", "bias shape");
    /* a context without the packing's CPU features */
    pt_ctx_params plain = {1, PT_CPU_AVX512F | PT_CPU_AVX2, 0, 0};
    pt_ctx* ctx2 = NULL;
    EXPECT_OK(pt_ctx_create(&plain, &ctx2));
    if (pt_cpu_caps() & (PT_CPU_AVX512F | PT_CPU_AVX2))
        expect_error(pt_matmul_packed(ctx2, &a, pk, NULL, &c, NULL), PT_ERR_UNSUPPORTED, "kernel", "caps mismatch");
    EXPECT_OK(pt_packed_matrix_destroy(pk));
    EXPECT_OK(pt_packed_matrix_destroy(NULL));
    pt_ctx_destroy(ctx2);
    pt_ctx_destroy(ctx);
}

/* pt_matmul writing batches interleaved within each row (attention heads: P [H, S, L] @ V
 * viewed [H, L, D] into out [S, H, D] viewed [H, S, D]); the rejected overlap stays rejected. */
static void interleaved_batches(void) {
    enum { H = 3, S = 7, L = 5, D = 9 };
    float p[H * S * L], v[L * H * D], out[S * H * D + 1];
    pt_test_fill(p, H * S * L, -1, 1);
    pt_test_fill(v, L * H * D, -1, 1);
    for (int use_dnnl = 0; use_dnnl <= 1; use_dnnl++) {
        pt_ctx_params params = {2, 0, use_dnnl, 0};
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&params, &ctx));
        pt_test_poison(out, sizeof out);
        pt_tensor a, b, c;
        memset(&a, 0, sizeof a); memset(&b, 0, sizeof b); memset(&c, 0, sizeof c);
        a.data = p; a.dtype = PT_F32; a.ndim = 3; a.shape[0] = H; a.shape[1] = S; a.shape[2] = L;
        a.stride[0] = S * L * 4; a.stride[1] = L * 4; a.stride[2] = 4;
        b.data = v; b.dtype = PT_F32; b.ndim = 3; b.shape[0] = H; b.shape[1] = L; b.shape[2] = D;
        b.stride[0] = D * 4; b.stride[1] = H * D * 4; b.stride[2] = 4;
        c.data = out; c.dtype = PT_F32; c.ndim = 3; c.shape[0] = H; c.shape[1] = S; c.shape[2] = D;
        c.stride[0] = D * 4; c.stride[1] = H * D * 4; c.stride[2] = 4;
        EXPECT_OK(pt_matmul(ctx, &a, &b, NULL, &c, NULL));
        double worst = 0;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++)
                for (int j = 0; j < D; j++) {
                    double want = 0, sc = 0;
                    for (int t = 0; t < L; t++) {
                        want += (double)p[(h * S + i) * L + t] * v[(t * H + h) * D + j];
                        sc += fabs((double)p[(h * S + i) * L + t] * v[(t * H + h) * D + j]);
                    }
                    double e = fabs(out[(i * H + h) * D + j] - want) / (1e-6 * sc + 1e-30);
                    if (!(e == e)) e = INFINITY;
                    if (e > worst) worst = e;
                }
        EXPECT(worst <= 1.0, "interleaved batches (oneDNN %d): error %.3g x tolerance", use_dnnl, worst);
        c.stride[0] = 4 * 4; /* batch stride 4 < D: batches overlap */
        expect_error(pt_matmul(ctx, &a, &b, NULL, &c, NULL), PT_ERR_SHAPE, "overlaps itself", "overlapping interleaved batches");
        pt_ctx_destroy(ctx);
    }
}

int main(void) {
    pt_test_seed(20240917);
    printf("pt_matmul_packed:\n");
    for (int i = 0; i < NCONFIGS; i++) run_config(&CONFIGS[i]);
    bad_inputs();
    interleaved_batches();
    return pt_test_finish("test_gemm_packed");
}
