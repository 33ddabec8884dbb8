package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_fp4_matmul_params;
import dev.panatron.ffm.pt_fp4_quant_params;
import dev.panatron.ffm.pt_fp4_search_params;
import dev.panatron.ffm.pt_fp4_search_result;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;
import java.util.Set;

import static dev.panatron.Kernels.requireDtype;
import static dev.panatron.Kernels.requireOpen;
import static dev.panatron.Kernels.requireWritable;
import static dev.panatron.Kernels.shape;

/**
 * FP4 kernels (issue 5): 4-bit weight formats of LLM-FP4 (E2M1, E1M2, E3M0) and bitsandbytes'
 * NF4, packed two codes per byte ({@link DType#U4}, element 2i in the low nibble), with one
 * scale per group of 32/64/128 elements along K or one per output channel.
 *
 * <p>Layouts shared by every method: weight {@code w [N, K]} (PyTorch Linear layout,
 * {@code y = x @ wᵀ}), codes {@code [N, K]} U4, scales {@code [N, K/group]} F32 or BF16
 * ({@code [N, 1]} for per-channel, {@code group = 0}). K must be even, and a multiple of the
 * group. A code decodes to {@code levels(format)[code] * scale}.
 */
public final class Fp4 {
    private Fp4() {}

    /** The 4-bit formats ({@code pt_fp4_format}); see {@link #levels(Format)}. */
    public enum Format {
        /** OCP MX FP4: ±{0, 0.5, 1, 1.5, 2, 3, 4, 6} (bias 1). */
        E2M1,
        /** ±{0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75} (bias 1). */
        E1M2,
        /** ±{0, 0.25, 0.5, 1, 2, 4, 8, 16} (bias 3). */
        E3M0,
        /** bitsandbytes' normal float: 16 quantiles of N(0, 1) in [-1, 1]. */
        NF4
    }

