/* pt_matmul: argument checks, dispatch (oneDNN or our kernels), the blocked GEMM driver and
 * the portable backend (plain C the compiler vectorizes; used on CPUs without AVX2). */
#include "cpu/gemm.h"

#include <math.h>
#include <stdlib.h>

/* The reference activations (scalar libm). ReLU keeps NaN (as PyTorch and oneDNN do). */
void pt_apply_activation(float* x, int64_t n, int32_t act) {
    switch (act) {
    case PT_ACT_RELU: for (int64_t i = 0; i < n; i++) x[i] = x[i] < 0 ? 0.0f : x[i]; break;
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

static inline float ld_elem(const void* p, int32_t dt, int64_t i) {
    return dt == PT_BF16 ? pt_bf16_to_f32(((const uint16_t*)p)[i]) : ((const float*)p)[i];
}

/* ================================================================ generic packers */

void pt_gemm_pack_a_generic(const void* src, int32_t dt, int64_t lda, int64_t mc, int64_t kc, float* dst, int mr) {
    for (int64_t i0 = 0; i0 < mc; i0 += mr, dst += (int64_t)mr * kc) {
        for (int r = 0; r < mr; r++) {
            if (i0 + r < mc) {
                int64_t off = (i0 + r) * lda;
                if (dt == PT_F32) {
                    const float* s = (const float*)src + off;
                    for (int64_t p = 0; p < kc; p++) dst[p * mr + r] = s[p];
                } else {
                    const uint16_t* s = (const uint16_t*)src + off;
                    for (int64_t p = 0; p < kc; p++) dst[p * mr + r] = pt_bf16_to_f32(s[p]);
                }
            } else {
                for (int64_t p = 0; p < kc; p++) dst[p * mr + r] = 0.0f;
            }
        }
    }
}

void pt_gemm_pack_b_generic(const void* src, int32_t dt, int64_t ldb, int trans_b, int64_t kc, int64_t nc,
                            float* dst, int nr) {
    for (int64_t j0 = 0; j0 < nc; j0 += nr, dst += (int64_t)nr * kc) {
        int w = nc - j0 < nr ? (int)(nc - j0) : nr;
        if (trans_b) {
            for (int j = 0; j < nr; j++) {
                if (j < w) {
                    int64_t off = (j0 + j) * ldb;
                    for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = ld_elem(src, dt, off + p);
                } else {
                    for (int64_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
                }
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                int64_t off = p * ldb + j0;
                float* d = dst + p * nr;
                if (dt == PT_F32) {
                    const float* s = (const float*)src + off;
                    for (int j = 0; j < w; j++) d[j] = s[j];
                } else {
                    for (int j = 0; j < w; j++) d[j] = ld_elem(src, dt, off + j);
                }
                for (int j = w; j < nr; j++) d[j] = 0.0f;
            }
        }
    }
}

/* ================================================================ portable backend */

/* 4 x 16 accumulators fit NEON's 32 registers; SSE2's 16 take 4 x 8 */
#define P_MR 4
#if defined(__aarch64__) || defined(_M_ARM64) || defined(__AVX__)
#  define P_NR 16
#else
#  define P_NR 8
#endif

/* Scalar epilogue over an mr x nr tile of f32 accumulators (row stride ld). */
static void store_tile_generic(const float* acc, int64_t ld, int mr, int nr, const pt_gemm_tile_out* o) {
    float row[P_NR];
    for (int r = 0; r < mr; r++) {
        for (int j0 = 0; j0 < nr; j0 += P_NR) {
            int w = nr - j0 < P_NR ? nr - j0 : P_NR;
            for (int j = 0; j < w; j++) {
                float v = o->alpha * acc[r * ld + j0 + j];
                if (o->bias) v += o->bias[j0 + j];
                if (o->beta != 0.0f) {
                    int64_t i = r * o->ldp + j0 + j;
                    v += o->beta * (o->prev_bf16 ? pt_bf16_to_f32(((const uint16_t*)o->prev)[i]) : ((const float*)o->prev)[i]);
                }
                row[j] = v;
            }
            if (o->act != PT_ACT_NONE) pt_apply_activation(row, w, o->act);
            int64_t i = r * o->ldo + j0;
            if (o->out_bf16) {
                uint16_t* d = (uint16_t*)o->out + i;
                for (int j = 0; j < w; j++) d[j] = pt_f32_to_bf16(row[j]);
            } else {
                float* d = (float*)o->out + i;
                for (int j = 0; j < w; j++) d[j] = row[j];
            }
        }
    }
}

static void micro_portable(int64_t kc, const void* pa_, const void* pb_, int mr, int nr, const pt_gemm_tile_out* o) {
    const float* PT_RESTRICT pa = (const float*)pa_;
    const float* PT_RESTRICT pb = (const float*)pb_;
    float acc[P_MR][P_NR];
    for (int r = 0; r < P_MR; r++)
        for (int j = 0; j < P_NR; j++) acc[r][j] = 0.0f;
    for (int64_t p = 0; p < kc; p++, pa += P_MR, pb += P_NR)
        for (int r = 0; r < P_MR; r++) {
            float a = pa[r];
            for (int j = 0; j < P_NR; j++) acc[r][j] += a * pb[j];
        }
    /* a copy whose address escapes, so acc itself can live in registers during the loop */
    float out[P_MR * P_NR];
    for (int r = 0; r < P_MR; r++)
        for (int j = 0; j < P_NR; j++) out[r * P_NR + j] = acc[r][j];
    store_tile_generic(out, P_NR, mr, nr, o);
}

static void pack_a_portable(const void* src, int32_t dt, int64_t lda, int64_t mc, int64_t kc, void* dst) {
    pt_gemm_pack_a_generic(src, dt, lda, mc, kc, (float*)dst, P_MR);
}
static void pack_b_portable(const void* src, int32_t dt, int64_t ldb, int tb, int64_t kc, int64_t nc, void* dst) {
    pt_gemm_pack_b_generic(src, dt, ldb, tb, kc, nc, (float*)dst, P_NR);
}

static const pt_gemm_kernel k_portable = {
    "portable-f32", P_MR, P_NR, 1, 4, 256, 256, 2048, pack_a_portable, pack_b_portable, micro_portable, NULL, NULL, 0, NULL};

const pt_gemm_kernel* pt_gemm_kernel_portable_f32(void) { return &k_portable; }

/* ================================================================ driver */

const pt_gemm_kernel* pt_gemm_pick(const pt_ctx* ctx, const pt_gemm_problem* g) {
#if defined(PT_HAVE_X86_KERNELS)
    uint32_t c = ctx->caps;
    const pt_gemm_kernel* k;
    if (g->a_dtype == PT_BF16 && (c & PT_CPU_AVX512F)) {
        if ((c & PT_CPU_AMX_BF16) && (k = pt_gemm_kernel_amx_bf16()) != NULL) return k;
        /* vdpbf16ps: on Sapphire Rapids (AVX512-FP16 and later) it issues every 2 cycles,
         * so the f32 FMA kernel on widened bf16 is 2x faster there (measured: 75 vs 33
         * GFLOP/s); on Cooper Lake / Zen 4 (BF16 without FP16) the dot products win. */
        if ((c & PT_CPU_AVX512_BF16) && !(c & PT_CPU_AVX512_FP16) && (k = pt_gemm_kernel_avx512_bf16()) != NULL) return k;
    }
    if ((c & PT_CPU_AVX512F) && (k = pt_gemm_kernel_avx512_f32()) != NULL) return k;
    if ((c & PT_CPU_AVX2) && (c & PT_CPU_FMA) && (k = pt_gemm_kernel_avx2_f32()) != NULL) return k;
#else
    (void)ctx; (void)g;
#endif
    return &k_portable;
}

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Most floats of f32 workspace (bf16 output accumulated over several K blocks) per thread. */
#define W_MAX_FLOATS (2 * 1024 * 1024)

typedef struct {
    const pt_gemm_problem* g;
    const pt_gemm_kernel* kr;
    int64_t tm, tn;          /* parts of M and N; units = batch * tm * tn */
    volatile int failed;     /* set by a worker whose scratch allocation failed */
} drv_arg;

/* Start of part i of n tiles of size t over [0, len), in elements. */
static inline int64_t part_start(int64_t len, int64_t t, int64_t parts, int64_t i) {
    int64_t tiles = ceil_div(len, t);
    return min64(len, tiles * i / parts * t);
}

/* One work unit: the serial blocked GEMM of C[b][m0:m1, n0:n1]. Returns 0, or -1 when the
 * scratch could not be allocated. */
static int run_block(const pt_gemm_problem* g, const pt_gemm_kernel* kr, int64_t b, int64_t m0, int64_t m1,
                     int64_t n0, int64_t n1) {
    size_t ea = pt_dtype_size(g->a_dtype), ec = pt_dtype_size(g->c_dtype), ps = (size_t)kr->pack_size;
    const char* A = (const char*)g->a + (size_t)(b * g->batch_a) * ea;
    const char* B = (const char*)g->b + (size_t)(b * g->batch_b) * ea;
    char* C = (char*)g->c + (size_t)(b * g->batch_c) * ec;
    const int64_t MR = kr->mr, NR = kr->nr, KP = kr->kpack;
    const int64_t k = g->k, MC = kr->mc;
    const int64_t KC = k > 0 ? min64(kr->kc, round_up(k, KP)) : KP;
    int64_t NC = kr->nc;
    const int multi = k > kr->kc;
    const int use_w = multi && g->c_dtype == PT_BF16;
    if (use_w) { /* keep the f32 partial sums of C[m0:m1, jc:jc+nc] bounded */
        int64_t cap = W_MAX_FLOATS / (m1 - m0);
        cap = cap / NR * NR;
        if (cap < NR) cap = NR;
        if (NC > cap) NC = cap;
    }
    int64_t ncb = min64(NC, n1 - n0);
    const pt_packed_matrix* pk = g->packed;
    char* pa = (char*)pt_scratch(0, (size_t)round_up(min64(MC, m1 - m0), MR) * (size_t)KC * ps + 64);
    char* pb = pk ? NULL : (char*)pt_scratch(1, (size_t)round_up(ncb, NR) * (size_t)KC * ps + 64);
    int64_t ldw = round_up(ncb, 16);
    float* W = use_w ? (float*)pt_scratch(2, (size_t)(m1 - m0) * (size_t)ldw * 4 + 64) : NULL;
    if (!pa || (!pk && !pb) || (use_w && !W)) return -1;

    for (int64_t jc = n0; jc < n1; jc += NC) {
        const int64_t nc = min64(NC, n1 - jc);
        for (int64_t pc = 0; pc == 0 || pc < k; pc += KC) {
            const int64_t kc = min64(KC, k - pc);
            const int64_t kcp = round_up(kc, KP);
            const int first = pc == 0, last = pc + kc >= k;
            if (pk) { /* prepacked: the panels of columns jc.. in K block pc */
                pb = (char*)pk->data + (size_t)(pc / KC) * (size_t)pk->block_bytes + (size_t)(jc * kcp) * ps;
            } else {
                const char* bsrc = g->trans_b ? B + (size_t)(jc * g->ldb + pc) * ea : B + (size_t)(pc * g->ldb + jc) * ea;
                kr->pack_b(bsrc, g->a_dtype, g->ldb, g->trans_b, kc, nc, pb);
            }
            for (int64_t ic = m0; ic < m1; ic += MC) {
                const int64_t mc = min64(MC, m1 - ic);
                kr->pack_a(A + (size_t)(ic * g->lda + pc) * ea, g->a_dtype, g->lda, mc, kc, pa);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int nr = (int)min64(NR, nc - jr);
                    const int64_t j = jc + jr;
                    pt_gemm_tile_out o;
                    o.alpha = g->alpha;
                    o.bias = first && g->bias ? g->bias + j : NULL;
                    o.beta = first ? g->beta : 1.0f;
                    o.act = last ? g->activation : PT_ACT_NONE;
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int mr = (int)min64(MR, mc - ir);
                        const int64_t i = ic + ir;
                        char* cij = C + (size_t)(i * g->ldc + j) * ec;
                        float* wij = use_w ? W + (i - m0) * ldw + jr : NULL;
                        if (first) { o.prev = cij; o.ldp = g->ldc; o.prev_bf16 = g->c_dtype == PT_BF16; }
                        else if (use_w) { o.prev = wij; o.ldp = ldw; o.prev_bf16 = 0; }
                        else { o.prev = cij; o.ldp = g->ldc; o.prev_bf16 = 0; }
                        if (last || !use_w) { o.out = cij; o.ldo = g->ldc; o.out_bf16 = g->c_dtype == PT_BF16; }
                        else { o.out = wij; o.ldo = ldw; o.out_bf16 = 0; }
                        kr->micro(kc, pa + (size_t)(ir * kcp) * ps, pb + (size_t)(jr * kcp) * ps, mr, nr, &o);
                    }
                }
            }
            if (k == 0) break;
        }
    }
    return 0;
}

static void drv_units(int64_t u0, int64_t u1, void* argp) {
    drv_arg* d = (drv_arg*)argp;
    const pt_gemm_problem* g = d->g;
    const pt_gemm_kernel* kr = d->kr;
    if (kr->thread_begin) kr->thread_begin();
    for (int64_t u = u0; u < u1 && !d->failed; u++) {
        int64_t per_b = d->tm * d->tn, b = u / per_b, rem = u % per_b, im = rem / d->tn, in = rem % d->tn;
        int64_t m0 = part_start(g->m, kr->mr, d->tm, im), m1 = part_start(g->m, kr->mr, d->tm, im + 1);
        int64_t n0 = part_start(g->n, kr->nr, d->tn, in), n1 = part_start(g->n, kr->nr, d->tn, in + 1);
        if (m0 >= m1 || n0 >= n1) continue;
        if (run_block(g, kr, b, m0, m1, n0, n1) != 0) d->failed = 1;
    }
    if (kr->thread_end) kr->thread_end();
}

/* Chooses how many parts of M and N to cut (each thread runs whole parts, packing its own
 * panels): the split whose busiest thread has the least padded work plus packing. */
static void plan_split(const pt_ctx* ctx, const pt_gemm_problem* g, const pt_gemm_kernel* kr, int64_t* tm_out,
                       int64_t* tn_out, int64_t* threads_out) {
    const double k = (double)(g->k > 0 ? g->k : 1);
    const double flops = 2.0 * (double)g->batch * (double)g->m * (double)g->n * k;
    int64_t T = ctx->n_threads;
    /* a thread costs a few microseconds to wake: give each at least ~0.2 MFLOP */
    int64_t tmax = (int64_t)(flops / 2e5);
    if (tmax < 1) tmax = 1;
    if (T > tmax) T = tmax;
    *tm_out = 1; *tn_out = 1; *threads_out = T;
    if (T <= 1) return;
    const int64_t mt = ceil_div(g->m, kr->mr), nt = ceil_div(g->n, kr->nr);
    const double pack_w = 16.0; /* one packed element costs about as much as 16 flops */
    double best = INFINITY;
    for (int64_t tm = 1; tm <= mt && tm <= 64; tm++) {
        for (int64_t tn = 1; tn <= nt && tn <= 64; tn++) {
            int64_t units = g->batch * tm * tn;
            if (units > 4 * T && tm * tn > 1) break;
            int64_t busy = ceil_div(units, T < units ? T : units);
            double mu = (double)(ceil_div(mt, tm) * kr->mr), nu = (double)(ceil_div(nt, tn) * kr->nr);
            /* B: packed by each thread (16 flops a value), or prepacked and only read, which
             * still costs bandwidth when few rows share it (M = 16: every thread splitting M
             * would stream all of B from memory; splitting N reads each value once) */
            double pack_b = g->packed ? 0.5 * nu : nu;
            double cost = (double)busy * (2.0 * mu * nu * k + pack_w * k * (mu * ceil((double)nu / (double)kr->nc) + pack_b) + 2e4);
            if (cost < best * 0.999) { best = cost; *tm_out = tm; *tn_out = tn; }
        }
    }
    int64_t units = g->batch * *tm_out * *tn_out;
    *threads_out = T < units ? T : units;
}

/* Small M: units are (batch, part of N); each runs the backend's direct kernel. */
static void small_units(int64_t u0, int64_t u1, void* argp) {
    drv_arg* d = (drv_arg*)argp;
    const pt_gemm_problem* g = d->g;
    for (int64_t u = u0; u < u1 && !d->failed; u++) {
        int64_t b = u / d->tn, in = u % d->tn;
        int64_t n0 = part_start(g->n, 64, d->tn, in), n1 = part_start(g->n, 64, d->tn, in + 1);
        if (n0 < n1 && d->kr->small(g, b, n0, n1) != 0) d->failed = 1;
    }
}

pt_status pt_matmul_own(pt_ctx* ctx, const pt_gemm_problem* g) {
    const pt_gemm_kernel* kr = g->packed ? g->packed->kr : pt_gemm_pick(ctx, g);
    drv_arg d;
    d.g = g; d.kr = kr; d.failed = 0;
    int64_t threads;
    if (kr->small && g->m <= kr->small_m_max && !g->packed) {
        /* split N (in 64-column steps) over the threads; a thread per ~0.2 MFLOP at most */
        int64_t tmax = (int64_t)(2.0 * (double)g->batch * (double)g->m * (double)g->n * (double)(g->k > 0 ? g->k : 1) / 2e5);
        threads = ctx->n_threads < tmax ? ctx->n_threads : tmax;
        if (threads < 1) threads = 1;
        d.tm = 1;
        d.tn = ceil_div(threads, g->batch);
        if (d.tn > ceil_div(g->n, 64)) d.tn = ceil_div(g->n, 64);
        int64_t units = g->batch * d.tn;
        pt_parallel_range(ctx, units, ceil_div(units, threads), small_units, &d);
        if (d.failed)
            return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul: a worker thread could not allocate its scratch (%s small-M kernel, M=%lld K=%lld)",
                           kr->name, (long long)g->m, (long long)g->k);
        return PT_OK;
    }
    plan_split(ctx, g, kr, &d.tm, &d.tn, &threads);
    int64_t units = g->batch * d.tm * d.tn;
    pt_parallel_range(ctx, units, ceil_div(units, threads), drv_units, &d);
    if (d.failed)
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul: a worker thread could not allocate its packing scratch (%s kernel, M=%lld N=%lld K=%lld)",
                       kr->name, (long long)g->m, (long long)g->n, (long long)g->k);
    return PT_OK;
}

