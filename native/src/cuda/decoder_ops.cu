/* The decoder ops of libpanatron_cuda (issue 7, items 7 and 9): embedding gather, residual add
 * fused with LayerNorm/RMSNorm, RoPE + KV-cache append, SwiGLU, greedy argmax, and CUDA graph
 * capture of a decode step. Activations bf16 (the residual stream f32), math in f32. */
#include "cuda_common.cuh"
#include "cuda_elem.cuh"

#include <cuda_bf16.h>
#include <math.h>

#include <new>

namespace {

typedef __nv_bfloat16 bf16;

constexpr int THREADS = 256;

/* Sum over the block (THREADS threads); every thread gets the result. */
__device__ __forceinline__ float block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float s = 0.f;
    for (int i = 0; i < THREADS / 32; i++) s += red[i];
    return s;
}

/* out[t, :] = table[ids[t], :] (+ pos_table[pos[t], :]); an id or position out of range gives NaN. */
template <typename T>
__global__ void __launch_bounds__(THREADS) embed_kernel(const T* table, int64_t vocab, const int32_t* ids, const T* ptab,
                                                       int64_t npos, const int32_t* pos, float* out, int64_t h) {
    const int64_t t = blockIdx.x;
    const int32_t id = ids[t];
    const bool ok = id >= 0 && id < vocab;
    int32_t p = 0;
    bool pok = true;
    if (ptab) {
        p = pos[t];
        pok = p >= 0 && p < npos;
    }
    float* o = out + t * h;
    for (int64_t j = threadIdx.x; j < h; j += THREADS) {
        float v = ok && pok ? ldf(table + (int64_t)id * h + j) : __int_as_float(0x7fc00000);
        if (ptab && ok && pok) v += ldf(ptab + (int64_t)p * h + j);
        o[j] = v;
    }
}

/* x += delta (when given); out = norm(x) * gamma (+ beta). mode 0 LayerNorm (two-pass
 * statistics), 1 RMSNorm. One block per row; each thread re-reads only what it wrote. */
template <typename TO>
__global__ void __launch_bounds__(THREADS) add_norm_kernel(float* x, const bf16* delta, const float* gamma, const float* beta,
                                                          TO* out, int64_t h, int mode, float eps) {
    __shared__ float red[THREADS / 32];
    const int64_t r = blockIdx.x;
    float* xr = x + r * h;
    const bf16* dr = delta ? delta + r * h : nullptr;
    float s = 0.f, ss = 0.f;
    for (int64_t j = threadIdx.x; j < h; j += THREADS) {
        float v = xr[j];
        if (dr) {
            v += __bfloat162float(dr[j]);
            xr[j] = v;
        }
        s += v;
        ss += v * v;
    }
    float mean = 0.f, rstd;
    if (mode == 0) {
        mean = block_sum(s, red) / (float)h;
        float var = 0.f;
        for (int64_t j = threadIdx.x; j < h; j += THREADS) {
            float d = xr[j] - mean;
            var += d * d;
        }
        rstd = rsqrtf(block_sum(var, red) / (float)h + eps);
    } else {
        rstd = rsqrtf(block_sum(ss, red) / (float)h + eps);
    }
    TO* orow = out + r * h;
    for (int64_t j = threadIdx.x; j < h; j += THREADS) {
        float y = (xr[j] - mean) * rstd * gamma[j];
        if (beta) y += beta[j];
        stf(orow + j, y);
    }
}

/* Row t of qkv = [q (hq*D) | k (hkv*D) | v (hkv*D)] of sequence b = t / (T/B) at position
 * pos[t]: q rotated in place, k rotated and v copied into the caches [B, Hkv, S, D] at row pos[t],
 * seqlens[b] = max(seqlens[b], pos[t] + 1). RoPE in the NeoX / HF rotate_half layout (pairs
 * i, i + D/2), angle = pos * inv_freq[i] in f32 as HF. */
__global__ void __launch_bounds__(THREADS) rope_append_kernel(bf16* qkv, int64_t row_stride, const int32_t* pos, const float* inv_freq,
                                                             bf16* kc, bf16* vc, int64_t kb, int64_t kh, int64_t kr, int64_t vb,
                                                             int64_t vh, int64_t vr, int32_t* seqlens, int hq, int hkv, int d,
                                                             int rows_per_seq, int smax, const int32_t* bt, int64_t bt_batch,
                                                             int log2_bs, int num_blocks) {
    const int t = blockIdx.x;
    const int b = t / rows_per_seq;
    const int p = pos[t];
    /* contiguous: row p of the (b) cache; paged (bt): row p % bs of block bt[b, p / bs], and
     * kb / vb are the strides of one physical block (smax = max_blocks * bs) */
    bool in = p >= 0 && p < smax;
    int64_t ko = 0, vo = 0;
    if (in && bt) {
        const int phys = bt[(int64_t)b * bt_batch + (p >> log2_bs)];
        const int r = p & ((1 << log2_bs) - 1);
        in = (unsigned)phys < (unsigned)num_blocks;
        ko = (int64_t)phys * kb + (int64_t)r * kr;
        vo = (int64_t)phys * vb + (int64_t)r * vr;
    } else if (in) {
        ko = (int64_t)b * kb + (int64_t)p * kr;
        vo = (int64_t)b * vb + (int64_t)p * vr;
    }
    bf16* row = qkv + (int64_t)t * row_stride;
    const int half = d / 2;
    if (threadIdx.x == 0 && seqlens && in) atomicMax(seqlens + b, p + 1);
    /* q and k: (hq + hkv) heads x half pairs */
    const int pairs = (hq + hkv) * half;
    for (int i = threadIdx.x; i < pairs; i += THREADS) {
        const int head = i / half, j = i - head * half;
        bf16* src = row + (int64_t)head * d;
        float x1 = __bfloat162float(src[j]), x2 = __bfloat162float(src[j + half]);
        float y1 = x1, y2 = x2;
        if (inv_freq) {
            float sn, cs;
            sincosf((float)p * inv_freq[j], &sn, &cs);
            y1 = x1 * cs - x2 * sn;
            y2 = x2 * cs + x1 * sn;
        }
        if (head < hq) {
            if (inv_freq) {
                src[j] = __float2bfloat16_rn(y1);
                src[j + half] = __float2bfloat16_rn(y2);
            }
        } else if (in) {
            bf16* dst = kc + ko + (int64_t)(head - hq) * kh;
            dst[j] = __float2bfloat16_rn(y1);
            dst[j + half] = __float2bfloat16_rn(y2);
        }
    }
    if (!in) return;
    const bf16* vsrc = row + (int64_t)(hq + hkv) * d;
    for (int i = threadIdx.x; i < hkv * d; i += THREADS) {
        const int head = i / d, j = i - head * d;
        vc[vo + (int64_t)head * vh + j] = vsrc[i];
    }
}

