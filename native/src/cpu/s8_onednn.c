/* Plain oneDNN s8 matmul (pt_s8_matmul_*): the baseline of the int8 benchmarks, not one of
 * our kernels. The handle owns a oneDNN engine, the matmul primitive for [m, K] x [K, N], the
 * weight reordered once into the layout the primitive prefers, and the weight scales.
 *
 * Threads: as gemm_onednn.c, oneDNN's OpenMP runtime takes omp_get_max_threads() of the
 * calling thread when the primitive is created and when it runs; both set it to
 * ctx->n_threads and restore the caller's value. The scratchpad is the user's (a thread-local
 * pt_scratch slot), so the handle may run on any thread, one at a time. */
#include "common/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define SCRATCH_SLOT 3 /* oneDNN's pt_scratch slot (gemm_onednn.c uses it too; calls do not nest) */

static int contiguous2(const pt_tensor* t) {
    int64_t es = (int64_t)pt_dtype_size(t->dtype);
    return t->ndim == 2 && (t->shape[1] <= 1 || t->stride[1] == es) && (t->shape[0] <= 1 || t->stride[0] == t->shape[1] * es);
}

static pt_status check_create(pt_ctx* ctx, int64_t m, const pt_tensor* wq, const pt_tensor* w_scale, pt_s8_matmul** out) {
    PT_CHECK(pt_check_ctx(ctx));
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_s8_matmul_create: out is NULL");
    *out = NULL;
    if (m < 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_s8_matmul_create: m must be >= 1, got %lld", (long long)m);
    PT_CHECK(pt_check_dtype(wq, "pt_s8_matmul_create wq", 1, PT_I8));
    PT_CHECK(pt_check_dtype(w_scale, "pt_s8_matmul_create w_scale", 1, PT_F32));
    char d1[96], d2[96];
    if (wq->ndim != 2 || !contiguous2(wq) || wq->shape[0] < 1 || wq->shape[1] < 1) {
        pt_describe(wq, d1, sizeof d1);
        return pt_fail(PT_ERR_SHAPE, "pt_s8_matmul_create: wq must be a contiguous non-empty 2-D [N, K] i8, got %s", d1);
    }
    if (w_scale->ndim != 1 || w_scale->shape[0] != wq->shape[0]) {
        pt_describe(w_scale, d1, sizeof d1);
        pt_describe(wq, d2, sizeof d2);
        return pt_fail(PT_ERR_SHAPE, "pt_s8_matmul_create: w_scale %s must be f32[%lld] for wq %s", d1, (long long)wq->shape[0], d2);
    }
    return PT_OK;
}

#if defined(PT_HAVE_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#if defined(_OPENMP)
#  include <omp.h>
#endif

struct pt_s8_matmul {
    int64_t m, n, k;
    dnnl_engine_t eng;
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md_x, md_w, md_b, md_y, md_scale1, md_scalen, md_scratch; /* md_scratch may be NULL */
    size_t scratch_bytes;
    dnnl_memory_t w;      /* the reordered weight */
    float* w_scale;       /* [N] */
    float* zero_bias;     /* [N] zeros, for bias == NULL */
};

pt_status pt_s8_matmul_destroy(pt_s8_matmul* p) {
    pt_clear_error();
    if (!p) return PT_OK;
    if (p->w) dnnl_memory_destroy(p->w);
    if (p->prim) dnnl_primitive_destroy(p->prim);
    dnnl_memory_desc_t mds[7] = {p->md_x, p->md_w, p->md_b, p->md_y, p->md_scale1, p->md_scalen, p->md_scratch};
    for (int i = 0; i < 7; i++)
        if (mds[i]) dnnl_memory_desc_destroy(mds[i]);
    if (p->eng) dnnl_engine_destroy(p->eng);
    free(p->w_scale);
    free(p->zero_bias);
    free(p);
    return PT_OK;
}

#define DN(call, what)                                                                                        \
    do {                                                                                                      \
        dnnl_status_t s_ = (call);                                                                            \
        if (s_ != dnnl_success) {                                                                             \
            st = pt_fail(s_ == dnnl_out_of_memory ? PT_ERR_OUT_OF_MEMORY : s_ == dnnl_unimplemented ? PT_ERR_UNSUPPORTED : PT_ERR_BACKEND, \
                         "pt_s8_matmul: oneDNN %s failed with status %d (m=%lld N=%lld K=%lld)", what, (int)s_, (long long)m, \
                         (long long)n, (long long)k);                                                        \
            goto done;                                                                                        \
        }                                                                                                     \
    } while (0)

pt_status pt_s8_matmul_create(pt_ctx* ctx, int64_t m, const pt_tensor* wq, const pt_tensor* w_scale, pt_s8_matmul** out) {
    pt_clear_error();
    PT_CHECK(check_create(ctx, m, wq, w_scale, out));
    if (!ctx->use_onednn || !ctx->onednn)
        return pt_fail(PT_ERR_UNSUPPORTED, "pt_s8_matmul_create: this context does not use oneDNN (use_onednn = 0)");
    const int64_t n = wq->shape[0], k = wq->shape[1];
    pt_status st = PT_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t rp = NULL;
    dnnl_memory_desc_t md_wany = NULL, md_wplain = NULL;
    dnnl_memory_t wplain = NULL;
    dnnl_stream_t strm = NULL;
#if defined(_OPENMP)
    const int prev_threads = omp_get_max_threads();
    omp_set_num_threads(ctx->n_threads);
#endif
    pt_s8_matmul* p = (pt_s8_matmul*)calloc(1, sizeof *p);
    if (!p) { st = pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_s8_matmul_create: out of memory"); goto done; }
    p->m = m; p->n = n; p->k = k;
    p->w_scale = (float*)malloc((size_t)n * sizeof(float));
    p->zero_bias = (float*)calloc((size_t)n, sizeof(float));
    if (!p->w_scale || !p->zero_bias) { st = pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_s8_matmul_create: out of memory (N=%lld)", (long long)n); goto done; }
    for (int64_t i = 0; i < n; i++) p->w_scale[i] = *(const float*)((const char*)w_scale->data + i * w_scale->stride[0]);
    DN(dnnl_engine_create(&p->eng, dnnl_cpu, 0), "engine");
    dnnl_dims_t xd = {m, k}, wd = {k, n}, yd = {m, n}, bd = {1, n}, s1d = {1}, snd = {n};
    DN(dnnl_memory_desc_create_with_tag(&p->md_x, 2, xd, dnnl_s8, dnnl_ab), "memory desc");
    DN(dnnl_memory_desc_create_with_tag(&md_wany, 2, wd, dnnl_s8, dnnl_format_tag_any), "memory desc");
    DN(dnnl_memory_desc_create_with_tag(&md_wplain, 2, wd, dnnl_s8, dnnl_ba), "memory desc"); /* [K,N] view of [N,K] rows */
    DN(dnnl_memory_desc_create_with_tag(&p->md_y, 2, yd, dnnl_f32, dnnl_ab), "memory desc");
    DN(dnnl_memory_desc_create_with_tag(&p->md_b, 2, bd, dnnl_f32, dnnl_ab), "memory desc");
    DN(dnnl_memory_desc_create_with_tag(&p->md_scale1, 1, s1d, dnnl_f32, dnnl_a), "memory desc");
    DN(dnnl_memory_desc_create_with_tag(&p->md_scalen, 1, snd, dnnl_f32, dnnl_a), "memory desc");
    DN(dnnl_primitive_attr_create(&attr), "attr");
    DN(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    DN(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0), "scales");
    DN(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, 1 << 1), "scales");
    DN(dnnl_matmul_primitive_desc_create(&pd, p->eng, p->md_x, md_wany, p->md_b, p->md_y, attr), "s8 matmul descriptor");
    DN(dnnl_memory_desc_clone(&p->md_w, dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0)), "weights desc");
    const_dnnl_memory_desc_t smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p->scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (p->scratch_bytes) DN(dnnl_memory_desc_clone(&p->md_scratch, smd), "scratchpad desc");
    DN(dnnl_primitive_create(&p->prim, pd), "s8 matmul primitive");
    /* the weight: reorder wq [N, K] once into the primitive's layout */
    DN(dnnl_memory_create(&wplain, md_wplain, p->eng, wq->data), "memory");
    DN(dnnl_memory_create(&p->w, p->md_w, p->eng, DNNL_MEMORY_ALLOCATE), "memory");
    DN(dnnl_reorder_primitive_desc_create(&rpd, md_wplain, p->eng, p->md_w, p->eng, NULL), "reorder descriptor");
    DN(dnnl_primitive_create(&rp, rpd), "reorder primitive");
    DN(dnnl_stream_create(&strm, p->eng, dnnl_stream_default_flags), "stream");
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, wplain}, {DNNL_ARG_TO, p->w}};
    DN(dnnl_primitive_execute(rp, strm, 2, ra), "weight reorder");
    DN(dnnl_stream_wait(strm), "weight reorder");