/* ================================================================ public entry point */

/* Row stride (elements) of dim `d` of t, checking it is a whole number of elements. */
static pt_status elem_stride(const pt_tensor* t, int d, const char* what, int64_t* out) {
    int64_t es = (int64_t)pt_dtype_size(t->dtype);
    *out = 0;
    if (t->shape[d] <= 1) return PT_OK; /* the stride of a dim of size 0 or 1 is never used */
    if (t->stride[d] < 0 || t->stride[d] % es != 0)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: %s stride[%d] = %lld bytes is not a non-negative multiple of the %s element size %lld",
                       what, d, (long long)t->stride[d], pt_dtype_name(t->dtype), (long long)es);
    *out = t->stride[d] / es;
    return PT_OK;
}

/* True when the batches of c (row stride ldc, batch stride bs, elements) share no element:
 * stacked (each batch after the previous one's last row) or interleaved (every batch's row
 * segment inside one row stride: the heads of a [S, H, D] attention output as [H, S, D]). */
static int batches_disjoint(int64_t batch, int64_t m, int64_t n, int64_t ldc, int64_t bs) {
    if (bs >= (m - 1) * ldc + n) return 1;
    return m > 1 && bs >= n && (batch - 1) * bs + n <= ldc;
}

/* pt_check_dtype's checks without its string formatting on the success path (tiny matmuls
 * are dominated by fixed costs); any failure is reported by pt_check_dtype itself. */
