/* scripts/fp4-ab/pf_check.c — the FP4 GEMV's AMX-host schedule (pt_fp4_problem.pf_bytes = 0: one
 * pass ahead, no prologue) on any AVX-512 VNNI/BF16 host. fp4_run sets pf_bytes = 1536 wherever the
 * caps have no AMX, so without AMX test_fp4 never runs pf_bytes = 0; the split of a thread's rows
 * into the runs of passes (prefetching, then not) and the leftover rows depends on it. The prefetch
 * distance changes no arithmetic, so y must be bit-identical for every pf_bytes: this calls
 * pt_fp4_rows_avx512 (and the prologue pt_fp4_gemv_prefetch, as mm_units does) with pf_bytes 0, 64,
 * 1536 and 1 MiB on the VNNI GEMV (K <= 1024: 8-row passes; K > 1024: 4-row passes; vpshufb and
 * vpermb) and on the bf16 GEMV, per channel and G = 32/64/128, f32 and bf16 scales, over row ranges
 * [n0, n1) as a thread gets them (any start, any length), and checks that y outside [n0, n1) stays
 * untouched and inside is finite. Codes and scales are allocated to their exact size (run under
 * ASan to catch a load past the end). Exits 1 on a difference. Needs build/native (or build/asan):
 *   gcc -O1 -std=gnu11 -mavx512f -mavx512bw -Inative/src -Inative/include -Inative/src/common \
 *       -DPT_HAVE_X86_KERNELS=1 scripts/fp4-ab/pf_check.c \
 *       $(find build/native/CMakeFiles/panatron.dir -name '*.o') build/native/libdnnl.so.3 \
 *       -fopenmp -lm -o /tmp/pf_check && LD_LIBRARY_PATH=build/native /tmp/pf_check */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "cpu/fp4.h"

static const float E2M1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
static uint16_t bf(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
static float frand(void) { return rand() / (float)RAND_MAX - 0.5f; }

int main(void) {
    srand(11);
    static const int64_t NS[] = {1, 5, 13, 31, 87, 130, 257};
    static const int64_t KS[] = {2, 64, 258, 768, 1024, 1152, 1536, 3072};
    static const int64_t PF[] = {0, 64, 1536, 1 << 20};
    int bad = 0, runs = 0;
    for (int ki = 0; ki < 8; ki++)
    for (int ni = 0; ni < 7; ni++)
    for (int gi = 0; gi < 4; gi++)
    for (int kind = 0; kind < 3; kind++) { /* 0: VNNI vpshufb, 1: VNNI vpermb, 2: bf16 GEMV */
        const int64_t k = KS[ki], n = NS[ni], grp = gi == 0 ? k : 16 << gi;
        if (k % grp) continue;
        const int sbf = (ki + ni + gi) & 1;
        const int64_t ng = k / grp, es = sbf ? 2 : 4;
        uint8_t* codes = malloc((size_t)(n * k / 2));
        char* scales = malloc((size_t)(n * ng * es));
        float* x = malloc((size_t)k * 4);
        float* bias = malloc((size_t)n * 4);
        for (int64_t i = 0; i < n * k / 2; i++) codes[i] = (uint8_t)rand();
        for (int64_t i = 0; i < n * ng; i++) {
            const float s = 0.5f + (rand() & 255) / 256.0f;
            if (sbf) ((uint16_t*)scales)[i] = bf(s); else ((float*)scales)[i] = s;
        }
        for (int64_t i = 0; i < k; i++) x[i] = 4 * frand();
        for (int64_t i = 0; i < n; i++) bias[i] = frand();
        pt_fp4_problem p;
        memset(&p, 0, sizeof p);
        p.m = 1; p.n = n; p.k = k; p.group = grp; p.x = x; p.ldx = k; p.bf16_ok = 1;
        p.codes = codes; p.ldw = k / 2; p.scales = scales; p.lds = ng; p.scale_bf16 = sbf;
        p.bias = (ni & 1) ? bias : NULL; p.ldy = n;
        memcpy(p.lut, E2M1, sizeof E2M1);
        void* xv = NULL;
        uint16_t* xb = NULL;
        if (kind < 2) {
            if (!pt_fp4_vnni_prep(&p, PT_FP4_E2M1)) { printf("vnni_prep refused\n"); return 1; }
            xv = aligned_alloc(64, (size_t)((k + 127) >> 7) * PT_FP4_XV_BYTES);
            pt_fp4_vnni_quant(&p, xv);
            p.xv = xv;
            p.vbmi = kind;
        } else { /* as fp4_run: x as bf16 in the nibble order of a 128-chunk */
            const int64_t kp = (k + 127) & ~(int64_t)127;
            xb = malloc((size_t)kp * 2);
            for (int64_t c = 0; c < kp; c += 128)
                for (int r = 0; r < 4; r++)
                    for (int j = 0; j < 32; j++) xb[c + 32 * r + j] = c + 4 * j + r < k ? bf(x[c + 4 * j + r]) : 0;
            p.xb = xb;
            for (int i = 0; i < 32; i++) p.lutb[i] = bf(p.lut[i & 15]);
        }
        float* y0 = malloc((size_t)n * 4);
        float* y1 = malloc((size_t)n * 4);
        /* row ranges: the whole, and a thread's part starting anywhere */
        const int64_t rng[3][2] = {{0, n}, {n / 3, n}, {n > 1 ? 1 : 0, n - n / 4}};
        for (int ri = 0; ri < 3; ri++) {
            const int64_t n0 = rng[ri][0], n1 = rng[ri][1];
            if (n0 >= n1) continue;
            for (int pi = 0; pi < 4; pi++) {
                float* y = pi ? y1 : y0;
                for (int64_t i = 0; i < n; i++) y[i] = NAN;
                p.y = y;
                p.pf_bytes = PF[pi];
                pt_fp4_gemv_prefetch(&p, n0, n1);
                pt_fp4_rows_avx512(&p, n0, n1);
                int diff = 0, outside = 0, nonfinite = 0;
                for (int64_t i = 0; i < n; i++) {
                    if (i < n0 || i >= n1) outside += y[i] == y[i];
                    else nonfinite += !isfinite(y[i]);
                    if (pi) diff += memcmp(&y0[i], &y1[i], 4) != 0;
                }
                runs++;
                if (diff || outside || nonfinite) {
                    bad++;
                    printf("kind %d N %lld K %lld G %lld sbf %d rows [%lld, %lld) pf_bytes %lld: %d differ from pf_bytes 0, %d written outside, %d not finite\n",
                           kind, (long long)n, (long long)k, (long long)grp, sbf, (long long)n0, (long long)n1, (long long)PF[pi], diff, outside,
                           nonfinite);
                }
            }
        }
        free(codes); free(scales); free(x); free(bias); free(xv); free(xb); free(y0); free(y1);
    }
    printf("%d runs, %d bad\n", runs, bad);
    return bad ? 1 : 0;
}
