/* Block-sparse weights (issue 5): block norms, magnitude block pruning, dense -> BSR
 * conversion, densification, and the SpMM y = act(x . W + bias) for f32, bf16 and int8 blocks.
 *
 * The BSR buffer (one blob, offsets relative to its start, every section 64-byte aligned):
 *   header (bsr_hdr, 192 bytes)
 *   rowptr  i64 [NB + 1]      kept blocks of block row nb are rowptr[nb] .. rowptr[nb+1]-1
 *   col     i32 [kept]        their K-block indices kb, ascending
 *   vals    kept blocks, bk * bn values each (zero-padded past K and N):
 *           f32 / bf16 [bk][bn];  s8 [bk/4][bn][4] when bk % 4 == 0 (VNNI order), else [bk][bn]
 *   scale   f32 [N]            int8 only: per-channel dequantization scale
 *   colsum  i32 [N]            int8 only: sum over k of q[k, n] (undoes VNNI's +128 shift)
 *
 * SpMM work split: groups of block rows covering >= 16 output channels, in parallel; each
 * group runs over M in tiles of up to 128 rows. The AVX-512 kernels (spmm_bsr_avx512.c) work
 * on transposed activations (see spmm_bsr.h) and write a transposed tile that the epilogue
 * here turns into rows of y (bias, int8 dequantization, activation, f32/bf16 store). The AMX
 * path (int8 64x16 / 64x32 blocks, spmm_bsr_amx.c) instead works on 64-row panels of x (split
 * into ranges of block rows when there are fewer than 2 panels per thread) with its own fused
 * row epilogue. */
#include "cpu/spmm_bsr.h"
#include "cpu/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define BSR_MAGIC 0x3152535254500000ULL /* "\0\0PTRSB1" little-endian-ish tag */
#define BSR_VERSION 1

typedef struct bsr_hdr {
    uint64_t magic;
    int32_t version, dtype;
    int64_t k, n;
    int32_t bk, bn;
    int64_t kb, nb, kept;
    int64_t off_rowptr, off_col, off_vals, off_scale, off_colsum, bytes, value_bytes;
    int64_t reserved[6];
} bsr_hdr;

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t al64(int64_t a) { return (a + 63) & ~(int64_t)63; }
static inline float rne(float v) { return (v + 12582912.0f) - 12582912.0f; }
static int vnni_order(const bsr_hdr* h) { return h->dtype == PT_I8 && h->bk % 4 == 0; }

/* Index (in elements) of weight (p, i) inside a block. */
static inline int64_t blk_index(int vnni, int bk, int bn, int p, int i) {
    (void)bk;
    return vnni ? ((int64_t)(p >> 2) * bn + i) * 4 + (p & 3) : (int64_t)p * bn + i;
}

/* ================================================================ dense weight access */

typedef struct {
    const pt_tensor* w;
    int32_t trans_b;
    int64_t k, n;
} wview;

static pt_status check_weight(const char* fn, const pt_tensor* w, int32_t trans_b, int32_t bk, int32_t bn, wview* v) {
    char name[96];
    snprintf(name, sizeof name, "%s w", fn);
    PT_CHECK(pt_check_dtype(w, name, 2, PT_F32, PT_BF16));
    if (w->ndim != 2) {
        char d[96];
        pt_describe(w, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "%s: w must be 2-D ([K, N], or [N, K] with trans_b), got %s", fn, d);
    }
    if (trans_b != 0 && trans_b != 1) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: trans_b must be 0 or 1, got %d", fn, trans_b);
    if (bk < 1 || bk > 64 || bn < 1 || bn > 64)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: block must be block_k x block_n with both in 1..64, got %d x %d", fn, bk, bn);
    v->w = w;
    v->trans_b = trans_b;
    v->k = trans_b ? w->shape[1] : w->shape[0];
    v->n = trans_b ? w->shape[0] : w->shape[1];
    return PT_OK;
}

static inline float wval(const wview* v, int64_t k, int64_t n) {
    const char* p = pt_row_ptr(v->w, v->trans_b ? n : k);
    int64_t j = v->trans_b ? k : n;
    return v->w->dtype == PT_F32 ? ((const float*)p)[j] : pt_bf16_to_f32(((const uint16_t*)p)[j]);
}

/* norms[kb * NB + nb] (f64 sums, stored f32); fails on a non-finite weight. */
static pt_status compute_norms(const char* fn, const wview* v, int bk, int bn, float* norms) {
    const int64_t KB = cdiv(v->k, bk), NB = cdiv(v->n, bn);
    double* acc = (double*)calloc((size_t)(NB > 0 ? NB : 1), sizeof(double));
    float* row = (float*)malloc((size_t)((v->trans_b ? v->k : v->n) + 1) * sizeof(float));
    if (!acc || !row) {
        free(acc);
        free(row);
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate norm scratch", fn);
    }
    pt_status st = PT_OK;
    if (!v->trans_b) {
        for (int64_t kb = 0; kb < KB && st == PT_OK; kb++) {
            for (int64_t nb = 0; nb < NB; nb++) acc[nb] = 0.0;
            for (int64_t k = kb * bk; k < v->k && k < (kb + 1) * bk; k++) {
                pt_load_row_f32(pt_row_ptr(v->w, k), v->w->dtype, v->n, row);
                for (int64_t n = 0; n < v->n; n++) {
                    if (!isfinite(row[n])) {
                        st = pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: w[%lld, %lld] = %g is not finite", fn, (long long)k, (long long)n,
                                     (double)row[n]);
                        break;
                    }
                    acc[n / bn] += (double)row[n] * row[n];
                }
                if (st != PT_OK) break;
            }
            for (int64_t nb = 0; nb < NB; nb++) norms[kb * NB + nb] = (float)sqrt(acc[nb]);
        }
    } else {
        /* w [N, K]: block row of bn channels */
        double* kacc = (double*)calloc((size_t)(KB > 0 ? KB : 1), sizeof(double));
        if (!kacc) st = pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate norm scratch", fn);
        for (int64_t nb = 0; nb < NB && st == PT_OK; nb++) {
            for (int64_t kb = 0; kb < KB; kb++) kacc[kb] = 0.0;
            for (int64_t n = nb * bn; n < v->n && n < (nb + 1) * bn; n++) {
                pt_load_row_f32(pt_row_ptr(v->w, n), v->w->dtype, v->k, row);
                for (int64_t k = 0; k < v->k; k++) {
                    if (!isfinite(row[k])) {
                        st = pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: w[%lld, %lld] = %g is not finite", fn, (long long)n, (long long)k,
                                     (double)row[k]);
                        break;
                    }
                    kacc[k / bk] += (double)row[k] * row[k];
                }
                if (st != PT_OK) break;
            }
            for (int64_t kb = 0; kb < KB; kb++) norms[kb * NB + nb] = (float)sqrt(kacc[kb]);
        }
        free(kacc);
    }
    free(acc);
    free(row);
    return st;
}