/* out[t, j] = silu(gu[t, j]) * gu[t, I + j], in f32. */
__global__ void __launch_bounds__(THREADS) swiglu_kernel(const bf16* gu, int64_t gu_stride, bf16* out, int64_t out_stride, int64_t inter) {
    const int64_t t = blockIdx.y;
    const bf16* g = gu + t * gu_stride;
    for (int64_t j = (int64_t)blockIdx.x * THREADS + threadIdx.x; j < inter; j += (int64_t)gridDim.x * THREADS) {
        float a = __bfloat162float(g[j]), u = __bfloat162float(g[inter + j]);
        out[t * out_stride + j] = __float2bfloat16_rn(a / (1.0f + expf(-a)) * u);
    }
}

/* ids[b] = the first index of the largest logit of row b (NaN never wins; an all-NaN row gives 0);
 * pos[b] += 1 when pos is given. */
__global__ void __launch_bounds__(THREADS) argmax_kernel(const float* logits, int64_t stride, int64_t v, int32_t* ids, int32_t* pos) {
    __shared__ float bv[THREADS / 32];
    __shared__ int64_t bi[THREADS / 32];
    const float* row = logits + (int64_t)blockIdx.x * stride;
    float best = -INFINITY;
    int64_t idx = INT64_MAX;
    for (int64_t j = threadIdx.x; j < v; j += THREADS) {
        float x = row[j];
        if (x > best || (x == best && j < idx)) {
            best = x;
            idx = j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ob = __shfl_xor_sync(0xffffffffu, best, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ob > best || (ob == best && oi < idx)) {
            best = ob;
            idx = oi;
        }
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    if (lane == 0) {
        bv[warp] = best;
        bi[warp] = idx;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < THREADS / 32; w++) {
            if (bv[w] > best || (bv[w] == best && bi[w] < idx)) {
                best = bv[w];
                idx = bi[w];
            }
        }
        ids[blockIdx.x] = idx == INT64_MAX ? 0 : (int32_t)idx;
        if (pos) pos[blockIdx.x] += 1;
    }
}


/* y[m, n] = act(sum_k x[m, k] w[n, k] + bias[n]) for M <= 8 rows (decode): memory-bound, one warp
 * per output channel reading its weight row in 16-byte chunks (512 contiguous bytes per warp and
 * step), x from L1/L2, f32 sums reduced over the warp. */
__device__ __forceinline__ void unpack8(const uint4& u, float* f) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 t = __bfloat1622float2(h[i]);
        f[2 * i] = t.x;
        f[2 * i + 1] = t.y;
    }
}

constexpr int GEMV_WARPS = 8;

/* XK: 0 = x bf16 as is; 1 = LayerNorm(x f32), 2 = RMSNorm(x f32), the row statistics computed by
 * every block (x rows are short: K floats from L2). OK: 0 = out bf16, 1 = out f32, 2 = out f32 +=
 * (residual add). All threads take part in the statistics before warps past N leave. */
template <int M, int XK, int OK>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(const void* __restrict__ xv, int64_t ldx, const float* __restrict__ gamma,
                                                              const float* __restrict__ beta, float eps, const bf16* __restrict__ w,
                                                              int64_t k_len, int64_t n_len, const void* bias, int bias_f32, void* outv,
                                                              int64_t ldo, int act) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x & 31;
    __shared__ float mean_s[M > 0 ? M : 1], rstd_s[M > 0 ? M : 1];
    __shared__ float red[GEMV_WARPS][M > 0 ? M : 1];
    if (XK != 0) {
        const float* x = (const float*)xv;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 0 && XK == 2) {
                if (threadIdx.x < M) mean_s[threadIdx.x] = 0.f;
                __syncthreads();
                continue;
            }
            float part[M];
#pragma unroll
            for (int m = 0; m < M; m++) {
                part[m] = 0.f;
                const float mu = pass == 0 ? 0.f : mean_s[m];
                for (int64_t k = threadIdx.x; k < k_len; k += GEMV_WARPS * 32) {
                    float v = x[m * ldx + k];
                    part[m] += pass == 0 ? v : (v - mu) * (v - mu);
                }
#pragma unroll
                for (int o = 16; o > 0; o >>= 1) part[m] += __shfl_xor_sync(0xffffffffu, part[m], o);
                if (lane == 0) red[warp][m] = part[m];
            }
            __syncthreads();
            if (threadIdx.x < M) {
                float t = 0.f;
                for (int i = 0; i < GEMV_WARPS; i++) t += red[i][threadIdx.x];
                if (pass == 0) mean_s[threadIdx.x] = t / (float)k_len;
                else rstd_s[threadIdx.x] = rsqrtf(t / (float)k_len + eps);
            }
            __syncthreads();
        }
    }
    const int64_t n = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    if (n >= n_len) return;
    const bf16* wr = w + n * k_len;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
