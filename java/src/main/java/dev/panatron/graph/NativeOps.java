package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The executor's bindings to native kernels ({@link Kernels}): same signatures as their
 * {@link RefOps} twins, so moving an op to native code is a one-word change in
 * {@link Session}'s switch. Inputs/outputs are contiguous {@link TensorData} views; a case the
 * native kernel does not cover (a dtype, a broadcast) falls back to {@link RefOps}.
 *
 * <p>Native today: matmul (pt_matmul, oneDNN when built in) for LINEAR (bias and GELU epilogue
 * fused), MATMUL and the two products inside ATTENTION. LayerNorm, softmax, GELU, embedding and
 * elementwise ops bind here once their kernels land (see the TODO markers).
 */
public final class NativeOps {
    private NativeOps() {}

    /**
     * {@code out = act(x @ w + bias + residual)} as one GEMM over all rows: x [..., K] viewed as
     * [rows, K]; w [K, N] or [N, K] (transB); bias [N] f32 or null; residual like out, or null
     * (copied into out, then accumulated onto with beta = 1).
     */
    public static void linear(Context ctx, TensorData x, TensorData w, TensorData bias, TensorData residual, boolean transB, String activation,
                              TensorData out) {
        if (x.dtype() != DType.F32 || w.dtype() != DType.F32 || out.dtype() != DType.F32 || (bias != null && bias.dtype() != DType.F32)
                || (residual != null && residual.dtype() != DType.F32)) {
            RefOps.linear(ctx, x, w, bias, residual, transB, activation, out);
            return;
        }
        if (residual != null) residual.copyTo(out);
        Activation act = switch (activation) {
            case "none" -> Activation.NONE;
            case "gelu" -> Activation.GELU_ERF;
            case "gelu_tanh" -> Activation.GELU_TANH;
            case "relu" -> Activation.RELU;
            default -> throw new GraphException("linear: unknown activation '" + activation + "'");
        };
        Kernels.matmul(ctx, x.asMatrix().asTensor(), w.asTensor(), bias == null ? null : bias.asTensor(),
                out.asMatrix().asTensor(), new MatmulOptions(transB, act, 1f, residual == null ? 0f : 1f));
    }

    /**
     * numpy matmul for f32: a [..., M, K] @ b [K, N] as one GEMM; a and b with equal batch dims
     * as batched GEMMs; anything else (broadcast batches, 1-D operands) in {@link RefOps}.
     */
    public static void matmul(Context ctx, TensorData a, TensorData b, TensorData out) {
        if (a.dtype() != DType.F32 || b.dtype() != DType.F32 || a.rank() < 2 || b.rank() < 2) {
            RefOps.matmul(ctx, a, b, out);
            return;
        }
        if (b.rank() == 2) {
            Kernels.matmul(ctx, a.asMatrix().asTensor(), b.asTensor(), null, out.asMatrix().asTensor(), MatmulOptions.DEFAULT);
            return;
        }
        long[] as = a.shape(), bs = b.shape();
        if (as.length != bs.length) {
            RefOps.matmul(ctx, a, b, out);
            return;
        }
        long batch = 1;
        for (int i = 0; i < as.length - 2; i++) {
            if (as[i] != bs[i]) {
                RefOps.matmul(ctx, a, b, out);
                return;
            }
            batch *= as[i];
        }
        long m = as[as.length - 2], k = as[as.length - 1], n = bs[bs.length - 1];
        Kernels.matmul(ctx, a.reshape(batch, m, k).asTensor(), b.reshape(batch, k, n).asTensor(), null,
                out.reshape(batch, m, n).asTensor(), MatmulOptions.DEFAULT);
    }

    /**
     * Bytes of scratch {@link #attention} needs: scores [H, S, S] f32 for each batch element
     * processed at once (up to {@code workers} of them).
     */
    public static long attentionScratchBytes(long batch, long heads, long seq, int workers) {
        return Math.max(1, Math.min(batch, workers)) * heads * seq * seq * 4;
    }

    private static final ThreadLocal<Context[]> SERIAL = ThreadLocal.withInitial(() -> new Context[2]);

    /**
     * A single-threaded context like {@code ctx} for kernels called from parallel Java tasks:
     * one per worker thread, because oneDNN primitives (cached per context) must not run
     * concurrently from two threads, nor move between threads (oneDNN's scratchpad contract).
     * These contexts live as long as their (pooled) worker thread.
     */
    static Context serial(Context ctx) {
        Context[] c = SERIAL.get();
        int i = ctx.usesOneDnn() ? 1 : 0;
        if (c[i] == null) c[i] = Context.create(1, ctx.usesOneDnn(), 0);
        return c[i];
    }

