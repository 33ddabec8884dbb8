/* pt_rope against a double reference: NEOX and GPT-J pairs, rotary_dim < head dim, theta,
 * freq_scale, an inv_freq table, 3-D and 4-D x with [T] or [B, T] positions, huge and
 * negative positions, a Q view of a fused QKV buffer, in place, both code paths, bad inputs. */
#include "elem_util.h"

typedef struct {
    int mode, rotary_dim;
    float theta, freq_scale;
    const float* inv_freq;
} rope_case;

/* x, out are B*T*H rows of D (row-major over [B, T, H, D] logical indices) */
static void ref_rope(const tbuf* x, const int32_t* pos, int pos_bt, int64_t B, int64_t T, int64_t H, int64_t D,
                     const rope_case* c, double* want) {
    int64_t r = c->rotary_dim ? c->rotary_dim : D, half = r / 2;
    double fs = c->freq_scale == 0.0f ? 1.0 : c->freq_scale;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            double p = pos[pos_bt ? b * T + t : t];
            for (int64_t h = 0; h < H; h++) {
                int64_t base = ((b * T + t) * H + h) * D;
                for (int64_t i = 0; i < D; i++) want[base + i] = tb_get(x, base + i);
                for (int64_t i = 0; i < half; i++) {
                    double inv = c->inv_freq ? (double)c->inv_freq[i] : pow((double)c->theta, -2.0 * (double)i / (double)r);
                    double ang = p * fs * inv, cs = cos(ang), sn = sin(ang);
                    int64_t ia = c->mode == PT_ROPE_GPTJ ? 2 * i : i, ib = c->mode == PT_ROPE_GPTJ ? 2 * i + 1 : i + half;
                    double a = tb_get(x, base + ia), bb = tb_get(x, base + ib);
                    want[base + ia] = a * cs - bb * sn;
                    want[base + ib] = bb * cs + a * sn;
                }
            }
        }
}

static void check_rope(tu_path* p, int64_t B, int64_t T, int64_t H, int64_t D, int xdt, int odt, const rope_case* c,
                       int pos_bt, int inplace, int32_t pos_lo, int32_t pos_hi) {
    int batched = B > 0;
    int64_t BB = batched ? B : 1;
    int64_t shape4[4] = {BB, T, H, D}, shape3[3] = {T, H, D};
    tbuf x = batched ? tb_new(xdt, 4, shape4, 3) : tb_new(xdt, 3, shape3, 1);
    tb_rand(&x, -1, 1);
    int64_t np = pos_bt ? BB * T : T;
    int32_t* pos = malloc(sizeof(int32_t) * (size_t)(np > 0 ? np : 1));
    for (int64_t i = 0; i < np; i++) pos[i] = (int32_t)floor(pt_test_uniform(pos_lo, (double)pos_hi + 1.0));
    if (np > 0 && pos_hi > pos_lo) pos[0] = pos_hi; /* the extreme one */
    int64_t ps2[2] = {BB, T}, ps1[1] = {T};
    pt_tensor tp = pos_bt ? pt_test_tensor(pos, PT_I32, 2, ps2) : pt_test_tensor(pos, PT_I32, 1, ps1);
    double* want = malloc(sizeof(double) * (size_t)(BB * T * H * D + 1));
    ref_rope(&x, pos, pos_bt, BB, T, H, D, c, want);
    tbuf o = inplace ? x : (batched ? tb_new(odt, 4, shape4, 0) : tb_new(odt, 3, shape3, 2));
    if (inplace) odt = xdt;
    else tb_poison(&o);
    pt_rope_params rp = {c->mode, c->rotary_dim, c->theta, c->freq_scale, c->inv_freq};
    EXPECT_OK(pt_rope(p->ctx, &x.t, &tp, &rp, &o.t));
    /* f32 cos/sin of double-reduced angles: ~2e-7 absolute per factor */
    TU_COMPARE(&o, want, 1.5e-6, tu_rtol(odt, 1e-6), "%s rope B=%lld T=%lld H=%lld D=%lld r=%d %s x=%s out=%s pos_bt=%d inplace=%d pos<=%d",
               p->name, (long long)B, (long long)T, (long long)H, (long long)D, c->rotary_dim,
               c->mode == PT_ROPE_GPTJ ? "gptj" : "neox", tu_dt(xdt), tu_dt(odt), pos_bt, inplace, pos_hi);
    tb_free(&x);
    if (!inplace) tb_free(&o);
    free(pos);
    free(want);
}

