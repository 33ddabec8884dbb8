package dev.panatron;

import dev.panatron.Kernels.Activation;
import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_int8_matmul_params;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Compressed-weight kernels (issue 5): int8 weight quantization and packing, and the int8
 * matmul in its LLM.int8, W8A8 and weight-only (W8A32) forms. Like {@link Kernels}, every
 * method validates in Java before the downcall ({@link IllegalArgumentException} naming the
 * argument and shapes, {@link IllegalStateException} for a closed tensor or context) and
 * reports native failures as {@link PanatronException}.
 */
public final class QuantKernels {
    private QuantKernels() {}

    /** How {@link #matmulInt8} treats the activations ({@code pt_int8_mode}; ordinals are the C values). */
    public enum Int8Mode {
        /** LLM.int8: feature columns with some |x| >= threshold in f32, the rest int8 x int8. */
        LLM,
        /** Plain W8A8: every column quantized (row-wise absmax), no decomposition. */
        W8A8,
        /** W8A32: x stays f32, the int8 weight is dequantized block-wise. */
        WEIGHT_ONLY
    }

    /**
     * Options of {@link #matmulInt8}.
     *
     * @param mode       LLM, W8A8 or WEIGHT_ONLY
     * @param activation applied after the bias
     * @param threshold  LLM outlier threshold (> 0; LLM.int8's default is 6)
     */
    public record Int8Options(Int8Mode mode, Activation activation, float threshold) {
        /** LLM.int8 with threshold 6, no activation. */
        public static final Int8Options LLM_INT8 = new Int8Options(Int8Mode.LLM, Activation.NONE, 6.0f);
        /** Plain W8A8, no activation. */
        public static final Int8Options W8A8 = new Int8Options(Int8Mode.W8A8, Activation.NONE, 6.0f);

        /**
         * @throws IllegalArgumentException when threshold is not a positive finite number
         * @throws NullPointerException     when mode or activation is null
         */
        public Int8Options {
            Objects.requireNonNull(mode, "mode");
            Objects.requireNonNull(activation, "activation");
            if (!(threshold > 0) || Float.isInfinite(threshold)) {
                throw new IllegalArgumentException("Int8Options: threshold must be a positive finite number, got " + threshold);
            }
        }
    }

    /**
     * Per-output-channel absmax quantization of a Linear weight: {@code wq[n,k] =
     * rne(w[n,k] * 127 / absmax_n)}, {@code scale[n] = absmax_n / 127}.
     *
     * @param ctx   the context
     * @param w     [N, K] f32 or bf16 (innermost contiguous)
     * @param wq    [N, K] i8 output
     * @param scale [N] f32 output
     * @throws IllegalArgumentException on a shape or dtype mismatch, a strided innermost dim, or a read-only output
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native call fails (e.g. a non-finite weight)
     */
    public static void quantizeInt8Weight(Context ctx, Tensor w, Tensor wq, Tensor scale) {
        Kernels.requireOpen(ctx, w, wq, scale);
        Kernels.requireDtype("quantizeInt8Weight w", w, DType.F32, DType.BF16);
        Kernels.requireDtype("quantizeInt8Weight wq", wq, DType.I8);
        Kernels.requireDtype("quantizeInt8Weight scale", scale, DType.F32);
        if (w.ndim() != 2) throw Kernels.shape("quantizeInt8Weight: w must be 2-D [N, K], got " + w);
        if (wq.ndim() != 2 || wq.dim(0) != w.dim(0) || wq.dim(1) != w.dim(1)) throw Kernels.shape("quantizeInt8Weight: wq " + wq + " must have w's shape " + w);
        if (scale.ndim() != 1 || scale.dim(0) != w.dim(0)) throw Kernels.shape("quantizeInt8Weight: scale must be [" + w.dim(0) + "], got " + scale);
        innerContiguous("quantizeInt8Weight", w, wq, scale);
        Kernels.requireWritable("quantizeInt8Weight wq", wq);
        Kernels.requireWritable("quantizeInt8Weight scale", scale);
        Native.check(panatron_h.pt_quantize_int8_weight(ctx.handle(), w.descriptor(), wq.descriptor(), scale.descriptor()));
    }

