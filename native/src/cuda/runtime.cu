/* libpanatron_cuda: device runtime — devices, context, caching allocator, copies. */
#include "cuda_common.cuh"

#include <stdlib.h>
#include <string.h>

#include <vector>

extern "C" PT_API const char* pt_cuda_last_error(void) { return pt_last_error(); }

pt_status pt_cuda_fail(cudaError_t err, const char* what) {
    cudaGetLastError(); /* clear the sticky-free error so the next call starts clean */
    pt_status st = err == cudaErrorMemoryAllocation ? PT_ERR_OUT_OF_MEMORY : PT_ERR_BACKEND;
    return pt_fail(st, "%s: %s: %s", what, cudaGetErrorName(err), cudaGetErrorString(err));
}

pt_status pt_cuda_enter(pt_cuda_ctx* ctx, const char* fn) {
    if (!ctx) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: context is NULL", fn);
    int cur = -1;
    if (cudaGetDevice(&cur) != cudaSuccess || cur != ctx->device) {
        cudaError_t e = cudaSetDevice(ctx->device);
        if (e != cudaSuccess) return pt_cuda_fail(e, fn);
    }
    return PT_OK;
}

pt_status pt_cuda_check_tensor(const pt_tensor* t, const char* what, int ndim_lo, int ndim_hi,
                               int n, const int32_t* dtypes) {
    if (!t) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", what);
    if (t->device != PT_DEVICE_CUDA)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: tensor is on device %d, expected PT_DEVICE_CUDA (%d)",
                       what, t->device, PT_DEVICE_CUDA);
    if (t->ndim < ndim_lo || t->ndim > ndim_hi)
        return pt_fail(PT_ERR_SHAPE, "%s: ndim %d, expected %d..%d", what, t->ndim, ndim_lo, ndim_hi);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) return pt_fail(PT_ERR_SHAPE, "%s: shape[%d] = %lld is negative", what, i, (long long)t->shape[i]);
    if (n > 0) {
        int ok = 0;
        char allowed[96] = "";
        size_t k = 0;
        for (int i = 0; i < n; i++) {
            if (dtypes[i] == t->dtype) ok = 1;
            int w = snprintf(allowed + k, sizeof allowed - k, i ? "|%s" : "%s", pt_dtype_name(dtypes[i]));
            if (w > 0 && k + (size_t)w < sizeof allowed) k += (size_t)w;
        }
        if (!ok) return pt_fail(PT_ERR_DTYPE, "%s: dtype %s not supported here (expected %s)", what, pt_dtype_name(t->dtype), allowed);
    }
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) numel *= t->shape[i];
    if (!t->data && numel > 0) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: data is NULL", what);
    size_t es = pt_dtype_size(t->dtype);
    if (t->shape[t->ndim - 1] > 1 && t->stride[t->ndim - 1] != (int64_t)es)
        return pt_fail(PT_ERR_SHAPE, "%s: innermost stride %lld bytes, expected %zu (contiguous)", what,
                       (long long)t->stride[t->ndim - 1], es);
    return PT_OK;
}

/* ---------------------------------------------------------------- devices */

extern "C" PT_API pt_status pt_cuda_device_count(int32_t* out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_device_count: out is NULL");
    *out = 0;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError ||
        e == cudaErrorNotPermitted || e == cudaErrorCompatNotSupportedOnDevice || e == cudaErrorSystemDriverMismatch) {
        cudaGetLastError();
        return PT_OK; /* no usable GPU: 0 devices */
    }
    if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_device_count: cudaGetDeviceCount");
    *out = n;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_device_info_get(int32_t device, pt_cuda_device_info* out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_device_info_get: out is NULL");
    memset(out, 0, sizeof *out);
    int32_t n = 0;
    PT_CHECK(pt_cuda_device_count(&n));
    if (device < 0 || device >= n)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_device_info_get: device %d outside 0..%d", device, n - 1);
    cudaDeviceProp p;
    PT_CUDA_TRY(cudaGetDeviceProperties(&p, device), "pt_cuda_device_info_get: cudaGetDeviceProperties");
    strncpy(out->name, p.name, sizeof out->name - 1);
    out->device = device;
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    out->total_mem = (int64_t)p.totalGlobalMem;
    out->l2_bytes = p.l2CacheSize;
    out->smem_per_block_optin = (int32_t)p.sharedMemPerBlockOptin;
    out->mem_bus_width = p.memoryBusWidth;
    int prev = -1;
    cudaGetDevice(&prev);
    if (prev != device) PT_CUDA_TRY(cudaSetDevice(device), "pt_cuda_device_info_get: cudaSetDevice");
    size_t fr = 0, tot = 0;
    cudaError_t e = cudaMemGetInfo(&fr, &tot);
    if (prev != device && prev >= 0) cudaSetDevice(prev);
    if (e != cudaSuccess) return pt_cuda_fail(e, "pt_cuda_device_info_get: cudaMemGetInfo");
    out->free_mem = (int64_t)fr;
    int dv = 0, rv = 0;
    cudaDriverGetVersion(&dv);
    cudaRuntimeGetVersion(&rv);
    out->driver_version = dv;
    out->runtime_version = rv;
    return PT_OK;
}

