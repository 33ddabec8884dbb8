package dev.panatron.graph;

import dev.panatron.DType;
import dev.panatron.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * A dense, row-major tensor of any rank (0 = scalar) over a {@link MemorySegment}: the data of
 * graph constants, of session inputs and outputs, and the views the executor hands to kernels.
 *
 * <p>Booleans (ONNX {@code bool}) are stored as {@link DType#U8} 0/1. {@link DType#U4} is not
 * supported here. A TensorData does not own its memory: whoever made the segment's arena
 * (a graph, a session plan, {@link Arena#ofAuto()} for the small factories) frees it.
 */
public final class TensorData {
    private final DType dtype;
    private final long[] shape;
    private final long numel;
    private final MemorySegment data;
    private Tensor tensor;      // lazily made kernel view (rank >= 1)
    private TensorData matrix;  // lazily made [rows, cols] view

    private TensorData(DType dtype, long[] shape, MemorySegment data) {
        this.dtype = dtype;
        this.shape = shape;
        this.numel = numel(shape);
        this.data = data;
    }

    // ---------------------------------------------------------------- factories

    /**
     * Wraps {@code segment} (no copy) as a tensor of {@code dtype} and {@code shape}.
     *
     * @throws IllegalArgumentException when the segment's size does not match the shape, when a
     *         native segment is not aligned to the element size, or for U4
     */
    public static TensorData wrap(MemorySegment segment, DType dtype, long... shape) {
        Objects.requireNonNull(segment, "segment");
        checkDtype(dtype);
        long[] s = shape.clone();
        long bytes = Math.multiplyExact(numel(s), (long) dtype.byteSize());
        if (segment.byteSize() != bytes) {
            throw new IllegalArgumentException("segment of " + segment.byteSize() + " bytes does not hold "
                    + dtype.name().toLowerCase() + Arrays.toString(s) + " (" + bytes + " bytes)");
        }
        if (segment.isNative() && segment.address() % dtype.byteSize() != 0) {
            throw new IllegalArgumentException("segment address 0x" + Long.toHexString(segment.address())
                    + " is not aligned to the " + dtype.byteSize() + "-byte elements of " + dtype);
        }
        return new TensorData(dtype, s, segment);
    }

    /** A zeroed tensor in {@code arena}, aligned to 64 bytes. */
    public static TensorData allocate(Arena arena, DType dtype, long... shape) {
        checkDtype(dtype);
        long bytes = Math.multiplyExact(numel(shape), (long) dtype.byteSize());
        return new TensorData(dtype, shape.clone(), arena.allocate(Math.max(bytes, 1), 64).asSlice(0, bytes));
    }

    /** A new f32 tensor holding {@code values} (memory freed by the GC). */
    public static TensorData ofFloats(float[] values, long... shape) {
        TensorData t = allocate(Arena.ofAuto(), DType.F32, checkCount(values.length, shape));
        MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_FLOAT, 0, values.length);
        return t;
    }

    /** A new i64 tensor holding {@code values} (memory freed by the GC). */
    public static TensorData ofLongs(long[] values, long... shape) {
        TensorData t = allocate(Arena.ofAuto(), DType.I64, checkCount(values.length, shape));
        MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_LONG, 0, values.length);
        return t;
    }

    /** A new i32 tensor holding {@code values} (memory freed by the GC). */
    public static TensorData ofInts(int[] values, long... shape) {
        TensorData t = allocate(Arena.ofAuto(), DType.I32, checkCount(values.length, shape));
        MemorySegment.copy(values, 0, t.data, ValueLayout.JAVA_INT, 0, values.length);
        return t;
    }

    /** A rank-0 f32 tensor. */
    public static TensorData scalar(float v) { return ofFloats(new float[] {v}); }

    /** A rank-0 i64 tensor. */
    public static TensorData scalar(long v) { return ofLongs(new long[] {v}); }

    // ---------------------------------------------------------------- accessors

    public DType dtype() { return dtype; }

    /** The shape, outermost first (a copy). */
    public long[] shape() { return shape.clone(); }

    /** Size of dim {@code i}; negative i counts from the end. */
    public long dim(int i) { return shape[i < 0 ? shape.length + i : i]; }

    public int rank() { return shape.length; }

    public long numel() { return numel; }

    public long byteSize() { return data.byteSize(); }

    public MemorySegment segment() { return data; }

    /** A view of the same memory with another shape of the same element count. */
    public TensorData reshape(long... newShape) {
        if (numel(newShape) != numel) {
            throw new IllegalArgumentException("cannot view " + this + " as " + Arrays.toString(newShape));
        }
        return new TensorData(dtype, newShape.clone(), data);
    }

    /** This tensor viewed as a matrix [numel / last dim, last dim] (cached). */
    public TensorData asMatrix() {
        TensorData m = matrix;
        if (m == null) {
            long c = shape.length == 0 ? 1 : shape[shape.length - 1];
            m = shape.length == 2 ? this : new TensorData(dtype, new long[] {c == 0 ? 0 : numel / c, c}, data);
            matrix = m;
        }
        return m;
    }

    /** The same memory as a {@link Tensor} for the kernels (a scalar is viewed as [1]); cached. */
    public Tensor asTensor() {
        Tensor t = tensor;
        if (t == null) {
            if (shape.length > Tensor.MAX_DIMS) {
                throw new IllegalArgumentException("kernels take at most " + Tensor.MAX_DIMS + " dims, got " + this);
            }
            t = Tensor.wrap(data, dtype, shape.length == 0 ? new long[] {1} : shape);
            tensor = t;
        }
        return t;
    }

    // ---------------------------------------------------------------- elements

    /** Element {@code i} (row-major flat index) as a double; integers and bools convert. */
    public double getDouble(long i) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(ValueLayout.JAVA_FLOAT, i);
            case F16 -> Float.float16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT, i));
            case BF16 -> Tensor.bf16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT, i));
            case I64 -> data.getAtIndex(ValueLayout.JAVA_LONG, i);
            case I32 -> data.getAtIndex(ValueLayout.JAVA_INT, i);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8 -> data.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            case U4 -> throw new IllegalStateException("u4");
        };
    }

    /** Sets element {@code i} from a double (rounded to nearest for the float types, truncated toward zero for integers). */
    public void setDouble(long i, double v) {
        switch (dtype) {
            case F32 -> data.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) v);
            case F16 -> data.setAtIndex(ValueLayout.JAVA_SHORT, i, Float.floatToFloat16((float) v));
            case BF16 -> data.setAtIndex(ValueLayout.JAVA_SHORT, i, Tensor.floatToBf16((float) v));
            case I64 -> data.setAtIndex(ValueLayout.JAVA_LONG, i, (long) v);
            case I32 -> data.setAtIndex(ValueLayout.JAVA_INT, i, (int) v);
            case I8 -> data.set(ValueLayout.JAVA_BYTE, i, (byte) v);
            case U8 -> data.set(ValueLayout.JAVA_BYTE, i, (byte) (int) v);
            case U4 -> throw new IllegalStateException("u4");
        }
    }

    /** Element {@code i} as a long (integers exactly; floats truncated toward zero). */
    public long getLong(long i) {
        return switch (dtype) {
            case I64 -> data.getAtIndex(ValueLayout.JAVA_LONG, i);
            case I32 -> data.getAtIndex(ValueLayout.JAVA_INT, i);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, i);
            case U8 -> data.get(ValueLayout.JAVA_BYTE, i) & 0xff;
            default -> (long) getDouble(i);
        };
    }

    /** Sets element {@code i} from a long. */
    public void setLong(long i, long v) {
        switch (dtype) {
            case I64 -> data.setAtIndex(ValueLayout.JAVA_LONG, i, v);
            case I32 -> data.setAtIndex(ValueLayout.JAVA_INT, i, (int) v);
            case I8, U8 -> data.set(ValueLayout.JAVA_BYTE, i, (byte) v);
            default -> setDouble(i, v);
        }
    }

    /** f32 element {@code i} (f32 tensors only: the fast path of the kernels). */
    public float getFloat(long i) { return data.getAtIndex(ValueLayout.JAVA_FLOAT, i); }

    public void setFloat(long i, float v) { data.setAtIndex(ValueLayout.JAVA_FLOAT, i, v); }

    /** All elements, converted to float. */
    public float[] toFloatArray() {
        float[] r = new float[Math.toIntExact(numel)];
        if (dtype == DType.F32) MemorySegment.copy(data, ValueLayout.JAVA_FLOAT, 0, r, 0, r.length);
        else for (int i = 0; i < r.length; i++) r[i] = (float) getDouble(i);
        return r;
    }

    /** All elements, converted to long. */
    public long[] toLongArray() {
        long[] r = new long[Math.toIntExact(numel)];
        for (int i = 0; i < r.length; i++) r[i] = getLong(i);
        return r;
    }

    /** A copy in {@code arena}. */
    public TensorData copy(Arena arena) {
        TensorData t = allocate(arena, dtype, shape);
        MemorySegment.copy(data, 0, t.data, 0, data.byteSize());
        return t;
    }

    /** Copies this tensor's bytes into {@code dst} (same dtype and element count). */
    public void copyTo(TensorData dst) {
        if (dst.dtype != dtype || dst.numel != numel) throw new IllegalArgumentException("cannot copy " + this + " into " + dst);
        MemorySegment.copy(data, 0, dst.data, 0, data.byteSize());
    }

    @Override
    public String toString() { return dtype.name().toLowerCase() + Arrays.toString(shape); }

    // ---------------------------------------------------------------- helpers

    static long numel(long[] s) {
        long n = 1;
        for (long d : s) {
            if (d < 0) throw new IllegalArgumentException("negative dim in " + Arrays.toString(s));
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    private static long[] checkCount(int n, long[] shape) {
        if (numel(shape) != n) throw new IllegalArgumentException(n + " values do not fill shape " + Arrays.toString(shape));
        return shape;
    }

    private static void checkDtype(DType dtype) {
        Objects.requireNonNull(dtype, "dtype");
        if (dtype == DType.U4) throw new IllegalArgumentException("u4 (packed 4-bit) is not supported by graph tensors");
    }
}
