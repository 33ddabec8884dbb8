package dev.panatron;

import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_bsr_info;
import dev.panatron.ffm.pt_bsr_params;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

import static dev.panatron.Kernels.requireDtype;
import static dev.panatron.Kernels.requireOpen;
import static dev.panatron.Kernels.shape;

/**
 * Block-sparse linear layers (issue 5, after Intel's sparse inference accelerator): a weight
 * pruned by block magnitude and stored in BSR form, multiplied by an SpMM kernel with a fused
 * bias + activation epilogue.
 *
 * <p>Orientation follows {@link Kernels#matmul}: {@code y[M, N] = x[M, K] · W} with W
 * logically {@code [K, N]}; a dense weight is given as {@code [K, N]}, or as {@code [N, K]}
 * (PyTorch Linear layout) with {@code transB = true}. A block is {@code blockK} consecutive
 * reduction indices times {@code blockN} consecutive output channels (both 1..64); the block grid
 * is {@code KB x NB = ceil(K / blockK) x ceil(N / blockN)}, edge blocks partial. Shapes with
 * fast kernels: 4x1 (VNNI's 4-way int8 dot), 1x4, 16x1, 64x16 (an AMX int8 tile) and 32x16 (an
 * AMX bf16 tile).
 *
 * <p>Pruning ranks blocks by their L2 norm. Per layer: {@link #prune}; across layers (global
 * threshold): {@link #blockNorms} of every layer, {@link #globalThreshold}, then
 * {@link #fromThreshold} per layer (or {@link #fromMask} with any mask).
 */
public final class BlockSparse {
    private BlockSparse() {}

    private static final int SELECT_SPARSITY = 0, SELECT_THRESHOLD = 1, SELECT_MASK = 2;

    /**
     * A BSR weight: one native buffer owned by this object ({@link #close()} frees it; twice is
     * harmless). Immutable; usable from several threads at once.
     */
    public static final class Weight implements AutoCloseable {
        private final Arena arena;
        private final MemorySegment data;
        private final long k, n, kept, total, bytes, valueBytes;
        private final int blockK, blockN;
        private final DType dtype;
        private volatile boolean closed;

        private Weight(Arena arena, MemorySegment data) {
            this.arena = arena;
            this.data = data;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment info = pt_bsr_info.allocate(a);
                Native.check(panatron_h.pt_bsr_info_get(data, data.byteSize(), info));
                k = pt_bsr_info.k(info);
                n = pt_bsr_info.n(info);
                blockK = pt_bsr_info.block_k(info);
                blockN = pt_bsr_info.block_n(info);
                dtype = DType.of(pt_bsr_info.dtype(info));
                kept = pt_bsr_info.kept_blocks(info);
                total = pt_bsr_info.total_blocks(info);
                bytes = pt_bsr_info.bytes(info);
                valueBytes = pt_bsr_info.value_bytes(info);
            }
        }

        /** K (rows of the logical W). */
        public long k() { return k; }

        /** N (output channels). */
        public long n() { return n; }

        /** Block extent along K. */
        public int blockK() { return blockK; }

        /** Block extent along N. */
        public int blockN() { return blockN; }

        /** Stored value type: F32, BF16 or I8 (per-output-channel scales). */
        public DType dtype() { return dtype; }

        /** Blocks kept. */
        public long keptBlocks() { return kept; }

        /** Blocks of the grid (KB * NB). */
        public long totalBlocks() { return total; }

        /** Fraction of blocks pruned (0 for an empty weight). */
        public double sparsity() { return total == 0 ? 0.0 : 1.0 - (double) kept / total; }

        /** Bytes of the whole BSR buffer (header, indices, values, scales). */
        public long bytes() { return bytes; }

        /** Bytes of the stored values (and int8 scales) alone. */
        public long valueBytes() { return valueBytes; }

        /** Bytes of the same weight dense in f32 ({@code K * N * 4}): the "before" of a size report. */
        public long denseBytes() { return k * n * 4; }

        /** Bytes of the same weight dense in {@code dt} (U4: two per byte). */
        public long denseBytes(DType dt) { return Objects.requireNonNull(dt, "dt").bytesFor(k * n); }

