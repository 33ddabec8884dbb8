package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.ffm.panatron_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A Linear weight [N, K] pruned to 2:4 structured sparsity and compressed for cuSPARSELt
 * ({@code pt_cuda_sparse24}), made by {@link CudaContext#sparse24}; multiply with
 * {@link CudaContext#sparse24Matmul}. It owns the pruned weight (for the dense fallback), its
 * compressed form and the cached matmul plans, in device memory outside the context's cache:
 * {@link #close()} frees them (closing the context closes it too).
 */
public final class Sparse24Weight implements AutoCloseable {
    /** Which kernel {@link CudaContext#sparse24Matmul} runs. */
    public enum Path {
        /** Dense fallback for M <= {@link #denseMaxM()} (and shapes cuSPARSELt has no plan for), else cuSPARSELt. */
        AUTO,
        /** Always cuSPARSELt. */
        SPARSE,
        /** Always the dense cuBLASLt GEMM on the pruned weight. */
        DENSE
    }

    private final CudaContext ctx;
    private final MemorySegment handle;
    private final DType dtype;
    private final long rows, cols;
    private final int denseMaxM;
    private volatile boolean closed;

    Sparse24Weight(CudaContext ctx, MemorySegment handle, DType dtype, long rows, long cols, int denseMaxM) {
        this.ctx = ctx;
        this.handle = handle;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.denseMaxM = denseMaxM;
    }

    /** The context that made this weight. */
    public CudaContext context() { return ctx; }

    /** BF16 or F16. */
    public DType dtype() { return dtype; }

    /** N (output features). */
    public long rows() { return rows; }

    /** K (input features). */
    public long cols() { return cols; }

    /** Calls with at most this many rows take the dense fallback in {@link Path#AUTO}. */
    public int denseMaxM() { return denseMaxM; }

    /** True until {@link #close()}. */
    public boolean isOpen() { return !closed && ctx.isOpen(); }

    MemorySegment handle() {
        if (closed) throw new IllegalStateException("Sparse24Weight is closed");
        ctx.handle();
        return handle;
    }

    /**
     * The path {@link Path#AUTO} takes for {@code m} rows: SPARSE or DENSE.
     *
     * @throws IllegalArgumentException when m is negative
     * @throws IllegalStateException    when this weight or its context is closed
     */
    public Path autoPath(long m) {
        if (m < 0) throw new IllegalArgumentException("autoPath: m must be >= 0, got " + m);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.JAVA_INT);
            CudaLibrary.check(panatron_h.pt_cuda_sparse24_path(handle(), m, out));
            return out.get(ValueLayout.JAVA_INT, 0) == 1 ? Path.SPARSE : Path.DENSE;
        }
    }

    /**
     * Copies the pruned weight into {@code out}.
     *
     * @param out [N, K] of this weight's dtype on the same context, innermost contiguous
     * @throws IllegalArgumentException on a shape, dtype or context mismatch
     * @throws IllegalStateException    when this weight, out or the context is closed
     */
    public void copyPrunedTo(DeviceTensor out) {
        java.util.Objects.requireNonNull(out, "out");
        out.checkOpen();
        if (out.context() != ctx) throw new IllegalArgumentException("copyPrunedTo: " + out + " belongs to another CUDA context");
        if (out.dtype() != dtype || out.ndim() != 2 || out.dim(0) != rows || out.dim(1) != cols) {
            throw new IllegalArgumentException("copyPrunedTo: out " + out + " must be " + dtype + " [" + rows + ", " + cols + "]");
        }
        if (out.dim(1) > 1 && out.strides()[1] != dtype.byteSize()) {
            throw new IllegalArgumentException("copyPrunedTo: the innermost dim of " + out + " must be contiguous");
        }
        CudaLibrary.check(panatron_h.pt_cuda_sparse24_pruned(ctx.handle(), handle(), out.descriptor()));
    }

    /** Waits for the context's stream and frees the device memory. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        ctx.release(this, () -> panatron_h.pt_cuda_sparse24_destroy(ctx.rawHandle(), handle));
    }

    @Override
    public String toString() {
        return "Sparse24Weight[" + dtype + " [" + rows + ", " + cols + "] 2:4" + (closed ? " closed" : "") + "]";
    }
}