/* ---------------------------------------------------------------- context */

static void ctx_release(pt_cuda_ctx* ctx) {
    if (ctx->stream) cudaStreamSynchronize(ctx->stream);
    {
        extern void pt_cublaslt_release(pt_cuda_ctx * ctx);
        pt_cublaslt_release(ctx);
    }
    for (auto& kv : ctx->free_blocks) cudaFree(kv.second);
    for (auto& kv : ctx->live) cudaFree(kv.first);
    ctx->free_blocks.clear();
    ctx->live.clear();
    if (ctx->workspace) cudaFree(ctx->workspace);
    for (int i = 0; i < 2; i++) {
        if (ctx->pinned[i]) cudaFreeHost(ctx->pinned[i]);
        if (ctx->pinned_done[i]) cudaEventDestroy(ctx->pinned_done[i]);
    }
    if (ctx->own_stream && ctx->stream) cudaStreamDestroy(ctx->stream);
    cudaGetLastError();
}

extern "C" PT_API pt_status pt_cuda_ctx_create(const pt_cuda_ctx_params* params, pt_cuda_ctx** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_ctx_create: out is NULL");
    *out = NULL;
    pt_cuda_ctx_params p;
    memset(&p, 0, sizeof p);
    if (params) p = *params;
    if (p.workspace_bytes < 0)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_ctx_create: workspace_bytes %lld is negative", (long long)p.workspace_bytes);
    int32_t n = 0;
    PT_CHECK(pt_cuda_device_count(&n));
    if (n == 0) return pt_fail(PT_ERR_UNSUPPORTED, "pt_cuda_ctx_create: no CUDA device (or no driver) present");
    if (p.device < 0 || p.device >= n)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_ctx_create: device %d outside 0..%d", p.device, n - 1);
    pt_cuda_ctx* ctx = new (std::nothrow) pt_cuda_ctx();
    if (!ctx) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_cuda_ctx_create: out of host memory");
    ctx->device = p.device;
    ctx->allow_tf32 = p.allow_tf32 != 0;
    ctx->workspace_bytes = p.workspace_bytes ? (size_t)p.workspace_bytes : (size_t)32 << 20;
    ctx->pinned_bytes = (size_t)8 << 20;
    pt_status st = PT_OK;
    cudaError_t e;
    cudaDeviceProp prop;
    do {
        if ((e = cudaSetDevice(p.device)) != cudaSuccess) { st = pt_cuda_fail(e, "pt_cuda_ctx_create: cudaSetDevice"); break; }
        if ((e = cudaGetDeviceProperties(&prop, p.device)) != cudaSuccess) { st = pt_cuda_fail(e, "pt_cuda_ctx_create: cudaGetDeviceProperties"); break; }
        ctx->sm_count = prop.multiProcessorCount;
        ctx->cc_major = prop.major;
        ctx->cc_minor = prop.minor;
        ctx->smem_optin = (int)prop.sharedMemPerBlockOptin;
        if (p.stream) {
            ctx->stream = (cudaStream_t)p.stream;
        } else {
            if ((e = cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking)) != cudaSuccess) { st = pt_cuda_fail(e, "pt_cuda_ctx_create: cudaStreamCreate"); break; }
            ctx->own_stream = true;
        }
        if ((e = cudaMalloc(&ctx->workspace, ctx->workspace_bytes)) != cudaSuccess) { st = pt_cuda_fail(e, "pt_cuda_ctx_create: cudaMalloc(workspace)"); break; }
    } while (0);
    if (st != PT_OK) {
        ctx_release(ctx);
        delete ctx;
        return st;
    }
    *out = ctx;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_ctx_destroy(pt_cuda_ctx* ctx) {
    pt_clear_error();
    if (!ctx) return PT_OK;
    cudaSetDevice(ctx->device);
    ctx_release(ctx);
    delete ctx;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_ctx_stream(pt_cuda_ctx* ctx, void** out) {
    pt_clear_error();
    if (!ctx) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_ctx_stream: context is NULL");
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_ctx_stream: out is NULL");
    *out = (void*)ctx->stream;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_synchronize(pt_cuda_ctx* ctx) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_synchronize"));
    PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), "pt_cuda_synchronize: cudaStreamSynchronize");
    return PT_OK;
}