        /** The native buffer (valid while open). */
        MemorySegment segment() {
            if (closed) throw new IllegalStateException("BlockSparse.Weight is closed");
            return data;
        }

        /**
         * A copy of the BSR buffer: position independent, so it can be saved as is and reloaded
         * with {@link BlockSparse#load(MemorySegment)}.
         *
         * @throws IllegalStateException when this weight is closed
         */
        public byte[] toByteArray() {
            MemorySegment seg = segment();
            if (bytes > Integer.MAX_VALUE - 8) throw new IllegalStateException("BSR buffer of " + bytes + " bytes does not fit a byte[]");
            return seg.toArray(ValueLayout.JAVA_BYTE);
        }

        /** Whether {@link #close()} has not been called. */
        public boolean isOpen() { return !closed; }

        /**
         * The values the SpMM uses, densified: {@code [K, N]} f32 (int8: q * scale), zeros where
         * pruned. For tests and reports.
         *
         * @throws IllegalStateException when this weight or the context is closed
         */
        public Tensor toDense(Context ctx) {
            Objects.requireNonNull(ctx, "context");
            MemorySegment seg = segment();
            Tensor out = Tensor.allocate(DType.F32, k, n);
            Native.check(panatron_h.pt_bsr_to_dense(ctx.handle(), seg, bytes, out.descriptor()));
            return out;
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
        public String toString() {
            return "bsr " + dtype.name().toLowerCase() + "[" + k + ", " + n + "] blocks " + blockK + "x" + blockN + ", "
                    + kept + "/" + total + " kept (sparsity " + String.format("%.3f", sparsity()) + "), " + bytes + " bytes";
        }
    }

    // ================================================================ pruning

    /**
     * Per-layer magnitude block pruning of a {@code [K, N]} weight: prunes
     * {@code round(sparsity * KB * NB)} blocks, those of smallest L2 norm (ties: the larger
     * block index {@code kb * NB + nb} first), and keeps the rest with the weight's own dtype
     * (F32 or BF16). See {@link #prune(Context, Tensor, boolean, int, int, double, DType)}.
     *
     * @throws IllegalArgumentException on a bad weight, block or sparsity
     * @throws IllegalStateException    when the weight or the context is closed
     * @throws PanatronException        when the native call fails (e.g. a non-finite weight)
     */
    public static Weight prune(Context ctx, Tensor weight, int blockK, int blockN, double sparsity) {
        Objects.requireNonNull(weight, "weight");
        return prune(ctx, weight, false, blockK, blockN, sparsity, weight.dtype());
    }

    /**
     * Per-layer magnitude block pruning to {@code sparsity} (fraction of blocks pruned).
     *
     * @param weight   [K, N] (or [N, K] when {@code transB}), F32 or BF16, innermost contiguous
     * @param transB   whether weight is in PyTorch Linear layout [N, K]
     * @param blockK   block extent along K, 1..64
     * @param blockN   block extent along N, 1..64
     * @param sparsity in [0, 1]
     * @param dtype    stored values: F32, BF16 (round to nearest even) or I8 (per-output-channel
     *                 absmax of the kept elements)
     * @throws IllegalArgumentException on a bad weight, block, sparsity or dtype
     * @throws IllegalStateException    when the weight or the context is closed
     * @throws PanatronException        when the native call fails (e.g. a non-finite weight)
     */
    public static Weight prune(Context ctx, Tensor weight, boolean transB, int blockK, int blockN, double sparsity, DType dtype) {
        if (!(sparsity >= 0.0 && sparsity <= 1.0)) throw new IllegalArgumentException("BlockSparse.prune: sparsity must be in [0, 1], got " + sparsity);
        return convert("prune", ctx, weight, transB, blockK, blockN, dtype, SELECT_SPARSITY, sparsity, 0.0, null);
    }