static pt_status check_operand(const pt_tensor* t, const char* what, int allow_bf16) {
    if (t && t->device == PT_DEVICE_CPU && t->ndim >= 1 && t->ndim <= PT_MAX_DIMS &&
        (t->dtype == PT_F32 || (allow_bf16 && t->dtype == PT_BF16))) {
        int ok = 1;
        int64_t numel = 1;
        for (int i = 0; i < t->ndim; i++) {
            ok &= t->shape[i] >= 0;
            numel *= t->shape[i];
        }
        int64_t es = (int64_t)pt_dtype_size(t->dtype);
        ok &= t->data != NULL || numel == 0;
        ok &= t->shape[t->ndim - 1] <= 1 || t->stride[t->ndim - 1] == es;
        if (ok) return PT_OK;
    }
    return allow_bf16 ? pt_check_dtype(t, what, 2, PT_F32, PT_BF16) : pt_check_dtype(t, what, 1, PT_F32);
}

pt_status pt_matmul(pt_ctx* ctx, const pt_tensor* a, const pt_tensor* b, const pt_tensor* bias, pt_tensor* c,
                    const pt_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(check_operand(a, "pt_matmul a", 1));
    PT_CHECK(check_operand(b, "pt_matmul b", 1));
    PT_CHECK(check_operand(c, "pt_matmul c", 1));
    pt_matmul_params p = {0, PT_ACT_NONE, 1.0f, 0.0f};
    if (params) p = *params;
    if (p.alpha == 0.0f) p.alpha = 1.0f;
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul: unknown activation %d (expected 0..%d)", p.activation, PT_ACT_SILU);
    if (p.trans_b != 0 && p.trans_b != 1)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul: trans_b must be 0 or 1, got %d", p.trans_b);
    if (!isfinite(p.alpha) || !isfinite(p.beta))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul: alpha %g and beta %g must be finite", (double)p.alpha, (double)p.beta);
    if (b->dtype != a->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_matmul: a is %s but b is %s (must match)", pt_dtype_name(a->dtype), pt_dtype_name(b->dtype));
    if (a->dtype == PT_F32 && c->dtype != PT_F32)
        return pt_fail(PT_ERR_DTYPE, "pt_matmul: f32 inputs need an f32 output, got %s", pt_dtype_name(c->dtype));
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || c->ndim != a->ndim)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: ranks a=%d b=%d c=%d; expected a,c 2-D or 3-D (the same) and b 2-D or 3-D",
                       a->ndim, b->ndim, c->ndim);
    int ba = a->ndim == 3, bb = b->ndim == 3;
    int64_t batch = ba ? a->shape[0] : 1;
    int64_t m = a->shape[ba], k = a->shape[ba + 1];
    int64_t bk = p.trans_b ? b->shape[bb + 1] : b->shape[bb], n = p.trans_b ? b->shape[bb] : b->shape[bb + 1];
    char da[96], db[96], dc[96]; /* filled only on the error paths (snprintf is not free) */