pt_status pt_bsr_block_norms(pt_ctx* ctx, const pt_tensor* w, int32_t trans_b, int32_t block_k, int32_t block_n, pt_tensor* norms) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    wview v;
    PT_CHECK(check_weight("pt_bsr_block_norms", w, trans_b, block_k, block_n, &v));
    PT_CHECK(pt_check_dtype(norms, "pt_bsr_block_norms norms", 1, PT_F32));
    const int64_t KB = cdiv(v.k, block_k), NB = cdiv(v.n, block_n);
    if (norms->ndim != 2 || norms->shape[0] != KB || norms->shape[1] != NB) {
        char d[96];
        pt_describe(norms, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "pt_bsr_block_norms: norms must be f32[%lld, %lld] (KB = ceil(K=%lld / %d), NB = ceil(N=%lld / %d)), got %s",
                       (long long)KB, (long long)NB, (long long)v.k, block_k, (long long)v.n, block_n, d);
    }
    if (KB == 0 || NB == 0) return PT_OK;
    float* tmp = (float*)malloc((size_t)(KB * NB) * sizeof(float));
    if (!tmp) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_bsr_block_norms: cannot allocate %lld norms", (long long)(KB * NB));
    pt_status st = compute_norms("pt_bsr_block_norms", &v, block_k, block_n, tmp);
    if (st == PT_OK)
        for (int64_t kb = 0; kb < KB; kb++) memcpy(pt_row_ptr(norms, kb), tmp + kb * NB, (size_t)NB * sizeof(float));
    free(tmp);
    return st;
}

/* ================================================================ pruning + conversion */

typedef struct { float norm; int64_t idx; } nidx;

static int cmp_nidx(const void* a, const void* b) {
    const nidx* x = (const nidx*)a;
    const nidx* y = (const nidx*)b;
    if (x->norm != y->norm) return x->norm > y->norm ? -1 : 1; /* larger norm first */
    return x->idx < y->idx ? -1 : x->idx > y->idx ? 1 : 0;     /* then smaller index */
}

/* keep[kb * NB + nb] per the selection. */
static pt_status select_blocks(const char* fn, const pt_bsr_params* p, const float* norms, int64_t KB, int64_t NB, uint8_t* keep) {
    const int64_t total = KB * NB;
    if (p->select == PT_BSR_SPARSITY) {
        int64_t prune = (int64_t)floor(p->sparsity * (double)total + 0.5);
        if (prune > total) prune = total;
        int64_t nkeep = total - prune;
        memset(keep, 0, (size_t)total);
        if (nkeep == total) {
            memset(keep, 1, (size_t)total);
        } else if (nkeep > 0) {
            nidx* order = (nidx*)malloc((size_t)total * sizeof(nidx));
            if (!order) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the sort of %lld blocks", fn, (long long)total);
            for (int64_t i = 0; i < total; i++) { order[i].norm = norms[i]; order[i].idx = i; }
            qsort(order, (size_t)total, sizeof(nidx), cmp_nidx);
            for (int64_t i = 0; i < nkeep; i++) keep[order[i].idx] = 1;
            free(order);
        }
    } else if (p->select == PT_BSR_THRESHOLD) {
        for (int64_t i = 0; i < total; i++) keep[i] = (double)norms[i] >= p->threshold;
    } else {
        const pt_tensor* m = p->mask;
        for (int64_t kb = 0; kb < KB; kb++) {
            const uint8_t* r = (const uint8_t*)pt_row_ptr(m, kb);
            for (int64_t nb = 0; nb < NB; nb++) keep[kb * NB + nb] = r[nb] != 0;
        }
    }
    return PT_OK;
}

static void layout(bsr_hdr* h) {
    const int64_t es = (int64_t)pt_dtype_size(h->dtype);
    int64_t off = al64((int64_t)sizeof(bsr_hdr));
    h->off_rowptr = off;
    off = al64(off + (h->nb + 1) * 8);
    h->off_col = off;
    off = al64(off + h->kept * 4);
    h->off_vals = off;
    int64_t vb = h->kept * h->bk * h->bn * es;
    off = al64(off + vb);
    h->off_scale = h->off_colsum = 0;
    if (h->dtype == PT_I8) {
        h->off_scale = off;
        off = al64(off + h->n * 4);
        h->off_colsum = off;
        off = al64(off + h->n * 4);
        vb += h->n * 4;
    }
    h->bytes = off;
    h->value_bytes = vb;
}

pt_status pt_bsr_from_dense(pt_ctx* ctx, const pt_tensor* w, const pt_bsr_params* params, void* out, int64_t capacity,
                            int64_t* bytes) {
    pt_clear_error();
    static const char* fn = "pt_bsr_from_dense";
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params is NULL", fn);
    if (!bytes) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bytes is NULL", fn);
    const pt_bsr_params p = *params;
    wview v;
    PT_CHECK(check_weight(fn, w, p.trans_b, p.block_k, p.block_n, &v));
    if (p.dtype != PT_F32 && p.dtype != PT_BF16 && p.dtype != PT_I8)
        return pt_fail(PT_ERR_DTYPE, "%s: params->dtype must be f32, bf16 or i8, got %s", fn, pt_dtype_name(p.dtype));
    const int bk = p.block_k, bn = p.block_n;
    const int64_t KB = cdiv(v.k, bk), NB = cdiv(v.n, bn), total = KB * NB;
    if (p.select == PT_BSR_SPARSITY) {
        if (!(p.sparsity >= 0.0 && p.sparsity <= 1.0))
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->sparsity must be in [0, 1], got %g", fn, p.sparsity);
    } else if (p.select == PT_BSR_THRESHOLD) {
        if (!(p.threshold >= 0.0)) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->threshold must be >= 0, got %g", fn, p.threshold);
    } else if (p.select == PT_BSR_MASK) {
        if (!p.mask) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->mask is NULL with select = PT_BSR_MASK", fn);
        PT_CHECK(pt_check_dtype(p.mask, "pt_bsr_from_dense params->mask", 1, PT_U8));
        if (p.mask->ndim != 2 || p.mask->shape[0] != KB || p.mask->shape[1] != NB) {
            char d[96];
            pt_describe(p.mask, d, sizeof d);
            return pt_fail(PT_ERR_SHAPE, "%s: params->mask must be u8[%lld, %lld] (the block grid of K=%lld, N=%lld with %dx%d blocks), got %s",
                           fn, (long long)KB, (long long)NB, (long long)v.k, (long long)v.n, bk, bn, d);
        }
    } else {
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: params->select must be 0..2 (pt_bsr_select), got %d", fn, p.select);
    }
    float* norms = (float*)malloc((size_t)(total > 0 ? total : 1) * sizeof(float));
    uint8_t* keep = (uint8_t*)malloc((size_t)(total > 0 ? total : 1));
    if (!norms || !keep) {
        free(norms);
        free(keep);
        return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate %lld block norms", fn, (long long)total);
    }
    pt_status st = total > 0 ? compute_norms(fn, &v, bk, bn, norms) : PT_OK;
    if (st == PT_OK && total > 0) st = select_blocks(fn, &p, norms, KB, NB, keep);
    free(norms);
    if (st != PT_OK) {
        free(keep);
        return st;
    }
    bsr_hdr h;
    memset(&h, 0, sizeof h);
    h.magic = BSR_MAGIC;
    h.version = BSR_VERSION;
    h.dtype = p.dtype;
    h.k = v.k;
    h.n = v.n;
    h.bk = bk;
    h.bn = bn;
    h.kb = KB;
    h.nb = NB;
    for (int64_t i = 0; i < total; i++) h.kept += keep[i];
    layout(&h);
    *bytes = h.bytes;
    if (!out) {
        free(keep);
        return PT_OK;
    }
    if (capacity < h.bytes) {
        free(keep);
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: capacity %lld is smaller than the %lld bytes this weight needs (query with out = NULL)", fn,
                       (long long)capacity, (long long)h.bytes);
    }
    char* base = (char*)out;
    memset(base, 0, (size_t)h.bytes);
    memcpy(base, &h, sizeof h);
    int64_t* rowptr = (int64_t*)(base + h.off_rowptr);
    int32_t* col = (int32_t*)(base + h.off_col);
    const int vn = vnni_order(&h);
    const int64_t bsz = (int64_t)bk * bn;
    /* per-channel int8 scales over the kept elements */
    float* scale = h.dtype == PT_I8 ? (float*)(base + h.off_scale) : NULL;
    int32_t* colsum = h.dtype == PT_I8 ? (int32_t*)(base + h.off_colsum) : NULL;
    if (scale) {
        for (int64_t nb = 0; nb < NB; nb++)
            for (int i = 0; i < bn && nb * bn + i < v.n; i++) {
                const int64_t n = nb * bn + i;
                float amax = 0.0f;
                for (int64_t kb = 0; kb < KB; kb++) {
                    if (!keep[kb * NB + nb]) continue;
                    for (int64_t k = kb * bk; k < v.k && k < (kb + 1) * bk; k++) {
                        float a = fabsf(wval(&v, k, n));
                        amax = a > amax ? a : amax;
                    }
                }
                scale[n] = amax; /* divided by 127 once the blocks are written */
            }
    }
    int64_t b = 0;
    for (int64_t nb = 0; nb < NB; nb++) {
        rowptr[nb] = b;
        for (int64_t kb = 0; kb < KB; kb++) {
            if (!keep[kb * NB + nb]) continue;
            col[b] = (int32_t)kb;
            char* blk = base + h.off_vals + b * bsz * (int64_t)pt_dtype_size(h.dtype);
            for (int pi = 0; pi < bk; pi++) {
                const int64_t k = kb * bk + pi;
                if (k >= v.k) break;
                for (int i = 0; i < bn; i++) {
                    const int64_t n = nb * bn + i;
                    if (n >= v.n) break;
                    const float x = wval(&v, k, n);
                    const int64_t e = blk_index(vn, bk, bn, pi, i);
                    if (h.dtype == PT_F32) {
                        ((float*)blk)[e] = x;
                    } else if (h.dtype == PT_BF16) {
                        ((uint16_t*)blk)[e] = pt_f32_to_bf16(x);
                    } else {
                        const float amax = scale[n];
                        const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                        float q = rne(x * inv);
                        q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
                        ((int8_t*)blk)[e] = (int8_t)q;
                        colsum[n] += (int32_t)q;
                    }
                }
            }
            b++;
        }
    }
    rowptr[NB] = b;
    if (scale)
        for (int64_t n = 0; n < v.n; n++) scale[n] = scale[n] / 127.0f;
    free(keep);
    *bytes = h.bytes;
    return PT_OK;
}

