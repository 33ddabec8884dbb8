/* pt-bench --op attn | attn-decode: flash attention against a naive materialized attention
 * (oneDNN GEMMs through pt_matmul + the softmax below), in the same run, interleaved.
 *
 *   pt-bench --op attn [--dtype f32|bf16] [--batch B] [--heads H] [--kv-heads Hkv] [--dim D]
 *            [--seq 128,256,...] [--causal 0|1] [--threads T] [--reps R] [--warmup W]
 *            [--naive-max-mib M] [--json]
 *   pt-bench --op attn-decode [--dtype f32|bf16] [--batch B] [--heads H] [--kv-heads Hkv]
 *            [--dim D] [--kv 4096,...,131072] [--tq T] [--threads T] [--reps R] [--flush 0|1] [--json]
 *   both: [--disable amx,avx512,avx2,bf16]  switch kernel paths off (A/B of the dispatch levels)
 *   decode: [--vs amx,avx512,avx2,bf16]  also run a second context with these paths off as
 *            well, alternated with the first per repeat (each after its own copy + read)
 *
 * Prefill reports GFLOP/s (4*S*S*D*H*B, halved-ish for causal: the visible pairs are counted)
 * for flash and naive, the ratio of medians, and the naive path's score-matrix memory. The
 * naive path runs when its score buffers for one head fit --naive-max-mib (default 4096);
 * it works through as many heads at a time as fit.
 * Decode reports GB/s of K/V bytes read (B*Hkv*KV*(D+Dv)*elem) against the copy bandwidth
 * measured in the same run (pt_memory_stream: the threads memcpy 1 MiB pieces of a 1 GiB
 * buffer; read + write bytes, the STREAM convention) and the read bandwidth (pt_memory_stream's
 * read: eight streams side by side per thread over 1 GiB). With --flush 1
 * (default) one copy and one read of 512 MiB are also timed right before every
 * decode repeat, and the ratios K/V GB/s / read GB/s and K/V GB/s / copy GB/s are reported per
 * repeat (median, min..max): on a shared machine the bandwidth drifts within seconds, so a
 * ratio of neighbours is steadier. The read, last, flushes the L3 with clean lines, so K/V
 * come from DRAM as in a real model; --flush 0 leaves K/V cached (the kernel's compute rate).
 * Both ratios are reported. A one-stream read reaches only ~2/3 of the copy figure on the VMs
 * we measure, but eight streams side by side reach about the copy figure: the read probe reads
 * that way, so "of read" is the stricter of the two. */
#include "bench_common.h"
#include "panatron/panatron.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint16_t bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static void fill(void* p, int32_t dt, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        float v = pt_bench_rand(&s);
        if (dt == PT_BF16) ((uint16_t*)p)[i] = bf16(v);
        else ((float*)p)[i] = v;
    }
}
static pt_tensor tens(void* data, int32_t dt, int nd, const int64_t* shape, const int64_t* stride_el) {
    pt_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data; t.dtype = dt; t.ndim = nd;
    int64_t es = (int64_t)pt_dtype_size(dt), s = es;
    for (int i = nd - 1; i >= 0; i--) {
        t.shape[i] = shape[i];
        t.stride[i] = stride_el ? stride_el[i] * es : s;
        s *= shape[i];
    }
    return t;
}
/* ---------------------------------------------------------------- naive softmax */
/* Row softmax over the first `n` entries of x (log2-domain polynomial exp, vectorizable), the
 * rest of the row zeroed; writes f32 or bf16. Compiled for AVX-512/AVX2/baseline (ifunc). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__linux__) && !defined(__clang__)
#  define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#  define CLONES
#endif
static inline float exp2_poly(float t) { /* t <= 0 */
    t = t < -126.0f ? -126.0f : t;
    float fl = (float)(int)(t - 0.5f); /* round to nearest for t <= 0 */
    float f = t - fl;
    float p = 1.5252734e-5f;
    p = p * f + 1.5403530e-4f; p = p * f + 1.3333558e-3f; p = p * f + 9.6181291e-3f;
    p = p * f + 5.5504109e-2f; p = p * f + 2.4022651e-1f; p = p * f + 6.9314718e-1f; p = p * f + 1.0f;
    union { float f; int32_t i; } u;
    u.i = ((int32_t)fl + 127) << 23;
    return p * u.f;
}
CLONES static void softmax_row(const float* x, int64_t n, int64_t len, float scale, void* out, int32_t odt, float* tmp) {
    float mx = -INFINITY, sum = 0.0f;
    const float c = scale * 1.44269504f;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    float* e = odt == PT_F32 ? (float*)out : tmp; /* f32: in place (out == x) */
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        e[j] = exp2_poly((x[j] - mx) * c);
        sum += e[j];
    }
    float inv = 1.0f / sum;
    if (odt == PT_F32) {
        float* o = (float*)out;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) o[j] *= inv;
        for (int64_t j = n; j < len; j++) o[j] = 0.0f;
    } else {
        uint16_t* o = (uint16_t*)out;
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            union { float f; uint32_t i; } v;
            v.f = e[j] * inv;
            o[j] = (uint16_t)((v.i + 0x7fffu + ((v.i >> 16) & 1u)) >> 16);
        }
        for (int64_t j = n; j < len; j++) o[j] = 0;
    }
}

