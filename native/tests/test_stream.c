/* pt_memory_stream: the read checksum against a plain sum, the copy against the source, on 1
 * and 2 threads, AVX-512 and portable, sizes around the 1 MiB piece; bad arguments. */
#include "pt_test.h"

#include <string.h>

static void run(pt_ctx* ctx, int64_t bytes) {
    uint64_t* src = malloc((size_t)bytes + 8);
    char* dst = malloc((size_t)bytes + 8);
    for (int64_t i = 0; i < bytes / 8; i++) src[i] = (uint64_t)pt_test_uniform(0, 4294967296.0) * 2654435761u + (uint64_t)i;
    uint64_t want = 0;
    for (int64_t i = 0; i < bytes / 8; i++) want += src[i];
    uint64_t got = 1;
    EXPECT_OK(pt_memory_stream(ctx, 0, src, NULL, bytes, &got));
    EXPECT(got == want, "read %lld bytes: checksum %llu, want %llu", (long long)bytes, (unsigned long long)got, (unsigned long long)want);
    pt_test_poison(dst, bytes);
    EXPECT_OK(pt_memory_stream(ctx, 1, src, dst, bytes, &got));
    EXPECT(memcmp(dst, src, (size_t)bytes) == 0 && got == 0, "copy %lld bytes differs from the source", (long long)bytes);
    free(src);
    free(dst);
}

int main(void) {
    pt_test_seed(11);
    for (int cfg = 0; cfg < 4; cfg++) { /* 1 / 2 threads x AVX-512 / portable */
        const int t = 1 + (cfg & 1);
        pt_ctx_params cp = {t, (cfg & 2) ? (uint32_t)(PT_CPU_AVX512F | PT_CPU_AVX2) : 0u, 0, 0};
        pt_ctx* ctx = NULL;
        EXPECT_OK(pt_ctx_create(&cp, &ctx));
        static const int64_t SIZES[] = {0, 8, 1048576 - 8, 1048576, 1048576 + 8, 3 * 1048576 + 4096, 5 * 1048576 + 8};
        for (int i = 0; i < (int)(sizeof SIZES / sizeof SIZES[0]); i++) run(ctx, SIZES[i]);
        char b[64];
        uint64_t s;
        EXPECT(pt_memory_stream(ctx, 2, b, b, 8, &s) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "mode 2"), "mode 2: %s", pt_last_error());
        EXPECT(pt_memory_stream(ctx, 0, b, NULL, 12, &s) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "multiple of 8"), "12 bytes: %s", pt_last_error());
        EXPECT(pt_memory_stream(ctx, 1, b, b + 8, 16, NULL) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "overlap"), "overlap: %s", pt_last_error());
        EXPECT(pt_memory_stream(ctx, 1, b, NULL, 8, NULL) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "dst is NULL"), "dst NULL: %s", pt_last_error());
        EXPECT(pt_memory_stream(ctx, 0, NULL, NULL, 8, &s) == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "src is NULL"), "src NULL: %s", pt_last_error());
        pt_ctx_destroy(ctx);
    }
    return pt_test_finish("test_stream");
}
