/* pt_embedding and pt_mean_pool against plain references: dtypes (f32/bf16/f16 tables),
 * ids of rank 1..3, strided table and output rows, out-of-range ids rejected before any
 * write, masks with empty rows, L2 normalization, both code paths, bad inputs. */
#include "elem_util.h"

static const int DT3[3] = {PT_F32, PT_BF16, PT_F16};

/* ---------------------------------------------------------------- embedding */

static void check_embedding(tu_path* p, int64_t V, int64_t D, int ids_ndim, const int64_t* ids_shape, int tdt, int odt) {
    int64_t tshape[2] = {V, D};
    tbuf table = tb_new(tdt, 2, tshape, 3);
    tb_rand(&table, -2, 2);
    int64_t n = 1, oshape[4];
    for (int i = 0; i < ids_ndim; i++) {
        n *= ids_shape[i];
        oshape[i] = ids_shape[i];
    }
    oshape[ids_ndim] = D;
    int32_t* ids = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)floor(pt_test_uniform(0, (double)V));
    if (n > 1) {
        ids[0] = 0;
        ids[n - 1] = (int32_t)(V - 1);
    }
    pt_tensor tid = pt_test_tensor(ids, PT_I32, ids_ndim, ids_shape);
    tbuf o = tb_new(odt, ids_ndim + 1, oshape, 1);
    tb_poison(&o);
    double* want = malloc(sizeof(double) * (size_t)(n * D + 1));
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < D; j++) want[t * D + j] = tu_round((float)tb_get(&table, ids[t] * D + j), odt);
    EXPECT_OK(pt_embedding(p->ctx, &table.t, &tid, &o.t));
    TU_COMPARE(&o, want, 0.0, 0.0, "%s embedding V=%lld D=%lld n=%lld table=%s out=%s", p->name, (long long)V, (long long)D,
               (long long)n, tu_dt(tdt), tu_dt(odt));
    /* out-of-range ids anywhere (first, last, middle; negative or >= V): status, message, no write */
    int64_t bad_at[3] = {0, n - 1, n / 2};
    for (int k = 0; k < 3 && n > 0; k++) {
        int32_t keep = ids[bad_at[k]];
        ids[bad_at[k]] = k == 1 ? -1 : (int32_t)V + k;
        tb_poison(&o);
        pt_status st = pt_embedding(p->ctx, &table.t, &tid, &o.t);
        EXPECT(st == PT_ERR_INVALID_ARGUMENT && strstr(pt_last_error(), "out of range"), "%s embedding bad id at %lld: status %d '%s'",
               p->name, (long long)bad_at[k], (int)st, pt_last_error());
        int untouched = 1;
        for (size_t i = 0; i < o.bytes; i++) untouched &= o.mem[i] == 0xff;
        EXPECT(untouched, "%s embedding with a bad id wrote to out", p->name);
        ids[bad_at[k]] = keep;
    }
    tb_free(&table);
    tb_free(&o);
    free(ids);
    free(want);
}

static void test_embedding(tu_path* p) {
    int64_t s1[1] = {7}, s2[2] = {3, 5}, s3[3] = {2, 3, 4}, s1b[1] = {1}, sbig[1] = {3001};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            check_embedding(p, 50, 64, 1, s1, DT3[a], DT3[b]);
            check_embedding(p, 11, 7, 2, s2, DT3[a], DT3[b]);
            check_embedding(p, 300, 385, 3, s3, DT3[a], DT3[b]);
        }
    check_embedding(p, 1, 1, 1, s1b, PT_F32, PT_F32);
    check_embedding(p, 4099, 384, 1, sbig, PT_F32, PT_F32); /* threaded */
    check_embedding(p, 4099, 384, 1, sbig, PT_BF16, PT_F32);
}

/* ---------------------------------------------------------------- mean pooling */