/* ================================================================ inspection */

static pt_status read_hdr(const char* fn, const void* bsr, int64_t bytes, bsr_hdr* h) {
    if (!bsr) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr is NULL", fn);
    if (bytes < (int64_t)sizeof(bsr_hdr))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr_bytes %lld is smaller than a BSR header (%d bytes)", fn, (long long)bytes,
                       (int)sizeof(bsr_hdr));
    memcpy(h, bsr, sizeof *h);
    if (h->magic != BSR_MAGIC || h->version != BSR_VERSION)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr is not a BSR buffer of this library (bad magic or version %d)", fn, h->version);
    if (h->bytes != bytes)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr_bytes %lld differs from the buffer's own size %lld", fn, (long long)bytes,
                       (long long)h->bytes);
    if ((h->dtype != PT_F32 && h->dtype != PT_BF16 && h->dtype != PT_I8) || h->bk < 1 || h->bk > 64 || h->bn < 1 || h->bn > 64 || h->k < 0 ||
        h->n < 0 || h->kept < 0)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr header is inconsistent (corrupted buffer?)", fn);
    bsr_hdr c = *h;
    layout(&c);
    if (c.bytes != h->bytes || c.off_vals != h->off_vals || h->kept > h->kb * h->nb || h->kb != cdiv(h->k, h->bk) ||
        h->nb != cdiv(h->n, h->bn))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr header is inconsistent (corrupted buffer?)", fn);
    return PT_OK;
}

/* The indices of a buffer that came from elsewhere (a file): row offsets ascending from 0 to
 * kept, block indices in [0, KB) and ascending within a row, int8 scales finite and >= 0. */
static pt_status check_structure(const char* fn, const bsr_hdr* h, const char* base) {
    const int64_t* rowptr = (const int64_t*)(base + h->off_rowptr);
    const int32_t* col = (const int32_t*)(base + h->off_col);
    if (rowptr[0] != 0 || rowptr[h->nb] != h->kept)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr row offsets do not span the %lld kept blocks (corrupted buffer?)", fn,
                       (long long)h->kept);
    for (int64_t nb = 0; nb < h->nb; nb++) {
        if (rowptr[nb + 1] < rowptr[nb])
            return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr row offsets decrease at block row %lld (corrupted buffer?)", fn, (long long)nb);
        for (int64_t b = rowptr[nb]; b < rowptr[nb + 1]; b++)
            if (col[b] < 0 || col[b] >= h->kb || (b > rowptr[nb] && col[b] <= col[b - 1]))
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr block %lld of block row %lld has a bad K-block index %d (KB = %lld)", fn,
                               (long long)b, (long long)nb, col[b], (long long)h->kb);
    }
    if (h->dtype == PT_I8) {
        const float* sc = (const float*)(base + h->off_scale);
        for (int64_t n = 0; n < h->n; n++)
            if (!(sc[n] >= 0.0f) || isinf(sc[n]))
                return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: bsr int8 scale of channel %lld is %g", fn, (long long)n, (double)sc[n]);
    }
    return PT_OK;
}

pt_status pt_bsr_info_get(const void* bsr, int64_t bytes, pt_bsr_info* out) {
    pt_clear_error();
    if (!out) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_bsr_info_get: out is NULL");
    bsr_hdr h;
    PT_CHECK(read_hdr("pt_bsr_info_get", bsr, bytes, &h));
    PT_CHECK(check_structure("pt_bsr_info_get", &h, (const char*)bsr));
    memset(out, 0, sizeof *out);
    out->k = h.k;
    out->n = h.n;
    out->block_k = h.bk;
    out->block_n = h.bn;
    out->dtype = h.dtype;
    out->kept_blocks = h.kept;
    out->total_blocks = h.kb * h.nb;
    out->bytes = h.bytes;
    out->value_bytes = h.value_bytes;
    return PT_OK;
}

static float stored_value(const bsr_hdr* h, const char* base, int64_t b, int pi, int i) {
    const int64_t e = blk_index(vnni_order(h), h->bk, h->bn, pi, i);
    const char* blk = base + h->off_vals + b * (int64_t)h->bk * h->bn * (int64_t)pt_dtype_size(h->dtype);
    if (h->dtype == PT_F32) return ((const float*)blk)[e];
    if (h->dtype == PT_BF16) return pt_bf16_to_f32(((const uint16_t*)blk)[e]);
    return (float)((const int8_t*)blk)[e]; /* the caller multiplies by the channel scale */
}

