/* In-process A/B of LLM.int8 / W8A8 (pt_matmul_int8) against oneDNN's s8 matmul (pt_s8_matmul),
 * for experiment switches read from the environment by a library built with
 * scripts/int8-ab/experiments.patch applied (session 8; the patch is an experiment, not library
 * code). Blocks of BLKMS ms (default 10) of calls rotate between config A (no switch set), each
 * further config (an argument "VAR=v VAR2=v", set with setenv before its block) and the s8
 * baseline; REPS repeats (default 15, <= 99). Prints per config the median / min us per call,
 * the median (min..max) of the per-repeat ratios s8/this (the bar's llm/s8) and A/this (> 1:
 * faster than A). Inputs as pt-bench --op int8: x in [-2, 2] with 0.5% outlier columns
 * (|x| in [8, 16] in every 4th row), weight quantized and packed once, bias, f32 y, 2 threads.
 *
 *   git apply scripts/int8-ab/experiments.patch && cmake --build build/dev -j2
 *   gcc -O2 -Inative/include scripts/int8-ab/drv.c -o /tmp/int8-drv -Lbuild/dev -lpanatron -Wl,-rpath,$PWD/build/dev
 *   OMP_WAIT_POLICY=passive /tmp/int8-drv 512 768 768 "PT_I8_NOPASS=1" "PT_I8_ONE=2"       (W8A8=1: plain W8A8)
 *
 * Switches of the patch: PT_I8_ONE=1 the whole GEMM as one oneDNN call on its OpenMP team, the
 * outlier product stored by our pool in an [M, N] buffer and added by a binary post-op; =2 the
 * same with the product stored into y and oneDNN's sum post-op; =3 one call per ~2 MB column
 * chunk on the OpenMP team, our outlier pass after each (the one-thread route's code);
 * PT_I8_ADD=1 the column split with the product added by a binary post-op at y's strides
 * (oneDNN then has only ref_int8: falls back to our kernels); PT_I8_NOSCAN=1 / PT_I8_NOPASS=1
 * timing only (wrong results): skip the scan of x / the outlier pass; PT_I8_PIECES=n oneDNN
 * calls per thread; PT_S8_MASK0=1 one src scale instead of per-row scales (timing only);
 * PT_S8_IMPL=1 prints oneDNN's implementation of each new s8 primitive. */