#define DESCRIBE_ABC() (pt_describe(a, da, sizeof da), pt_describe(b, db, sizeof db), pt_describe(c, dc, sizeof dc))
    if (bk != k && DESCRIBE_ABC() == PT_OK)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: inner dims differ: a %s has K=%lld, b %s (trans_b=%d) has K=%lld",
                       da, (long long)k, db, p.trans_b, (long long)bk);
    if (bb && (!ba || b->shape[0] != batch) && DESCRIBE_ABC() == PT_OK)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: batched b %s needs a with the same batch, got a %s", db, da);
    if ((c->shape[ba] != m || c->shape[ba + 1] != n || (ba && c->shape[0] != batch)) && DESCRIBE_ABC() == PT_OK)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul: c %s, expected [%s%lld, %lld] for a %s and b %s", dc,
                       ba ? "B, " : "", (long long)m, (long long)n, da, db);
    if (bias) {
        PT_CHECK(check_operand(bias, "pt_matmul bias", 0));
        if (bias->ndim != 1 || bias->shape[0] != n)
            return pt_fail(PT_ERR_SHAPE, "pt_matmul: bias must be f32[%lld], got %s ndim %d", (long long)n,
                           pt_dtype_name(bias->dtype), bias->ndim);
    }
    pt_gemm_problem g;
    memset(&g, 0, sizeof g);
    g.m = m; g.n = n; g.k = k; g.batch = batch;
    g.a_dtype = a->dtype; g.c_dtype = c->dtype;
    g.a = a->data; g.b = b->data; g.bias = bias ? (const float*)bias->data : NULL; g.c = c->data;
    int64_t s;
    PT_CHECK(elem_stride(a, ba, "a", &s)); g.lda = m > 1 ? s : k;
    PT_CHECK(elem_stride(b, bb, "b", &s)); g.ldb = b->shape[bb] > 1 ? s : (p.trans_b ? k : n);
    PT_CHECK(elem_stride(c, ba, "c", &s)); g.ldc = m > 1 ? s : n;
    if (ba) {
        PT_CHECK(elem_stride(a, 0, "a", &g.batch_a));
        PT_CHECK(elem_stride(c, 0, "c", &g.batch_c));
        if (batch <= 1) g.batch_a = g.batch_c = 0;
    }
    if (bb) { PT_CHECK(elem_stride(b, 0, "b", &g.batch_b)); if (batch <= 1) g.batch_b = 0; }
    {   /* c must not address the same element from two indices: ordering its dims of size
         * > 1 by stride, each stride must reach past the extent of the smaller-strided ones
         * (interleaved views such as heads of a [S, H*D] buffer are legal). */
        int64_t cnt[3] = {n, m, batch}, str[3] = {1, g.ldc, g.batch_c};
        for (int i = 1; i < 3; i++)
            for (int j = i; j > 0 && str[j] < str[j - 1]; j--) {
                int64_t t = str[j]; str[j] = str[j - 1]; str[j - 1] = t;
                t = cnt[j]; cnt[j] = cnt[j - 1]; cnt[j - 1] = t;
            }
        int64_t extent = 1;
        for (int i = 0; i < 3; i++) {
            if (cnt[i] <= 1) continue;
            if (str[i] < extent && DESCRIBE_ABC() == PT_OK)
                return pt_fail(PT_ERR_SHAPE, "pt_matmul: c %s overlaps itself: two indices address the same element (stride %lld elements < extent %lld)",
                               dc, (long long)str[i], (long long)extent);
            extent = str[i] * (cnt[i] - 1) + extent;
        }
    }