    /**
     * Keeps the blocks whose L2 norm is {@code >= threshold} (global pruning: choose the
     * threshold over the {@link #blockNorms} of every layer, e.g. with {@link #globalThreshold}).
     *
     * @param threshold >= 0 (0 keeps every block)
     * @throws IllegalArgumentException on a bad weight, block, threshold or dtype
     * @throws IllegalStateException    when the weight or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static Weight fromThreshold(Context ctx, Tensor weight, boolean transB, int blockK, int blockN, double threshold, DType dtype) {
        if (!(threshold >= 0.0) || Double.isInfinite(threshold)) {
            throw new IllegalArgumentException("BlockSparse.fromThreshold: threshold must be a finite value >= 0, got " + threshold);
        }
        return convert("fromThreshold", ctx, weight, transB, blockK, blockN, dtype, SELECT_THRESHOLD, 0.0, threshold, null);
    }

    /**
     * Keeps exactly the blocks whose {@code keep[kb * NB + nb]} is true.
     *
     * @param keep KB * NB flags, row-major over the block grid
     * @throws IllegalArgumentException on a bad weight, block, mask length or dtype
     * @throws IllegalStateException    when the weight or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static Weight fromMask(Context ctx, Tensor weight, boolean transB, int blockK, int blockN, boolean[] keep, DType dtype) {
        Objects.requireNonNull(keep, "keep");
        checkWeight("fromMask", ctx, weight, transB, blockK, blockN);
        long kb = grid(kOf(weight, transB), blockK), nb = grid(nOf(weight, transB), blockN);
        if (keep.length != kb * nb) {
            throw shape("BlockSparse.fromMask: keep has " + keep.length + " flags, the block grid of " + weight + (transB ? " (transB)" : "")
                    + " with " + blockK + "x" + blockN + " blocks has " + kb + " x " + nb + " = " + kb * nb);
        }
        return convert("fromMask", ctx, weight, transB, blockK, blockN, dtype, SELECT_MASK, 0.0, 0.0, keep);
    }

    /**
     * L2 norms of the blocks of a {@code [K, N]} weight (or {@code [N, K]} with {@code transB}),
     * row-major over the {@code KB x NB} grid: for a global pruning threshold across layers.
     *
     * @throws IllegalArgumentException on a bad weight or block
     * @throws IllegalStateException    when the weight or the context is closed
     * @throws PanatronException        when the native call fails (e.g. a non-finite weight)
     */
    public static float[] blockNorms(Context ctx, Tensor weight, boolean transB, int blockK, int blockN) {
        checkWeight("blockNorms", ctx, weight, transB, blockK, blockN);
        long kb = grid(kOf(weight, transB), blockK), nb = grid(nOf(weight, transB), blockN);
        if (kb * nb > Integer.MAX_VALUE - 8) throw shape("BlockSparse.blockNorms: " + kb * nb + " blocks do not fit a float[]");
        if (kb * nb == 0) return new float[0];
        try (Arena a = Arena.ofConfined()) {
            Tensor norms = Tensor.allocate(a, DType.F32, kb, nb);
            Native.check(panatron_h.pt_bsr_block_norms(ctx.handle(), weight.descriptor(), transB ? 1 : 0, blockK, blockN, norms.descriptor()));
            return norms.toFloatArray();
        }
    }

    /** {@link #blockNorms(Context, Tensor, boolean, int, int)} of a {@code [K, N]} weight. */
    public static float[] blockNorms(Context ctx, Tensor weight, int blockK, int blockN) {
        return blockNorms(ctx, weight, false, blockK, blockN);
    }

    /**
     * The global threshold that prunes {@code round(sparsity * total)} of all the blocks of
     * several layers (their {@link #blockNorms}): keeping {@code norm >= threshold} in every layer
     * ({@link #fromThreshold}) then prunes that many, up to ties at the threshold (which are kept).
     * Returns 0 (keep all) for sparsity 0, and +inf-free: for sparsity 1 the largest norm's
     * successor ({@link Math#nextUp(float)}), so nothing is kept.
     *
     * @throws IllegalArgumentException when sparsity is outside [0, 1]
     */
    public static double globalThreshold(float[][] norms, double sparsity) {
        Objects.requireNonNull(norms, "norms");
        if (!(sparsity >= 0.0 && sparsity <= 1.0)) throw new IllegalArgumentException("BlockSparse.globalThreshold: sparsity must be in [0, 1], got " + sparsity);
        int total = 0;
        for (float[] a : norms) total += Objects.requireNonNull(a, "norms[i]").length;
        float[] all = new float[total];
        int o = 0;
        for (float[] a : norms) {
            System.arraycopy(a, 0, all, o, a.length);
            o += a.length;
        }
        Arrays.sort(all);
        long prune = Math.round(sparsity * total);
        if (prune <= 0 || total == 0) return 0.0;
        if (prune >= total) return Math.nextUp(all[total - 1]);
        return all[(int) prune]; /* the smallest kept norm */
    }

