package dev.panatron;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Tensor lifetimes, views, conversions and shape rules. */
class TensorTest {
    @Test
    void closeTwiceIsHarmlessAndClosedThrows() {
        Tensor t = Tensor.of(new float[] {1, 2, 3}, 3);
        assertTrue(t.isOpen());
        t.close();
        t.close();
        assertFalse(t.isOpen());
        assertThrows(IllegalStateException.class, t::segment);
        assertThrows(IllegalStateException.class, t::toFloatArray);
        assertThrows(IllegalStateException.class, () -> t.copyFrom(new float[] {1, 2, 3}));
        assertThrows(IllegalStateException.class, () -> t.reshape(3, 1));
        assertThrows(IllegalStateException.class, () -> t.slice(0, 0, 1));
        assertEquals("f32[3]", t.toString()); // metadata stays readable
        assertEquals(3, t.numel());
    }

    @Test
    void viewsSeeTheirParentClose() {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor v = t.reshape(3, 2);
        Tensor s = t.slice(1, 1, 2);
        Tensor ss = v.slice(0, 1, 2);
        assertTrue(v.isOpen() && s.isOpen() && ss.isOpen());
        t.close();
        assertFalse(v.isOpen());
        assertFalse(s.isOpen());
        assertFalse(ss.isOpen());
        assertThrows(IllegalStateException.class, v::toFloatArray);
        assertThrows(IllegalStateException.class, ss::segment);
    }