/* Q of a fused QKV projection: rows [T, 3*H*D], q = columns [0, H*D) viewed as [T, H, D] */
static void check_rope_qkv_view(tu_path* p, int64_t T, int64_t H, int64_t D) {
    int64_t shape[2] = {T, 3 * H * D};
    tbuf qkv = tb_new(PT_F32, 2, shape, 0);
    tb_rand(&qkv, -1, 1);
    pt_tensor q;
    memset(&q, 0, sizeof q);
    q.data = qkv.mem + 4 * H * D; /* the K third, to make the offset non-zero */
    q.dtype = PT_F32;
    q.ndim = 3;
    q.shape[0] = T; q.shape[1] = H; q.shape[2] = D;
    q.stride[0] = 3 * H * D * 4; q.stride[1] = D * 4; q.stride[2] = 4;
    int32_t* pos = malloc(sizeof(int32_t) * (size_t)T);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t + 17);
    int64_t ps[1] = {T};
    pt_tensor tp = pt_test_tensor(pos, PT_I32, 1, ps);
    double* want = malloc(sizeof(double) * (size_t)(T * 3 * H * D));
    for (int64_t i = 0; i < T * 3 * H * D; i++) want[i] = tb_get(&qkv, i);
    for (int64_t t = 0; t < T; t++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                double ang = (double)pos[t] * pow(10000.0, -2.0 * (double)i / (double)D);
                int64_t base = t * 3 * H * D + H * D + h * D;
                double a = tb_get(&qkv, base + i), b = tb_get(&qkv, base + i + D / 2);
                want[base + i] = a * cos(ang) - b * sin(ang);
                want[base + i + D / 2] = b * cos(ang) + a * sin(ang);
            }
    pt_rope_params rp = {PT_ROPE_NEOX, 0, 10000.0f, 0.0f, NULL};
    EXPECT_OK(pt_rope(p->ctx, &q, &tp, &rp, &q));
    TU_COMPARE(&qkv, want, 1.5e-6, 1e-6, "%s rope in place on the K view of a fused QKV [%lld, %lld]", p->name, (long long)T,
               (long long)(3 * H * D));
    tb_free(&qkv);
    free(pos);
    free(want);
}

static void test_rope(tu_path* p) {
    float inv[64];
    for (int i = 0; i < 64; i++) inv[i] = (float)(pow(500000.0, -2.0 * i / 128.0) * (i < 20 ? 1.0 : 0.125)); /* llama3-like */
    rope_case neox = {PT_ROPE_NEOX, 0, 10000.0f, 0.0f, NULL}, gptj = {PT_ROPE_GPTJ, 0, 10000.0f, 0.0f, NULL};
    for (int k = 0; k < 4; k++) {
        int xdt = tu_dts[k & 1], odt = tu_dts[k >> 1];
        check_rope(p, 0, 7, 3, 64, xdt, odt, &neox, 0, 0, 0, 4096);
        check_rope(p, 0, 7, 3, 64, xdt, odt, &gptj, 0, 0, 0, 4096);
        check_rope(p, 0, 5, 2, 2, xdt, odt, &neox, 0, 0, 0, 100);
        check_rope(p, 0, 1, 1, 128, xdt, odt, &gptj, 0, 0, 0, 1 << 20);
    }
    static const int64_t dims[] = {2, 6, 8, 30, 32, 34, 80, 96, 128, 256};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
        for (int mode = 0; mode <= 1; mode++) {
            rope_case c = {mode, 0, 10000.0f, 0.0f, NULL};
            check_rope(p, 0, 3, 5, dims[d], PT_F32, PT_F32, &c, 0, 0, 0, 2048);
            c.rotary_dim = (int)(dims[d] / 2) & ~1; /* partial rotary (GPT-NeoX / Phi style) */
            if (c.rotary_dim == 0) c.rotary_dim = 2;
            check_rope(p, 0, 3, 5, dims[d] + 1, PT_F32, PT_BF16, &c, 0, 0, 0, 2048); /* odd D, pass-through tail */
            check_rope(p, 2, 3, 2, dims[d], PT_BF16, PT_F32, &c, 1, 1, -50, 50);     /* 4-D, [B,T] pos, in place */
        }
    rope_case c1 = {PT_ROPE_NEOX, 128, 0.0f, 0.0f, inv}, c2 = {PT_ROPE_GPTJ, 96, 1e6f, 0.25f, NULL},
              c3 = {PT_ROPE_NEOX, 64, 10000.0f, 4.0f, NULL};
    check_rope(p, 0, 9, 4, 128, PT_F32, PT_F32, &c1, 0, 0, 0, 131072); /* inv_freq table, theta unused */
    check_rope(p, 3, 4, 2, 128, PT_F32, PT_F32, &c2, 0, 0, 0, 8192);   /* 4-D, shared [T] positions */
    check_rope(p, 0, 9, 2, 64, PT_F32, PT_F32, &c3, 0, 1, 0, 4096);
    check_rope(p, 0, 4, 2, 64, PT_F32, PT_F32, &neox, 0, 0, 2147483000, 2147483647); /* huge positions */
    check_rope(p, 0, 4, 2, 64, PT_F32, PT_F32, &gptj, 0, 0, -2147483647, -2147480000);
    check_rope(p, 0, 300, 8, 128, PT_F32, PT_BF16, &neox, 0, 0, 0, 32768); /* threaded */
    check_rope(p, 4, 64, 4, 64, PT_BF16, PT_BF16, &gptj, 1, 1, 0, 32768);
    check_rope_qkv_view(p, 11, 4, 32);
    check_rope(p, 0, 0, 4, 64, PT_F32, PT_F32, &neox, 0, 0, 0, 10); /* T = 0 */
}

