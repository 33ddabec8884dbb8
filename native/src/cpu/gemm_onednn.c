/* Dense matmul through oneDNN 3.x (f32, bf16).
 *
 * Semantics (the same as our kernels): c = act(alpha * a @ op(b) + bias + beta * c), with
 *   alpha -> a runtime scale on SRC (bias is not scaled, as oneDNN adds it after the scales),
 *   beta  -> a sum post-op (dst_old read in the dst data type), act -> an eltwise post-op
 *   after it (SiLU is swish with alpha 1).
 *
 * Threads: oneDNN's OpenMP runtime uses omp_get_max_threads() of the calling thread, both
 * when a primitive is created (it fixes its work split then) and when it runs. We set it to
 * ctx->n_threads around both and restore the caller's value afterwards.
 *
 * Sharing: a context may be used by several threads at once. Primitives are cached per
 * context by problem signature (a refcounted, LRU-evicted table). They are created with
 * dnnl_scratchpad_mode_user and every execution passes its own thread-local scratchpad: in
 * the default (library) mode oneDNN's scratchpad is global, and a primitive may neither run
 * concurrently nor migrate between threads. */
#include "common/internal.h"
#include "cpu/gemm.h"

#if defined(PT_HAVE_ONEDNN)
#include <oneapi/dnnl/dnnl.h>
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

#define CACHE_SLOTS 128
#define KEY_LEN 18
#define SCRATCH_SLOT 3 /* pt_scratch slot for oneDNN's scratchpad (ours use 0..2) */
#define SCRATCH_SLOT_S8 4 /* the same for the s8 matmul (the int8 driver keeps its columns in 3) */

typedef struct {
    dnnl_primitive_t prim;
    dnnl_memory_desc_t md[6]; /* a, b, bias (or NULL), c, scratchpad (or NULL), the s8 matmul's added tensor (or NULL) */
    size_t scratch_bytes;
} prim_set;

typedef struct {
    int64_t key[KEY_LEN];
    prim_set p;
    uint64_t last_use;
    int32_t refs;             /* executions in flight: never evicted while > 0 */
    int32_t used;
} cache_entry;

typedef struct pt_onednn {
    dnnl_engine_t engine;
    pt_mutex lock;
    uint64_t clock;
    cache_entry cache[CACHE_SLOTS];
} pt_onednn;

