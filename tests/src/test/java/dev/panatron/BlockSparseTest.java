package dev.panatron;

import dev.panatron.Kernels.Activation;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link BlockSparse}: block norms, per-layer / threshold / mask pruning (exactly the
 * largest-norm blocks are kept), the stored values (f32, bf16, per-channel int8) and the SpMM
 * against a double-precision reference on the densified pruned weight (int8: the same quantized
 * math with exact integer sums), odd sizes, every block shape, both weight layouts, f32/bf16
 * activations and outputs, epilogues, NaN-poisoned outputs, the AVX-512/VNNI and portable
 * kernels; plus bad arguments.
 */
class BlockSparseTest {
    static final long SEED = System.nanoTime();
    static final Context[] CTX = {
            Context.create(2, true, 0),
            Context.create(1, true, CpuCaps.AVX512F | CpuCaps.AVX512_VNNI | CpuCaps.AVX2),
    };

    @AfterAll
    static void close() {
        for (Context c : CTX) c.close();
    }

    static float[] rand(Random r, int n, double lo, double hi) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (lo + (hi - lo) * r.nextDouble());
        return v;
    }

    static double act(double v, Activation a) {
        return switch (a) {
            case NONE -> v;
            case RELU -> Math.max(v, 0);
            case GELU_ERF -> 0.5 * v * (1 + erf(v / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)));
            case SILU -> v / (1 + Math.exp(-v));
        };
    }

    /** erf to ~1e-15 (Abramowitz-Stegun would be too coarse): series / continued fraction. */
    static double erf(double x) {
        double ax = Math.abs(x);
        double r;
        if (ax < 2.5) {
            double sum = 0, term = ax;
            for (int n = 0; n < 200; n++) {
                sum += term / (2 * n + 1);
                term *= -ax * ax / (n + 1);
                if (Math.abs(term) < 1e-18) break;
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            double f = 0;
            for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        }
        return x < 0 ? -r : r;
    }

    static float rne(float v) { return (float) Math.rint(v); }

    static float bf16(float v) { return Tensor.bf16ToFloat(Tensor.floatToBf16(v)); }

    /** w stored [K, N] or [N, K]: logical element (k, n). */
    static float wl(float[] w, boolean tb, int k, int n, int K, int N) { return tb ? w[n * K + k] : w[k * N + n]; }

    @Test
    void pruneKeepsLargestBlocksAndSpmmMatchesReference() {
        Random rnd = new Random(SEED);
        int[][] sizes = {{1, 1, 1}, {7, 63, 65}, {65, 127, 63}, {127, 65, 7}, {16, 130, 33}};
        int[][] blocks = {{4, 1}, {1, 4}, {16, 1}, {64, 16}, {32, 16}, {3, 5}};
        double[] sps = {0.0, 0.5, 0.9, 1.0};
        DType[] dts = {DType.F32, DType.BF16, DType.I8};
        Activation[] acts = {Activation.NONE, Activation.GELU_ERF, Activation.GELU_TANH};
        int caseNo = 0;
        for (Context ctx : CTX) {
            for (int[] s : sizes) {
                for (int[] b : blocks) {
                    for (DType dt : dts) {
                        caseNo++;
                        int m = s[0], K = s[1], N = s[2], bk = b[0], bn = b[1];
                        double sp = sps[caseNo % 4];
                        boolean tb = caseNo % 2 == 1, xbf = caseNo % 3 == 0, ybf = caseNo % 5 == 0, biasOn = caseNo % 2 == 0;
                        Activation a = acts[caseNo % 3];
                        String what = "case " + caseNo + " seed " + SEED + ": m=" + m + " K=" + K + " N=" + N + " block " + bk + "x" + bn + " " + dt
                                + " s=" + sp + " tb=" + tb + " xbf=" + xbf + " ybf=" + ybf + " bias=" + biasOn + " " + a;
                        runCase(ctx, rnd, m, K, N, bk, bn, dt, sp, tb, xbf, ybf, biasOn, a, what);
                    }
                }
            }
        }
    }

    static void runCase(Context ctx, Random rnd, int m, int K, int N, int bk, int bn, DType dt, double sp, boolean tb, boolean xbf, boolean ybf,
                        boolean biasOn, Activation a, String what) {
        float[] w = rand(rnd, K * N, -0.5, 0.5);
        float[] x = rand(rnd, m * K, -1, 1);
        float[] bias = rand(rnd, N, -1, 1);
        if (xbf) for (int i = 0; i < x.length; i++) x[i] = bf16(x[i]);
        int KB = (K + bk - 1) / bk, NB = (N + bn - 1) / bn, total = KB * NB;
        double[] nrm = new double[total];
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) {
                double v = wl(w, tb, k, n, K, N);
                nrm[(k / bk) * NB + n / bn] += v * v;
            }
        for (int i = 0; i < total; i++) nrm[i] = Math.sqrt(nrm[i]);
        int nkeep = total - (int) Math.floor(sp * total + 0.5);
        Integer[] order = new Integer[total];
        for (int i = 0; i < total; i++) order[i] = i;
        Arrays.sort(order, (p, q) -> nrm[p] != nrm[q] ? Double.compare(nrm[q], nrm[p]) : Integer.compare(p, q));
        boolean[] keep = new boolean[total];
        for (int i = 0; i < nkeep; i++) keep[order[i]] = true;

        try (Tensor tw = Tensor.of(w, tb ? N : K, tb ? K : N); Tensor tx = Tensor.of(xbf ? DType.BF16 : DType.F32, x, m, K);
             Tensor tbias = Tensor.of(bias, N); Tensor y = Tensor.allocate(ybf ? DType.BF16 : DType.F32, m, N)) {
            float[] norms = BlockSparse.blockNorms(ctx, tw, tb, bk, bn);
            assertEquals(total, norms.length, what);
            for (int i = 0; i < total; i++) assertEquals(nrm[i], norms[i], 1e-6 * nrm[i] + 1e-30, what + " norm " + i);
            try (BlockSparse.Weight bw = BlockSparse.prune(ctx, tw, tb, bk, bn, sp, dt)) {
                assertEquals(nkeep, bw.keptBlocks(), what);
                assertEquals(total, bw.totalBlocks(), what);
                assertEquals(K, bw.k(), what);
                assertEquals(N, bw.n(), what);
                assertEquals(dt, bw.dtype(), what);
                assertEquals(total == 0 ? 0 : 1.0 - (double) nkeep / total, bw.sparsity(), 1e-12, what);
                assertEquals((long) K * N * 4, bw.denseBytes(), what);
                assertTrue(bw.bytes() > 0, what);
                // the reference weight: kept elements as the dtype stores them
                double[] wref = new double[K * N];
                for (int n = 0; n < N; n++) {
                    float amax = 0;
                    for (int k = 0; k < K; k++) if (keep[(k / bk) * NB + n / bn]) amax = Math.max(amax, Math.abs(wl(w, tb, k, n, K, N)));
                    float inv = amax > 0 ? 127f / amax : 0f;
                    for (int k = 0; k < K; k++) {
                        if (!keep[(k / bk) * NB + n / bn]) continue;
                        float v = wl(w, tb, k, n, K, N);
                        wref[k * N + n] = switch (dt) {
                            case F32 -> v;
                            case BF16 -> bf16(v);
                            default -> Math.max(-127f, Math.min(127f, rne(v * inv))) * (double) (amax / 127f);
                        };
                    }
                }
                try (Tensor dense = bw.toDense(ctx)) {
                    float[] d = dense.toFloatArray();
                    for (int i = 0; i < K * N; i++) assertEquals(wref[i], d[i], 1e-6 * Math.abs(wref[i]) + 1e-7, what + " densified " + i);
                }
                // reference y
                double[] ref = new double[m * N];
                for (int i = 0; i < m; i++) {
                    float xam = 0;
                    for (int k = 0; k < K; k++) xam = Math.max(xam, Math.abs(x[i * K + k]));
                    float xinv = xam > 0 ? 127f / xam : 0f;
                    for (int n = 0; n < N; n++) {
                        double s;
                        if (dt == DType.I8) {
                            float wam = 0;
                            for (int k = 0; k < K; k++) if (keep[(k / bk) * NB + n / bn]) wam = Math.max(wam, Math.abs(wl(w, tb, k, n, K, N)));
                            float winv = wam > 0 ? 127f / wam : 0f;
                            long acc = 0;
                            for (int k = 0; k < K; k++) {
                                if (!keep[(k / bk) * NB + n / bn]) continue;
                                long q = (long) Math.max(-127f, Math.min(127f, rne(wl(w, tb, k, n, K, N) * winv)));
                                long xq = (long) Math.max(-127f, Math.min(127f, rne(x[i * K + k] * xinv)));
                                acc += q * xq;
                            }
                            s = acc * (double) (xam / 127f) * (double) (wam / 127f);
                        } else {
                            s = 0;
                            for (int k = 0; k < K; k++) s += (double) x[i * K + k] * wref[k * N + n];
                        }
                        ref[i * N + n] = act(s + (biasOn ? bias[n] : 0), a);
                    }
                }
                float[] nan = new float[m * N];
                Arrays.fill(nan, Float.NaN);
                y.copyFrom(nan);
                BlockSparse.matmul(ctx, tx, bw, biasOn ? tbias : null, a, y);
                float[] got = y.toFloatArray();
                double atol = ybf ? 8e-3 : 2e-5 * Math.sqrt(K + 1), rtol = ybf ? 8e-3 : 2e-5;
                for (int i = 0; i < m * N; i++) {
                    assertFalse(Float.isNaN(got[i]), what + " y[" + i + "] not written");
                    assertEquals(ref[i], got[i], atol + rtol * Math.abs(ref[i]), what + " y[" + i + "]");
                }
            }
        }
    }

    @Test
    void globalThresholdAndMask() {
        Random rnd = new Random(SEED + 1);
        Context ctx = CTX[0];
        float[] w1 = rand(rnd, 64 * 48, -1, 1), w2 = rand(rnd, 32 * 96, -0.3, 0.3);
        try (Tensor t1 = Tensor.of(w1, 64, 48); Tensor t2 = Tensor.of(w2, 32, 96)) {
            float[] n1 = BlockSparse.blockNorms(ctx, t1, 4, 1), n2 = BlockSparse.blockNorms(ctx, t2, 4, 1);
            double thr = BlockSparse.globalThreshold(new float[][] {n1, n2}, 0.8);
            try (BlockSparse.Weight b1 = BlockSparse.fromThreshold(ctx, t1, false, 4, 1, thr, DType.F32);
                 BlockSparse.Weight b2 = BlockSparse.fromThreshold(ctx, t2, false, 4, 1, thr, DType.F32)) {
                long total = b1.totalBlocks() + b2.totalBlocks(), kept = b1.keptBlocks() + b2.keptBlocks();
                assertEquals(Math.round(0.2 * total), kept, "global 80% keeps 20% of all blocks");
                // the second layer has smaller weights: it must be pruned harder
                assertTrue(b2.sparsity() > b1.sparsity(), b1 + " vs " + b2);
                long want1 = 0;
                for (float v : n1) if (v >= thr) want1++;
                assertEquals(want1, b1.keptBlocks());
            }
            assertEquals(0.0, BlockSparse.globalThreshold(new float[][] {n1}, 0.0));
            double all = BlockSparse.globalThreshold(new float[][] {n1}, 1.0);
            try (BlockSparse.Weight none = BlockSparse.fromThreshold(ctx, t1, false, 4, 1, all, DType.I8)) {
                assertEquals(0, none.keptBlocks());
            }
            boolean[] keep = new boolean[16 * 48];
            for (int i = 0; i < keep.length; i++) keep[i] = i % 3 == 1;
            try (BlockSparse.Weight bm = BlockSparse.fromMask(ctx, t1, false, 4, 1, keep, DType.F32); Tensor d = bm.toDense(ctx)) {
                float[] dv = d.toFloatArray();
                for (int k = 0; k < 64; k++)
                    for (int n = 0; n < 48; n++) assertEquals(keep[(k / 4) * 48 + n] ? w1[k * 48 + n] : 0f, dv[k * 48 + n]);
            }
        }
    }

    @Test
    void badArguments() {
        Context ctx = CTX[0];
        try (Tensor w = Tensor.of(new float[8 * 6], 8, 6); Tensor x = Tensor.allocate(DType.F32, 3, 8); Tensor y = Tensor.allocate(DType.F32, 3, 6);
             Tensor yBad = Tensor.allocate(DType.F32, 3, 7); Tensor xBad = Tensor.allocate(DType.F32, 3, 7); Tensor bBad = Tensor.allocate(DType.F32, 5);
             Tensor xi = Tensor.allocate(DType.I32, 3, 8); Tensor w3 = Tensor.allocate(DType.F32, 2, 8, 6)) {
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w, 0, 1, 0.5));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w, 4, 65, 0.5));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w, 4, 1, 1.5));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w, 4, 1, Double.NaN));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w3, 4, 1, 0.5));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.prune(ctx, w, false, 4, 1, 0.5, DType.F16));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.fromThreshold(ctx, w, false, 4, 1, -1, DType.F32));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.fromMask(ctx, w, false, 4, 1, new boolean[5], DType.F32));
            assertThrows(IllegalArgumentException.class, () -> BlockSparse.globalThreshold(new float[][] {{1f}}, 2.0));
            try (BlockSparse.Weight bw = BlockSparse.prune(ctx, w, 4, 1, 0.5)) {
                var ex = assertThrows(IllegalArgumentException.class, () -> BlockSparse.matmul(ctx, xBad, bw, null, Activation.NONE, y));
                assertTrue(ex.getMessage().contains("K=7"), ex.getMessage());
                assertThrows(IllegalArgumentException.class, () -> BlockSparse.matmul(ctx, x, bw, null, Activation.NONE, yBad));
                assertThrows(IllegalArgumentException.class, () -> BlockSparse.matmul(ctx, x, bw, bBad, Activation.NONE, y));
                assertThrows(IllegalArgumentException.class, () -> BlockSparse.matmul(ctx, xi, bw, null, Activation.NONE, y));
                assertThrows(IllegalArgumentException.class, () -> BlockSparse.matmul(ctx, x, bw, null, Activation.NONE, x.reshape(3, 8).slice(1, 0, 6)));
                assertThrows(NullPointerException.class, () -> BlockSparse.matmul(ctx, x, bw, null, null, y));
                bw.close();
                bw.close();
                assertThrows(IllegalStateException.class, () -> BlockSparse.matmul(ctx, x, bw, null, Activation.NONE, y));
            }
        }
        try (Tensor w = Tensor.of(new float[] {1, 2, Float.POSITIVE_INFINITY, 4}, 2, 2)) {
            assertThrows(PanatronException.class, () -> BlockSparse.prune(ctx, w, 1, 1, 0.5));
        }
    }
}
