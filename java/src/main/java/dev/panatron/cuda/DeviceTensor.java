package dev.panatron.cuda;

import dev.panatron.DType;
import dev.panatron.Tensor;
import dev.panatron.ffm.panatron_h;
import dev.panatron.ffm.pt_tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Objects;

/**
 * A strided view of device memory of one {@link CudaContext}: dtype, shape (row-major, outermost
 * first), byte strides and a device address.
 *
 * <p>Device memory is owned by the context, never by the garbage collector: a tensor made by
 * {@link CudaContext#allocate} holds a block of the context's caching allocator until
 * {@link #close()} returns it (closing twice is harmless), and closing the context frees every
 * block it handed out. Views ({@link #reshape}, {@link #slice}, {@link #transpose}) borrow their
 * base's memory; closing a view only marks it closed. Using a closed tensor, a view of a closed
 * tensor or a tensor of a closed context throws {@link IllegalStateException}.
 *
 * <p>Work is enqueued on the context's stream: copies to the host wait for it, other calls return
 * before the GPU has finished.
 */
public final class DeviceTensor implements AutoCloseable {
    private final CudaContext ctx;
    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final long address;
    private final DeviceTensor base;   // the owner for views, null for an owned block
    private volatile MemorySegment desc;
    private volatile boolean closed;

    DeviceTensor(CudaContext ctx, DType dtype, long[] shape, long[] strides, long address, DeviceTensor base) {
        this.ctx = ctx;
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
        this.address = address;
        this.base = base;
    }

    // ---------------------------------------------------------------- accessors

    /** The context whose memory this is. */
    public CudaContext context() { return ctx; }

    public DType dtype() { return dtype; }

    /** The shape, outermost first (a copy). */
    public long[] shape() { return shape.clone(); }

    /** Size of dim {@code i}; negative {@code i} counts from the end. */
    public long dim(int i) { return shape[i < 0 ? shape.length + i : i]; }

    /** Byte strides (a copy). */
    public long[] strides() { return strides.clone(); }

    public int ndim() { return shape.length; }

    public long numel() { return numel(shape); }

    /** The device address of element 0. */
    public long address() { return address; }

    /** True when the elements are dense in row-major order. */
    public boolean isContiguous() { return Arrays.equals(strides, contiguousStrides(dtype, shape)); }

    /** True while this tensor, its base and its context are open. */
    public boolean isOpen() { return !closed && (base == null || base.isOpen()) && ctx.isOpen(); }

    /** @throws IllegalStateException when closed (or its base or context is) */
    public void checkOpen() {
        if (closed) throw new IllegalStateException("device tensor is closed: " + this);
        if (base != null && !base.isOpen()) throw new IllegalStateException("the tensor this view borrows from is closed: " + this);
        if (!ctx.isOpen()) throw new IllegalStateException("the CUDA context of " + this + " is closed");
    }

    // ---------------------------------------------------------------- views

    /**
     * A view with another shape of the same elements (contiguous tensors only).
     *
     * @throws IllegalArgumentException when the element count differs or this is not contiguous
     */
    public DeviceTensor reshape(long... newShape) {
        checkOpen();
        long[] s = checkShape(dtype, newShape);
        if (numel(s) != numel()) {
            throw new IllegalArgumentException("reshape " + this + " to " + Arrays.toString(s) + ": element counts differ");
        }
        if (!isContiguous()) throw new IllegalArgumentException("reshape needs a contiguous tensor, got " + this);
        return new DeviceTensor(ctx, dtype, s, contiguousStrides(dtype, s), address, owner());
    }

    /**
     * The view of elements {@code start .. start+length-1} of dim {@code d}.
     *
     * @throws IllegalArgumentException for a dim or range out of bounds
     */
    public DeviceTensor slice(int d, long start, long length) {
        checkOpen();
        int dd = d < 0 ? shape.length + d : d;
        if (dd < 0 || dd >= shape.length) throw new IllegalArgumentException("slice: dim " + d + " out of range for " + this);
        if (start < 0 || length < 0 || start + length > shape[dd]) {
            throw new IllegalArgumentException("slice: [" + start + ", " + (start + length) + ") out of range of dim " + d + " of " + this);
        }
        long[] s = shape.clone();
        s[dd] = length;
        return new DeviceTensor(ctx, dtype, s, strides.clone(), address + start * strides[dd], owner());
    }

