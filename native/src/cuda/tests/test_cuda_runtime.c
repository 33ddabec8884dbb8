/* libpanatron_cuda runtime: device info, caching allocator, host<->device copies, errors. */
#include "cuda_test_util.h"

int main(void) {
    skip_without_gpu("test_cuda_runtime");
    pt_test_seed(7);
    int32_t n = 0;
    EXPECT_CUDA_OK(pt_cuda_device_count(&n));
    pt_cuda_device_info info;
    EXPECT_CUDA_OK(pt_cuda_device_info_get(0, &info));
    printf("device 0: %s, cc %d.%d, %d SMs, %.1f GiB (%.1f free), L2 %d KiB, driver %d, runtime %d\n", info.name,
           info.cc_major, info.cc_minor, info.sm_count, info.total_mem / 1073741824.0, info.free_mem / 1073741824.0,
           info.l2_bytes / 1024, info.driver_version, info.runtime_version);
    EXPECT(info.name[0] != 0 && info.sm_count > 0 && info.total_mem > 0 && info.cc_major >= 5, "device info filled");
    EXPECT(pt_cuda_device_info_get(n, &info) == PT_ERR_INVALID_ARGUMENT, "device out of range");
    EXPECT(strstr(pt_cuda_last_error(), "device") != NULL, "message names the device: %s", pt_cuda_last_error());

    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_runtime");
    void* stream = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_stream(ctx, &stream));
    EXPECT(stream != NULL, "own stream");

    /* round trips of odd sizes, one larger than the 8 MiB staging halves */
    static const size_t sizes[] = {1, 7, 4097, 1000003, (size_t)21 << 20 | 13};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t bytes = sizes[i];
        unsigned char* h = malloc(bytes);
        unsigned char* back = malloc(bytes);
        for (size_t j = 0; j < bytes; j++) h[j] = (unsigned char)(pt_test_uniform(0, 256));
        memset(back, 0x5a, bytes);
        void *d = NULL, *d2 = NULL;
        EXPECT_CUDA_OK(pt_cuda_malloc(ctx, bytes, &d));
        EXPECT_CUDA_OK(pt_cuda_malloc(ctx, bytes, &d2));
        EXPECT(((uintptr_t)d & 255) == 0, "256-byte aligned");
        EXPECT_CUDA_OK(pt_cuda_memset(ctx, d2, 0xff, bytes));
        EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, d, h, bytes));
        EXPECT_CUDA_OK(pt_cuda_memcpy_d2d(ctx, d2, d, bytes));
        EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, back, d2, bytes));
        EXPECT(memcmp(h, back, bytes) == 0, "round trip of %zu bytes", bytes);
        EXPECT_CUDA_OK(pt_cuda_free(ctx, d));
        EXPECT_CUDA_OK(pt_cuda_free(ctx, d2));
        free(h);
        free(back);
    }
    /* the cache hands a freed block back for the same size */
    void *a = NULL, *b = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 3 << 20, &a));
    EXPECT_CUDA_OK(pt_cuda_free(ctx, a));
    int64_t in_use = -1, cached = -1;
    EXPECT_CUDA_OK(pt_cuda_memory_stats(ctx, &in_use, &cached));
    EXPECT(in_use == 0 && cached >= (3 << 20), "stats after free: in_use %lld cached %lld", (long long)in_use, (long long)cached);
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 3 << 20, &b));
    EXPECT(a == b, "cached block reused");
    EXPECT_CUDA_OK(pt_cuda_free(ctx, b));
    EXPECT_CUDA_OK(pt_cuda_empty_cache(ctx));
    EXPECT_CUDA_OK(pt_cuda_memory_stats(ctx, &in_use, &cached));
    EXPECT(cached == 0, "empty_cache releases everything (%lld left)", (long long)cached);
    void* z = (void*)1;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 0, &z));
    EXPECT(z == NULL, "0 bytes gives NULL");

    /* events around a copy: a positive elapsed time */
    {
        void *e0 = NULL, *e1 = NULL, *d = NULL;
        EXPECT_CUDA_OK(pt_cuda_event_create(ctx, &e0));
        EXPECT_CUDA_OK(pt_cuda_event_create(ctx, &e1));
        EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 64 << 20, &d));
        EXPECT_CUDA_OK(pt_cuda_event_record(ctx, e0));
        EXPECT_CUDA_OK(pt_cuda_memset(ctx, d, 1, 64 << 20));
        EXPECT_CUDA_OK(pt_cuda_event_record(ctx, e1));
        float ms = -1;
        EXPECT_CUDA_OK(pt_cuda_event_elapsed_ms(ctx, e0, e1, &ms));
        EXPECT(ms > 0 && ms < 1000, "elapsed %g ms", ms);
        EXPECT_CUDA_OK(pt_cuda_free(ctx, d));
        EXPECT_CUDA_OK(pt_cuda_event_destroy(ctx, e0));
        EXPECT_CUDA_OK(pt_cuda_event_destroy(ctx, e1));
    }

    /* errors */
    int x = 0;
    EXPECT(pt_cuda_free(ctx, &x) == PT_ERR_INVALID_ARGUMENT, "foreign pointer");
    EXPECT(pt_cuda_malloc(NULL, 16, &z) == PT_ERR_INVALID_ARGUMENT, "NULL ctx");
    EXPECT(pt_cuda_malloc(ctx, (size_t)1 << 50, &z) == PT_ERR_OUT_OF_MEMORY, "1 PiB is out of memory: %s", pt_cuda_last_error());
    EXPECT(strstr(pt_cuda_last_error(), "cudaMalloc") != NULL, "message names the call: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_memcpy_h2d(ctx, NULL, &x, 4) == PT_ERR_INVALID_ARGUMENT, "NULL dst");
    pt_cuda_ctx_params bad = {999, 0, 0, NULL};
    pt_cuda_ctx* c2 = NULL;
    EXPECT(pt_cuda_ctx_create(&bad, &c2) == PT_ERR_INVALID_ARGUMENT && c2 == NULL, "bad device ordinal");
    EXPECT_CUDA_OK(pt_cuda_synchronize(ctx));
    EXPECT_CUDA_OK(pt_cuda_ctx_destroy(ctx));
    EXPECT_CUDA_OK(pt_cuda_ctx_destroy(NULL));
    return pt_test_finish("test_cuda_runtime");
}