    /**
     * Bytes of the packed form of an int8 weight [N, K] ({@link #packInt8Weight}).
     *
     * @throws IllegalArgumentException when n or k is negative
     */
    public static long int8PackedBytes(long n, long k) {
        if (n < 0 || k < 0) throw new IllegalArgumentException("int8PackedBytes: n " + n + " and k " + k + " must be >= 0");
        return panatron_h.pt_int8_packed_bytes(n, k);
    }

    /**
     * Packs an int8 weight once for {@link #matmulInt8} (VNNI/AMX layout with column sums).
     *
     * @param wq     [N, K] i8
     * @param packed 1-D i8 of {@link #int8PackedBytes} elements, contiguous
     * @throws IllegalArgumentException on a shape or dtype mismatch or a read-only output
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static void packInt8Weight(Context ctx, Tensor wq, Tensor packed) {
        Kernels.requireOpen(ctx, wq, packed);
        Kernels.requireDtype("packInt8Weight wq", wq, DType.I8);
        Kernels.requireDtype("packInt8Weight packed", packed, DType.I8);
        if (wq.ndim() != 2) throw Kernels.shape("packInt8Weight: wq must be 2-D [N, K], got " + wq);
        long need = int8PackedBytes(wq.dim(0), wq.dim(1));
        if (packed.ndim() != 1 || packed.dim(0) != need) throw Kernels.shape("packInt8Weight: packed must be [" + need + "] i8 for wq " + wq + ", got " + packed);
        innerContiguous("packInt8Weight", wq, packed);
        Kernels.requireWritable("packInt8Weight packed", packed);
        Native.check(panatron_h.pt_pack_int8_weight(ctx.handle(), wq.descriptor(), packed.descriptor()));
    }

    /**
     * {@code y = act(x @ Wᵀ + bias)} with W given as int8 {@code wq} and per-channel
     * {@code wScale}: LLM.int8 (outlier feature columns of x in f32 against {@code wOutlier},
     * or the dequantized wq when it is null; the rest quantized row-wise and multiplied in
     * int8 with s32 accumulation), plain W8A8, or weight-only. See {@code pt_matmul_int8}.
     *
     * @param x        [M, K] f32 or bf16
     * @param wq       [N, K] i8
     * @param wScale   [N] f32
     * @param wOutlier [N, K] f32 or bf16, or null
     * @param bias     [N] f32, or null
     * @param y        [M, N] f32 or bf16 output (must not overlap an input)
     * @param opts     mode, activation, threshold
     * @param wPacked  {@link #packInt8Weight} of wq, or null (then wq is packed on every call)
     * @throws IllegalArgumentException on a shape or dtype mismatch, overlap or a read-only y
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        when the native kernel fails
     */
    public static void matmulInt8(Context ctx, Tensor x, Tensor wq, Tensor wScale, Tensor wOutlier, Tensor bias, Tensor y,
                                  Int8Options opts, Tensor wPacked) {
        Objects.requireNonNull(opts, "opts");
        Kernels.requireOpen(ctx, x, wq, wScale, y);
        for (Tensor t : new Tensor[] {wOutlier, bias, wPacked}) if (t != null) t.checkOpen();
        Kernels.requireDtype("matmulInt8 x", x, DType.F32, DType.BF16);
        Kernels.requireDtype("matmulInt8 wq", wq, DType.I8);
        Kernels.requireDtype("matmulInt8 wScale", wScale, DType.F32);
        Kernels.requireDtype("matmulInt8 y", y, DType.F32, DType.BF16);
        if (x.ndim() != 2) throw Kernels.shape("matmulInt8: x must be 2-D [M, K], got " + x);
        if (wq.ndim() != 2) throw Kernels.shape("matmulInt8: wq must be 2-D [N, K], got " + wq);
        long m = x.dim(0), k = x.dim(1), n = wq.dim(0);
        if (wq.dim(1) != k) throw Kernels.shape("matmulInt8: x " + x + " has K=" + k + " but wq " + wq + " has K=" + wq.dim(1));
        if (y.ndim() != 2 || y.dim(0) != m || y.dim(1) != n) throw Kernels.shape("matmulInt8: y " + y + " must be [" + m + ", " + n + "] for x " + x + " and wq " + wq);
        if (wScale.ndim() != 1 || wScale.dim(0) != n) throw Kernels.shape("matmulInt8: wScale must be [" + n + "], got " + wScale);
        if (bias != null) {
            Kernels.requireDtype("matmulInt8 bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw Kernels.shape("matmulInt8: bias must be [" + n + "], got " + bias);
        }
        if (wOutlier != null) {
            Kernels.requireDtype("matmulInt8 wOutlier", wOutlier, DType.F32, DType.BF16);
            if (wOutlier.ndim() != 2 || wOutlier.dim(0) != n || wOutlier.dim(1) != k) throw Kernels.shape("matmulInt8: wOutlier must be [" + n + ", " + k + "], got " + wOutlier);
        }
        if (wPacked != null) {
            Kernels.requireDtype("matmulInt8 wPacked", wPacked, DType.I8);
            long need = panatron_h.pt_int8_packed_bytes(n, k);
            if (wPacked.ndim() != 1 || wPacked.dim(0) != need) throw Kernels.shape("matmulInt8: wPacked must be [" + need + "] i8 (packInt8Weight of wq " + wq + "), got " + wPacked);
        }
        innerContiguous("matmulInt8", x, wq, wScale, y);
        Kernels.requireNoSelfOverlap("matmulInt8 y", y);
        Kernels.requireWritable("matmulInt8 y", y);
        for (Tensor in : new Tensor[] {x, wq, wScale, wOutlier, bias, wPacked}) {
            if (in != null && y.numel() > 0 && in.numel() > 0 && y.segment().asOverlappingSlice(in.segment()).isPresent()) {
                throw new IllegalArgumentException("matmulInt8: output y " + y + " overlaps input " + in);
            }
        }
        if (m == 0 || n == 0) return;
        MemorySegment p = Kernels.CallScratch.get().int8; // per-thread, reused: no allocation per call
        pt_int8_matmul_params.mode(p, opts.mode().ordinal());
        pt_int8_matmul_params.activation(p, opts.activation().ordinal());
        pt_int8_matmul_params.threshold(p, opts.threshold());
        pt_int8_matmul_params.w_packed(p, wPacked == null ? MemorySegment.NULL : wPacked.descriptor());
        Native.check(panatron_h.pt_matmul_int8(ctx.handle(), x.descriptor(), wq.descriptor(), wScale.descriptor(),
                wOutlier == null ? MemorySegment.NULL : wOutlier.descriptor(), bias == null ? MemorySegment.NULL : bias.descriptor(),
                y.descriptor(), p));
    }

    /** {@link #matmulInt8} without a packed weight. */
    public static void matmulInt8(Context ctx, Tensor x, Tensor wq, Tensor wScale, Tensor wOutlier, Tensor bias, Tensor y, Int8Options opts) {
        matmulInt8(ctx, x, wq, wScale, wOutlier, bias, y, opts, null);
    }

    private static void innerContiguous(String op, Tensor... ts) {
        for (Tensor t : ts) {
            long[] st = t.strides();
            if (t.ndim() > 0 && t.dim(-1) > 1 && st[st.length - 1] != t.dtype().byteSize()) {
                throw new IllegalArgumentException(op + ": the innermost dim of " + t + " must be contiguous");
            }
        }
    }
}