    @Test
    void closingAViewLeavesTheParentOpen() {
        try (Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2)) {
            Tensor v = t.slice(0, 1, 1);
            v.close();
            v.close();
            assertFalse(v.isOpen());
            assertTrue(t.isOpen());
            assertArrayEquals(new float[] {1, 2, 3, 4}, t.toFloatArray());
        }
    }

    @Test
    void wrappedMemoryFollowsItsArena() {
        Arena arena = Arena.ofConfined();
        MemorySegment seg = arena.allocate(16, 4);
        Tensor t = Tensor.wrap(seg, DType.F32, 4);
        t.fill(2f);
        assertArrayEquals(new float[] {2, 2, 2, 2}, t.toFloatArray());
        arena.close();
        assertFalse(t.isOpen());
        assertThrows(IllegalStateException.class, t::toFloatArray);
    }

    @Test
    void reshapeAndSlice() {
        float[] v = new float[24];
        for (int i = 0; i < v.length; i++) v[i] = i;
        try (Tensor t = Tensor.of(v, 2, 3, 4)) {
            Tensor r = t.reshape(6, -1);
            assertArrayEquals(new long[] {6, 4}, r.shape());
            assertArrayEquals(v, r.toFloatArray());
            Tensor s = t.slice(2, 1, 2); // [2, 3, 2], strided
            assertArrayEquals(new long[] {2, 3, 2}, s.shape());
            assertFalse(s.isContiguous());
            assertArrayEquals(new long[] {48, 16, 4}, s.strides());
            assertArrayEquals(new float[] {1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}, s.toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> s.reshape(12), "reshape of a strided view");
            Tensor m = t.slice(1, 2, 1);
            assertArrayEquals(new float[] {8, 9, 10, 11, 20, 21, 22, 23}, m.toFloatArray());
            assertEquals(0, t.slice(0, 1, 0).numel());
            assertThrows(IllegalArgumentException.class, () -> t.reshape(5, 5));
            assertThrows(IllegalArgumentException.class, () -> t.reshape(-1, -1));
            assertThrows(IllegalArgumentException.class, () -> t.slice(1, 2, 2));
            assertThrows(IllegalArgumentException.class, () -> t.slice(3, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> t.slice(0, -1, 1));
            s.copyFrom(new float[12]); // writes through the view only
            float[] after = t.toFloatArray();
            assertEquals(0f, after[1]);
            assertEquals(3f, after[3]);
        }
    }

    @Test
    void bf16AndF16RoundTrip() {
        Random r = new Random(42);
        float[] v = new float[1000];
        for (int i = 0; i < v.length; i++) v[i] = (float) ((r.nextDouble() - 0.5) * Math.pow(10, r.nextInt(12) - 6));
        v[0] = Float.NaN;
        v[1] = Float.NEGATIVE_INFINITY;
        v[2] = -0f;
        v[3] = 1.00390625f;  // exactly halfway between bf16 1.0 and 1.0078125: ties to even -> 1.0
        v[4] = 1.01171875f;  // halfway between 1.0078125 and 1.015625: ties to even -> 1.015625
        try (Tensor b = Tensor.of(DType.BF16, v, v.length); Tensor h = Tensor.of(DType.F16, v, v.length)) {
            float[] bv = b.toFloatArray(), hv = h.toFloatArray();
            assertTrue(Float.isNaN(bv[0]) && Float.isNaN(hv[0]));
            assertEquals(Float.NEGATIVE_INFINITY, bv[1]);
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(bv[2]));
            assertEquals(1.0f, bv[3]);
            assertEquals(1.015625f, bv[4]);
            for (int i = 5; i < v.length; i++) {
                assertEquals(ElemTestSupport.roundBf16(v[i]), bv[i], "bf16 of " + v[i]);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(v[i])), hv[i], "f16 of " + v[i]);
            }
            // the stored values survive a second round trip unchanged
            try (Tensor b2 = Tensor.of(DType.BF16, bv, v.length)) {
                float[] again = b2.toFloatArray();
                for (int i = 1; i < v.length; i++) assertEquals(Float.floatToRawIntBits(bv[i]), Float.floatToRawIntBits(again[i]));
            }
        }
        assertEquals((short) 0x3f80, Tensor.floatToBf16(1f));
        assertEquals(1f, Tensor.bf16ToFloat((short) 0x3f80));
    }

    @Test
    void u4PackingShapeRules() {
        assertThrows(IllegalArgumentException.class, () -> Tensor.allocate(DType.U4, 3, 5), "odd innermost u4 dim");
        try (Tensor t = Tensor.allocate(DType.U4, 3, 8)) {
            assertEquals(4 * 3, t.segment().byteSize(), "two codes per byte");
            assertArrayEquals(new long[] {4, 1}, t.strides());
            assertEquals(0, DType.U4.byteSize());
            assertEquals(4, DType.U4.bits());
            assertEquals(5, DType.U4.bytesFor(9));
            Tensor s = t.slice(1, 2, 4);
            assertArrayEquals(new long[] {3, 4}, s.shape());
            assertThrows(IllegalArgumentException.class, () -> t.slice(1, 1, 4), "odd start inside a byte");
            assertThrows(IllegalArgumentException.class, () -> t.slice(1, 2, 3), "odd length");
            Tensor rows = t.slice(0, 1, 2);
            assertArrayEquals(new long[] {2, 8}, rows.shape());
            assertThrows(IllegalArgumentException.class, () -> t.reshape(24, 1), "u4 reshape to an odd innermost dim");
            assertArrayEquals(new long[] {6, 4}, t.reshape(6, 4).shape());
            assertThrows(IllegalArgumentException.class, t::toFloatArray);
        }
    }

    @Test
    void wrapValidates() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = arena.allocate(64, 8);
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg, DType.F32, 4, 5), "too small");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg.asSlice(2), DType.F32, 2), "misaligned");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(MemorySegment.ofArray(new float[4]), DType.F32, 4), "heap");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg, DType.F32, new long[] {2, 2}, new long[] {8, 8}), "inner stride");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg, DType.F32, new long[] {2, 2}, new long[] {8}), "stride count");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg, DType.F32, 1, 2, 3, 4, 5), "5 dims");
            assertThrows(IllegalArgumentException.class, () -> Tensor.wrap(seg, DType.F32, -1), "negative dim");
            Tensor ok = Tensor.wrap(seg, DType.F32, new long[] {2, 3}, new long[] {32, 4}); // padded rows
            assertEquals(44, ok.segment().byteSize());
            seg.set(ValueLayout.JAVA_FLOAT, 32, 7f);
            assertEquals(7f, ok.toFloatArray()[3]);
        }
    }

    @Test
    void ofValidates() {
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[5], 2, 3));
        assertThrows(IllegalArgumentException.class, () -> Tensor.ofInts(new int[5], 2, 3));
        try (Tensor i = Tensor.ofInts(new int[] {1, -2, 3}, 3)) {
            assertArrayEquals(new int[] {1, -2, 3}, i.toIntArray());
            assertThrows(IllegalArgumentException.class, i::toFloatArray);
        }
    }
}
