/* Quantized matmul on the GPU (quant.cu): pt_cuda_quantize_rows, pt_cuda_matmul_s8,
 * pt_cuda_matmul_int8 (LLM.int8 / W8A8) and pt_cuda_fp4_matmul (GEMV, tensor-core GEMM, W4A4
 * emulated; W4A4 also against the CPU pt_fp4_matmul) against references written
 * here from the header's contracts (exact integers, doubles), fresh random inputs, odd sizes,
 * planted outlier columns, NaN-poisoned outputs, and the argument errors. */
#include "cuda_test_util.h"

static void* dev_bytes(pt_cuda_ctx* ctx, const void* host, size_t bytes) {
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, bytes + 16, &d));
    if (host && bytes) EXPECT_CUDA_OK(pt_cuda_memcpy_h2d(ctx, d, host, bytes));
    return d;
}

/* the quantizer of the contract: s = absmax / 127, q = rne(x * (127 / absmax)) in f32 */
static void ref_quant_row(const float* x, int64_t k, const int* keep, int8_t* q, float* scale) {
    float amax = 0.0f;
    int bad = 0;
    for (int64_t j = 0; j < k; j++) {
        if (!isfinite(x[j])) bad = 1;
        float a = keep && !keep[j] ? 0.0f : fabsf(x[j]);
        if (a > amax) amax = a;
    }
    float inv = amax > 0.0f && !bad ? 127.0f / amax : 0.0f;
    *scale = bad ? NAN : amax / 127.0f;
    for (int64_t j = 0; j < k; j++) {
        volatile float prod = x[j] * inv;
        float v = keep && !keep[j] ? 0.0f : nearbyintf(prod);
        v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
        q[j] = (int8_t)(int)v;
    }
}

/* x [m, k] uniform in [-2, 2] rounded to dt, with outlier columns (|x| up to 20 in a few rows) */
static float* make_x(int64_t m, int64_t k, int32_t dt, int n_out, int* out_cols) {
    float* x = malloc((size_t)(m * k + 1) * sizeof(float));
    for (int64_t i = 0; i < m * k; i++) x[i] = round_to((float)pt_test_uniform(-2, 2), dt);
    for (int o = 0; o < n_out && k > 0; o++) {
        int64_t j = (int64_t)(pt_test_uniform(0, 1) * (double)k) % k;
        out_cols[o] = (int)j;
        for (int64_t r = 0; r < m; r += 1 + (r % 3))
            x[r * k + j] = round_to((float)((pt_test_uniform(0, 1) < 0.5 ? -1 : 1) * pt_test_uniform(6.5, 20)), dt);
    }
    return x;
}

static void test_quantize_rows(pt_cuda_ctx* ctx, int32_t dt, int64_t m, int64_t k, int with_outliers, int nan_row) {
    int cols[4];
    float* x = make_x(m, k, dt, with_outliers ? 3 : 0, cols);
    if (nan_row >= 0 && nan_row < m) x[nan_row * k + k / 2] = NAN;
    int* keep = malloc((size_t)(k + 1) * sizeof(int));
    for (int64_t j = 0; j < k; j++) {
        float cm = 0.0f;
        for (int64_t r = 0; r < m; r++) {
            float a = fabsf(x[r * k + j]);
            if (a > cm) cm = a;
        }
        keep[j] = !(with_outliers && cm >= 6.0f);
    }
    void* dx = upload(ctx, x, (size_t)(m * k), dt);
    void* dq = dev_bytes(ctx, NULL, (size_t)(m * k));
    void* ds = alloc_poisoned(ctx, (size_t)m, PT_F32);
    void* df = dev_bytes(ctx, NULL, (size_t)k * 4);
    EXPECT_CUDA_OK(pt_cuda_memset(ctx, dq, 0x55, (size_t)(m * k)));
    EXPECT_CUDA_OK(pt_cuda_memset(ctx, df, 0x55, (size_t)k * 4));
    int64_t sx[2] = {m, k}, sm[1] = {m}, sk[1] = {k};
    pt_tensor tx = dev_tensor(dx, dt, 2, sx), tq = dev_tensor(dq, PT_I8, 2, sx), ts = dev_tensor(ds, PT_F32, 1, sm),
              tf = dev_tensor(df, PT_I32, 1, sk);
    EXPECT_CUDA_OK(pt_cuda_quantize_rows(ctx, &tx, 6.0f, &tq, &ts, with_outliers ? &tf : NULL));
    int8_t* q = malloc((size_t)(m * k + 1));
    int8_t* rq = malloc((size_t)(k + 1));
    float* s = malloc((size_t)(m + 1) * sizeof(float));
    int32_t* f = malloc((size_t)(k + 1) * 4);
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, q, dq, (size_t)(m * k)));
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, s, ds, (size_t)m * 4));
    if (with_outliers) EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, f, df, (size_t)k * 4));
    int bad_q = 0, bad_s = 0, bad_f = 0;
    for (int64_t j = 0; with_outliers && j < k; j++) bad_f += f[j] != !keep[j];
    for (int64_t r = 0; r < m; r++) {
        float rs;
        ref_quant_row(x + r * k, k, with_outliers ? keep : NULL, rq, &rs);
        if (!(rs == s[r] || (isnan(rs) && isnan(s[r])))) bad_s++;
        for (int64_t j = 0; j < k; j++) bad_q += q[r * k + j] != rq[j];
    }
    EXPECT(bad_q == 0 && bad_s == 0 && bad_f == 0, "quantize_rows %s M %lld K %lld outliers %d nan_row %d: %d codes, %d scales, %d flags differ",
           dtname(dt), (long long)m, (long long)k, with_outliers, nan_row, bad_q, bad_s, bad_f);
    pt_cuda_free(ctx, dx), pt_cuda_free(ctx, dq), pt_cuda_free(ctx, ds), pt_cuda_free(ctx, df);
    free(x), free(keep), free(q), free(rq), free(s), free(f);
}

