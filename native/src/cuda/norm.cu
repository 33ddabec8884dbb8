/* pt_cuda_layer_norm: LayerNorm over the last dim, one warp per row, statistics in f32. */
#include "cuda_common.cuh"
#include "cuda_elem.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

namespace {

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

constexpr int WARPS = 8;

/* Two passes for the statistics (mean, then the centred sum of squares) as the CPU kernel; the
 * row is re-read from L1/L2. out may alias x: each element is read by the thread that writes it. */
template <typename T>
__global__ void __launch_bounds__(WARPS * 32) ln_kernel(const T* x, const float* gamma, const float* beta, T* out,
                                                       int64_t rows, int64_t cols, float eps) {
    int64_t row = (int64_t)blockIdx.x * WARPS + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    const T* xr = x + row * cols;
    T* orow = out + row * cols;
    float s = 0.f;
    for (int64_t j = lane; j < cols; j += 32) s += ldf(xr + j);
    const float mean = warp_sum(s) / (float)cols;
    float v = 0.f;
    for (int64_t j = lane; j < cols; j += 32) {
        float d = ldf(xr + j) - mean;
        v += d * d;
    }
    const float rstd = 1.0f / sqrtf(warp_sum(v) / (float)cols + eps);
    for (int64_t j = lane; j < cols; j += 32) {
        float y = (ldf(xr + j) - mean) * rstd * gamma[j];
        if (beta) y += beta[j];
        stf(orow + j, y);
    }
}

bool contiguous(const pt_tensor* t) {
    int64_t want = (int64_t)pt_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] > 1 && t->stride[i] != want) return false;
        want *= t->shape[i];
    }
    return true;
}

}  // namespace

extern "C" PT_API pt_status pt_cuda_layer_norm(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* gamma,
                                               const pt_tensor* beta, float eps, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_layer_norm"));
    static const int32_t dts[] = {PT_F32, PT_F16, PT_BF16};
    static const int32_t f32[] = {PT_F32};
    PT_CHECK(pt_cuda_check_tensor(x, "pt_cuda_layer_norm x", 1, PT_MAX_DIMS, 3, dts));
    PT_CHECK(pt_cuda_check_tensor(out, "pt_cuda_layer_norm out", 1, PT_MAX_DIMS, 3, dts));
    PT_CHECK(pt_cuda_check_tensor(gamma, "pt_cuda_layer_norm gamma", 1, 1, 1, f32));
    if (beta) PT_CHECK(pt_cuda_check_tensor(beta, "pt_cuda_layer_norm beta", 1, 1, 1, f32));
    char dx[96], dout[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(out, dout, sizeof dout);
    if (out->dtype != x->dtype)
        return pt_fail(PT_ERR_DTYPE, "pt_cuda_layer_norm: out %s must have the dtype of x %s", dout, dx);
    bool same = out->ndim == x->ndim;
    for (int i = 0; same && i < x->ndim; i++) same = out->shape[i] == x->shape[i];
    if (!same) return pt_fail(PT_ERR_SHAPE, "pt_cuda_layer_norm: out %s must have the shape of x %s", dout, dx);
    if (!contiguous(x) || !contiguous(out))
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_layer_norm: x %s and out %s must be contiguous", dx, dout);
    const int64_t cols = x->shape[x->ndim - 1];
    int64_t rows = 1;
    for (int i = 0; i < x->ndim - 1; i++) rows *= x->shape[i];
    if (gamma->shape[0] != cols || (beta && beta->shape[0] != cols))
        return pt_fail(PT_ERR_SHAPE, "pt_cuda_layer_norm: gamma [%lld] and beta [%lld] must have cols = %lld elements (x %s)",
                       (long long)gamma->shape[0], beta ? (long long)beta->shape[0] : (long long)cols, (long long)cols, dx);
    if (!(eps >= 0.0f) || isinf(eps))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_layer_norm: eps %g must be finite and >= 0", (double)eps);
    if (rows == 0 || cols == 0) return PT_OK;
    const int64_t blocks = (rows + WARPS - 1) / WARPS;
    if (blocks > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "pt_cuda_layer_norm: too many rows (x %s)", dx);
    const float* g = (const float*)gamma->data;
    const float* b = beta ? (const float*)beta->data : nullptr;
    dim3 grid((unsigned)blocks), block(WARPS * 32);
    switch (x->dtype) {
    case PT_F32:
        ln_kernel<float><<<grid, block, 0, ctx->stream>>>((const float*)x->data, g, b, (float*)out->data, rows, cols, eps);
        break;
    case PT_F16:
        ln_kernel<__half><<<grid, block, 0, ctx->stream>>>((const __half*)x->data, g, b, (__half*)out->data, rows, cols, eps);
        break;
    default:
        ln_kernel<__nv_bfloat16><<<grid, block, 0, ctx->stream>>>((const __nv_bfloat16*)x->data, g, b,
                                                                  (__nv_bfloat16*)out->data, rows, cols, eps);
        break;
    }
    PT_CUDA_LAUNCH_CHECK("pt_cuda_layer_norm: launch");
    return PT_OK;
}
