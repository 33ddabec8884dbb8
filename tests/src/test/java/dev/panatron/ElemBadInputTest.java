package dev.panatron;

import dev.panatron.Kernels.RopeOptions;
import dev.panatron.Kernels.Unary;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bad input to the elementwise/norm façade: each case throws a clear exception before any
 * native code runs (IllegalArgumentException naming the argument and shapes,
 * IllegalStateException for closed objects), writes nothing, and the JVM stays healthy: a
 * good call afterwards still works.
 */
class ElemBadInputTest {
    static Context ctx;
    static Tensor x23, y23, out23, x32, row3, row4, i23, bf23, gamma3, ids, table;

    @BeforeAll
    static void setUp() {
        ctx = Context.create(2);
        x23 = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        y23 = Tensor.of(new float[] {1, 1, 1, 1, 1, 1}, 2, 3);
        out23 = Tensor.allocate(DType.F32, 2, 3);
        x32 = Tensor.allocate(DType.F32, 3, 2);
        row3 = Tensor.of(new float[] {1, 1, 1}, 3);
        row4 = Tensor.allocate(DType.F32, 4);
        i23 = Tensor.allocate(DType.I32, 2, 3);
        bf23 = Tensor.allocate(DType.BF16, 2, 3);
        gamma3 = Tensor.of(new float[] {1, 1, 1}, 3);
        ids = Tensor.ofInts(new int[] {0, 3}, 2);
        table = Tensor.of(new float[] {0, 1, 2, 3, 4, 5, 6, 7}, 4, 2);
    }

    @AfterAll
    static void tearDown() {
        for (Tensor t : new Tensor[] {x23, y23, out23, x32, row3, row4, i23, bf23, gamma3, ids, table}) t.close();
        ctx.close();
    }