pt_status pt_bsr_to_dense(pt_ctx* ctx, const void* bsr, int64_t bytes, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    bsr_hdr h;
    PT_CHECK(read_hdr("pt_bsr_to_dense", bsr, bytes, &h));
    PT_CHECK(pt_check_dtype(out, "pt_bsr_to_dense out", 1, PT_F32));
    if (out->ndim != 2 || out->shape[0] != h.k || out->shape[1] != h.n) {
        char d[96];
        pt_describe(out, d, sizeof d);
        return pt_fail(PT_ERR_SHAPE, "pt_bsr_to_dense: out must be f32[K=%lld, N=%lld], got %s", (long long)h.k, (long long)h.n, d);
    }
    const char* base = (const char*)bsr;
    const int64_t* rowptr = (const int64_t*)(base + h.off_rowptr);
    const int32_t* col = (const int32_t*)(base + h.off_col);
    const float* scale = h.dtype == PT_I8 ? (const float*)(base + h.off_scale) : NULL;
    for (int64_t k = 0; k < h.k; k++) memset(pt_row_ptr(out, k), 0, (size_t)h.n * sizeof(float));
    for (int64_t nb = 0; nb < h.nb; nb++)
        for (int64_t b = rowptr[nb]; b < rowptr[nb + 1]; b++)
            for (int pi = 0; pi < h.bk; pi++) {
                const int64_t k = (int64_t)col[b] * h.bk + pi;
                if (k >= h.k) break;
                float* r = (float*)pt_row_ptr(out, k);
                for (int i = 0; i < h.bn; i++) {
                    const int64_t n = nb * h.bn + i;
                    if (n >= h.n) break;
                    float val = stored_value(&h, base, b, pi, i);
                    r[n] = scale ? val * scale[n] : val;
                }
            }
    return PT_OK;
}

/* ================================================================ SpMM */

#define SP_MT 128 /* rows per M tile */

typedef struct {
    bsr_hdr h;
    const char* base;
    const int64_t* rowptr;
    const int32_t* col;
    const char* vals;
    const float* scale;
    const int32_t* colsum;
    const pt_tensor* x;
    const float* xs;         /* pt_spmm_bsr_s8: x is s8 and row r's scale is xs[r * xs_stride] */
    int64_t xs_stride;
    const pt_tensor* y;
    const float* bias;
    int64_t bias_stride;
    const float* biasc;      /* fast: bias made contiguous (zeros when NULL) */
    char* ybase;             /* fast: y's first row when its rows are evenly spaced, else NULL */
    int64_t ldy;
    int64_t m, kp, mp;
    int32_t act, fast;       /* fast: 0 portable, 1 f32 avx512, 2 bf16 avx512, 3 int8 vnni (transposed), 4 int8 amx,
                              * 5 int8 vnni rows (bn % 16 == 0, pt_spmm_i8rows) */
    int32_t rowpath;         /* fast 1/3 with M <= 4 and 4x1 blocks: gather kernel on row-major x */
    int64_t rows_per_group;  /* block rows per work item */
    int64_t nsplit;          /* AMX: work items per 64-row panel (ranges of block rows) */
    int32_t prepared;        /* AMX: x quantized before the items (else each item quantizes its panel) */
    /* prepared activations (caller's slot 0) */
    float* xf;               /* portable f32/bf16: [m][kp] f32 */
    int8_t* xq;              /* portable int8: [m][kp] s8; AMX: tiled [mp / 16][kb][16][64] s8 */
    void* xt;                /* fast: xT */
    float* sx;               /* int8: per-row scale */
    uint8_t* bad;            /* int8: row has a non-finite value */
    int32_t yacc;            /* AMX: the C tiles go into y itself (f32 y, M >= AMX_YACC_M; pt_spmm_amx.yacc) */
    int32_t* xsum;           /* fast 5: [KB][mp] 128 * (sum of row m's s8 x over K block kb) */
    volatile int failed;
} sp_arg;

/* Loads row r of x (f32, zero-padded to kp) into buf; int8: quantizes it into q (s8) and sets
 * sx[r], bad[r] (then buf is not written when x is f32 on the fast paths). */
static void load_row(sp_arg* g, int64_t r, float* buf, int8_t* q) {
    const int64_t k = g->h.k, kp = g->kp;
    if (g->xs && q) { /* already quantized: copy the row, its scale decides sx and bad */
        memcpy(q, pt_row_ptr(g->x, r), (size_t)k);
        memset(q + k, 0, (size_t)(kp - k));
        const float sc = g->xs[r * g->xs_stride];
        g->sx[r] = sc;
        g->bad[r] = (uint8_t)!isfinite(sc);
        return;
    }
#if defined(PT_HAVE_X86_KERNELS)
    if (q && g->fast && g->x->dtype == PT_F32) { /* straight from x: no copy of the row */
        pt_spmm_quant_row_avx512((const float*)pt_row_ptr(g->x, r), k, kp, q, &g->sx[r], &g->bad[r]);
        return;
    }
#endif
    pt_load_row_f32(pt_row_ptr(g->x, r), g->x->dtype, k, buf);
    for (int64_t j = k; j < kp; j++) buf[j] = 0.0f;
    if (!q) return;
#if defined(PT_HAVE_X86_KERNELS)
    if (g->fast) {
        pt_spmm_quant_row_avx512(buf, k, kp, q, &g->sx[r], &g->bad[r]);
        return;
    }
#endif
    uint32_t nonfinite = 0;
    float amax = 0.0f;
    for (int64_t j = 0; j < k; j++) {
        uint32_t u;
        memcpy(&u, &buf[j], 4);
        nonfinite |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        float a = fabsf(buf[j]);
        amax = a > amax ? a : amax;
    }
    g->bad[r] = (uint8_t)(nonfinite != 0);
    const float inv = amax > 0.0f && !nonfinite ? 127.0f / amax : 0.0f;
    g->sx[r] = amax / 127.0f;
    for (int64_t j = 0; j < kp; j++) {
        float v = rne(buf[j] * inv);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        q[j] = (int8_t)v;
    }
}