#undef DESCRIBE_ABC
    g.trans_b = p.trans_b; g.activation = p.activation; g.alpha = p.alpha; g.beta = p.beta;
    if (m == 0 || n == 0 || batch == 0) return PT_OK;
    /* a batch of rows against one b: one taller GEMM when the rows are evenly spaced */
    if (batch > 1 && g.batch_b == 0 && g.batch_a == m * g.lda && g.batch_c == m * g.ldc) {
        g.m = m * batch; g.batch = 1; g.batch_a = g.batch_c = 0;
    }
    if (k == 0) { /* empty reduction: c = act(bias + beta c), by our driver */
        g.alpha = 0.0f;
        return pt_matmul_own(ctx, &g);
    }
    if (ctx->use_onednn && ctx->onednn) {
        pt_status st = pt_matmul_onednn(ctx, &g);
        if (st != PT_ERR_UNSUPPORTED) return st;
        pt_clear_error(); /* a problem oneDNN does not implement: ours serve it */
    }
    return pt_matmul_own(ctx, &g);
}

/* ================================================================ prepacked B */

/* The CPU features a backend's code needs (a packed matrix stays tied to its backend). */
static uint32_t kernel_caps(const pt_gemm_kernel* kr) {
#if defined(PT_HAVE_X86_KERNELS)
    if (kr == pt_gemm_kernel_amx_bf16()) return PT_CPU_AVX512F | PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
    if (kr == pt_gemm_kernel_avx512_bf16()) return PT_CPU_AVX512F | PT_CPU_AVX512_BF16;
    if (kr == pt_gemm_kernel_avx512_f32()) return PT_CPU_AVX512F;
    if (kr == pt_gemm_kernel_avx2_f32()) return PT_CPU_AVX2 | PT_CPU_FMA;
#else
    (void)kr;
#endif
    return 0;
}

