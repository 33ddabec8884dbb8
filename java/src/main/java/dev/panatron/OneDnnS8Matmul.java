package dev.panatron;

import dev.panatron.ffm.panatron_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Plain oneDNN s8 matmul ({@code pt_s8_matmul_*}): the BASELINE the int8 benchmarks
 * ({@code panatron bench kernels}, the JMH benchmarks) compare our int8 and block-sparse kernels
 * against, not a kernel of ours. {@code y[i, n] = xScale * wScale[n] * Σ_k x[i, k] wq[n, k] + bias[n]}
 * with x already quantized to i8 (no outlier handling), the weight reordered once into
 * oneDNN's layout for {@code m} rows. Needs a context that uses oneDNN and a library built with
 * it. Not thread-safe: one {@link #run} at a time. {@link #close()} frees it (twice is harmless).
 */
public final class OneDnnS8Matmul implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final MemorySegment handle;
    private final long m, n, k;
    private volatile boolean closed;

    private OneDnnS8Matmul(MemorySegment raw, long m, long n, long k) {
        this.handle = raw.reinterpret(arena, h -> panatron_h.pt_s8_matmul_destroy(h));
        this.m = m;
        this.n = n;
        this.k = k;
    }

    /**
     * Plans the matmul for {@code m} rows and copies the weight into oneDNN's layout.
     *
     * @param m      rows per {@link #run}, >= 1
     * @param wq     [N, K] i8, contiguous ({@link QuantKernels#quantizeInt8Weight})
     * @param wScale [N] f32
     * @throws IllegalArgumentException on a shape or dtype mismatch or m < 1
     * @throws IllegalStateException    when a tensor or the context is closed
     * @throws PanatronException        UNSUPPORTED without oneDNN (library or context), or a oneDNN failure
     */
    public static OneDnnS8Matmul create(Context ctx, long m, Tensor wq, Tensor wScale) {
        Kernels.requireOpen(ctx, wq, wScale);
        Kernels.requireDtype("OneDnnS8Matmul wq", wq, DType.I8);
        Kernels.requireDtype("OneDnnS8Matmul wScale", wScale, DType.F32);
        if (m < 1) throw new IllegalArgumentException("OneDnnS8Matmul: m must be >= 1, got " + m);
        if (wq.ndim() != 2 || !wq.isContiguous()) throw Kernels.shape("OneDnnS8Matmul: wq must be a contiguous 2-D [N, K] i8, got " + wq);
        if (wScale.ndim() != 1 || wScale.dim(0) != wq.dim(0)) throw Kernels.shape("OneDnnS8Matmul: wScale must be [" + wq.dim(0) + "] for wq " + wq + ", got " + wScale);
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment out = tmp.allocate(ValueLayout.ADDRESS);
            Native.check(panatron_h.pt_s8_matmul_create(ctx.handle(), m, wq.descriptor(), wScale.descriptor(), out));
            return new OneDnnS8Matmul(out.get(ValueLayout.ADDRESS, 0), m, wq.dim(0), wq.dim(1));
        }
    }

    /**
     * {@code y = xScale * (x @ wqᵀ) * wScale + bias}.
     *
     * @param x      [m, K] i8, contiguous
     * @param xScale finite
     * @param bias   [N] f32, or null
     * @param y      [m, N] f32, contiguous
     * @throws IllegalArgumentException on a shape or dtype mismatch or a non-finite xScale
     * @throws IllegalStateException    when this, a tensor or the context is closed
     * @throws PanatronException        when oneDNN fails
     */
    public void run(Context ctx, Tensor x, float xScale, Tensor bias, Tensor y) {
        if (closed) throw new IllegalStateException("OneDnnS8Matmul is closed");
        Kernels.requireOpen(ctx, x, y);
        if (bias != null) bias.checkOpen();
        Kernels.requireDtype("OneDnnS8Matmul x", x, DType.I8);
        Kernels.requireDtype("OneDnnS8Matmul y", y, DType.F32);
        if (x.ndim() != 2 || x.dim(0) != m || x.dim(1) != k || !x.isContiguous()) throw Kernels.shape("OneDnnS8Matmul: x must be a contiguous [" + m + ", " + k + "] i8, got " + x);
        if (y.ndim() != 2 || y.dim(0) != m || y.dim(1) != n || !y.isContiguous()) throw Kernels.shape("OneDnnS8Matmul: y must be a contiguous [" + m + ", " + n + "] f32, got " + y);
        if (bias != null) {
            Kernels.requireDtype("OneDnnS8Matmul bias", bias, DType.F32);
            if (bias.ndim() != 1 || bias.dim(0) != n) throw Kernels.shape("OneDnnS8Matmul: bias must be [" + n + "], got " + bias);
        }
        if (!Float.isFinite(xScale)) throw new IllegalArgumentException("OneDnnS8Matmul: xScale must be finite, got " + xScale);
        Kernels.requireWritable("OneDnnS8Matmul y", y);
        Native.check(panatron_h.pt_s8_matmul_run(ctx.handle(), handle, x.descriptor(), xScale, bias == null ? MemorySegment.NULL : bias.descriptor(),
                y.descriptor()));
    }

    /** Rows per run. */
    public long m() { return m; }

    /** Output channels. */
    public long n() { return n; }

    /** Reduction length. */
    public long k() { return k; }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) return;
            closed = true;
        }
        arena.close();
    }

    @Override
    public String toString() { return "oneDNN s8 matmul [" + m + ", " + k + "] x [" + k + ", " + n + "]"; }
}
