package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_matmul_params;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The typed kernel façade: one static method per native op. Every method validates shapes,
 * dtypes and tensor state in Java before the downcall, so bad input is an
 * {@link IllegalArgumentException} (or {@link IllegalStateException} for a closed tensor or
 * context) naming what was wrong; a native failure is a {@link PanatronException}.
 * Outputs are written in place; unless a method says otherwise, an output may be the same
 * tensor as its input.
 */
public final class Kernels {
    private Kernels() {}

    // ================================================================ dense GEMM

    /**
     * Options of {@link #matmul}: transpose of b, fused activation, alpha, beta.
     *
     * @param transB     b is [N, K] (PyTorch Linear weight layout) instead of [K, N]
     * @param activation applied last: {@code act(alpha * a@b + bias + beta * c)}
     * @param alpha      scale of the product (0 is read as 1; bias is not scaled)
     * @param beta       scale of the previous c (0: c is write-only and may hold anything)
     */
    public record MatmulOptions(boolean transB, Activation activation, float alpha, float beta) {
        public static final MatmulOptions DEFAULT = new MatmulOptions(false, Activation.NONE, 1f, 0f);
        /** b in PyTorch Linear layout [N, K]. */
        public static final MatmulOptions LINEAR = new MatmulOptions(true, Activation.NONE, 1f, 0f);

        /** @throws IllegalArgumentException for a NaN or infinite alpha or beta */
        public MatmulOptions {
            Objects.requireNonNull(activation, "activation");
            if (!Float.isFinite(alpha) || !Float.isFinite(beta)) {
                throw new IllegalArgumentException("matmul: alpha " + alpha + " and beta " + beta + " must be finite");
            }
        }

        public MatmulOptions withActivation(Activation a) { return new MatmulOptions(transB, a, alpha, beta); }

        public MatmulOptions withTransB(boolean t) { return new MatmulOptions(t, activation, alpha, beta); }

        public MatmulOptions withAlphaBeta(float newAlpha, float newBeta) { return new MatmulOptions(transB, activation, newAlpha, newBeta); }
    }

    /** Activations fusable into matmul epilogues ({@code pt_activation}). */
    public enum Activation { NONE, RELU, GELU_ERF, GELU_TANH, SILU }

    /** pt_matmul_params structs, made once per distinct options (read-only for the native side). */
    private static final ConcurrentHashMap<MatmulOptions, MemorySegment> MATMUL_PARAMS = new ConcurrentHashMap<>();
    private static final int MATMUL_PARAMS_MAX = 256;

    private static MemorySegment matmulParams(MatmulOptions o) {
        MemorySegment p = MATMUL_PARAMS.get(o);
        if (p != null) return p;
        boolean keep = MATMUL_PARAMS.size() < MATMUL_PARAMS_MAX;
        p = pt_matmul_params.allocate(keep ? Arena.global() : Arena.ofAuto());
        pt_matmul_params.trans_b(p, o.transB() ? 1 : 0);
        pt_matmul_params.activation(p, o.activation().ordinal());
        pt_matmul_params.alpha(p, o.alpha());
        pt_matmul_params.beta(p, o.beta());
        if (!keep) return p;
        MemorySegment prev = MATMUL_PARAMS.putIfAbsent(o, p);
        return prev != null ? prev : p;
    }