static void check_pool(tu_path* p, int64_t B, int64_t T, int64_t D, int xdt, int odt, int with_mask, int normalize) {
    int64_t xs[3] = {B, T, D}, os[2] = {B, D}, ms[2] = {B, T};
    tbuf x = tb_new(xdt, 3, xs, 2), o = tb_new(odt, 2, os, 1);
    tb_rand(&x, -1, 3);
    int32_t* mask = malloc(sizeof(int32_t) * (size_t)(B * T + 1));
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int32_t m = pt_test_uniform(0, 1) < 0.7 ? 1 : 0;
            if (b == 1) m = 0;                 /* an all-padding row: zeros */
            if (b == 2) m = t < T / 2 ? 1 : 0; /* right padding, as a tokenizer makes */
            if (b == 3 && m) m = 7;            /* any nonzero counts as kept */
            mask[b * T + t] = m;
        }
    pt_tensor tm = pt_test_tensor(mask, PT_I32, 2, ms);
    double* want = malloc(sizeof(double) * (size_t)(B * D + 1));
    for (int64_t b = 0; b < B; b++) {
        double cnt = 0, nrm = 0;
        for (int64_t t = 0; t < T; t++) cnt += !with_mask || mask[b * T + t] != 0;
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++)
                if (!with_mask || mask[b * T + t] != 0) s += tb_get(&x, (b * T + t) * D + j);
            want[b * D + j] = cnt > 0 ? s / cnt : 0.0;
            nrm += want[b * D + j] * want[b * D + j];
        }
        if (normalize)
            for (int64_t j = 0; j < D; j++) want[b * D + j] /= fmax(sqrt(nrm), 1e-12);
    }
    tb_poison(&o);
    EXPECT_OK(pt_mean_pool(p->ctx, &x.t, with_mask ? &tm : NULL, normalize, &o.t));
    TU_COMPARE(&o, want, 1e-6, tu_rtol(odt, 1e-6 * (1 + sqrt((double)T))), "%s mean_pool B=%lld T=%lld D=%lld x=%s out=%s mask=%d norm=%d",
               p->name, (long long)B, (long long)T, (long long)D, tu_dt(xdt), tu_dt(odt), with_mask, normalize);
    tb_free(&x);
    tb_free(&o);
    free(mask);
    free(want);
}

static void test_pool(tu_path* p) {
    static const int64_t dims[] = {1, 7, 63, 384, 1025, 2100};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int k = 0; k < 16; k++)
            check_pool(p, 5, k & 8 ? 33 : 1, dims[d], tu_dts[k & 1], tu_dts[(k >> 1) & 1], (k >> 2) & 1, (k >> 3) & 1);
    check_pool(p, 5, 17, 2100, PT_F32, PT_BF16, 1, 1); /* several column blocks, bf16 out, normalized */
    check_pool(p, 64, 128, 384, PT_F32, PT_F32, 1, 1);  /* threaded */
    check_pool(p, 4, 0, 8, PT_F32, PT_F32, 1, 0);       /* T = 0: zeros */
}

/* ---------------------------------------------------------------- bad inputs */

static void expect_fail(pt_status got, pt_status want, const char* what, const char* needle) {
    const char* msg = pt_last_error();
    EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
    EXPECT(msg[0] != 0 && (!needle || strstr(msg, needle)), "%s: message '%s' should mention '%s'", what, msg,
           needle ? needle : "");
}

