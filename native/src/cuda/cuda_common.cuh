/* Internal to libpanatron_cuda: the context, error helpers and device-tensor checks. */
#ifndef PT_CUDA_COMMON_CUH
#define PT_CUDA_COMMON_CUH

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

extern "C" {
#include "common/internal.h"
}

struct pt_cublaslt; /* cublaslt.cuh */

struct pt_cuda_ctx {
    int device = 0;
    int sm_count = 0;
    int cc_major = 0, cc_minor = 0;
    int smem_optin = 0;
    int allow_tf32 = 0;
    cudaStream_t stream = nullptr;
    bool own_stream = false;
    /* cuBLASLt: handle created on first matmul (the library is dlopen'ed then) */
    void* lt_handle = nullptr;
    void* lt_cache = nullptr;   /* struct pt_lt_cache (gemm.cu): recent matmul plans */
    std::mutex lt_mu;           /* guards lt_handle creation and lt_cache */
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    /* caching allocator: free blocks by size, live blocks by pointer */
    std::mutex mu;
    std::multimap<size_t, void*> free_blocks;
    std::unordered_map<void*, size_t> live;
    size_t in_use = 0, cached = 0;
    /* pinned staging: two halves, each with an event marking when its copy is done */
    void* pinned[2] = {nullptr, nullptr};
    cudaEvent_t pinned_done[2] = {nullptr, nullptr};
    size_t pinned_bytes = 0;
    /* CUDA graph capture (decoder_ops.cu): while capturing, blocks freed (kernel scratch) stay
     * live and go to the graph, which returns them on pt_cuda_graph_destroy, so a replay never
     * writes memory handed out again after the capture. Guarded by mu. */
    bool capturing = false;
    std::vector<void*> capture_held;
};

/* Records a CUDA error as the last error: "<what>: <cudaGetErrorName>: <string>". */
pt_status pt_cuda_fail(cudaError_t err, const char* what);

#define PT_CUDA_TRY(call, what)                                        \
    do {                                                               \
        cudaError_t pt_cuda_err_ = (call);                             \
        if (pt_cuda_err_ != cudaSuccess) return pt_cuda_fail(pt_cuda_err_, what); \
    } while (0)

/* After a kernel launch: the launch error (bad configuration, no kernel image) as a status. */
#define PT_CUDA_LAUNCH_CHECK(what) PT_CUDA_TRY(cudaGetLastError(), what)

/* Makes ctx's device current on this thread; every entry point taking a ctx calls it. */
pt_status pt_cuda_enter(pt_cuda_ctx* ctx, const char* fn);

/* Device tensor checks: valid descriptor on the CUDA device, dtype one of n listed (n = 0:
 * any), ndim in [lo, hi], innermost contiguous. */
pt_status pt_cuda_check_tensor(const pt_tensor* t, const char* what, int ndim_lo, int ndim_hi,
                               int n, const int32_t* dtypes);

/* Allocation helpers for internal scratch (same cache as pt_cuda_malloc). */
pt_status pt_cuda_alloc_internal(pt_cuda_ctx* ctx, size_t bytes, void** out);
void pt_cuda_free_internal(pt_cuda_ctx* ctx, void* p);

#endif