done:
    if (strm) dnnl_stream_destroy(strm);
    if (rp) dnnl_primitive_destroy(rp);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (wplain) dnnl_memory_destroy(wplain);
    if (md_wany) dnnl_memory_desc_destroy(md_wany);
    if (md_wplain) dnnl_memory_desc_destroy(md_wplain);
#if defined(_OPENMP)
    omp_set_num_threads(prev_threads);
#endif
    if (st != PT_OK) {
        pt_status keep = st;
        if (p) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", pt_last_error());
            pt_s8_matmul_destroy(p);
            pt_fail(keep, "%s", msg);
        }
        return keep;
    }
    *out = p;
    return PT_OK;
}

pt_status pt_s8_matmul_run(pt_ctx* ctx, pt_s8_matmul* p, const pt_tensor* x, float x_scale, const pt_tensor* bias, pt_tensor* y) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!p) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_s8_matmul_run: handle is NULL");
    const int64_t m = p->m, n = p->n, k = p->k;
    PT_CHECK(pt_check_dtype(x, "pt_s8_matmul_run x", 1, PT_I8));
    PT_CHECK(pt_check_dtype(y, "pt_s8_matmul_run y", 1, PT_F32));
    char d[96];
    if (!contiguous2(x) || x->shape[0] != m || x->shape[1] != k) {
        pt_describe(x, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "pt_s8_matmul_run: x must be a contiguous i8[%lld, %lld] (the handle's m and K), got %s", (long long)m,
                       (long long)k, d);
    }
    if (!contiguous2(y) || y->shape[0] != m || y->shape[1] != n) {
        pt_describe(y, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "pt_s8_matmul_run: y must be a contiguous f32[%lld, %lld], got %s", (long long)m, (long long)n, d);
    }
    if (bias) {
        PT_CHECK(pt_check_dtype(bias, "pt_s8_matmul_run bias", 1, PT_F32));
        if (bias->ndim != 1 || bias->shape[0] != n) {
            pt_describe(bias, d, sizeof d);
            return pt_fail(PT_ERR_SHAPE, "pt_s8_matmul_run: bias must be f32[%lld], got %s", (long long)n, d);
        }
    }
    if (!isfinite(x_scale)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_s8_matmul_run: x_scale must be finite, got %g", (double)x_scale);
    void* scratch = NULL;
    if (p->scratch_bytes) {
        scratch = pt_scratch(SCRATCH_SLOT, p->scratch_bytes);
        if (!scratch) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_s8_matmul_run: cannot allocate %zu bytes of oneDNN scratchpad", p->scratch_bytes);
    }
    pt_status st = PT_OK;
    dnnl_memory_t mem[7] = {0};
    dnnl_stream_t strm = NULL;
    float xs = x_scale;
#if defined(_OPENMP)
    const int prev_threads = omp_get_max_threads();
    omp_set_num_threads(ctx->n_threads);
#endif
    DN(dnnl_memory_create(&mem[0], p->md_x, p->eng, x->data), "memory");
    DN(dnnl_memory_create(&mem[1], p->md_y, p->eng, y->data), "memory");
    DN(dnnl_memory_create(&mem[2], p->md_b, p->eng, bias ? bias->data : p->zero_bias), "memory");
    DN(dnnl_memory_create(&mem[3], p->md_scale1, p->eng, &xs), "memory");
    DN(dnnl_memory_create(&mem[4], p->md_scalen, p->eng, p->w_scale), "memory");
    dnnl_exec_arg_t args[7] = {{DNNL_ARG_SRC, mem[0]}, {DNNL_ARG_WEIGHTS, p->w}, {DNNL_ARG_BIAS, mem[2]}, {DNNL_ARG_DST, mem[1]},
                               {DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, mem[3]}, {DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, mem[4]}};
    int na = 6;
    if (scratch) {
        DN(dnnl_memory_create(&mem[5], p->md_scratch, p->eng, scratch), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[5]};
    }
    DN(dnnl_stream_create(&strm, p->eng, dnnl_stream_default_flags), "stream");
    pt_parallel_park(); /* as the library's own oneDNN routes: our pool's workers sleep while oneDNN runs */
    DN(dnnl_primitive_execute(p->prim, strm, na, args), "s8 matmul execution");
    DN(dnnl_stream_wait(strm), "s8 matmul execution");
done:
    if (strm) dnnl_stream_destroy(strm);
    for (int i = 0; i < 7; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
#if defined(_OPENMP)
    omp_set_num_threads(prev_threads);
#endif
    return st;
}

#else /* built without oneDNN */

struct pt_s8_matmul { int unused; };

pt_status pt_s8_matmul_create(pt_ctx* ctx, int64_t m, const pt_tensor* wq, const pt_tensor* w_scale, pt_s8_matmul** out) {
    pt_clear_error();
    PT_CHECK(check_create(ctx, m, wq, w_scale, out));
    return pt_fail(PT_ERR_UNSUPPORTED, "pt_s8_matmul_create: the library was built without oneDNN");
}

pt_status pt_s8_matmul_run(pt_ctx* ctx, pt_s8_matmul* p, const pt_tensor* x, float x_scale, const pt_tensor* bias, pt_tensor* y) {
    pt_clear_error();
    (void)ctx; (void)x; (void)x_scale; (void)bias; (void)y;
    if (!p) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_s8_matmul_run: handle is NULL");
    return pt_fail(PT_ERR_UNSUPPORTED, "pt_s8_matmul_run: the library was built without oneDNN");
}

pt_status pt_s8_matmul_destroy(pt_s8_matmul* p) {
    pt_clear_error();
    (void)p;
    return PT_OK;
}

#endif