static pt_status dnnl_fail(dnnl_status_t s, const char* what, const pt_gemm_problem* g) {
    pt_status st = s == dnnl_out_of_memory ? PT_ERR_OUT_OF_MEMORY : s == dnnl_unimplemented ? PT_ERR_UNSUPPORTED : PT_ERR_BACKEND;
    return pt_fail(st, "oneDNN %s failed with status %d (matmul %s M=%lld N=%lld K=%lld batch=%lld)", what, (int)s,
                   pt_dtype_name(g->a_dtype), (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
}
#define DNNL_TRY(call, what)                                                        \
    do {                                                                            \
        dnnl_status_t s_ = (call);                                                  \
        if (s_ != dnnl_success) { st = dnnl_fail(s_, what, g); goto done; }         \
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
        return pt_fail(PT_ERR_BACKEND, "oneDNN CPU engine creation failed with status %d", (int)s);
    }
    MUTEX_INIT(&d->lock);
    ctx->onednn = d;
    return PT_OK;
}

static void prim_set_free(prim_set* p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    for (int j = 0; j < 6; j++)
        if (p->md[j]) dnnl_memory_desc_destroy(p->md[j]);
    memset(p, 0, sizeof *p);
}

void pt_onednn_free(pt_ctx* ctx) {
    pt_onednn* d = (pt_onednn*)ctx->onednn;
    if (!d) return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (d->cache[i].used) prim_set_free(&d->cache[i].p);
    dnnl_engine_destroy(d->engine);
    MUTEX_DESTROY(&d->lock);
    free(d);
    ctx->onednn = NULL;
}

static dnnl_data_type_t dt_of(int32_t dtype) {
    switch (dtype) {
    case PT_F32: return dnnl_f32;
    case PT_BF16: return dnnl_bf16;
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

/* Creates the primitive for g (with the calling thread's OpenMP thread count already set). */
static pt_status create_prim(pt_onednn* d, const pt_gemm_problem* g, prim_set* out) {
    pt_status st = PT_OK;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    prim_set p;
    memset(&p, 0, sizeof p);
    const int nd = g->batch > 1 ? 3 : 2;
    dnnl_dims_t ad, bd, cd, as, bs, cs, biasd, biass;
    if (nd == 3) {
        ad[0] = g->batch; ad[1] = g->m; ad[2] = g->k;
        as[0] = g->batch_a; as[1] = g->lda; as[2] = 1;
        bd[0] = g->batch_b ? g->batch : 1; bd[1] = g->k; bd[2] = g->n;   /* 1: broadcast */
        bs[0] = g->batch_b ? g->batch_b : g->n * g->k;
        if (g->trans_b) { bs[1] = 1; bs[2] = g->ldb; } else { bs[1] = g->ldb; bs[2] = 1; }
        cd[0] = g->batch; cd[1] = g->m; cd[2] = g->n;
        cs[0] = g->batch_c; cs[1] = g->ldc; cs[2] = 1;
        biasd[0] = 1; biasd[1] = 1; biasd[2] = g->n; biass[0] = g->n; biass[1] = g->n; biass[2] = 1;
    } else {
        ad[0] = g->m; ad[1] = g->k; as[0] = g->lda; as[1] = 1;
        bd[0] = g->k; bd[1] = g->n;
        if (g->trans_b) { bs[0] = 1; bs[1] = g->ldb; } else { bs[0] = g->ldb; bs[1] = 1; }
        cd[0] = g->m; cd[1] = g->n; cs[0] = g->ldc; cs[1] = 1;
        biasd[0] = 1; biasd[1] = g->n; biass[0] = g->n; biass[1] = 1;
    }
    dnnl_data_type_t adt = dt_of(g->a_dtype), cdt = dt_of(g->c_dtype);
    DNNL_TRY(dnnl_memory_desc_create_with_strides(&p.md[0], nd, ad, adt, as), "memory desc");
    DNNL_TRY(dnnl_memory_desc_create_with_strides(&p.md[1], nd, bd, adt, bs), "memory desc");
    if (g->bias) DNNL_TRY(dnnl_memory_desc_create_with_strides(&p.md[2], nd, biasd, dnnl_f32, biass), "memory desc");
    DNNL_TRY(dnnl_memory_desc_create_with_strides(&p.md[3], nd, cd, cdt, cs), "memory desc");
    DNNL_TRY(dnnl_primitive_attr_create(&attr), "attr");
    DNNL_TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    if (g->alpha != 1.0f) DNNL_TRY(dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_SRC, 0), "scales");
    if (g->beta != 0.0f || g->activation != PT_ACT_NONE) {
        DNNL_TRY(dnnl_post_ops_create(&po), "post ops");
        if (g->beta != 0.0f) DNNL_TRY(dnnl_post_ops_append_sum(po, g->beta, 0, dnnl_data_type_undef), "sum post op");
        if (g->activation != PT_ACT_NONE)
            DNNL_TRY(dnnl_post_ops_append_eltwise(po, alg_of(g->activation), g->activation == PT_ACT_SILU ? 1.0f : 0.0f, 0.0f),
                     "eltwise post op");
        DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, po), "post ops");
    }
    DNNL_TRY(dnnl_matmul_primitive_desc_create(&pd, d->engine, p.md[0], p.md[1], p.md[2], p.md[3], attr), "matmul descriptor");
    const_dnnl_memory_desc_t smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    p.scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
    if (p.scratch_bytes) DNNL_TRY(dnnl_memory_desc_clone(&p.md[4], smd), "scratchpad desc");
    DNNL_TRY(dnnl_primitive_create(&p.prim, pd), "matmul primitive");
done:
    /* a problem oneDNN cannot express or implement is served by our kernels instead */
    if (st == PT_ERR_BACKEND) st = PT_ERR_UNSUPPORTED;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (st != PT_OK) prim_set_free(&p);
    else *out = p;
    return st;
}