static double act_d(double v, int act) {
    switch (act) {
        case PT_ACT_RELU: return v > 0 ? v : 0;
        case PT_ACT_GELU_ERF: return 0.5 * v * (1 + erf(v / sqrt(2.0)));
        case PT_ACT_GELU_TANH: return 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        case PT_ACT_SILU: return v / (1 + exp(-v));
        default: return v;
    }
}

static void rand_i8(int8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (int8_t)((int)(pt_test_uniform(0, 1) * 255.0) - 127);
}

/* s8 GEMM: exact s32 sums, and the dequantizing epilogue against doubles */
static void test_matmul_s8(pt_cuda_ctx* ctx, int64_t m, int64_t n, int64_t k, int32_t cdt, int act) {
    int8_t* a = malloc((size_t)(m * k + 1));
    int8_t* b = malloc((size_t)(n * k + 1));
    rand_i8(a, (size_t)(m * k));
    rand_i8(b, (size_t)(n * k));
    float* as = malloc((size_t)(m + 1) * 4);
    float* bs = malloc((size_t)(n + 1) * 4);
    float* bias = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < m; i++) as[i] = (float)pt_test_uniform(0.001, 0.02);
    for (int64_t i = 0; i < n; i++) bs[i] = (float)pt_test_uniform(0.001, 0.02), bias[i] = (float)pt_test_uniform(-1, 1);
    void* da = dev_bytes(ctx, a, (size_t)(m * k));
    void* db = dev_bytes(ctx, b, (size_t)(n * k));
    void* das = upload(ctx, as, (size_t)m, PT_F32);
    void* dbs = upload(ctx, bs, (size_t)n, PT_F32);
    void* dbias = upload(ctx, bias, (size_t)n, PT_F32);
    size_t ces = cdt == PT_I32 || cdt == PT_F32 ? 4 : 2;
    void* dc = dev_bytes(ctx, NULL, (size_t)(m * n) * ces);
    EXPECT_CUDA_OK(pt_cuda_memset(ctx, dc, 0xff, (size_t)(m * n) * ces));
    int64_t sa[2] = {m, k}, sb[2] = {n, k}, sc[2] = {m, n}, sm[1] = {m}, sn[1] = {n};
    pt_tensor ta = dev_tensor(da, PT_I8, 2, sa), tb = dev_tensor(db, PT_I8, 2, sb), tc = dev_tensor(dc, cdt, 2, sc);
    pt_tensor tas = dev_tensor(das, PT_F32, 1, sm), tbs = dev_tensor(dbs, PT_F32, 1, sn), tbias = dev_tensor(dbias, PT_F32, 1, sn);
    if (cdt == PT_I32) EXPECT_CUDA_OK(pt_cuda_matmul_s8(ctx, &ta, &tb, NULL, NULL, NULL, &tc, PT_ACT_NONE));
    else EXPECT_CUDA_OK(pt_cuda_matmul_s8(ctx, &ta, &tb, &tas, &tbs, &tbias, &tc, act));
    void* host = malloc((size_t)(m * n) * ces + 4);
    EXPECT_CUDA_OK(pt_cuda_memcpy_d2h(ctx, host, dc, (size_t)(m * n) * ces));
    int64_t wrong = 0;
    double err = 0, nrm = 0;
    int nan = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            int64_t s = 0;
            for (int64_t p = 0; p < k; p++) s += (int64_t)a[i * k + p] * b[j * k + p];
            if (cdt == PT_I32) {
                wrong += ((int32_t*)host)[i * n + j] != (int32_t)s;
            } else {
                double ref = act_d((double)s * as[i] * bs[j] + bias[j], act);
                float got;
                unpack_host((char*)host + (i * n + j) * ces, 1, cdt, &got);
                if (isnan(got)) nan++;
                err += (got - ref) * (got - ref);
                nrm += ref * ref;
            }
        }
    if (cdt == PT_I32) {
        EXPECT(wrong == 0, "matmul_s8 i32 M %lld N %lld K %lld: %lld sums differ", (long long)m, (long long)n, (long long)k, (long long)wrong);
    } else {
        double rel = sqrt(err / (nrm > 0 ? nrm : 1)), tol = cdt == PT_F32 ? 1e-5 : cdt == PT_F16 ? 2e-3 : 8e-3;
        EXPECT(nan == 0 && rel <= tol, "matmul_s8 %s act %d M %lld N %lld K %lld: rel err %.3g (tol %.1g), %d NaN", dtname(cdt), act,
               (long long)m, (long long)n, (long long)k, rel, tol, nan);
    }
    pt_cuda_free(ctx, da), pt_cuda_free(ctx, db), pt_cuda_free(ctx, das), pt_cuda_free(ctx, dbs), pt_cuda_free(ctx, dbias),
        pt_cuda_free(ctx, dc);
    free(a), free(b), free(as), free(bs), free(bias), free(host);
}

