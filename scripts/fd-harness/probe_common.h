/* Shared by the fd-harness probes (prefetch_probe.c, stream_probe.c): a monotonic clock and the
 * 8-stream read that each probe's figures are relative to. Not part of the build. */
#include <time.h>
#include <immintrin.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static volatile double sink;
/* GB/s of one thread reading `bytes` as 8 equal segments side by side, a line of each in turn */
static double read8_1(const char* b, size_t bytes) {
    double t0 = now(); size_t seg = bytes / 8; __m512i acc = _mm512_setzero_si512();
    for (size_t o = 0; o < seg; o += 64) for (int s = 0; s < 8; s++) acc = _mm512_add_epi64(acc, _mm512_load_si512(b + s * seg + o));
    double t = now() - t0; sink += _mm512_reduce_add_epi64(acc); return bytes / t * 1e-9;
}
