/* pt_convert: f32 <-> f16 <-> bf16, round to nearest even, through the elementwise driver.
 * Portable row kernel here, AVX-512 one in convert_avx512.c. */
#include "cpu/elem.h"

#define PBLK 256

void pt_convert_row_portable(const void* x, int xdt, void* out, int odt, int64_t n) {
    size_t ex = pt_dtype_size(xdt), eo = pt_dtype_size(odt);
    if (xdt == odt) {
        if (x != out) memmove(out, x, (size_t)n * ex);
        return;
    }
    if (xdt == PT_F32) {
        pt_store_row_f32((const float*)x, n, odt, out);
        return;
    }
    if (odt == PT_F32) {
        pt_load_row_f32(x, xdt, n, (float*)out);
        return;
    }
    float f[PBLK];
    for (int64_t i0 = 0; i0 < n; i0 += PBLK) {
        int64_t m = n - i0 < PBLK ? n - i0 : PBLK;
        pt_load_row_f32((const char*)x + i0 * ex, xdt, m, f);
        pt_store_row_f32(f, m, odt, (char*)out + i0 * eo);
    }
}

pt_status pt_convert(pt_ctx* ctx, const pt_tensor* x, pt_tensor* out) {
    pt_clear_error();
    PT_CHECK(pt_check_ctx(ctx));
    PT_CHECK(pt_elem_check(x, "pt_convert", "x", PT_DT_FLOAT));
    PT_CHECK(pt_elem_check(out, "pt_convert", "out", PT_DT_FLOAT));
    PT_CHECK(pt_elem_same_shape("pt_convert", x, "x", out, "out"));
    if (pt_elem_bad_overlap(x, out))
        return pt_fail(PT_ERR_INVALID_ARGUMENT,
                       "pt_convert: out (%s) overlaps x (%s); in place is only allowed for the same dtype and strides",
                       pt_dtype_name(out->dtype), pt_dtype_name(x->dtype));
    pt_elem_job j = {0};
    j.kind = PT_EW_CONVERT;
    j.convert = pt_convert_row_portable;
#if defined(PT_HAVE_X86_KERNELS)
    if (pt_elem_use_avx512(ctx)) j.convert = pt_convert_row_avx512;
#endif
    pt_elem_run(ctx, &j, x, NULL, out, 1);
    return PT_OK;
}