static pt_status execute(pt_onednn* d, const pt_gemm_problem* g, const prim_set* p) {
    pt_status st = PT_OK;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t mem[6] = {0};
    dnnl_memory_desc_t smd = NULL;
    dnnl_exec_arg_t args[6];
    int na = 0;
    float alpha = g->alpha;
    void* scratch = NULL;
    if (p->scratch_bytes) {
        scratch = pt_scratch(SCRATCH_SLOT, p->scratch_bytes);
        if (!scratch) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_matmul: cannot allocate %zu bytes of oneDNN scratchpad", p->scratch_bytes);
    }
    DNNL_TRY(dnnl_memory_create(&mem[0], p->md[0], d->engine, (void*)g->a), "memory");
    DNNL_TRY(dnnl_memory_create(&mem[1], p->md[1], d->engine, (void*)g->b), "memory");
    DNNL_TRY(dnnl_memory_create(&mem[3], p->md[3], d->engine, g->c), "memory");
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[3]};
    if (g->bias) {
        DNNL_TRY(dnnl_memory_create(&mem[2], p->md[2], d->engine, (void*)g->bias), "memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[2]};
    }
    if (alpha != 1.0f) {
        dnnl_dims_t one = {1};
        DNNL_TRY(dnnl_memory_desc_create_with_tag(&smd, 1, one, dnnl_f32, dnnl_a), "scale desc");
        DNNL_TRY(dnnl_memory_create(&mem[4], smd, d->engine, &alpha), "scale memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, mem[4]};
    }
    if (scratch) {
        DNNL_TRY(dnnl_memory_create(&mem[5], p->md[4], d->engine, scratch), "scratchpad memory");
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[5]};
    }
    DNNL_TRY(dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags), "stream");
    DNNL_TRY(dnnl_primitive_execute(p->prim, stream, na, args), "matmul execution");
    DNNL_TRY(dnnl_stream_wait(stream), "matmul execution");
done:
    if (stream) dnnl_stream_destroy(stream);
    for (int i = 0; i < 6; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    if (smd) dnnl_memory_desc_destroy(smd);
    return st;
}

/* The primitive cache: runs the primitive cached under key (made by make on a miss, then
 * published: a free slot, else the least recently used one nobody is running; if another thread
 * published the same key meanwhile, or every slot is busy, ours stays private to this call), on
 * ctx's threads. */
typedef pt_status (*prim_make_fn)(pt_onednn* d, const void* arg, prim_set* out);
typedef pt_status (*prim_run_fn)(pt_onednn* d, const void* arg, const prim_set* p);

