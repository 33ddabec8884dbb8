package dev.panatron;

import dev.panatron.ElemTestSupport.Path;
import dev.panatron.Kernels.RopeMode;
import dev.panatron.Kernels.RopeOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static dev.panatron.ElemTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * rope against a plain-Java double reference: NEOX and GPT-J pairs, partial rotary dims,
 * theta, freqScale, an invFreq table, [T, H, D] and [B, T, H, D] with [T] or [B, T]
 * positions, large positions, a K view of a fused QKV buffer, in place, f32/bf16, both paths.
 */
class RopeTest {
    static final long SEED = System.nanoTime();

    /** x: logical [B*T*H, D] values; pos [T] or [B, T] */
    static double[] ref(float[] x, int[] pos, boolean posBt, int b, int t, int h, int d, RopeOptions o) {
        int r = o.rotaryDim() == 0 ? d : o.rotaryDim(), half = r / 2;
        double fs = o.freqScale() == 0 ? 1 : o.freqScale();
        float[] inv = o.invFreq();
        double[] out = ElemTestSupport.toDouble(x);
        for (int bi = 0; bi < b; bi++) {
            for (int ti = 0; ti < t; ti++) {
                double p = pos[posBt ? bi * t + ti : ti];
                for (int hi = 0; hi < h; hi++) {
                    int base = ((bi * t + ti) * h + hi) * d;
                    for (int i = 0; i < half; i++) {
                        double f = inv != null ? inv[i] : Math.pow(o.theta(), -2.0 * i / r);
                        double ang = p * fs * f, c = Math.cos(ang), s = Math.sin(ang);
                        int ia = o.mode() == RopeMode.GPTJ ? 2 * i : i, ib = o.mode() == RopeMode.GPTJ ? 2 * i + 1 : i + half;
                        double a = x[base + ia], bb = x[base + ib];
                        out[base + ia] = a * c - bb * s;
                        out[base + ib] = bb * c + a * s;
                    }
                }
            }
        }
        return out;
    }

