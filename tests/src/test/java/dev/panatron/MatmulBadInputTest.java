package dev.panatron;

import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input to {@link Kernels#matmul} (and to the {@link Tensor} wrapping that feeds it) is a
 * clear exception naming the problem, thrown before any native code runs, and the JVM stays
 * healthy: after every test a correct matmul still gives the right answer.
 */
class MatmulBadInputTest {
    static Context ctx;
    Arena arena = Arena.ofConfined();

    @BeforeAll
    static void open() { ctx = Context.create(2); }

    @AfterAll
    static void close() { ctx.close(); }

    @AfterEach
    void stillHealthy() {
        // [[1, 2], [3, 4]] @ [[1, 0], [1, 1]] = [[3, 2], [7, 4]]
        try (Tensor a = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2); Tensor b = Tensor.of(new float[] {1, 0, 1, 1}, 2, 2);
             Tensor c = Tensor.allocate(DType.F32, 2, 2)) {
            c.fill(Float.NaN);
            Kernels.matmul(ctx, a, b, c);
            assertArrayEquals(new float[] {3, 2, 7, 4}, c.toFloatArray());
        }
        arena.close();
    }

    Tensor f32(long... shape) { return Tensor.allocate(arena, DType.F32, shape); }

    static <T extends Throwable> void expect(Class<T> type, String needle, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(needle), "message '" + e.getMessage() + "' should mention '" + needle + "'");
    }

    @Test
    void wrongShapes() {
        expect(IllegalArgumentException.class, "inner dims", () -> Kernels.matmul(ctx, f32(2, 3), f32(2, 2), f32(2, 2)));
        expect(IllegalArgumentException.class, "must be [2, 4]", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), f32(4, 2)));
        expect(IllegalArgumentException.class, "2-D or 3-D", () -> Kernels.matmul(ctx, f32(3), f32(3, 4), f32(3, 4)));
        expect(IllegalArgumentException.class, "rank", () -> Kernels.matmul(ctx, f32(2, 2, 3), f32(3, 4), f32(2, 4)));
        expect(IllegalArgumentException.class, "same batch", () -> Kernels.matmul(ctx, f32(2, 3), f32(2, 3, 4), f32(2, 4)));
        expect(IllegalArgumentException.class, "same batch", () -> Kernels.matmul(ctx, f32(2, 2, 3), f32(3, 3, 4), f32(2, 2, 4)));
        expect(IllegalArgumentException.class, "inner dims",
                () -> Kernels.matmul(ctx, f32(2, 3), f32(4, 2), null, f32(2, 4), MatmulOptions.LINEAR));
    }

    @Test
    void wrongDtypes() {
        Tensor h23 = Tensor.allocate(arena, DType.BF16, 2, 3), h34 = Tensor.allocate(arena, DType.BF16, 3, 4);
        expect(IllegalArgumentException.class, "dtype", () -> Kernels.matmul(ctx, f32(2, 3), h34, f32(2, 4)));
        expect(IllegalArgumentException.class, "dtype", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), Tensor.allocate(arena, DType.BF16, 2, 4)));
        expect(IllegalArgumentException.class, "dtype", () -> Kernels.matmul(ctx, Tensor.allocate(arena, DType.I32, 2, 3), f32(3, 4), f32(2, 4)));
        expect(IllegalArgumentException.class, "dtype", () -> Kernels.matmul(ctx, h23, h34, Tensor.allocate(arena, DType.F16, 2, 4)));
        Kernels.matmul(ctx, h23, h34, Tensor.allocate(arena, DType.BF16, 2, 4)); // bf16 in, bf16 out is fine
    }

    @Test
    void biasWrongSizeOrDtype() {
        MatmulOptions o = MatmulOptions.DEFAULT;
        expect(IllegalArgumentException.class, "bias must be [4]", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), f32(3), f32(2, 4), o));
        expect(IllegalArgumentException.class, "bias must be [4]", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), f32(1, 4), f32(2, 4), o));
        expect(IllegalArgumentException.class, "bias", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), Tensor.allocate(arena, DType.BF16, 4), f32(2, 4), o));
    }

    @Test
    void badOptions() {
        expect(IllegalArgumentException.class, "finite", () -> new MatmulOptions(false, Activation.NONE, Float.NaN, 0));
        expect(IllegalArgumentException.class, "finite", () -> new MatmulOptions(false, Activation.NONE, 1, Float.POSITIVE_INFINITY));
        assertThrows(NullPointerException.class, () -> new MatmulOptions(false, null, 1, 0));
        assertThrows(NullPointerException.class, () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), null, f32(2, 4), null));
    }

    @Test
    void closedTensor() {
        Tensor a = Tensor.allocate(DType.F32, 2, 3);
        a.close();
        expect(IllegalStateException.class, "closed", () -> Kernels.matmul(ctx, a, f32(3, 4), f32(2, 4)));
        Tensor c = Tensor.allocate(DType.F32, 2, 4);
        c.close();
        expect(IllegalStateException.class, "closed", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), c));
        Tensor bias = Tensor.allocate(DType.F32, 4);
        bias.close();
        expect(IllegalStateException.class, "closed", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), bias, f32(2, 4), MatmulOptions.DEFAULT));
        // a view of a tensor whose arena was closed
        Arena other = Arena.ofConfined();
        Tensor w = Tensor.wrap(other.allocate(48, 64), DType.F32, 3, 4);
        other.close();
        expect(IllegalStateException.class, "closed", () -> Kernels.matmul(ctx, f32(2, 3), w, f32(2, 4)));
    }

    @Test
    void closedContext() {
        Context c = Context.create(1, false, 0);
        c.close();
        c.close(); // twice is harmless
        expect(IllegalStateException.class, "closed", () -> Kernels.matmul(c, f32(2, 3), f32(3, 4), f32(2, 4)));
    }

    @Test
    void readOnlyOutput() {
        MemorySegment ro = arena.allocate(32, 64).asReadOnly();
        Tensor c = Tensor.wrap(ro, DType.F32, 2, 4);
        expect(IllegalArgumentException.class, "read-only", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), c));
    }

    @Test
    void heapSegment() {
        expect(IllegalArgumentException.class, "heap", () -> Tensor.wrap(MemorySegment.ofArray(new float[8]), DType.F32, 2, 4));
    }

    @Test
    void misalignedSegment() {
        MemorySegment seg = arena.allocate(64, 64).asSlice(1, 32);
        expect(IllegalArgumentException.class, "aligned", () -> Tensor.wrap(seg, DType.F32, 2, 4));
    }

    @Test
    void segmentTooSmall() {
        expect(IllegalArgumentException.class, "too small", () -> Tensor.wrap(arena.allocate(16, 64), DType.F32, 2, 4));
    }

    @Test
    void stridesNotWholeElements() {
        Tensor a = Tensor.wrap(arena.allocate(64, 64), DType.F32, new long[] {2, 3}, new long[] {14, 4});
        expect(IllegalArgumentException.class, "multiple of the element size", () -> Kernels.matmul(ctx, a, f32(3, 4), f32(2, 4)));
    }

    @Test
    void overlappingOutput() {
        MemorySegment seg = arena.allocate(256, 64);
        Tensor a = Tensor.wrap(seg, DType.F32, 4, 4), c = Tensor.wrap(seg.asSlice(16), DType.F32, 4, 4);
        expect(IllegalArgumentException.class, "overlaps input a", () -> Kernels.matmul(ctx, a, f32(4, 4), c));
        Tensor rows = Tensor.wrap(arena.allocate(64, 64), DType.F32, new long[] {2, 4}, new long[] {8, 4});
        expect(IllegalArgumentException.class, "same bytes", () -> Kernels.matmul(ctx, f32(2, 3), f32(3, 4), rows));
    }

    @Test
    void emptyShapesAreFine() {
        Tensor c = f32(0, 4);
        Kernels.matmul(ctx, f32(0, 3), f32(3, 4), c);
        Tensor c2 = f32(2, 4);
        c2.fill(Float.NaN);
        Tensor bias = f32(4);
        bias.copyFrom(new float[] {1, 2, 3, 4});
        Kernels.matmul(ctx, f32(2, 0), f32(0, 4), bias, c2, MatmulOptions.DEFAULT); // K = 0: c = bias
        assertArrayEquals(new float[] {1, 2, 3, 4, 1, 2, 3, 4}, c2.toFloatArray());
    }
}