    private static Weight convert(String op, Context ctx, Tensor weight, boolean transB, int blockK, int blockN, DType dtype, int select,
                                  double sparsity, double threshold, boolean[] keep) {
        Objects.requireNonNull(dtype, "dtype");
        checkWeight(op, ctx, weight, transB, blockK, blockN);
        if (dtype != DType.F32 && dtype != DType.BF16 && dtype != DType.I8) {
            throw new IllegalArgumentException("BlockSparse." + op + ": stored dtype must be F32, BF16 or I8, got " + dtype);
        }
        long kb = grid(kOf(weight, transB), blockK), nb = grid(nOf(weight, transB), blockN);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = pt_bsr_params.allocate(a);
            pt_bsr_params.block_k(p, blockK);
            pt_bsr_params.block_n(p, blockN);
            pt_bsr_params.dtype(p, dtype.code());
            pt_bsr_params.select(p, select);
            pt_bsr_params.trans_b(p, transB ? 1 : 0);
            pt_bsr_params.sparsity(p, sparsity);
            pt_bsr_params.threshold(p, threshold);
            pt_bsr_params.mask(p, MemorySegment.NULL);
            if (keep != null) {
                Tensor mask = Tensor.allocate(a, DType.U8, kb, nb);
                MemorySegment ms = mask.segment();
                for (int i = 0; i < keep.length; i++) ms.set(ValueLayout.JAVA_BYTE, i, keep[i] ? (byte) 1 : (byte) 0);
                pt_bsr_params.mask(p, mask.descriptor());
            }
            MemorySegment bytes = a.allocate(ValueLayout.JAVA_LONG);
            MemorySegment desc = weight.descriptor();
            Native.check(panatron_h.pt_bsr_from_dense(ctx.handle(), desc, p, MemorySegment.NULL, 0L, bytes));
            long need = bytes.get(ValueLayout.JAVA_LONG, 0);
            Arena owner = Arena.ofShared();
            try {
                MemorySegment data = owner.allocate(need, 64);
                Native.check(panatron_h.pt_bsr_from_dense(ctx.handle(), desc, p, data, need, bytes));
                return new Weight(owner, data);
            } catch (RuntimeException | Error e) {
                owner.close();
                throw e;
            }
        }
    }

    /**
     * Loads a BSR weight saved with {@link Weight#toByteArray()} (copied into memory the result
     * owns). The buffer is validated natively (header, sizes, block indices, int8 scales) before
     * it can reach a kernel.
     *
     * @param bytes the saved buffer (heap or native)
     * @throws IllegalArgumentException when the buffer is empty or too large
     * @throws PanatronException        when it is not a valid BSR buffer of this library
     */
    public static Weight load(MemorySegment bytes) {
        Objects.requireNonNull(bytes, "bytes");
        if (bytes.byteSize() == 0) throw new IllegalArgumentException("BlockSparse.load: empty buffer");
        Arena owner = Arena.ofShared();
        try {
            MemorySegment data = owner.allocate(bytes.byteSize(), 64);
            data.copyFrom(bytes);
            return new Weight(owner, data); // validates through pt_bsr_info_get
        } catch (RuntimeException | Error e) {
            owner.close();
            throw e;
        }
    }

    /** {@link #load(MemorySegment)} of a byte array. */
    public static Weight load(byte[] bytes) {
        Objects.requireNonNull(bytes, "bytes");
        return load(MemorySegment.ofArray(bytes));
    }

    // ================================================================ SpMM

    /**
     * {@code y = act(x · W + bias)} with a BSR weight (the fused epilogue of
     * {@link Kernels#matmul}). f32/bf16 weights: f32 products and sums. int8 weights: W8A8, x
     * quantized per row (absmax) on the fly, exact integer sums, dequantized by the row and
     * channel scales; a non-finite x value makes its output row NaN.
     *
     * @param x    [..., K] F32 or BF16 (rank 1..4), innermost contiguous
     * @param w    the BSR weight (open)
     * @param bias [N] F32, or null
     * @param act  the activation applied after the bias (NONE for none)
     * @param y    [..., N] F32 or BF16 with x's outer dims, innermost contiguous; must not overlap x or bias
     * @throws IllegalArgumentException on a shape or dtype mismatch, a strided innermost dim,
     *         overlapping outputs, or a read-only y
     * @throws IllegalStateException    when a tensor, the weight or the context is closed
     * @throws PanatronException        when the native call fails
     */
    public static void matmul(Context ctx, Tensor x, Weight w, Tensor bias, Kernels.Activation act, Tensor y) {
        Objects.requireNonNull(w, "w");
        Objects.requireNonNull(act, "act");
        requireOpen(ctx, x, y);
        if (bias != null) bias.checkOpen();
        MemorySegment seg = w.segment();
        requireDtype("BlockSparse.matmul x", x, DType.F32, DType.BF16);
        requireDtype("BlockSparse.matmul y", y, DType.F32, DType.BF16);
        if (x.ndim() < 1 || x.ndim() > 4) throw shape("BlockSparse.matmul: x must have rank 1..4, got " + x);
        if (x.dim(-1) != w.k()) throw shape("BlockSparse.matmul: x " + x + " has K=" + x.dim(-1) + " but the weight is " + w);
        boolean same = y.ndim() == x.ndim() && y.dim(-1) == w.n();
        for (int i = 0; same && i < x.ndim() - 1; i++) same = x.dim(i) == y.dim(i);
        if (!same) throw shape("BlockSparse.matmul: y " + y + " must have x's outer dims and N=" + w.n() + " last (x " + x + ")");
        if (bias != null) {
            requireDtype("BlockSparse.matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != w.n()) throw shape("BlockSparse.matmul: bias must be [" + w.n() + "], got " + bias);
        }
        innerContiguous("BlockSparse.matmul", x, y);
        if (bias != null) innerContiguous("BlockSparse.matmul", bias);
        Kernels.requireNoSelfOverlap("BlockSparse.matmul y", y);
        Kernels.requireWritable("BlockSparse.matmul y", y);
        for (Tensor in : new Tensor[] {x, bias}) {
            if (in != null && y.numel() > 0 && in.numel() > 0 && y.segment().asOverlappingSlice(in.segment()).isPresent()) {
                throw new IllegalArgumentException("BlockSparse.matmul: output y " + y + " overlaps input " + in);
            }
        }
        if (y.numel() == 0) return;
        Native.check(panatron_h.pt_spmm_bsr(ctx.handle(), x.descriptor(), seg, w.bytes(), bias == null ? MemorySegment.NULL : bias.descriptor(),
                y.descriptor(), act.ordinal()));
    }

    // ================================================================ helpers

    private static long kOf(Tensor w, boolean transB) { return transB ? w.dim(1) : w.dim(0); }

    private static long nOf(Tensor w, boolean transB) { return transB ? w.dim(0) : w.dim(1); }

    private static long grid(long extent, int block) { return (extent + block - 1) / block; }

    private static void checkWeight(String op, Context ctx, Tensor weight, boolean transB, int blockK, int blockN) {
        requireOpen(ctx, weight);
        requireDtype("BlockSparse." + op + " weight", weight, DType.F32, DType.BF16);
        if (weight.ndim() != 2) throw shape("BlockSparse." + op + ": weight must be 2-D ([K, N], or [N, K] with transB), got " + weight);
        if (blockK < 1 || blockK > 64 || blockN < 1 || blockN > 64) {
            throw new IllegalArgumentException("BlockSparse." + op + ": block must be blockK x blockN with both in 1..64, got " + blockK + "x" + blockN);
        }
        innerContiguous("BlockSparse." + op, weight);
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
