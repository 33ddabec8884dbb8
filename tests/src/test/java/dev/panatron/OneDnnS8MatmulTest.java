package dev.panatron;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link OneDnnS8Matmul} (the int8 benchmarks' oneDNN baseline) against a plain
 * double-precision reference {@code y = xScale * wScale[n] * Σ x wq + bias}, at odd sizes with
 * NaN-poisoned outputs; bad arguments; UNSUPPORTED without oneDNN.
 */
class OneDnnS8MatmulTest {
    static final long SEED = System.nanoTime();

    static void fillS8(Tensor t, Random r) {
        for (long i = 0; i < t.numel(); i++) t.segment().set(ValueLayout.JAVA_BYTE, i, (byte) (r.nextInt(255) - 127));
    }

    @Test
    void matchesReference() {
        try (Context ctx = Context.create(2)) {
            Assumptions.assumeTrue(ctx.usesOneDnn(), "built without oneDNN");
            Random r = new Random(SEED);
            long[][] cases = {{1, 5, 3}, {7, 67, 131}, {63, 130, 65}};
            for (long[] c : cases) {
                int m = (int) c[0], k = (int) c[1], n = (int) c[2];
                try (Tensor wq = Tensor.allocate(DType.I8, n, k); Tensor ws = Tensor.allocate(DType.F32, n); Tensor x = Tensor.allocate(DType.I8, m, k);
                     Tensor bias = Tensor.allocate(DType.F32, n); Tensor y = Tensor.allocate(DType.F32, m, n)) {
                    fillS8(wq, r);
                    fillS8(x, r);
                    float[] wsv = new float[n], bv = new float[n];
                    for (int i = 0; i < n; i++) {
                        wsv[i] = (float) (0.001 + 0.02 * r.nextDouble());
                        bv[i] = (float) (r.nextDouble() * 2 - 1);
                    }
                    ws.copyFrom(wsv);
                    bias.copyFrom(bv);
                    float xs = (float) (0.001 + 0.05 * r.nextDouble());
                    boolean withBias = m % 2 == 1;
                    y.fill(Float.NaN);
                    try (OneDnnS8Matmul p = OneDnnS8Matmul.create(ctx, m, wq, ws)) {
                        p.run(ctx, x, xs, withBias ? bias : null, y);
                    }
                    float[] got = y.toFloatArray();
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            long acc = 0;
                            for (int t = 0; t < k; t++) {
                                acc += (long) x.segment().get(ValueLayout.JAVA_BYTE, (long) i * k + t) * wq.segment().get(ValueLayout.JAVA_BYTE, (long) j * k + t);
                            }
                            double want = (double) xs * wsv[j] * acc + (withBias ? bv[j] : 0);
                            assertEquals(want, got[i * n + j], 1e-4 + 1e-5 * Math.abs(want), "seed " + SEED + " m=" + m + " k=" + k + " n=" + n + " y[" + i + "," + j + "]");
                        }
                    }
                }
            }
        }
    }

    @Test
    void badArguments() {
        try (Context ctx = Context.create(2); Tensor wq = Tensor.allocate(DType.I8, 6, 5); Tensor ws = Tensor.allocate(DType.F32, 6);
             Tensor wf = Tensor.allocate(DType.F32, 6, 5); Tensor x = Tensor.allocate(DType.I8, 3, 5); Tensor xbad = Tensor.allocate(DType.I8, 3, 4);
             Tensor y = Tensor.allocate(DType.F32, 3, 6)) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> OneDnnS8Matmul.create(ctx, 0, wq, ws)).getMessage().contains("m must be >= 1"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> OneDnnS8Matmul.create(ctx, 3, wf, ws)).getMessage().contains("wq"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> OneDnnS8Matmul.create(ctx, 3, wq, Tensor.allocate(DType.F32, 5))).getMessage().contains("wScale"));
            if (!ctx.usesOneDnn()) {
                PanatronException e = assertThrows(PanatronException.class, () -> OneDnnS8Matmul.create(ctx, 3, wq, ws));
                assertTrue(e.getMessage().contains("oneDNN"), e.getMessage());
                return;
            }
            OneDnnS8Matmul p = OneDnnS8Matmul.create(ctx, 3, wq, ws);
            assertTrue(assertThrows(IllegalArgumentException.class, () -> p.run(ctx, xbad, 1f, null, y)).getMessage().contains("x must be"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> p.run(ctx, x, Float.NaN, null, y)).getMessage().contains("xScale"));
            assertTrue(assertThrows(IllegalArgumentException.class, () -> p.run(ctx, x, 1f, Tensor.allocate(DType.F32, 5), y)).getMessage().contains("bias"));
            p.run(ctx, x, 1f, null, y);
            p.close();
            p.close();
            assertThrows(IllegalStateException.class, () -> p.run(ctx, x, 1f, null, y));
            try (Context own = Context.create(2, false, 0)) {
                PanatronException e = assertThrows(PanatronException.class, () -> OneDnnS8Matmul.create(own, 3, wq, ws));
                assertTrue(e.getMessage().contains("oneDNN"), e.getMessage());
            }
        }
    }
}