/* ---------------------------------------------------------------- caching allocator */

/* Sizes are rounded so that blocks are reusable across nearby requests: 512 B granules
 * under 1 MiB, 2 MiB granules above. A cached block serves a request up to twice smaller
 * (or 4 MiB smaller for big blocks), so little memory is wasted. */
static size_t round_size(size_t bytes) {
    if (bytes < ((size_t)1 << 20)) return (bytes + 511) & ~(size_t)511;
    return (bytes + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
}

static void release_cached_locked(pt_cuda_ctx* ctx) {
    cudaStreamSynchronize(ctx->stream);
    for (auto& kv : ctx->free_blocks) cudaFree(kv.second);
    ctx->free_blocks.clear();
    ctx->cached = 0;
}

pt_status pt_cuda_alloc_internal(pt_cuda_ctx* ctx, size_t bytes, void** out) {
    *out = nullptr;
    if (bytes == 0) return PT_OK;
    size_t sz = round_size(bytes);
    std::lock_guard<std::mutex> lock(ctx->mu);
    auto it = ctx->free_blocks.lower_bound(sz);
    if (it != ctx->free_blocks.end() && (it->first <= 2 * sz || it->first <= sz + ((size_t)4 << 20))) {
        void* p = it->second;
        size_t bs = it->first;
        ctx->free_blocks.erase(it);
        ctx->cached -= bs;
        ctx->live[p] = bs;
        ctx->in_use += bs;
        *out = p;
        return PT_OK;
    }
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, sz);
    if (e == cudaErrorMemoryAllocation && !ctx->free_blocks.empty()) {
        cudaGetLastError();
        release_cached_locked(ctx); /* give the cache back and try once more */
        e = cudaMalloc(&p, sz);
    }
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "pt_cuda_malloc: cudaMalloc(%zu bytes)", sz);
        return pt_cuda_fail(e, what);
    }
    ctx->live[p] = sz;
    ctx->in_use += sz;
    *out = p;
    return PT_OK;
}

void pt_cuda_free_internal(pt_cuda_ctx* ctx, void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(ctx->mu);
    auto it = ctx->live.find(p);
    if (it == ctx->live.end()) return;
    if (ctx->capturing) { /* a captured kernel still uses it at every replay */
        ctx->capture_held.push_back(p);
        return;
    }
    size_t bs = it->second;
    ctx->live.erase(it);
    ctx->in_use -= bs;
    ctx->free_blocks.emplace(bs, p);
    ctx->cached += bs;
}

extern "C" PT_API pt_status pt_cuda_malloc(pt_cuda_ctx* ctx, size_t bytes, void** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_malloc: out is NULL");
    *out = NULL;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_malloc"));
    return pt_cuda_alloc_internal(ctx, bytes, out);
}

