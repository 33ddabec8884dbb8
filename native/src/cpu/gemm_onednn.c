/* Dense matmul through oneDNN 3.x (f32, bf16). Primitives are cached per context by
 * problem signature, so a steady-state call costs one hash lookup plus the execution. */
#include "common/internal.h"
#include "cpu/gemm.h"

#if defined(PT_HAVE_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(_OPENMP)
#  include <omp.h>
#endif
#if !defined(_WIN32)
#  include <pthread.h>
typedef pthread_mutex_t pt_mutex;
#  define MUTEX_INIT(m) pthread_mutex_init(m, NULL)
#  define MUTEX_LOCK(m) pthread_mutex_lock(m)
#  define MUTEX_UNLOCK(m) pthread_mutex_unlock(m)
#  define MUTEX_DESTROY(m) pthread_mutex_destroy(m)
#else
#  include <windows.h>
typedef CRITICAL_SECTION pt_mutex;
#  define MUTEX_INIT(m) InitializeCriticalSection(m)
#  define MUTEX_LOCK(m) EnterCriticalSection(m)
#  define MUTEX_UNLOCK(m) LeaveCriticalSection(m)
#  define MUTEX_DESTROY(m) DeleteCriticalSection(m)
#endif

#define CACHE_SLOTS 256

typedef struct {
    int64_t key[20];
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[4]; /* a, b, bias, c (bias may be NULL) */
    uint64_t last_use;
} cache_entry;

typedef struct pt_onednn {
    dnnl_engine_t engine;
    pt_mutex lock;
    cache_entry cache[CACHE_SLOTS];
    uint64_t clock;
} pt_onednn;

static pt_status dnnl_fail(dnnl_status_t s, const char* what) {
    return pt_fail(s == dnnl_out_of_memory ? PT_ERR_OUT_OF_MEMORY : PT_ERR_BACKEND,
                   "oneDNN %s failed with status %d", what, (int)s);
}
#define DNNL_TRY(call, what)                      \
    do {                                          \
        dnnl_status_t s_ = (call);                \
        if (s_ != dnnl_success) { st = dnnl_fail(s_, what); goto done; } \
    } while (0)

uint32_t pt_onednn_version(void) {
    const dnnl_version_t* v = dnnl_version();
    return ((uint32_t)v->major << 16) | ((uint32_t)v->minor << 8) | (uint32_t)v->patch;
}

pt_status pt_onednn_init(pt_ctx* ctx) {
    pt_onednn* d = (pt_onednn*)calloc(1, sizeof *d);
    if (!d) return pt_fail(PT_ERR_OUT_OF_MEMORY, "oneDNN context: out of memory");
    dnnl_status_t s = dnnl_engine_create(&d->engine, dnnl_cpu, 0);
    if (s != dnnl_success) {
        free(d);
        return dnnl_fail(s, "engine creation");
    }
    MUTEX_INIT(&d->lock);
    ctx->onednn = d;
    return PT_OK;
}

void pt_onednn_free(pt_ctx* ctx) {
    pt_onednn* d = (pt_onednn*)ctx->onednn;
    if (!d) return;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (d->cache[i].prim) dnnl_primitive_destroy(d->cache[i].prim);
        for (int j = 0; j < 4; j++)
            if (d->cache[i].md[j]) dnnl_memory_desc_destroy(d->cache[i].md[j]);
    }
    dnnl_engine_destroy(d->engine);
    MUTEX_DESTROY(&d->lock);
    free(d);
    ctx->onednn = NULL;
}

static dnnl_data_type_t dt_of(int32_t dtype) {
    switch (dtype) {
    case PT_F32: return dnnl_f32;
    case PT_BF16: return dnnl_bf16;
    case PT_F16: return dnnl_f16;
    case PT_I8: return dnnl_s8;
    case PT_U8: return dnnl_u8;
    case PT_I32: return dnnl_s32;
    default: return dnnl_data_type_undef;
    }
}

