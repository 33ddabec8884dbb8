/* The FP4 GEMM (M > 1) body, included by fp4.c (portable) and fp4_avx512.c (compiled with
 * AVX-512 flags, where the 16-wide loops become one zmm each). Defines
 *   static void FP4_GEMM_NAME(const pt_fp4_problem* p, int64_t n0, int64_t n1)
 * A [KC x 16] tile of the weight (16 output columns, KC = 256 elements of K) is decoded into
 * a 16 KiB f32 tile that stays in L1 and serves all M rows (MR rows at a time in registers);
 * partial sums live in a per-thread [M x 16] buffer between K panels. */
#define FP4_NB 16
#define FP4_KC 256
#define FP4_MR 6

static void FP4_GEMM_NAME(const pt_fp4_problem* p, int64_t n0, int64_t n1) {
    const int64_t M = p->m, K = p->k, G = p->group;
    float* tile = (float*)pt_scratch(0, (size_t)FP4_KC * FP4_NB * sizeof(float));
    float* accb = (float*)pt_scratch(1, (size_t)M * FP4_NB * sizeof(float));
    if (!tile || !accb) { /* no memory: the slow path needs none */
        for (int64_t n = n0; n < n1; n++)
            for (int64_t m = 0; m < M; m++) {
                float s = 0.0f;
                for (int64_t k = 0; k < K; k++) {
                    uint8_t b = p->codes[n * p->ldw + k / 2];
                    s += p->x[m * p->ldx + k] * p->lut[(k & 1) ? b >> 4 : b & 15] * pt_fp4_scale(p, n, k / G);
                }
                pt_fp4_store_y(p, m, n, s + (p->bias ? p->bias[n] : 0.0f));
            }
        return;
    }
    for (int64_t nb = n0; nb < n1; nb += FP4_NB) {
        const int nr = (int)(n1 - nb < FP4_NB ? n1 - nb : FP4_NB);
        for (int64_t k0 = 0; k0 < K; k0 += FP4_KC) {
            const int64_t kc = K - k0 < FP4_KC ? K - k0 : FP4_KC; /* even: K is */
            /* decode: tile[kk][r] = level * scale */
            for (int r = 0; r < FP4_NB; r++) {
                if (r >= nr) {
                    for (int64_t kk = 0; kk < kc; kk++) tile[kk * FP4_NB + r] = 0.0f;
                    continue;
                }
                const int64_t n = nb + r;
                const uint8_t* c = p->codes + n * p->ldw + k0 / 2;
                for (int64_t kk = 0; kk < kc;) {
                    int64_t g = (k0 + kk) / G, end = (g + 1) * G - k0;
                    if (end > kc) end = kc;
                    float lt[16], s = pt_fp4_scale(p, n, g);
                    for (int i = 0; i < 16; i++) lt[i] = p->lut[i] * s;
                    for (; kk < end; kk += 2) {
                        uint8_t b = c[kk / 2];
                        tile[kk * FP4_NB + r] = lt[b & 15];
                        tile[(kk + 1) * FP4_NB + r] = lt[b >> 4];
                    }
                }
            }
            for (int64_t m0 = 0; m0 < M; m0 += FP4_MR) {
                const int mr = (int)(M - m0 < FP4_MR ? M - m0 : FP4_MR);
                float acc[FP4_MR][FP4_NB];
                for (int i = 0; i < FP4_MR; i++)
                    for (int j = 0; j < FP4_NB; j++) acc[i][j] = (k0 == 0 || i >= mr) ? 0.0f : accb[(m0 + i) * FP4_NB + j];
                const float* xr[FP4_MR];
                for (int i = 0; i < FP4_MR; i++) xr[i] = p->x + (m0 + (i < mr ? i : 0)) * p->ldx + k0;
                if (mr == FP4_MR) {
                    for (int64_t kk = 0; kk < kc; kk++) {
                        const float* t = tile + kk * FP4_NB;
                        for (int i = 0; i < FP4_MR; i++) {
                            const float xv = xr[i][kk];
                            for (int j = 0; j < FP4_NB; j++) acc[i][j] += xv * t[j];
                        }
                    }
                } else {
                    for (int64_t kk = 0; kk < kc; kk++) {
                        const float* t = tile + kk * FP4_NB;
                        for (int i = 0; i < mr; i++) {
                            const float xv = xr[i][kk];
                            for (int j = 0; j < FP4_NB; j++) acc[i][j] += xv * t[j];
                        }
                    }
                }
                for (int i = 0; i < mr; i++)
                    for (int j = 0; j < FP4_NB; j++) accb[(m0 + i) * FP4_NB + j] = acc[i][j];
            }
        }
        for (int64_t m = 0; m < M; m++)
            for (int j = 0; j < nr; j++)
                pt_fp4_store_y(p, m, nb + j, (K > 0 ? accb[m * FP4_NB + j] : 0.0f) + (p->bias ? p->bias[nb + j] : 0.0f));
    }
}
#undef FP4_NB
#undef FP4_KC
#undef FP4_MR