extern "C" PT_API pt_status pt_cuda_free(pt_cuda_ctx* ctx, void* ptr) {
    pt_clear_error();
    if (!ptr) return PT_OK;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_free"));
    {
        std::lock_guard<std::mutex> lock(ctx->mu);
        if (ctx->live.find(ptr) == ctx->live.end())
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_free: %p was not allocated by this context (or was freed already)", ptr);
    }
    pt_cuda_free_internal(ctx, ptr);
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_empty_cache(pt_cuda_ctx* ctx) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_empty_cache"));
    std::lock_guard<std::mutex> lock(ctx->mu);
    release_cached_locked(ctx);
    PT_CUDA_TRY(cudaGetLastError(), "pt_cuda_empty_cache");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_memory_stats(pt_cuda_ctx* ctx, int64_t* in_use, int64_t* cached) {
    pt_clear_error();
    if (!ctx) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_memory_stats: context is NULL");
    std::lock_guard<std::mutex> lock(ctx->mu);
    if (in_use) *in_use = (int64_t)ctx->in_use;
    if (cached) *cached = (int64_t)ctx->cached;
    return PT_OK;
}

/* ---------------------------------------------------------------- copies */

static pt_status ensure_pinned(pt_cuda_ctx* ctx) {
    if (ctx->pinned[0]) return PT_OK;
    for (int i = 0; i < 2; i++) {
        PT_CUDA_TRY(cudaMallocHost(&ctx->pinned[i], ctx->pinned_bytes), "pinned staging: cudaMallocHost");
        PT_CUDA_TRY(cudaEventCreateWithFlags(&ctx->pinned_done[i], cudaEventDisableTiming), "pinned staging: cudaEventCreate");
    }
    return PT_OK;
}

static bool is_pinned_host(const void* p) {
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError();
        return false;
    }
    return a.type == cudaMemoryTypeHost;
}

static pt_status check_copy(pt_cuda_ctx* ctx, const char* fn, const void* dst, const void* src, size_t bytes) {
    PT_CHECK(pt_cuda_enter(ctx, fn));
    if (bytes && (!dst || !src)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: %s is NULL", fn, !dst ? "dst" : "src");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_memcpy_h2d(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes) {
    pt_clear_error();
    PT_CHECK(check_copy(ctx, "pt_cuda_memcpy_h2d", dst, src, bytes));
    if (!bytes) return PT_OK;
    if (is_pinned_host(src)) {
        PT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream), "pt_cuda_memcpy_h2d: cudaMemcpyAsync");
        /* the caller may reuse src on return: wait for this copy */
        PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), "pt_cuda_memcpy_h2d: cudaStreamSynchronize");
        return PT_OK;
    }
    std::lock_guard<std::mutex> lock(ctx->mu);
    PT_CHECK(ensure_pinned(ctx));
    size_t off = 0;
    int half = 0;
    while (off < bytes) {
        size_t n = bytes - off < ctx->pinned_bytes ? bytes - off : ctx->pinned_bytes;
        /* this half is free once its previous copy completed */
        PT_CUDA_TRY(cudaEventSynchronize(ctx->pinned_done[half]), "pt_cuda_memcpy_h2d: cudaEventSynchronize");
        memcpy(ctx->pinned[half], (const char*)src + off, n);
        PT_CUDA_TRY(cudaMemcpyAsync((char*)dst + off, ctx->pinned[half], n, cudaMemcpyHostToDevice, ctx->stream),
                    "pt_cuda_memcpy_h2d: cudaMemcpyAsync");
        PT_CUDA_TRY(cudaEventRecord(ctx->pinned_done[half], ctx->stream), "pt_cuda_memcpy_h2d: cudaEventRecord");
        off += n;
        half ^= 1;
    }
    return PT_OK; /* src was fully consumed into staging; the last copies may still run */
}