    void check(Context ctx, String what, int b, int t, int h, int d, DType xd, DType od, RopeOptions o, boolean posBt,
               boolean inPlace, int maxPos, Random r) {
        boolean batched = b > 0;
        int bb = batched ? b : 1;
        long[] shape = batched ? new long[] {bb, t, h, d} : new long[] {t, h, d};
        int[] pos = new int[posBt ? bb * t : t];
        for (int i = 0; i < pos.length; i++) pos[i] = (int) (r.nextDouble() * ((double) maxPos + 1));
        if (pos.length > 0) pos[0] = maxPos;
        try (Tensor x = tensor(xd, rand(r, bb * t * h * d, -1, 1), shape);
             Tensor p = posBt ? Tensor.ofInts(pos, bb, t) : Tensor.ofInts(pos, t);
             Tensor out = inPlace ? null : poisoned(od, shape)) {
            double[] want = ref(x.toFloatArray(), pos, posBt, bb, t, h, d, o);
            Tensor dst = inPlace ? x : out;
            Kernels.rope(ctx, x, p, o, dst);
            assertClose(dst.toFloatArray(), want, 1.5e-6, rtol(dst.dtype(), 1e-6), SEED,
                    what + " rope " + o + " " + x + " pos " + p + " -> " + dst);
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void modesSizesDtypes(Path path) {
        Random r = new Random(SEED);
        Context ctx = ctx(path);
        DType[] dts = {DType.F32, DType.BF16};
        for (int d : new int[] {2, 8, 30, 64, 96, 128}) {
            for (int k = 0; k < 4; k++) {
                DType xd = dts[k & 1], od = dts[k >> 1];
                check(ctx, path.name(), 0, 1 + r.nextInt(9), 1 + r.nextInt(4), d, xd, od, RopeOptions.neox(10000f), false, false, 4096, r);
                check(ctx, path.name(), 0, 1 + r.nextInt(9), 1 + r.nextInt(4), d, xd, od, RopeOptions.gptj(10000f), false, false, 4096, r);
            }
            int partial = Math.max(2, (d / 2) & ~1);
            check(ctx, path.name(), 0, 5, 3, d + 1, DType.F32, DType.F32, RopeOptions.neox(10000f).withRotaryDim(partial), false, false, 2048, r);
            check(ctx, path.name(), 2, 4, 2, d, DType.BF16, DType.BF16, RopeOptions.gptj(1e6f).withRotaryDim(partial), true, true, 100, r);
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void scalingOptionsAndBigPositions(Path path) {
        Random r = new Random(SEED + 1);
        Context ctx = ctx(path);
        float[] inv = new float[64];
        for (int i = 0; i < 64; i++) inv[i] = (float) (Math.pow(500000, -2.0 * i / 128) * (i < 20 ? 1 : 0.125));
        check(ctx, path.name(), 0, 6, 4, 128, DType.F32, DType.F32, RopeOptions.neox(500000f).withInvFreq(inv), false, false, 131072, r);
        check(ctx, path.name(), 0, 6, 2, 64, DType.F32, DType.F32, RopeOptions.neox(10000f).withFreqScale(0.25f), false, false, 16384, r);
        check(ctx, path.name(), 3, 5, 2, 64, DType.F32, DType.BF16, RopeOptions.gptj(10000f), false, false, 8192, r); // 4-D, shared [T]
        check(ctx, path.name(), 0, 3, 2, 64, DType.F32, DType.F32, RopeOptions.neox(10000f), false, false, Integer.MAX_VALUE, r);
        check(ctx, path.name(), 0, 200, 8, 128, DType.BF16, DType.F32, RopeOptions.neox(10000f), false, true, 32768, r); // threaded
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void kViewOfFusedQkv(Path path) {
        Random r = new Random(SEED + 2);
        Context ctx = ctx(path);
        int t = 9, h = 4, d = 32, w = 3 * h * d;
        float[] all = rand(r, t * w, -1, 1);
        int[] pos = new int[t];
        for (int i = 0; i < t; i++) pos[i] = 100 + i;
        try (Tensor qkv = Tensor.of(all, t, w); Tensor p = Tensor.ofInts(pos, t)) {
            // K = columns [h*d, 2*h*d) of each row, viewed as [T, H, D] with the fused row stride
            MemorySegment kSeg = qkv.segment().asSlice((long) h * d * 4);
            Tensor k = Tensor.wrap(kSeg, DType.F32, new long[] {t, h, d}, new long[] {w * 4L, d * 4L, 4});
            float[] kv = k.toFloatArray();
            double[] wantK = ref(kv, pos, false, 1, t, h, d, RopeOptions.DEFAULT);
            Kernels.rope(ctx, k, p, RopeOptions.DEFAULT, k);
            assertClose(k.toFloatArray(), wantK, 1.5e-6, 1e-6, SEED, path + " rope on the K view");
            float[] after = qkv.toFloatArray(); // Q and V untouched
            for (int row = 0; row < t; row++) {
                for (int j = 0; j < w; j++) {
                    if (j >= h * d && j < 2 * h * d) continue;
                    assertEquals(all[row * w + j], after[row * w + j], "rope wrote outside K at [" + row + ", " + j + "]");
                }
            }
        }
    }

    @Test
    void optionsValidateAndCopy() {
        float[] inv = {1f, 0.5f};
        RopeOptions o = RopeOptions.neox(10000f).withInvFreq(inv).withRotaryDim(4);
        inv[0] = 99f;
        assertEquals(1f, o.invFreq()[0], "the table is copied in");
        o.invFreq()[1] = 77f;
        assertEquals(0.5f, o.invFreq()[1], "and copied out");
        assertEquals(o, RopeOptions.neox(10000f).withRotaryDim(4).withInvFreq(new float[] {1f, 0.5f}));
        assertNotEquals(o, RopeOptions.neox(10000f).withRotaryDim(4));
        assertNull(RopeOptions.DEFAULT.invFreq());
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.neox(10000f).withRotaryDim(3));
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.neox(10000f).withRotaryDim(-2));
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.neox(0f));
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.gptj(Float.NaN));
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.neox(1e4f).withFreqScale(Float.POSITIVE_INFINITY));
        assertThrows(IllegalArgumentException.class, () -> RopeOptions.neox(1e4f).withInvFreq(new float[] {Float.NaN}));
        assertThrows(NullPointerException.class, () -> new RopeOptions(null, 0, 1e4f, 0f, null));
    }
}
