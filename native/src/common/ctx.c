#include "internal.h"

#include <stdlib.h>

#if defined(_WIN32)
#  include <windows.h>
static int32_t online_cores(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return (int32_t)si.dwNumberOfProcessors;
}
#else
#  include <unistd.h>
static int32_t online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int32_t)n : 1;
}
#endif

pt_status pt_ctx_create(const pt_ctx_params* params, pt_ctx** out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_ctx_create: out is NULL");
    *out = NULL;
    pt_ctx_params p = {0, 0, 1, 0};
    if (params) p = *params;
    if (p.n_threads > 4096)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_ctx_create: n_threads %d is too large", p.n_threads);
    pt_ctx* ctx = (pt_ctx*)calloc(1, sizeof *ctx);
    if (!ctx) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_ctx_create: out of memory");
    ctx->n_threads = p.n_threads > 0 ? p.n_threads : online_cores();
    ctx->caps = pt_cpu_caps() & ~p.disable_caps;
    ctx->use_onednn = p.use_onednn != 0;
    if (ctx->use_onednn) {
        pt_status st = pt_onednn_init(ctx);
        if (st == PT_ERR_UNSUPPORTED) {
            ctx->use_onednn = 0; /* built without oneDNN: own kernels */
            pt_clear_error();
        } else if (st != PT_OK) {
            free(ctx);
            return st;
        }
    }
    *out = ctx;
    return PT_OK;
}

pt_status pt_ctx_destroy(pt_ctx* ctx) {
    pt_clear_error();
    if (!ctx) return PT_OK;
    pt_onednn_free(ctx);
    free(ctx);
    return PT_OK;
}

pt_status pt_ctx_threads(const pt_ctx* ctx, int32_t* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_ctx_threads: out is NULL");
    *out = ctx->n_threads;
    return PT_OK;
}

pt_status pt_build_info_get(pt_build_info* out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_build_info_get: out is NULL");
    memset(out, 0, sizeof *out);
    out->version = pt_version();
    out->onednn_version = pt_onednn_version();
    out->cpu_caps = pt_cpu_caps();
    out->used_caps = pt_cpu_caps();
    out->default_threads = online_cores();
    return PT_OK;
}

pt_status pt_check_ctx(const pt_ctx* ctx) {
    if (!ctx) return pt_fail(PT_ERR_INVALID_ARGUMENT, "context is NULL");
    return PT_OK;
}
