/* scripts/decode-calls/gemv_step.c: the 49 f32 GEMVs of a GPT-2-124M decode step (M = 1, weights
 * [N, K] as the decoder holds them, trans_b = 1; qkv 2304x768, o 768x768, fc 3072x768 + GELU,
 * down 768x3072 per layer, lm_head 50257x768), all weights in one buffer streamed from memory,
 * against pt_memory_stream's read and copy of the same bytes in the same process.
 *   gcc -O2 -I native/include scripts/decode-calls/gemv_step.c -o /tmp/gemv_step -L build/dev -lpanatron
 *   LD_LIBRARY_PATH=build/dev /tmp/gemv_step THREADS REPS
 * Prints per rep: step ms, weights GB/s, read / copy GB/s, and per shape us per call (median of reps).
 * Variants (an experiment build, not the tree): `git apply scripts/decode-calls/gemv_knobs.patch`
 * exports int pt_dbg_gv[8] from the library (also read from PT_GV="a,b,c,d" at load, for the CLI) (0: prefetch T0 / 1 none / 2 T1 / 3 T2; 1: distance in
 * bytes, 0 = 2048; 2: segments, 0 = 8; 3: MiB per dynamically claimed piece of N, 0 = the static
 * split); each further argument "a,b,c,d" is one variant, run in turn rep by rep:
 *   LD_LIBRARY_PATH=build/dev /tmp/gemv_step 2 7 0,0,0,0 1,0,0,0 2,4096,0,0 0,0,0,8 */