static void prep_rows(int64_t r0, int64_t r1, void* argp) {
    sp_arg* g = (sp_arg*)argp;
    const int64_t kp = g->kp, ldb = kp + 16;
    const int i8 = g->h.dtype == PT_I8;
    const int rowwise = !g->fast || g->fast == 4 || g->rowpath; /* row-major prepared rows (portable, AMX, few rows) */
    const int rb = rowwise ? 1 : 16;
    char* s3 = (char*)pt_scratch(3, (size_t)(ldb * 4 + ldb) * (size_t)rb + 64);
    if (!s3) { g->failed = 1; return; }
    float* buf = (float*)s3;
    int8_t* qb = (int8_t*)(s3 + (size_t)ldb * 4 * (size_t)rb);
    for (int64_t r = r0; r < r1; r += rb) {
        const int64_t n = r1 - r < rb ? r1 - r : rb;
        if (rowwise) {
            if (g->fast == 4) {
                /* s8 row into the tiled layout: [r / 16][kb][r % 16][64] */
                int8_t* d = g->xq + (r >> 4) * 16 * kp + (r & 15) * 64;
#if defined(PT_HAVE_X86_KERNELS)
                if (g->xs) { /* already quantized: its scale decides sx and bad (as load_row) */
                    pt_spmm_copy_row_tiled_avx512((const int8_t*)pt_row_ptr(g->x, r), g->h.k, g->h.kb, d);
                    g->sx[r] = g->xs[r * g->xs_stride];
                    g->bad[r] = (uint8_t)!isfinite(g->sx[r]);
                    continue;
                }
                if (g->x->dtype == PT_F32) {
                    pt_spmm_quant_row_tiled_avx512((const float*)pt_row_ptr(g->x, r), g->h.k, g->h.kb, d, &g->sx[r], &g->bad[r]);
                    continue;
                }
#endif
                load_row(g, r, buf, qb);
                for (int64_t kb = 0; kb < g->h.kb; kb++) memcpy(d + kb * 1024, qb + kb * 64, 64);
            } else if (i8) {
                load_row(g, r, buf, g->xq + r * kp);
                if (g->rowpath) /* u8 = q + 128 for vpdpbusd */
                    for (int64_t j = 0; j < kp; j++) g->xq[r * kp + j] = (int8_t)(uint8_t)((int32_t)g->xq[r * kp + j] + 128);
            } else {
                load_row(g, r, g->xf + r * kp, NULL);
            }
            continue;
        }
        for (int64_t i = 0; i < n; i++) load_row(g, r + i, buf + i * ldb, i8 ? qb + i * ldb : NULL);
        if (i8) { /* (fast paths only) fast 3: u8 = q + 128; fast 5: s8 and the block sums */
#if defined(PT_HAVE_X86_KERNELS)
            pt_spmm_xt16_i8_avx512(qb, ldb, (int)n, kp, (uint8_t*)g->xt + r * 4, g->mp, g->fast == 3, g->fast == 5 ? g->xsum + r : NULL, g->h.bk);
#endif
        } else {
            float* xt = (float*)g->xt;
            for (int64_t j = 0; j < kp; j++) {
                float* d = xt + j * g->mp + r;
                for (int64_t i = 0; i < n; i++) d[i] = buf[i * ldb + j];
            }
        }
    }
}

/* Finishes rows [m0, m0 + mlen) of channels [n0, n0 + nc): acc at tile[(c) * ldt + (m - m0)]
 * (fast, transposed) or row-major rows[m - m0][c] (portable). */
static void epilogue(const sp_arg* g, int64_t m0, int64_t mlen, int64_t n0, int64_t nc, const void* tile, int64_t ldt, int transposed,
                     float* row) {
    const int i8 = g->h.dtype == PT_I8;
    const size_t ys = pt_dtype_size(g->y->dtype);
    for (int64_t r = 0; r < mlen; r++) {
        const int64_t m = m0 + r;
        for (int64_t c = 0; c < nc; c++) {
            const int64_t n = n0 + c;
            const int64_t e = transposed ? c * ldt + r : r * ldt + c;
            float v;
            if (i8) {
                int32_t a = ((const int32_t*)tile)[e];
                if (g->fast) a -= 128 * g->colsum[n];
                v = (float)a * (g->sx[m] * g->scale[n]);
            } else {
                v = ((const float*)tile)[e];
            }
            row[c] = v + (g->bias ? g->bias[n * g->bias_stride] : 0.0f);
        }
        if (i8 && g->bad[m])
            for (int64_t c = 0; c < nc; c++) row[c] = NAN;
        pt_apply_activation(row, nc, g->act);
        pt_store_row_f32(row, nc, g->y->dtype, pt_row_ptr(g->y, m) + n0 * (int64_t)ys);
    }
}

#if defined(PT_HAVE_X86_KERNELS)
/* The epilogue of a transposed tile (fast paths 1-3). */
static void spmm_epi_t(const sp_arg* g, const void* tile, int64_t m0, int64_t mlen, int64_t n0, int64_t nc, float* row) {
    pt_spmm_epi e;
    memset(&e, 0, sizeof e);
    e.tile = tile;
    e.ldt = SP_MT;
    e.i8 = g->h.dtype == PT_I8;
    e.act = g->act;
    e.mlen = mlen;
    e.nc = nc;
    e.bias = g->biasc + n0;
    e.scale = g->scale ? g->scale + n0 : NULL;
    e.colsum = g->colsum ? g->colsum + n0 : NULL;
    e.sx = g->sx + m0;
    e.bad = g->bad + m0;
    e.y = g->ybase + m0 * g->ldy + n0 * (int64_t)pt_dtype_size(g->y->dtype);
    e.ldy = g->ldy;
    e.ydt = g->y->dtype;
    if (g->ybase) pt_spmm_epilogue_avx512(&e);
    else epilogue(g, m0, mlen, n0, nc, tile, SP_MT, 1, row);
}
#endif