#define KEY_BYTES (KEY_LEN * sizeof(int64_t))
static pt_status run_cached(pt_ctx* ctx, const int64_t key[KEY_LEN], prim_make_fn make, prim_run_fn run, const void* arg, int nthr) {
    pt_onednn* d = (pt_onednn*)ctx->onednn;
#if defined(_OPENMP)
    const int prev_threads = omp_get_max_threads();
    omp_set_num_threads(nthr > 0 ? nthr : ctx->n_threads);
#endif
    /* oneDNN's OpenMP team is about to run (not a one-thread primitive on a worker of ours): our
     * pool's workers sleep meanwhile instead of spinning on the cores it needs */
    if (nthr != 1) pt_parallel_park();
    pt_status st = PT_OK;
    cache_entry* e = NULL;
    MUTEX_LOCK(&d->lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (d->cache[i].used && memcmp(d->cache[i].key, key, KEY_BYTES) == 0) { e = &d->cache[i]; break; }
    if (e) { e->refs++; e->last_use = ++d->clock; }
    MUTEX_UNLOCK(&d->lock);

    if (e) {
        st = run(d, arg, &e->p);
        MUTEX_LOCK(&d->lock);
        e->refs--;
        MUTEX_UNLOCK(&d->lock);
    } else {
        prim_set p;
        st = make(d, arg, &p);
        if (st == PT_OK) {
            MUTEX_LOCK(&d->lock);
            cache_entry* slot = NULL;
            int dup = 0;
            for (int i = 0; i < CACHE_SLOTS && !dup; i++) {
                cache_entry* c = &d->cache[i];
                if (c->used && memcmp(c->key, key, KEY_BYTES) == 0) dup = 1;
                else if (!c->used) { if (!slot || slot->used) slot = c; }
                else if (c->refs == 0 && (!slot || (slot->used && c->last_use < slot->last_use))) slot = c;
            }
            prim_set old;
            memset(&old, 0, sizeof old);
            int owned = 1;
            if (!dup && slot) {
                if (slot->used) old = slot->p;
                memcpy(slot->key, key, KEY_BYTES);
                slot->p = p;
                slot->used = 1;
                slot->refs = 1;
                slot->last_use = ++d->clock;
                e = slot;
                owned = 0;
            }
            MUTEX_UNLOCK(&d->lock);
            prim_set_free(&old);
            st = run(d, arg, &p);
            if (owned) prim_set_free(&p);
            else {
                MUTEX_LOCK(&d->lock);
                e->refs--;
                MUTEX_UNLOCK(&d->lock);
            }
        }
    }
#if defined(_OPENMP)
    omp_set_num_threads(prev_threads);
#endif
    return st;
}

static pt_status make_f(pt_onednn* d, const void* arg, prim_set* out) { return create_prim(d, (const pt_gemm_problem*)arg, out); }
static pt_status run_f(pt_onednn* d, const void* arg, const prim_set* p) { return execute(d, (const pt_gemm_problem*)arg, p); }

pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g) {
    /* oneDNN 3.13's bf16 (AMX brgemm) matmul reads a's row padding past K when rows are
     * strided (lda > K, K not a multiple of 32): NaN or Inf there leaks into c (test_gemm's
     * poisoned padding shows it). Our kernels serve those problems. */
    if (g->a_dtype == PT_BF16 && g->m > 1 && g->lda != g->k) return PT_ERR_UNSUPPORTED;
    /* everything that shapes the primitive (alpha is a runtime argument, beta is baked in) */
    int64_t key[KEY_LEN] = {g->m, g->n, g->k, g->batch, g->a_dtype, g->c_dtype, g->lda, g->ldb, g->ldc, g->batch_a, g->batch_b,
                            g->batch_c, g->trans_b, g->bias != NULL, g->activation, g->alpha != 1.0f, 0, 0};
    memcpy(&key[16], &g->beta, sizeof g->beta);
    return run_cached(ctx, key, make_f, run_f, g, 0);
}

/* ---------------------------------------------------------------- s8 matmul (int8 GEMM)
 * y[m, n] = act(sx[m] * ws[n] * sum_k a[m, k] b[k, n] + bias[n]), a s8
 * [M, K] (row stride lda), b [K, N] s8 in oneDNN's BA16a32b4a layout (blocks of 32 columns,
 * each [K/64][16][32][4], K padded with zeros to 64, N to 64): exactly pt_pack_int8_weight's
 * blocks (the layout oneDNN picks itself for these shapes). sx are per-row ("per-token", one group of K) src scales, ws per-column weight
 * scales. Primitives are cached with the f32 ones (key batch = -8). */
