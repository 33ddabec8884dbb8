package dev.panatron.graph;

import dev.panatron.AttentionOptions;
import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The executor's bindings to native kernels ({@link Kernels}). {@link #bind} turns one plan
 * step into the code that runs it, resolved once per plan: kernel views ({@link Tensor}s with
 * their native descriptors), options, packed weights and small conversion buffers are made at
 * bind time, so running a step allocates nothing. A case a kernel does not cover (a dtype, a
 * broadcast, an op without a kernel) runs its {@link RefOps} twin instead, with the same
 * arguments.
 *
 * <p>Native: LINEAR (pt_matmul with bias / GELU epilogue; weights prepacked once per session
 * when {@link Weights} has them), MATMUL, LAYER_NORM (pt_layer_norm / pt_add_layer_norm with
 * the residual fused), GELU (pt_unary), ADD (pt_add; batch-broadcast by rows), SOFTMAX over
 * the last axis (pt_softmax), GATHER of an embedding table (ids converted to i32 once per run;
 * pt_embedding), ATTENTION (pt_flash_attn_fwd with the key-padding mask). Everything else
 * (shape bookkeeping and the tiny mask arithmetic) is Java.
 */
final class NativeOps {
    private NativeOps() {}

    /**
     * The bound code of step {@code s} of {@code plan}.
     *
     * @param weights the session's prepacked weights (or null: weights used as they are)
     */
    static Runnable bind(Context ctx, Plan plan, Plan.Step s, Weights weights) {
        Node n = s.node();
        TensorData[] in = s.in();
        TensorData[] outs = s.out();
        TensorData out = outs[0];
        Runnable r = switch (n.op()) {
            case LINEAR -> linear(ctx, n, in, out, weights);
            case MATMUL -> () -> matmul(ctx, in[0], in[1], out);
            case QLINEAR -> CompressedOps.bind(ctx, plan, n, in, out, weights);
            case LAYER_NORM -> layerNorm(ctx, n, in, out);
            case GELU -> gelu(ctx, n, in[0], out);
            case ADD -> add(ctx, in[0], in[1], out);
            case SOFTMAX -> softmax(ctx, n, in[0], out);
            case GATHER -> gather(ctx, plan, n, in, out);
            case ATTENTION -> attention(ctx, plan, n, in, out);
            default -> null;
        };
        return r != null ? r : () -> RefOps.execute(ctx, n, in, outs);
    }

    private static TensorData in(TensorData[] in, int i) { return i < in.length ? in[i] : null; }

    private static boolean isFloat(TensorData t) { return t.dtype() == DType.F32 || t.dtype() == DType.BF16; }

    // ================================================================ LINEAR

    private static Runnable linear(Context ctx, Node n, TensorData[] in, TensorData out, Weights weights) {
        TensorData x = in[0], w = in[1], bias = in(in, 2), residual = in(in, 3);
        boolean transB = n.attrLong("transB", 0) != 0;
        String act = n.attrString("activation", "none");
        Activation a = switch (act) {
            case "none" -> Activation.NONE;
            case "gelu" -> Activation.GELU_ERF;
            case "gelu_tanh" -> Activation.GELU_TANH;
            case "relu" -> Activation.RELU;
            default -> null;
        };
        boolean ok = a != null && isFloat(x) && w.dtype() == x.dtype() && isFloat(out) && (x.dtype() == DType.BF16 || out.dtype() == DType.F32)
                && w.rank() == 2 && (bias == null || (bias.dtype() == DType.F32 && bias.rank() == 1))
                && (residual == null || residual.dtype() == out.dtype());
        if (!ok) return () -> RefOps.linear(ctx, x, w, bias, residual, transB, act, out);
        Tensor xm = x.asMatrix().asTensor(), om = out.asMatrix().asTensor(), bt = bias == null ? null : bias.asTensor();
        MatmulOptions opts = new MatmulOptions(transB, a, 1f, residual == null ? 0f : 1f);
        Kernels.PackedMatrix packed = weights == null ? null : weights.packed(ctx, n.input(1), w, transB);
        if (residual == null) {
            if (packed != null) return Kernels.prepareMatmul(ctx, xm, packed, bt, om, opts)::run;
            Tensor wt = w.asTensor();
            return () -> Kernels.matmul(ctx, xm, wt, bt, om, opts);
        }
        if (packed != null) {
            Kernels.Call mm = Kernels.prepareMatmul(ctx, xm, packed, bt, om, opts);
            return () -> {
                residual.copyTo(out);
                mm.run();
            };
        }
        Tensor wt = w.asTensor();
        return () -> {
            residual.copyTo(out);
            Kernels.matmul(ctx, xm, wt, bt, om, opts);
        };
    }

