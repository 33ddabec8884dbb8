package dev.panatron;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Prepared kernel calls ({@link Kernels.Call}, {@link Kernels#pack}): the same results as the
 * one-off methods (compared with a double-precision reference written here), contents that
 * change between runs are picked up, bad arguments are refused at preparation, and a closed
 * tensor, packed matrix or context is refused at run time.
 */
class PreparedCallTest {
    static float[] rand(Random r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (r.nextGaussian());
        return x;
    }

    /**
     * Runs {@code call} twice, each time on fresh random a [m, k] with c [m, n] poisoned first, and
     * checks c against act(a . w[n, k]^T + bias) in double, tolerance 2e-6 * sum |terms| + atol.
     */
    private static void runAgainstReference(Random r, Kernels.Call call, Tensor a, Tensor c, float[] wv, float[] bv,
                                            java.util.function.DoubleUnaryOperator act, double atol, String what) {
        int m = (int) a.dim(0), k = (int) a.dim(1), n = (int) c.dim(1);
        for (int round = 0; round < 2; round++) {
            float[] av = rand(r, m * k);
            a.copyFrom(av);
            c.fill(Float.NaN);
            call.run();
            assertLinear(c.toFloatArray(), av, wv, bv, m, n, k, act, atol, what + "round " + round);
        }
    }

    private static void assertLinear(float[] got, float[] av, float[] wv, float[] bv, int m, int n, int k,
                                     java.util.function.DoubleUnaryOperator act, double atol, String what) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = bv[j], sa = Math.abs(bv[j]);
                for (int q = 0; q < k; q++) {
                    s += (double) av[i * k + q] * wv[j * k + q];
                    sa += Math.abs((double) av[i * k + q] * wv[j * k + q]);
                }
                assertEquals(act.applyAsDouble(s), got[i * n + j], 2e-6 * sa + atol, "c[" + i + "][" + j + "] " + what);
            }
        }
    }

    @Test
    void packedMatmulMatchesTheReferenceAndSeesNewInputs() {
        Random r = new Random(3);
        int m = 7, k = 65, n = 33;
        try (Context ctx = Context.create(2)) {
            float[] wv = rand(r, n * k), bv = rand(r, n);
            Tensor w = Tensor.of(wv, n, k), bias = Tensor.of(bv, n), a = Tensor.allocate(DType.F32, m, k), c = Tensor.allocate(DType.F32, m, n);
            try (Kernels.PackedMatrix p = Kernels.pack(ctx, w, true, DType.F32)) {
                assertEquals(k, p.k());
                assertEquals(n, p.n());
                assertTrue(p.byteSize() >= (long) k * n * 4);
                Kernels.Call call = Kernels.prepareMatmul(ctx, a, p, bias, c, Kernels.MatmulOptions.DEFAULT.withActivation(Kernels.Activation.RELU));
                runAgainstReference(r, call, a, c, wv, bv, s -> Math.max(0, s), 1e-6, "");
                var bad = assertThrows(IllegalArgumentException.class, () -> Kernels.prepareMatmul(ctx, Tensor.allocate(DType.F32, m, k + 1), p, null, c,
                        Kernels.MatmulOptions.DEFAULT));
                assertTrue(bad.getMessage().contains("inner dims"), bad.getMessage());
                p.close();
                assertThrows(IllegalStateException.class, call::run);
            }
        }
    }

    @Test
    void denseMatmulMatchesTheReferenceAndSeesNewInputs() {
        // M = 1 and 2 (the small-M GEMV a decode step runs), odd N and K, weight [N, K], GELU (tanh) fused
        Random r = new Random(5);
        for (int m : new int[] {1, 2}) {
            int k = 127, n = 65;
            try (Context ctx = Context.create(2)) {
                float[] wv = rand(r, n * k), bv = rand(r, n);
                Tensor w = Tensor.of(wv, n, k), bias = Tensor.of(bv, n), a = Tensor.allocate(DType.F32, m, k), c = Tensor.allocate(DType.F32, m, n);
                Kernels.Call call = Kernels.prepareMatmul(ctx, a, w, bias, c, Kernels.MatmulOptions.LINEAR.withActivation(Kernels.Activation.GELU_TANH));
                runAgainstReference(r, call, a, c, wv, bv,
                        s -> 0.5 * s * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (s + 0.044715 * s * s * s))), 1e-5, "m " + m + " ");
                var bad = assertThrows(IllegalArgumentException.class, () -> Kernels.prepareMatmul(ctx, Tensor.allocate(DType.F32, m, k + 1), w, null, c,
                        Kernels.MatmulOptions.LINEAR));
                assertTrue(bad.getMessage().contains("inner dims"), bad.getMessage());
                w.close();
                assertThrows(IllegalStateException.class, call::run);
            }
        }
    }

    @Test
    void closedTensorsAndContextsAreRefusedAtRunTime() {
        Context ctx = Context.create(1);
        Tensor x = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3), out = Tensor.allocate(DType.F32, 2, 3);
        Tensor g = Tensor.of(new float[] {1, 1, 1}, 3), b = Tensor.of(new float[] {0, 0, 0}, 3);
        Kernels.Call ln = Kernels.prepareLayerNorm(ctx, x, g, b, 1e-5f, out);
        ln.run();
        float[] o = out.toFloatArray();
        double mean = 2, sd = Math.sqrt(2.0 / 3 + 1e-5);
        assertEquals((1 - mean) / sd, o[0], 1e-5);
        assertEquals((3 - mean) / sd, o[2], 1e-5);
        Kernels.Call add = Kernels.prepareAdd(ctx, x, x, out);
        out.close();
        assertThrows(IllegalStateException.class, add::run);
        ctx.close();
        assertThrows(IllegalStateException.class, ln::run);
        assertThrows(IllegalArgumentException.class, () -> Kernels.prepareSoftmax(Context.shared(), x, Float.NaN, x));
    }

    @Test
    void preparedAppendAndDecodeAttentionMatchTheReferenceAndSeeNewPositions() {
        Random r = new Random(11);
        int bs = 2, hkv = 3, h = 6, d = 20, smax = 37, g = h / hkv;
        try (Context ctx = Context.create(2)) {
            float[] kc0 = rand(r, bs * hkv * smax * d), vc0 = rand(r, bs * hkv * smax * d);
            Tensor kc = Tensor.of(kc0, bs, hkv, smax, d), vc = Tensor.of(vc0, bs, hkv, smax, d);
            float[] qv = rand(r, bs * h * d), kn = rand(r, bs * hkv * d), vn = rand(r, bs * hkv * d);
            Tensor q = Tensor.of(qv, bs, 1, h, d), kNew = Tensor.of(kn, bs, 1, hkv, d), vNew = Tensor.of(vn, bs, 1, hkv, d);
            Tensor start = Tensor.ofInts(new int[] {5, 30}, bs), lens = Tensor.ofInts(new int[] {6, 31}, bs);
            Tensor out = Tensor.allocate(DType.F32, bs, 1, h, d);
            Kernels.Call append = Kernels.prepareKvCacheAppend(ctx, kNew, vNew, start, kc, vc, null);
            Kernels.Call attend = Kernels.prepareFlashAttentionDecode(ctx, q, kc, vc, lens, out, AttentionOptions.CAUSAL);
            for (int round = 0; round < 2; round++) {
                int[] st = round == 0 ? new int[] {5, 30} : new int[] {6, 0};
                for (int b = 0; b < bs; b++) {
                    start.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, b, st[b]);
                    lens.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, b, st[b] + 1);
                }
                out.segment().fill((byte) 0xff); // NaN
                append.run();
                attend.run();
                float[] kAll = kc.toFloatArray(), vAll = vc.toFloatArray(), o = out.toFloatArray();
                for (int b = 0; b < bs; b++) {
                    for (int kv = 0; kv < hkv; kv++) {
                        int row = ((b * hkv + kv) * smax + st[b]) * d;
                        for (int i = 0; i < d; i++) {
                            assertEquals(kn[(b * hkv + kv) * d + i], kAll[row + i], "k row");
                            assertEquals(vn[(b * hkv + kv) * d + i], vAll[row + i], "v row");
                        }
                    }
                    for (int hh = 0; hh < h; hh++) {
                        int kv = hh / g, n = st[b] + 1;
                        double[] sc = new double[n];
                        double mx = Double.NEGATIVE_INFINITY, sum = 0;
                        for (int j = 0; j < n; j++) {
                            double dot = 0;
                            for (int i = 0; i < d; i++) dot += (double) qv[(b * h + hh) * d + i] * kAll[((b * hkv + kv) * smax + j) * d + i];
                            sc[j] = dot / Math.sqrt(d);
                            mx = Math.max(mx, sc[j]);
                        }
                        for (int j = 0; j < n; j++) sum += sc[j] = Math.exp(sc[j] - mx);
                        for (int i = 0; i < d; i++) {
                            double want = 0;
                            for (int j = 0; j < n; j++) want += sc[j] / sum * vAll[((b * hkv + kv) * smax + j) * d + i];
                            assertEquals(want, o[(b * h + hh) * d + i], 1e-5, "round " + round + " b " + b + " head " + hh + " dim " + i);
                        }
                    }
                }
            }
            // the start and length values are checked natively on each run
            start.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 1, smax);
            assertThrows(PanatronException.class, append::run);
            lens.segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_INT, 0, smax + 1);
            assertThrows(PanatronException.class, attend::run);
            // shapes are checked at preparation, closed tensors at run time
            assertThrows(IllegalArgumentException.class, () -> Kernels.prepareFlashAttentionDecode(ctx, q, kc, vc, Tensor.ofInts(new int[] {1}, 1), out,
                    AttentionOptions.CAUSAL));
            assertThrows(IllegalArgumentException.class, () -> Kernels.prepareKvCacheAppend(ctx, kNew, vNew, start, vc, kc.slice(3, 0, 7), null));
            kc.close();
            assertThrows(IllegalStateException.class, append::run);
            assertThrows(IllegalStateException.class, attend::run);
        }
    }
}
