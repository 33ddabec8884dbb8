/* scripts/fd-harness/split_check.c — the AVX-512 decode kernel's AMX-host route (p.pf_l1 = 0: L2
 * prefetch, ranges of >= PT_FD_SPLIT steps as two halves) on any AVX-512 host, where the library
 * never takes it without AMX (so test_attention covers it only on AMX hosts): pt_fd_chunk_avx512
 * with pf_l1 0 and 1 against the portable chunk, long ranges (511..2100 keys, chunk starts 0 and
 * 48), windows, G 1..8, Tq 1..2, f32 and bf16 K/V. Exits 1 on a difference. Needs build/native:
 *   gcc -O1 -std=gnu11 -Inative/src -Inative/include -Inative/src/common -DPT_HAVE_X86_KERNELS=1 \
 *       scripts/fd-harness/split_check.c $(find build/native/CMakeFiles/panatron.dir -name '*.o') \
 *       build/native/libdnnl.so.3 -fopenmp -lm -o /tmp/split_check && LD_LIBRARY_PATH=build/native /tmp/split_check */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stdbool.h>
#include "cpu/flash_attn.h"
static uint16_t bf(float f) { uint32_t u; memcpy(&u, &f, 4); return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16); }
int main(void) {
    srand(7);
    int bad = 0, runs = 0;
    for (int dt = 0; dt < 2; dt++)
    for (int Tq = 1; Tq <= 2; Tq++)
    for (int G = 1; G <= 8; G *= 2) {
        const int64_t D = 128, S = 2100;
        const size_t es = dt ? 2 : 4;
        char* K = malloc(S * D * es); char* V = malloc(S * D * es); char* Q = malloc(Tq * G * D * es);
        for (int64_t i = 0; i < S * D; i++) {
            float a = rand() / (float)RAND_MAX - 0.5f, b = rand() / (float)RAND_MAX - 0.5f;
            if (dt) { ((uint16_t*)K)[i] = bf(a); ((uint16_t*)V)[i] = bf(b); } else { ((float*)K)[i] = a; ((float*)V)[i] = b; }
        }
        for (int64_t i = 0; i < Tq * G * D; i++) { float a = 4 * (rand() / (float)RAND_MAX - 0.5f); if (dt) ((uint16_t*)Q)[i] = bf(a); else ((float*)Q)[i] = a; }
        int64_t lens[] = {511, 512, 513, 543, 1025, 1057, 2100};
        int64_t wls[] = {-1, 600, 37};
        for (int li = 0; li < 7; li++) for (int wi = 0; wi < 3; wi++) for (int j0s = 0; j0s < 2; j0s++) {
            pt_fd_problem p; memset(&p, 0, sizeof p);
            p.D = D; p.Dv = D; p.G = G; p.Tq = Tq; p.q_dtype = p.kv_dtype = dt ? 2 : 0;
            p.scale_log2 = 1.4426950f / sqrtf((float)D);
            p.wl = wls[wi]; p.wr = 0; p.q_st = G * D * es; p.q_sh = D * es; p.k_ss = D * es; p.v_ss = D * es;
            pt_fd_item it = {Q, K, V, lens[li], j0s ? 48 : 0, lens[li]};
            const int64_t R = G * Tq, n = R * (D + 2);
            float* a = malloc(n * 4); float* b = malloc(n * 4); float* c = malloc(n * 4);
            p.pf_l1 = 0; pt_fd_chunk_avx512(&p, &it, a);
            p.pf_l1 = 1; pt_fd_chunk_avx512(&p, &it, b);
            pt_fd_chunk_portable(&p, &it, c);
            double e01 = 0, e0p = 0;
            for (int64_t r = 0; r < R; r++) {
                const float *pa = a + r * (D + 2), *pb = b + r * (D + 2), *pc = c + r * (D + 2);
                /* normalize: o / l, compare m exactly-ish */
                if (fabsf(pa[0] - pc[0]) > 1e-3 || fabsf(pb[0] - pc[0]) > 1e-3) e0p = 1e9;
                for (int64_t d = 0; d < D; d++) {
                    double oa = pa[2 + d] / pa[1], ob = pb[2 + d] / pb[1], oc = pc[2 + d] / pc[1];
                    e01 = fmax(e01, fabs(oa - ob)); e0p = fmax(e0p, fabs(oa - oc));
                }
            }
            runs++;
            if (!(e01 < 1e-4) || !(e0p < 1e-4)) { bad++; printf("dt %d Tq %d G %d len %lld wl %lld j0 %lld: l2-vs-l1 %g, l2-vs-portable %g\n", dt, Tq, G, (long long)lens[li], (long long)wls[wi], (long long)it.j0, e01, e0p); }
            free(a); free(b); free(c);
        }
        free(K); free(V); free(Q);
    }
    printf("%d runs, %d bad\n", runs, bad);
    return bad != 0;
}