static dnnl_alg_kind_t alg_of(int32_t act) {
    switch (act) {
    case PT_ACT_RELU: return dnnl_eltwise_relu;
    case PT_ACT_GELU_ERF: return dnnl_eltwise_gelu_erf;
    case PT_ACT_GELU_TANH: return dnnl_eltwise_gelu_tanh;
    case PT_ACT_SILU: return dnnl_eltwise_swish;
    default: return dnnl_alg_kind_undef;
    }
}

/* Builds (or finds) the primitive for problem `g` and runs it. */
pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g) {
    pt_onednn* d = (pt_onednn*)ctx->onednn;
    pt_status st = PT_OK;
    float alpha = g->alpha;
    int32_t nb = g->batch;
    /* key: everything that shapes the primitive */
    int64_t key[20] = {g->m, g->n, g->k, nb, g->a_dtype, g->c_dtype, g->lda, g->ldb, g->ldc,
                       g->batch_a, g->batch_b, g->batch_c, g->trans_b, g->bias != NULL,
                       g->activation, alpha != 1.0f, g->beta != 0.0f, 0, 0, 0};
    float beta = g->beta;
    memcpy(&key[17], &beta, sizeof beta);

    MUTEX_LOCK(&d->lock);
    cache_entry* e = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_entry* c = &d->cache[i];
        if (c->prim && memcmp(c->key, key, sizeof key) == 0) { e = c; break; }
    }
    if (e) e->last_use = ++d->clock;
    MUTEX_UNLOCK(&d->lock);

    dnnl_primitive_t prim = NULL;
    dnnl_memory_desc_t md[4] = {0};
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int owned = 0;
    if (e) {
        prim = e->prim;
        memcpy(md, e->md, sizeof md);
    } else {
        int nd = nb > 1 || g->batch_a || g->batch_b ? 3 : 2;
        dnnl_dims_t ad, bd, cd, as, bs, cs, biasd, biass;
        if (nd == 3) {
            ad[0] = nb; ad[1] = g->m; ad[2] = g->k;
            as[0] = g->batch_a ? g->batch_a : g->m * g->lda; as[1] = g->lda; as[2] = 1;
            bd[0] = g->batch_b ? nb : 1; bd[1] = g->k; bd[2] = g->n;
            if (g->trans_b) { bs[1] = 1; bs[2] = g->ldb; } else { bs[1] = g->ldb; bs[2] = 1; }
            bs[0] = g->batch_b ? g->batch_b : g->n * g->k;
            cd[0] = nb; cd[1] = g->m; cd[2] = g->n;
            cs[0] = g->batch_c ? g->batch_c : g->m * g->ldc; cs[1] = g->ldc; cs[2] = 1;
            biasd[0] = 1; biasd[1] = 1; biasd[2] = g->n; biass[0] = g->n; biass[1] = g->n; biass[2] = 1;
        } else {
            ad[0] = g->m; ad[1] = g->k; as[0] = g->lda; as[1] = 1;
            bd[0] = g->k; bd[1] = g->n;
            if (g->trans_b) { bs[0] = 1; bs[1] = g->ldb; } else { bs[0] = g->ldb; bs[1] = 1; }
            cd[0] = g->m; cd[1] = g->n; cs[0] = g->ldc; cs[1] = 1;
            biasd[0] = 1; biasd[1] = g->n; biass[0] = g->n; biass[1] = 1;
        }
        dnnl_data_type_t adt = dt_of(g->a_dtype), cdt = dt_of(g->c_dtype);
        DNNL_TRY(dnnl_memory_desc_create_with_strides(&md[0], nd, ad, adt, as), "memory desc");
        DNNL_TRY(dnnl_memory_desc_create_with_strides(&md[1], nd, bd, adt, bs), "memory desc");
        if (g->bias) DNNL_TRY(dnnl_memory_desc_create_with_strides(&md[2], nd, biasd, dnnl_f32, biass), "memory desc");
        DNNL_TRY(dnnl_memory_desc_create_with_strides(&md[3], nd, cd, cdt, cs), "memory desc");
        DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
        DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_library), "scratchpad");
        if (alpha != 1.0f) DNNL_TRY(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0), "scales");
        if (g->beta != 0.0f || g->activation != PT_ACT_NONE) {
            DNNL_TRY(dnnl_post_ops_create(&po), "post ops");
            if (g->beta != 0.0f) DNNL_TRY(dnnl_post_ops_append_sum(po, g->beta, 0, dnnl_data_type_undef), "sum post op");
            if (g->activation != PT_ACT_NONE)
                DNNL_TRY(dnnl_post_ops_append_eltwise(po, alg_of(g->activation), g->activation == PT_ACT_SILU ? 1.0f : 0.0f, 0.0f), "eltwise post op");
            DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po), "post ops");
        }
        DNNL_TRY(dnnl_matmul_primitive_desc_create(&pd, d->engine, md[0], md[1], md[2], md[3], attr), "matmul descriptor");
        DNNL_TRY(dnnl_primitive_create(&prim, pd), "matmul primitive");
        owned = 1;
        MUTEX_LOCK(&d->lock);
        /* another thread may have filled the same key meanwhile: keep ours private then */
        /* Entries are never evicted (another thread may be executing one); when the table
         * is full the primitive stays private to this call and is destroyed after it. */
        int dup = 0;
        cache_entry* victim = NULL;
        for (int i = 0; i < CACHE_SLOTS; i++) {
            if (d->cache[i].prim && memcmp(d->cache[i].key, key, sizeof key) == 0) { dup = 1; break; }
            if (!d->cache[i].prim && !victim) victim = &d->cache[i];
        }
        if (!dup && victim) {
            memcpy(victim->key, key, sizeof key);
            victim->prim = prim;
            memcpy(victim->md, md, sizeof md);
            victim->last_use = ++d->clock;
            owned = 0;
        }
        MUTEX_UNLOCK(&d->lock);
    }

    {
        dnnl_stream_t stream = NULL;
        dnnl_memory_t mem[5] = {0};
        dnnl_exec_arg_t args[6];
        int na = 0;
        DNNL_TRY(dnnl_memory_create(&mem[0], md[0], d->engine, (void*)g->a), "memory");
        DNNL_TRY(dnnl_memory_create(&mem[1], md[1], d->engine, (void*)g->b), "memory");
        DNNL_TRY(dnnl_memory_create(&mem[3], md[3], d->engine, g->c), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[3]};
        if (g->bias) {
            DNNL_TRY(dnnl_memory_create(&mem[2], md[2], d->engine, (void*)g->bias), "memory");
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[2]};
        }
        dnnl_memory_desc_t smd = NULL;
        if (alpha != 1.0f) {
            dnnl_dims_t one = {1};
            DNNL_TRY(dnnl_memory_desc_create_with_tag(&smd, 1, one, dnnl_f32, dnnl_a), "scale desc");
            DNNL_TRY(dnnl_memory_create(&mem[4], smd, d->engine, &alpha), "scale memory");
            args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, mem[4]};
        }
#if defined(_OPENMP)
        omp_set_num_threads(ctx->n_threads);
#endif
        DNNL_TRY(dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags), "stream");
        dnnl_status_t s = dnnl_primitive_execute(prim, stream, na, args);
        if (s == dnnl_success) s = dnnl_stream_wait(stream);
        if (s != dnnl_success) st = dnnl_fail(s, "matmul execution");
        dnnl_stream_destroy(stream);
        for (int i = 0; i < 5; i++) if (mem[i]) dnnl_memory_destroy(mem[i]);
        if (smd) dnnl_memory_desc_destroy(smd);
    }
done:
    if (owned) {
        if (prim) dnnl_primitive_destroy(prim);
        for (int j = 0; j < 4; j++) if (md[j]) dnnl_memory_desc_destroy(md[j]);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

#else /* built without oneDNN */

uint32_t pt_onednn_version(void) { return 0; }
pt_status pt_onednn_init(pt_ctx* ctx) { return pt_fail(PT_ERR_UNSUPPORTED, "built without oneDNN"); }
void pt_onednn_free(pt_ctx* ctx) {}
pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g) {
    return pt_fail(PT_ERR_UNSUPPORTED, "built without oneDNN");
}

#endif