#pragma unroll 4
    for (int64_t k = (int64_t)lane * 8; k < k_len; k += 256) {
        uint4 wq = __ldcs(reinterpret_cast<const uint4*>(wr + k)); /* streamed once: do not keep in L1/L2 */
        float wf[8];
        unpack8(wq, wf);
        float g[8], bt[8];
        if (XK != 0) {
            *reinterpret_cast<float4*>(g) = *reinterpret_cast<const float4*>(gamma + k);
            *reinterpret_cast<float4*>(g + 4) = *reinterpret_cast<const float4*>(gamma + k + 4);
            if (XK == 1 && beta) {
                *reinterpret_cast<float4*>(bt) = *reinterpret_cast<const float4*>(beta + k);
                *reinterpret_cast<float4*>(bt + 4) = *reinterpret_cast<const float4*>(beta + k + 4);
            } else {
#pragma unroll
                for (int i = 0; i < 8; i++) bt[i] = 0.f;
            }
        }
#pragma unroll
        for (int m = 0; m < M; m++) {
            float xf[8];
            if (XK == 0) {
                uint4 xq = *reinterpret_cast<const uint4*>((const bf16*)xv + m * ldx + k);
                unpack8(xq, xf);
            } else {
                const float* xr = (const float*)xv + m * ldx + k;
                *reinterpret_cast<float4*>(xf) = *reinterpret_cast<const float4*>(xr);
                *reinterpret_cast<float4*>(xf + 4) = *reinterpret_cast<const float4*>(xr + 4);
                const float mu = mean_s[m], rs = rstd_s[m];
#pragma unroll
                for (int i = 0; i < 8; i++) xf[i] = (xf[i] - mu) * rs * g[i] + bt[i];
            }
#pragma unroll
            for (int i = 0; i < 8; i++) acc[m] = fmaf(xf[i], wf[i], acc[m]);
        }
    }
#pragma unroll
    for (int m = 0; m < M; m++) {
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) acc[m] += __shfl_xor_sync(0xffffffffu, acc[m], o);
    }
    if (lane < M) {
        float y = 0.f;
#pragma unroll
        for (int m = 0; m < M; m++) if (m == lane) y = acc[m];
        if (bias) y += bias_f32 ? ((const float*)bias)[n] : __bfloat162float(((const bf16*)bias)[n]);
        if (act == PT_ACT_GELU_TANH) y = 0.5f * y * (1.0f + tanhf(0.79788456080286536f * (y + 0.044715f * y * y * y)));
        if (OK == 0) stf((bf16*)outv + lane * ldo + n, y);
        else if (OK == 1) ((float*)outv)[lane * ldo + n] = y;
        else ((float*)outv)[lane * ldo + n] += y;
    }
}

template <int XK, int OK>
cudaError_t gemv_launch(int m, unsigned blocks, cudaStream_t st, const void* x, int64_t ldx, const float* gamma, const float* beta, float eps,
                        const bf16* w, int64_t k, int64_t n, const void* bias, int bias_f32, void* out, int64_t ldo, int act) {
    switch (m) {
#define PT_GEMV(M) \
    case M: gemv_kernel<M, XK, OK><<<blocks, GEMV_WARPS * 32, 0, st>>>(x, ldx, gamma, beta, eps, w, k, n, bias, bias_f32, out, ldo, act); break;
        PT_GEMV(1) PT_GEMV(2) PT_GEMV(3) PT_GEMV(4) PT_GEMV(5) PT_GEMV(6) PT_GEMV(7) PT_GEMV(8)
#undef PT_GEMV
    default: break;
    }
    return cudaGetLastError();
}

bool contiguous(const pt_tensor* t) {
    int64_t want = (int64_t)pt_dtype_size(t->dtype);
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] > 1 && t->stride[i] != want) return false;
        want *= t->shape[i];
    }
    return true;
}

int64_t el(const pt_tensor* t, int d) { return t->stride[d] / (int64_t)pt_dtype_size(t->dtype); }

const int32_t BF16_ONLY[] = {PT_BF16};
const int32_t I32_ONLY[] = {PT_I32};
const int32_t F32_ONLY[] = {PT_F32};

pt_status need_shape(const pt_tensor* t, const char* fn, const char* what, int ndim, const int64_t* shape, const char* contract) {
    bool ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return PT_OK;
    char dt[96];
    pt_describe(t, dt, sizeof dt);
    return pt_fail(PT_ERR_SHAPE, "%s: %s %s must be %s", fn, what, dt, contract);
}

}  // namespace

/* ---------------------------------------------------------------- embedding */