    /**
     * numpy matmul for f32: a [..., M, K] @ b [K, N] as one GEMM; a and b with equal batch dims
     * as batched GEMMs; anything else (broadcast batches, 1-D operands) in {@link RefOps}.
     */
    static void matmul(Context ctx, TensorData a, TensorData b, TensorData out) {
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

    // ================================================================ norms and elementwise

    private static Runnable layerNorm(Context ctx, Node n, TensorData[] in, TensorData out) {
        TensorData x = in[0], gamma = in[1], beta = in(in, 2), residual = in(in, 3);
        double eps = n.attrDouble("epsilon", 1e-5);
        boolean ok = isFloat(x) && isFloat(out) && x.rank() >= 1 && x.rank() <= Tensor.MAX_DIMS && gamma.dtype() == DType.F32 && gamma.rank() == 1
                && (beta == null || (beta.dtype() == DType.F32 && beta.rank() == 1)) && (residual == null || isFloat(residual))
                && (float) eps >= 0 && Float.isFinite((float) eps);
        if (!ok) return () -> RefOps.layerNorm(ctx, x, gamma, beta, residual, eps, out);
        Tensor xt = x.asTensor(), gt = gamma.asTensor(), bt = beta == null ? null : beta.asTensor(), ot = out.asTensor();
        float e = (float) eps;
        if (residual == null) return Kernels.prepareLayerNorm(ctx, xt, gt, bt, e, ot)::run;
        return Kernels.prepareAddLayerNorm(ctx, xt, residual.asTensor(), gt, bt, e, ot, null)::run;
    }

    private static Runnable gelu(Context ctx, Node n, TensorData x, TensorData out) {
        boolean tanh = "tanh".equals(n.attrString("approximate", "none"));
        if (!isFloat(x) || !isFloat(out) || x.rank() < 1 || x.rank() > Tensor.MAX_DIMS) return () -> RefOps.gelu(ctx, x, tanh, out);
        Tensor xt = x.asTensor(), ot = out.asTensor();
        Kernels.Unary op = tanh ? Kernels.Unary.GELU_TANH : Kernels.Unary.GELU_ERF;
        return Kernels.prepareUnary(ctx, op, xt, ot)::run;
    }

    private static Runnable softmax(Context ctx, Node n, TensorData x, TensorData out) {
        int axis = (int) ShapeInference.norm(n, n.attrLong("axis", -1), x.rank());
        if (axis != x.rank() - 1 || !isFloat(x) || !isFloat(out) || x.rank() > Tensor.MAX_DIMS) return () -> RefOps.softmax(ctx, x, axis, out);
        Tensor xt = x.asTensor(), ot = out.asTensor();
        return Kernels.prepareSoftmax(ctx, xt, 1f, ot)::run;
    }

    /**
     * out = a + b for floats: same shapes, a bias vector (b with one non-1 dim, the last), or a
     * b that broadcasts over leading dims of a ([1, rest] against [B, rest]: one call per
     * leading index); the rest in {@link RefOps}.
     */
    private static Runnable add(Context ctx, TensorData x, TensorData y, TensorData out) {
        if (!isFloat(x) || !isFloat(y) || !isFloat(out) || out.rank() < 1 || out.rank() > Tensor.MAX_DIMS) {
            return () -> RefOps.binary(ctx, Op.ADD, x, y, out);
        }
        long[] os = out.shape();
        if (!Arrays.equals(x.shape(), os) && !Arrays.equals(y.shape(), os)) return () -> RefOps.binary(ctx, Op.ADD, x, y, out);
        boolean swap = !Arrays.equals(x.shape(), os);   // addition commutes: a is the full-shape operand
        TensorData a = swap ? y : x, b = swap ? x : y;
        long c = os[os.length - 1];
        if (Arrays.equals(b.shape(), os)) return Kernels.prepareAdd(ctx, a.asTensor(), b.asTensor(), out.asTensor())::run;
        if (b.numel() == c && (b.rank() == 0 ? c == 1 : b.dim(-1) == c)) {
            return Kernels.prepareAdd(ctx, a.asMatrix().asTensor(), b.reshape(c).asTensor(), out.asMatrix().asTensor())::run;
        }
        // b = [1, ..., 1, rest] with rest equal to the trailing dims of out
        int lead = 0;
        long[] bs = b.shape();
        int off = os.length - bs.length;
        while (lead < os.length && (lead < off || bs[lead - off] == 1) && os[lead] != 1) lead++;
        long outer = 1;
        for (int i = 0; i < lead; i++) outer *= os[i];
        long inner = out.numel() / Math.max(1, outer);
        if (lead == 0 || b.numel() != inner || inner % c != 0) return () -> RefOps.binary(ctx, Op.ADD, x, y, out);
        long rows = inner / c;
        Kernels.Call[] calls = new Kernels.Call[(int) outer];
        long ea = a.dtype().byteSize(), eo = out.dtype().byteSize();
        Tensor bt = b.reshape(rows, c).asTensor();
        for (int i = 0; i < outer; i++) {
            calls[i] = Kernels.prepareAdd(ctx, Tensor.wrap(a.segment().asSlice(i * inner * ea, inner * ea), a.dtype(), rows, c), bt,
                    Tensor.wrap(out.segment().asSlice(i * inner * eo, inner * eo), out.dtype(), rows, c));
        }
        return () -> {
            for (Kernels.Call k : calls) k.run();
        };
    }

    // ================================================================ embedding gather

    /**
     * Gather on axis 0 of a constant float table [V, D] by integer ids: pt_embedding, the ids
     * converted to i32 (negative ones counted from the end, as ONNX) into a buffer of the plan.
     */
    private static Runnable gather(Context ctx, Plan plan, Node n, TensorData[] in, TensorData out) {
        TensorData table = in[0], ids = in[1];
        int axis = (int) ShapeInference.norm(n, n.attrLong("axis", 0), table.rank());
        boolean ok = axis == 0 && table.rank() == 2 && isFloatOrF16(table) && isFloatOrF16(out) && out.dtype() == table.dtype()
                && (ids.dtype() == DType.I64 || ids.dtype() == DType.I32) && ids.rank() >= 1 && ids.rank() <= 3;
        if (!ok) return () -> RefOps.gather(table, ids, axis, out);
        long v = table.dim(0), count = ids.numel();
        Tensor tt = table.asTensor(), ot = out.asTensor();
        MemorySegment idSeg = ids.segment();
        TensorData ids32 = TensorData.allocate(plan.arena(), DType.I32, ids.shape());
        MemorySegment i32 = ids32.segment();
        Kernels.Call emb = Kernels.prepareEmbedding(ctx, tt, ids32.asTensor(), ot);
        boolean wide = ids.dtype() == DType.I64;
        return () -> {
            for (long i = 0; i < count; i++) {
                long id = wide ? idSeg.getAtIndex(ValueLayout.JAVA_LONG, i) : idSeg.getAtIndex(ValueLayout.JAVA_INT, i);
                if (id < 0) id += v;
                if (id < 0 || id >= v) throw new GraphException("gather: index " + (id < 0 ? id - v : id) + " at position " + i + " is out of range for "
                        + table + " (ids " + ids + ")");
                i32.setAtIndex(ValueLayout.JAVA_INT, i, (int) id);
            }
            emb.run();
        };
    }

    private static boolean isFloatOrF16(TensorData t) { return isFloat(t) || t.dtype() == DType.F16; }

    // ================================================================ attention

    /**
     * Flash attention over q, k, v [B, S, H*D] viewed as [B, S, H, D]. A key-padding mask
     * ({@code key_padding = 1}) goes to the kernel as is; an additive f32 mask of shape
     * [B|1, 1, 1, S] is turned into a u8 keep mask on every run when each value is 0 or
     * <= -1e4 (e^(score + m) is then exactly 0); any other mask runs {@link RefOps#attention}.
     */
    private static Runnable attention(Context ctx, Plan plan, Node n, TensorData[] in, TensorData out) {
        TensorData q = in[0], k = in[1], v = in[2], mask = in(in, 3);
        int heads = (int) n.attrLong("num_heads", 1);
        double scale = n.attrDouble("scale", 0);
        boolean keyPadding = n.attrLong("key_padding", 0) != 0;
        Runnable ref = () -> RefOps.attention(ctx, q, k, v, mask, keyPadding, heads, scale, out);
        if (!isFloat(q) || !isFloat(k) || v.dtype() != k.dtype() || !isFloat(out) || q.rank() != 3 || heads <= 0 || q.dim(2) % heads != 0
                || q.dim(2) / heads > 256 || !Float.isFinite((float) scale)) {
            return ref;
        }
        long b = q.dim(0), s = q.dim(1), d = q.dim(2) / heads;
        AttentionOptions opts0 = AttentionOptions.DEFAULT.withScale((float) scale);
        TensorData cu = plan.packedSeqlens();
        if (cu != null) {
            // packed: [1, T, H*D] as [T, H, D], sequences delimited by cu (no padding, no mask)
            if (b != 1 || (mask != null && !keyPadding)) throw new GraphException(n, "a packed plan needs batch 1 and a key-padding mask or none");
            Kernels.FlashAttentionCall call = Kernels.prepareFlashAttention(ctx, q.reshape(s, heads, d).asTensor(), k.reshape(s, heads, d).asTensor(),
                    v.reshape(s, heads, d).asTensor(), out.reshape(s, heads, d).asTensor(), opts0.withCuSeqlens(cu.asTensor(), null));
            return call::run;
        }
        Tensor q4 = q.reshape(b, s, heads, d).asTensor(), k4 = k.reshape(b, s, heads, d).asTensor();
        Tensor v4 = v.reshape(b, s, heads, d).asTensor(), o4 = out.reshape(b, s, heads, d).asTensor();
        AttentionOptions opts = opts0;
        if (mask == null) {
            Kernels.FlashAttentionCall call = Kernels.prepareFlashAttention(ctx, q4, k4, v4, o4, opts);
            return call::run;
        }
        if (keyPadding) {
            if (mask.rank() != 2 || mask.dim(0) != b || mask.dim(1) != s || !(mask.dtype() == DType.I64 || mask.dtype() == DType.I32 || mask.dtype() == DType.U8)) return ref;
            Kernels.FlashAttentionCall call = Kernels.prepareFlashAttention(ctx, q4, k4, v4, o4, opts.withKeyPaddingMask(mask.asTensor()));
            return call::run;
        }
        long[] ms = mask.shape();
        if (mask.dtype() != DType.F32 || ms.length != 4 || ms[1] != 1 || ms[2] != 1 || ms[3] != s || (ms[0] != b && ms[0] != 1)) return ref;
        TensorData keep = TensorData.allocate(plan.arena(), DType.U8, b, s);
        MemorySegment km = keep.segment(), mm = mask.segment();
        long per = ms[0] == 1 ? 0 : s;
        Kernels.FlashAttentionCall call = Kernels.prepareFlashAttention(ctx, q4, k4, v4, o4, opts.withKeyPaddingMask(keep.asTensor()));
        return () -> {
            for (long i = 0; i < b; i++) {
                for (long j = 0; j < s; j++) {
                    float m = mm.getAtIndex(ValueLayout.JAVA_FLOAT, i * per + j);
                    if (m == 0f) km.set(ValueLayout.JAVA_BYTE, i * s + j, (byte) 1);
                    else if (m <= -1e4f) km.set(ValueLayout.JAVA_BYTE, i * s + j, (byte) 0);
                    else {
                        ref.run();       // a graded bias (ALiBi, relative positions): the dense reference
                        return;
                    }
                }
            }
            call.run();
        };
    }
}
