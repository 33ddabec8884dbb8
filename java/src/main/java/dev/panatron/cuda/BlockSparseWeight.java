package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.ffm.panatron_h;

import java.lang.foreign.MemorySegment;

/**
 * A Linear weight [N, K] in block-sparse form ({@code pt_cuda_bsr}): its non-zero 64 x 64 blocks,
 * made by {@link CudaContext#blockSparse}; multiply with {@link CudaContext#blockSparseMatmul}
 * (our own tensor-core kernel, all-zero blocks skipped). The blocks live in device memory outside
 * the context's cache: {@link #close()} frees them (closing the context closes it too).
 */
public final class BlockSparseWeight implements AutoCloseable {
    /** Block edge (rows and columns of the weight). */
    public static final int BLOCK = 64;

    private final CudaContext ctx;
    private final MemorySegment handle;
    private final DType dtype;
    private final long rows, cols, nonZeroBlocks, totalBlocks;
    private volatile boolean closed;

    BlockSparseWeight(CudaContext ctx, MemorySegment handle, DType dtype, long rows, long cols, long nonZeroBlocks, long totalBlocks) {
        this.ctx = ctx;
        this.handle = handle;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.nonZeroBlocks = nonZeroBlocks;
        this.totalBlocks = totalBlocks;
    }

    /** The context that made this weight. */
    public CudaContext context() { return ctx; }

    /** BF16 or F16. */
    public DType dtype() { return dtype; }

    /** N (output features). */
    public long rows() { return rows; }

    /** K (input features). */
    public long cols() { return cols; }

    /** Stored (non-zero) 64 x 64 blocks. */
    public long nonZeroBlocks() { return nonZeroBlocks; }

    /** All 64 x 64 blocks of the zero-padded weight: ceil(N/64) * ceil(K/64). */
    public long totalBlocks() { return totalBlocks; }

    /** True until {@link #close()}. */
    public boolean isOpen() { return !closed && ctx.isOpen(); }

    MemorySegment handle() {
        if (closed) throw new IllegalStateException("BlockSparseWeight is closed");
        ctx.handle();
        return handle;
    }

    /** Waits for the context's stream and frees the device memory. Idempotent. */
    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        ctx.release(this, () -> panatron_h.pt_cuda_bsr_destroy(ctx.rawHandle(), handle));
    }

    @Override
    public String toString() {
        return "BlockSparseWeight[" + dtype + " [" + rows + ", " + cols + "] " + nonZeroBlocks + "/" + totalBlocks + " blocks"
                + (closed ? " closed" : "") + "]";
    }
}