    /**
     * The view with dims {@code d0} and {@code d1} swapped (strides swapped, nothing moves): e.g. a
     * PyTorch-style [B, H, S, D] tensor as the [B, S, H, D] the attention kernels take.
     *
     * @throws IllegalArgumentException for a dim out of range or swapping the innermost dim
     */
    public DeviceTensor transpose(int d0, int d1) {
        checkOpen();
        int a = d0 < 0 ? shape.length + d0 : d0, b = d1 < 0 ? shape.length + d1 : d1;
        if (a < 0 || a >= shape.length || b < 0 || b >= shape.length) {
            throw new IllegalArgumentException("transpose(" + d0 + ", " + d1 + ") out of range for " + this);
        }
        long[] s = shape.clone(), st = strides.clone();
        s[a] = shape[b];
        s[b] = shape[a];
        st[a] = strides[b];
        st[b] = strides[a];
        return new DeviceTensor(ctx, dtype, s, st, address, owner());
    }

    /**
     * The view of index {@code index} of dim {@code d}, that dim removed (e.g. q, k and v out of a
     * packed [T, 3, H, D] projection).
     *
     * @throws IllegalArgumentException for a dim or index out of range, or a 1-D tensor
     */
    public DeviceTensor select(int d, long index) {
        checkOpen();
        int dd = d < 0 ? shape.length + d : d;
        if (shape.length < 2) throw new IllegalArgumentException("select needs at least 2 dims, got " + this);
        if (dd < 0 || dd >= shape.length) throw new IllegalArgumentException("select: dim " + d + " out of range for " + this);
        if (index < 0 || index >= shape[dd]) throw new IllegalArgumentException("select: index " + index + " out of range of dim " + d + " of " + this);
        long[] s = new long[shape.length - 1], st = new long[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++) {
            if (i == dd) continue;
            s[j] = shape[i];
            st[j++] = strides[i];
        }
        return new DeviceTensor(ctx, dtype, s, st, address + index * strides[dd], owner());
    }

    private DeviceTensor owner() { return base != null ? base : this; }

    // ---------------------------------------------------------------- copies

    /**
     * Copies a host tensor into this one (host to device). Returns once {@code src} may be
     * reused; the copy may still be running on the stream.
     *
     * @throws IllegalArgumentException when dtypes or element counts differ, or either tensor is
     *         not contiguous
     */
    public void copyFrom(Tensor src) {
        Objects.requireNonNull(src, "src");
        checkOpen();
        src.checkOpen();
        checkCopy(src, "copyFrom");
        long bytes = byteSize();
        if (bytes == 0) return;
        CudaLibrary.check(panatron_h.pt_cuda_memcpy_h2d(ctx.handle(), MemorySegment.ofAddress(address), src.segment(), bytes));
    }

    /**
     * Copies this tensor into a host tensor (device to host), after all work enqueued before it.
     *
     * @throws IllegalArgumentException when dtypes or element counts differ, or either tensor is
     *         not contiguous
     * @throws dev.panatron.PanatronException when earlier GPU work failed (reported here)
     */
    public void copyTo(Tensor dst) {
        Objects.requireNonNull(dst, "dst");
        checkOpen();
        dst.checkOpen();
        checkCopy(dst, "copyTo");
        long bytes = byteSize();
        if (bytes == 0) {
            ctx.synchronize();
            return;
        }
        CudaLibrary.check(panatron_h.pt_cuda_memcpy_d2h(ctx.handle(), dst.segment(), MemorySegment.ofAddress(address), bytes));
    }

    /**
     * Copies another device tensor of the same context into this one (enqueued).
     *
     * @throws IllegalArgumentException for another context, other dtypes or element counts, or
     *         tensors that are not contiguous
     */
    public void copyFrom(DeviceTensor src) {
        Objects.requireNonNull(src, "src");
        checkOpen();
        src.checkOpen();
        if (src.ctx != ctx) throw new IllegalArgumentException("copyFrom: " + src + " belongs to another CUDA context");
        if (src.dtype != dtype || src.numel() != numel()) {
            throw new IllegalArgumentException("copyFrom: " + src + " does not match " + this + " (dtype and element count must)");
        }
        if (!isContiguous() || !src.isContiguous()) throw new IllegalArgumentException("copyFrom: both tensors must be contiguous (" + src + " -> " + this + ")");
        long bytes = byteSize();
        if (bytes == 0) return;
        CudaLibrary.check(panatron_h.pt_cuda_memcpy_d2d(ctx.handle(), MemorySegment.ofAddress(address), MemorySegment.ofAddress(src.address), bytes));
    }