static pt_status create_s8(pt_onednn* d, const pt_onednn_s8_problem* q, prim_set* out) {
    dnnl_status_t s = dnnl_success;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    prim_set p;
    memset(&p, 0, sizeof p);
    dnnl_dims_t ad = {q->m, q->k}, as = {q->lda, 1}, bd = {q->k, q->n}, cd = {q->m, q->n}, cs = {q->ldy, 1};
    dnnl_dims_t biasd = {1, q->n}, groups = {1, q->k};
    if ((s = dnnl_memory_desc_create_with_strides(&p.md[0], 2, ad, dnnl_s8, as)) != dnnl_success) goto done;
    if ((s = dnnl_memory_desc_create_with_tag(&p.md[1], 2, bd, dnnl_s8, dnnl_BA16a32b4a)) != dnnl_success) goto done;
    if (q->bias && (s = dnnl_memory_desc_create_with_tag(&p.md[2], 2, biasd, dnnl_f32, dnnl_ab)) != dnnl_success) goto done;
    if ((s = dnnl_memory_desc_create_with_strides(&p.md[3], 2, cd, dt_of(q->y_dtype), cs)) != dnnl_success) goto done;
    if ((s = dnnl_primitive_attr_create(&attr)) != dnnl_success) goto done;
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user)) != dnnl_success) goto done;
    if ((s = dnnl_primitive_attr_set_scales(attr, DNNL_ARG_SRC, 3, 2, groups, dnnl_f32)) != dnnl_success) goto done;
    if ((s = dnnl_primitive_attr_set_scales_mask(attr, DNNL_ARG_WEIGHTS, 1 << 1)) != dnnl_success) goto done;
    if (q->activation != PT_ACT_NONE || q->add) {
        if ((s = dnnl_post_ops_create(&po)) != dnnl_success) goto done;
        if (q->add) { /* + add [m, n] f32 (post-op 0), then the activation */
            dnnl_dims_t addst = {q->ldadd, 1};
            if ((s = dnnl_memory_desc_create_with_strides(&p.md[5], 2, cd, dnnl_f32, addst)) != dnnl_success) goto done;
            if ((s = dnnl_post_ops_append_binary(po, dnnl_binary_add, p.md[5])) != dnnl_success) goto done;
        }
        if (q->activation != PT_ACT_NONE &&
            (s = dnnl_post_ops_append_eltwise(po, alg_of(q->activation), q->activation == PT_ACT_SILU ? 1.0f : 0.0f, 0.0f)) != dnnl_success)
            goto done;
        if ((s = dnnl_primitive_attr_set_post_ops(attr, po)) != dnnl_success) goto done;
    }
    if ((s = dnnl_matmul_primitive_desc_create(&pd, d->engine, p.md[0], p.md[1], p.md[2], p.md[3], attr)) != dnnl_success) goto done;
    {
        const char* impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        /* only oneDNN's fast (brgemm) kernels are worth the detour; ours serve the rest */
        if (!impl || strncmp(impl, "brg", 3) != 0) { s = dnnl_unimplemented; goto done; }
    }
    {
        const_dnnl_memory_desc_t smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        p.scratch_bytes = smd ? dnnl_memory_desc_get_size(smd) : 0;
        if (p.scratch_bytes && (s = dnnl_memory_desc_clone(&p.md[4], smd)) != dnnl_success) goto done;
    }
    s = dnnl_primitive_create(&p.prim, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success) {
        prim_set_free(&p);
        return s == dnnl_out_of_memory ? PT_ERR_OUT_OF_MEMORY : PT_ERR_UNSUPPORTED;
    }
    *out = p;
    return PT_OK;
}