extern "C" PT_API pt_status pt_cuda_embedding(pt_cuda_ctx* ctx, const pt_tensor* table, const pt_tensor* ids,
                                              const pt_tensor* pos_table, const pt_tensor* pos, pt_tensor* out) {
    pt_clear_error();
    const char* fn = "pt_cuda_embedding";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    static const int32_t tdt[] = {PT_BF16, PT_F32};
    PT_CHECK(pt_cuda_check_tensor(table, "pt_cuda_embedding table", 2, 2, 2, tdt));
    PT_CHECK(pt_cuda_check_tensor(ids, "pt_cuda_embedding ids", 1, 1, 1, I32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(out, "pt_cuda_embedding out", 2, 2, 1, F32_ONLY));
    const int64_t T = ids->shape[0], H = table->shape[1];
    int64_t os[2] = {T, H};
    PT_CHECK(need_shape(out, fn, "out", 2, os, "[T, H] for ids [T] and table [V, H]"));
    if ((pos_table == NULL) != (pos == NULL))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: pos_table and pos must be given together (got %s and %s)", fn,
                       pos_table ? "a table" : "NULL", pos ? "positions" : "NULL");
    if (pos_table) {
        PT_CHECK(pt_cuda_check_tensor(pos_table, "pt_cuda_embedding pos_table", 2, 2, 2, tdt));
        PT_CHECK(pt_cuda_check_tensor(pos, "pt_cuda_embedding pos", 1, 1, 1, I32_ONLY));
        if (pos_table->dtype != table->dtype || pos_table->shape[1] != H || pos->shape[0] != T) {
            char a[96], b[96];
            pt_describe(pos_table, a, sizeof a);
            pt_describe(pos, b, sizeof b);
            return pt_fail(PT_ERR_SHAPE, "%s: pos_table %s must be [P, %lld] of the table's dtype and pos %s [%lld]", fn, a,
                           (long long)H, b, (long long)T);
        }
        if (!contiguous(pos_table) || !contiguous(pos))
            return pt_fail(PT_ERR_SHAPE, "%s: pos_table and pos must be contiguous", fn);
    }
    if (!contiguous(table) || !contiguous(ids) || !contiguous(out))
        return pt_fail(PT_ERR_SHAPE, "%s: table, ids and out must be contiguous", fn);
    if (T == 0 || H == 0) return PT_OK;
    if (T > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: too many ids (%lld)", fn, (long long)T);
    const int64_t npos = pos_table ? pos_table->shape[0] : 0;
    if (table->dtype == PT_BF16)
        embed_kernel<bf16><<<(unsigned)T, THREADS, 0, ctx->stream>>>((const bf16*)table->data, table->shape[0], (const int32_t*)ids->data,
                                                                    pos_table ? (const bf16*)pos_table->data : nullptr, npos,
                                                                    pos ? (const int32_t*)pos->data : nullptr, (float*)out->data, H);
    else
        embed_kernel<float><<<(unsigned)T, THREADS, 0, ctx->stream>>>((const float*)table->data, table->shape[0], (const int32_t*)ids->data,
                                                                     pos_table ? (const float*)pos_table->data : nullptr, npos,
                                                                     pos ? (const int32_t*)pos->data : nullptr, (float*)out->data, H);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_embedding: launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- residual add + norm */

extern "C" PT_API pt_status pt_cuda_add_norm(pt_cuda_ctx* ctx, pt_tensor* x, const pt_tensor* delta, const pt_tensor* gamma,
                                             const pt_tensor* beta, int32_t mode, float eps, pt_tensor* out) {
    pt_clear_error();
    const char* fn = "pt_cuda_add_norm";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    static const int32_t odt[] = {PT_BF16, PT_F32};
    PT_CHECK(pt_cuda_check_tensor(x, "pt_cuda_add_norm x", 2, 2, 1, F32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(gamma, "pt_cuda_add_norm gamma", 1, 1, 1, F32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(out, "pt_cuda_add_norm out", 2, 2, 2, odt));
    const int64_t R = x->shape[0], H = x->shape[1];
    int64_t xs[2] = {R, H}, hs[1] = {H};
    PT_CHECK(need_shape(out, fn, "out", 2, xs, "[R, H], the shape of x"));
    PT_CHECK(need_shape(gamma, fn, "gamma", 1, hs, "[H] for x [R, H]"));
    if (delta) {
        PT_CHECK(pt_cuda_check_tensor(delta, "pt_cuda_add_norm delta", 2, 2, 1, BF16_ONLY));
        PT_CHECK(need_shape(delta, fn, "delta", 2, xs, "[R, H], the shape of x"));
        if (!contiguous(delta)) return pt_fail(PT_ERR_SHAPE, "%s: delta must be contiguous", fn);
    }
    if (beta) {
        PT_CHECK(pt_cuda_check_tensor(beta, "pt_cuda_add_norm beta", 1, 1, 1, F32_ONLY));
        PT_CHECK(need_shape(beta, fn, "beta", 1, hs, "[H] for x [R, H]"));
    }
    if (mode != 0 && mode != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: mode %d must be 0 (LayerNorm) or 1 (RMSNorm)", fn, mode);
    if (mode == 1 && beta) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: RMSNorm (mode 1) takes no beta", fn);
    if (!(eps >= 0.0f) || isinf(eps)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: eps %g must be finite and >= 0", fn, (double)eps);
    if (!contiguous(x) || !contiguous(out)) return pt_fail(PT_ERR_SHAPE, "%s: x and out must be contiguous", fn);
    if (R == 0 || H == 0) return PT_OK;
    if (R > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: too many rows (%lld)", fn, (long long)R);
    const bf16* d = delta ? (const bf16*)delta->data : nullptr;
    const float* b = beta ? (const float*)beta->data : nullptr;
    if (out->dtype == PT_BF16)
        add_norm_kernel<bf16><<<(unsigned)R, THREADS, 0, ctx->stream>>>((float*)x->data, d, (const float*)gamma->data, b, (bf16*)out->data, H,
                                                                       mode, eps);
    else
        add_norm_kernel<float><<<(unsigned)R, THREADS, 0, ctx->stream>>>((float*)x->data, d, (const float*)gamma->data, b, (float*)out->data,
                                                                        H, mode, eps);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_add_norm: launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- RoPE + KV append */

extern "C" PT_API pt_status pt_cuda_rope_kv_append(pt_cuda_ctx* ctx, pt_tensor* qkv, const pt_tensor* pos, const pt_tensor* inv_freq,
                                                   int32_t q_heads, pt_tensor* k_cache, pt_tensor* v_cache, pt_tensor* seqlens) {
    pt_clear_error();
    const char* fn = "pt_cuda_rope_kv_append";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    PT_CHECK(pt_cuda_check_tensor(qkv, "pt_cuda_rope_kv_append qkv", 2, 2, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(pos, "pt_cuda_rope_kv_append pos", 1, 1, 1, I32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(k_cache, "pt_cuda_rope_kv_append k_cache", 4, 4, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(v_cache, "pt_cuda_rope_kv_append v_cache", 4, 4, 1, BF16_ONLY));
    const int64_t T = qkv->shape[0], B = k_cache->shape[0], hkv = k_cache->shape[1], S = k_cache->shape[2], D = k_cache->shape[3];
    char dq[96], dk[96];
    pt_describe(qkv, dq, sizeof dq);
    pt_describe(k_cache, dk, sizeof dk);
    int64_t ks[4] = {B, hkv, S, D}, ts[1] = {T}, bs[1] = {B};
    PT_CHECK(need_shape(v_cache, fn, "v_cache", 4, ks, "[B, Hkv, S, D], the shape of k_cache"));
    PT_CHECK(need_shape(pos, fn, "pos", 1, ts, "[T] for qkv [T, (Hq + 2 Hkv) D]"));
    if (q_heads < 1 || q_heads % (hkv > 0 ? hkv : 1) != 0 || hkv < 1)
        return pt_fail(PT_ERR_SHAPE, "%s: q_heads %d must be a positive multiple of k_cache %s's Hkv", fn, q_heads, dk);
    if (D < 2 || D % 2 != 0 || D > 1024) return pt_fail(PT_ERR_SHAPE, "%s: head dim %lld of k_cache %s must be even, 2..1024", fn, (long long)D, dk);
    if (qkv->shape[1] != (q_heads + 2 * hkv) * D)
        return pt_fail(PT_ERR_SHAPE, "%s: qkv %s must be [T, (q_heads + 2 Hkv) D] = [T, %lld] for q_heads %d and k_cache %s", fn, dq,
                       (long long)((q_heads + 2 * hkv) * D), q_heads, dk);
    if (B < 1 || T % B != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: the rows of qkv %s must be a multiple of the cache batch %lld (rows t / (T/B) belong to sequence b)", fn,
                       dq, (long long)B);
    if (inv_freq) {
        PT_CHECK(pt_cuda_check_tensor(inv_freq, "pt_cuda_rope_kv_append inv_freq", 1, 1, 1, F32_ONLY));
        int64_t fs[1] = {D / 2};
        PT_CHECK(need_shape(inv_freq, fn, "inv_freq", 1, fs, "[D/2] of the cache's head dim"));
    }
    if (seqlens) {
        PT_CHECK(pt_cuda_check_tensor(seqlens, "pt_cuda_rope_kv_append seqlens", 1, 1, 1, I32_ONLY));
        PT_CHECK(need_shape(seqlens, fn, "seqlens", 1, bs, "[B] of the cache's batch"));
    }
    if (k_cache->stride[3] != 2 || v_cache->stride[3] != 2 || (pos->shape[0] > 1 && pos->stride[0] != 4))
        return pt_fail(PT_ERR_SHAPE, "%s: caches and pos must be innermost contiguous", fn);
    if (T == 0) return PT_OK;
    if (T > INT32_MAX || S > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: sizes too large (qkv %s, k_cache %s)", fn, dq, dk);
    rope_append_kernel<<<(unsigned)T, THREADS, 0, ctx->stream>>>(
        (bf16*)qkv->data, el(qkv, 0), (const int32_t*)pos->data, inv_freq ? (const float*)inv_freq->data : nullptr, (bf16*)k_cache->data,
        (bf16*)v_cache->data, el(k_cache, 0), el(k_cache, 1), el(k_cache, 2), el(v_cache, 0), el(v_cache, 1), el(v_cache, 2),
        seqlens ? (int32_t*)seqlens->data : nullptr, q_heads, (int)hkv, (int)D, (int)(T / B), (int)S, nullptr, 0, 0, 0);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_rope_kv_append: launch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_rope_kv_append_paged(pt_cuda_ctx* ctx, pt_tensor* qkv, const pt_tensor* pos, const pt_tensor* inv_freq,
                                                         int32_t q_heads, pt_tensor* k_pool, pt_tensor* v_pool,
                                                         const pt_tensor* block_table, pt_tensor* seqlens) {
    pt_clear_error();
    const char* fn = "pt_cuda_rope_kv_append_paged";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    PT_CHECK(pt_cuda_check_tensor(qkv, "pt_cuda_rope_kv_append_paged qkv", 2, 2, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(pos, "pt_cuda_rope_kv_append_paged pos", 1, 1, 1, I32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(k_pool, "pt_cuda_rope_kv_append_paged k_pool", 4, 4, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(v_pool, "pt_cuda_rope_kv_append_paged v_pool", 4, 4, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(block_table, "pt_cuda_rope_kv_append_paged block_table", 2, 2, 1, I32_ONLY));
    const int64_t T = qkv->shape[0], NB = k_pool->shape[0], hkv = k_pool->shape[1], BS = k_pool->shape[2], D = k_pool->shape[3];
    const int64_t B = block_table->shape[0], MB = block_table->shape[1];
    char dq[96], dk[96], dbt[96];
    pt_describe(qkv, dq, sizeof dq);
    pt_describe(k_pool, dk, sizeof dk);
    pt_describe(block_table, dbt, sizeof dbt);
    int64_t ks[4] = {NB, hkv, BS, D}, ts[1] = {T}, bs[1] = {B};
    PT_CHECK(need_shape(v_pool, fn, "v_pool", 4, ks, "[num_blocks, Hkv, block_size, D], the shape of k_pool"));
    PT_CHECK(need_shape(pos, fn, "pos", 1, ts, "[T] for qkv [T, (Hq + 2 Hkv) D]"));
    if (q_heads < 1 || hkv < 1 || q_heads % hkv != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: q_heads %d must be a positive multiple of k_pool %s's Hkv", fn, q_heads, dk);
    if (D < 2 || D % 2 != 0 || D > 1024) return pt_fail(PT_ERR_SHAPE, "%s: head dim %lld of k_pool %s must be even, 2..1024", fn, (long long)D, dk);
    if (BS < 1 || BS > 4096 || (BS & (BS - 1)) != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: block size %lld (dim 2 of k_pool %s) must be a power of two in 1..4096", fn, (long long)BS, dk);
    if (NB < 1 || NB > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: k_pool %s must hold 1 .. 2^31-1 blocks", fn, dk);
    if (MB < 1 || MB * BS > INT32_MAX / 2)
        return pt_fail(PT_ERR_SHAPE, "%s: block_table %s: max_blocks x block_size %lld must be in 1 .. 2^30 positions", fn, dbt, (long long)BS);
    if (qkv->shape[1] != (q_heads + 2 * hkv) * D)
        return pt_fail(PT_ERR_SHAPE, "%s: qkv %s must be [T, (q_heads + 2 Hkv) D] = [T, %lld] for q_heads %d and k_pool %s", fn, dq,
                       (long long)((q_heads + 2 * hkv) * D), q_heads, dk);
    if (B < 1 || T % B != 0)
        return pt_fail(PT_ERR_SHAPE, "%s: the rows of qkv %s must be a multiple of block_table %s's rows (rows t / (T/B) belong to sequence b)",
                       fn, dq, dbt);
    if (inv_freq) {
        PT_CHECK(pt_cuda_check_tensor(inv_freq, "pt_cuda_rope_kv_append_paged inv_freq", 1, 1, 1, F32_ONLY));
        int64_t fs[1] = {D / 2};
        PT_CHECK(need_shape(inv_freq, fn, "inv_freq", 1, fs, "[D/2] of the pool's head dim"));
    }
    if (seqlens) {
        PT_CHECK(pt_cuda_check_tensor(seqlens, "pt_cuda_rope_kv_append_paged seqlens", 1, 1, 1, I32_ONLY));
        PT_CHECK(need_shape(seqlens, fn, "seqlens", 1, bs, "[B], the rows of block_table"));
    }
    if (k_pool->stride[3] != 2 || v_pool->stride[3] != 2 || (pos->shape[0] > 1 && pos->stride[0] != 4) ||
        (MB > 1 && block_table->stride[1] != 4) || (B > 1 && block_table->stride[0] % 4 != 0))
        return pt_fail(PT_ERR_SHAPE, "%s: pools, pos and block_table %s must be innermost contiguous", fn, dbt);
    if (T == 0) return PT_OK;
    if (T > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: too many rows (qkv %s)", fn, dq);
    int log2_bs = 0;
    while ((1LL << log2_bs) < BS) log2_bs++;
    rope_append_kernel<<<(unsigned)T, THREADS, 0, ctx->stream>>>(
        (bf16*)qkv->data, el(qkv, 0), (const int32_t*)pos->data, inv_freq ? (const float*)inv_freq->data : nullptr, (bf16*)k_pool->data,
        (bf16*)v_pool->data, el(k_pool, 0), el(k_pool, 1), el(k_pool, 2), el(v_pool, 0), el(v_pool, 1), el(v_pool, 2),
        seqlens ? (int32_t*)seqlens->data : nullptr, q_heads, (int)hkv, (int)D, (int)(T / B), (int)(MB * BS),
        (const int32_t*)block_table->data, B > 1 ? block_table->stride[0] / 4 : 0, log2_bs, (int)NB);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_rope_kv_append_paged: launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- SwiGLU */

extern "C" PT_API pt_status pt_cuda_swiglu(pt_cuda_ctx* ctx, const pt_tensor* gate_up, pt_tensor* out) {
    pt_clear_error();
    const char* fn = "pt_cuda_swiglu";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    PT_CHECK(pt_cuda_check_tensor(gate_up, "pt_cuda_swiglu gate_up", 2, 2, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(out, "pt_cuda_swiglu out", 2, 2, 1, BF16_ONLY));
    const int64_t T = gate_up->shape[0], I = out->shape[1];
    if (out->shape[0] != T || gate_up->shape[1] != 2 * I) {
        char a[96], b[96];
        pt_describe(gate_up, a, sizeof a);
        pt_describe(out, b, sizeof b);
        return pt_fail(PT_ERR_SHAPE, "%s: gate_up %s must be [T, 2I] for out %s [T, I]", fn, a, b);
    }
    if (T == 0 || I == 0) return PT_OK;
    if (T > 65535) return pt_fail(PT_ERR_SHAPE, "%s: %lld rows (at most 65535)", fn, (long long)T);
    int64_t bx = (I + THREADS - 1) / THREADS;
    if (bx > 1024) bx = 1024;
    swiglu_kernel<<<dim3((unsigned)bx, (unsigned)T), THREADS, 0, ctx->stream>>>((const bf16*)gate_up->data, el(gate_up, 0), (bf16*)out->data,
                                                                               el(out, 0), I);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_swiglu: launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- argmax */

extern "C" PT_API pt_status pt_cuda_argmax(pt_cuda_ctx* ctx, const pt_tensor* logits, pt_tensor* ids, pt_tensor* pos) {
    pt_clear_error();
    const char* fn = "pt_cuda_argmax";
    PT_CHECK(pt_cuda_enter(ctx, fn));
    PT_CHECK(pt_cuda_check_tensor(logits, "pt_cuda_argmax logits", 2, 2, 1, F32_ONLY));
    PT_CHECK(pt_cuda_check_tensor(ids, "pt_cuda_argmax ids", 1, 1, 1, I32_ONLY));
    const int64_t B = logits->shape[0], V = logits->shape[1];
    int64_t bs[1] = {B};
    PT_CHECK(need_shape(ids, fn, "ids", 1, bs, "[B] for logits [B, V]"));
    if (pos) {
        PT_CHECK(pt_cuda_check_tensor(pos, "pt_cuda_argmax pos", 1, 1, 1, I32_ONLY));
        PT_CHECK(need_shape(pos, fn, "pos", 1, bs, "[B] for logits [B, V]"));
    }
    if (V == 0) return pt_fail(PT_ERR_SHAPE, "%s: logits have V = 0 columns", fn);
    if (B == 0) return PT_OK;
    if (B > INT32_MAX || V > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: logits too large", fn);
    argmax_kernel<<<(unsigned)B, THREADS, 0, ctx->stream>>>((const float*)logits->data, el(logits, 0), V, (int32_t*)ids->data,
                                                           pos ? (int32_t*)pos->data : nullptr);
    PT_CUDA_LAUNCH_CHECK("pt_cuda_argmax: launch");
    return PT_OK;
}

/* ---------------------------------------------------------------- GEMV (decode linears) */

/* Shared validation and dispatch of the three GEMV entry points. xk: 0 bf16 x, 1 LayerNorm, 2 RMSNorm
 * of f32 x; ok: 0 bf16 out, 1 f32 out, 2 f32 out accumulated. */
static pt_status gemv_common(pt_cuda_ctx* ctx, const char* fn, const pt_tensor* x, int xk, const pt_tensor* gamma, const pt_tensor* beta,
                             float eps, const pt_tensor* w, const pt_tensor* bias, pt_tensor* out, int accumulate, int32_t activation) {
    PT_CHECK(pt_cuda_enter(ctx, fn));
    static const int32_t odt[] = {PT_BF16, PT_F32};
    char wx[64], ww[64], wo[64], wb[64];
    snprintf(wx, sizeof wx, "%s x", fn);
    snprintf(ww, sizeof ww, "%s w", fn);
    snprintf(wo, sizeof wo, "%s out", fn);
    snprintf(wb, sizeof wb, "%s bias", fn);
    PT_CHECK(pt_cuda_check_tensor(x, wx, 2, 2, 1, xk ? F32_ONLY : BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(w, ww, 2, 2, 1, BF16_ONLY));
    PT_CHECK(pt_cuda_check_tensor(out, wo, 2, 2, accumulate ? 1 : 2, accumulate ? F32_ONLY : odt));
    const int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    char dx[96], dw[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(w, dw, sizeof dw);
    if (w->shape[1] != K) return pt_fail(PT_ERR_SHAPE, "%s: w %s must be [N, K] with K = %lld of x %s", fn, dw, (long long)K, dx);
    int64_t os[2] = {M, N};
    PT_CHECK(need_shape(out, fn, "out", 2, os, "[M, N] for x [M, K] and w [N, K]"));
    if (M < 1 || M > 8) return pt_fail(PT_ERR_SHAPE, "%s: x %s has %lld rows (1..8 supported; use pt_cuda_matmul)", fn, dx, (long long)M);
    if (K % 8 != 0 || !contiguous(w) || ((uintptr_t)w->data & 15) || ((uintptr_t)x->data & 15) || (M > 1 && x->stride[0] % 16))
        return pt_fail(PT_ERR_SHAPE, "%s: w %s must be contiguous, K a multiple of 8, w and x %s 16-byte aligned (rows too)", fn, dw, dx);
    if (xk) {
        PT_CHECK(pt_cuda_check_tensor(gamma, "gemv gamma", 1, 1, 1, F32_ONLY));
        int64_t ks[1] = {K};
        PT_CHECK(need_shape(gamma, fn, "gamma", 1, ks, "[K] f32"));
        if ((uintptr_t)gamma->data & 15) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: gamma is not 16-byte aligned", fn);
        if (beta) {
            if (xk == 2) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: RMSNorm takes no beta", fn);
            PT_CHECK(pt_cuda_check_tensor(beta, "gemv beta", 1, 1, 1, F32_ONLY));
            PT_CHECK(need_shape(beta, fn, "beta", 1, ks, "[K] f32"));
            if ((uintptr_t)beta->data & 15) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: beta is not 16-byte aligned", fn);
        }
        if (!(eps >= 0.0f) || isinf(eps)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: eps %g must be finite and >= 0", fn, (double)eps);
    }
    if (bias) {
        static const int32_t bdt[] = {PT_BF16, PT_F32};
        PT_CHECK(pt_cuda_check_tensor(bias, wb, 1, 1, 2, bdt));
        int64_t bs[1] = {N};
        PT_CHECK(need_shape(bias, fn, "bias", 1, bs, "[N]"));
    }
    if (activation != PT_ACT_NONE && activation != PT_ACT_GELU_TANH)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: activation %d (PT_ACT_NONE or PT_ACT_GELU_TANH supported)", fn, activation);
    if (N == 0) return PT_OK;
    const int64_t blocks = (N + GEMV_WARPS - 1) / GEMV_WARPS;
    if (blocks > INT32_MAX) return pt_fail(PT_ERR_SHAPE, "%s: N too large (w %s)", fn, dw);
    const void* bp = bias ? bias->data : nullptr;
    const int bf = bias && bias->dtype == PT_F32;
    const float* g = xk ? (const float*)gamma->data : nullptr;
    const float* be = xk && beta ? (const float*)beta->data : nullptr;
    const int ok = accumulate ? 2 : out->dtype == PT_F32 ? 1 : 0;
    const unsigned nb = (unsigned)blocks;
    cudaError_t e = cudaSuccess;
#define PT_GL(XK, OK) gemv_launch<XK, OK>((int)M, nb, ctx->stream, x->data, el(x, 0), g, be, eps, (const bf16*)w->data, K, N, bp, bf, out->data, el(out, 0), activation)
    if (xk == 0) e = ok == 0 ? PT_GL(0, 0) : ok == 1 ? PT_GL(0, 1) : PT_GL(0, 2);
    else if (xk == 1) e = ok == 0 ? PT_GL(1, 0) : PT_GL(1, 1);
    else e = ok == 0 ? PT_GL(2, 0) : PT_GL(2, 1);
#undef PT_GL
    if (e != cudaSuccess) return pt_cuda_fail(e, "gemv: launch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_gemv(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* w, const pt_tensor* bias, pt_tensor* out,
                                         int32_t activation) {
    pt_clear_error();
    return gemv_common(ctx, "pt_cuda_gemv", x, 0, nullptr, nullptr, 0.f, w, bias, out, 0, activation);
}

extern "C" PT_API pt_status pt_cuda_gemv_residual(pt_cuda_ctx* ctx, const pt_tensor* x, const pt_tensor* w, const pt_tensor* bias,
                                                  pt_tensor* resid) {
    pt_clear_error();
    return gemv_common(ctx, "pt_cuda_gemv_residual", x, 0, nullptr, nullptr, 0.f, w, bias, resid, 1, PT_ACT_NONE);
}

extern "C" PT_API pt_status pt_cuda_norm_gemv(pt_cuda_ctx* ctx, const pt_tensor* x, int32_t mode, const pt_tensor* gamma,
                                              const pt_tensor* beta, float eps, const pt_tensor* w, const pt_tensor* bias,
                                              pt_tensor* out, int32_t activation) {
    pt_clear_error();
    if (mode != 0 && mode != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_norm_gemv: mode %d must be 0 (LayerNorm) or 1 (RMSNorm)", mode);
    return gemv_common(ctx, "pt_cuda_norm_gemv", x, mode + 1, gamma, beta, eps, w, bias, out, 0, activation);
}

/* ---------------------------------------------------------------- CUDA graphs */

struct pt_cuda_graph_obj {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    std::vector<void*> held;
};

extern "C" PT_API pt_status pt_cuda_graph_begin(pt_cuda_ctx* ctx) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_graph_begin"));
    {
        std::lock_guard<std::mutex> lock(ctx->mu);
        if (ctx->capturing) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_graph_begin: the context is already capturing");
    }
    /* Relaxed: the caching allocator may still cudaMalloc a block the first time a kernel needs scratch */
    PT_CUDA_TRY(cudaStreamBeginCapture(ctx->stream, cudaStreamCaptureModeRelaxed), "pt_cuda_graph_begin: cudaStreamBeginCapture");
    std::lock_guard<std::mutex> lock(ctx->mu);
    ctx->capturing = true;
    ctx->capture_held.clear();
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_graph_end(pt_cuda_ctx* ctx, void** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_graph_end: out is NULL");
    *out = nullptr;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_graph_end"));
    std::vector<void*> held;
    {
        std::lock_guard<std::mutex> lock(ctx->mu);
        if (!ctx->capturing) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_graph_end: no capture in progress (pt_cuda_graph_begin first)");
        ctx->capturing = false;
        held.swap(ctx->capture_held);
    }
    cudaGraph_t g = nullptr;
    cudaError_t e = cudaStreamEndCapture(ctx->stream, &g);
    cudaGraphExec_t exec = nullptr;
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
    if (e != cudaSuccess) {
        if (g) cudaGraphDestroy(g);
        for (void* p : held) pt_cuda_free_internal(ctx, p);
        return pt_cuda_fail(e, "pt_cuda_graph_end: capture or instantiation failed (an op of the step could not be captured)");
    }
    pt_cuda_graph_obj* obj = new (std::nothrow) pt_cuda_graph_obj();
    if (!obj) {
        cudaGraphExecDestroy(exec);
        cudaGraphDestroy(g);
        for (void* p : held) pt_cuda_free_internal(ctx, p);
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_cuda_graph_end: out of host memory");
    }
    obj->graph = g;
    obj->exec = exec;
    obj->held.swap(held);
    *out = obj;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_graph_launch(pt_cuda_ctx* ctx, void* graph) {
    pt_clear_error();
    if (!graph) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_graph_launch: graph is NULL");
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_graph_launch"));
    PT_CUDA_TRY(cudaGraphLaunch(((pt_cuda_graph_obj*)graph)->exec, ctx->stream), "pt_cuda_graph_launch: cudaGraphLaunch");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_graph_destroy(pt_cuda_ctx* ctx, void* graph) {
    pt_clear_error();
    if (!graph) return PT_OK;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_graph_destroy"));
    pt_cuda_graph_obj* obj = (pt_cuda_graph_obj*)graph;
    cudaStreamSynchronize(ctx->stream); /* a replay in flight still uses the held scratch */
    cudaGraphExecDestroy(obj->exec);
    cudaGraphDestroy(obj->graph);
    for (void* p : obj->held) pt_cuda_free_internal(ctx, p);
    delete obj;
    PT_CUDA_TRY(cudaGetLastError(), "pt_cuda_graph_destroy");
    return PT_OK;
}