    static void iae(Executable call, String... needles) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        for (String n : needles) assertTrue(e.getMessage().contains(n), "message '" + e.getMessage() + "' should mention '" + n + "'");
    }

    static void healthy() {
        out23.fill(Float.NaN);
        Kernels.add(ctx, x23, y23, out23);
        assertArrayEquals(new float[] {2, 3, 4, 5, 6, 7}, out23.toFloatArray());
    }

    @Test
    void wrongShapes() {
        iae(() -> Kernels.add(ctx, x23, x32, out23), "add", "[3, 2]");
        iae(() -> Kernels.add(ctx, x23, row4, out23), "add", "[3]");
        iae(() -> Kernels.add(ctx, x23, y23, x32), "add", "[2, 3]", "[3, 2]");
        iae(() -> Kernels.gelu(ctx, x23, x32), "gelu", "[3, 2]");
        iae(() -> Kernels.swiglu(ctx, x23, x32, out23), "swiglu");
        iae(() -> Kernels.softmax(ctx, x23, 1f, x32), "softmax");
        iae(() -> Kernels.layerNorm(ctx, x23, row4, null, 1e-5f, out23), "gamma", "[3]", "[4]");
        iae(() -> Kernels.layerNorm(ctx, x23, gamma3, row4, 1e-5f, out23), "beta");
        iae(() -> Kernels.rmsNorm(ctx, x23, x23, 1e-5f, out23), "gamma");
        iae(() -> Kernels.addLayerNorm(ctx, x23, x32, gamma3, null, 1e-5f, out23, null), "residual");
        iae(() -> Kernels.addRmsNorm(ctx, x23, y23, gamma3, 1e-5f, out23, x32), "sumOut");
        iae(() -> Kernels.rope(ctx, x23, ids, RopeOptions.DEFAULT, out23), "rope", "[T, H, D]");
        try (Tensor q = Tensor.allocate(DType.F32, 2, 1, 4); Tensor q3 = Tensor.allocate(DType.F32, 3, 1, 4);
             Tensor p3 = Tensor.ofInts(new int[] {0, 1, 2}, 3)) {
            iae(() -> Kernels.rope(ctx, q, p3, RopeOptions.DEFAULT, q), "positions", "[2]");
            iae(() -> Kernels.rope(ctx, q, ids, RopeOptions.DEFAULT, q3), "rope");
            iae(() -> Kernels.rope(ctx, q, ids, RopeOptions.DEFAULT.withRotaryDim(6), q), "rotaryDim", "4");
            iae(() -> Kernels.rope(ctx, q, ids, RopeOptions.DEFAULT.withInvFreq(new float[] {1f}), q), "invFreq", "2");
        }
        iae(() -> Kernels.embedding(ctx, table, ids, out23), "embedding", "[2, 2]");
        iae(() -> Kernels.embedding(ctx, row4, ids, out23), "table");
        iae(() -> Kernels.meanPool(ctx, x23, null, false, out23), "meanPool", "[B, T, D]");
        iae(() -> Kernels.convert(ctx, x23, x32), "convert");
        healthy();
    }

    @Test
    void wrongDtypes() {
        iae(() -> Kernels.add(ctx, i23, y23, out23), "add a", "I32");
        iae(() -> Kernels.unary(ctx, Unary.RELU, x23, i23), "relu out", "I32");
        iae(() -> Kernels.layerNorm(ctx, x23, Tensor.allocate(DType.BF16, 3), null, 1e-5f, out23), "gamma", "BF16");
        try (Tensor fids = Tensor.of(new float[] {0, 1}, 2); Tensor f16 = Tensor.allocate(DType.F16, 2, 3)) {
            iae(() -> Kernels.embedding(ctx, table, fids, out23), "ids", "F32");
            iae(() -> Kernels.softmax(ctx, f16, 1f, out23), "softmax x", "F16");
            iae(() -> Kernels.convert(ctx, i23, out23), "convert x", "I32");
            try (Tensor q = Tensor.allocate(DType.F32, 2, 1, 4)) {
                iae(() -> Kernels.rope(ctx, q, fids, RopeOptions.DEFAULT, q), "positions", "F32");
            }
            try (Tensor x = Tensor.allocate(DType.F32, 1, 2, 3); Tensor m = Tensor.of(new float[] {1, 1}, 1, 2);
                 Tensor o = Tensor.allocate(DType.F32, 1, 3)) {
                iae(() -> Kernels.meanPool(ctx, x, m, true, o), "mask", "F32");
            }
        }
        healthy();
    }

    @Test
    void badValues() {
        iae(() -> Kernels.layerNorm(ctx, x23, gamma3, null, -1f, out23), "eps");
        iae(() -> Kernels.rmsNorm(ctx, x23, gamma3, Float.NaN, out23), "eps");
        iae(() -> Kernels.softmax(ctx, x23, Float.POSITIVE_INFINITY, out23), "scale");
        try (Tensor o = Tensor.allocate(DType.F32, 2, 2)) {
            o.fill(Float.NaN);
            try (Tensor bad = Tensor.ofInts(new int[] {0, 4}, 2); Tensor neg = Tensor.ofInts(new int[] {-1, 0}, 2)) {
                iae(() -> Kernels.embedding(ctx, table, bad, o), "ids[1] = 4", "out of range", "[0, 4)");
                iae(() -> Kernels.embedding(ctx, table, neg, o), "ids[0] = -1");
            }
            for (float f : o.toFloatArray()) assertTrue(Float.isNaN(f), "a rejected embedding wrote");
        }
        healthy();
    }

    @Test
    void segmentTooSmallViaWrap() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment small = arena.allocate(5 * 4, 4);
            iae(() -> Tensor.wrap(small, DType.F32, 2, 3), "too small", "24");
            iae(() -> Tensor.wrap(small, DType.F32, new long[] {2, 3}, new long[] {16, 4}), "too small");
        }
        healthy();
    }

    @Test
    void closedTensorAndContext() {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        t.close();
        assertThrows(IllegalStateException.class, () -> Kernels.add(ctx, t, y23, out23));
        assertThrows(IllegalStateException.class, () -> Kernels.add(ctx, x23, y23, t));
        assertThrows(IllegalStateException.class, () -> Kernels.layerNorm(ctx, x23, gamma3, t.reshape(3), 1e-5f, out23));
        Tensor beta = Tensor.of(new float[] {0, 0, 0}, 3);
        beta.close();
        assertThrows(IllegalStateException.class, () -> Kernels.layerNorm(ctx, x23, gamma3, beta, 1e-5f, out23));
        Tensor sum = Tensor.allocate(DType.F32, 2, 3);
        sum.close();
        assertThrows(IllegalStateException.class, () -> Kernels.addLayerNorm(ctx, x23, y23, gamma3, null, 1e-5f, out23, sum));
        Tensor mask = Tensor.ofInts(new int[] {1, 1}, 1, 2);
        mask.close();
        try (Tensor x = Tensor.allocate(DType.F32, 1, 2, 3); Tensor o = Tensor.allocate(DType.F32, 1, 3)) {
            assertThrows(IllegalStateException.class, () -> Kernels.meanPool(ctx, x, mask, false, o));
        }
        Context closed = Context.create(1);
        closed.close();
        closed.close();
        assertThrows(IllegalStateException.class, () -> Kernels.add(closed, x23, y23, out23));
        assertThrows(IllegalStateException.class, () -> Kernels.rope(closed, x23, ids, RopeOptions.DEFAULT, x23));
        assertThrows(IllegalStateException.class, () -> Kernels.embedding(closed, table, ids, out23));
        assertThrows(NullPointerException.class, () -> Kernels.add(null, x23, y23, out23));
        assertThrows(NullPointerException.class, () -> Kernels.unary(ctx, null, x23, out23));
        assertThrows(NullPointerException.class, () -> Kernels.rope(ctx, x23, ids, null, x23));
        healthy();
    }

    @Test
    void readOnlyAndOverlappingOutputs() {
        MemorySegment ro = out23.segment().asReadOnly();
        Tensor readOnly = Tensor.wrap(ro, DType.F32, 2, 3);
        iae(() -> Kernels.add(ctx, x23, y23, readOnly), "read-only");
        iae(() -> Kernels.softmax(ctx, x23, 1f, readOnly), "read-only");
        iae(() -> Kernels.convert(ctx, x23, readOnly), "read-only");
        // a bf16 view over x23's memory is not the same view: partial overlap is rejected
        Tensor alias = Tensor.wrap(x23.segment(), DType.BF16, 2, 3);
        iae(() -> Kernels.convert(ctx, x23, alias), "overlaps");
        // shifted by one element: overlaps without being the same view
        try (Tensor buf = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 6)) {
            Tensor a = Tensor.wrap(buf.segment().asSlice(0, 20), DType.F32, 5);
            Tensor shifted = Tensor.wrap(buf.segment().asSlice(4), DType.F32, 5);
            iae(() -> Kernels.relu(ctx, a, shifted), "overlaps");
            iae(() -> Kernels.add(ctx, a, a, shifted), "overlaps");
            // the same memory, shape and strides through another Tensor object is in place: allowed
            Tensor same = Tensor.wrap(buf.segment().asSlice(0, 20), DType.F32, 5);
            Kernels.add(ctx, a, a, same);
            assertArrayEquals(new float[] {2, 4, 6, 8, 10, 6}, buf.toFloatArray());
        }
        healthy();
    }
}