#include <panatron/panatron.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void* a, const void* b) { double x = *(const double*)a, y = *(const double*)b; return x < y ? -1 : x > y; }
static pt_tensor t2(void* d, int64_t r, int64_t c) {
    pt_tensor t; memset(&t, 0, sizeof t); t.data = d; t.dtype = PT_F32; t.ndim = 2;
    t.shape[0] = r; t.shape[1] = c; t.stride[0] = c * 4; t.stride[1] = 4; return t;
}
static pt_tensor t1(void* d, int64_t n) {
    pt_tensor t; memset(&t, 0, sizeof t); t.data = d; t.dtype = PT_F32; t.ndim = 1; t.shape[0] = n; t.stride[0] = 4; return t;
}
extern int pt_dbg_gv[8] __attribute__((weak)); /* an experiment build's knobs (not in the tree) */
#define L 12
#define NS 5
int main(int argc, char** argv) {
    int th = argc > 1 ? atoi(argv[1]) : 2, reps0 = argc > 2 ? atoi(argv[2]) : 7;
    int nv = argc > 3 ? argc - 3 : 1;
    int vs[16][8] = {{0}};
    for (int v = 0; v < nv && v < 16 && argc > 3; v++) sscanf(argv[3 + v], "%d,%d,%d,%d", &vs[v][0], &vs[v][1], &vs[v][2], &vs[v][3]);
    int reps = reps0 * nv;
    if (reps > 64) reps = 64;
    pt_ctx* ctx; pt_ctx_params cp = {th, 0, 1, 0};
    if (pt_ctx_create(&cp, &ctx) != PT_OK) { puts(pt_last_error()); return 1; }
    const int64_t sn[NS] = {2304, 768, 3072, 768, 50257}, sk[NS] = {768, 768, 768, 3072, 768};
    const char* name[NS] = {"qkv 2304x768", "o 768x768", "fc 3072x768+gelu", "down 768x3072", "lm_head 50257x768"};
    size_t off[L * 4 + 1], tot = 0;
    for (int i = 0; i < L * 4 + 1; i++) { int s = i == L * 4 ? 4 : i % 4; off[i] = tot; tot += (size_t)(sn[s] * sk[s] * 4 + 4095) / 4096 * 4096; }
    char* w = aligned_alloc(2 << 20, (tot + (2 << 20) - 1) / (2 << 20) * (2 << 20));
    /* PT_HUGE=1: the weights on transparent huge pages (the host's THP mode is madvise) */
    if (getenv("PT_HUGE") && atoi(getenv("PT_HUGE"))) madvise(w, (tot + (2 << 20) - 1) / (2 << 20) * (2 << 20), MADV_HUGEPAGE);
    char* dst = aligned_alloc(4096, tot);
    for (size_t i = 0; i < tot / 4; i++) ((float*)w)[i] = (float)((i * 2654435761u) % 2001) * 1e-5f - 0.01f;
    memset(dst, 0, tot);
    float* x = aligned_alloc(64, 3072 * 4); float* y = aligned_alloc(64, 50257 * 4); float* bias = aligned_alloc(64, 50257 * 4);
    for (int i = 0; i < 3072; i++) x[i] = (float)(i % 17) * 0.1f - 0.8f;
    for (int i = 0; i < 50257; i++) bias[i] = 0.01f * (i % 7);
    double per[NS][64], step[64], rd[64], cp2[64];
    uint64_t cs;
    for (int r = 0; r < reps; r++) {
        double acc[NS] = {0};
        if (pt_dbg_gv) memcpy(pt_dbg_gv, vs[r % nv], sizeof vs[0]);
        double t0 = now();
        for (int i = 0; i < L * 4 + 1; i++) {
            int s = i == L * 4 ? 4 : i % 4;
            pt_tensor a = t2(x, 1, sk[s]), b = t2(w + off[i], sn[s], sk[s]), c = t2(y, 1, sn[s]), bb = t1(bias, sn[s]);
            pt_matmul_params p = {1, s == 2 ? PT_ACT_GELU_TANH : PT_ACT_NONE, 1.0f, 0.0f};
            double c0 = now();
            if (pt_matmul(ctx, &a, &b, s == 4 ? NULL : &bb, &c, &p) != PT_OK) { puts(pt_last_error()); return 1; }
            acc[s] += now() - c0;
        }
        step[r] = now() - t0;
        for (int s = 0; s < NS; s++) per[s][r] = acc[s] / (s == 4 ? 1 : L) * 1e6;
        double c0 = now(); pt_memory_stream(ctx, 0, w, NULL, (int64_t)tot, &cs); rd[r] = tot / (now() - c0) * 1e-9;
        c0 = now(); pt_memory_stream(ctx, 1, w, dst, (int64_t)(tot / 2), NULL); cp2[r] = tot / (now() - c0) * 1e-9; /* read + write bytes */
        printf("v%d rep %d: step %.2f ms = %.2f GB/s of weights; read %.2f GB/s, copy %.2f GB/s; step at %.0f%% of copy, %.0f%% of read\n", r % nv, r, step[r] * 1e3,
               tot / step[r] * 1e-9, rd[r], cp2[r], 100 * tot / step[r] * 1e-9 / cp2[r], 100 * tot / step[r] * 1e-9 / rd[r]);
    }
    for (int v = 0; v < nv; v++) {
        double fr[64], st[64], fq[64]; int n = 0;
        for (int r = v; r < reps; r += nv) { fr[n] = tot / step[r] * 1e-9 / cp2[r]; fq[n] = tot / step[r] * 1e-9 / rd[r]; st[n++] = step[r]; }
        qsort(fr, n, sizeof(double), cmp); qsort(st, n, sizeof(double), cmp); qsort(fq, n, sizeof(double), cmp);
        printf("variant %d (%d,%d,%d,%d) threads %d: step median %.2f ms (%.2f..%.2f), of copy %.0f%% (%.0f..%.0f%%), of read %.0f%%\n", v, vs[v][0], vs[v][1], vs[v][2], vs[v][3], th,
               st[n / 2] * 1e3, st[0] * 1e3, st[n - 1] * 1e3, 100 * fr[n / 2], 100 * fr[0], 100 * fr[n - 1], 100 * fq[n / 2]);
    }
    for (int s = 0; s < NS; s++) {
        qsort(per[s], reps, sizeof(double), cmp);
        printf("  %-20s %8.1f us/call (%.1f..%.1f) = %.2f GB/s\n", name[s], per[s][reps / 2], per[s][0], per[s][reps - 1], sn[s] * sk[s] * 4 / per[s][reps / 2] * 1e-3);
    }
    return 0;
}