typedef struct {
    pt_packed_matrix* pk;
    const char* src;
    int32_t src_dtype;
    int64_t ldb;
} pack_arg;

/* Packs K blocks [b0, b1). */
static void pack_blocks(int64_t b0, int64_t b1, void* argp) {
    pack_arg* a = (pack_arg*)argp;
    pt_packed_matrix* pk = a->pk;
    const size_t es = pt_dtype_size(a->src_dtype);
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t pc = blk * pk->kc, kc = min64(pk->kc, pk->k - pc);
        const char* src = pk->trans_b ? a->src + (size_t)pc * es : a->src + (size_t)(pc * a->ldb) * es;
        pk->kr->pack_b(src, a->src_dtype, a->ldb, pk->trans_b, kc, pk->n, (char*)pk->data + (size_t)(blk * pk->block_bytes));
    }
}

pt_status pt_matmul_pack(pt_ctx* ctx, const pt_tensor* b, int32_t trans_b, int32_t dtype, pt_packed_matrix** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_pack: out is NULL");
    *out = NULL;
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(check_operand(b, "pt_matmul_pack b", 1));
    if (trans_b != 0 && trans_b != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_pack: trans_b must be 0 or 1, got %d", trans_b);
    if (dtype != PT_F32 && dtype != PT_BF16)
        return pt_fail(PT_ERR_DTYPE, "pt_matmul_pack: dtype must be f32 or bf16, got %s", pt_dtype_name(dtype));
    if (b->ndim != 2) return pt_fail(PT_ERR_SHAPE, "pt_matmul_pack: b must be 2-D ([K, N], or [N, K] with trans_b), got ndim %d", b->ndim);
    const int64_t k = trans_b ? b->shape[1] : b->shape[0], n = trans_b ? b->shape[0] : b->shape[1];
    int64_t ldb;
    PT_CHECK(elem_stride(b, 0, "b", &ldb));
    if (b->shape[0] <= 1) ldb = b->shape[1];

    pt_gemm_problem g;
    memset(&g, 0, sizeof g);
    g.m = 1024; g.n = n; g.k = k; g.batch = 1; g.a_dtype = dtype; g.c_dtype = PT_F32;
    const pt_gemm_kernel* kr = pt_gemm_pick(ctx, &g);
    const int64_t KP = kr->kpack, NR = kr->nr, ps = kr->pack_size;
    const int64_t KC = k > 0 ? min64(kr->kc, round_up(k, KP)) : KP;
    const int64_t blocks = k > 0 ? ceil_div(k, KC) : 0;
    const int64_t block_bytes = round_up(ceil_div(n, NR) * NR * KC * ps, 64);

    pt_packed_matrix* pk = (pt_packed_matrix*)calloc(1, sizeof *pk);
    if (!pk) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_pack: out of memory");
    pk->kr = kr; pk->k = k; pk->n = n; pk->kc = KC; pk->block_bytes = block_bytes;
    pk->dtype = dtype; pk->trans_b = trans_b; pk->caps = kernel_caps(kr);
    pk->bytes = (size_t)(blocks * block_bytes) + 64;
    pk->data = pt_weight_alloc(pk->bytes);
    if (!pk->data) {
        free(pk);
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_pack: cannot allocate %zu bytes for a packed %lld x %lld %s matrix",
                       (size_t)(blocks * block_bytes) + 64, (long long)k, (long long)n, pt_dtype_name(dtype));
    }
    memset(pk->data, 0, pk->bytes);

    /* bf16 products from an f32 b: round b to bf16 first (the bf16 kernels' packers read bf16;
     * the f32 one widens bf16, so its products see the same rounded values) */
    const char* src = (const char*)b->data;
    int32_t src_dtype = b->dtype;
    uint16_t* tmp = NULL;
    if (dtype == PT_BF16 && b->dtype == PT_F32 && k > 0 && n > 0) {
        const int64_t rows = b->shape[0], cols = b->shape[1];
        tmp = (uint16_t*)malloc((size_t)(rows * cols) * 2);
        if (!tmp) {
            pt_packed_matrix_destroy(pk);
            return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul_pack: out of memory converting b to bf16");
        }
        for (int64_t r = 0; r < rows; r++) pt_store_row_f32((const float*)(src + (size_t)(r * ldb) * 4), cols, PT_BF16, tmp + r * cols);
        src = (const char*)tmp;
        src_dtype = PT_BF16;
        ldb = cols;
    } else if (dtype == PT_F32 && kr->pack_size == 2) {
        /* cannot happen: an f32 problem never picks a bf16 backend */
        pt_packed_matrix_destroy(pk);
        return pt_fail(PT_ERR_INTERNAL, "pt_matmul_pack: backend %s cannot pack f32", kr->name);
    }
    if (blocks > 0 && n > 0) {
        pack_arg pa = {pk, src, src_dtype, ldb};
        pt_parallel_range(ctx, blocks, 1, pack_blocks, &pa);
    }
    free(tmp);
    *out = pk;
    return PT_OK;
}

