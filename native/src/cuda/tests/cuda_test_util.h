/* Helpers for the CUDA tests: skip without a GPU, 16-bit conversions, device buffers. */
#ifndef PT_CUDA_TEST_UTIL_H
#define PT_CUDA_TEST_UTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pt_test.h"

#define EXPECT_CUDA_OK(call)                                                             \
    do {                                                                                 \
        pt_status s_ = (call);                                                           \
        EXPECT(s_ == PT_OK, "%s returned %d: %s", #call, (int)s_, pt_cuda_last_error()); \
    } while (0)

/* Exits 0 with a 'skipped' line when no CUDA device (or driver) is present. */
static inline void skip_without_gpu(const char* name) {
    int32_t n = 0;
    pt_status s = pt_cuda_device_count(&n);
    if (s != PT_OK || n == 0) {
        printf("%s: skipped (no CUDA device: %s)\n", name, s != PT_OK ? pt_cuda_last_error() : "0 devices");
        exit(0);
    }
}

static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline float h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, u;
    if (e == 0) {
        float f = ldexpf((float)m, -24);
        return sign ? -f : f;
    }
    if (e == 31) u = sign | 0x7f800000u | (m << 13);
    else u = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint16_t f2h(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);
    if (a < 0x38800000u) {
        float af;
        memcpy(&af, &a, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(af * 16777216.0f));
    }
    uint32_t mant = a & 0x7fffff, e = (a >> 23) - 112, h = (e << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

/* value of x rounded to dtype (f32: unchanged) */
static inline float round_to(float x, int32_t dtype) {
    return dtype == PT_BF16 ? bf2f(f2bf(x)) : dtype == PT_F16 ? h2f(f2h(x)) : x;
}
/* host array of n floats -> n elements of dtype in `dst` (2 or 4 bytes each) */
static inline void pack_host(const float* src, size_t n, int32_t dtype, void* dst) {
    for (size_t i = 0; i < n; i++) {
        if (dtype == PT_F32) ((float*)dst)[i] = src[i];
        else ((uint16_t*)dst)[i] = dtype == PT_BF16 ? f2bf(src[i]) : f2h(src[i]);
    }
}
static inline void unpack_host(const void* src, size_t n, int32_t dtype, float* dst) {
    for (size_t i = 0; i < n; i++)
        dst[i] = dtype == PT_F32 ? ((const float*)src)[i] : dtype == PT_BF16 ? bf2f(((const uint16_t*)src)[i]) : h2f(((const uint16_t*)src)[i]);
}

/* Contiguous device tensor descriptor. */
static inline pt_tensor dev_tensor(void* data, int32_t dtype, int ndim, const int64_t* shape) {
    pt_tensor t = pt_test_tensor(data, dtype, ndim, shape);
    t.device = PT_DEVICE_CUDA;
    return t;
}

/* Uploads n floats as dtype into a new device buffer. */
static inline void* upload(pt_cuda_ctx* ctx, const float* x, size_t n, int32_t dtype) {
    size_t es = dtype == PT_F32 ? 4 : 2;
    void* host = malloc(n * es + 1);
    pack_host(x, n, dtype, host);
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, n * es + 16, &d));
    EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, d, host, n * es));
    free(host);
    return d;
}
/* Allocates n elements of dtype poisoned with NaN (0xff bytes). */
static inline void* alloc_poisoned(pt_cuda_ctx* ctx, size_t n, int32_t dtype) {
    size_t es = dtype == PT_F32 ? 4 : 2;
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, n * es + 16, &d));
    EXPECT_CUDA_OK(pt_cuda_memset(ctx, d, 0xff, n * es));
    return d;
}
static inline void download(pt_cuda_ctx* ctx, const void* d, size_t n, int32_t dtype, float* out) {
    size_t es = dtype == PT_F32 ? 4 : 2;
    void* host = malloc(n * es + 1);
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, host, d, n * es));
    unpack_host(host, n, dtype, out);
    free(host);
}
static inline const char* dtname(int32_t d) { return d == PT_F32 ? "f32" : d == PT_BF16 ? "bf16" : d == PT_F16 ? "f16" : "?"; }
#endif