/* LLM.int8 / W8A8 against the contract, computed here in doubles from the exact quantization */
static void test_matmul_int8(pt_cuda_ctx* ctx, int mode, int32_t xdt, int32_t ydt, int64_t m, int64_t n, int64_t k, int wo_kind,
                             int with_bias, int act, int nan_row) {
    int cols[4];
    float* x = make_x(m, k, xdt, mode == PT_INT8_LLM ? 3 : 0, cols);
    if (mode == PT_INT8_W8A8) /* a few large values anyway: W8A8 must quantize them, not split */
        for (int64_t r = 0; r < m; r += 5) x[r * k + (r % k)] = round_to(9.0f, xdt);
    if (nan_row >= 0 && nan_row < m) x[nan_row * k + k - 1] = NAN;
    int8_t* wq = malloc((size_t)(n * k + 1));
    rand_i8(wq, (size_t)(n * k));
    float* ws = malloc((size_t)(n + 1) * 4);
    float* bias = malloc((size_t)(n + 1) * 4);
    float* wo = malloc((size_t)(n * k + 1) * 4);
    for (int64_t j = 0; j < n; j++) ws[j] = (float)pt_test_uniform(0.001, 0.01), bias[j] = (float)pt_test_uniform(-1, 1);
    int32_t wodt = wo_kind == 2 ? PT_BF16 : PT_F32;
    for (int64_t i = 0; i < n * k; i++) wo[i] = round_to((float)wq[i] * ws[i / k] + (float)pt_test_uniform(-3e-3, 3e-3), wodt);
    int* keep = malloc((size_t)(k + 1) * sizeof(int));
    for (int64_t j = 0; j < k; j++) {
        float cm = 0.0f;
        for (int64_t r = 0; r < m; r++) {
            float a = fabsf(x[r * k + j]);
            if (a > cm) cm = a;
        }
        keep[j] = !(mode == PT_INT8_LLM && cm >= 6.0f);
    }
    void* dx = upload(ctx, x, (size_t)(m * k), xdt);
    void* dw = dev_bytes(ctx, wq, (size_t)(n * k));
    void* dws = upload(ctx, ws, (size_t)n, PT_F32);
    void* db = upload(ctx, bias, (size_t)n, PT_F32);
    void* dwo = upload(ctx, wo, (size_t)(n * k), wodt);
    void* dy = alloc_poisoned(ctx, (size_t)(m * n), ydt);
    int64_t sx[2] = {m, k}, sw[2] = {n, k}, sy[2] = {m, n}, sn[1] = {n};
    pt_tensor tx = dev_tensor(dx, xdt, 2, sx), tw = dev_tensor(dw, PT_I8, 2, sw), tws = dev_tensor(dws, PT_F32, 1, sn),
              tb = dev_tensor(db, PT_F32, 1, sn), two = dev_tensor(dwo, wodt, 2, sw), ty = dev_tensor(dy, ydt, 2, sy);
    pt_int8_matmul_params p = {mode, act, 6.0f, 0, NULL};
    EXPECT_CUDA_OK(pt_cuda_matmul_int8(ctx, &tx, &tw, &tws, wo_kind ? &two : NULL, with_bias ? &tb : NULL, &ty, &p));
    float* got = malloc((size_t)(m * n + 1) * 4);
    download(ctx, dy, (size_t)(m * n), ydt, got);
    int8_t* q = malloc((size_t)(k + 1));
    double err = 0, nrm = 0;
    int nan = 0, nan_ok = 1;
    for (int64_t r = 0; r < m; r++) {
        float s;
        ref_quant_row(x + r * k, k, keep, q, &s);
        for (int64_t j = 0; j < n; j++) {
            float g = got[r * n + j];
            if (r == nan_row) {
                nan_ok &= isnan(g);
                continue;
            }
            int64_t acc = 0;
            double o = 0;
            for (int64_t c = 0; c < k; c++) {
                acc += (int64_t)q[c] * wq[j * k + c];
                if (!keep[c]) o += (double)x[r * k + c] * (wo_kind ? (double)wo[j * k + c] : (double)((float)wq[j * k + c] * ws[j]));
            }
            double ref = act_d((double)acc * s * ws[j] + o + (with_bias ? bias[j] : 0), act);
            if (isnan(g)) nan++;
            err += (g - ref) * (g - ref);
            nrm += ref * ref;
        }
    }
    double rel = sqrt(err / (nrm > 0 ? nrm : 1)), tol = ydt == PT_F32 ? 2e-5 : ydt == PT_F16 ? 2e-3 : 8e-3;
    EXPECT(nan == 0 && nan_ok && rel <= tol,
           "matmul_int8 %s x %s y %s M %lld N %lld K %lld w_outlier %d bias %d act %d nan_row %d: rel err %.3g (tol %.1g), %d NaN, NaN row %s",
           mode == PT_INT8_LLM ? "LLM" : "W8A8", dtname(xdt), dtname(ydt), (long long)m, (long long)n, (long long)k, wo_kind, with_bias,
           act, nan_row, rel, tol, nan, nan_ok ? "ok" : "WRONG");
    pt_cuda_free(ctx, dx), pt_cuda_free(ctx, dw), pt_cuda_free(ctx, dws), pt_cuda_free(ctx, db), pt_cuda_free(ctx, dwo),
        pt_cuda_free(ctx, dy);
    free(x), free(wq), free(ws), free(bias), free(wo), free(keep), free(got), free(q);
}