#include <panatron/panatron.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static uint64_t rs = 88172645463325252ull;
static float rnd(void) { /* [-1, 1) */
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (float)((rs >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static pt_tensor t2(void* d, int dt, int64_t r, int64_t c, int es) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = d; t.dtype = dt; t.ndim = 2; t.shape[0] = r; t.shape[1] = c; t.stride[0] = c * es; t.stride[1] = es;
    return t;
}

static pt_tensor v1(void* d, int dt, int64_t n, int es) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = d; t.dtype = dt; t.ndim = 1; t.shape[0] = n; t.stride[0] = es;
    return t;
}

static char* cfgs[16];
static int ncfg;

/* config c: every switch cleared, then config c's set (0: none) */
static void setcfg(int c) {
    static const char* names[] = {"PT_I8_ONE", "PT_I8_ADD", "PT_I8_NOSCAN", "PT_I8_NOPASS", "PT_I8_PIECES", "PT_S8_MASK0"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) unsetenv(names[i]);
    if (c == 0 || c > ncfg) return;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", cfgs[c - 1]);
    for (char* tok = strtok(buf, " "); tok; tok = strtok(NULL, " ")) {
        char* e = strchr(tok, '=');
        if (!e) continue;
        *e = 0;
        setenv(tok, e + 1, 1);
    }
}

static int cmpd(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
    if (argc < 4) { fprintf(stderr, "usage: %s M K N [\"VAR=v ...\"]...\n", argv[0]); return 2; }
    const int64_t m = atoll(argv[1]), k = atoll(argv[2]), n = atoll(argv[3]);
    ncfg = argc - 4 < 14 ? argc - 4 : 14;
    for (int i = 0; i < ncfg; i++) cfgs[i] = argv[4 + i];
    int reps = getenv("REPS") ? atoi(getenv("REPS")) : 15;
    if (reps < 1 || reps > 99) reps = 15;
    const double blk = (getenv("BLKMS") ? atof(getenv("BLKMS")) : 10.0) * 1e-3;
    const int mode = getenv("W8A8") ? PT_INT8_W8A8 : PT_INT8_LLM;
    pt_ctx_params cp = {2, 0, 1, 0};
    pt_ctx* ctx;
    if (pt_ctx_create(&cp, &ctx) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
    float *x = malloc(4 * m * k), *w = malloc(4 * n * k), *ws = malloc(4 * n), *bias = malloc(4 * n);
    float *y = malloc(4 * m * n), *ys = malloc(4 * m * n);
    int8_t *wq = malloc(n * k), *xs = malloc(m * k);
    for (int64_t i = 0; i < m * k; i++) x[i] = 2 * rnd();
    for (int64_t i = 0; i < n * k; i++) w[i] = 0.1f * rnd();
    for (int64_t i = 0; i < n; i++) bias[i] = rnd();
    for (int64_t i = 0; i < m * k; i++) xs[i] = (int8_t)(rnd() * 127);
    const int nO = (int)(0.005 * k + 0.5);
    for (int o = 0; o < nO; o++) {
        const int64_t col = (int64_t)((rnd() + 1) * 0.5f * (k - 1));
        for (int64_t r = 0; r < m; r += 4) x[r * k + col] = 8 + 8 * (rnd() + 1) * 0.5f;
    }
    pt_tensor tx = t2(x, PT_F32, m, k, 4), tw = t2(w, PT_F32, n, k, 4), twq = t2(wq, PT_I8, n, k, 1), tws = v1(ws, PT_F32, n, 4);
    pt_tensor tb = v1(bias, PT_F32, n, 4), ty = t2(y, PT_F32, m, n, 4), txs = t2(xs, PT_I8, m, k, 1), tys = t2(ys, PT_F32, m, n, 4);
    pt_quantize_int8_weight(ctx, &tw, &twq, &tws);
    const int64_t pb = pt_int8_packed_bytes(n, k);
    int8_t *praw = malloc(pb + 64), *pk = (int8_t*)(((uintptr_t)praw + 63) & ~(uintptr_t)63);
    pt_tensor tp = v1(pk, PT_I8, pb, 1);
    pt_pack_int8_weight(ctx, &twq, &tp);
    pt_int8_matmul_params pp = {mode, PT_ACT_NONE, 6.0f, 0, &tp};
    pt_s8_matmul* s8;
    if (pt_s8_matmul_create(ctx, m, &twq, &tws, &s8) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
    const int nmeth = ncfg + 2; /* 0..ncfg: configs of pt_matmul_int8, ncfg + 1: oneDNN s8 */
    static double T[16][100];
    for (int rep = -1; rep < reps; rep++) /* rep -1: warm-up */
        for (int o = 0; o < nmeth; o++) {
            const int me = (o + (rep < 0 ? 0 : rep)) % nmeth;
            int it = 0;
            double t;
            if (me <= ncfg) setcfg(me);
            const double t0 = now();
            do {
                const pt_status st = me <= ncfg ? pt_matmul_int8(ctx, &tx, &twq, &tws, NULL, &tb, &ty, &pp)
                                                : pt_s8_matmul_run(ctx, s8, &txs, 0.02f, &tb, &tys);
                if (st != PT_OK) { fprintf(stderr, "failed: %s\n", pt_last_error()); return 1; }
                it++;
                t = now() - t0;
            } while (t < blk);
            if (rep >= 0) T[me][rep] = t / it;
        }
    setcfg(0);
    const double gop = 2.0 * m * n * k * 1e-9;
    printf("M=%lld K=%lld N=%lld nO=%d %s reps=%d\n", (long long)m, (long long)k, (long long)n, nO, mode == PT_INT8_LLM ? "llm" : "w8a8", reps);
    for (int me = 0; me < nmeth; me++) {
        double a[100], r[100], rb[100];
        for (int i = 0; i < reps; i++) {
            a[i] = T[me][i] * 1e6;
            r[i] = T[ncfg + 1][i] / T[me][i];
            rb[i] = T[0][i] / T[me][i];
        }
        qsort(a, reps, sizeof(double), cmpd);
        qsort(r, reps, sizeof(double), cmpd);
        qsort(rb, reps, sizeof(double), cmpd);
        printf("  %-40s us med %7.1f min %7.1f  (%6.0f GOP/s)  s8/this med %.3f (%.2f..%.2f)  A/this %.3f (%.2f..%.2f)\n",
               me == ncfg + 1 ? "onednn_s8" : me == 0 ? "A" : cfgs[me - 1], a[reps / 2], a[0], gop / (a[reps / 2] * 1e-6), r[reps / 2], r[0],
               r[reps - 1], rb[reps / 2], rb[0], rb[reps - 1]);
    }
    pt_s8_matmul_destroy(s8);
    pt_ctx_destroy(ctx);
    return 0;
}