    /**
     * Multi-head attention, interim composite until the native flash-attention kernel lands:
     * per batch element, {@code scores[H, S, S] = scale * q @ kᵀ} (one batched pt_matmul over
     * the heads, read in place from the packed [S, H*D] rows), mask added and softmax in Java,
     * {@code out = p @ v} (one more batched pt_matmul, written in place). With several threads
     * and batch elements, the batch elements are split over the threads (each running its
     * matmuls single-threaded): one parallel region per call instead of three per element.
     *
     * @param scratch at least {@link #attentionScratchBytes} bytes for {@code ctx.threads()} workers
     */
    public static void attention(Context ctx, TensorData q, TensorData k, TensorData v, TensorData mask, int heads, double scale,
                                 TensorData out, TensorData scratch) {
        if (q.dtype() != DType.F32 || k.dtype() != DType.F32 || v.dtype() != DType.F32 || (mask != null && mask.dtype() != DType.F32)) {
            RefOps.attention(ctx, q, k, v, mask, heads, scale, out);
            return;
        }
        long bsz = q.dim(0), s = q.dim(1);
        long per = heads * s * s * 4;
        if (Parallel.chunks(ctx, bsz) > 1) {
            Parallel.forChunks(ctx, bsz, (c, lo, hi) -> {
                Context one = serial(ctx);
                TensorData sc = TensorData.wrap(scratch.segment().asSlice(c * per, per), DType.U8, per);
                for (long b = lo; b < hi; b++) attentionOne(one, null, q, k, v, mask, heads, scale, out, sc, b);
            });
        } else {
            for (long b = 0; b < bsz; b++) attentionOne(ctx, ctx, q, k, v, mask, heads, scale, out, scratch, b);
        }
    }

    /** Batch element b; {@code rowsCtx} (or null) parallelizes the softmax rows. */
    private static void attentionOne(Context ctx, Context rowsCtx, TensorData q, TensorData k, TensorData v, TensorData mask, int heads,
                                     double scale, TensorData out, TensorData scratch, long b) {
        long bsz = q.dim(0), s = q.dim(1), hd = q.dim(2), d = hd / heads;
        float sc = (float) (scale == 0 ? 1 / Math.sqrt(d) : scale);
        long[] headView = {heads, s, d};
        long[] headStrides = {d * 4, hd * 4, 4};         // head h of row i at (i*HD + h*D) floats
        long perBatch = s * hd * 4;
        long span = ((heads - 1) * d + (s - 1) * hd + d) * 4;
        MemorySegment sm = scratch.segment();
        Tensor scores = Tensor.wrap(sm.asSlice(0, heads * s * s * 4), DType.F32, heads, s, s);
        long[] mstr = mask == null ? null : RefOps.bstrides(mask.shape(), new long[] {bsz, heads, s, s});
        Tensor qb = Tensor.wrap(q.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
        Tensor kb = Tensor.wrap(k.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
        Tensor vb = Tensor.wrap(v.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
        Tensor ob = Tensor.wrap(out.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
        Kernels.matmul(ctx, qb, kb, null, scores, new MatmulOptions(true, Activation.NONE, sc, 0f));
        Parallel.forRange(rowsCtx, heads * s, s * 8, (lo, hi) -> {
            float[] row = new float[(int) s], mrow = mask == null ? null : new float[(int) s];
            long maskRowAt = -1;
            for (long r = lo; r < hi; r++) {
                long h = r / s, i = r % s;
                if (mask != null) {
                    long mo = b * mstr[0] + h * mstr[1] + i * mstr[2];
                    if (mo != maskRowAt) {           // a [B,1,1,S] key-padding mask: one row per batch element
                        for (int j = 0; j < s; j++) mrow[j] = mask.getFloat(mo + j * mstr[3]);
                        maskRowAt = mo;
                    }
                }
                MemorySegment.copy(sm, ValueLayout.JAVA_FLOAT, r * s * 4, row, 0, (int) s);
                softmaxRow(row, mrow);
                MemorySegment.copy(row, 0, sm, ValueLayout.JAVA_FLOAT, r * s * 4, (int) s);
            }
        });
        Kernels.matmul(ctx, scores, vb, null, ob, MatmulOptions.DEFAULT);
    }

    /** In place: row = softmax(row + mask). */
    private static void softmaxRow(float[] row, float[] mask) {
        int n = row.length;
        float max = Float.NEGATIVE_INFINITY;
        if (mask != null) for (int j = 0; j < n; j++) row[j] += mask[j];
        for (int j = 0; j < n; j++) max = Math.max(max, row[j]);
        for (int j = 0; j < n; j++) row[j] = expf(row[j] - max);   // no reduction here: vectorizable
        float sum = 0;
        for (int j = 0; j < n; j++) sum += row[j];
        float inv = 1 / sum;
        for (int j = 0; j < n; j++) row[j] *= inv;
    }

    /**
     * e^x in float, within 2 ulp for x <= 0 (what softmax needs): Cephes' expf — x = n ln2 + r
     * with |r| <= ln2/2, a degree-6 polynomial for e^r, 2^n put in the exponent bits. About 4x
     * faster than {@code (float) Math.exp(x)} in a loop.
     */
    static float expf(float x) {
        if (x < -87.3f) return 0f;
        if (x > 88.7f) return Float.POSITIVE_INFINITY;
        float fn = x * 1.44269504088896341f + 12582912f - 12582912f;   // round(x / ln2)
        float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
        float p = 1.9875691500e-4f;
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        float e = p * r * r + r + 1f;
        return e * Float.intBitsToFloat(((int) fn + 127) << 23);
    }

    // TODO(native kernels): layerNorm -> Kernels.layerNorm (pt_layer_norm), softmax -> pt_softmax,
    // gelu -> pt_unary(GELU_ERF), add -> pt_add, gather of an embedding table -> pt_embedding,
    // attention -> pt_flash_attn. Each takes the RefOps signature above.
}