static void run_groups(int64_t g0, int64_t g1, void* argp) {
    sp_arg* g = (sp_arg*)argp;
    const bsr_hdr* h = &g->h;
    const int bk = h->bk, bn = h->bn;
    const int64_t gch = g->rows_per_group * bn; /* channels per group (upper bound) */
    const int64_t es = (int64_t)pt_dtype_size(h->dtype), bsz = (int64_t)bk * bn;
    (void)es;
    /* slot 1: the accumulator tile [gch][SP_MT] (fast) or [SP_MT?][gch] rows (portable: one row) */
    void* tile = pt_scratch(1, (size_t)(((gch + 15) & ~(int64_t)15) * SP_MT + 64) * 4);
    char* s2 = (char*)pt_scratch(2, (size_t)(gch + 16) * 4 + (size_t)(g->rows_per_group + 1) * 8 + 64);
    if (!tile || !s2) { g->failed = 1; return; }
    float* row = (float*)s2;
    int64_t* cur = (int64_t*)(s2 + (((size_t)(gch + 16) * 4 + 63) & ~(size_t)63));
    (void)cur;
    for (int64_t gi = g0; gi < g1; gi++) {
        const int64_t nb0 = gi * g->rows_per_group;
        const int64_t nb1 = nb0 + g->rows_per_group < h->nb ? nb0 + g->rows_per_group : h->nb;
        const int64_t n0 = nb0 * bn;
        const int64_t nc = (nb1 * bn < h->n ? nb1 * bn : h->n) - n0;
#if defined(PT_HAVE_X86_KERNELS)
        if (g->rowpath) {
            pt_spmm_rows a;
            a.col = g->col;
            a.vals = g->vals;
            a.rowptr = g->rowptr;
            a.nb0 = nb0;
            a.nb1 = nb1;
            a.x = h->dtype == PT_I8 ? (const void*)g->xq : (const void*)g->xf;
            a.ldx = g->kp;
            a.m = (int32_t)g->m;
            a.i8 = h->dtype == PT_I8;
            a.out = tile;
            a.ldo = SP_MT;
            pt_spmm_rows_4x1_avx512(&a);
            spmm_epi_t(g, tile, 0, g->m, n0, nc, row);
            continue;
        }
        if (g->fast == 5) {
            pt_spmm_i8rows a;
            memset(&a, 0, sizeof a);
            a.rowptr = g->rowptr;
            a.col = g->col;
            a.vals = (const int8_t*)g->vals;
            a.bk = bk;
            a.bn = bn;
            a.nb0 = nb0;
            a.nb1 = nb1;
            a.n = h->n;
            a.mp = g->mp;
            a.act = g->act;
            a.ydt = g->y->dtype;
            a.scale = g->scale;
            a.bias = g->biasc;
            char* yr[16];
            a.yrow = yr;
            for (int64_t m0 = 0; m0 < g->m; m0 += 16) {
                a.rows = (int32_t)(g->m - m0 < 16 ? g->m - m0 : 16);
                for (int r = 0; r < a.rows; r++) yr[r] = g->ybase ? g->ybase + (m0 + r) * g->ldy : pt_row_ptr(g->y, m0 + r);
                a.xt = (const int8_t*)g->xt + m0 * 4;
                a.xsum = g->xsum + m0;
                a.sx = g->sx + m0;
                a.bad = g->bad + m0;
                pt_spmm_i8rows_vnni(&a);
            }
            continue;
        }
        if (g->fast) {
            const int64_t nrows = nb1 - nb0;
            const int64_t* rp = g->rowptr;
            for (int64_t m0 = 0; m0 < g->m; m0 += SP_MT) {
                const int64_t mlen = g->m - m0 < SP_MT ? g->m - m0 : SP_MT;
                const int32_t mv = (int32_t)cdiv(mlen, 16);
                /* K chunks whose slice of xT (chunk x 16 mv rows) stays in L1 (~32 KiB) while
                 * every block row of the group passes over it */
                const int64_t kchunk = (h->dtype == PT_I8 ? 32768 : 8192) / (16 * mv);
                const int64_t kbc = kchunk / bk > 0 ? kchunk / bk : 1;
                pt_spmm_tile t;
                memset(&t, 0, sizeof t);
                t.bk = bk;
                t.bn = bn;
                t.xt = g->xt;
                t.mp = g->mp;
                t.m0 = m0;
                t.mv = mv;
                t.ldo = SP_MT;
                t.col = g->col;
                t.vals = g->vals;
                for (int64_t r = 0; r < nrows; r++) cur[r] = rp[nb0 + r];
                for (int64_t kb0 = 0; kb0 < h->kb; kb0 += kbc) {
                    const int64_t kb1 = kb0 + kbc;
                    for (int64_t r = 0; r < nrows; r++) {
                        int64_t b1 = cur[r];
                        const int64_t bend = rp[nb0 + r + 1];
                        while (b1 < bend && g->col[b1] < kb1) b1++;
                        if (kb0 == 0 || b1 > cur[r]) {
                            t.b0 = cur[r];
                            t.b1 = b1;
                            t.accumulate = kb0 != 0;
                            t.out = (char*)tile + r * bn * SP_MT * 4;
                            if (g->fast == 1) pt_spmm_tile_f32_avx512(&t);
                            else if (g->fast == 2) pt_spmm_tile_bf16_avx512(&t);
                            else pt_spmm_tile_i8_vnni(&t);
                        }
                        cur[r] = b1;
                    }
                }
                spmm_epi_t(g, tile, m0, mlen, n0, nc, row);
            }
            continue;
        }
#endif
        /* portable: one row of x at a time against the group's block rows */
        const int vn = vnni_order(h);
        for (int64_t m = 0; m < g->m; m++) {
            if (h->dtype == PT_I8) {
                int32_t* acc = (int32_t*)tile;
                const int8_t* xr = g->xq + m * g->kp;
                for (int64_t c = 0; c < (nb1 - nb0) * bn; c++) acc[c] = 0;
                for (int64_t nb = nb0; nb < nb1; nb++) {
                    int32_t* a = acc + (nb - nb0) * bn;
                    for (int64_t b = g->rowptr[nb]; b < g->rowptr[nb + 1]; b++) {
                        const int8_t* v = (const int8_t*)(g->vals + b * bsz);
                        const int8_t* xk = xr + (int64_t)g->col[b] * bk;
                        for (int pi = 0; pi < bk; pi++) {
                            const int32_t xv = xk[pi];
                            for (int i = 0; i < bn; i++) a[i] += xv * v[blk_index(vn, bk, bn, pi, i)];
                        }
                    }
                }
            } else {
                float* acc = (float*)tile;
                const float* xr = g->xf + m * g->kp;
                for (int64_t c = 0; c < (nb1 - nb0) * bn; c++) acc[c] = 0.0f;
                for (int64_t nb = nb0; nb < nb1; nb++) {
                    float* a = acc + (nb - nb0) * bn;
                    for (int64_t b = g->rowptr[nb]; b < g->rowptr[nb + 1]; b++) {
                        const float* xk = xr + (int64_t)g->col[b] * bk;
                        if (h->dtype == PT_F32) {
                            const float* v = (const float*)(g->vals + b * bsz * 4);
                            for (int pi = 0; pi < bk; pi++) {
                                const float xv = xk[pi];
                                for (int i = 0; i < bn; i++) a[i] += xv * v[pi * bn + i];
                            }
                        } else {
                            const uint16_t* v = (const uint16_t*)(g->vals + b * bsz * 2);
                            for (int pi = 0; pi < bk; pi++) {
                                const float xv = xk[pi];
                                for (int i = 0; i < bn; i++) a[i] += xv * pt_bf16_to_f32(v[pi * bn + i]);
                            }
                        }
                    }
                }
            }
            epilogue(g, m, 1, n0, nc, tile, gch, 0, row);
        }
    }
}

#if defined(PT_HAVE_X86_KERNELS)
#define AMX_PANEL 64  /* rows per AMX work item */
#define AMX_CHUNK 256 /* channels per AMX chunk (its s32 sums: 64 x 256 x 4 = 64 KiB) */
/* from this many rows of f32 y, the C tiles are stored into y itself (pt_spmm_amx.yacc): there
 * y (>= 1.5 MiB per thread at N = 768) does not stay in L2 between calls, and y's lines, fetched
 * by the tile stores, arrive while the tile products run instead of during the epilogue's stores.
 * Below it y mostly stays in L2 and the compact 64 KiB scratch is faster (y's rows are 3-12 KiB
 * apart, so the 16 rows of a C tile fall into few L1 sets). Measured (2 threads, M x K x N,
 * 90%, us per call, scratch / in y): 512x768x3072 657-684 / 583-612, 512x3072x768 438-451 /
 * 417-420, 256x768x3072 320 / 314, 128x768x3072 142-146 / 157-161, 16x768x3072 23.5 / 28-32. */
#define AMX_YACC_M 256

/* First block row of split j of nsplit: the block rows divided by their kept blocks + 1 (each
 * block row also costs its C tiles and epilogue), so the splits of a panel have equal work. */