typedef struct { const float* s; void* p; int64_t rows, S, sq_off; float scale; int causal; int32_t pdt; int nt; } sm_arg;
typedef struct { sm_arg* a; int id; } sm_job;
static void* sm_thread(void* v) {
    sm_job* j = (sm_job*)v;
    sm_arg* a = j->a;
    size_t ep = a->pdt == PT_BF16 ? 2 : 4;
    float* tmp = malloc(sizeof(float) * (size_t)a->S);
    for (int64_t r = j->id; r < a->rows; r += a->nt) {
        int64_t i = r % a->S; /* query index within its head */
        int64_t n = a->causal ? i + 1 : a->S;
        softmax_row(a->s + r * a->S, n, a->S, a->scale, (char*)a->p + (size_t)(r * a->S) * ep, a->pdt, tmp);
    }
    free(tmp);
    return NULL;
}
static void softmax_all(sm_arg* a) {
    pthread_t th[64];
    sm_job jobs[64];
    int nt = a->nt > 64 ? 64 : a->nt;
    a->nt = nt;
    for (int i = 0; i < nt; i++) { jobs[i].a = a; jobs[i].id = i; pthread_create(&th[i], NULL, sm_thread, &jobs[i]); }
    for (int i = 0; i < nt; i++) pthread_join(th[i], NULL);
}

/* ---------------------------------------------------------------- naive prefill */
typedef struct {
    int64_t B, S, H, Hkv, D;
    int32_t dt;
    int causal, threads;
    void *q, *k, *v, *o;  /* [B, S, H|Hkv, D] */
    float* scores;        /* [hc, S, S] */
    void* probs;          /* bf16 [hc, S, S] (bf16 only; f32 works in place) */
    int64_t hc;           /* heads per pass */
} naive_t;

static int naive_run(pt_ctx* ctx, naive_t* n) {
    int64_t G = n->H / n->Hkv, S = n->S, D = n->D, es = (int64_t)pt_dtype_size(n->dt);
    float scale = 1.0f / sqrtf((float)D);
    for (int64_t b = 0; b < n->B; b++)
        for (int64_t g = 0; g < n->Hkv; g++)
            for (int64_t h0 = 0; h0 < G; h0 += n->hc) {
                int64_t hc = G - h0 < n->hc ? G - h0 : n->hc, h = g * G + h0;
                char* qb = (char*)n->q + (size_t)((b * S * n->H + h) * D * es);
                char* kb = (char*)n->k + (size_t)((b * S * n->Hkv + g) * D * es);
                char* vb = (char*)n->v + (size_t)((b * S * n->Hkv + g) * D * es);
                char* ob = (char*)n->o + (size_t)((b * S * n->H + h) * D * es);
                int64_t qs[3] = {hc, S, D}, qst[3] = {D, n->H * D, 1};
                int64_t ks[2] = {S, D}, kst[2] = {n->Hkv * D, 1};
                int64_t ss[3] = {hc, S, S};
                pt_tensor tq = tens(qb, n->dt, 3, qs, qst), tk = tens(kb, n->dt, 2, ks, kst), tv = tens(vb, n->dt, 2, ks, kst);
                pt_tensor ts = tens(n->scores, PT_F32, 3, ss, NULL);
                pt_matmul_params mp = {1, PT_ACT_NONE, 1.0f, 0.0f};
                if (pt_matmul(ctx, &tq, &tk, NULL, &ts, &mp) != PT_OK) return 1;
                sm_arg a = {n->scores, n->dt == PT_BF16 ? n->probs : (void*)n->scores, hc * S, S, 0, scale, n->causal, n->dt, n->threads};
                softmax_all(&a);
                pt_tensor tp = tens(a.p, n->dt, 3, ss, NULL);
                pt_tensor to = tens(ob, n->dt, 3, qs, qst);
                pt_matmul_params mp2 = {0, PT_ACT_NONE, 1.0f, 0.0f};
                if (pt_matmul(ctx, &tp, &tv, NULL, &to, &mp2) != PT_OK) return 1;
            }
    return 0;
}