/* W4A4 activation quantizer of pt_fp4_matmul's contract, written plainly (f32, nearest level,
 * ties to the smaller magnitude then the lower code). */
static void ref_quant_acts(const float* x, int64_t m, int64_t k, const int32_t* shift, int32_t afmt, float clip, float* xq) {
    float lv[16], mx = 0.0f;
    EXPECT_OK(pt_fp4_levels(afmt, lv));
    for (int c = 0; c < 16; c++) mx = fabsf(lv[c]) > mx ? fabsf(lv[c]) : mx;
    const float inv_max = 1.0f / mx;
    for (int64_t r = 0; r < m; r++) {
        float amax = 0.0f;
        for (int64_t j = 0; j < k; j++) {
            float v = shift ? ldexpf(x[r * k + j], -shift[j]) : x[r * k + j];
            if (fabsf(v) > amax) amax = fabsf(v);
        }
        float a = clip * amax * inv_max;
        for (int64_t j = 0; j < k; j++) {
            float v = shift ? ldexpf(x[r * k + j], -shift[j]) : x[r * k + j];
            if (!(a > 0.0f && isfinite(a))) {
                xq[r * k + j] = 0.0f;
                continue;
            }
            float t = v / a;
            int best = 0;
            for (int c = 1; c < 16; c++) {
                float d = fabsf(t - lv[c]), bd = fabsf(t - lv[best]);
                if (d < bd || (d == bd && fabsf(lv[c]) < fabsf(lv[best]))) best = c;
            }
            xq[r * k + j] = a * lv[best];
        }
    }
}

/* FP4 matmul: random codes and scales, y against doubles of the same quantized math (16-bit x
 * with M > 4: level * scale rounded to x's dtype; W4A4: xq of the contract rounded to x's
 * dtype). extra_stride: bytes added to the codes' row stride (a misaligned layout takes the
 * copy path). w4a4: afmt / aclip / with_shift as in pt_fp4_matmul_params; f32 x is also
 * compared with the CPU library's pt_fp4_matmul on the same inputs. */