static int64_t amx_split(const sp_arg* g, int64_t j) {
    const int64_t nb = g->h.nb, total = g->h.kept + nb;
    if (j <= 0) return 0;
    if (j >= g->nsplit) return nb;
    const int64_t want = total * j / g->nsplit;
    int64_t lo = 0, hi = nb; /* first block row r with rowptr[r] + r >= want */
    while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (g->rowptr[mid] + mid >= want) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* AMX work items [i0, i1): item i = panel i / nsplit, split i % nsplit. */
static void run_amx(int64_t i0, int64_t i1, void* argp) {
    sp_arg* g = (sp_arg*)argp;
    int32_t* acc = (int32_t*)pt_scratch(1, (size_t)AMX_PANEL * AMX_CHUNK * 4);
    if (!acc) { g->failed = 1; return; }
    pt_spmm_amx a;
    memset(&a, 0, sizeof a);
    a.rowptr = g->rowptr;
    a.col = g->col;
    a.vals = (const int8_t*)g->vals;
    a.bn = g->h.bn;
    a.act = g->act;
    a.ydt = g->y->dtype;
    a.kb = g->h.kb;
    a.n = g->h.n;
    a.acc = acc;
    a.ldacc = AMX_CHUNK;
    a.ychunk = PT_SPMM_AMX_MAXCHUNK;
    a.scale = g->scale;
    a.bias = g->biasc;
    a.ldy = g->ldy;
    pt_spmm_amx_begin();
    for (int64_t i = i0; i < i1; i++) {
        const int64_t p = i / g->nsplit, j = i % g->nsplit, m0 = p * AMX_PANEL;
        a.nb0 = amx_split(g, j);
        a.nb1 = amx_split(g, j + 1);
        if (a.nb0 >= a.nb1) continue;
        a.mlen = g->m - m0 < AMX_PANEL ? g->m - m0 : AMX_PANEL;
        if (g->nsplit == 1 && !g->prepared) prep_rows(m0, m0 + a.mlen, g); /* this item's rows of x, quantized here */
        a.xt = g->xq + m0 * g->kp;
        a.sx = g->sx + m0;
        a.bad = g->bad + m0;
        a.y = g->ybase + m0 * g->ldy;
        a.yacc = g->yacc && a.mlen % 16 == 0;
        pt_spmm_amx_item(&a);
    }
    pt_spmm_amx_end();
}
#endif

/* pt_spmm_bsr (x_scale NULL: x f32 / bf16) and pt_spmm_bsr_s8 (x s8 with per-row x_scale). */
static pt_status spmm(pt_ctx* ctx, const char* fn, const pt_tensor* x, const pt_tensor* x_scale, const void* bsr, int64_t bsr_bytes,
                      const pt_tensor* bias, pt_tensor* y, int32_t activation) {
    PT_CHECK(pt_check_ctx(ctx));
    bsr_hdr h;
    PT_CHECK(read_hdr(fn, bsr, bsr_bytes, &h));
    if (activation < PT_ACT_NONE || activation > PT_ACT_SILU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: unknown activation %d (expected 0..%d, pt_activation)", fn, activation, PT_ACT_SILU);
    char nx[64], ny[64], nb[64];
    snprintf(nx, sizeof nx, "%s %s", fn, x_scale ? "xq" : "x");
    snprintf(ny, sizeof ny, "%s y", fn);
    snprintf(nb, sizeof nb, "%s bias", fn);
    if (x_scale) {
        PT_CHECK(pt_check_dtype(x, nx, 1, PT_I8));
        if (h.dtype != PT_I8)
            return pt_fail(PT_ERR_DTYPE, "%s: bsr must hold int8 blocks (pt_bsr_from_dense with dtype i8), it holds %s", fn,
                           pt_dtype_name(h.dtype));
    } else {
        PT_CHECK(pt_check_dtype(x, nx, 2, PT_F32, PT_BF16));
    }
    PT_CHECK(pt_check_dtype(y, ny, 2, PT_F32, PT_BF16));
    char dx[96], dy[96];
    pt_describe(x, dx, sizeof dx);
    pt_describe(y, dy, sizeof dy);
    if (pt_cols(x) != h.k)
        return pt_fail(PT_ERR_SHAPE, "%s: x %s has K=%lld but the BSR weight is [K=%lld, N=%lld]", fn, dx, (long long)pt_cols(x), (long long)h.k,
                       (long long)h.n);
    int same = y->ndim == x->ndim && pt_cols(y) == h.n;
    for (int i = 0; same && i < x->ndim - 1; i++) same = x->shape[i] == y->shape[i];
    if (!same)
        return pt_fail(PT_ERR_SHAPE, "%s: y %s must have x's outer dims and N=%lld as its last (x %s)", fn, dy, (long long)h.n, dx);
    if (bias) {
        PT_CHECK(pt_check_dtype(bias, nb, 1, PT_F32));
        if (bias->ndim != 1 || bias->shape[0] != h.n) {
            char d[96];
            pt_describe(bias, d, sizeof d);
            return pt_fail(PT_ERR_SHAPE, "%s: bias must be f32[N=%lld], got %s", fn, (long long)h.n, d);
        }
    }
    const int64_t m = pt_rows(x);
    if (x_scale) {
        char ns[64];
        snprintf(ns, sizeof ns, "%s x_scale", fn);
        PT_CHECK(pt_check_dtype(x_scale, ns, 1, PT_F32));
        if (x_scale->ndim != 1 || x_scale->shape[0] != m) {
            char d[96];
            pt_describe(x_scale, d, sizeof d);
            return pt_fail(PT_ERR_SHAPE, "%s: x_scale must be f32[M=%lld] (one scale per row of xq %s), got %s", fn, (long long)m, dx, d);
        }
    }
    if (m > 1 && h.n > 1 && y->ndim >= 2 && y->stride[y->ndim - 2] < h.n * (int64_t)pt_dtype_size(y->dtype) && y->shape[y->ndim - 2] > 1)
        return pt_fail(PT_ERR_SHAPE, "%s: y %s rows overlap", fn, dy);
    if (m == 0 || h.n == 0) return PT_OK;

    sp_arg g;
    memset(&g, 0, sizeof g);
    g.h = h;
    g.base = (const char*)bsr;
    g.rowptr = (const int64_t*)(g.base + h.off_rowptr);
    g.col = (const int32_t*)(g.base + h.off_col);
    g.vals = g.base + h.off_vals;
    g.scale = h.dtype == PT_I8 ? (const float*)(g.base + h.off_scale) : NULL;
    g.colsum = h.dtype == PT_I8 ? (const int32_t*)(g.base + h.off_colsum) : NULL;
    g.x = x;
    g.xs = x_scale ? (const float*)x_scale->data : NULL;
    g.xs_stride = x_scale ? x_scale->stride[0] / 4 : 0;
    g.y = y;
    g.bias = bias ? (const float*)bias->data : NULL;
    g.bias_stride = bias ? bias->stride[0] / 4 : 0;
    g.m = m;
    g.kp = h.kb * h.bk;
    g.mp = (m + 15) & ~(int64_t)15;
    g.act = activation;
#if defined(PT_HAVE_X86_KERNELS)
    if (ctx->caps & PT_CPU_AVX512F) {
        if (h.dtype == PT_F32) g.fast = 1;
        else if (h.dtype == PT_BF16) g.fast = 2;
        else if ((ctx->caps & PT_CPU_AMX_INT8) && h.bk == 64 && (h.bn == 16 || h.bn == 32) && pt_spmm_amx_compiled() &&
                 (m == 1 || pt_rows_uniform(y, &(int64_t){0})))
            g.fast = 4; /* (y rows not evenly spaced: the VNNI path, whose epilogue handles any rows) */
        else if ((ctx->caps & PT_CPU_AVX512_VNNI) && h.bk % 4 == 0) g.fast = h.bn % 16 == 0 ? 5 : 3;
    }
#endif
    g.rowpath = (g.fast == 1 || g.fast == 3) && m <= 4 && h.bk == 4 && h.bn == 1;
    if (g.fast) {
        /* 64..256 output channels per work item: wide enough that each row of y is written in long
         * runs (the stores of the epilogue are the cost at large M), with >= 4 items per thread */
        int64_t gch = h.n / (4 * (int64_t)(ctx->n_threads > 0 ? ctx->n_threads : 1));
        gch = gch < 64 ? 64 : gch > 256 ? 256 : gch;
        g.rows_per_group = h.bn >= gch ? 1 : gch / h.bn;
    } else {
        g.rows_per_group = h.bn >= 16 ? 1 : cdiv(16, h.bn);
    }
    /* activations, prepared once on the calling thread's slot 0 */
    size_t xbytes;
    if (g.rowpath) xbytes = (size_t)(m * g.kp) * (h.dtype == PT_I8 ? 1 : 4);
    else if (g.fast >= 3) xbytes = (size_t)(g.kp * g.mp);
    else if (g.fast) xbytes = (size_t)(g.kp * g.mp) * 4;
    else xbytes = (size_t)(m * g.kp) * (h.dtype == PT_I8 ? 1 : 4);
    xbytes = (xbytes + 63) & ~(size_t)63;
    /* slot 0: x as prepared | sx [M] f32, bad [M] u8 | the bias [N] f32 (fast) | xsum (fast 5) */
    const size_t o_sx = xbytes, o_bias = o_sx + (((size_t)m * 5 + 63) & ~(size_t)63), o_sum = o_bias + (((size_t)h.n * 4 + 63) & ~(size_t)63);
    const size_t sumbytes = g.fast == 5 ? (size_t)(g.mp * h.kb) * 4 : 0;
    char* s0 = (char*)pt_scratch(0, o_sum + sumbytes + 128);
    if (!s0) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: cannot allocate the prepared activations (M=%lld K=%lld)", fn, (long long)m, (long long)h.k);
    if (g.fast == 5) { /* (every row and K of xT written by prep_rows; rows past M are never read) */
        g.xt = s0;
        g.xsum = (int32_t*)(s0 + o_sum);
    }
    else if (g.rowpath) { if (h.dtype == PT_I8) g.xq = (int8_t*)s0; else g.xf = (float*)s0; }
    else if (g.fast == 4) {
        g.xq = (int8_t*)s0;
        /* the padding rows of the last 16-row sub-panel: zeros (prep_rows writes the others) */
        for (int64_t r = m; r < g.mp; r++)
            for (int64_t kb = 0; kb < h.kb; kb++) memset(g.xq + (r >> 4) * 16 * g.kp + kb * 1024 + (r & 15) * 64, 0, 64);
    }
    else if (g.fast == 3) { g.xt = s0; memset(s0, 128, xbytes); }
    else if (g.fast) { g.xt = s0; memset(s0, 0, xbytes); }
    else if (h.dtype == PT_I8) g.xq = (int8_t*)s0;
    else g.xf = (float*)s0;
    g.sx = (float*)(s0 + o_sx);
    g.bad = (uint8_t*)(g.sx + m);
    if (g.fast) {
        float* bc = (float*)(s0 + o_bias);
        for (int64_t j = 0; j < h.n; j++) bc[j] = bias ? g.bias[j * g.bias_stride] : 0.0f;
        g.biasc = bc;
        int64_t rs = 0;
        if (pt_rows_uniform(y, &rs) || m == 1) {
            g.ybase = (char*)y->data;
            g.ldy = m == 1 ? 0 : rs;
        }
    }
    const double work = 2.0 * (double)m * (double)h.n * (double)(h.k > 0 ? h.k : 1) *
                        ((double)h.kept / (double)(h.kb * h.nb > 0 ? h.kb * h.nb : 1));
    /* (the AMX path: below ~2e7 kept operations, ~10-20 us of tile work, one thread; a second
     * one's wake-up and the split cost more than they save there: M = 16, 3072x768, 90%, 2
     * threads, other processes paused: 2.0-2.3x dense s8 split, 3.2-3.4x on one thread) */
    const int64_t threads = work < 2e5 || (g.fast == 4 && work < 2e7) ? 1 : ctx->n_threads;
#if defined(PT_HAVE_X86_KERNELS)
    if (g.fast == 4) {
        /* work items: 64-row panels (y written in long row runs, panel by panel), each split into
         * ranges of block rows when there are fewer than 2 panels per thread; with one item per
         * panel the item quantizes its own rows (no pass over all of x before the products) */
        const int64_t npan = cdiv(m, AMX_PANEL), t = threads > 0 ? threads : 1;
        g.yacc = m >= AMX_YACC_M && y->dtype == PT_F32 && g.ldy % 4 == 0 && g.ldy >= h.n * 4; /* (rows apart, ascending) */
        g.nsplit = t > 1 && npan < 2 * t ? cdiv(2 * t, npan) : 1;
        if (g.nsplit > h.nb) g.nsplit = h.nb;
        if (g.nsplit > 1) {
            pt_parallel_range(ctx, m, threads > 1 && m * h.k > 65536 ? cdiv(m, threads) : m, prep_rows, &g);
            g.prepared = 1;
        }
        const int64_t items = npan * g.nsplit;
        if (!g.failed) pt_parallel_range(ctx, items, cdiv(items, t), run_amx, &g);
        if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: a worker could not allocate its scratch (K=%lld)", fn, (long long)h.k);
        return PT_OK;
    }
#endif
    pt_parallel_range(ctx, m, threads > 1 && m * h.k > 65536 ? cdiv(m, threads) : m, prep_rows, &g);
    if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: a worker could not allocate its row scratch (K=%lld)", fn, (long long)h.k);
    const int64_t ngroups = cdiv(h.nb, g.rows_per_group);
    pt_parallel_range(ctx, ngroups, cdiv(ngroups, threads > 0 ? threads : 1), run_groups, &g);
    if (g.failed) return pt_fail(PT_ERR_OUT_OF_MEMORY, "%s: a worker could not allocate its tile scratch", fn);
    return PT_OK;
}

pt_status pt_spmm_bsr(pt_ctx* ctx, const pt_tensor* x, const void* bsr, int64_t bsr_bytes, const pt_tensor* bias, pt_tensor* y,
                      int32_t activation) {
    pt_clear_error();
    return spmm(ctx, "pt_spmm_bsr", x, NULL, bsr, bsr_bytes, bias, y, activation);
}

pt_status pt_spmm_bsr_s8(pt_ctx* ctx, const pt_tensor* xq, const pt_tensor* x_scale, const void* bsr, int64_t bsr_bytes,
                         const pt_tensor* bias, pt_tensor* y, int32_t activation) {
    pt_clear_error();
    if (!x_scale) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_spmm_bsr_s8: x_scale is NULL");
    return spmm(ctx, "pt_spmm_bsr_s8", xq, x_scale, bsr, bsr_bytes, bias, y, activation);
}