/* ---------------------------------------------------------------- bandwidth */
/* The library's probes (pt_memory_stream, the same as `panatron bench generate` uses) on the
 * benchmark context's threads. mode 0: copy (read+write bytes/s, the STREAM convention), 1:
 * read (bytes/s; eight streams side by side per thread, as fast as a read-only kernel can
 * read here). st: wall time; cst: CPU time / threads. */
static void bandwidth(pt_ctx* ctx, int mode, char* a, char* b, size_t n, int threads, int reps, pt_bench_stats* st, pt_bench_stats* cst) {
    double* t = malloc(sizeof(double) * reps);
    double* c = malloc(sizeof(double) * reps);
    uint64_t sum = 0;
    for (int r = 0; r < reps; r++) {
        double t0 = pt_bench_now(), c0 = pt_bench_cpu_s();
        if (pt_memory_stream(ctx, mode ? 0 : 1, a, b, (int64_t)n, &sum) != PT_OK) fprintf(stderr, "%s\n", pt_last_error());
        t[r] = pt_bench_now() - t0;
        c[r] = (pt_bench_cpu_s() - c0) / threads;
    }
    double bytes = mode ? (double)n : 2.0 * (double)n;
    pt_bench_stats s = pt_bench_summary(t, reps), sc = pt_bench_summary(c, reps);
    st->med = bytes / s.med * 1e-9; st->lo = bytes / s.hi * 1e-9; st->hi = bytes / s.lo * 1e-9;
    cst->med = bytes / sc.med * 1e-9; cst->lo = bytes / sc.hi * 1e-9; cst->hi = bytes / sc.lo * 1e-9;
    free(t);
    free(c);
}


/* ---------------------------------------------------------------- options */
typedef struct {
    int decode, json, causal, reps, warmup, threads, tq, flush, vs;
    uint32_t disable_caps, vs_caps;
    int32_t dt;
    int64_t B, H, Hkv, D, naive_max_mib;
    int64_t list[32];
    int nlist;
} opts;

