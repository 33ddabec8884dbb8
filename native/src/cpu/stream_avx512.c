/* pt_memory_stream's read loop on AVX-512 (see stream.c): four 64-byte loads per iteration into
 * four accumulators, so the loop issues far fewer instructions than the portable 64-bit one
 * (which matters when an SMT sibling shares the core) and reads as fast as a kernel can. */
#include "common/internal.h"

#include <immintrin.h>

PT_HIDDEN uint64_t pt_stream_read_avx512(const void* src, int64_t bytes);

uint64_t pt_stream_read_avx512(const void* src, int64_t bytes) {
    const char* p = (const char*)src;
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512((const void*)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512((const void*)(p + i + 64)));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512((const void*)(p + i + 128)));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512((const void*)(p + i + 192)));
    }
    uint64_t s = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (; i + 8 <= bytes; i += 8) s += *(const uint64_t*)(const void*)(p + i);
    return s;
}
