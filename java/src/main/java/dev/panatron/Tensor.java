package dev.panatron;

import dev.panatron.ffm.pt_tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A strided view of native memory: dtype, shape (row-major, outermost first), byte strides
 * and the {@link MemorySegment} holding the elements.
 *
 * <p>A tensor made by {@link #allocate} owns an {@link Arena}; {@link #close()} frees it (and
 * closing twice is harmless). A tensor made by {@link #wrap} or by a view method borrows
 * memory owned elsewhere; closing it only marks it closed. Using a closed tensor, or one whose
 * memory was freed, throws {@link IllegalStateException}.
 *
 * <p>Tensors are safe to read from several threads; kernels writing the same tensor from
 * several threads at once race like any shared memory.
 */
public final class Tensor implements AutoCloseable {
    /** Most dimensions a tensor may have (the C API's PT_MAX_DIMS). */
    public static final int MAX_DIMS = 4;

    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final MemorySegment data;
    private final Arena owned;            // null for views and wraps
    private final Tensor base;            // the owner for views, null otherwise
    private volatile MemorySegment desc;  // pt_tensor, made on first use
    private volatile boolean closed;

    private Tensor(DType dtype, long[] shape, long[] strides, MemorySegment data, Arena owned, Tensor base) {
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
        this.data = data;
        this.owned = owned;
        this.base = base;
    }

    // ---------------------------------------------------------------- factories

    /** Allocates a zeroed, contiguous tensor in its own arena (freed by {@link #close()}). */
    public static Tensor allocate(DType dtype, long... shape) {
        Objects.requireNonNull(dtype, "dtype");
        long[] s = checkShape(dtype, shape);
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg = arena.allocate(Math.max(1, dtype.bytesFor(numel(s))), 64);
            return new Tensor(dtype, s, contiguousStrides(dtype, s), seg.asSlice(0, dtype.bytesFor(numel(s))), arena, null);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Allocates a zeroed, contiguous tensor in {@code arena}; it lives as long as the arena. */
    public static Tensor allocate(Arena arena, DType dtype, long... shape) {
        Objects.requireNonNull(arena, "arena");
        long[] s = checkShape(dtype, shape);
        MemorySegment seg = arena.allocate(Math.max(1, dtype.bytesFor(numel(s))), 64);
        return new Tensor(dtype, s, contiguousStrides(dtype, s), seg.asSlice(0, dtype.bytesFor(numel(s))), null, null);
    }

    /** Wraps native memory as a contiguous tensor (no copy; the memory stays the caller's). */
    public static Tensor wrap(MemorySegment segment, DType dtype, long... shape) {
        long[] s = checkShape(dtype, shape);
        return wrap(segment, dtype, s, contiguousStrides(dtype, s));
    }

    /**
     * Wraps native memory with explicit byte strides. The innermost stride must equal the
     * element size (rows are contiguous); outer strides may be anything non-negative.
     *
     * @throws IllegalArgumentException for a heap segment, a segment too small for the
     *         shape and strides, or an address not aligned to the element size
     */
    public static Tensor wrap(MemorySegment segment, DType dtype, long[] shape, long[] strides) {
        Objects.requireNonNull(segment, "segment");
        long[] s = checkShape(dtype, shape);
        if (strides == null || strides.length != s.length) {
            throw new IllegalArgumentException("strides " + Arrays.toString(strides) + " must have one entry per dim of shape " + Arrays.toString(s));
        }
        long[] st = strides.clone();
        if (!segment.isNative()) {
            throw new IllegalArgumentException("segment is on the Java heap; kernels need native memory (Arena.allocate or Tensor.allocate)");
        }
        int es = dtype.byteSize();
        if (es > 1 && segment.address() % es != 0) {
            throw new IllegalArgumentException("segment address 0x" + Long.toHexString(segment.address()) + " is not aligned to " + es + " bytes for " + dtype);
        }
        long span = span(dtype, s, st);
        if (span > segment.byteSize()) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes is too small for " + dtype + Arrays.toString(s)
                    + " with strides " + Arrays.toString(st) + " (needs " + span + ")");
        }
        for (int i = 0; i < s.length; i++) {
            if (st[i] < 0) throw new IllegalArgumentException("negative stride " + st[i] + " in dim " + i);
        }
        if (dtype != DType.U4 && s[s.length - 1] > 1 && st[s.length - 1] != es) {
            throw new IllegalArgumentException("innermost stride " + st[s.length - 1] + " must be the element size " + es + " (rows must be contiguous)");
        }
        return new Tensor(dtype, s, st, segment.asSlice(0, span), null, null);
    }

    /** A new owned tensor of {@code dtype} holding {@code values} (row-major), converted. */
    public static Tensor of(DType dtype, float[] values, long... shape) {
        long[] s = checkShape(dtype, shape);
        if (numel(s) != values.length) {
            throw new IllegalArgumentException(values.length + " values do not fill shape " + Arrays.toString(s) + " (" + numel(s) + " elements)");
        }
        Tensor t = allocate(dtype, s);
        t.copyFrom(values);
        return t;
    }

    /** A new owned f32 tensor holding {@code values}. */
    public static Tensor of(float[] values, long... shape) { return of(DType.F32, values, shape); }

    /** A new owned i32 tensor holding {@code values}. */
    public static Tensor ofInts(int[] values, long... shape) {
        long[] s = checkShape(DType.I32, shape);
        if (numel(s) != values.length) {
            throw new IllegalArgumentException(values.length + " values do not fill shape " + Arrays.toString(s));
        }
        Tensor t = allocate(DType.I32, s);
        MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_INT, 0, values.length);
        return t;
    }

    // ---------------------------------------------------------------- accessors

    public DType dtype() { return dtype; }

    /** The shape, outermost first (a copy). */
    public long[] shape() { return shape.clone(); }

    /** Size of dim {@code i}; negative i counts from the end. */
    public long dim(int i) { return shape[i < 0 ? shape.length + i : i]; }

    /** Byte strides, outermost first (a copy). */
    public long[] strides() { return strides.clone(); }

    /** Byte stride of dim i, without copying the array (allocation-free hot paths). */
    long strideBytes(int i) { return strides[i]; }

    public int ndim() { return shape.length; }

    public long numel() { return numel(shape); }

    /** The memory of this tensor (covering exactly its elements' span). */
    public MemorySegment segment() {
        checkOpen();
        return data;
    }

    /** True when elements are densely packed in row-major order. */
    public boolean isContiguous() { return Arrays.equals(strides, contiguousStrides(dtype, shape)); }

    /** True until {@link #close()}, and while the memory it views is alive. */
    public boolean isOpen() { return !closed && data.scope().isAlive() && (base == null || base.isOpen()); }

    /** Throws {@link IllegalStateException} when closed or when its memory was freed. */
    public void checkOpen() {
        if (!isOpen()) throw new IllegalStateException("tensor " + this + " is closed");
    }

    // ---------------------------------------------------------------- views

    /** A view with a new shape over the same contiguous memory (one dim may be -1). */
    public Tensor reshape(long... newShape) {
        checkOpen();
        if (!isContiguous()) throw new IllegalArgumentException("reshape needs a contiguous tensor, " + this + " is strided");
        long[] ns = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < ns.length; i++) {
            if (ns[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in " + Arrays.toString(newShape));
                infer = i;
            } else known *= ns[i];
        }
        if (infer >= 0) {
            if (known == 0 || numel() % known != 0) throw new IllegalArgumentException("cannot reshape " + this + " to " + Arrays.toString(newShape));
            ns[infer] = numel() / known;
        }
        long[] s = checkShape(dtype, ns);
        if (numel(s) != numel()) throw new IllegalArgumentException("cannot reshape " + this + " (" + numel() + " elements) to " + Arrays.toString(newShape));
        return new Tensor(dtype, s, contiguousStrides(dtype, s), data, null, root());
    }

    /** A view of {@code length} entries of dim {@code d} starting at {@code start}. */
    public Tensor slice(int d, long start, long length) {
        checkOpen();
        if (d < 0) d += shape.length;
        if (d < 0 || d >= shape.length) throw new IllegalArgumentException("dim " + d + " out of range for " + this);
        if (start < 0 || length < 0 || start + length > shape[d]) {
            throw new IllegalArgumentException("slice [" + start + ", " + (start + length) + ") out of range for dim " + d + " of " + this);
        }
        if (dtype == DType.U4 && d == shape.length - 1 && (start % 2 != 0 || length % 2 != 0)) {
            throw new IllegalArgumentException("u4 slices of the innermost dim must start and end on a byte");
        }
        long[] s = shape.clone();
        s[d] = length;
        long off = dtype == DType.U4 && d == shape.length - 1 ? start / 2 : start * strides[d];
        long sp = span(dtype, s, strides);
        MemorySegment seg = numel(s) == 0 ? data.asSlice(0, 0) : data.asSlice(off, sp);
        return new Tensor(dtype, s, strides.clone(), seg, null, root());
    }

    private Tensor root() { return base != null ? base : this; }

    // ---------------------------------------------------------------- copies

    /** Writes {@code values} (row-major, converted to this dtype) into this tensor. */
    public void copyFrom(float[] values) {
        checkOpen();
        if (values.length != numel()) throw new IllegalArgumentException(values.length + " values for " + this);
        if (!dtype.isFloat()) throw new IllegalArgumentException("copyFrom(float[]) needs a float tensor, not " + dtype);
        long n = shape[shape.length - 1];
        long rows = numel() / Math.max(1, n);
        int k = 0;
        for (long r = 0; r < rows; r++) {
            long base = rowOffset(r);
            for (long j = 0; j < n; j++) setFloatAt(base + j * dtype.byteSize(), values[k++]);
        }
    }

    /** All elements, row-major, converted to float. */
    public float[] toFloatArray() {
        checkOpen();
        if (!dtype.isFloat()) throw new IllegalArgumentException("toFloatArray needs a float tensor, not " + dtype);
        float[] out = new float[Math.toIntExact(numel())];
        long n = shape[shape.length - 1];
        long rows = numel() / Math.max(1, n);
        int k = 0;
        for (long r = 0; r < rows; r++) {
            long base = rowOffset(r);
            for (long j = 0; j < n; j++) out[k++] = getFloatAt(base + j * dtype.byteSize());
        }
        return out;
    }

    /** All elements of an i32 tensor, row-major. */
    public int[] toIntArray() {
        checkOpen();
        if (dtype != DType.I32) throw new IllegalArgumentException("toIntArray needs an i32 tensor, not " + dtype);
        int[] out = new int[Math.toIntExact(numel())];
        long n = shape[shape.length - 1];
        long rows = numel() / Math.max(1, n);
        int k = 0;
        for (long r = 0; r < rows; r++) {
            long base = rowOffset(r);
            for (long j = 0; j < n; j++) out[k++] = data.get(ValueLayout.JAVA_INT_UNALIGNED, base + j * 4);
        }
        return out;
    }

    /** Fills every element with {@code v} (float dtypes). */
    public void fill(float v) {
        float[] a = new float[Math.toIntExact(numel())];
        Arrays.fill(a, v);
        copyFrom(a);
    }

    private long rowOffset(long r) {
        long off = 0;
        for (int i = shape.length - 2; i >= 0; i--) {
            long idx = r % shape[i];
            r /= shape[i];
            off += idx * strides[i];
        }
        return off;
    }

    private float getFloatAt(long off) {
        return switch (dtype) {
            case F32 -> data.get(ValueLayout.JAVA_FLOAT_UNALIGNED, off);
            case BF16 -> bf16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
            case F16 -> Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
            default -> throw new IllegalStateException();
        };
    }

    private void setFloatAt(long off, float v) {
        switch (dtype) {
            case F32 -> data.set(ValueLayout.JAVA_FLOAT_UNALIGNED, off, v);
            case BF16 -> data.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, floatToBf16(v));
            case F16 -> data.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, Float.floatToFloat16(v));
            default -> throw new IllegalStateException();
        }
    }

    /** bf16 bits to float. */
    public static float bf16ToFloat(short h) { return Float.intBitsToFloat((h & 0xffff) << 16); }

    /** float to bf16 bits, round to nearest even (NaN stays NaN). */
    public static short floatToBf16(float f) {
        int u = Float.floatToRawIntBits(f);
        if ((u & 0x7fffffff) > 0x7f800000) return (short) ((u >>> 16) | 0x40);
        u += 0x7fff + ((u >>> 16) & 1);
        return (short) (u >>> 16);
    }

    // ---------------------------------------------------------------- native descriptor

    /** The pt_tensor descriptor of this view (package-private: used by the kernels). */
    MemorySegment descriptor() {
        checkOpen();
        MemorySegment d = desc;
        if (d == null) {
            synchronized (this) {
                d = desc;
                if (d == null) {
                    d = Arena.ofAuto().allocate(pt_tensor.layout());
                    pt_tensor.data(d, data);
                    pt_tensor.dtype(d, dtype.code());
                    pt_tensor.device(d, 0);
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

    /** Frees the memory this tensor owns; views and wraps are only marked closed. Idempotent. */
    @Override
    public void close() {
        if (closed) return;
        synchronized (this) {
            if (closed) return;
            closed = true;
            if (owned != null) owned.close();
        }
    }

    @Override
    public String toString() {
        return dtype.name().toLowerCase() + Arrays.toString(shape);
    }

    // ---------------------------------------------------------------- helpers

    static long numel(long[] s) {
        long n = 1;
        for (long x : s) n = Math.multiplyExact(n, x);
        return n;
    }

    private static long[] checkShape(DType dtype, long[] shape) {
        Objects.requireNonNull(dtype, "dtype");
        if (shape == null || shape.length < 1 || shape.length > MAX_DIMS) {
            throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " must have 1.." + MAX_DIMS + " dims");
        }
        for (long x : shape) {
            if (x < 0) throw new IllegalArgumentException("negative dim in shape " + Arrays.toString(shape));
        }
        if (dtype == DType.U4 && shape[shape.length - 1] % 2 != 0) {
            throw new IllegalArgumentException("u4 tensors need an even innermost dim, got " + Arrays.toString(shape));
        }
        numel(shape); // overflow check
        return shape.clone();
    }

    private static long[] contiguousStrides(DType dtype, long[] s) {
        long[] st = new long[s.length];
        long acc = dtype == DType.U4 ? 1 : dtype.byteSize();
        st[s.length - 1] = acc;
        if (dtype == DType.U4) acc = s[s.length - 1] / 2;
        else acc *= s[s.length - 1];
        for (int i = s.length - 2; i >= 0; i--) {
            st[i] = acc;
            acc *= s[i];
        }
        return st;
    }

    private static long span(DType dtype, long[] s, long[] st) {
        if (numel(s) == 0) return 0;
        long inner = dtype.bytesFor(s[s.length - 1]);
        long off = 0;
        for (int i = 0; i < s.length - 1; i++) off += (s[i] - 1) * st[i];
        return off + inner;
    }
}
