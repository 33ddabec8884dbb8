/* pt_memory_stream: the read and copy bandwidth probes benchmarks run next to the kernels
 * they compare (see panatron.h). The read is a 64-bit sum: AVX-512 (stream_avx512.c) where the
 * context has it, else portable C with 8 independent accumulators. */
#include "common/internal.h"

#include <string.h>

#define PIECE ((int64_t)1 << 20)

#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
PT_HIDDEN uint64_t pt_stream_read_avx512(const void* src, int64_t bytes);
#endif

typedef struct {
    int32_t mode;
    int32_t avx512;
    const char* src;
    char* dst;
    int64_t bytes;
    uint64_t sums[256];
} stream_arg;

static void stream_pieces(int64_t p0, int64_t p1, void* ap) {
    stream_arg* a = (stream_arg*)ap;
    const int64_t lo = p0 * PIECE, hi = p1 * PIECE < a->bytes ? p1 * PIECE : a->bytes;
    if (a->mode == 1) {
        memcpy(a->dst + lo, a->src + lo, (size_t)(hi - lo));
        return;
    }
#if PT_X86 && defined(PT_HAVE_X86_KERNELS)
    if (a->avx512) {
        __atomic_fetch_add(&a->sums[p0 & 255], pt_stream_read_avx512(a->src + lo, hi - lo), __ATOMIC_RELAXED);
        return;
    }
#endif
    const uint64_t* w = (const uint64_t*)(const void*)(a->src + lo);
    const int64_t n = (hi - lo) / 8;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        s0 += w[i]; s1 += w[i + 1]; s2 += w[i + 2]; s3 += w[i + 3];
        s4 += w[i + 4]; s5 += w[i + 5]; s6 += w[i + 6]; s7 += w[i + 7];
    }
    for (; i < n; i++) s0 += w[i];
    /* pieces are disjoint: each adds into its own slot (p0 % 256 is unique enough: the slots
     * are summed at the end, and addition mod 2^64 does not care which slot a piece used) */
    uint64_t s = s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
    __atomic_fetch_add(&a->sums[p0 & 255], s, __ATOMIC_RELAXED);
}

pt_status pt_memory_stream(pt_ctx* ctx, int32_t mode, const void* src, void* dst, int64_t bytes, uint64_t* checksum) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (mode != 0 && mode != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: mode %d (expected 0 = read, 1 = copy)", mode);
    if (!src) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: src is NULL");
    if (mode == 1 && !dst) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: dst is NULL (mode 1 = copy)");
    if (mode == 0 && !checksum) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: checksum is NULL (mode 0 = read)");
    if (bytes < 0 || (mode == 0 && bytes % 8 != 0))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: bytes %lld must be >= 0%s", (long long)bytes,
                       mode == 0 ? " and a multiple of 8 (mode 0 = read)" : "");
    if (mode == 1) {
        const char *s = (const char*)src, *d = (const char*)dst;
        if (s < d + bytes && d < s + bytes)
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_memory_stream: src and dst overlap (%lld bytes)", (long long)bytes);
    }
    stream_arg a;
    memset(&a, 0, sizeof a);
    a.mode = mode; a.src = (const char*)src; a.dst = (char*)dst; a.bytes = bytes;
    a.avx512 = (ctx->caps & PT_CPU_AVX512F) != 0;
    pt_parallel_range(ctx, (bytes + PIECE - 1) / PIECE, 1, stream_pieces, &a);
    uint64_t s = 0;
    for (int i = 0; i < 256; i++) s += a.sums[i];
    if (checksum) *checksum = mode == 0 ? s : 0;
    return PT_OK;
}