static void test_fp4_full(pt_cuda_ctx* ctx, int32_t fmt, int group, int32_t xdt, int32_t ydt, int32_t sdt, int64_t m, int64_t n,
                          int64_t k, int extra_stride, int with_bias, int w4a4, int32_t afmt, float aclip, int with_shift) {
    float lv[16];
    EXPECT_OK(pt_fp4_levels(fmt, lv));
    const int64_t ldq = k / 2 + extra_stride, ng = group ? k / group : 1;
    uint8_t* codes = malloc((size_t)(n * ldq + 1));
    for (int64_t i = 0; i < n * ldq; i++) codes[i] = (uint8_t)(pt_test_uniform(0, 1) * 256.0);
    float* sc = malloc((size_t)(n * ng) * 4);
    for (int64_t i = 0; i < n * ng; i++) sc[i] = round_to((float)pt_test_uniform(0.01, 0.1), sdt);
    float* x = malloc((size_t)(m * k + 1) * 4);
    for (int64_t i = 0; i < m * k; i++) x[i] = round_to((float)pt_test_uniform(-1, 1), xdt);
    float* bias = malloc((size_t)(n + 1) * 4);
    for (int64_t i = 0; i < n; i++) bias[i] = (float)pt_test_uniform(-1, 1);
    int32_t* shift = malloc((size_t)(k + 1) * 4);
    for (int64_t i = 0; i < k; i++) shift[i] = (int32_t)(pt_test_uniform(0, 1) * 5.0) - 2;
    void* dq = dev_bytes(ctx, codes, (size_t)(n * ldq));
    void* ds = upload(ctx, sc, (size_t)(n * ng), sdt);
    void* dx = upload(ctx, x, (size_t)(m * k), xdt);
    void* db = upload(ctx, bias, (size_t)n, PT_F32);
    void* dsh = dev_bytes(ctx, shift, (size_t)k * 4);
    void* dy = alloc_poisoned(ctx, (size_t)(m * n), ydt);
    int64_t sx[2] = {m, k}, ss[2] = {n, ng}, sy[2] = {m, n}, sn[1] = {n}, sk[1] = {k};
    pt_tensor tx = dev_tensor(dx, xdt, 2, sx), ts = dev_tensor(ds, sdt, 2, ss), ty = dev_tensor(dy, ydt, 2, sy),
              tb = dev_tensor(db, PT_F32, 1, sn), tsh = dev_tensor(dsh, PT_I32, 1, sk);
    pt_tensor tq;
    memset(&tq, 0, sizeof tq);
    tq.data = dq, tq.dtype = PT_U4, tq.device = PT_DEVICE_CUDA, tq.ndim = 2;
    tq.shape[0] = n, tq.shape[1] = k, tq.stride[0] = ldq, tq.stride[1] = 1;
    pt_fp4_matmul_params p;
    memset(&p, 0, sizeof p);
    p.format = fmt, p.group = group, p.w4a4 = w4a4, p.act_format = afmt, p.act_clip = aclip;
    p.act_shift = w4a4 && with_shift ? &tsh : NULL;
    EXPECT_CUDA_OK(pt_cuda_fp4_matmul(ctx, &tx, &tq, &ts, with_bias ? &tb : NULL, &ty, &p));
    float* got = malloc((size_t)(m * n + 1) * 4);
    download(ctx, dy, (size_t)(m * n), ydt, got);
    /* the activations and weights the GPU multiplies */
    float* xa = malloc((size_t)(m * k + 1) * 4);
    if (w4a4) {
        ref_quant_acts(x, m, k, with_shift ? shift : NULL, afmt, aclip == 0.0f ? 1.0f : aclip, xa);
        for (int64_t i = 0; i < m * k; i++) xa[i] = round_to(xa[i], xdt);
    } else {
        memcpy(xa, x, (size_t)(m * k) * 4);
    }
    const int round_w = m > 4 && xdt != PT_F32;
    double err = 0, nrm = 0;
    int nan = 0;
    for (int64_t r = 0; r < m; r++)
        for (int64_t j = 0; j < n; j++) {
            double ref = with_bias ? bias[j] : 0;
            for (int64_t c = 0; c < k; c++) {
                uint8_t byte = codes[j * ldq + c / 2];
                int code = c & 1 ? byte >> 4 : byte & 15;
                float w = lv[code] * sc[j * ng + (group ? c / group : 0)];
                ref += (double)xa[r * k + c] * (round_w ? round_to(w, xdt) : w);
            }
            float g = got[r * n + j];
            if (isnan(g)) nan++;
            err += (g - ref) * (g - ref);
            nrm += ref * ref;
        }
    double rel = sqrt(err / (nrm > 0 ? nrm : 1));
    double tol = ydt == PT_F32 ? 1e-5 : ydt == PT_F16 ? 3e-3 : 1e-2;
    EXPECT(nan == 0 && rel <= tol,
           "fp4_matmul fmt %d group %d x %s y %s scales %s M %lld N %lld K %lld stride+%d w4a4 %d (act %d clip %g shift %d): rel err %.3g (tol %.1g), %d NaN",
           fmt, group, dtname(xdt), dtname(ydt), dtname(sdt), (long long)m, (long long)n, (long long)k, extra_stride, w4a4, afmt,
           (double)aclip, with_shift, rel, tol, nan);
    if (w4a4 && xdt == PT_F32 && ydt == PT_F32 && extra_stride == 0) {
        /* the CPU library on the same inputs */
        pt_ctx* cpu = NULL;
        EXPECT_OK(pt_ctx_create(NULL, &cpu));
        float* yc = malloc((size_t)(m * n + 1) * 4);
        float* scf = malloc((size_t)(n * ng + 1) * 4);
        memcpy(scf, sc, (size_t)(n * ng) * 4);
        uint16_t* scb = malloc((size_t)(n * ng + 1) * 2);
        pack_host(sc, (size_t)(n * ng), sdt, sdt == PT_F32 ? (void*)scf : (void*)scb);
        pt_tensor hx = pt_test_tensor(x, PT_F32, 2, sx), hy = pt_test_tensor(yc, PT_F32, 2, sy),
                  hs = pt_test_tensor(sdt == PT_F32 ? (void*)scf : (void*)scb, sdt, 2, ss), hb = pt_test_tensor(bias, PT_F32, 1, sn),
                  hsh = pt_test_tensor(shift, PT_I32, 1, sk);
        pt_tensor hq;
        memset(&hq, 0, sizeof hq);
        hq.data = codes, hq.dtype = PT_U4, hq.device = PT_DEVICE_CPU, hq.ndim = 2;
        hq.shape[0] = n, hq.shape[1] = k, hq.stride[0] = ldq, hq.stride[1] = 1;
        pt_fp4_matmul_params pc = p;
        pc.act_shift = with_shift ? &hsh : NULL;
        EXPECT_OK(pt_fp4_matmul(cpu, &hx, &hq, &hs, with_bias ? &hb : NULL, &hy, &pc));
        double e2 = 0, n2 = 0;
        for (int64_t i = 0; i < m * n; i++) {
            e2 += ((double)got[i] - yc[i]) * ((double)got[i] - yc[i]);
            n2 += (double)yc[i] * yc[i];
        }
        double rc = sqrt(e2 / (n2 > 0 ? n2 : 1));
        EXPECT(rc <= 1e-5, "fp4 W4A4 vs CPU pt_fp4_matmul: fmt %d act %d M %lld N %lld K %lld: rel diff %.3g", fmt, afmt, (long long)m,
               (long long)n, (long long)k, rc);
        pt_ctx_destroy(cpu);
        free(yc), free(scf), free(scb);
    }
    pt_cuda_free(ctx, dq), pt_cuda_free(ctx, ds), pt_cuda_free(ctx, dx), pt_cuda_free(ctx, db), pt_cuda_free(ctx, dy), pt_cuda_free(ctx, dsh);
    free(codes), free(sc), free(x), free(bias), free(got), free(xa), free(shift);
}