static void test_bad_inputs(pt_ctx* ctx) {
    float table[4 * 3] = {0}, out[16];
    int32_t ids[4] = {0, 1, 2, 3};
    for (int i = 0; i < 16; i++) out[i] = 9.0f;
    int64_t ts[2] = {4, 3}, is[1] = {4}, os[2] = {4, 3}, os_bad[2] = {4, 2}, is2[2] = {2, 2}, t1[1] = {12};
    pt_tensor tt = pt_test_tensor(table, PT_F32, 2, ts), ti = pt_test_tensor(ids, PT_I32, 1, is),
              to = pt_test_tensor(out, PT_F32, 2, os);
    EXPECT_OK(pt_embedding(ctx, &tt, &ti, &to));
    for (int i = 0; i < 16; i++) out[i] = 9.0f;
    pt_tensor ob = pt_test_tensor(out, PT_F32, 2, os_bad);
    expect_fail(pt_embedding(ctx, &tt, &ti, &ob), PT_ERR_SHAPE, "embedding out shape", "out");
    pt_tensor i2 = pt_test_tensor(ids, PT_I32, 2, is2);
    expect_fail(pt_embedding(ctx, &tt, &i2, &to), PT_ERR_SHAPE, "embedding out rank for 2-D ids", "out");
    pt_tensor if32 = pt_test_tensor(ids, PT_F32, 1, is);
    expect_fail(pt_embedding(ctx, &tt, &if32, &to), PT_ERR_DTYPE, "embedding f32 ids", "ids");
    pt_tensor i64 = pt_test_tensor(ids, PT_I64, 1, is2);
    expect_fail(pt_embedding(ctx, &tt, &i64, &to), PT_ERR_DTYPE, "embedding i64 ids", "i64");
    pt_tensor tflat = pt_test_tensor(table, PT_F32, 1, t1);
    expect_fail(pt_embedding(ctx, &tflat, &ti, &to), PT_ERR_SHAPE, "embedding 1-D table", "table");
    pt_tensor istr = ti;
    istr.shape[0] = 2;
    istr.stride[0] = 8;
    expect_fail(pt_embedding(ctx, &tt, &istr, &to), PT_ERR_SHAPE, "embedding strided ids", "ids");
    ids[2] = 4;
    expect_fail(pt_embedding(ctx, &tt, &ti, &to), PT_ERR_INVALID_ARGUMENT, "embedding id == V", "ids[2] = 4");
    ids[2] = -7;
    expect_fail(pt_embedding(ctx, &tt, &ti, &to), PT_ERR_INVALID_ARGUMENT, "embedding negative id", "-7");
    ids[2] = 2;
    int untouched = 1;
    for (int i = 0; i < 16; i++) untouched &= out[i] == 9.0f;
    EXPECT(untouched, "failed embedding calls must not write");

    int64_t xs[3] = {2, 2, 3}, ps[2] = {2, 3}, ms[2] = {2, 2}, ms_bad[2] = {2, 3};
    pt_tensor x = pt_test_tensor(table, PT_F32, 3, xs), po = pt_test_tensor(out, PT_F32, 2, ps),
              m = pt_test_tensor(ids, PT_I32, 2, ms), mb = pt_test_tensor(ids, PT_I32, 2, ms_bad),
              mf = pt_test_tensor(ids, PT_F32, 2, ms);
    EXPECT_OK(pt_mean_pool(ctx, &x, &m, 1, &po));
    expect_fail(pt_mean_pool(ctx, &x, &mb, 0, &po), PT_ERR_SHAPE, "mean_pool mask shape", "mask");
    expect_fail(pt_mean_pool(ctx, &x, &mf, 0, &po), PT_ERR_DTYPE, "mean_pool f32 mask", "mask");
    expect_fail(pt_mean_pool(ctx, &tt, &m, 0, &po), PT_ERR_SHAPE, "mean_pool 2-D x", "[B, T, D]");
    pt_tensor pob = pt_test_tensor(out, PT_F32, 2, ms);
    expect_fail(pt_mean_pool(ctx, &x, &m, 0, &pob), PT_ERR_SHAPE, "mean_pool out shape", "out");
}

int main(void) {
    pt_test_seed(14);
    tu_path paths[2];
    int np = tu_paths(paths, 2);
    for (int i = 0; i < np; i++) {
        test_embedding(&paths[i]);
        test_pool(&paths[i]);
    }
    test_bad_inputs(paths[0].ctx);
    for (int i = 0; i < np; i++) pt_ctx_destroy(paths[i].ctx);
    return pt_test_finish("test_embed");
}
