#include "internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

size_t pt_dtype_size(int32_t dtype) {
    switch (dtype) {
    case PT_F32: case PT_I32: return 4;
    case PT_F16: case PT_BF16: return 2;
    case PT_I8: case PT_U8: return 1;
    case PT_I64: return 8;
    default: return 0;
    }
}

const char* pt_dtype_name(int32_t dtype) {
    switch (dtype) {
    case PT_F32: return "f32";
    case PT_F16: return "f16";
    case PT_BF16: return "bf16";
    case PT_I8: return "i8";
    case PT_U8: return "u8";
    case PT_I32: return "i32";
    case PT_U4: return "u4";
    case PT_I64: return "i64";
    default: return "unknown";
    }
}

pt_status pt_describe(const pt_tensor* t, char* buf, size_t n) {
    int k = snprintf(buf, n, "%s[", pt_dtype_name(t->dtype));
    for (int i = 0; i < t->ndim && i < PT_MAX_DIMS && k > 0 && (size_t)k < n; i++)
        k += snprintf(buf + k, n - (size_t)k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k > 0 && (size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
    return PT_OK;
}

pt_status pt_check_tensor(const pt_tensor* t, const char* what) {
    if (!t) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: tensor is NULL", what);
    if (t->ndim < 1 || t->ndim > PT_MAX_DIMS)
        return pt_fail(PT_ERR_SHAPE, "%s: ndim %d outside 1..%d", what, t->ndim, PT_MAX_DIMS);
    if (t->device != PT_DEVICE_CPU)
        return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: tensor is on device %d, this op runs on the CPU", what, t->device);
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] < 0) return pt_fail(PT_ERR_SHAPE, "%s: shape[%d] = %lld is negative", what, i, (long long)t->shape[i]);
    if (!t->data && pt_numel(t) > 0) return pt_fail(PT_ERR_INVALID_ARGUMENT, "%s: data is NULL", what);
    return PT_OK;
}

pt_status pt_check_inner_contiguous(const pt_tensor* t, const char* what) {
    size_t es = pt_dtype_size(t->dtype);
    if (t->dtype == PT_U4) {
        if (t->stride[t->ndim - 1] != 0 && t->stride[t->ndim - 1] != 1)
            return pt_fail(PT_ERR_SHAPE, "%s: packed u4 innermost dim must be contiguous", what);
        return PT_OK;
    }
    if (t->shape[t->ndim - 1] > 1 && t->stride[t->ndim - 1] != (int64_t)es)
        return pt_fail(PT_ERR_SHAPE, "%s: innermost stride %lld bytes, expected %zu (contiguous)", what,
                       (long long)t->stride[t->ndim - 1], es);
    return PT_OK;
}

pt_status pt_check_dtype(const pt_tensor* t, const char* what, int n, ...) {
    PT_CHECK(pt_check_tensor(t, what));
    va_list ap;
    va_start(ap, n);
    int ok = 0;
    for (int i = 0; i < n; i++)
        if (va_arg(ap, int) == t->dtype) ok = 1;
    va_end(ap);
    if (!ok) { /* the list of allowed dtypes is formatted on the failure path only: every kernel call checks */
        char allowed[96] = "";
        size_t k = 0;
        va_start(ap, n);
        for (int i = 0; i < n; i++) {
            int w = snprintf(allowed + k, sizeof allowed - k, i ? "|%s" : "%s", pt_dtype_name(va_arg(ap, int)));
            if (w > 0 && k + (size_t)w < sizeof allowed) k += (size_t)w;
        }
        va_end(ap);
        return pt_fail(PT_ERR_DTYPE, "%s: dtype %s not supported here (expected %s)", what, pt_dtype_name(t->dtype), allowed);
    }
    return pt_check_inner_contiguous(t, what);
}

pt_status pt_check_same_shape(const pt_tensor* a, const char* an, const pt_tensor* b, const char* bn) {
    int same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) {
        char da[96], db[96];
        pt_describe(a, da, sizeof da);
        pt_describe(b, db, sizeof db);
        return pt_fail(PT_ERR_SHAPE, "%s %s and %s %s must have the same shape", an, da, bn, db);
    }
    return PT_OK;
}

int64_t pt_numel(const pt_tensor* t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int64_t pt_rows(const pt_tensor* t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim - 1; i++) n *= t->shape[i];
    return n;
}

char* pt_row_ptr(const pt_tensor* t, int64_t r) {
    char* p = (char*)t->data;
    for (int i = t->ndim - 2; i >= 0; i--) {
        int64_t idx = r % t->shape[i];
        r /= t->shape[i];
        p += idx * t->stride[i];
    }
    return p;
}

bool pt_rows_uniform(const pt_tensor* t, int64_t* row_stride) {
    if (t->ndim == 1) { *row_stride = 0; return true; }
    int64_t rs = t->stride[t->ndim - 2];
    for (int i = t->ndim - 3; i >= 0; i--)
        if (t->shape[i] > 1 && t->stride[i] != t->stride[i + 1] * t->shape[i + 1]) return false;
    *row_stride = rs;
    return true;
}

float pt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal */
            float f = ldexpf((float)man, -24);
            memcpy(&u, &f, 4);
            u |= sign;
        }
    } else if (exp == 31) u = sign | 0x7f800000u | (man << 13);
    else u = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t pt_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);          /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);         /* overflow (RNE) -> inf */
    if (a < 0x38800000u) {                                          /* subnormal or zero */
        float af;
        memcpy(&af, &a, 4);
        float scaled = af * 16777216.0f;                            /* 2^24: units of 2^-24 */
        uint32_t m = (uint32_t)nearbyintf(scaled);
        return (uint16_t)(sign | m);
    }
    uint32_t mant = a & 0x7fffff, exp = (a >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

void pt_load_row_f32(const void* src, int32_t dtype, int64_t n, float* dst) {
    switch (dtype) {
    case PT_F32: memcpy(dst, src, (size_t)n * 4); break;
    case PT_BF16: { const uint16_t* s = (const uint16_t*)src; for (int64_t i = 0; i < n; i++) dst[i] = pt_bf16_to_f32(s[i]); } break;
    case PT_F16: { const uint16_t* s = (const uint16_t*)src; for (int64_t i = 0; i < n; i++) dst[i] = pt_f16_to_f32(s[i]); } break;
    default: break;
    }
}

void pt_store_row_f32(const float* src, int64_t n, int32_t dtype, void* dst) {
    switch (dtype) {
    case PT_F32: memmove(dst, src, (size_t)n * 4); break;
    case PT_BF16: { uint16_t* d = (uint16_t*)dst; for (int64_t i = 0; i < n; i++) d[i] = pt_f32_to_bf16(src[i]); } break;
    case PT_F16: { uint16_t* d = (uint16_t*)dst; for (int64_t i = 0; i < n; i++) d[i] = pt_f32_to_f16(src[i]); } break;
    default: break;
    }
}
