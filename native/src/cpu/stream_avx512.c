/* pt_memory_stream's read loop on AVX-512 (see stream.c). The piece is read as 8 equal
 * segments side by side (two 64-byte loads from each per step): a core keeps more lines in
 * flight over several streams than over one, and a read-only kernel can do the same (the
 * small-M GEMV does), so the probe must too. Measured on the 2-vCPU dev VM, one thread: one
 * stream ~10.5 GB/s, 4 or 8 streams ~15 GB/s; two threads 21 against 27. */
#include "common/internal.h"

#include <immintrin.h>

PT_HIDDEN uint64_t pt_stream_read_avx512(const void* src, int64_t bytes);

#define SEGS 8

uint64_t pt_stream_read_avx512(const void* src, int64_t bytes) {
    const char* p = (const char*)src;
    __m512i a[SEGS];
    for (int s = 0; s < SEGS; s++) a[s] = _mm512_setzero_si512();
    const int64_t seg = bytes / (SEGS * 128) * 128; /* bytes per segment, a multiple of 128 */
    for (int64_t i = 0; i < seg; i += 128)
#pragma GCC unroll 8
        for (int s = 0; s < SEGS; s++) {
            a[s] = _mm512_add_epi64(a[s], _mm512_loadu_si512((const void*)(p + s * seg + i)));
            a[s] = _mm512_add_epi64(a[s], _mm512_loadu_si512((const void*)(p + s * seg + i + 64)));
        }
    for (int s = 1; s < SEGS; s++) a[0] = _mm512_add_epi64(a[0], a[s]);
    uint64_t sum = (uint64_t)_mm512_reduce_add_epi64(a[0]);
    int64_t i = SEGS * seg;
    for (; i + 8 <= bytes; i += 8) sum += *(const uint64_t*)(const void*)(p + i);
    return sum;
}
