package dev.panatron;

import dev.panatron.ffm.panatron_h;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Objects;

/**
 * Memory bandwidth probes ({@code pt_memory_stream}) on a context's kernel threads: a benchmark
 * measures the read and copy bandwidth in its own process, next to the memory-bound kernels it
 * compares with them (a decode step reads its weights once: its bound is weight bytes over the
 * read bandwidth; {@code pt-bench --op copy}'s convention is the copy bandwidth, bytes read +
 * written).
 */
public final class MemoryStream {
    private MemoryStream() {}

    /**
     * Reads {@code src} once, split over ctx's threads (a 64-bit sum of its words).
     *
     * @param src native memory, its size a multiple of 8 bytes
     * @return the sum of src's 64-bit words (mod 2^64), so that the read cannot be skipped
     * @throws IllegalArgumentException when src is not native or its size not a multiple of 8
     * @throws IllegalStateException    when the context or src's arena is closed
     */
    public static long read(Context ctx, MemorySegment src) {
        Objects.requireNonNull(ctx, "context");
        Objects.requireNonNull(src, "src");
        if (!src.isNative()) throw new IllegalArgumentException("memory stream: src must be native memory, got a heap segment");
        if (src.byteSize() % 8 != 0) throw new IllegalArgumentException("memory stream read: src size " + src.byteSize() + " bytes is not a multiple of 8");
        if (!src.scope().isAlive()) throw new IllegalStateException("memory stream: src's arena is closed");
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sum = a.allocate(ValueLayout.JAVA_LONG);
            Native.check(panatron_h.pt_memory_stream(ctx.handle(), 0, src, MemorySegment.NULL, src.byteSize(), sum));
            return sum.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    /**
     * Copies {@code src} into the start of {@code dst}, split over ctx's threads.
     *
     * @param dst native memory of at least src's size, not overlapping src
     * @throws IllegalArgumentException when a segment is not native, dst is smaller than src or they overlap
     * @throws IllegalStateException    when the context or an arena is closed
     */
    public static void copy(Context ctx, MemorySegment src, MemorySegment dst) {
        Objects.requireNonNull(ctx, "context");
        Objects.requireNonNull(src, "src");
        Objects.requireNonNull(dst, "dst");
        if (!src.isNative() || !dst.isNative()) throw new IllegalArgumentException("memory stream: src and dst must be native memory");
        if (dst.byteSize() < src.byteSize()) {
            throw new IllegalArgumentException("memory stream copy: dst holds " + dst.byteSize() + " bytes, src has " + src.byteSize());
        }
        if (dst.isReadOnly()) throw new IllegalArgumentException("memory stream copy: dst is read-only");
        long s = src.address(), d = dst.address(), n = src.byteSize();
        if (n > 0 && s < d + n && d < s + n) throw new IllegalArgumentException("memory stream copy: src and dst overlap");
        if (!src.scope().isAlive() || !dst.scope().isAlive()) throw new IllegalStateException("memory stream: an arena is closed");
        Native.check(panatron_h.pt_memory_stream(ctx.handle(), 1, src, dst, n, MemorySegment.NULL));
    }
}
