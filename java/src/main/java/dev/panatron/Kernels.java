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
        if (checkMatmul(ctx, a, b, bias, c, opts)) return;
        Native.check(panatron_h.pt_matmul(ctx.handle(), a.descriptor(), b.descriptor(),
                bias == null ? MemorySegment.NULL : bias.descriptor(), c.descriptor(), matmulParams(opts)));
    }

    /** The checks of {@link #matmul(Context, Tensor, Tensor, Tensor, Tensor, MatmulOptions)}; true when there is nothing to compute. */
    private static boolean checkMatmul(Context ctx, Tensor a, Tensor b, Tensor bias, Tensor c, MatmulOptions opts) {
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
        requireNoSelfOverlap("matmul c", c);
        requireWritable("matmul c", c);
        requireDisjoint("matmul", c, "c", a, "a");
        requireDisjoint("matmul", c, "c", b, "b");
        if (bias != null) requireDisjoint("matmul", c, "c", bias, "bias");
        return m == 0 || n == 0 || (a.ndim() == 3 && a.dim(0) == 0);
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

    /**
     * A right-hand matmul operand packed once into the layout the GEMM kernel reads
     * ({@code pt_matmul_pack}): for weights used by many calls, which then skip packing B
     * ({@link #matmul(Context, Tensor, PackedMatrix, Tensor, Tensor, MatmulOptions)}). It owns
     * its native copy; {@link #close()} frees it (twice is harmless).
     */
    public static final class PackedMatrix implements AutoCloseable {
        private final Arena arena = Arena.ofShared();
        private final MemorySegment handle;
        private final long k, n, bytes;
        private final DType dtype;
        private final boolean transB;
        private volatile boolean closed;

        private PackedMatrix(MemorySegment raw, long k, long n, DType dtype, boolean transB, long bytes) {
            this.handle = raw.reinterpret(arena, h -> panatron_h.pt_packed_matrix_destroy(h));
            this.k = k;
            this.n = n;
            this.dtype = dtype;
            this.transB = transB;
            this.bytes = bytes;
        }

        /** Rows of the logical B (its K). */
        public long k() { return k; }

        /** Columns of the logical B (its N). */
        public long n() { return n; }

        /** The precision of the products: F32 or BF16. */
        public DType dtype() { return dtype; }

        /** Whether it was packed from a [N, K] (PyTorch Linear layout) source. */
        public boolean transB() { return transB; }

        /** Bytes of the packed copy. */
        public long byteSize() { return bytes; }

        MemorySegment handle() {
            if (closed) throw new IllegalStateException("packed matrix is closed");
            return handle;
        }

        @Override
        public void close() {
            synchronized (this) {
                if (closed) return;
                closed = true;
            }
            arena.close();
        }

        @Override
        public String toString() { return "packed " + dtype.name().toLowerCase() + "[" + k + ", " + n + "]"; }
    }

    /**
     * Packs {@code b} for {@link #matmul(Context, Tensor, PackedMatrix, Tensor, Tensor, MatmulOptions)}.
     * The kernel is chosen from {@code ctx}'s CPU features; use the result with contexts that
     * have them. {@code b} is read only during this call.
     *
     * @param b      [K, N], or [N, K] when {@code transB}; f32 or bf16
     * @param dtype  F32, or BF16 (b rounded to bf16; AMX-BF16 / AVX512-BF16 products where the
     *               CPU has them)
     * @throws IllegalArgumentException for a b that is not 2-D, f32 or bf16, or a dtype other
     *         than F32 or BF16
     * @throws IllegalStateException    when b or the context is closed
     * @throws PanatronException        when the native side fails (out of memory)
     */
    public static PackedMatrix pack(Context ctx, Tensor b, boolean transB, DType dtype) {
        Objects.requireNonNull(dtype, "dtype");
        requireOpen(ctx, b);
        requireDtype("pack b", b, DType.F32, DType.BF16);
        if (dtype != DType.F32 && dtype != DType.BF16) throw new IllegalArgumentException("pack: dtype must be F32 or BF16, got " + dtype);
        if (b.ndim() != 2) throw shape("pack: b must be 2-D ([K, N], or [N, K] with transB), got " + b);
        requireWholeElementStrides("pack b", b);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(java.lang.foreign.ValueLayout.ADDRESS);
            Native.check(panatron_h.pt_matmul_pack(ctx.handle(), b.descriptor(), transB ? 1 : 0, dtype.code(), out));
            MemorySegment raw = out.get(java.lang.foreign.ValueLayout.ADDRESS, 0);
            MemorySegment bytes = tmp.allocate(java.lang.foreign.ValueLayout.JAVA_LONG);
            Native.check(panatron_h.pt_packed_matrix_info(raw, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, bytes));
            long k = transB ? b.dim(1) : b.dim(0), n = transB ? b.dim(0) : b.dim(1);
            return new PackedMatrix(raw, k, n, dtype, transB, bytes.get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
        }
    }

    /**
     * {@code c = act(alpha * a @ B + bias + beta * c)} with B packed by {@link #pack} (its
     * transB is the packing's; {@code opts.transB()} is ignored). Our kernels run it, whether
     * or not the context uses oneDNN.
     *
     * @param a    [M, K] or [B, M, K], f32 or bf16 (either, whatever B's dtype: a bf16
     *             packing rounds a's rows to bf16 while packing them)
     * @param b    the packed [K, N] matrix
     * @param bias [N] f32, or null
     * @param c    a's rank: [M, N] or [B, M, N], f32 or bf16
     * @throws IllegalArgumentException on a shape or dtype mismatch, c overlapping a or bias,
     *         overlapping c rows, or a read-only c
     * @throws IllegalStateException    when a tensor, the packed matrix or the context is closed
     * @throws PanatronException        when the native side fails (a context without the CPU
     *         features the packing chose)
     */
    public static void matmul(Context ctx, Tensor a, PackedMatrix b, Tensor bias, Tensor c, MatmulOptions opts) {
        if (checkPackedMatmul(ctx, a, b, bias, c, opts)) return;
        Native.check(panatron_h.pt_matmul_packed(ctx.handle(), a.descriptor(), b.handle(), bias == null ? MemorySegment.NULL : bias.descriptor(),
                c.descriptor(), matmulParams(opts)));
    }

    /** Checks a packed matmul; true when there is nothing to compute. */
    private static boolean checkPackedMatmul(Context ctx, Tensor a, PackedMatrix b, Tensor bias, Tensor c, MatmulOptions opts) {
        Objects.requireNonNull(opts, "opts");
        Objects.requireNonNull(b, "b");
        requireOpen(ctx, a, c);
        b.handle();
        if (bias != null) bias.checkOpen();
        requireDtype("matmul a", a, DType.F32, DType.BF16);
        requireDtype("matmul c", c, DType.F32, DType.BF16);
        if (a.ndim() < 2 || a.ndim() > 3) throw shape("matmul: a must be 2-D or 3-D, got " + a);
        if (c.ndim() != a.ndim()) throw shape("matmul: c " + c + " must have the rank of a " + a);
        long m = a.dim(-2), k = a.dim(-1), n = b.n();
        if (k != b.k()) throw shape("matmul: inner dims differ: a " + a + " has K=" + k + ", " + b + " has K=" + b.k());
        if (c.dim(-2) != m || c.dim(-1) != n || (a.ndim() == 3 && c.dim(0) != a.dim(0))) {
            throw shape("matmul: c " + c + " must be [" + (a.ndim() == 3 ? a.dim(0) + ", " : "") + m + ", " + n + "] for a " + a + " and " + b);
        }
        if (bias != null) {
            requireDtype("matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw shape("matmul: bias must be [" + n + "], got " + bias);
        }
        requireWholeElementStrides("matmul a", a);
        requireWholeElementStrides("matmul c", c);
        long[] cs = c.strides();
        long es = c.dtype().byteSize();
        if (m > 1 && n > 1 && cs[c.ndim() - 2] < n * es) {
            throw shape("matmul: rows of c " + c + " overlap (row stride " + cs[c.ndim() - 2] + " bytes < " + n * es + ")");
        }
        if (c.ndim() == 3 && c.dim(0) > 1 && m * n > 1 && !batchesDisjoint(c.dim(0), m, n * es, cs[1], cs[0])) {
            throw shape("matmul: batches of c " + c + " overlap (batch stride " + cs[0] + " bytes)");
        }
        requireWritable("matmul c", c);
        requireDisjoint("matmul", c, "c", a, "a");
        if (bias != null) requireDisjoint("matmul", c, "c", bias, "bias");
        return m == 0 || n == 0 || (a.ndim() == 3 && a.dim(0) == 0);
    }

    /**
     * True when the batches of c (row stride rs, batch stride bs, row bytes nb) share no byte:
     * stacked, or interleaved within one row stride (the heads of a [S, H, D] buffer viewed
     * as [H, S, D]).
     */
    private static boolean batchesDisjoint(long batch, long m, long nb, long rs, long bs) {
        if (bs >= (m - 1) * rs + nb) return true;
        return m > 1 && bs >= nb && (batch - 1) * bs + nb <= rs;
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

    /**
     * Rejects a view whose distinct indices could address the same bytes (an output written
     * through it would race with itself). Sufficient test: ordering the dims of size > 1 by
     * stride, each stride must reach past the extent of all smaller-strided dims.
     */
    static void requireNoSelfOverlap(String what, Tensor t) {
        long[] sh = t.shape();
        long[] st = t.strides();
        int es = Math.max(1, t.dtype().byteSize());
        java.util.List<Integer> dims = new java.util.ArrayList<>();
        for (int i = 0; i < sh.length; i++) if (sh[i] > 1) dims.add(i);
        dims.sort(java.util.Comparator.comparingLong(i -> st[i]));
        long extent = es;
        for (int i : dims) {
            if (i == sh.length - 1 && t.dtype() == DType.U4) {
                extent = (sh[i] + 1) / 2;
                continue;
            }
            if (st[i] < extent) {
                throw shape(what + ": " + t + " with strides " + java.util.Arrays.toString(st)
                        + " addresses the same bytes from different indices (dim " + i + " stride " + st[i] + " < " + extent + ")");
            }
            extent = st[i] * (sh[i] - 1) + extent;
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
    //
    // Common rules of this section (the C header's contract): data tensors are f32 or bf16,
    // independently for inputs and outputs (compute is f32, stores round to nearest even);
    // outer dims may be strided (views and slices work), the innermost dim is contiguous;
    // gamma/beta are f32 vectors; an output may be exactly the same view as an input (in
    // place) but must not partially overlap one. Empty tensors are a no-op.

    /** Elementwise functions of {@link #unary} ({@code pt_unary_op}; ordinals are the C values). */
    public enum Unary {
        /** {@code x/2 (1 + erf(x/sqrt 2))}: BERT's GELU. */
        GELU_ERF,
        /** {@code x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))}: GPT-2's GELU. */
        GELU_TANH,
        /** {@code x sigmoid(x)}. */
        SILU,
        /** {@code max(x, 0)}; NaN stays NaN. */
        RELU,
        /** {@code tanh(x)}: BERT's pooler. */
        TANH,
        /** {@code 1 / (1 + exp(-x))}. */
        SIGMOID;

        private final String lower = name().toLowerCase(java.util.Locale.ROOT);
    }

    /** RoPE pair layouts ({@code pt_rope_mode}; ordinals are the C values). */
    public enum RopeMode {
        /** Rotate halves: {@code (x[i], x[i + r/2])}: Llama, GPT-NeoX, the HF default. */
        NEOX,
        /** Rotate adjacent pairs: {@code (x[2i], x[2i+1])}: GPT-J, original Meta Llama weights. */
        GPTJ
    }

    /**
     * Options of {@link #rope}.
     *
     * @param mode       pair layout
     * @param rotaryDim  r: dims rotated from the start of each head (even); 0 = the whole head
     * @param theta      frequency base (e.g. 10000, Llama 3: 500000); ignored when invFreq is given
     * @param freqScale  positions are multiplied by this (linear position interpolation); 0 = 1
     * @param invFreq    optional [r/2] table of inverse frequencies (Llama 3 / YaRN scaling),
     *                   or null for {@code theta^(-2i/r)}; copied
     */
    public record RopeOptions(RopeMode mode, int rotaryDim, float theta, float freqScale, float[] invFreq) {
        /** NEOX halves, whole head, theta 10000. */
        public static final RopeOptions DEFAULT = neox(10000f);

        /**
         * @throws IllegalArgumentException for an odd or negative rotaryDim, a non-positive or
         *         non-finite theta without invFreq, a non-finite freqScale or invFreq entry
         */
        public RopeOptions {
            Objects.requireNonNull(mode, "mode");
            if (rotaryDim < 0 || rotaryDim % 2 != 0) throw new IllegalArgumentException("rope: rotaryDim must be even and >= 0, got " + rotaryDim);
            if (invFreq == null && !(theta > 0 && Float.isFinite(theta))) throw new IllegalArgumentException("rope: theta must be finite and > 0, got " + theta);
            if (!Float.isFinite(freqScale)) throw new IllegalArgumentException("rope: freqScale must be finite, got " + freqScale);
            if (invFreq != null) {
                invFreq = invFreq.clone();
                for (int i = 0; i < invFreq.length; i++) {
                    if (!Float.isFinite(invFreq[i])) throw new IllegalArgumentException("rope: invFreq[" + i + "] = " + invFreq[i] + " is not finite");
                }
            }
        }

        /** NEOX halves over the whole head. */
        public static RopeOptions neox(float theta) { return new RopeOptions(RopeMode.NEOX, 0, theta, 0f, null); }

        /** GPT-J pairs over the whole head. */
        public static RopeOptions gptj(float theta) { return new RopeOptions(RopeMode.GPTJ, 0, theta, 0f, null); }

        /** The same options rotating only the first {@code r} dims of each head. */
        public RopeOptions withRotaryDim(int r) { return new RopeOptions(mode, r, theta, freqScale, invFreq); }

        /** The same options with positions multiplied by {@code s}. */
        public RopeOptions withFreqScale(float s) { return new RopeOptions(mode, rotaryDim, theta, s, invFreq); }

        /** The same options with an explicit [r/2] inverse-frequency table. */
        public RopeOptions withInvFreq(float[] table) { return new RopeOptions(mode, rotaryDim, theta, freqScale, table); }

        /** A copy of the inverse-frequency table, or null. */
        @Override
        public float[] invFreq() { return invFreq == null ? null : invFreq.clone(); }

        @Override
        public boolean equals(Object o) {
            return o instanceof RopeOptions r && r.mode == mode && r.rotaryDim == rotaryDim && Float.compare(r.theta, theta) == 0
                    && Float.compare(r.freqScale, freqScale) == 0 && Arrays.equals(r.invFreq, invFreq);
        }

        @Override
        public int hashCode() { return Objects.hash(mode, rotaryDim, theta, freqScale, Arrays.hashCode(invFreq)); }

        @Override
        public String toString() {
            return "RopeOptions[" + mode + ", rotaryDim=" + rotaryDim + ", theta=" + theta + ", freqScale=" + freqScale
                    + (invFreq == null ? "" : ", invFreq[" + invFreq.length + "]") + "]";
        }
    }

    /**
     * {@code out = a + b}: a residual add (b has a's shape) or a bias add (b is 1-D
     * [cols of a], broadcast over a's rows).
     *
     * @param a   any shape, f32 or bf16
     * @param b   a's shape, or [a.dim(-1)]; f32 or bf16
     * @param out a's shape, f32 or bf16; may be a or b itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only out, or an
     *         out that partially overlaps an input
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void add(Context ctx, Tensor a, Tensor b, Tensor out) {
        checkAdd(ctx, a, b, out);
        Native.check(panatron_h.pt_add(ctx.handle(), a.descriptor(), b.descriptor(), out.descriptor()));
    }

    private static void checkAdd(Context ctx, Tensor a, Tensor b, Tensor out) {
        requireOpen(ctx, a, b, out);
        requireData("add", "a", a);
        requireData("add", "b", b);
        requireData("add", "out", out);
        requireSame("add", a, "a", out, "out");
        if (!(b.ndim() == 1 && a.ndim() > 1 && b.dim(0) == a.dim(-1)) && !sameShape(a, b)) {
            throw shape("add: b " + b + " must have a's shape " + a + " or be [" + a.dim(-1) + "] (broadcast over rows)");
        }
        requireOutput("add", out, a, b);
    }

    /**
     * {@code out = f(x)} elementwise.
     *
     * @param x   any shape, f32 or bf16
     * @param out x's shape, f32 or bf16; may be x itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void unary(Context ctx, Unary op, Tensor x, Tensor out) {
        checkUnary(ctx, op, x, out);
        Native.check(panatron_h.pt_unary(ctx.handle(), op.ordinal(), x.descriptor(), out.descriptor()));
    }

    private static void checkUnary(Context ctx, Unary op, Tensor x, Tensor out) {
        Objects.requireNonNull(op, "op");
        requireOpen(ctx, x, out);
        requireData(op.lower, "x", x);
        requireData(op.lower, "out", out);
        requireSame(op.lower, x, "x", out, "out");
        requireOutput(op.lower, out, x);
    }

    /**
     * GELU, exact (erf) form. Shapes, dtypes and exceptions as {@link #unary}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void gelu(Context ctx, Tensor x, Tensor out) { unary(ctx, Unary.GELU_ERF, x, out); }

    /**
     * GELU: the tanh approximation when {@code tanhApprox}, else the exact erf form.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void gelu(Context ctx, Tensor x, Tensor out, boolean tanhApprox) {
        unary(ctx, tanhApprox ? Unary.GELU_TANH : Unary.GELU_ERF, x, out);
    }

    /**
     * SiLU {@code x sigmoid(x)}. Shapes, dtypes and exceptions as {@link #unary}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void silu(Context ctx, Tensor x, Tensor out) { unary(ctx, Unary.SILU, x, out); }

    /**
     * ReLU. Shapes, dtypes and exceptions as {@link #unary}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void relu(Context ctx, Tensor x, Tensor out) { unary(ctx, Unary.RELU, x, out); }

    /**
     * tanh. Shapes, dtypes and exceptions as {@link #unary}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void tanh(Context ctx, Tensor x, Tensor out) { unary(ctx, Unary.TANH, x, out); }

    /**
     * Logistic sigmoid. Shapes, dtypes and exceptions as {@link #unary}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void sigmoid(Context ctx, Tensor x, Tensor out) { unary(ctx, Unary.SIGMOID, x, out); }

    /**
     * SwiGLU: {@code out = silu(gate) * up}.
     *
     * @param gate any shape, f32 or bf16
     * @param up   gate's shape, f32 or bf16
     * @param out  gate's shape, f32 or bf16; may be gate or up itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void swiglu(Context ctx, Tensor gate, Tensor up, Tensor out) {
        requireOpen(ctx, gate, up, out);
        requireData("swiglu", "gate", gate);
        requireData("swiglu", "up", up);
        requireData("swiglu", "out", out);
        requireSame("swiglu", gate, "gate", up, "up");
        requireSame("swiglu", gate, "gate", out, "out");
        requireOutput("swiglu", out, gate, up);
        Native.check(panatron_h.pt_swiglu(ctx.handle(), gate.descriptor(), up.descriptor(), out.descriptor()));
    }

    /**
     * Softmax along the last dim, of {@code scale * x}, max-subtracted. A row holding NaN or
     * +inf, or all -inf, becomes NaN (as PyTorch).
     *
     * @param x     [..., cols], f32 or bf16
     * @param scale finite; 0 is read as 1; negative allowed
     * @param out   x's shape, f32 or bf16; may be x itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a non-finite scale, a
     *         read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void softmax(Context ctx, Tensor x, float scale, Tensor out) {
        checkSoftmax(ctx, x, scale, out);
        Native.check(panatron_h.pt_softmax(ctx.handle(), x.descriptor(), scale, out.descriptor()));
    }

    private static void checkSoftmax(Context ctx, Tensor x, float scale, Tensor out) {
        requireOpen(ctx, x, out);
        requireData("softmax", "x", x);
        requireData("softmax", "out", out);
        requireSame("softmax", x, "x", out, "out");
        if (!Float.isFinite(scale)) throw new IllegalArgumentException("softmax: scale must be finite, got " + scale);
        requireOutput("softmax", out, x);
    }

    /**
     * LayerNorm over the last dim: {@code (x - mean) / sqrt(var + eps) * gamma + beta}, biased
     * variance (as PyTorch).
     *
     * @param x     [..., cols], f32 or bf16
     * @param gamma [cols] f32
     * @param beta  [cols] f32, or null (no shift)
     * @param eps   finite, >= 0 (BERT: 1e-12)
     * @param out   x's shape, f32 or bf16; may be x itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a bad eps, a read-only or
     *         overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void layerNorm(Context ctx, Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        checkNorm("layerNorm", ctx, x, null, gamma, beta, eps, out, null);
        Native.check(panatron_h.pt_layer_norm(ctx.handle(), x.descriptor(), gamma.descriptor(), descOrNull(beta), eps,
                out.descriptor()));
    }

    /**
     * Residual add fused with LayerNorm: {@code s = x + residual; out = layerNorm(s)}, and
     * {@code sumOut = s} when sumOut is not null. With sumOut, the norm is taken of the sum as
     * stored there (a bf16 sumOut rounds first); otherwise of the f32 sum.
     *
     * @param x        [..., cols], f32 or bf16
     * @param residual x's shape, f32 or bf16
     * @param gamma    [cols] f32
     * @param beta     [cols] f32, or null
     * @param eps      finite, >= 0
     * @param out      x's shape, f32 or bf16; may be x or residual itself
     * @param sumOut   x's shape, f32 or bf16, or null; may be x or residual itself (the
     *                 residual stream updated in place)
     * @throws IllegalArgumentException on a shape or dtype mismatch, a bad eps, a read-only or
     *         overlapping output
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void addLayerNorm(Context ctx, Tensor x, Tensor residual, Tensor gamma, Tensor beta, float eps, Tensor out,
                                    Tensor sumOut) {
        Objects.requireNonNull(residual, "residual");
        checkNorm("addLayerNorm", ctx, x, residual, gamma, beta, eps, out, sumOut);
        Native.check(panatron_h.pt_add_layer_norm(ctx.handle(), x.descriptor(), residual.descriptor(), gamma.descriptor(),
                descOrNull(beta), eps, out.descriptor(), descOrNull(sumOut)));
    }

    /**
     * RMSNorm over the last dim: {@code x / sqrt(mean(x^2) + eps) * gamma}.
     *
     * @param x     [..., cols], f32 or bf16
     * @param gamma [cols] f32 (Gemma: pass 1 + w)
     * @param eps   finite, >= 0
     * @param out   x's shape, f32 or bf16; may be x itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a bad eps, a read-only or
     *         overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void rmsNorm(Context ctx, Tensor x, Tensor gamma, float eps, Tensor out) {
        checkNorm("rmsNorm", ctx, x, null, gamma, null, eps, out, null);
        Native.check(panatron_h.pt_rms_norm(ctx.handle(), x.descriptor(), gamma.descriptor(), eps, out.descriptor()));
    }

    /**
     * Residual add fused with RMSNorm (Llama pre-norm blocks): {@code s = x + residual;
     * out = rmsNorm(s); sumOut = s}. Shapes, dtypes and aliasing as {@link #addLayerNorm}.
     *
     * @throws IllegalArgumentException on a shape or dtype mismatch, a bad eps, a read-only or
     *         overlapping output
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void addRmsNorm(Context ctx, Tensor x, Tensor residual, Tensor gamma, float eps, Tensor out, Tensor sumOut) {
        Objects.requireNonNull(residual, "residual");
        checkNorm("addRmsNorm", ctx, x, residual, gamma, null, eps, out, sumOut);
        Native.check(panatron_h.pt_add_rms_norm(ctx.handle(), x.descriptor(), residual.descriptor(), gamma.descriptor(), eps,
                out.descriptor(), descOrNull(sumOut)));
    }

    /**
     * Rotary position embedding, per head. Pair i of each head is rotated by
     * {@code pos * freqScale * invFreq[i]}, {@code invFreq[i] = theta^(-2i/r)} unless given;
     * dims r..D-1 pass through.
     *
     * @param x         [T, H, D] or [B, T, H, D], f32 or bf16; outer dims may be strided (a Q
     *                  or K view of a fused QKV projection works)
     * @param positions i32, contiguous: [T], or [B, T] for 4-D x
     * @param out       x's shape, f32 or bf16; may be x itself
     * @throws IllegalArgumentException on a shape or dtype mismatch, a rotaryDim larger than D,
     *         an invFreq table whose length is not r/2, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void rope(Context ctx, Tensor x, Tensor positions, RopeOptions opts, Tensor out) {
        Objects.requireNonNull(opts, "opts");
        requireOpen(ctx, x, positions, out);
        requireData("rope", "x", x);
        requireData("rope", "out", out);
        requireI32("rope", "positions", positions);
        if (x.ndim() != 3 && x.ndim() != 4) throw shape("rope: x " + x + " must be [T, H, D] or [B, T, H, D]");
        requireSame("rope", x, "x", out, "out");
        boolean batched = x.ndim() == 4;
        long t = x.dim(batched ? 1 : 0), d = x.dim(-1);
        boolean posOk = (positions.ndim() == 1 && positions.dim(0) == t)
                || (batched && positions.ndim() == 2 && positions.dim(0) == x.dim(0) && positions.dim(1) == t);
        if (!posOk) throw shape("rope: positions " + positions + " must be [" + t + "]" + (batched ? " or [" + x.dim(0) + ", " + t + "]" : "") + " for x " + x);
        if (!positions.isContiguous()) throw shape("rope: positions " + positions + " must be contiguous");
        long r = opts.rotaryDim() == 0 ? d : opts.rotaryDim();
        if (r > d || r % 2 != 0) throw new IllegalArgumentException("rope: rotaryDim " + r + " must be even and <= the head dim " + d + " of x " + x);
        float[] inv = opts.invFreq;
        if (inv != null && inv.length != r / 2) throw new IllegalArgumentException("rope: invFreq has " + inv.length + " entries, expected rotaryDim/2 = " + r / 2);
        requireOutput("rope", out, x);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment p = dev.panatron.ffm.pt_rope_params.allocate(tmp);
            dev.panatron.ffm.pt_rope_params.mode(p, opts.mode().ordinal());
            dev.panatron.ffm.pt_rope_params.rotary_dim(p, opts.rotaryDim());
            dev.panatron.ffm.pt_rope_params.theta(p, opts.theta());
            dev.panatron.ffm.pt_rope_params.freq_scale(p, opts.freqScale());
            dev.panatron.ffm.pt_rope_params.inv_freq(p, inv == null ? MemorySegment.NULL : tmp.allocateFrom(java.lang.foreign.ValueLayout.JAVA_FLOAT, inv));
            Native.check(panatron_h.pt_rope(ctx.handle(), x.descriptor(), positions.descriptor(), p, out.descriptor()));
        }
    }

    /**
     * Embedding gather: {@code out[..., :] = table[ids[...], :]}. Every id is checked before
     * anything is written.
     *
     * @param table [V, D], f32, bf16 or f16 (rows may be strided)
     * @param ids   [T] or [B, T] (1..3 dims), i32, contiguous; each in [0, V)
     * @param out   ids' shape + [D], f32, bf16 or f16 (converted from table's dtype)
     * @throws IllegalArgumentException on a shape or dtype mismatch, an id out of range, a
     *         read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void embedding(Context ctx, Tensor table, Tensor ids, Tensor out) {
        checkEmbedding(ctx, table, ids, out, true);
        Native.check(panatron_h.pt_embedding(ctx.handle(), table.descriptor(), ids.descriptor(), out.descriptor()));
    }

    private static void checkEmbedding(Context ctx, Tensor table, Tensor ids, Tensor out, boolean checkIds) {
        requireOpen(ctx, table, ids, out);
        requireFloat("embedding", "table", table);
        requireI32("embedding", "ids", ids);
        requireFloat("embedding", "out", out);
        if (table.ndim() != 2) throw shape("embedding: table " + table + " must be [V, D]");
        if (ids.ndim() > 3) throw shape("embedding: ids " + ids + " must have 1..3 dims");
        if (!ids.isContiguous()) throw shape("embedding: ids " + ids + " must be contiguous");
        long[] want = Arrays.copyOf(ids.shape(), ids.ndim() + 1);
        want[ids.ndim()] = table.dim(1);
        if (!Arrays.equals(out.shape(), want)) throw shape("embedding: out " + out + " must be " + Arrays.toString(want) + " (ids " + ids + " plus the row size of table " + table + ")");
        long v = table.dim(0), n = ids.numel();
        MemorySegment idSeg = ids.segment();
        for (long i = 0; checkIds && i < n; i++) {
            int id = idSeg.getAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, i);
            if (id < 0 || id >= v) throw new IllegalArgumentException("embedding: ids[" + i + "] = " + id + " is out of range [0, " + v + ") for table " + table);
        }
        requireOutput("embedding", out, table, ids);
    }

    /**
     * Masked mean over tokens (sentence embeddings):
     * {@code out[b] = sum_t m[b,t] x[b,t] / sum_t m[b,t]} with {@code m = mask != 0} (all ones
     * when mask is null); a row with no kept token gives zeros. With {@code normalize}, each
     * row is then divided by {@code max(||row||, 1e-12)}.
     *
     * @param x    [B, T, D], f32 or bf16
     * @param mask [B, T] i32, contiguous (an attention mask), or null
     * @param out  [B, D], f32 or bf16
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void meanPool(Context ctx, Tensor x, Tensor mask, boolean normalize, Tensor out) {
        requireOpen(ctx, x, out);
        requireData("meanPool", "x", x);
        requireData("meanPool", "out", out);
        if (x.ndim() != 3) throw shape("meanPool: x " + x + " must be [B, T, D]");
        if (out.ndim() != 2 || out.dim(0) != x.dim(0) || out.dim(1) != x.dim(2)) throw shape("meanPool: out " + out + " must be [" + x.dim(0) + ", " + x.dim(2) + "] for x " + x);
        if (mask != null) {
            mask.checkOpen();
            requireI32("meanPool", "mask", mask);
            if (mask.ndim() != 2 || mask.dim(0) != x.dim(0) || mask.dim(1) != x.dim(1)) throw shape("meanPool: mask " + mask + " must be [" + x.dim(0) + ", " + x.dim(1) + "] for x " + x);
            if (!mask.isContiguous()) throw shape("meanPool: mask " + mask + " must be contiguous");
            requireOutput("meanPool", out, x, mask);
        } else {
            requireOutput("meanPool", out, x);
        }
        Native.check(panatron_h.pt_mean_pool(ctx.handle(), x.descriptor(), descOrNull(mask), normalize ? 1 : 0, out.descriptor()));
    }

    /**
     * Dtype conversion between f32, f16 and bf16 (round to nearest even, NaN stays NaN,
     * f16 overflow gives inf).
     *
     * @param x   any shape, f32, f16 or bf16
     * @param out x's shape, f32, f16 or bf16; may be x itself only when the dtypes are equal
     * @throws IllegalArgumentException on a shape or dtype mismatch, a read-only or overlapping out
     * @throws IllegalStateException    when a tensor or the context is closed
     */
    public static void convert(Context ctx, Tensor x, Tensor out) {
        requireOpen(ctx, x, out);
        requireFloat("convert", "x", x);
        requireFloat("convert", "out", out);
        requireSame("convert", x, "x", out, "out");
        requireOutput("convert", out, x);
        Native.check(panatron_h.pt_convert(ctx.handle(), x.descriptor(), out.descriptor()));
    }

    // ---- helpers of this section

    // The success paths allocate nothing and build no strings: small calls must stay cheap.

    private static void requireData(String op, String arg, Tensor t) {
        DType d = t.dtype();
        if (d != DType.F32 && d != DType.BF16) throw badDtype(op, arg, t, "[F32, BF16]");
    }

    private static void requireFloat(String op, String arg, Tensor t) {
        DType d = t.dtype();
        if (d != DType.F32 && d != DType.BF16 && d != DType.F16) throw badDtype(op, arg, t, "[F32, BF16, F16]");
    }

    private static void requireI32(String op, String arg, Tensor t) {
        if (t.dtype() != DType.I32) throw badDtype(op, arg, t, "[I32]");
    }

    private static IllegalArgumentException badDtype(String op, String arg, Tensor t, String allowed) {
        return new IllegalArgumentException(op + " " + arg + ": dtype " + t.dtype() + " not supported (expected " + allowed + ")");
    }

    private static boolean sameShape(Tensor a, Tensor b) {
        if (a.ndim() != b.ndim()) return false;
        for (int i = 0; i < a.ndim(); i++) if (a.dim(i) != b.dim(i)) return false;
        return true;
    }

    private static void requireSame(String op, Tensor a, String an, Tensor b, String bn) {
        if (!sameShape(a, b)) throw shape(op + ": " + an + " " + a + " and " + bn + " " + b + " must have the same shape");
    }

    private static MemorySegment descOrNull(Tensor t) { return t == null ? MemorySegment.NULL : t.descriptor(); }

    private static void checkNorm(String op, Context ctx, Tensor x, Tensor residual, Tensor gamma, Tensor beta, float eps,
                                  Tensor out, Tensor sumOut) {
        requireOpen(ctx, x, gamma, out);
        if (residual != null) residual.checkOpen();
        if (beta != null) beta.checkOpen();
        if (sumOut != null) sumOut.checkOpen();
        requireData(op, "x", x);
        requireData(op, "out", out);
        requireSame(op, x, "x", out, "out");
        if (residual != null) {
            requireData(op, "residual", residual);
            requireSame(op, x, "x", residual, "residual");
        }
        if (sumOut != null) {
            requireData(op, "sumOut", sumOut);
            requireSame(op, x, "x", sumOut, "sumOut");
        }
        requireParam(op, "gamma", gamma, x);
        if (beta != null) requireParam(op, "beta", beta, x);
        if (!(eps >= 0) || Float.isInfinite(eps)) throw new IllegalArgumentException(op + ": eps must be finite and >= 0, got " + eps);
        if (residual != null) requireOutput(op, out, x, residual, gamma, beta, sumOut);
        else requireOutput(op, out, x, gamma, beta);
        if (sumOut != null) requireOutput(op + " sumOut", sumOut, x, residual, gamma, beta);
    }

    private static void requireParam(String op, String arg, Tensor p, Tensor x) {
        if (p.dtype() != DType.F32) throw badDtype(op, arg, p, "[F32]");
        if (p.ndim() != 1 || p.dim(0) != x.dim(-1)) throw shape(op + " " + arg + " must be [" + x.dim(-1) + "] (the last dim of x " + x + "), got " + p);
    }

    /**
     * out must be writable, and may share memory with an input only as exactly the same view
     * (same address, dtype, shape and strides: in place); null inputs are skipped.
     */
    private static void requireOutput(String op, Tensor out, Tensor... inputs) {
        requireWritable(op + " out", out);
        MemorySegment o = out.segment();
        for (Tensor in : inputs) {
            if (in == null || in == out) continue;
            MemorySegment s = in.segment();
            if (o.byteSize() == 0 || s.byteSize() == 0) continue;
            boolean overlap = o.address() < s.address() + s.byteSize() && s.address() < o.address() + o.byteSize();
            if (!overlap) continue;
            boolean same = o.address() == s.address() && in.dtype() == out.dtype() && Arrays.equals(in.shape(), out.shape())
                    && Arrays.equals(in.strides(), out.strides());
            if (!same) throw new IllegalArgumentException(op + ": out " + out + " overlaps input " + in + " without being the same view (only exact in-place is allowed)");
        }
    }

    // ---- end elementwise ----

    // ================================================================ attention
    // (generated struct classes are spelled out in full here so that this section adds no
    // imports: other sections own the import list)

    /**
     * Flash attention for prefill and encoders: {@code out = softmax(scale * q kᵀ + mask) v}
     * per batch element and query head, tiled with an online softmax so the [Sq, Sk] score
     * matrix never exists (workspace bounded by the tile sizes).
     *
     * <p>Padded layout: {@code q [B, Sq, H, D]}, {@code k [B, Sk, Hkv, D]},
     * {@code v [B, Sk, Hkv, Dv]}, {@code out [B, Sq, H, Dv]} (what a QKV projection produces;
     * strided views are fine, the innermost dim must be contiguous). Packed variable-length
     * batch ({@link AttentionOptions#withCuSeqlens}): {@code q [Tq, H, D]}, {@code k [Tk, Hkv, D]},
     * {@code v [Tk, Hkv, Dv]}, {@code out [Tq, H, Dv]}, sequence b being rows cu[b] .. cu[b+1]-1.
     * q, k, v, out: f32 or bf16 (k and v share one dtype); computation in f32. GQA/MQA: Hkv
     * divides H. Head dims 1..256. Masks and positions: see {@link AttentionOptions}.
     *
     * @throws IllegalArgumentException on a shape, dtype or option mismatch (named in the
     *         message), cu_seqlens that are not 0-based, monotone and ending at the token count,
     *         a read-only or overlapping output
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void flashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out, AttentionOptions opts) {
        Objects.requireNonNull(opts, "opts");
        checkFlashAttention(ctx, q, k, v, out, opts);
        try (Arena tmp = Arena.ofConfined()) {
            Native.check(panatron_h.pt_flash_attn_fwd(ctx.handle(), flashParams(tmp, q, k, v, out, opts)));
        }
    }

    private static void checkFlashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out, AttentionOptions opts) {
        final String op = "flashAttention";
        requireOpen(ctx, q, k, v, out);
        requireDtype(op + " q", q, DType.F32, DType.BF16);
        requireDtype(op + " k", k, DType.F32, DType.BF16);
        requireDtype(op + " v", v, k.dtype());
        requireDtype(op + " out", out, DType.F32, DType.BF16);
        boolean packed = opts.cuSeqlensQ() != null;
        if (!packed && opts.cuSeqlensK() != null) {
            throw new IllegalArgumentException(op + ": cuSeqlensK given without cuSeqlensQ (packed batches need cuSeqlensQ)");
        }
        if (opts.numSplits() != 0) throw new IllegalArgumentException(op + ": numSplits applies to flashAttentionDecode only");
        int nd = packed ? 3 : 4, s = packed ? 0 : 1;
        if (q.ndim() != nd || k.ndim() != nd || v.ndim() != nd || out.ndim() != nd) {
            throw shape(op + ": the " + (packed ? "packed (cuSeqlens) layout needs q [T, H, D], k [T, Hkv, D], v [T, Hkv, Dv], out [T, H, Dv]"
                    : "padded layout needs q [B, Sq, H, D], k [B, Sk, Hkv, D], v [B, Sk, Hkv, Dv], out [B, Sq, H, Dv]")
                    + "; got q " + q + ", k " + k + ", v " + v + ", out " + out);
        }
        long sq = q.dim(s), sk = k.dim(s), h = q.dim(s + 1), d = q.dim(s + 2), hkv = k.dim(s + 1), dv = v.dim(s + 2);
        if (k.dim(s + 2) != d) throw shape(op + ": q " + q + " and k " + k + " have different head dims (" + d + " vs " + k.dim(s + 2) + ")");
        if (v.dim(s) != sk || v.dim(s + 1) != hkv) throw shape(op + ": v " + v + " must match k " + k + " in " + (packed ? "tokens" : "sequence length") + " and kv heads");
        if (out.dim(s) != sq || out.dim(s + 1) != h || out.dim(s + 2) != dv) {
            throw shape(op + ": out " + out + " must be [" + (packed ? "" : "B, ") + sq + ", " + h + ", " + dv + "] for q " + q + " and v " + v);
        }
        long batch;
        if (packed) {
            Tensor cq = opts.cuSeqlensQ();
            cq.checkOpen();
            requireDtype(op + " cuSeqlensQ", cq, DType.I32);
            if (cq.ndim() != 1 || cq.dim(0) < 1) throw shape(op + ": cuSeqlensQ must be i32 [B+1], got " + cq);
            batch = cq.dim(0) - 1;
            checkCuSeqlens(op, "cuSeqlensQ", cq, batch, sq);
            Tensor ck = opts.cuSeqlensK() != null ? opts.cuSeqlensK() : cq;
            ck.checkOpen();
            requireDtype(op + " cuSeqlensK", ck, DType.I32);
            checkCuSeqlens(op, "cuSeqlensK", ck, batch, sk);
            if (opts.keyPaddingMask() != null) {
                throw new IllegalArgumentException(op + ": keyPaddingMask cannot be combined with cuSeqlens (packed batches have no padding)");
            }
        } else {
            batch = q.dim(0);
            if (k.dim(0) != batch || v.dim(0) != batch || out.dim(0) != batch) {
                throw shape(op + ": batch sizes differ: q " + q + ", k " + k + ", v " + v + ", out " + out);
            }
        }
        checkHeads(op, d, dv, h, hkv);
        Tensor mask = opts.keyPaddingMask();
        if (mask != null) {
            mask.checkOpen();
            requireDtype(op + " keyPaddingMask", mask, DType.U8, DType.I32, DType.I64);
            if (mask.ndim() != 2 || mask.dim(0) != batch || mask.dim(1) != sk) {
                throw shape(op + ": keyPaddingMask " + mask + " must be [B, Sk] = [" + batch + ", " + sk + "]");
            }
        }
        Tensor lse = opts.lse();
        if (lse != null) {
            lse.checkOpen();
            requireDtype(op + " lse", lse, DType.F32);
            boolean ok = packed ? lse.ndim() == 2 && lse.dim(0) == h && lse.dim(1) == sq
                    : lse.ndim() == 3 && lse.dim(0) == batch && lse.dim(1) == h && lse.dim(2) == sq;
            if (!ok) throw shape(op + ": lse " + lse + " must be " + (packed ? "[H, T] = [" + h + ", " + sq + "]" : "[B, H, Sq] = [" + batch + ", " + h + ", " + sq + "]"));
            requireWritable(op + " lse", lse);
            requireDisjoint(op, "lse", lse, q, k, v, out);
        }
        requireWritable(op + " out", out);
        requireDisjoint(op, "out", out, q, k, v);
    }

    /** The pt_flash_attn_params struct of a checked flashAttention call, in {@code arena}. */
    private static MemorySegment flashParams(Arena arena, Tensor q, Tensor k, Tensor v, Tensor out, AttentionOptions opts) {
        Tensor mask = opts.keyPaddingMask(), lse = opts.lse();
        boolean packed = opts.cuSeqlensQ() != null;
        {
            MemorySegment p = dev.panatron.ffm.pt_flash_attn_params.allocate(arena);
            dev.panatron.ffm.pt_flash_attn_params.q(p, q.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.k(p, k.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.v(p, v.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.out(p, out.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.key_padding_mask(p, mask == null ? MemorySegment.NULL : mask.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.cu_seqlens_q(p, packed ? opts.cuSeqlensQ().descriptor() : MemorySegment.NULL);
            dev.panatron.ffm.pt_flash_attn_params.cu_seqlens_k(p, packed && opts.cuSeqlensK() != null ? opts.cuSeqlensK().descriptor() : MemorySegment.NULL);
            dev.panatron.ffm.pt_flash_attn_params.lse(p, lse == null ? MemorySegment.NULL : lse.descriptor());
            dev.panatron.ffm.pt_flash_attn_params.scale(p, opts.scale());
            dev.panatron.ffm.pt_flash_attn_params.causal(p, opts.causal() ? 1 : 0);
            dev.panatron.ffm.pt_flash_attn_params.window_left(p, opts.windowLeft());
            dev.panatron.ffm.pt_flash_attn_params.window_right(p, opts.windowRight());
            return p;
        }
    }

    /**
     * A {@link #flashAttention} call checked once and bound to its tensors, for calls repeated
     * on the same views (an executor's plan): {@link #run()} is the downcall alone, with the
     * params struct built at creation (no allocation, no argument re-checks beyond the open
     * state). The tensors' contents may change between runs: masks and cu_seqlens are checked
     * by the native side on every call.
     */
    public static final class FlashAttentionCall {
        private final Context ctx;
        private final Tensor[] tensors;
        private final MemorySegment params;

        private FlashAttentionCall(Context ctx, Tensor[] tensors, MemorySegment params) {
            this.ctx = ctx;
            this.tensors = tensors;
            this.params = params;
        }

        /**
         * Runs the attention.
         *
         * @throws IllegalStateException when the context or a tensor was closed since
         * @throws PanatronException     when the native kernel fails (bad cu_seqlens content,
         *                               out of memory)
         */
        public void run() {
            MemorySegment h = ctx.handle();
            for (Tensor t : tensors) t.checkOpen();
            Native.check(panatron_h.pt_flash_attn_fwd(h, params));
        }
    }

    /**
     * Checks a {@link #flashAttention} call as that method does and binds it for repeated
     * {@link FlashAttentionCall#run()}s.
     *
     * @throws IllegalArgumentException as {@link #flashAttention}
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static FlashAttentionCall prepareFlashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out, AttentionOptions opts) {
        Objects.requireNonNull(opts, "opts");
        checkFlashAttention(ctx, q, k, v, out, opts);
        java.util.List<Tensor> ts = new java.util.ArrayList<>(java.util.List.of(q, k, v, out));
        for (Tensor t : new Tensor[] {opts.keyPaddingMask(), opts.cuSeqlensQ(), opts.cuSeqlensK(), opts.lse()}) if (t != null) ts.add(t);
        return new FlashAttentionCall(ctx, ts.toArray(Tensor[]::new), flashParams(Arena.ofAuto(), q, k, v, out, opts));
    }

    /** Full (non-causal) attention with the default scale. */
    public static void flashAttention(Context ctx, Tensor q, Tensor k, Tensor v, Tensor out) {
        flashAttention(ctx, q, k, v, out, AttentionOptions.DEFAULT);
    }

    /**
     * Decode attention: a few new query tokens against a KV cache, the KV length split across
     * threads and the partial softmaxes merged by log-sum-exp (flash-decoding).
     *
     * <p>{@code q [B, Tq, H, D]}, {@code kCache [B, Hkv, S_max, D]}, {@code vCache [B, Hkv, S_max, Dv]}
     * (f32 or bf16, the layout of {@link KvCache}), {@code kvLens} i32 [B] with each value in
     * [0, S_max] or null (all S_max), {@code out [B, Tq, H, Dv]}, optional {@code lse [B, H, Tq]}.
     * Query t of sequence b sits at position kvLens[b] - Tq + t; {@code causal},
     * {@code windowLeft/Right}, {@code scale}, {@code lse} and {@code numSplits} apply;
     * masks and cuSeqlens do not.
     *
     * @throws IllegalArgumentException on a shape, dtype or option mismatch, a kvLens value out
     *         of range, a read-only or overlapping output
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void flashAttentionDecode(Context ctx, Tensor q, Tensor kCache, Tensor vCache, Tensor kvLens, Tensor out,
                                            AttentionOptions opts) {
        checkFlashDecode(ctx, q, kCache, vCache, kvLens, out, opts, true);
        MemorySegment p = CallScratch.get().decode;
        decodeParams(p, q, kCache, vCache, kvLens, out, opts);
        Native.check(panatron_h.pt_flash_attn_decode(ctx.handle(), p));
    }

    /** The checks of {@link #flashAttentionDecode}; the kvLens values only when {@code checkLens}. */
    private static void checkFlashDecode(Context ctx, Tensor q, Tensor kCache, Tensor vCache, Tensor kvLens, Tensor out,
                                         AttentionOptions opts, boolean checkLens) {
        final String op = "flashAttentionDecode";
        Objects.requireNonNull(opts, "opts");
        requireOpen1(ctx, q); requireOpen1(ctx, kCache); requireOpen1(ctx, vCache); requireOpen1(ctx, out);
        requireF32OrBf16(op + " q", q);
        requireF32OrBf16(op + " kCache", kCache);
        if (vCache.dtype() != kCache.dtype()) requireDtype(op + " vCache", vCache, kCache.dtype());
        requireF32OrBf16(op + " out", out);
        if (opts.keyPaddingMask() != null || opts.cuSeqlensQ() != null || opts.cuSeqlensK() != null) {
            throw new IllegalArgumentException(op + ": keyPaddingMask and cuSeqlens are prefill options (decode uses kvLens)");
        }
        if (q.ndim() != 4 || kCache.ndim() != 4 || vCache.ndim() != 4 || out.ndim() != 4) {
            throw shape(op + ": needs q [B, Tq, H, D], kCache [B, Hkv, S_max, D], vCache [B, Hkv, S_max, Dv], out [B, Tq, H, Dv]; got q "
                    + q + ", kCache " + kCache + ", vCache " + vCache + ", out " + out);
        }
        long batch = q.dim(0), tq = q.dim(1), h = q.dim(2), d = q.dim(3), hkv = kCache.dim(1), smax = kCache.dim(2), dv = vCache.dim(3);
        if (kCache.dim(0) != batch || vCache.dim(0) != batch || out.dim(0) != batch) {
            throw shape(op + ": batch sizes differ: q " + q + ", kCache " + kCache + ", vCache " + vCache + ", out " + out);
        }
        if (kCache.dim(3) != d) throw shape(op + ": q " + q + " and kCache " + kCache + " have different head dims");
        if (vCache.dim(1) != hkv || vCache.dim(2) != smax) throw shape(op + ": vCache " + vCache + " must match kCache " + kCache + " in kv heads and S_max");
        if (out.dim(1) != tq || out.dim(2) != h || out.dim(3) != dv) {
            throw shape(op + ": out " + out + " must be [B, Tq, H, Dv] = [" + batch + ", " + tq + ", " + h + ", " + dv + "]");
        }
        checkHeads(op, d, dv, h, hkv);
        if (kvLens != null) {
            kvLens.checkOpen();
            if (kvLens.dtype() != DType.I32) requireDtype(op + " kvLens", kvLens, DType.I32);
            if (kvLens.ndim() != 1 || kvLens.dim(0) != batch) throw shape(op + ": kvLens " + kvLens + " must be i32 [B] = [" + batch + "]");
            for (long b = 0; checkLens && b < batch; b++) {
                int len = intAt(kvLens, b);
                if (len < 0 || len > smax) {
                    throw new IllegalArgumentException(op + ": kvLens[" + b + "] = " + len + " outside [0, S_max = " + smax + "]");
                }
            }
        }
        Tensor lse = opts.lse();
        if (lse != null) {
            lse.checkOpen();
            requireDtype(op + " lse", lse, DType.F32);
            if (lse.ndim() != 3 || lse.dim(0) != batch || lse.dim(1) != h || lse.dim(2) != tq) {
                throw shape(op + ": lse " + lse + " must be [B, H, Tq] = [" + batch + ", " + h + ", " + tq + "]");
            }
            requireWritable(op + " lse", lse);
            requireDisjoint(op, "lse", lse, q, kCache, vCache, out);
        }
        requireWritable(op + " out", out);
        requireDisjoint1(op, "out", out, q);
        requireDisjoint1(op, "out", out, kCache);
        requireDisjoint1(op, "out", out, vCache);
    }

    /** Fills a pt_flash_decode_params. */
    private static void decodeParams(MemorySegment p, Tensor q, Tensor kCache, Tensor vCache, Tensor kvLens, Tensor out, AttentionOptions opts) {
        Tensor lse = opts.lse();
        {
            p.fill((byte) 0);
            dev.panatron.ffm.pt_flash_decode_params.q(p, q.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.k_cache(p, kCache.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.v_cache(p, vCache.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.kv_lens(p, kvLens == null ? MemorySegment.NULL : kvLens.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.out(p, out.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.lse(p, lse == null ? MemorySegment.NULL : lse.descriptor());
            dev.panatron.ffm.pt_flash_decode_params.scale(p, opts.scale());
            dev.panatron.ffm.pt_flash_decode_params.causal(p, opts.causal() ? 1 : 0);
            dev.panatron.ffm.pt_flash_decode_params.window_left(p, opts.windowLeft());
            dev.panatron.ffm.pt_flash_decode_params.window_right(p, opts.windowRight());
            dev.panatron.ffm.pt_flash_decode_params.num_splits(p, opts.numSplits());
        }
    }

    /**
     * Appends T tokens per sequence to a KV cache: {@code kCache[b, g, start[b] + t] = rope(kNew[b, t, g])},
     * {@code vCache[b, g, start[b] + t] = vNew[b, t, g]}.
     *
     * @param kNew   [B, T, Hkv, D] f32 or bf16, or null (with kCache null) to append values only
     * @param vNew   [B, T, Hkv, Dv] f32 or bf16, or null (with vCache null)
     * @param start  i32 [B]: the first cache row written per sequence; start[b] + T <= S_max
     * @param kCache [B, Hkv, S_max, D] f32 or bf16 (converted on the way in)
     * @param vCache [B, Hkv, S_max, Dv]
     * @param rope   rotary embedding applied to K at position start[b] + t, or null
     * @throws IllegalArgumentException on a shape or dtype mismatch, a start out of range, a
     *         read-only cache
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static void kvCacheAppend(Context ctx, Tensor kNew, Tensor vNew, Tensor start, Tensor kCache, Tensor vCache, KvCache.Rope rope) {
        checkKvCacheAppend(ctx, kNew, vNew, start, kCache, vCache, rope, true);
        MemorySegment rp = MemorySegment.NULL;
        if (rope != null) {
            CallScratch cs = CallScratch.get();
            rp = cs.rope;
            ropeParams(rp, rope, rope.invFreq() == null ? MemorySegment.NULL : cs.floats(rope.invFreq()));
        }
        Native.check(panatron_h.pt_kv_cache_append(ctx.handle(), kNew == null ? MemorySegment.NULL : kNew.descriptor(),
                vNew == null ? MemorySegment.NULL : vNew.descriptor(), start.descriptor(),
                kCache == null ? MemorySegment.NULL : kCache.descriptor(), vCache == null ? MemorySegment.NULL : vCache.descriptor(), rp));
    }

    /** The checks of {@link #kvCacheAppend}; the start values only when {@code checkStart}. */
    private static void checkKvCacheAppend(Context ctx, Tensor kNew, Tensor vNew, Tensor start, Tensor kCache, Tensor vCache, KvCache.Rope rope,
                                           boolean checkStart) {
        final String op = "kvCacheAppend";
        requireOpen1(ctx, start);
        if ((kNew == null) != (kCache == null)) throw new IllegalArgumentException(op + ": kNew and kCache must both be given or both be null");
        if ((vNew == null) != (vCache == null)) throw new IllegalArgumentException(op + ": vNew and vCache must both be given or both be null");
        if (kNew == null && vNew == null) throw new IllegalArgumentException(op + ": neither kNew nor vNew given");
        long batch = -1, t = -1, hkv = -1, smax = -1;
        for (int w = 0; w < 2; w++) {
            Tensor nw = w == 0 ? kNew : vNew, c = w == 0 ? kCache : vCache;
            String nn = w == 0 ? "kNew" : "vNew", cn = w == 0 ? "kCache" : "vCache";
            if (nw == null) continue;
            requireOpen1(ctx, nw);
            requireOpen1(ctx, c);
            requireF32OrBf16(w == 0 ? "kvCacheAppend kNew" : "kvCacheAppend vNew", nw);
            requireF32OrBf16(w == 0 ? "kvCacheAppend kCache" : "kvCacheAppend vCache", c);
            if (nw.ndim() != 4 || c.ndim() != 4) throw shape(op + ": " + nn + " " + nw + " must be [B, T, Hkv, D] and " + cn + " " + c + " [B, Hkv, S_max, D]");
            if (c.dim(0) != nw.dim(0) || c.dim(1) != nw.dim(2) || c.dim(3) != nw.dim(3)) {
                throw shape(op + ": " + cn + " " + c + " does not fit " + nn + " " + nw + " (expected [" + nw.dim(0) + ", " + nw.dim(2) + ", S_max, " + nw.dim(3) + "])");
            }
            if (batch >= 0 && (nw.dim(0) != batch || nw.dim(1) != t || nw.dim(2) != hkv)) {
                throw shape(op + ": kNew " + kNew + " and vNew " + vNew + " differ in B, T or Hkv");
            }
            if (smax >= 0 && c.dim(2) != smax) throw shape(op + ": kCache " + kCache + " and vCache " + vCache + " differ in S_max");
            batch = nw.dim(0); t = nw.dim(1); hkv = nw.dim(2); smax = c.dim(2);
            if (c.segment().isReadOnly()) requireWritable(op + " " + cn, c);
            requireDisjoint1(op, cn, c, nw);
        }
        if (start.dtype() != DType.I32) requireDtype(op + " start", start, DType.I32);
        if (start.ndim() != 1 || start.dim(0) != batch) throw shape(op + ": start " + start + " must be i32 [B] = [" + batch + "]");
        for (long b = 0; checkStart && b < batch; b++) {
            int st = intAt(start, b);
            if (st < 0 || st + t > smax) {
                throw new IllegalArgumentException(op + ": start[" + b + "] = " + st + " with T = " + t + " new tokens does not fit S_max = " + smax);
            }
        }
        if (rope != null && kNew != null) {
            long rd = rope.rotaryDim() == 0 ? kNew.dim(3) : rope.rotaryDim();
            if (rd > kNew.dim(3)) throw new IllegalArgumentException(op + ": rope rotaryDim " + rd + " exceeds the head dim " + kNew.dim(3));
            if (rope.invFreq() != null && rope.invFreq().length < rd / 2) {
                throw new IllegalArgumentException(op + ": rope invFreq has " + rope.invFreq().length + " entries, needs rotaryDim/2 = " + rd / 2);
            }
        }
    }

    /** Fills a pt_rope_params ({@code invFreq}: the native copy of rope.invFreq(), or NULL). */
    private static void ropeParams(MemorySegment rp, KvCache.Rope rope, MemorySegment invFreq) {
        rp.fill((byte) 0);
        dev.panatron.ffm.pt_rope_params.mode(rp, rope.mode().ordinal());
        dev.panatron.ffm.pt_rope_params.rotary_dim(rp, rope.rotaryDim());
        dev.panatron.ffm.pt_rope_params.theta(rp, rope.theta());
        dev.panatron.ffm.pt_rope_params.freq_scale(rp, rope.freqScale());
        dev.panatron.ffm.pt_rope_params.inv_freq(rp, invFreq);
    }

    private static void checkHeads(String op, long d, long dv, long h, long hkv) {
        if (d < 1 || d > 256) throw shape(op + ": head dim D = " + d + " outside 1..256");
        if (dv < 1 || dv > 256) throw shape(op + ": value head dim Dv = " + dv + " outside 1..256");
        if (hkv < 1 && h > 0) throw shape(op + ": " + h + " query heads but no kv heads");
        if (hkv > 0 && h % hkv != 0) {
            throw shape(op + ": query heads H = " + h + " not a multiple of kv heads Hkv = " + hkv + " (GQA/MQA need Hkv | H)");
        }
    }

    private static void checkCuSeqlens(String op, String name, Tensor cu, long batch, long tokens) {
        if (cu.ndim() != 1 || cu.dim(0) != batch + 1) throw shape(op + ": " + name + " " + cu + " must be i32 [B+1] = [" + (batch + 1) + "]");
        int[] c = cu.toIntArray();
        if (c[0] != 0) throw new IllegalArgumentException(op + ": " + name + "[0] = " + c[0] + ", must be 0");
        for (int b = 0; b < batch; b++) {
            if (c[b + 1] < c[b]) {
                throw new IllegalArgumentException(op + ": " + name + " is not monotone: [" + b + "] = " + c[b] + " > [" + (b + 1) + "] = " + c[b + 1]);
            }
        }
        if (c[(int) batch] != tokens) {
            throw new IllegalArgumentException(op + ": " + name + "[" + batch + "] = " + c[(int) batch] + " must equal the token count " + tokens);
        }
    }

    /**
     * Per-thread parameter blocks of the downcalls a decode loop makes per token (attention
     * decode, KV-cache append, the int8 and FP4 matmuls of {@link QuantKernels} and {@link Fp4}),
     * reused on every call so that the loop allocates nothing per token. Safe
     * because the native calls never call back into Java, so one thread never has two calls
     * in flight; the blocks live as long as the thread's ThreadLocal entry.
     */
    static final class CallScratch {
        private static final ThreadLocal<CallScratch> TL = ThreadLocal.withInitial(CallScratch::new);
        final Arena arena = Arena.ofAuto();
        final MemorySegment decode = dev.panatron.ffm.pt_flash_decode_params.allocate(arena);
        final MemorySegment rope = dev.panatron.ffm.pt_rope_params.allocate(arena);
        final MemorySegment int8 = dev.panatron.ffm.pt_int8_matmul_params.allocate(arena);
        final MemorySegment fp4 = dev.panatron.ffm.pt_fp4_matmul_params.allocate(arena);
        private MemorySegment invFreq = MemorySegment.NULL;

        static CallScratch get() { return TL.get(); }

        /** The floats copied into a per-thread native buffer (grown when too small). */
        MemorySegment floats(float[] a) {
            long bytes = 4L * a.length;
            if (invFreq.byteSize() < bytes) invFreq = arena.allocate(Math.max(bytes, 4L * 256), 64);
            MemorySegment.copy(a, 0, invFreq, java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, a.length);
            return invFreq;
        }
    }

    /** Element i of a 1-D i32 tensor, read in place (no copy). */
    private static int intAt(Tensor t, long i) {
        return t.segment().get(java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED, i * t.strideBytes(0));
    }

    /** Throws when {@code out}'s memory overlaps any of {@code ins}. */
    private static void requireDisjoint(String op, String outName, Tensor out, Tensor... ins) {
        for (Tensor in : ins) requireDisjoint1(op, outName, out, in);
    }

    /** One input of {@link #requireDisjoint(String, String, Tensor, Tensor...)} (no varargs array: hot paths). */
    private static void requireDisjoint1(String op, String outName, Tensor out, Tensor in) {
        MemorySegment o = out.segment();
        if (o.byteSize() == 0) return;
        MemorySegment i = in.segment();
        if (i.byteSize() == 0) return;
        if (o.address() < i.address() + i.byteSize() && i.address() < o.address() + o.byteSize()) {
            throw new IllegalArgumentException(op + ": " + outName + " " + out + " overlaps input " + in + " in memory (outputs must not alias inputs)");
        }
    }

    // ---- end attention ----

    // ================================================================ prepared calls

    /**
     * A kernel call checked once and bound to its tensors, for calls repeated on the same views
     * (an executor's plan): {@link #run()} is the downcall with descriptors and parameters made
     * at preparation, after checking only that the context and tensors are still open. The
     * tensors' contents may change between runs (whatever depends on contents, such as ids in
     * range, is checked by the native side on every call). Made by the {@code prepare...}
     * methods, which throw what the matching one-off method throws for bad arguments.
     */
    public static final class Call {
        @FunctionalInterface
        interface Downcall {
            int call(MemorySegment ctx);
        }

        private final Context ctx;
        private final Tensor[] tensors;
        private final PackedMatrix packed;
        private final Downcall body;

        private Call(Context ctx, Tensor[] tensors, PackedMatrix packed, Downcall body) {
            this.ctx = ctx;
            this.tensors = tensors;
            this.packed = packed;
            this.body = body;
        }

        /**
         * Runs the call.
         *
         * @throws IllegalStateException when the context, a tensor or the packed matrix was closed since
         * @throws PanatronException     when the native kernel fails (e.g. an id out of range)
         */
        public void run() {
            MemorySegment h = ctx.handle();
            for (Tensor t : tensors) if (t != null) t.checkOpen();
            if (packed != null) packed.handle();
            Native.check(body.call(h));
        }
    }

    /** A prepared call over {@code tensors} (null entries allowed), for the other kernel classes of this package. */
    static Call call(Context ctx, Tensor[] tensors, Call.Downcall body) {
        return new Call(ctx, tensors, null, body);
    }

    /** {@link #add} prepared for repeated runs. */
    public static Call prepareAdd(Context ctx, Tensor a, Tensor b, Tensor out) {
        checkAdd(ctx, a, b, out);
        MemorySegment ad = a.descriptor(), bd = b.descriptor(), od = out.descriptor();
        return new Call(ctx, new Tensor[] {a, b, out}, null, h -> panatron_h.pt_add(h, ad, bd, od));
    }

    /** {@link #unary} prepared for repeated runs. */
    public static Call prepareUnary(Context ctx, Unary op, Tensor x, Tensor out) {
        checkUnary(ctx, op, x, out);
        MemorySegment xd = x.descriptor(), od = out.descriptor();
        int code = op.ordinal();
        return new Call(ctx, new Tensor[] {x, out}, null, h -> panatron_h.pt_unary(h, code, xd, od));
    }

    /** {@link #softmax} prepared for repeated runs. */
    public static Call prepareSoftmax(Context ctx, Tensor x, float scale, Tensor out) {
        checkSoftmax(ctx, x, scale, out);
        MemorySegment xd = x.descriptor(), od = out.descriptor();
        return new Call(ctx, new Tensor[] {x, out}, null, h -> panatron_h.pt_softmax(h, xd, scale, od));
    }

    /** {@link #layerNorm} prepared for repeated runs. */
    public static Call prepareLayerNorm(Context ctx, Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        checkNorm("layerNorm", ctx, x, null, gamma, beta, eps, out, null);
        MemorySegment xd = x.descriptor(), gd = gamma.descriptor(), bd = descOrNull(beta), od = out.descriptor();
        return new Call(ctx, new Tensor[] {x, gamma, beta, out}, null, h -> panatron_h.pt_layer_norm(h, xd, gd, bd, eps, od));
    }

    /** {@link #addLayerNorm} prepared for repeated runs. */
    public static Call prepareAddLayerNorm(Context ctx, Tensor x, Tensor residual, Tensor gamma, Tensor beta, float eps, Tensor out, Tensor sumOut) {
        Objects.requireNonNull(residual, "residual");
        checkNorm("addLayerNorm", ctx, x, residual, gamma, beta, eps, out, sumOut);
        MemorySegment xd = x.descriptor(), rd = residual.descriptor(), gd = gamma.descriptor(), bd = descOrNull(beta), od = out.descriptor(),
                sd = descOrNull(sumOut);
        return new Call(ctx, new Tensor[] {x, residual, gamma, beta, out, sumOut}, null,
                h -> panatron_h.pt_add_layer_norm(h, xd, rd, gd, bd, eps, od, sd));
    }

    /**
     * {@link #embedding} prepared for repeated runs; the ids are checked on every run by the
     * native side (an id out of range is a {@link PanatronException} naming its position, and
     * nothing is written).
     */
    public static Call prepareEmbedding(Context ctx, Tensor table, Tensor ids, Tensor out) {
        checkEmbedding(ctx, table, ids, out, false);
        MemorySegment td = table.descriptor(), id = ids.descriptor(), od = out.descriptor();
        return new Call(ctx, new Tensor[] {table, ids, out}, null, h -> panatron_h.pt_embedding(h, td, id, od));
    }

    /**
     * {@link #matmul(Context, Tensor, Tensor, Tensor, Tensor, MatmulOptions)} prepared for
     * repeated runs (a decoder step's dense linear layers).
     *
     * @throws IllegalArgumentException as {@link #matmul(Context, Tensor, Tensor, Tensor, Tensor, MatmulOptions)}
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static Call prepareMatmul(Context ctx, Tensor a, Tensor b, Tensor bias, Tensor c, MatmulOptions opts) {
        if (checkMatmul(ctx, a, b, bias, c, opts)) return new Call(ctx, new Tensor[] {a, b, c}, null, h -> 0);   // empty: nothing to compute
        MemorySegment ad = a.descriptor(), bd = b.descriptor(), biasd = bias == null ? MemorySegment.NULL : bias.descriptor(), cd = c.descriptor(),
                pd = matmulParams(opts);
        return new Call(ctx, new Tensor[] {a, b, bias, c}, null, h -> panatron_h.pt_matmul(h, ad, bd, biasd, cd, pd));
    }

    /** {@link #matmul(Context, Tensor, PackedMatrix, Tensor, Tensor, MatmulOptions)} prepared for repeated runs. */
    public static Call prepareMatmul(Context ctx, Tensor a, PackedMatrix b, Tensor bias, Tensor c, MatmulOptions opts) {
        if (checkPackedMatmul(ctx, a, b, bias, c, opts)) return new Call(ctx, new Tensor[] {a, c}, b, h -> 0);   // empty: nothing to compute
        MemorySegment ad = a.descriptor(), bh = b.handle(), bd = bias == null ? MemorySegment.NULL : bias.descriptor(), cd = c.descriptor(),
                pd = matmulParams(opts);
        return new Call(ctx, new Tensor[] {a, bias, c}, b, h -> panatron_h.pt_matmul_packed(h, ad, bh, bd, cd, pd));
    }

    /**
     * {@link #kvCacheAppend} prepared for repeated runs (a decoder step's append); the start
     * values are checked on every run by the native side (a start out of range is a
     * {@link PanatronException}, and nothing is written).
     *
     * @throws IllegalArgumentException as {@link #kvCacheAppend}, for everything but the start values
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static Call prepareKvCacheAppend(Context ctx, Tensor kNew, Tensor vNew, Tensor start, Tensor kCache, Tensor vCache, KvCache.Rope rope) {
        checkKvCacheAppend(ctx, kNew, vNew, start, kCache, vCache, rope, false);
        MemorySegment rp = MemorySegment.NULL;
        if (rope != null) {
            Arena arena = Arena.ofAuto();
            rp = dev.panatron.ffm.pt_rope_params.allocate(arena);
            MemorySegment inv = MemorySegment.NULL;
            if (rope.invFreq() != null) {
                inv = arena.allocate(4L * rope.invFreq().length, 64);
                MemorySegment.copy(rope.invFreq(), 0, inv, java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, rope.invFreq().length);
            }
            ropeParams(rp, rope, inv);
        }
        MemorySegment kn = kNew == null ? MemorySegment.NULL : kNew.descriptor(), vn = vNew == null ? MemorySegment.NULL : vNew.descriptor(),
                sd = start.descriptor(), kc = kCache == null ? MemorySegment.NULL : kCache.descriptor(),
                vc = vCache == null ? MemorySegment.NULL : vCache.descriptor(), r = rp;
        return new Call(ctx, new Tensor[] {kNew, vNew, start, kCache, vCache}, null, h -> panatron_h.pt_kv_cache_append(h, kn, vn, sd, kc, vc, r));
    }

    /**
     * {@link #flashAttentionDecode} prepared for repeated runs (a decoder step's attention); the
     * kvLens values are checked on every run by the native side (a length out of range is a
     * {@link PanatronException}).
     *
     * @throws IllegalArgumentException as {@link #flashAttentionDecode}, for everything but the kvLens values
     * @throws IllegalStateException    when any tensor or the context is closed
     */
    public static Call prepareFlashAttentionDecode(Context ctx, Tensor q, Tensor kCache, Tensor vCache, Tensor kvLens, Tensor out,
                                                   AttentionOptions opts) {
        checkFlashDecode(ctx, q, kCache, vCache, kvLens, out, opts, false);
        MemorySegment p = dev.panatron.ffm.pt_flash_decode_params.allocate(Arena.ofAuto());
        decodeParams(p, q, kCache, vCache, kvLens, out, opts);
        return new Call(ctx, new Tensor[] {q, kCache, vCache, kvLens, out, opts.lse()}, null, h -> panatron_h.pt_flash_attn_decode(h, p));
    }

    // ================================================================ validation helpers

    static void requireOpen(Context ctx, Tensor... ts) {
        Objects.requireNonNull(ctx, "context");
        ctx.handle();
        for (Tensor t : ts) {
            Objects.requireNonNull(t, "tensor");
            t.checkOpen();
        }
    }

    /** {@link #requireOpen(Context, Tensor...)} for one tensor (no varargs array: hot paths). */
    static void requireOpen1(Context ctx, Tensor t) {
        Objects.requireNonNull(ctx, "context");
        ctx.handle();
        Objects.requireNonNull(t, "tensor");
        t.checkOpen();
    }

    /** {@link #requireDtype} for F32 or BF16 (no varargs array: hot paths). */
    static void requireF32OrBf16(String what, Tensor t) {
        if (t.dtype() != DType.F32 && t.dtype() != DType.BF16) requireDtype(what, t, DType.F32, DType.BF16);
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