static void expect_fail(pt_status got, pt_status want, const char* what, const char* needle) {
    const char* msg = pt_last_error();
    EXPECT(got == want, "%s: status %d, expected %d (%s)", what, (int)got, (int)want, msg);
    EXPECT(msg[0] != 0 && (!needle || strstr(msg, needle)), "%s: message '%s' should mention '%s'", what, msg,
           needle ? needle : "");
}

static void test_bad_inputs(pt_ctx* ctx) {
    float buf[2 * 3 * 8] = {0}, out[2 * 3 * 8];
    int32_t pos[4] = {0, 1, 2, 3};
    for (int i = 0; i < 48; i++) out[i] = 5.0f;
    int64_t s3[3] = {2, 3, 8}, s2[2] = {6, 8}, p2[1] = {2}, p3[1] = {3}, pbt[2] = {1, 2}, s4[4] = {1, 2, 3, 8};
    pt_tensor x = pt_test_tensor(buf, PT_F32, 3, s3), o = pt_test_tensor(out, PT_F32, 3, s3),
              x2 = pt_test_tensor(buf, PT_F32, 2, s2), tp = pt_test_tensor(pos, PT_I32, 1, p2),
              tp3 = pt_test_tensor(pos, PT_I32, 1, p3), tpf = pt_test_tensor(pos, PT_F32, 1, p2),
              tpbt = pt_test_tensor(pos, PT_I32, 2, pbt), x4 = pt_test_tensor(buf, PT_F32, 4, s4);
    pt_rope_params ok = {PT_ROPE_NEOX, 0, 10000.0f, 0.0f, NULL};
    EXPECT_OK(pt_rope(ctx, &x, &tp, &ok, &o));
    EXPECT_OK(pt_rope(ctx, &x4, &tpbt, &ok, &x4));
    for (int i = 0; i < 48; i++) out[i] = 5.0f;
    expect_fail(pt_rope(ctx, &x, &tp, NULL, &o), PT_ERR_INVALID_ARGUMENT, "rope NULL params", "params");
    expect_fail(pt_rope(ctx, &x2, &tp, &ok, &o), PT_ERR_SHAPE, "rope 2-D x", "[T, H, D]");
    expect_fail(pt_rope(ctx, &x, &tp3, &ok, &o), PT_ERR_SHAPE, "rope positions length", "positions");
    expect_fail(pt_rope(ctx, &x, &tpbt, &ok, &o), PT_ERR_SHAPE, "rope [B,T] positions with 3-D x", "positions");
    expect_fail(pt_rope(ctx, &x, &tpf, &ok, &o), PT_ERR_DTYPE, "rope f32 positions", "positions");
    pt_rope_params bad = ok;
    bad.rotary_dim = 3;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope odd rotary_dim", "rotary_dim");
    bad.rotary_dim = 10;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope rotary_dim > D", "rotary_dim");
    bad.rotary_dim = -2;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope negative rotary_dim", "rotary_dim");
    bad = ok;
    bad.theta = 0.0f;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope theta 0", "theta");
    bad.theta = NAN;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope theta NaN", "theta");
    bad = ok;
    bad.mode = 2;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope mode", "mode");
    bad = ok;
    bad.freq_scale = INFINITY;
    expect_fail(pt_rope(ctx, &x, &tp, &bad, &o), PT_ERR_INVALID_ARGUMENT, "rope freq_scale", "freq_scale");
    pt_tensor ob = o;
    ob.shape[2] = 4;
    expect_fail(pt_rope(ctx, &x, &tp, &ok, &ob), PT_ERR_SHAPE, "rope out shape", "same shape");
    int untouched = 1;
    for (int i = 0; i < 48; i++) untouched &= out[i] == 5.0f;
    EXPECT(untouched, "failed calls must not write");
}

int main(void) {
    pt_test_seed(13);
    tu_path paths[2];
    int np = tu_paths(paths, 2);
    for (int i = 0; i < np; i++) test_rope(&paths[i]);
    test_bad_inputs(paths[0].ctx);
    for (int i = 0; i < np; i++) pt_ctx_destroy(paths[i].ctx);
    return pt_test_finish("test_rope");
}