pt_status pt_packed_matrix_destroy(pt_packed_matrix* p) {
    pt_clear_error();
    if (!p) return PT_OK;
    pt_weight_free(p->data);
    free(p);
    return PT_OK;
}

pt_status pt_packed_matrix_info(const pt_packed_matrix* p, int64_t* k, int64_t* n, int32_t* dtype, int64_t* bytes) {
    pt_clear_error();
    if (!p) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_packed_matrix_info: p is NULL");
    if (k) *k = p->k;
    if (n) *n = p->n;
    if (dtype) *dtype = p->dtype;
    if (bytes) *bytes = (int64_t)p->bytes;
    return PT_OK;
}

pt_status pt_matmul_packed(pt_ctx* ctx, const pt_tensor* a, const pt_packed_matrix* b, const pt_tensor* bias, pt_tensor* c,
                           const pt_matmul_params* params) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!b) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_packed: b (the packed matrix) is NULL");
    PT_CHECK(check_operand(a, "pt_matmul_packed a", 1));
    PT_CHECK(check_operand(c, "pt_matmul_packed c", 1));
    pt_matmul_params p = {0, PT_ACT_NONE, 1.0f, 0.0f};
    if (params) p = *params;
    if (p.alpha == 0.0f) p.alpha = 1.0f;
    if (p.activation < PT_ACT_NONE || p.activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_packed: unknown activation %d (expected 0..%d)", p.activation, PT_ACT_SILU);
    if (!isfinite(p.alpha) || !isfinite(p.beta))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_matmul_packed: alpha %g and beta %g must be finite", (double)p.alpha, (double)p.beta);
    if ((ctx->caps & b->caps) != b->caps)
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_matmul_packed: b was packed for the %s kernel, whose CPU features (0x%x) this context lacks or disables (0x%x)",
                       b->kr->name, b->caps, ctx->caps);
    if (a->ndim < 2 || a->ndim > 3 || c->ndim != a->ndim)
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: ranks a=%d c=%d; expected both 2-D or both 3-D", a->ndim, c->ndim);
    const int ba = a->ndim == 3;
    const int64_t batch = ba ? a->shape[0] : 1, m = a->shape[ba], k = a->shape[ba + 1];
    char da[96], dc[96];
    if (k != b->k && (pt_describe(a, da, sizeof da), 1))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: a %s has K=%lld but the packed matrix is %lld x %lld (K x N)", da, (long long)k,
                       (long long)b->k, (long long)b->n);
    if ((c->shape[ba] != m || c->shape[ba + 1] != b->n || (ba && c->shape[0] != batch)) &&
        (pt_describe(a, da, sizeof da), pt_describe(c, dc, sizeof dc), 1))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: c %s, expected [%s%lld, %lld] for a %s and the packed %lld x %lld matrix", dc,
                       ba ? "B, " : "", (long long)m, (long long)b->n, da, (long long)b->k, (long long)b->n);
    if (bias) {
        PT_CHECK(check_operand(bias, "pt_matmul_packed bias", 0));
        if (bias->ndim != 1 || bias->shape[0] != b->n)
            return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: bias must be f32[%lld], got %s ndim %d", (long long)b->n,
                           pt_dtype_name(bias->dtype), bias->ndim);
    }
    pt_gemm_problem g;
    memset(&g, 0, sizeof g);
    g.m = m; g.n = b->n; g.k = k; g.batch = batch;
    g.a_dtype = a->dtype; g.c_dtype = c->dtype;
    g.a = a->data; g.b = NULL; g.bias = bias ? (const float*)bias->data : NULL; g.c = c->data;
    g.packed = b;
    int64_t s;
    PT_CHECK(elem_stride(a, ba, "a", &s)); g.lda = m > 1 ? s : k;
    PT_CHECK(elem_stride(c, ba, "c", &s)); g.ldc = m > 1 ? s : b->n;
    if (ba) {
        PT_CHECK(elem_stride(a, 0, "a", &g.batch_a));
        PT_CHECK(elem_stride(c, 0, "c", &g.batch_c));
        if (batch <= 1) g.batch_a = g.batch_c = 0;
    }
    if (m > 1 && b->n > 1 && g.ldc < b->n && (pt_describe(c, dc, sizeof dc), 1))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: c %s rows overlap (row stride %lld elements < N=%lld)", dc, (long long)g.ldc, (long long)b->n);
    if (batch > 1 && m * b->n > 1 && !batches_disjoint(batch, m, b->n, g.ldc, g.batch_c) && (pt_describe(c, dc, sizeof dc), 1))
        return pt_fail(PT_ERR_SHAPE, "pt_matmul_packed: c %s batches overlap (batch stride %lld elements)", dc, (long long)g.batch_c);
    g.trans_b = b->trans_b; g.activation = p.activation; g.alpha = p.alpha; g.beta = p.beta;
    if (m == 0 || b->n == 0 || batch == 0) return PT_OK;
    if (batch > 1 && g.batch_a == m * g.lda && g.batch_c == m * g.ldc) {
        g.m = m * batch; g.batch = 1; g.batch_a = g.batch_c = 0;
    }
    if (k == 0) {
        g.alpha = 0.0f;
        g.packed = NULL; /* the driver's empty-reduction path packs nothing */
        return pt_matmul_own(ctx, &g);
    }
    return pt_matmul_own(ctx, &g);
}