    /**
     * The 16 levels of a format in code order.
     *
     * @throws NullPointerException when format is null
     */
    public static float[] levels(Format format) {
        Objects.requireNonNull(format, "format");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ValueLayout.JAVA_FLOAT, 16);
            Native.check(panatron_h.pt_fp4_levels(format.ordinal(), out));
            return out.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    /**
     * Quantizes {@code w} (round to nearest onto {@code clip * absmax / max|level|}-scaled
     * levels). With {@code actShift} (W4A4, LLM-FP4's reparameterization) the weight quantized
     * is {@code w[n, k] * 2^actShift[k]}: the per-channel activation scale, a power of two,
     * absorbed into the weight's exponent.
     *
     * @param w        [N, K] F32 or BF16
     * @param format   the code format
     * @param group    0 (per channel), 32, 64 or 128
     * @param clip     in (0, 1]: fraction of the group's absmax mapped to the largest level
     * @param actShift null, or [K] I32 in [-64, 64]
     * @param codes    [N, K] U4 (written)
     * @param scales   [N, K/group] or [N, 1], F32 or BF16 (written)
     * @throws IllegalArgumentException on a shape, dtype, group or clip error (message names it)
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static void quantize(Context ctx, Tensor w, Format format, int group, float clip, Tensor actShift, Tensor codes,
                                Tensor scales) {
        Objects.requireNonNull(format, "format");
        requireOpen(ctx, w, codes, scales);
        if (actShift != null) actShift.checkOpen();
        requireDtype("fp4 quantize w", w, DType.F32, DType.BF16);
        if (!(clip > 0f && clip <= 1f)) throw new IllegalArgumentException("fp4 quantize: clip " + clip + " must be in (0, 1]");
        checkCodesScales("fp4 quantize", codes, scales, group);
        if (w.ndim() != 2 || w.dim(0) != codes.dim(0) || w.dim(1) != codes.dim(1)) {
            throw shape("fp4 quantize: w " + w + " must be [N, K] like codes " + codes);
        }
        requireInnerContiguous("fp4 quantize w", w);
        if (actShift != null) {
            requireDtype("fp4 quantize actShift", actShift, DType.I32);
            if (actShift.ndim() != 1 || actShift.dim(0) != w.dim(1)) throw shape("fp4 quantize: actShift " + actShift + " must be [" + w.dim(1) + "] (K)");
        }
        requireWritable("fp4 quantize codes", codes);
        requireWritable("fp4 quantize scales", scales);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = pt_fp4_quant_params.allocate(a);
            pt_fp4_quant_params.format(p, format.ordinal());
            pt_fp4_quant_params.group(p, group);
            pt_fp4_quant_params.clip(p, clip);
            pt_fp4_quant_params.act_shift(p, actShift == null ? MemorySegment.NULL : actShift.descriptor());
            Native.check(panatron_h.pt_fp4_quantize(ctx.handle(), w.descriptor(), p, codes.descriptor(), scales.descriptor()));
        }
    }

    /**
     * Decodes codes into a full-precision tensor (for tests and conversions; the matmul never
     * does this).
     *
     * @param out [N, K] F32 or BF16
     * @throws IllegalArgumentException on a shape, dtype or group error
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void dequantize(Context ctx, Tensor codes, Tensor scales, Format format, int group, Tensor out) {
        Objects.requireNonNull(format, "format");
        requireOpen(ctx, codes, scales, out);
        checkCodesScales("fp4 dequantize", codes, scales, group);
        requireDtype("fp4 dequantize out", out, DType.F32, DType.BF16);
        if (out.ndim() != 2 || out.dim(0) != codes.dim(0) || out.dim(1) != codes.dim(1)) {
            throw shape("fp4 dequantize: out " + out + " must be [N, K] like codes " + codes);
        }
        requireInnerContiguous("fp4 dequantize out", out);
        requireWritable("fp4 dequantize out", out);
        Native.check(panatron_h.pt_fp4_dequantize(ctx.handle(), codes.descriptor(), scales.descriptor(), format.ordinal(), group,
                out.descriptor()));
    }

    /**
     * Weight-only FP4 matmul: {@code y = x @ dequant(codes, scales)ᵀ + bias}, the weight decoded
     * in registers (GEMV for M = 1, an L1 tile reused across rows for M > 1), f32 accumulation.
     * W4A16: the GEMV (M = 1) of E2M1, E1M2 and E3M0 takes x in 16 bits, quantized once per call,
     * and multiplies it exactly: on CPUs with AVX512_VNNI as 16-bit fixed point with a power-of-two
     * scale per block of 8 elements (error at most 2^-15 of the block's largest |x|; integer dot
     * products), else on AVX512_BF16 rounded to bf16 (round to nearest even; bf16 dot products).
     * An x holding a NaN or an infinity skips the VNNI kernel. NF4, M > 1 and contexts created with
     * {@link CpuCaps#AVX512_VNNI} and {@link CpuCaps#AVX512_BF16} disabled keep x in f32.
     *
     * @param x      [M, K] F32 or BF16
     * @param bias   [N] F32 or null
     * @param y      [M, N] F32 or BF16 (written; must not overlap the inputs)
     * @throws IllegalArgumentException on a shape, dtype or group error
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static void matmul(Context ctx, Tensor x, Tensor codes, Tensor scales, Format format, int group, Tensor bias, Tensor y) {
        run(ctx, x, codes, scales, format, group, bias, y, false, null, 1f, null);
    }

    /**
     * W4A4 (LLM-FP4): per token, the activations are divided by {@code 2^actShift[k]} (the
     * per-channel shift the weights absorbed, see {@link #quantize}), quantized to
     * {@code actFormat} with one scale per token ({@code actClip * absmax / max|level|}), and
     * multiplied with the decoded weight (dequantize-and-FMA in f32).
     *
     * @param actShift null (no shift) or [K] I32
     * @throws IllegalArgumentException on a shape, dtype, group or clip error
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static void matmulW4A4(Context ctx, Tensor x, Tensor codes, Tensor scales, Format format, int group, Format actFormat,
                                  float actClip, Tensor actShift, Tensor bias, Tensor y) {
        Objects.requireNonNull(actFormat, "actFormat");
        run(ctx, x, codes, scales, format, group, bias, y, true, actFormat, actClip, actShift);
    }

    /**
     * {@link #matmul} prepared for repeated runs on the same views (a decoder step's linear
     * layers): checked once here; {@link Kernels.Call#run()} checks only that the context and
     * tensors are still open.
     *
     * @throws IllegalArgumentException as {@link #matmul}
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static Kernels.Call prepareMatmul(Context ctx, Tensor x, Tensor codes, Tensor scales, Format format, int group, Tensor bias, Tensor y) {
        Tensor[] ts = {x, codes, scales, bias, y};
        if (!check(ctx, x, codes, scales, format, group, bias, y, false, null, 1f, null)) return Kernels.call(ctx, ts, h -> 0); // empty
        MemorySegment p = pt_fp4_matmul_params.allocate(Arena.ofAuto());
        params(p, format, group, false, null, 1f, null);
        MemorySegment xd = x.descriptor(), cd = codes.descriptor(), sd = scales.descriptor(), bd = bias == null ? MemorySegment.NULL : bias.descriptor(),
                yd = y.descriptor();
        return Kernels.call(ctx, ts, h -> panatron_h.pt_fp4_matmul(h, xd, cd, sd, bd, yd, p));
    }

    private static void run(Context ctx, Tensor x, Tensor codes, Tensor scales, Format format, int group, Tensor bias, Tensor y,
                            boolean w4a4, Format actFormat, float actClip, Tensor actShift) {
        if (!check(ctx, x, codes, scales, format, group, bias, y, w4a4, actFormat, actClip, actShift)) return;
        MemorySegment p = Kernels.CallScratch.get().fp4; // per-thread, reused: no allocation per call
        params(p, format, group, w4a4, actFormat, actClip, actShift);
        Native.check(panatron_h.pt_fp4_matmul(ctx.handle(), x.descriptor(), codes.descriptor(), scales.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), y.descriptor(), p));
    }

    /** The checks of {@link #run}; false when there is nothing to compute (M = 0 or N = 0). */
    private static boolean check(Context ctx, Tensor x, Tensor codes, Tensor scales, Format format, int group, Tensor bias, Tensor y,
                                 boolean w4a4, Format actFormat, float actClip, Tensor actShift) {
        Objects.requireNonNull(format, "format");
        requireOpen(ctx, x, codes, scales, y);
        if (bias != null) bias.checkOpen();
        if (actShift != null) actShift.checkOpen();
        checkCodesScales("fp4 matmul", codes, scales, group);
        requireDtype("fp4 matmul x", x, DType.F32, DType.BF16);
        requireDtype("fp4 matmul y", y, DType.F32, DType.BF16);
        long n = codes.dim(0), k = codes.dim(1);
        if (x.ndim() != 2 || x.dim(1) != k) throw shape("fp4 matmul: x " + x + " must be [M, " + k + "] for codes " + codes);
        if (y.ndim() != 2 || y.dim(0) != x.dim(0) || y.dim(1) != n) {
            throw shape("fp4 matmul: y " + y + " must be [" + x.dim(0) + ", " + n + "] for x " + x + " and codes " + codes);
        }
        requireInnerContiguous("fp4 matmul x", x);
        requireInnerContiguous("fp4 matmul y", y);
        if (bias != null) {
            requireDtype("fp4 matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw shape("fp4 matmul: bias " + bias + " must be [" + n + "]");
        }
        if (w4a4) {
            if (!(actClip > 0f && actClip <= 1f)) throw new IllegalArgumentException("fp4 matmul: actClip " + actClip + " must be in (0, 1]");
            if (actShift != null) {
                requireDtype("fp4 matmul actShift", actShift, DType.I32);
                if (actShift.ndim() != 1 || actShift.dim(0) != k) throw shape("fp4 matmul: actShift " + actShift + " must be [" + k + "] (K)");
            }
        }
        requireWritable("fp4 matmul y", y);
        if (overlaps(y, x) || overlaps(y, codes) || overlaps(y, scales) || (bias != null && overlaps(y, bias))) {
            throw new IllegalArgumentException("fp4 matmul: y " + y + " overlaps an input");
        }
        return x.dim(0) != 0 && n != 0;
    }

    /** Fills a pt_fp4_matmul_params. */
    private static void params(MemorySegment p, Format format, int group, boolean w4a4, Format actFormat, float actClip, Tensor actShift) {
        pt_fp4_matmul_params.format(p, format.ordinal());
        pt_fp4_matmul_params.group(p, group);
        pt_fp4_matmul_params.w4a4(p, w4a4 ? 1 : 0);
        pt_fp4_matmul_params.act_format(p, w4a4 ? actFormat.ordinal() : 0);
        pt_fp4_matmul_params.act_clip(p, w4a4 ? actClip : 1f);
        pt_fp4_matmul_params.act_shift(p, actShift == null ? MemorySegment.NULL : actShift.descriptor());
    }

    /** The best (format, clip) of {@link #search}, its output MSE and the reference's mean square. */
    public record SearchResult(Format format, float clip, double mse, double refPower) {
        /** mse / refPower: the relative output error. */
        public double relativeError() { return refPower == 0 ? mse : mse / refPower; }
    }

    /**
     * LLM-FP4's search: the format (among {@code formats}) and clipping ratio (among
     * {@code clips}) whose quantized weight gives the least mean squared error of
     * {@code x @ wᵀ} on the calibration inputs x.
     *
     * @param w       [N, K] F32
     * @param x       [M, K] F32 calibration activations
     * @param formats the formats to try (empty: E1M2, E2M1, E3M0)
     * @param clips   candidate clips in (0, 1] (empty: {1})
     * @throws IllegalArgumentException on a shape, dtype, group or clip error
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static SearchResult search(Context ctx, Tensor w, Tensor x, int group, Set<Format> formats, float... clips) {
        Objects.requireNonNull(formats, "formats");
        Objects.requireNonNull(clips, "clips");
        requireOpen(ctx, w, x);
        requireDtype("fp4 search w", w, DType.F32);
        requireDtype("fp4 search x", x, DType.F32);
        if (w.ndim() != 2 || x.ndim() != 2 || w.dim(1) != x.dim(1)) throw shape("fp4 search: w " + w + " must be [N, K] and x " + x + " [M, K]");
        if (w.numel() == 0 || x.numel() == 0) throw shape("fp4 search: empty w " + w + " or x " + x);
        checkGroup("fp4 search", w.dim(1), group);
        for (float c : clips) if (!(c > 0f && c <= 1f)) throw new IllegalArgumentException("fp4 search: clip " + c + " must be in (0, 1]");
        requireInnerContiguous("fp4 search w", w);
        requireInnerContiguous("fp4 search x", x);
        int mask = 0;
        for (Format f : formats) mask |= 1 << Objects.requireNonNull(f, "format").ordinal();
        if (mask == 0) mask = 7; // E2M1 | E1M2 | E3M0
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = pt_fp4_search_params.allocate(a);
            pt_fp4_search_params.group(p, group);
            pt_fp4_search_params.formats(p, mask);
            pt_fp4_search_params.n_clips(p, clips.length);
            pt_fp4_search_params.clips(p, clips.length == 0 ? MemorySegment.NULL : a.allocateFrom(ValueLayout.JAVA_FLOAT, clips));
            MemorySegment r = pt_fp4_search_result.allocate(a);
            Native.check(panatron_h.pt_fp4_search(ctx.handle(), w.descriptor(), x.descriptor(), p, r));
            return new SearchResult(Format.values()[pt_fp4_search_result.format(r)], pt_fp4_search_result.clip(r),
                    pt_fp4_search_result.mse(r), pt_fp4_search_result.ref_power(r));
        }
    }

    // ---- helpers

    private static void checkGroup(String op, long k, int group) {
        if (group != 0 && group != 32 && group != 64 && group != 128) {
            throw new IllegalArgumentException(op + ": group " + group + " not supported (0 = per channel, 32, 64 or 128)");
        }
        if (k % 2 != 0) throw shape(op + ": K = " + k + " must be even (two codes per byte)");
        if (group != 0 && k % group != 0) throw shape(op + ": K = " + k + " is not a multiple of the group size " + group);
    }

    private static void checkCodesScales(String op, Tensor codes, Tensor scales, int group) {
        requireDtype(op + " codes", codes, DType.U4);
        requireDtype(op + " scales", scales, DType.F32, DType.BF16);
        if (codes.ndim() != 2) throw shape(op + ": codes " + codes + " must be 2-D [N, K]");
        checkGroup(op, codes.dim(1), group);
        long groups = group == 0 ? 1 : codes.dim(1) / group;
        if (scales.ndim() != 2 || scales.dim(0) != codes.dim(0) || scales.dim(1) != groups) {
            throw shape(op + ": scales " + scales + ", expected [" + codes.dim(0) + ", " + groups + "] (N, K/group; group " + group
                    + ") for codes " + codes);
        }
        requireInnerContiguous(op + " scales", scales);
    }

    private static void requireInnerContiguous(String what, Tensor t) {
        long[] st = t.strides();
        if (t.dtype() != DType.U4 && t.dim(-1) > 1 && st[st.length - 1] != t.dtype().byteSize()) {
            throw shape(what + ": innermost dim of " + t + " must be contiguous");
        }
    }

    private static boolean overlaps(Tensor a, Tensor b) {
        MemorySegment x = a.segment(), y = b.segment();
        long xa = x.address(), ya = y.address();
        return xa < ya + y.byteSize() && ya < xa + x.byteSize() && x.byteSize() > 0 && y.byteSize() > 0;
    }
}
