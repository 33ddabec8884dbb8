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
     * {@code out = act(x @ w + bias)} as one GEMM over all rows: x [..., K] viewed as [rows, K];
     * w [K, N] or [N, K] (transB); bias [N] f32 or null.
     */
    public static void linear(Context ctx, TensorData x, TensorData w, TensorData bias, boolean transB, String activation, TensorData out) {
        if (x.dtype() != DType.F32 || w.dtype() != DType.F32 || out.dtype() != DType.F32 || (bias != null && bias.dtype() != DType.F32)) {
            RefOps.linear(ctx, x, w, bias, transB, activation, out);
            return;
        }
        Activation act = switch (activation) {
            case "none" -> Activation.NONE;
            case "gelu" -> Activation.GELU_ERF;
            case "gelu_tanh" -> Activation.GELU_TANH;
            case "relu" -> Activation.RELU;
            default -> throw new GraphException("linear: unknown activation '" + activation + "'");
        };
        Kernels.matmul(ctx, x.asMatrix().asTensor(), w.asTensor(), bias == null ? null : bias.asTensor(),
                out.asMatrix().asTensor(), new MatmulOptions(transB, act, 1f, 0f));
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

    /** Bytes of scratch {@link #attention} needs: one batch element's scores [H, S, S] f32. */
    public static long attentionScratchBytes(long heads, long seq) {
        return heads * seq * seq * 4;
    }

    /**
     * Multi-head attention, interim composite until the native flash-attention kernel lands:
     * per batch element, {@code scores[H, S, S] = scale * q @ kᵀ} (one batched pt_matmul over
     * the heads, read in place from the packed [S, H*D] rows), mask added and softmax in Java,
     * {@code out = p @ v} (one more batched pt_matmul, written in place).
     *
     * @param scratch at least {@link #attentionScratchBytes} bytes
     */
    public static void attention(Context ctx, TensorData q, TensorData k, TensorData v, TensorData mask, int heads, double scale,
                                 TensorData out, TensorData scratch) {
        if (q.dtype() != DType.F32 || k.dtype() != DType.F32 || v.dtype() != DType.F32 || (mask != null && mask.dtype() != DType.F32)) {
            RefOps.attention(ctx, q, k, v, mask, heads, scale, out);
            return;
        }
        long bsz = q.dim(0), s = q.dim(1), hd = q.dim(2), d = hd / heads;
        float sc = (float) (scale == 0 ? 1 / Math.sqrt(d) : scale);
        long[] headView = {heads, s, d};
        long[] headStrides = {d * 4, hd * 4, 4};         // head h of row i at (i*HD + h*D) floats
        long perBatch = s * hd * 4;
        long span = ((heads - 1) * d + (s - 1) * hd + d) * 4;
        MemorySegment sm = scratch.segment();
        Tensor scores = Tensor.wrap(sm.asSlice(0, heads * s * s * 4), DType.F32, heads, s, s);
        long[] mstr = mask == null ? null : RefOps.bstrides(mask.shape(), new long[] {bsz, heads, s, s});
        MatmulOptions qk = new MatmulOptions(true, Activation.NONE, sc, 0f);
        for (long b = 0; b < bsz; b++) {
            Tensor qb = Tensor.wrap(q.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
            Tensor kb = Tensor.wrap(k.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
            Tensor vb = Tensor.wrap(v.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
            Tensor ob = Tensor.wrap(out.segment().asSlice(b * perBatch, span), DType.F32, headView, headStrides);
            Kernels.matmul(ctx, qb, kb, null, scores, qk);
            long bb = b;
            Parallel.forRange(ctx, heads * s, s * 8, (lo, hi) -> {
                for (long row = lo; row < hi; row++) {
                    long h = row / s, i = row % s;
                    long base = row * s;
                    long mo = mask == null ? 0 : bb * mstr[0] + h * mstr[1] + i * mstr[2];
                    softmaxRow(sm, base, s, mask, mo, mstr == null ? 0 : mstr[3]);
                }
            });
            Kernels.matmul(ctx, scores, vb, null, ob, MatmulOptions.DEFAULT);
        }
    }

    private static void softmaxRow(MemorySegment x, long base, long n, TensorData mask, long mo, long ms) {
        var F = ValueLayout.JAVA_FLOAT;
        float max = Float.NEGATIVE_INFINITY;
        MemorySegment m = mask == null ? null : mask.segment();
        for (long j = 0; j < n; j++) {
            float val = x.getAtIndex(F, base + j);
            if (m != null) {
                val += m.getAtIndex(F, mo + j * ms);
                x.setAtIndex(F, base + j, val);
            }
            if (val > max) max = val;
        }
        float sum = 0;
        for (long j = 0; j < n; j++) {
            float e = (float) Math.exp(x.getAtIndex(F, base + j) - max);
            x.setAtIndex(F, base + j, e);
            sum += e;
        }
        float inv = 1 / sum;
        for (long j = 0; j < n; j++) x.setAtIndex(F, base + j, x.getAtIndex(F, base + j) * inv);
    }

    // TODO(native kernels): layerNorm -> Kernels.layerNorm (pt_layer_norm), softmax -> pt_softmax,
    // gelu -> pt_unary(GELU_ERF), add -> pt_add, gather of an embedding table -> pt_embedding,
    // attention -> pt_flash_attn. Each takes the RefOps signature above.
}