int pt_bench_attn(int argc, char** argv);
int pt_bench_attn(int argc, char** argv) {
    opts o;
    memset(&o, 0, sizeof o);
    o.dt = PT_F32; o.B = 1; o.H = 8; o.Hkv = 2; o.D = 128; o.causal = 1; o.reps = 7; o.warmup = 1; o.tq = 1; o.flush = 1;
    o.naive_max_mib = 4096;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        const char* v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--json")) { o.json = 1; continue; }
        if (!strcmp(a, "--op")) o.decode = !strcmp(v, "attn-decode");
        else if (!strcmp(a, "--dtype")) o.dt = !strcmp(v, "bf16") ? PT_BF16 : PT_F32;
        else if (!strcmp(a, "--batch")) o.B = atoll(v);
        else if (!strcmp(a, "--heads")) o.H = atoll(v);
        else if (!strcmp(a, "--kv-heads")) o.Hkv = atoll(v);
        else if (!strcmp(a, "--dim")) o.D = atoll(v);
        else if (!strcmp(a, "--seq") || !strcmp(a, "--kv")) o.nlist = pt_bench_parse_i64(v, o.list, 32);
        else if (!strcmp(a, "--causal")) o.causal = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--reps")) o.reps = atoi(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(a, "--tq")) o.tq = atoi(v);
        else if (!strcmp(a, "--flush")) o.flush = atoi(v); /* 0: K/V stay cached (compute rate of the decode kernel) */
        else if (!strcmp(a, "--naive-max-mib")) o.naive_max_mib = atoll(v);
        else if (!strcmp(a, "--disable")) { /* kernel paths to switch off (A/B): comma list of amx, avx512, avx2 */
            if (strstr(v, "amx")) o.disable_caps |= PT_CPU_AMX_BF16;
            if (strstr(v, "avx512")) o.disable_caps |= PT_CPU_AVX512F | PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
            if (strstr(v, "avx2")) o.disable_caps |= PT_CPU_AVX2 | PT_CPU_FMA;
            if (strstr(v, "bf16")) o.disable_caps |= PT_CPU_AVX512_BF16;
        }
        else if (!strcmp(a, "--vs")) { /* decode: a second context with these paths off too, alternated per repeat */
            o.vs = 1;
            if (strstr(v, "amx")) o.vs_caps |= PT_CPU_AMX_BF16;
            if (strstr(v, "avx512")) o.vs_caps |= PT_CPU_AVX512F | PT_CPU_AVX512_BF16 | PT_CPU_AMX_BF16;
            if (strstr(v, "avx2")) o.vs_caps |= PT_CPU_AVX2 | PT_CPU_FMA;
            if (strstr(v, "bf16")) o.vs_caps |= PT_CPU_AVX512_BF16;
        }
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
        i++;
    }
    if (o.reps < 1) o.reps = 1;
    if (o.Hkv < 1 || o.H % o.Hkv) { fprintf(stderr, "--heads must be a multiple of --kv-heads\n"); return 2; }
    const char* dts = o.dt == PT_BF16 ? "bf16" : "f32";
    size_t es = pt_dtype_size(o.dt);
    pt_ctx_params cp = {o.threads, o.disable_caps, 1, 0};
    pt_ctx* ctx;
    if (pt_ctx_create(&cp, &ctx) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
    int32_t nthreads;
    pt_ctx_threads(ctx, &nthreads);
    pt_build_info info;
    pt_build_info_get(&info);

    if (!o.decode) {
        if (o.nlist == 0) {
            int64_t d[] = {128, 256, 512, 1024, 2048, 4096, 8192, 16384};
            o.nlist = 8;
            memcpy(o.list, d, sizeof d);
        }
        if (!o.json)
            printf("attn prefill %s B=%lld H=%lld Hkv=%lld D=%lld causal=%d threads=%d onednn=%s\n", dts, (long long)o.B, (long long)o.H,
                   (long long)o.Hkv, (long long)o.D, o.causal, nthreads, info.onednn_version ? "yes" : "no (naive uses own GEMM)");
        for (int si = 0; si < o.nlist; si++) {
            int64_t S = o.list[si], B = o.B, H = o.H, Hkv = o.Hkv, D = o.D, G = H / Hkv;
            size_t nq = (size_t)(B * S * H * D), nk = (size_t)(B * S * Hkv * D);
            void *q = malloc(nq * es), *k = malloc(nk * es), *v = malloc(nk * es), *out = malloc(nq * es), *out2 = malloc(nq * es);
            fill(q, o.dt, nq, 1); fill(k, o.dt, nk, 2); fill(v, o.dt, nk, 3);
            int64_t qs[4] = {B, S, H, D}, ks[4] = {B, S, Hkv, D};
            pt_tensor tq = tens(q, o.dt, 4, qs, NULL), tk = tens(k, o.dt, 4, ks, NULL), tv = tens(v, o.dt, 4, ks, NULL),
                      to = tens(out, o.dt, 4, qs, NULL);
            pt_flash_attn_params fp;
            memset(&fp, 0, sizeof fp);
            fp.q = &tq; fp.k = &tk; fp.v = &tv; fp.out = &to; fp.causal = o.causal; fp.window_left = -1; fp.window_right = -1;
            /* naive buffers: as many heads of a group per pass as fit the limit */
            size_t per_head = (size_t)S * S * (4 + (o.dt == PT_BF16 ? 2 : 0));
            int64_t hc = (int64_t)((size_t)o.naive_max_mib * 1048576 / per_head);
            if (hc > G) hc = G;
            naive_t nv;
            memset(&nv, 0, sizeof nv);
            nv.B = B; nv.S = S; nv.H = H; nv.Hkv = Hkv; nv.D = D; nv.dt = o.dt; nv.causal = o.causal; nv.threads = nthreads;
            nv.q = q; nv.k = k; nv.v = v; nv.o = out2; nv.hc = hc;
            if (hc > 0) {
                nv.scores = malloc((size_t)hc * S * S * 4);
                if (o.dt == PT_BF16) nv.probs = malloc((size_t)hc * S * S * 2);
                if (!nv.scores || (o.dt == PT_BF16 && !nv.probs)) { free(nv.scores); free(nv.probs); nv.scores = NULL; hc = 0; }
            }
            double pairs = o.causal ? (double)S * (S + 1) / 2 : (double)S * S;
            double flop = 4.0 * pairs * D * H * B;
            /* warm-up, then adapt reps so one size takes ~20 s at most */
            double t0 = pt_bench_now();
            for (int w = 0; w < o.warmup; w++) pt_flash_attn_fwd(ctx, &fp);
            if (pt_flash_attn_fwd(ctx, &fp) != PT_OK) { fprintf(stderr, "flash: %s\n", pt_last_error()); return 1; }
            double tf1 = (pt_bench_now() - t0) / (o.warmup + 1), tn1 = 0;
            if (hc > 0) {
                t0 = pt_bench_now();
                if (naive_run(ctx, &nv)) { fprintf(stderr, "naive: %s\n", pt_last_error()); return 1; }
                tn1 = pt_bench_now() - t0;
            }
            int reps = o.reps;
            while (reps > 3 && reps * (tf1 + tn1) > 20.0) reps--;
            double* tf = malloc(sizeof(double) * reps);
            double* tn = malloc(sizeof(double) * reps);
            double* cf = malloc(sizeof(double) * reps);
            double* cn = malloc(sizeof(double) * reps);
            for (int r = 0; r < reps; r++) { /* interleaved */
                t0 = pt_bench_now();
                double c0 = pt_bench_cpu_s();
                pt_flash_attn_fwd(ctx, &fp);
                tf[r] = pt_bench_now() - t0;
                cf[r] = (pt_bench_cpu_s() - c0) / nthreads;
                if (hc > 0) {
                    t0 = pt_bench_now();
                    c0 = pt_bench_cpu_s();
                    naive_run(ctx, &nv);
                    tn[r] = pt_bench_now() - t0;
                    cn[r] = (pt_bench_cpu_s() - c0) / nthreads;
                }
            }
            /* agreement check (not a test: catches a broken benchmark) */
            double maxdiff = 0;
            if (hc > 0)
                for (size_t i = 0; i < nq; i += 97) {
                    float a = o.dt == PT_BF16 ? (float)0 : ((float*)out)[i], b = o.dt == PT_BF16 ? (float)0 : ((float*)out2)[i];
                    if (o.dt == PT_BF16) {
                        uint32_t ua = (uint32_t)((uint16_t*)out)[i] << 16, ub = (uint32_t)((uint16_t*)out2)[i] << 16;
                        memcpy(&a, &ua, 4); memcpy(&b, &ub, 4);
                    }
                    double d = fabs((double)a - b);
                    if (d > maxdiff || d != d) maxdiff = d;
                }
            pt_bench_stats sf = pt_bench_summary(tf, reps), sn = {0, 0, 0}, scf = pt_bench_summary(cf, reps), scn = {0, 0, 0};
            if (hc > 0) { sn = pt_bench_summary(tn, reps); scn = pt_bench_summary(cn, reps); }
            double naive_mib = hc > 0 ? (double)hc * per_head / 1048576.0 : (double)per_head / 1048576.0;
            /* the kernel's per-thread workspace, independent of S: flash_attn_avx512.c (f32, or
             * bf16 without AMX): 8 sub-tiles of Qᵀ and Oᵀ (f32), a 72x64 score tile, K and V
             * tiles; flash_attn_amx.c (bf16): 4 sub-tiles of Q (bf16) and O (f32), S, P, K, V */
            int64_t Dp = (D + 15) / 16 * 16;
            double ws_kib = o.dt == PT_BF16 && !(o.disable_caps & PT_CPU_AMX_BF16)
                                ? (4.0 * 64 * D * 2 + 4.0 * 64 * D * 4 + 64.0 * 64 * 6 + D / 32 * 4 * 1024.0 + 2 * (D / 16) * 1024.0) / 1024
                                : (8.0 * 64 * (D + D) + 72.0 * 64 + 64.0 * Dp + 64.0 * (Dp + 16)) * 4 / 1024;
            if (o.json) {
                printf("{\"op\":\"attn\",\"dtype\":\"%s\",\"B\":%lld,\"S\":%lld,\"H\":%lld,\"Hkv\":%lld,\"D\":%lld,\"causal\":%d,\"threads\":%d,"
                       "\"reps\":%d,\"flash_gflops\":%.2f,\"flash_gflops_min\":%.2f,\"flash_gflops_max\":%.2f,\"flash_ms\":%.3f,\"flash_cpu_gflops\":%.2f",
                       dts, (long long)B, (long long)S, (long long)H, (long long)Hkv, (long long)D, o.causal, nthreads, reps,
                       flop / sf.med * 1e-9, flop / sf.hi * 1e-9, flop / sf.lo * 1e-9, sf.med * 1e3, flop / scf.med * 1e-9);
                if (hc > 0)
                    printf(",\"naive_gflops\":%.2f,\"naive_gflops_min\":%.2f,\"naive_gflops_max\":%.2f,\"naive_ms\":%.3f,\"naive_cpu_gflops\":%.2f,"
                           "\"ratio\":%.3f,\"ratio_cpu\":%.3f,\"naive_heads_per_pass\":%lld,\"naive_mib\":%.1f,\"max_abs_diff\":%.2e",
                           flop / sn.med * 1e-9, flop / sn.hi * 1e-9, flop / sn.lo * 1e-9, sn.med * 1e3, flop / scn.med * 1e-9, sn.med / sf.med,
                           scn.med / scf.med, (long long)hc, naive_mib, maxdiff);
                else printf(",\"naive\":null,\"naive_mib_needed_per_head\":%.1f", naive_mib);
                printf(",\"flash_workspace_kib_per_thread\":%.1f}\n", ws_kib);
            } else {
                printf("  S=%-6lld flash %7.1f GFLOP/s (%.1f..%.1f; cpu %.1f) %9.2f ms", (long long)S, flop / sf.med * 1e-9, flop / sf.hi * 1e-9,
                       flop / sf.lo * 1e-9, flop / scf.med * 1e-9, sf.med * 1e3);
                if (hc > 0)
                    printf(" | naive %7.1f GFLOP/s (%.1f..%.1f; cpu %.1f) %9.2f ms | speedup %.2fx (cpu %.2fx) | naive scores %.0f MiB, flash %.0f KiB/thread | diff %.1e\n",
                           flop / sn.med * 1e-9, flop / sn.hi * 1e-9, flop / sn.lo * 1e-9, flop / scn.med * 1e-9, sn.med * 1e3, sn.med / sf.med,
                           scn.med / scf.med, naive_mib, ws_kib, maxdiff);
                else printf(" | naive skipped (needs %.0f MiB per head > --naive-max-mib), flash %.0f KiB/thread\n", naive_mib, ws_kib);
            }
            fflush(stdout);
            free(q); free(k); free(v); free(out); free(out2); free(nv.scores); free(nv.probs); free(tf); free(tn); free(cf); free(cn);
        }
    } else {
        if (o.nlist == 0) {
            int64_t d[] = {4096, 16384, 32768, 65536, 131072};
            o.nlist = 5;
            memcpy(o.list, d, sizeof d);
        }
        int64_t B = o.B, H = o.H, Hkv = o.Hkv, D = o.D, Tq = o.tq, Smax = 0;
        for (int i = 0; i < o.nlist; i++) if (o.list[i] > Smax) Smax = o.list[i];
        /* bandwidth ceilings, same threads */
        size_t bwn = (size_t)1 << 29;
        char* ba = malloc(bwn);
        char* bb = malloc(bwn);
        memset(ba, 1, bwn);
        memset(bb, 2, bwn);
        pt_bench_stats cbw, rbw, ccbw, crbw;
        bandwidth(ctx, 0, ba, bb, bwn, nthreads, 5, &cbw, &ccbw);
        bandwidth(ctx, 1, ba, bb, bwn, nthreads, 5, &rbw, &crbw);
        size_t nc = (size_t)(B * Hkv * Smax * D);
        void *kc = malloc(nc * es), *vc = malloc(nc * es);
        fill(kc, o.dt, nc, 4); fill(vc, o.dt, nc, 5);
        size_t nq = (size_t)(B * Tq * H * D);
        void *q = malloc(nq * es), *out = malloc(nq * es);
        fill(q, o.dt, nq, 6);
        int32_t* lens = malloc(sizeof(int32_t) * B);
        int64_t qs[4] = {B, Tq, H, D}, cs[4] = {B, Hkv, Smax, D}, ls[1] = {B};
        pt_tensor tq = tens(q, o.dt, 4, qs, NULL), tk = tens(kc, o.dt, 4, cs, NULL), tv = tens(vc, o.dt, 4, cs, NULL),
                  to = tens(out, o.dt, 4, qs, NULL), tl = tens(lens, PT_I32, 1, ls, NULL);
        pt_flash_decode_params dp;
        memset(&dp, 0, sizeof dp);
        dp.q = &tq; dp.k_cache = &tk; dp.v_cache = &tv; dp.kv_lens = &tl; dp.out = &to; dp.causal = 1;
        dp.window_left = -1; dp.window_right = -1;
        if (!o.json)
            printf("attn decode %s B=%lld H=%lld Hkv=%lld D=%lld Tq=%lld threads=%d\n"
                   "  copy bandwidth %.2f GB/s (%.2f..%.2f; cpu %.2f; read+write bytes), read bandwidth %.2f GB/s (%.2f..%.2f; cpu %.2f)\n",
                   dts, (long long)B, (long long)H, (long long)Hkv, (long long)D, (long long)Tq, nthreads, cbw.med, cbw.lo, cbw.hi, ccbw.med,
                   rbw.med, rbw.lo, rbw.hi, crbw.med);
        pt_ctx* cx[2] = {ctx, NULL};
        int nvar = 1;
        if (o.vs) {
            pt_ctx_params cp2 = {o.threads, o.disable_caps | o.vs_caps, 1, 0};
            if (pt_ctx_create(&cp2, &cx[1]) != PT_OK) { fprintf(stderr, "%s\n", pt_last_error()); return 1; }
            nvar = 2;
        }
        for (int si = 0; si < o.nlist; si++) {
            int64_t KV = o.list[si];
            for (int64_t b = 0; b < B; b++) lens[b] = (int32_t)KV;
            double* t = malloc(sizeof(double) * 2 * o.reps);
            double* c = malloc(sizeof(double) * 2 * o.reps);
            double* cb = malloc(sizeof(double) * 2 * o.reps); /* copy GB/s measured right before each repeat */
            double* rt = malloc(sizeof(double) * 2 * o.reps); /* per-repeat K/V GB/s / copy GB/s */
            double* rb = malloc(sizeof(double) * 2 * o.reps); /* read GB/s measured right before each repeat */
            double* rr = malloc(sizeof(double) * 2 * o.reps); /* per-repeat K/V GB/s / read GB/s */
            double* rrc = malloc(sizeof(double) * 2 * o.reps); /* the same on CPU time (bytes / (CPU s / threads)) */
            double bytes = (double)B * Hkv * KV * (2 * D) * es;
            double *t0v = t, *c0v = c, *cb0 = cb, *rt0 = rt, *rb0 = rb, *rr0 = rr, *rrc0 = rrc;
            for (int w = 0; w < o.warmup; w++)
                for (int vi = 0; vi < nvar; vi++)
                    if (pt_flash_attn_decode(cx[vi], &dp) != PT_OK) { fprintf(stderr, "decode: %s\n", pt_last_error()); return 1; }
            for (int r0 = 0; r0 < o.reps; r0++)
            for (int vi = 0; vi < nvar; vi++) { /* variants alternated per repeat */
                int r = vi * o.reps + r0;
                pt_bench_stats r1 = {0, 0, 0}, cr1 = {0, 0, 0};
                /* one copy and one read of 512 MiB; the read, last, also flushes the 105 MiB L3 with
                 * clean lines (a writing sweep, used before, left ~100 MiB of dirty lines whose
                 * write-backs then took DRAM bandwidth from the decode) */
                if (o.flush) {
                    pt_bench_stats c1, cc1;
                    bandwidth(ctx, 0, ba, bb, bwn, nthreads, 1, &c1, &cc1);
                    cb[r] = c1.med;
                    bandwidth(ctx, 1, ba, bb, bwn, nthreads, 1, &r1, &cr1);
                    rb[r] = r1.med;
                }
                double t0 = pt_bench_now(), c0 = pt_bench_cpu_s();
                pt_flash_attn_decode(cx[vi], &dp);
                t[r] = pt_bench_now() - t0;
                c[r] = (pt_bench_cpu_s() - c0) / nthreads;
                rt[r] = o.flush ? bytes / t[r] * 1e-9 / cb[r] : 0.0;
                rr[r] = o.flush ? bytes / t[r] * 1e-9 / rb[r] : 0.0;
                rrc[r] = o.flush ? bytes / c[r] * 1e-9 / cr1.med : 0.0;
            }
            for (int vi = 0; vi < nvar; vi++) {
            double *t = t0v + vi * o.reps, *c = c0v + vi * o.reps, *cb = cb0 + vi * o.reps, *rt = rt0 + vi * o.reps;
            double *rb = rb0 + vi * o.reps, *rr = rr0 + vi * o.reps, *rrc = rrc0 + vi * o.reps;
            if (!o.json && nvar > 1) printf("  [%s]\n", vi == 0 ? "default dispatch" : "--vs paths off");
            pt_bench_stats s = pt_bench_summary(t, o.reps), sc = pt_bench_summary(c, o.reps);
            pt_bench_stats z = {0, 0, 0};
            pt_bench_stats scb = o.flush ? pt_bench_summary(cb, o.reps) : z, srt = o.flush ? pt_bench_summary(rt, o.reps) : z;
            pt_bench_stats srb = o.flush ? pt_bench_summary(rb, o.reps) : z, srr = o.flush ? pt_bench_summary(rr, o.reps) : z;
            pt_bench_stats srrc = o.flush ? pt_bench_summary(rrc, o.reps) : z;
            double gbs = bytes / s.med * 1e-9, cgbs = bytes / sc.med * 1e-9;
            if (o.json)
                printf("{\"op\":\"attn-decode\",\"variant\":\"%s\",\"dtype\":\"%s\",\"B\":%lld,\"KV\":%lld,\"H\":%lld,\"Hkv\":%lld,\"D\":%lld,\"Tq\":%lld,"
                       "\"threads\":%d,\"reps\":%d,\"us\":%.1f,\"kv_gbs\":%.2f,\"kv_gbs_min\":%.2f,\"kv_gbs_max\":%.2f,\"copy_gbs\":%.2f,"
                       "\"read_gbs\":%.2f,\"frac_of_copy\":%.3f,\"frac_of_read\":%.3f,\"kv_cpu_gbs\":%.2f,\"copy_cpu_gbs\":%.2f,\"read_cpu_gbs\":%.2f,"
                       "\"cpu_frac_of_copy\":%.3f,\"cpu_frac_of_read\":%.3f,\"copy_interleaved_gbs\":%.2f,\"ratio_interleaved\":%.3f,"
                       "\"ratio_interleaved_min\":%.3f,\"ratio_interleaved_max\":%.3f,\"read_interleaved_gbs\":%.2f,"
                       "\"read_ratio_interleaved\":%.3f,\"read_ratio_interleaved_min\":%.3f,\"read_ratio_interleaved_max\":%.3f,"
                       "\"read_ratio_interleaved_cpu\":%.3f}\n",
                       vi == 0 ? "default" : "vs", dts, (long long)B, (long long)KV, (long long)H, (long long)Hkv, (long long)D, (long long)Tq, nthreads, o.reps,
                       s.med * 1e6, gbs, bytes / s.hi * 1e-9, bytes / s.lo * 1e-9, cbw.med, rbw.med, gbs / cbw.med, gbs / rbw.med, cgbs, ccbw.med,
                       crbw.med, cgbs / ccbw.med, cgbs / crbw.med, scb.med, srt.med, srt.lo, srt.hi, srb.med, srr.med, srr.lo, srr.hi, srrc.med);
            else
                printf("  KV=%-7lld %9.1f us  K/V read %6.2f GB/s (%.2f..%.2f) = %3.0f%% of copy, %3.0f%% of read | cpu: %6.2f GB/s = %3.0f%% of copy, %3.0f%% of read\n",
                       (long long)KV, s.med * 1e6, gbs, bytes / s.hi * 1e-9, bytes / s.lo * 1e-9, 100 * gbs / cbw.med, 100 * gbs / rbw.med, cgbs,
                       100 * cgbs / ccbw.med, 100 * cgbs / crbw.med);
            if (!o.json && o.flush)
                printf("            interleaved, before each repeat: copy %.2f GB/s (%.2f..%.2f), read %.2f GB/s (%.2f..%.2f); K/V GB/s per repeat\n"
                       "            = %.0f%% (%.0f..%.0f%%) of the read, %.0f%% (%.0f..%.0f%%) of the copy bandwidth; on CPU time %.0f%% of the read\n",
                       scb.med, scb.lo, scb.hi, srb.med, srb.lo, srb.hi, 100 * srr.med, 100 * srr.lo, 100 * srr.hi, 100 * srt.med, 100 * srt.lo,
                       100 * srt.hi, 100 * srrc.med);
            fflush(stdout);
            }
            free(t);
            free(c);
            free(cb);
            free(rt);
            free(rb);
            free(rr);
            free(rrc);
        }
        free(ba); free(bb); free(kc); free(vc); free(q); free(out); free(lens);
        if (cx[1]) pt_ctx_destroy(cx[1]);
    }
    pt_ctx_destroy(ctx);
    return 0;
}