    /**
     * A new host tensor (owned, contiguous) holding a copy of this one (waits for the stream).
     *
     * @throws IllegalArgumentException when this tensor is not contiguous
     */
    public Tensor toHost() {
        checkOpen();
        if (!isContiguous()) throw new IllegalArgumentException("toHost needs a contiguous tensor, got " + this);
        Tensor t = Tensor.allocate(dtype, shape);
        try {
            copyTo(t);
            return t;
        } catch (RuntimeException e) {
            t.close();
            throw e;
        }
    }

    /** The elements as floats, row-major (float dtypes; waits for the stream). */
    public float[] toFloatArray() {
        try (Tensor t = toHost()) {
            return t.toFloatArray();
        }
    }

    /**
     * Sets every byte of this (contiguous) tensor to {@code value} (enqueued); 0xff makes every
     * f32/f16/bf16 element NaN, which tests use to poison outputs.
     *
     * @throws IllegalArgumentException when not contiguous or value is not a byte 0..255
     */
    public void fillBytes(int value) {
        checkOpen();
        if (value < 0 || value > 255) throw new IllegalArgumentException("fillBytes: value " + value + " is not a byte 0..255");
        if (!isContiguous()) throw new IllegalArgumentException("fillBytes needs a contiguous tensor, got " + this);
        long bytes = byteSize();
        if (bytes == 0) return;
        CudaLibrary.check(panatron_h.pt_cuda_memset(ctx.handle(), MemorySegment.ofAddress(address), value, bytes));
    }

    private void checkCopy(Tensor host, String what) {
        if (host.dtype() != dtype || host.numel() != numel()) {
            throw new IllegalArgumentException(what + ": host " + host + " does not match " + this + " (dtype and element count must)");
        }
        if (!host.isContiguous()) throw new IllegalArgumentException(what + ": host " + host + " must be contiguous");
        if (!isContiguous()) throw new IllegalArgumentException(what + ": " + this + " must be contiguous");
    }

    /** Bytes of the elements of a contiguous tensor. */
    long byteSize() { return dtype.bytesFor(numel()); }

    // ---------------------------------------------------------------- native descriptor

    /** The pt_tensor descriptor (device = PT_DEVICE_CUDA); host memory, made once. */
    MemorySegment descriptor() {
        checkOpen();
        MemorySegment d = desc;
        if (d == null) {
            synchronized (this) {
                d = desc;
                if (d == null) {
                    d = Arena.ofAuto().allocate(pt_tensor.layout());
                    pt_tensor.data(d, MemorySegment.ofAddress(address));
                    pt_tensor.dtype(d, dtype.code());
                    pt_tensor.device(d, panatron_h.PT_DEVICE_CUDA());
                    pt_tensor.ndim(d, shape.length);
                    for (int i = 0; i < shape.length; i++) {
                        pt_tensor.shape(d, i, shape[i]);
                        pt_tensor.stride(d, i, strides[i]);
                    }
                    desc = d;
                }
            }
        }
        return d;
    }

    /** Returns an owned block to the context's cache; views are only marked closed. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        synchronized (this) {
            if (closed) return;
            closed = true;
            if (base == null && address != 0) ctx.free(address);
        }
    }

    @Override
    public String toString() {
        return "DeviceTensor[" + dtype + Arrays.toString(shape) + (isContiguous() ? "" : " strides " + Arrays.toString(strides))
                + " cuda:" + ctx.deviceOrdinal() + (closed ? " closed" : "") + "]";
    }

    // ---------------------------------------------------------------- helpers

    static long numel(long[] s) {
        long n = 1;
        for (long d : s) n = Math.multiplyExact(n, d);
        return n;
    }

    static long[] checkShape(DType dtype, long[] shape) {
        Objects.requireNonNull(dtype, "dtype");
        if (dtype == DType.U4) throw new IllegalArgumentException("device tensors of U4 are not supported");
        if (shape == null || shape.length < 1 || shape.length > Tensor.MAX_DIMS) {
            throw new IllegalArgumentException("shape must have 1.." + Tensor.MAX_DIMS + " dims, got " + Arrays.toString(shape));
        }
        for (long d : shape) if (d < 0) throw new IllegalArgumentException("negative dim in shape " + Arrays.toString(shape));
        numel(shape); // overflow check
        return shape.clone();
    }

    static long[] contiguousStrides(DType dtype, long[] s) {
        long[] st = new long[s.length];
        long acc = dtype.byteSize();
        for (int i = s.length - 1; i >= 0; i--) {
            st[i] = acc;
            acc *= Math.max(1, s[i]);
        }
        return st;
    }
}
