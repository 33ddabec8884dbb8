/* pt_rope: validation, the per-token driver (cos/sin table once per token, applied to every
 * head), and the portable kernels. AVX-512 kernels live in rope_avx512.c. */
#include "cpu/elem.h"

#include <math.h>

#define ROPE_CHUNK 256 /* pairs per table chunk: 4 KiB of f32 on the stack */

static void rope_table_portable(double pos, const double* freq, int64_t k, int gptj, float* cs) {
    for (int64_t j = 0; j < k; j++) {
        float s, c;
        pt_sincos_reduced(pos * freq[j], &s, &c);
        if (gptj) {
            cs[2 * j] = cs[2 * j + 1] = c;
            cs[2 * k + 2 * j] = -s;
            cs[2 * k + 2 * j + 1] = s;
        } else {
            cs[j] = c;
            cs[k + j] = s;
        }
    }
}

static inline float ldf(const void* p, int dt, int64_t i) {
    return dt == PT_F32 ? ((const float*)p)[i] : pt_bf16_to_f32(((const uint16_t*)p)[i]);
}
static inline void stf(void* p, int dt, int64_t i, float v) {
    if (dt == PT_F32) ((float*)p)[i] = v;
    else ((uint16_t*)p)[i] = pt_f32_to_bf16(v);
}

static void rope_pairs_portable(const void* x, int xdt, void* out, int odt, const float* cs, int64_t p0, int64_t k,
                                int64_t half, int gptj) {
    if (gptj) {
        for (int64_t j = 0; j < k; j++) {
            int64_t i = 2 * (p0 + j);
            float a = ldf(x, xdt, i), b = ldf(x, xdt, i + 1);
            stf(out, odt, i, a * cs[2 * j] + b * cs[2 * k + 2 * j]);
            stf(out, odt, i + 1, b * cs[2 * j + 1] + a * cs[2 * k + 2 * j + 1]);
        }
    } else {
        for (int64_t j = 0; j < k; j++) {
            int64_t i = p0 + j;
            float a = ldf(x, xdt, i), b = ldf(x, xdt, i + half), c = cs[j], s = cs[k + j];
            stf(out, odt, i, a * c - b * s);
            stf(out, odt, i + half, b * c + a * s);
        }
    }
}

typedef struct {
    pt_rope_pairs_fn pairs;
    pt_rope_table_fn table;
    pt_convert_row_fn copy;
    const pt_tensor *x, *out;
    const int32_t* pos;
    int pos_per_batch;       /* positions are [B, T] */
    int batched;             /* x is 4-D */
    int64_t T, H, D, r;
    const double* freq;      /* [r/2], freq_scale folded in */
    int gptj;
} rope_job;

static void rope_tokens(int64_t t0, int64_t t1, void* arg) {
    const rope_job* j = (const rope_job*)arg;
    float cs[4 * ROPE_CHUNK];
    const int b0 = j->batched;
    const int64_t half = j->r / 2;
    size_t ex = pt_dtype_size(j->x->dtype), eo = pt_dtype_size(j->out->dtype);
    int same = j->x->data == j->out->data && j->x->dtype == j->out->dtype;
    for (int64_t tok = t0; tok < t1; tok++) {
        int64_t b = tok / j->T, t = tok % j->T;
        double pos = (double)j->pos[j->pos_per_batch ? tok : t];
        const char* xt = (const char*)j->x->data + (b0 ? b * j->x->stride[0] : 0) + t * j->x->stride[b0];
        char* ot = (char*)j->out->data + (b0 ? b * j->out->stride[0] : 0) + t * j->out->stride[b0];
        for (int64_t p0 = 0; p0 < half; p0 += ROPE_CHUNK) {
            int64_t k = half - p0 < ROPE_CHUNK ? half - p0 : ROPE_CHUNK;
            j->table(pos, j->freq + p0, k, j->gptj, cs);
            for (int64_t h = 0; h < j->H; h++)
                j->pairs(xt + h * j->x->stride[b0 + 1], j->x->dtype, ot + h * j->out->stride[b0 + 1], j->out->dtype, cs,
                         p0, k, half, j->gptj);
        }
        if (j->r < j->D && !same)
            for (int64_t h = 0; h < j->H; h++)
                j->copy(xt + h * j->x->stride[b0 + 1] + j->r * ex, j->x->dtype,
                        ot + h * j->out->stride[b0 + 1] + j->r * eo, j->out->dtype, j->D - j->r);
    }
}

