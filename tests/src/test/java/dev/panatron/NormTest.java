package dev.panatron;

import dev.panatron.ElemTestSupport.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Random;

import static dev.panatron.ElemTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * layerNorm, rmsNorm, their residual-add fusions and softmax against plain-Java double
 * references: fresh random inputs, odd sizes, f32/bf16 in every combination, NaN-poisoned
 * outputs, strided views, in place, both native paths.
 */
class NormTest {
    static final long SEED = System.nanoTime();
    static final DType[] DTS = {DType.F32, DType.BF16};

    /** rows x cols of v, normalized; beta null for none; rms: no mean, no beta. */
    static double[] refNorm(float[] v, int rows, int cols, float[] g, float[] b, double eps, boolean rms) {
        double[] out = new double[rows * cols];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            if (!rms) {
                for (int j = 0; j < cols; j++) mean += v[r * cols + j];
                mean /= cols;
            }
            for (int j = 0; j < cols; j++) var += (v[r * cols + j] - mean) * (v[r * cols + j] - mean);
            var /= cols;
            double rs = 1 / Math.sqrt(var + eps);
            for (int j = 0; j < cols; j++) out[r * cols + j] = (v[r * cols + j] - mean) * rs * g[j] + (b == null ? 0 : b[j]);
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void layerNormAndRmsNorm(Path path) {
        Random r = new Random(SEED);
        Context ctx = ctx(path);
        for (boolean rms : new boolean[] {false, true}) {
            for (int cols : SIZES) {
                for (int k = 0; k < 4; k++) {
                    DType xd = DTS[k & 1], od = DTS[k >> 1];
                    int rows = 1 + r.nextInt(17);
                    boolean withBeta = !rms && (k + cols) % 2 == 0;
                    float[] gv = rand(r, cols, 0.5, 1.5), bv = rand(r, cols, -1, 1);
                    try (Tensor x = tensor(xd, rand(r, rows * cols, -3, 5), rows, cols); Tensor g = Tensor.of(gv, cols);
                         Tensor b = Tensor.of(bv, cols); Tensor out = poisoned(od, rows, cols)) {
                        float eps = 1e-5f;
                        if (rms) Kernels.rmsNorm(ctx, x, g, eps, out);
                        else Kernels.layerNorm(ctx, x, g, withBeta ? b : null, eps, out);
                        double[] want = refNorm(x.toFloatArray(), rows, cols, gv, withBeta ? bv : null, eps, rms);
                        assertClose(out.toFloatArray(), want, 2e-5, rtol(od, 3e-6), SEED,
                                path + (rms ? " rmsNorm " : " layerNorm ") + x + " beta=" + withBeta + " -> " + out);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void layerNormStridedInPlaceBertEps(Path path) {
        Random r = new Random(SEED + 1);
        Context ctx = ctx(path);
        int rows = 129, cols = 384; // threaded (above the grain)
        float[] gv = rand(r, cols, 0.5, 1.5), bv = rand(r, cols, -1, 1);
        Tensor[] sx = strided(DType.F32, rand(r, rows * cols, -2, 2), rows, cols, 7);
        try (Tensor back = sx[1]; Tensor g = Tensor.of(gv, cols); Tensor b = Tensor.of(bv, cols)) {
            Tensor x = sx[0];
            double[] want = refNorm(x.toFloatArray(), rows, cols, gv, bv, 1e-12, false);
            Kernels.layerNorm(ctx, x, g, b, 1e-12f, x);
            assertClose(x.toFloatArray(), want, 2e-5, 3e-6, SEED, path + " layerNorm in place on a strided view");
            float[] whole = back.toFloatArray();
            for (int row = 0; row < rows; row++) assertTrue(Float.isNaN(whole[row * (cols + 7) + cols]), "padding written");
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void fusedAddNorms(Path path) {
        Random r = new Random(SEED + 2);
        Context ctx = ctx(path);
        for (boolean rms : new boolean[] {false, true}) {
            for (int cols : new int[] {1, 7, 65, 384, 1000, 16411}) { // 16411: past the fused kernel's scratch row
                for (int k = 0; k < 8; k++) {
                    DType xd = DTS[k & 1], rd = DTS[(k >> 1) & 1], od = DTS[k >> 2];
                    int rows = cols > 10000 ? 2 : 1 + r.nextInt(9), mode = (k + cols) % 3; // 0: no sumOut, 1: sumOut, 2: sumOut = residual
                    float[] gv = rand(r, cols, 0.5, 1.5), bv = rand(r, cols, -1, 1);
                    try (Tensor x = tensor(xd, rand(r, rows * cols, -2, 2), rows, cols);
                         Tensor res = tensor(rd, rand(r, rows * cols, -2, 2), rows, cols);
                         Tensor g = Tensor.of(gv, cols); Tensor b = Tensor.of(bv, cols);
                         Tensor out = poisoned(od, rows, cols); Tensor sum = poisoned(DType.F32, rows, cols)) {
                        float[] xv = x.toFloatArray(), rv = res.toFloatArray();
                        DType sd = mode == 2 ? rd : DType.F32;
                        float[] s = new float[rows * cols];
                        double[] wantSum = new double[s.length];
                        for (int i = 0; i < s.length; i++) {
                            wantSum[i] = (double) xv[i] + rv[i];
                            // with sumOut the norm reads the sum as stored (rounded to its dtype)
                            s[i] = mode == 0 ? (float) wantSum[i] : (float) round(sd, wantSum[i]);
                        }
                        Tensor sumOut = mode == 0 ? null : mode == 1 ? sum : res;
                        if (rms) Kernels.addRmsNorm(ctx, x, res, g, 1e-5f, out, sumOut);
                        else Kernels.addLayerNorm(ctx, x, res, g, b, 1e-5f, out, sumOut);
                        double[] want = refNorm(s, rows, cols, gv, rms ? null : bv, 1e-5, rms);
                        String what = path + (rms ? " addRmsNorm " : " addLayerNorm ") + x + " + " + res + " -> " + out + " mode " + mode;
                        assertClose(out.toFloatArray(), want, 2e-5, rtol(od, 3e-6), SEED, what);
                        if (mode > 0) assertClose(sumOut.toFloatArray(), wantSum, 1e-6, rtol(sd, 1e-7), SEED, what + " sumOut");
                    }
                }
            }
        }
    }

    static double[] refSoftmax(float[] v, int rows, int cols, double scale) {
        double[] out = new double[v.length];
        for (int r = 0; r < rows; r++) {
            double m = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < cols; j++) m = Math.max(m, scale * v[r * cols + j]);
            for (int j = 0; j < cols; j++) sum += Math.exp(scale * v[r * cols + j] - m);
            for (int j = 0; j < cols; j++) out[r * cols + j] = Math.exp(scale * v[r * cols + j] - m) / sum;
        }
        return out;
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void softmax(Path path) {
        Random r = new Random(SEED + 3);
        Context ctx = ctx(path);
        for (int cols : SIZES) {
            for (int k = 0; k < 4; k++) {
                DType xd = DTS[k & 1], od = DTS[k >> 1];
                int rows = 1 + r.nextInt(12);
                float scale = k == 3 ? -0.5f : 0.125f * (1 + k);
                try (Tensor x = tensor(xd, rand(r, rows * cols, -20, 20), rows, cols); Tensor out = poisoned(od, rows, cols)) {
                    Kernels.softmax(ctx, x, scale, out);
                    double[] want = refSoftmax(x.toFloatArray(), rows, cols, scale);
                    assertClose(out.toFloatArray(), want, 1e-9, rtol(od, 5e-6), SEED, path + " softmax " + x + " scale " + scale + " -> " + out);
                }
            }
        }
        // scale 0 means 1; in place; a long row; masked (-inf) entries
        try (Tensor x = tensor(DType.F32, rand(r, 3 * 20000, -10, 10), 3, 20000)) {
            float[] xv = x.toFloatArray();
            xv[5] = Float.NEGATIVE_INFINITY;
            x.copyFrom(xv);
            double[] want = refSoftmax(xv, 3, 20000, 1);
            Kernels.softmax(ctx, x, 0f, x);
            assertClose(x.toFloatArray(), want, 1e-12, 5e-6, SEED, path + " softmax in place, long rows, a -inf");
        }
    }
}
