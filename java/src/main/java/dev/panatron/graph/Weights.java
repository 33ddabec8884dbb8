package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Kernels;

import java.util.IdentityHashMap;
import java.util.Map;

/**
 * A session's prepacked weights: each constant right-hand operand of a LINEAR packed once
 * ({@link Kernels#pack}) into the layout the GEMM kernel reads, shared by all of the session's
 * plans, freed by {@link #close()}.
 */
final class Weights implements AutoCloseable {
    private final Map<Value, Kernels.PackedMatrix> packed = new IdentityHashMap<>();
    private final DType dtype;
    private final Map<Value, AutoCloseable> derived = new IdentityHashMap<>();   // e.g. packed int8 weights (Compression)
    private boolean closed;

    /** @param dtype the precision of the products: F32, or BF16 (weights rounded to bf16) */
    Weights(DType dtype) { this.dtype = dtype; }

    DType dtype() { return dtype; }

    /**
     * The packed form of constant {@code w} (data {@code data}, f32 or bf16), packed on first
     * use; null when {@code w} is not a constant.
     */
    synchronized Kernels.PackedMatrix packed(Context ctx, Value w, TensorData data, boolean transB) {
        if (closed) throw new IllegalStateException("session is closed");
        if (w == null || !w.isConstant()) return null;
        Kernels.PackedMatrix p = packed.get(w);
        if (p == null) {
            p = Kernels.pack(ctx, data.asTensor(), transB, dtype);
            packed.put(w, p);
        }
        return p;
    }

    /**
     * A session-lifetime object derived from constant {@code key} (made by {@code make} on first
     * use, closed with the session), e.g. the packed form of an int8 weight.
     */
    @SuppressWarnings("unchecked")
    synchronized <T extends AutoCloseable> T derived(Value key, java.util.function.Supplier<T> make) {
        if (closed) throw new IllegalStateException("session is closed");
        return (T) derived.computeIfAbsent(key, k -> make.get());
    }

    /** Bytes held by the packed copies. */
    synchronized long bytes() {
        long b = 0;
        for (Kernels.PackedMatrix p : packed.values()) b += p.byteSize();
        return b;
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Kernels.PackedMatrix p : packed.values()) p.close();
        packed.clear();
        for (AutoCloseable d : derived.values()) {
            try {
                d.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + d + " failed", e);
            }
        }
        derived.clear();
    }
}