pt_status pt_rope(pt_ctx* ctx, const pt_tensor* x, const pt_tensor* positions, const pt_rope_params* params,
                  pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    if (!params) return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_rope: params is NULL");
    PT_CHECK(pt_elem_check(x, "pt_rope", "x", PT_DT_DATA));
    PT_CHECK(pt_elem_check(out, "pt_rope", "out", PT_DT_DATA));
    PT_CHECK(pt_elem_check(positions, "pt_rope", "positions", PT_DT_BIT(PT_I32)));
    if (x->ndim != 3 && x->ndim != 4)
        return pt_fail(PT_ERR_SHAPE, "pt_rope: x %s must be [T, H, D] or [B, T, H, D]", pt_desc(x).s);
    PT_CHECK(pt_elem_same_shape("pt_rope", x, "x", out, "out"));
    int batched = x->ndim == 4;
    int64_t B = batched ? x->shape[0] : 1, T = x->shape[batched], H = x->shape[batched + 1], D = x->shape[batched + 2];
    int pos_per_batch = 0;
    if (positions->ndim == 1 && positions->shape[0] == T) {
        pos_per_batch = 0;
    } else if (batched && positions->ndim == 2 && positions->shape[0] == B && positions->shape[1] == T) {
        pos_per_batch = 1;
    } else {
        return pt_fail(PT_ERR_SHAPE, "pt_rope: positions %s must be [%lld]%s for x %s", pt_desc(positions).s,
                       (long long)T, batched ? " or [B, T]" : "", pt_desc(x).s);
    }
    if (positions->ndim == 2 && positions->shape[1] > 0 && positions->shape[0] > 1 &&
        positions->stride[0] != 4 * positions->shape[1])
        return pt_fail(PT_ERR_SHAPE, "pt_rope: positions %s must be contiguous", pt_desc(positions).s);
    if (params->mode != PT_ROPE_NEOX && params->mode != PT_ROPE_GPTJ)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_rope: unknown mode %d (expected PT_ROPE_NEOX or PT_ROPE_GPTJ)",
                       params->mode);
    int64_t r = params->rotary_dim == 0 ? D : params->rotary_dim;
    if (r < 0 || r > D || (r & 1))
        return pt_fail(PT_ERR_INVALID_ARGUMENT,
                       "pt_rope: rotary dims %lld (rotary_dim %d; 0 = head dim) must be even and <= the head dim %lld of x %s",
                       (long long)r, params->rotary_dim, (long long)D, pt_desc(x).s);
    if (!params->inv_freq && !(params->theta > 0.0f && !isinf(params->theta)))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_rope: theta must be finite and > 0 (got %g) unless inv_freq is given",
                       (double)params->theta);
    if (params->freq_scale != params->freq_scale || isinf(params->freq_scale))
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "pt_rope: freq_scale must be finite, got %g", (double)params->freq_scale);
    if (pt_numel(x) == 0) return PT_OK;

    int64_t half = r / 2;
    double* freq = (double*)pt_scratch(2, (size_t)(half > 0 ? half : 1) * sizeof(double));
    if (!freq) return pt_fail(PT_ERR_OUT_OF_MEMORY, "pt_rope: scratch allocation of %lld doubles failed", (long long)half);
    double fs = params->freq_scale == 0.0f ? 1.0 : (double)params->freq_scale;
    for (int64_t i = 0; i < half; i++)
        freq[i] = fs * (params->inv_freq ? (double)params->inv_freq[i] : pow((double)params->theta, -2.0 * (double)i / (double)r));

    rope_job j;
    memset(&j, 0, sizeof j);
    j.pairs = rope_pairs_portable;
    j.table = rope_table_portable;
    j.copy = pt_convert_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) {
        j.pairs = pt_rope_pairs_avx512;
        j.table = pt_rope_table_avx512;
        j.copy = pt_convert_row_avx512;
    }
#endif
    j.x = x; j.out = out;
    j.pos = (const int32_t*)positions->data;
    j.pos_per_batch = pos_per_batch;
    j.batched = batched;
    j.T = T; j.H = H; j.D = D; j.r = r;
    j.freq = freq;
    j.gptj = params->mode == PT_ROPE_GPTJ;
    pt_parallel_range(ctx, B * T, pt_elem_grain_rows(H * D, 2), rope_tokens, &j);
    return PT_OK;
}
