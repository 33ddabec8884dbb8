package dev.panatron;

import dev.panatron.Kernels.Activation;
import dev.panatron.QuantKernels.Int8Mode;
import dev.panatron.QuantKernels.Int8Options;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link QuantKernels}: int8 weight quantization and {@code matmulInt8} (LLM.int8, W8A8,
 * weight-only) against a double-precision reference of the same quantized math written here,
 * on random inputs with planted outlier columns, odd sizes, NaN-poisoned outputs, the AMX /
 * VNNI / portable kernels, packed and unpacked weights; plus bad arguments.
 */
class QuantKernelsTest {
    static final long SEED = System.nanoTime();
    static final Context[] CTX = {
            Context.create(2, true, 0),
            Context.create(2, true, CpuCaps.AMX_INT8),
            Context.create(1, true, CpuCaps.AVX512F | CpuCaps.AVX2),
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

    @Test
    void matchesReferenceOfTheQuantizedMath() {
        Random rnd = new Random(SEED);
        int[][] shapes = {{1, 5, 3}, {7, 67, 131}, {63, 130, 70}, {129, 301, 65}};
        int caseNo = 0;
        for (Context ctx : CTX) {
            for (int[] s : shapes) {
                for (Int8Mode mode : Int8Mode.values()) {
                    caseNo++;
                    int m = s[0], k = s[1], n = s[2];
                    float[] w = rand(rnd, n * k, -0.5, 0.5);
                    float[] x = rand(rnd, m * k, -2, 2);
                    float[] b = rand(rnd, n, -1, 1);
                    int col = rnd.nextInt(k);
                    for (int r = 0; r < m; r += 2) x[r * k + col] = (float) ((r % 4 == 0 ? 1 : -1) * (7 + 10 * rnd.nextDouble()));
                    boolean packedW = caseNo % 2 == 0, useWo = caseNo % 3 == 0;
                    Activation act = caseNo % 4 == 1 ? Activation.GELU_ERF : Activation.NONE;
                    try (Tensor tw = Tensor.of(w, n, k); Tensor tx = Tensor.of(x, m, k); Tensor tb = Tensor.of(b, n);
                         Tensor wq = Tensor.allocate(DType.I8, n, k); Tensor ws = Tensor.allocate(DType.F32, n);
                         Tensor y = Tensor.allocate(DType.F32, m, n);
                         Tensor packed = Tensor.allocate(DType.I8, QuantKernels.int8PackedBytes(n, k))) {
                        QuantKernels.quantizeInt8Weight(ctx, tw, wq, ws);
                        byte[] q = new byte[n * k];
                        for (int i = 0; i < n * k; i++) q[i] = wq.segment().get(ValueLayout.JAVA_BYTE, i);
                        float[] sc = ws.toFloatArray();
                        for (int i = 0; i < n; i++) { // the weight quantization itself
                            float amax = 0;
                            for (int p = 0; p < k; p++) amax = Math.max(amax, Math.abs(w[i * k + p]));
                            assertEquals(amax / 127.0f, sc[i], "scale " + i + " seed " + SEED);
                            float inv = amax > 0 ? 127.0f / amax : 0;
                            for (int p = 0; p < k; p++) assertEquals((byte) Math.rint(w[i * k + p] * inv), q[i * k + p], "wq seed " + SEED);
                        }
                        if (packedW) QuantKernels.packInt8Weight(ctx, wq, packed);
                        y.copyFrom(filled(m * n, Float.NaN));
                        QuantKernels.matmulInt8(ctx, tx, wq, ws, useWo ? tw : null, tb, y, new Int8Options(mode, act, 6.0f),
                                packedW ? packed : null);
                        double[] ref = reference(x, w, q, sc, b, m, k, n, mode, useWo, act);
                        float[] got = y.toFloatArray();
                        for (int i = 0; i < m * n; i++) {
                            double tol = 1e-4 + 2e-5 * Math.abs(ref[i]);
                            assertTrue(Math.abs(got[i] - ref[i]) <= tol, "case " + caseNo + " mode " + mode + " [" + m + "," + k + "," + n + "] i " + i
                                    + ": got " + got[i] + " want " + ref[i] + " (seed " + SEED + ")");
                        }
                    }
                }
            }
        }
    }

    static float[] filled(int n, float v) {
        float[] a = new float[n];
        java.util.Arrays.fill(a, v);
        return a;
    }

    static double[] reference(float[] x, float[] w, byte[] q, float[] sc, float[] b, int m, int k, int n, Int8Mode mode, boolean useWo,
                              Activation act) {
        boolean[] outl = new boolean[k];
        if (mode == Int8Mode.LLM) {
            for (int j = 0; j < k; j++) for (int r = 0; r < m; r++) if (Math.abs(x[r * k + j]) >= 6.0f) outl[j] = true;
        }
        double[] out = new double[m * n];
        for (int r = 0; r < m; r++) {
            float amax = 0;
            for (int j = 0; j < k; j++) if (!outl[j]) amax = Math.max(amax, Math.abs(x[r * k + j]));
            float inv = amax > 0 ? 127.0f / amax : 0;
            double sx = amax / 127.0f;
            for (int c = 0; c < n; c++) {
                double v;
                if (mode == Int8Mode.WEIGHT_ONLY) {
                    v = 0;
                    for (int j = 0; j < k; j++) v += (double) x[r * k + j] * q[c * k + j] * sc[c];
                } else {
                    long acc = 0;
                    double o = 0;
                    for (int j = 0; j < k; j++) {
                        if (outl[j]) o += (double) x[r * k + j] * (useWo ? w[c * k + j] : (double) q[c * k + j] * sc[c]);
                        else acc += (long) Math.rint(x[r * k + j] * inv) * q[c * k + j];
                    }
                    v = acc * sx * sc[c] + o;
                }
                v += b[c];
                if (act == Activation.GELU_ERF) v = 0.5 * v * (1 + erf(v / Math.sqrt(2)));
                out[r * n + c] = v;
            }
        }
        return out;
    }

    /** erf to ~1e-12 (series / continued fraction), enough for the reference. */
    static double erf(double z) {
        double t = 1.0 / (1.0 + 0.5 * Math.abs(z));
        double ans = 1 - t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
                + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
        return z >= 0 ? ans : -ans;
    }

    @Test
    void rejectsBadArguments() {
        Context ctx = CTX[0];
        try (Tensor w = Tensor.allocate(DType.F32, 3, 4); Tensor wq = Tensor.allocate(DType.I8, 3, 4); Tensor ws = Tensor.allocate(DType.F32, 3);
             Tensor x = Tensor.allocate(DType.F32, 2, 4); Tensor x5 = Tensor.allocate(DType.F32, 2, 5); Tensor y = Tensor.allocate(DType.F32, 2, 3);
             Tensor badPacked = Tensor.allocate(DType.I8, 8)) {
            QuantKernels.quantizeInt8Weight(ctx, w, wq, ws);
            var e = assertThrows(IllegalArgumentException.class, () -> QuantKernels.matmulInt8(ctx, x5, wq, ws, null, null, y, Int8Options.LLM_INT8));
            assertTrue(e.getMessage().contains("K=5"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> QuantKernels.matmulInt8(ctx, x, w, ws, null, null, y, Int8Options.W8A8));
            assertTrue(e.getMessage().contains("wq"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> QuantKernels.matmulInt8(ctx, x, wq, ws, null, null, x, Int8Options.W8A8));
            assertTrue(e.getMessage().contains("y"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> QuantKernels.matmulInt8(ctx, x, wq, ws, null, null, y, Int8Options.W8A8, badPacked));
            assertTrue(e.getMessage().contains("wPacked"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new Int8Options(Int8Mode.LLM, Activation.NONE, -1f));
            assertTrue(e.getMessage().contains("threshold"), e.getMessage());
            w.copyFrom(new float[] {0, 0, 0, 0, 0, Float.POSITIVE_INFINITY, 0, 0, 0, 0, 0, 0});
            var pe = assertThrows(PanatronException.class, () -> QuantKernels.quantizeInt8Weight(ctx, w, wq, ws));
            assertTrue(pe.getMessage().contains("w[1, 1]"), pe.getMessage());
        }
        Tensor closed = Tensor.allocate(DType.F32, 2, 4);
        closed.close();
        try (Tensor wq = Tensor.allocate(DType.I8, 3, 4); Tensor ws = Tensor.allocate(DType.F32, 3); Tensor y = Tensor.allocate(DType.F32, 2, 3)) {
            assertThrows(IllegalStateException.class, () -> QuantKernels.matmulInt8(ctx, closed, wq, ws, null, null, y, Int8Options.LLM_INT8));
        }
    }
}