static pt_status execute_s8(pt_onednn* d, const pt_onednn_s8_problem* q, const prim_set* p) {
    dnnl_status_t s = dnnl_success;
    dnnl_stream_t stream = NULL;
    dnnl_memory_t mem[8] = {0};
    dnnl_memory_desc_t smd = NULL, wmd = NULL;
    dnnl_exec_arg_t args[8];
    int na = 0;
    void* scratch = NULL;
    if (p->scratch_bytes) {
        scratch = pt_scratch(SCRATCH_SLOT_S8, p->scratch_bytes);
        if (!scratch) return PT_ERR_OUT_OF_MEMORY;
    }
    dnnl_dims_t sd = {q->m, 1}, wd = {q->n};
    if ((s = dnnl_memory_desc_create_with_tag(&smd, 2, sd, dnnl_f32, dnnl_ab)) != dnnl_success) goto done;
    if ((s = dnnl_memory_desc_create_with_tag(&wmd, 1, wd, dnnl_f32, dnnl_a)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mem[0], p->md[0], d->engine, (void*)q->a)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mem[1], p->md[1], d->engine, (void*)q->b)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mem[2], p->md[3], d->engine, q->y)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mem[3], smd, d->engine, (void*)q->sx)) != dnnl_success) goto done;
    if ((s = dnnl_memory_create(&mem[4], wmd, d->engine, (void*)q->ws)) != dnnl_success) goto done;
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, mem[0]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, mem[1]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_DST, mem[2]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_SRC, mem[3]};
    args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_SCALES | DNNL_ARG_WEIGHTS, mem[4]};
    if (q->bias) {
        if ((s = dnnl_memory_create(&mem[5], p->md[2], d->engine, (void*)q->bias)) != dnnl_success) goto done;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mem[5]};
    }
    if (q->add) {
        if ((s = dnnl_memory_create(&mem[7], p->md[5], d->engine, (void*)q->add)) != dnnl_success) goto done;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, mem[7]};
    }
    if (scratch) {
        if ((s = dnnl_memory_create(&mem[6], p->md[4], d->engine, scratch)) != dnnl_success) goto done;
        args[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, mem[6]};
    }
    if ((s = dnnl_stream_create(&stream, d->engine, dnnl_stream_default_flags)) != dnnl_success) goto done;
    if ((s = dnnl_primitive_execute(p->prim, stream, na, args)) != dnnl_success) goto done;
    s = dnnl_stream_wait(stream);
done:
    if (stream) dnnl_stream_destroy(stream);
    for (int i = 0; i < 8; i++)
        if (mem[i]) dnnl_memory_destroy(mem[i]);
    if (smd) dnnl_memory_desc_destroy(smd);
    if (wmd) dnnl_memory_desc_destroy(wmd);
    if (s == dnnl_success) return PT_OK;
    return pt_fail(s == dnnl_out_of_memory ? PT_ERR_OUT_OF_MEMORY : PT_ERR_BACKEND,
                   "oneDNN s8 matmul execution failed with status %d (M=%lld N=%lld K=%lld)", (int)s, (long long)q->m, (long long)q->n,
                   (long long)q->k);
}

static pt_status make_s8(pt_onednn* d, const void* arg, prim_set* out) { return create_s8(d, (const pt_onednn_s8_problem*)arg, out); }
static pt_status run_s8(pt_onednn* d, const void* arg, const prim_set* p) { return execute_s8(d, (const pt_onednn_s8_problem*)arg, p); }

pt_status pt_matmul_onednn_s8(pt_ctx* ctx, const pt_onednn_s8_problem* q) {
    if (!ctx->onednn) return PT_ERR_UNSUPPORTED;
    /* batch = -8 keeps these keys apart from pt_matmul_onednn's (batch >= 1) */
    /* (threads: a primitive made for one thread has its own blocking) */
    int64_t key[KEY_LEN] = {q->m, q->n, q->k, -8, PT_I8, q->y_dtype, q->lda, 0, q->ldy, q->bias != NULL, q->activation, q->threads,
                            q->add != NULL, q->add ? q->ldadd : 0, 0, 0, 0, 0};
    return run_cached(ctx, key, make_s8, run_s8, q, q->threads);
}

#else /* built without oneDNN */

uint32_t pt_onednn_version(void) { return 0; }
pt_status pt_onednn_init(pt_ctx* ctx) { (void)ctx; return pt_fail(PT_ERR_UNSUPPORTED, "built without oneDNN"); }
void pt_onednn_free(pt_ctx* ctx) { (void)ctx; }
pt_status pt_matmul_onednn(pt_ctx* ctx, const pt_gemm_problem* g) {
    (void)ctx; (void)g;
    return pt_fail(PT_ERR_UNSUPPORTED, "built without oneDNN");
}

pt_status pt_matmul_onednn_s8(pt_ctx* ctx, const pt_onednn_s8_problem* q) {
    (void)ctx; (void)q;
    return PT_ERR_UNSUPPORTED;
}

#endif