static void test_fp4(pt_cuda_ctx* ctx, int32_t fmt, int group, int32_t xdt, int32_t ydt, int32_t sdt, int64_t m, int64_t n,
                     int64_t k, int extra_stride, int with_bias) {
    test_fp4_full(ctx, fmt, group, xdt, ydt, sdt, m, n, k, extra_stride, with_bias, 0, 0, 0.0f, 0);
}

static void test_errors(pt_cuda_ctx* ctx) {
    void* d = NULL;
    EXPECT_CUDA_OK(pt_cuda_malloc(ctx, 1 << 16, &d));
    int64_t s2[2] = {4, 64}, s3[2] = {8, 64}, s4[1] = {4}, s8[1] = {8}, s5[1] = {5}, sy[2] = {4, 8}, sq[2] = {8, 2};
    pt_tensor x = dev_tensor(d, PT_F32, 2, s2), xq = dev_tensor(d, PT_I8, 2, s2), sc4 = dev_tensor(d, PT_F32, 1, s4),
              sc5 = dev_tensor(d, PT_F32, 1, s5), w = dev_tensor(d, PT_I8, 2, s3), ws = dev_tensor(d, PT_F32, 1, s8),
              y = dev_tensor(d, PT_F32, 2, sy), yi = dev_tensor(d, PT_I32, 2, sy), sq2 = dev_tensor(d, PT_F32, 2, sq);
    EXPECT(pt_cuda_quantize_rows(ctx, &x, 6.0f, &xq, &sc5, NULL) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "scale"),
           "scale length: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_quantize_rows(ctx, &x, 6.0f, &x, &sc4, NULL) == PT_ERR_DTYPE && strstr(pt_cuda_last_error(), "xq"),
           "xq dtype: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_matmul_s8(ctx, &xq, &w, &sc4, NULL, NULL, &yi, PT_ACT_NONE) == PT_ERR_INVALID_ARGUMENT, "i32 c with scales: %s",
           pt_cuda_last_error());
    EXPECT(pt_cuda_matmul_s8(ctx, &xq, &xq, NULL, NULL, NULL, &y, PT_ACT_NONE) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "c "),
           "c shape: %s", pt_cuda_last_error());
    pt_int8_matmul_params p = {PT_INT8_WEIGHT_ONLY, 0, 0.0f, 0, NULL};
    EXPECT(pt_cuda_matmul_int8(ctx, &x, &w, &ws, NULL, NULL, &y, &p) == PT_ERR_UNSUPPORTED, "weight-only: %s", pt_cuda_last_error());
    p.mode = PT_INT8_LLM, p.threshold = -1.0f;
    EXPECT(pt_cuda_matmul_int8(ctx, &x, &w, &ws, NULL, NULL, &y, &p) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "threshold"),
           "threshold: %s", pt_cuda_last_error());
    p.threshold = 6.0f;
    EXPECT(pt_cuda_matmul_int8(ctx, &x, &w, &sc4, NULL, NULL, &y, &p) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "w_scale"),
           "w_scale: %s", pt_cuda_last_error());
    pt_tensor codes;
    memset(&codes, 0, sizeof codes);
    codes.data = d, codes.dtype = PT_U4, codes.device = PT_DEVICE_CUDA, codes.ndim = 2;
    codes.shape[0] = 8, codes.shape[1] = 64, codes.stride[0] = 32, codes.stride[1] = 1;
    pt_fp4_matmul_params fp;
    memset(&fp, 0, sizeof fp);
    fp.group = 32;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_OK, "fp4 valid call: %s", pt_cuda_last_error());
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, NULL) == PT_ERR_INVALID_ARGUMENT, "fp4 NULL params");
    fp.w4a4 = 2;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "w4a4"),
           "fp4 w4a4 = 2: %s", pt_cuda_last_error());
    fp.w4a4 = 1, fp.act_format = 7;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "act_format"),
           "fp4 act_format: %s", pt_cuda_last_error());
    fp.act_format = 0, fp.act_clip = 1.5f;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "act_clip"),
           "fp4 act_clip: %s", pt_cuda_last_error());
    fp.act_clip = 0.0f, fp.act_shift = &sc5; /* f32 [5], not i32 [64] */
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "act_shift"),
           "fp4 act_shift: %s", pt_cuda_last_error());
    fp.act_shift = NULL;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_OK, "fp4 w4a4 valid call: %s", pt_cuda_last_error());
    fp.w4a4 = 0, fp.group = 48;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_INVALID_ARGUMENT && strstr(pt_cuda_last_error(), "group"),
           "fp4 group: %s", pt_cuda_last_error());
    fp.group = 64;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_SHAPE && strstr(pt_cuda_last_error(), "scales"),
           "fp4 scales shape: %s", pt_cuda_last_error());
    codes.dtype = PT_U8;
    fp.group = 32;
    EXPECT(pt_cuda_fp4_matmul(ctx, &x, &codes, &sq2, NULL, &y, &fp) == PT_ERR_DTYPE && strstr(pt_cuda_last_error(), "codes"),
           "fp4 codes dtype: %s", pt_cuda_last_error());
    EXPECT_CUDA_OK(pt_cuda_free(ctx, d));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    skip_without_gpu("test_cuda_quant");
    pt_test_seed(23);
    pt_cuda_ctx* ctx = NULL;
    EXPECT_CUDA_OK(pt_cuda_ctx_create(NULL, &ctx));
    if (!ctx) return pt_test_finish("test_cuda_quant");
    static const int32_t dts[] = {PT_F32, PT_BF16, PT_F16};

    for (int d = 0; d < 3; d++) {
        test_quantize_rows(ctx, dts[d], 1, 1, 0, -1);
        test_quantize_rows(ctx, dts[d], 7, 63, 1, 3);
        test_quantize_rows(ctx, dts[d], 65, 127, 1, -1);
        test_quantize_rows(ctx, dts[d], 130, 1025, 1, 64);
        test_quantize_rows(ctx, dts[d], 33, 256, 0, 5);
    }

    static const int64_t s8_shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {63, 65, 127}, {1, 256, 512}, {130, 97, 256}, {256, 256, 1024}, {17, 384, 4096}};
    for (int i = 0; i < 7; i++) test_matmul_s8(ctx, s8_shapes[i][0], s8_shapes[i][1], s8_shapes[i][2], PT_I32, 0);
    test_matmul_s8(ctx, 65, 127, 256, PT_F32, PT_ACT_NONE);
    test_matmul_s8(ctx, 33, 64, 96, PT_BF16, PT_ACT_GELU_ERF);
    test_matmul_s8(ctx, 9, 31, 63, PT_F16, PT_ACT_RELU);
    test_matmul_s8(ctx, 64, 128, 512, PT_F32, PT_ACT_SILU);

    test_matmul_int8(ctx, PT_INT8_LLM, PT_F32, PT_F32, 1, 1, 1, 0, 0, 0, -1);
    test_matmul_int8(ctx, PT_INT8_LLM, PT_F32, PT_F32, 7, 65, 63, 1, 1, PT_ACT_NONE, 3);
    test_matmul_int8(ctx, PT_INT8_LLM, PT_BF16, PT_BF16, 65, 127, 256, 2, 1, PT_ACT_GELU_TANH, -1);
    test_matmul_int8(ctx, PT_INT8_LLM, PT_F16, PT_F32, 130, 64, 384, 0, 1, PT_ACT_RELU, 77);
    test_matmul_int8(ctx, PT_INT8_LLM, PT_BF16, PT_F32, 16, 256, 1024, 1, 0, PT_ACT_NONE, -1);
    test_matmul_int8(ctx, PT_INT8_W8A8, PT_F32, PT_F32, 9, 33, 127, 0, 1, PT_ACT_NONE, -1);
    test_matmul_int8(ctx, PT_INT8_W8A8, PT_BF16, PT_BF16, 64, 96, 512, 0, 1, PT_ACT_SILU, 10);

    /* FP4: GEMV (M <= 4, and f32 x) and the tensor-core GEMM (M > 4), every format, groups, dtypes, strides */
    for (int fmt = 0; fmt < 4; fmt++) {
        test_fp4(ctx, fmt, 32, PT_BF16, PT_BF16, PT_F32, 1, 130, 512, 0, 1);
        test_fp4(ctx, fmt, 0, PT_F32, PT_F32, PT_F32, 3, 7, 62, 0, 1);
    }
    test_fp4(ctx, PT_FP4_E2M1, 64, PT_F32, PT_F32, PT_BF16, 2, 33, 1024, 0, 0);
    test_fp4(ctx, PT_FP4_E2M1, 128, PT_F16, PT_F16, PT_F32, 4, 65, 1408, 0, 1);
    test_fp4(ctx, PT_FP4_E2M1, 32, PT_BF16, PT_F32, PT_BF16, 1, 1, 32, 0, 1);
    test_fp4(ctx, PT_FP4_E2M1, 0, PT_BF16, PT_BF16, PT_F32, 1, 9, 14, 0, 1);
    test_fp4(ctx, PT_FP4_E2M1, 32, PT_F32, PT_F32, PT_F32, 1, 17, 256, 3, 1);  /* misaligned rows: copy path */
    test_fp4(ctx, PT_FP4_NF4, 64, PT_BF16, PT_F32, PT_BF16, 4, 257, 2048, 0, 1);
    test_fp4(ctx, PT_FP4_E2M1, 32, PT_F32, PT_F32, PT_F32, 5, 33, 256, 0, 1);   /* M > 4, f32 x: GEMV per 4 rows */
    test_fp4(ctx, PT_FP4_E2M1, 64, PT_BF16, PT_BF16, PT_BF16, 17, 130, 512, 0, 1);
    test_fp4(ctx, PT_FP4_NF4, 0, PT_F16, PT_F32, PT_F32, 9, 7, 62, 1, 0);
    /* M > 4 tensor-core GEMM: M x every format x groups, odd N, K odd multiples of the group
     * (group 0: K not a multiple of 32), bf16/f16 x, y f32 or x's dtype, f32/bf16 scales */
    {
        static const int64_t ms[] = {5, 17, 64, 300};
        static const int groups[] = {0, 32, 64, 128};
        int i = 0;
        for (int fmt = 0; fmt < 4; fmt++)
            for (int gi = 0; gi < 4; gi++)
                for (int mi = 0; mi < 4; mi++, i++) {
                    const int g = groups[gi];
                    const int32_t xdt = i & 1 ? PT_F16 : PT_BF16, ydt = i & 2 ? PT_F32 : xdt, sdt = i & 4 ? PT_BF16 : PT_F32;
                    const int64_t n = mi & 1 ? 131 : 67, k = g ? g * (mi & 1 ? 5 : 3) : (mi & 1 ? 350 : 94);
                    test_fp4(ctx, fmt, g, xdt, ydt, sdt, ms[mi], n, k, (i % 7) == 3 ? 5 : 0, (i >> 3) & 1);
                }
    }
    /* split K (long K, few CTAs): slices of 128-multiples, ragged last slice for group 0 */
    test_fp4(ctx, PT_FP4_E2M1, 128, PT_BF16, PT_F32, PT_F32, 300, 129, 4096, 0, 1);
    test_fp4(ctx, PT_FP4_NF4, 0, PT_F16, PT_F16, PT_BF16, 17, 67, 1030, 0, 1);
    test_fp4(ctx, PT_FP4_E3M0, 64, PT_BF16, PT_BF16, PT_F32, 64, 131, 2048, 3, 0);
    test_fp4_full(ctx, PT_FP4_E2M1, 128, PT_BF16, PT_F32, PT_F32, 20, 67, 2048, 0, 1, 1, PT_FP4_E2M1, 0.0f, 1);
    /* W4A4 (emulated): GEMV and GEMM paths, every act format, clip and shift */
    for (int afmt = 0; afmt < 4; afmt++) {
        test_fp4_full(ctx, PT_FP4_E2M1, 32, PT_F32, PT_F32, PT_F32, 3, 65, 256, 0, 1, 1, afmt, 0.0f, afmt & 1);
        test_fp4_full(ctx, (afmt + 1) & 3, 64, PT_F32, PT_F32, PT_BF16, 17, 33, 192, 0, afmt & 1, 1, afmt, 0.9f, 1);
        test_fp4_full(ctx, afmt, 0, PT_BF16, PT_F32, PT_F32, 64, 67, 94, 0, 1, 1, afmt, 0.8f, afmt & 1);
        test_fp4_full(ctx, PT_FP4_E1M2, 128, PT_F16, PT_F16, PT_F32, afmt == 3 ? 1 : 300, 131, 384, 0, 1, 1, afmt, 0.0f, 1);
        test_fp4_full(ctx, PT_FP4_NF4, 32, PT_BF16, PT_BF16, PT_BF16, 5, 129, 160, 3, 0, 1, afmt, 1.0f, 0);
    }

    test_errors(ctx);
    EXPECT_CUDA_OK(pt_cuda_synchronize(ctx));
    EXPECT_CUDA_OK(pt_cuda_ctx_destroy(ctx));
    return pt_test_finish("test_cuda_quant");
}