extern "C" PT_API pt_status pt_cuda_memcpy_d2h(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes) {
    pt_clear_error();
    PT_CHECK(check_copy(ctx, "pt_cuda_memcpy_d2h", dst, src, bytes));
    if (!bytes) {
        PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), "pt_cuda_memcpy_d2h: cudaStreamSynchronize");
        return PT_OK;
    }
    if (is_pinned_host(dst)) {
        PT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream), "pt_cuda_memcpy_d2h: cudaMemcpyAsync");
        PT_CUDA_TRY(cudaStreamSynchronize(ctx->stream), "pt_cuda_memcpy_d2h: cudaStreamSynchronize");
        return PT_OK;
    }
    std::lock_guard<std::mutex> lock(ctx->mu);
    PT_CHECK(ensure_pinned(ctx));
    /* pipeline: copy chunk i+1 to the other half while chunk i is memcpy'd out */
    size_t chunk = ctx->pinned_bytes;
    size_t nchunks = (bytes + chunk - 1) / chunk;
    for (size_t i = 0; i < nchunks && i < 2; i++) {
        size_t off = i * chunk, n = bytes - off < chunk ? bytes - off : chunk;
        PT_CUDA_TRY(cudaMemcpyAsync(ctx->pinned[i & 1], (const char*)src + off, n, cudaMemcpyDeviceToHost, ctx->stream),
                    "pt_cuda_memcpy_d2h: cudaMemcpyAsync");
        PT_CUDA_TRY(cudaEventRecord(ctx->pinned_done[i & 1], ctx->stream), "pt_cuda_memcpy_d2h: cudaEventRecord");
    }
    for (size_t i = 0; i < nchunks; i++) {
        size_t off = i * chunk, n = bytes - off < chunk ? bytes - off : chunk;
        int h = (int)(i & 1);
        PT_CUDA_TRY(cudaEventSynchronize(ctx->pinned_done[h]), "pt_cuda_memcpy_d2h: cudaEventSynchronize");
        memcpy((char*)dst + off, ctx->pinned[h], n);
        size_t j = i + 2;
        if (j < nchunks) {
            size_t offj = j * chunk, nj = bytes - offj < chunk ? bytes - offj : chunk;
            PT_CUDA_TRY(cudaMemcpyAsync(ctx->pinned[h], (const char*)src + offj, nj, cudaMemcpyDeviceToHost, ctx->stream),
                        "pt_cuda_memcpy_d2h: cudaMemcpyAsync");
            PT_CUDA_TRY(cudaEventRecord(ctx->pinned_done[h], ctx->stream), "pt_cuda_memcpy_d2h: cudaEventRecord");
        }
    }
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_memcpy_d2d(pt_cuda_ctx* ctx, void* dst, const void* src, size_t bytes) {
    pt_clear_error();
    PT_CHECK(check_copy(ctx, "pt_cuda_memcpy_d2d", dst, src, bytes));
    if (!bytes) return PT_OK;
    PT_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream), "pt_cuda_memcpy_d2d: cudaMemcpyAsync");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_memset(pt_cuda_ctx* ctx, void* dst, int32_t value, size_t bytes) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_memset"));
    if (!bytes) return PT_OK;
    if (!dst) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_memset: dst is NULL");
    PT_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, ctx->stream), "pt_cuda_memset: cudaMemsetAsync");
    return PT_OK;
}

/* ---------------------------------------------------------------- events */

extern "C" PT_API pt_status pt_cuda_event_create(pt_cuda_ctx* ctx, void** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_event_create: out is NULL");
    *out = NULL;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_event_create"));
    cudaEvent_t e = nullptr;
    PT_CUDA_TRY(cudaEventCreate(&e), "pt_cuda_event_create: cudaEventCreate");
    *out = (void*)e;
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_event_record(pt_cuda_ctx* ctx, void* event) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_event_record"));
    if (!event) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_event_record: event is NULL");
    PT_CUDA_TRY(cudaEventRecord((cudaEvent_t)event, ctx->stream), "pt_cuda_event_record: cudaEventRecord");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_event_elapsed_ms(pt_cuda_ctx* ctx, void* start, void* end, float* out_ms) {
    pt_clear_error();
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_event_elapsed_ms"));
    if (!start || !end || !out_ms) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_cuda_event_elapsed_ms: start, end and out_ms must be non-NULL");
    PT_CUDA_TRY(cudaEventSynchronize((cudaEvent_t)end), "pt_cuda_event_elapsed_ms: cudaEventSynchronize");
    PT_CUDA_TRY(cudaEventElapsedTime(out_ms, (cudaEvent_t)start, (cudaEvent_t)end), "pt_cuda_event_elapsed_ms: cudaEventElapsedTime");
    return PT_OK;
}

extern "C" PT_API pt_status pt_cuda_event_destroy(pt_cuda_ctx* ctx, void* event) {
    pt_clear_error();
    if (!event) return PT_OK;
    PT_CHECK(pt_cuda_enter(ctx, "pt_cuda_event_destroy"));
    PT_CUDA_TRY(cudaEventDestroy((cudaEvent_t)event), "pt_cuda_event_destroy: cudaEventDestroy");
    return PT_OK;
}