    /**
     * {@code c = act(alpha * a @ op(b) + bias + beta * c)}, accumulated in f32.
     *
     * <p>Rows (outer dims) of a, b and c may be strided; the innermost dim must be contiguous.
     * A 3-D a with a 2-D b applies b to every batch. c must not overlap a, b or bias.
     *
     * @param ctx  the context (thread count, oneDNN or our own kernels)
     * @param a    [M, K] or [B, M, K], f32 or bf16
     * @param b    [K, N] ([N, K] when {@code transB}), or with a leading [B]; same dtype as a
     * @param bias [N] f32, or null
     * @param c    [M, N] or [B, M, N]; f32 (bf16 allowed when a is bf16)
     * @param opts transpose, activation, alpha, beta
     * @throws IllegalArgumentException on a shape or dtype mismatch, strides that are not whole
     *         elements, overlapping c rows, c overlapping an input, or a read-only c
     * @throws IllegalStateException    when any tensor or the context is closed
     * @throws PanatronException        when the native kernel fails (e.g. out of memory)
     */
    public static void matmul(Context ctx, Tensor a, Tensor b, Tensor bias, Tensor c, MatmulOptions opts) {
        Objects.requireNonNull(opts, "opts");
        requireOpen(ctx, a, b, c);
        if (bias != null) bias.checkOpen();
        requireDtype("matmul a", a, DType.F32, DType.BF16);
        requireDtype("matmul b", b, a.dtype());
        requireDtype("matmul c", c, a.dtype() == DType.F32 ? new DType[] {DType.F32} : new DType[] {DType.F32, DType.BF16});
        if (a.ndim() < 2 || a.ndim() > 3) throw shape("matmul: a must be 2-D or 3-D, got " + a);
        if (b.ndim() < 2 || b.ndim() > 3) throw shape("matmul: b must be 2-D or 3-D, got " + b);
        if (c.ndim() != a.ndim()) throw shape("matmul: c " + c + " must have the rank of a " + a);
        if (b.ndim() == 3 && (a.ndim() != 3 || b.dim(0) != a.dim(0))) throw shape("matmul: batched b " + b + " needs a with the same batch, got " + a);
        long m = a.dim(-2), k = a.dim(-1);
        long bk = opts.transB() ? b.dim(-1) : b.dim(-2), n = opts.transB() ? b.dim(-2) : b.dim(-1);
        if (bk != k) throw shape("matmul: inner dims differ: a " + a + " has K=" + k + ", b " + b + (opts.transB() ? " (transB)" : "") + " has K=" + bk);
        if (c.dim(-2) != m || c.dim(-1) != n || (a.ndim() == 3 && c.dim(0) != a.dim(0))) {
            throw shape("matmul: c " + c + " must be [" + (a.ndim() == 3 ? a.dim(0) + ", " : "") + m + ", " + n + "] for a " + a + " and b " + b);
        }
        if (bias != null) {
            requireDtype("matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw shape("matmul: bias must be [" + n + "], got " + bias);
        }
        requireWholeElementStrides("matmul a", a);
        requireWholeElementStrides("matmul b", b);
        requireWholeElementStrides("matmul c", c);
        long[] cs = c.strides();
        long es = c.dtype().byteSize();
        if (m > 1 && n > 1 && cs[c.ndim() - 2] < n * es) {
            throw shape("matmul: rows of c " + c + " overlap (row stride " + cs[c.ndim() - 2] + " bytes < " + n * es + ")");
        }
        if (c.ndim() == 3 && c.dim(0) > 1 && m * n > 1 && cs[0] < (m - 1) * cs[1] + n * es) {
            throw shape("matmul: batches of c " + c + " overlap (batch stride " + cs[0] + " bytes)");
        }
        requireWritable("matmul c", c);
        requireDisjoint("matmul", c, "c", a, "a");
        requireDisjoint("matmul", c, "c", b, "b");
        if (bias != null) requireDisjoint("matmul", c, "c", bias, "bias");
        if (m == 0 || n == 0 || (a.ndim() == 3 && a.dim(0) == 0)) return;
        Native.check(panatron_h.pt_matmul(ctx.handle(), a.descriptor(), b.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), c.descriptor(), matmulParams(opts)));
    }

    /** {@code c = a @ b}. See {@link #matmul(Context, Tensor, Tensor, Tensor, Tensor, MatmulOptions)}. */
    public static void matmul(Context ctx, Tensor a, Tensor b, Tensor c) {
        matmul(ctx, a, b, null, c, MatmulOptions.DEFAULT);
    }

    /**
     * A Linear layer: {@code out = x @ weightᵀ + bias}, weight in PyTorch layout [N, K].
     * See {@link #matmul(Context, Tensor, Tensor, Tensor, Tensor, MatmulOptions)} for the
     * exceptions.
     */
    public static void linear(Context ctx, Tensor x, Tensor weight, Tensor bias, Tensor out) {
        matmul(ctx, x, weight, bias, out, MatmulOptions.LINEAR);
    }

    private static void requireWholeElementStrides(String what, Tensor t) {
        long[] st = t.strides();
        long[] sh = t.shape();
        int es = t.dtype().byteSize();
        for (int i = 0; i < st.length - 1; i++) {
            if (sh[i] > 1 && st[i] % es != 0) {
                throw shape(what + ": stride " + st[i] + " bytes of dim " + i + " of " + t + " is not a multiple of the element size " + es);
            }
        }
    }

    private static void requireDisjoint(String op, Tensor out, String outName, Tensor in, String inName) {
        if (out.numel() == 0 || in.numel() == 0) return;
        if (out.segment().asOverlappingSlice(in.segment()).isPresent()) {
            throw new IllegalArgumentException(op + ": output " + outName + " " + out + " overlaps input " + inName + " " + in);
        }
    }

    // ================================================================ elementwise and norms
    // (see the section markers: each op family keeps its methods together)

    // ---- end elementwise ----

    // ================================================================ attention
    // ---- end attention ----

    // ================================================================ validation helpers

    static void requireOpen(Context ctx, Tensor... ts) {
        Objects.requireNonNull(ctx, "context");
        ctx.handle();
        for (Tensor t : ts) {
            Objects.requireNonNull(t, "tensor");
            t.checkOpen();
        }
    }

    static void requireDtype(String what, Tensor t, DType... allowed) {
        for (DType d : allowed) if (t.dtype() == d) return;
        throw new IllegalArgumentException(what + ": dtype " + t.dtype() + " not supported (expected " + Arrays.toString(allowed) + ")");
    }

    static void requireSameShape(String what, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) throw shape(what + ": shapes differ: " + a + " vs " + b);
    }

    static void requireWritable(String what, Tensor t) {
        if (t.segment().isReadOnly()) throw new IllegalArgumentException(what + ": output tensor " + t + " is read-only");
    }

    static IllegalArgumentException shape(String msg) { return new IllegalArgumentException(msg); }
}
