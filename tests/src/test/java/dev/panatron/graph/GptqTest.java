package dev.panatron.graph;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Precision;
import dev.panatron.Tensor;
import dev.panatron.graph.Compression.Fp4Method;
import dev.panatron.graph.Compression.Options;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Gptq} against a plain double-precision GPTQ written here the original (OBQ) way — the
 * inverse Hessian kept explicitly and downdated after each column, no Cholesky — and against
 * round to nearest on the calibration output error; the FP4 GPTQ conversion of a small graph
 * (decoded by the native kernels, deterministic, saved and loaded); and the calibration set
 * being disjoint from the accuracy harness' sentences.
 */
class GptqTest {
    static Context ctx;

    @BeforeAll
    static void setUp() { ctx = Context.create(2); }

    @AfterAll
    static void tearDown() { ctx.close(); }

    /** Correlated calibration inputs x [m, k]: a few shared factors plus noise, a couple of loud channels. */
    static float[] inputs(Random rnd, int m, int k) {
        int f = 5;
        double[][] mix = new double[f][k];
        for (double[] r : mix) for (int j = 0; j < k; j++) r[j] = rnd.nextGaussian();
        float[] x = new float[m * k];
        for (int r = 0; r < m; r++) {
            double[] z = new double[f];
            for (int i = 0; i < f; i++) z[i] = rnd.nextGaussian();
            for (int j = 0; j < k; j++) {
                double v = 0.3 * rnd.nextGaussian();
                for (int i = 0; i < f; i++) v += z[i] * mix[i][j];
                if (j % 17 == 3) v *= 6;
                x[r * k + j] = (float) v;
            }
        }
        return x;
    }

    static double[] gram(float[] x, int m, int k) {
        double[] h = new double[k * k];
        for (int r = 0; r < m; r++) for (int i = 0; i < k; i++) for (int j = 0; j < k; j++) h[i * k + j] += (double) x[r * k + i] * x[r * k + j];
        return h;
    }

    static float[] weight(Random rnd, int n, int k) {
        float[] w = new float[n * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (rnd.nextGaussian() * 0.05);
        w[1] = 0.7f;
        return w;
    }

    static int code(byte[] codes, int k, int r, int c) {
        int b = codes[r * (k / 2) + c / 2] & 0xFF;
        return (c & 1) == 0 ? b & 15 : b >> 4;
    }

    /** The decoded weight [n][k] of a result (level * scale in f32, as the kernels do). */
    static double[][] decode(Gptq.Result r, int n, int k, float[] lv, int group) {
        int g = group == 0 ? k : group;
        double[][] q = new double[n][k];
        for (int i = 0; i < n; i++) for (int c = 0; c < k; c++) q[i][c] = lv[code(r.codes(), k, i, c)] * r.scales()[i * (k / g) + c / g];
        return q;
    }

    /** sum over rows m, outputs n of (x (w - q)ᵀ)². */
    static double outputError(float[] x, int m, int k, float[] w, double[][] q) {
        int n = q.length;
        double e = 0;
        for (int r = 0; r < m; r++) {
            for (int i = 0; i < n; i++) {
                double d = 0;
                for (int c = 0; c < k; c++) d += x[r * k + c] * (w[i * k + c] - q[i][c]);
                e += d * d;
            }
        }
        return e;
    }

    /** The level of {@code lv} nearest t (plain scan). */
    static int nearest(float[] lv, double t) {
        int best = 0;
        for (int c = 1; c < 16; c++) if (Math.abs(t - lv[c]) < Math.abs(t - lv[best])) best = c;
        return best;
    }

    /**
     * GPTQ the original way: explicit (damped) H⁻¹, downdated after each column; columns in
     * index order, one scale per group = absmax / max|level| of the group's weights as updated
     * when the group starts (clip 1). Returns the decoded weight; loss in out[0].
     */
    static double[][] naiveGptq(float[] w, int n, int k, double[] h, float[] lv, int group, double damp, double[] lossOut) {
        int g = group == 0 ? k : group;
        double mean = 0;
        for (int i = 0; i < k; i++) mean += h[i * k + i];
        mean /= k;
        double[][] a = new double[k][2 * k];     // Gauss-Jordan [H | I]
        for (int i = 0; i < k; i++) {
            for (int j = 0; j < k; j++) a[i][j] = h[i * k + j] + (i == j ? damp * mean : 0);
            a[i][k + i] = 1;
        }
        for (int c = 0; c < k; c++) {
            int p = c;
            for (int r = c + 1; r < k; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
            double[] t = a[c]; a[c] = a[p]; a[p] = t;
            double d = a[c][c];
            for (int j = 0; j < 2 * k; j++) a[c][j] /= d;
            for (int r = 0; r < k; r++) {
                if (r == c) continue;
                double f = a[r][c];
                for (int j = 0; j < 2 * k; j++) a[r][j] -= f * a[c][j];
            }
        }
        double[][] hinv = new double[k][k];
        for (int i = 0; i < k; i++) for (int j = 0; j < k; j++) hinv[i][j] = a[i][k + j];
        float maxLv = 0;
        for (float v : lv) maxLv = Math.max(maxLv, Math.abs(v));
        double[][] wd = new double[n][k];
        for (int i = 0; i < n; i++) for (int c = 0; c < k; c++) wd[i][c] = w[i * k + c];
        double[][] q = new double[n][k];
        float[] s = new float[n];
        double loss = 0;
        for (int c = 0; c < k; c++) {
            if (c % g == 0) {
                for (int i = 0; i < n; i++) {
                    double amax = 0;
                    for (int j = c; j < c + g; j++) amax = Math.max(amax, Math.abs(wd[i][j]));
                    s[i] = (float) (amax / maxLv);
                }
            }
            double d = hinv[c][c];
            for (int i = 0; i < n; i++) {
                q[i][c] = s[i] > 0 ? lv[nearest(lv, wd[i][c] / s[i])] * s[i] : 0;
                double err = (wd[i][c] - q[i][c]) / d;
                loss += (wd[i][c] - q[i][c]) * err;
                for (int j = c + 1; j < k; j++) wd[i][j] -= err * hinv[c][j];
            }
            double[] col = new double[k], row = hinv[c].clone();
            for (int r = 0; r < k; r++) col[r] = hinv[r][c];
            for (int r = 0; r < k; r++) for (int j = 0; j < k; j++) hinv[r][j] -= col[r] * row[j] / d;
        }
        lossOut[0] = loss;
        return q;
    }

    @Test
    void matchesTheNaiveGptq() {
        Random rnd = new Random(11);
        for (int[] shape : new int[][] {{7, 64, 32}, {1, 96, 32}, {5, 128, 64}, {3, 66, 0}}) {
            int n = shape[0], k = shape[1], group = shape[2];
            int m = 2 * k + 3;
            float[] x = inputs(rnd, m, k), w = weight(rnd, n, k);
            double[] h = gram(x, m, k);
            for (Fp4.Format f : List.of(Fp4.Format.E2M1, Fp4.Format.NF4)) {
                float[] lv = Fp4.levels(f);
                Gptq.Params p = Gptq.Params.DEFAULT.withActOrder(false).withClips(1f).withDamp(0.01);
                Gptq.Result r = Gptq.quantize(w, n, k, h, lv, group, p);
                double[] naiveLoss = new double[1];
                double[][] want = naiveGptq(w, n, k, h, lv, group, 0.01, naiveLoss);
                double[][] got = decode(r, n, k, lv, group);
                String what = f + " n=" + n + " k=" + k + " g=" + group;
                for (int i = 0; i < n; i++) assertArrayEquals(want[i], got[i], 0.0, what + " row " + i);
                assertEquals(naiveLoss[0], r.loss(), 1e-9 * naiveLoss[0], what + " loss");
            }
        }
    }

    @Test
    void lossIsTheDampedOutputErrorAndBeatsRoundToNearest() {
        Random rnd = new Random(12);
        for (int[] shape : new int[][] {{9, 128, 32}, {33, 64, 64}, {4, 256, 128}}) {
            int n = shape[0], k = shape[1], group = shape[2];
            int m = 3 * k + 1;
            float[] x = inputs(rnd, m, k), w = weight(rnd, n, k);
            double[] h = gram(x, m, k);
            for (Fp4.Format f : Fp4.Format.values()) {
                float[] lv = Fp4.levels(f);
                String what = f + " n=" + n + " k=" + k + " g=" + group;
                for (boolean act : new boolean[] {false, true}) {
                    Gptq.Params p = Gptq.Params.DEFAULT.withActOrder(act);
                    Gptq.Result r = Gptq.quantize(w, n, k, h, lv, group, p);
                    double[][] q = decode(r, n, k, lv, group);
                    // loss = sum_n (w - q) (H + damp*mean(diag) I) (w - q)ᵀ
                    double mean = 0;
                    for (int i = 0; i < k; i++) mean += h[i * k + i];
                    mean /= k;
                    double direct = outputError(x, m, k, w, q);
                    for (int i = 0; i < n; i++) for (int c = 0; c < k; c++) direct += p.damp() * mean * Math.pow(w[i * k + c] - q[i][c], 2);
                    assertEquals(direct, r.loss(), 1e-7 * direct, what + " act order " + act);
                    // round to nearest (the native quantizer, clip 1) on the same inputs
                    double rtn = outputError(x, m, k, w, rtn(w, n, k, f, group));
                    double gptq = outputError(x, m, k, w, q);
                    assertTrue(gptq < 0.8 * rtn, what + " act order " + act + ": gptq output error " + gptq + " vs rtn " + rtn);
                }
            }
        }
    }

    /** The native round-to-nearest quantizer's decoded weight. */
    static double[][] rtn(float[] w, int n, int k, Fp4.Format f, int group) {
        try (Arena a = Arena.ofConfined()) {
            Tensor wt = Tensor.allocate(a, DType.F32, n, k);
            wt.copyFrom(w);
            Tensor codes = Tensor.allocate(a, DType.U4, n, k);
            Tensor scales = Tensor.allocate(a, DType.F32, n, group == 0 ? 1 : k / group);
            Fp4.quantize(ctx, wt, f, group, 1f, null, codes, scales);
            Tensor out = Tensor.allocate(a, DType.F32, n, k);
            Fp4.dequantize(ctx, codes, scales, f, group, out);
            float[] v = out.toFloatArray();
            double[][] q = new double[n][k];
            for (int i = 0; i < n; i++) for (int c = 0; c < k; c++) q[i][c] = v[i * k + c];
            return q;
        }
    }

    @Test
    void factorIsTheCholeskyOfTheInverse() {
        Random rnd = new Random(13);
        int k = 37, m = 60;
        double[] h = gram(inputs(rnd, m, k), m, k);
        for (boolean act : new boolean[] {false, true}) {
            Gptq.Params p = Gptq.Params.DEFAULT.withActOrder(act).withDamp(0.05);
            Gptq.Factor f = Gptq.factor(h, k, p);
            double mean = 0;
            for (int i = 0; i < k; i++) mean += h[i * k + i];
            mean /= k;
            // (Uᵀ U) Hp = I with Hp the damped H permuted
            int[] perm = f.perm();
            for (int i = 0; i < k; i++) {
                for (int j = 0; j < k; j++) {
                    double s = 0;
                    for (int t = 0; t < k; t++) {
                        double inv = 0;
                        for (int l = 0; l <= Math.min(i, t); l++) inv += f.u()[l * k + i] * f.u()[l * k + t];
                        s += inv * (h[perm[t] * k + perm[j]] + (t == j ? p.damp() * mean : 0));
                    }
                    assertEquals(i == j ? 1 : 0, s, 1e-8, "act " + act + " (" + i + ", " + j + ")");
                }
                for (int j = 0; j < i; j++) assertEquals(0.0, f.u()[i * k + j], "U must be upper triangular");
            }
            if (act) for (int i = 1; i < k; i++) assertTrue(h[perm[i - 1] * k + perm[i - 1]] >= h[perm[i] * k + perm[i]], "act order");
        }
        assertThrows(IllegalArgumentException.class, () -> Gptq.factor(new double[10], 3, Gptq.Params.DEFAULT));
        assertThrows(IllegalArgumentException.class, () -> Gptq.Params.DEFAULT.withClips(1.5f));
        assertThrows(IllegalArgumentException.class, () -> Gptq.Params.DEFAULT.withDamp(0));
        assertThrows(IllegalArgumentException.class,
                () -> Gptq.quantize(new float[3 * 64], 3, 64, new double[64 * 64], Fp4.levels(Fp4.Format.E2M1), 48, Gptq.Params.DEFAULT));
    }

    @Test
    void gptqConversionOfASmallGraph(@TempDir Path dir) throws Exception {
        int k = CompressionTest.K;
        // more calibration rows than K (up to 2K = 256): with fewer, GPTQ would fit the rounding into directions the calibration rows lack
        List<Map<String, TensorData>> calib = List.of(CompressionTest.randomX(new Random(7), 700, false), CompressionTest.randomX(new Random(8), 333, false));
        Map<String, TensorData> in = CompressionTest.randomX(new Random(9), 21, false);
        float[] ref;
        try (Graph g = CompressionTest.threeLayers(new Random(4)); Session s = Session.create(g, ctx)) {
            ref = s.run(in).get("y").toFloatArray();
        }
        Options rtn = Options.of(Precision.FP4).withFp4(Fp4.Format.NF4, 32, 1);
        Options gptq = rtn.withFp4Method(Fp4Method.GPTQ);
        Options gptqSearch = Options.of(Precision.FP4).withFp4Search(32).withFp4Method(Fp4Method.GPTQ);
        assertTrue(gptq.needsCalibration() && !rtn.needsCalibration());
        assertTrue(gptq.describe().contains("gptq"), gptq.describe());
        double[] err = new double[3];
        int i = 0;
        for (Options o : List.of(rtn, gptq, gptqSearch)) {
            float[] y1, y2;
            byte[] codes1;
            Path file = dir.resolve("g" + i + ".safetensors");
            try (Graph g = CompressionTest.threeLayers(new Random(4))) {
                Compression.Report rep = Compression.apply(g, ctx, o, calib);
                for (Compression.Layer l : rep.layers()) assertTrue(l.scheme().startsWith("fp4/") && l.scheme().endsWith(o == rtn ? "g32" : "/gptq"), l.scheme());
                codes1 = allCodes(g);
                try (Session s = Session.create(g, ctx)) {
                    y1 = s.run(in).get("y").toFloatArray();
                }
                Compression.save(g, file, "three", o);
            }
            // deterministic: a second conversion gives the same bytes
            try (Graph g = CompressionTest.threeLayers(new Random(4))) {
                Compression.apply(g, ctx, o, calib);
                assertArrayEquals(codes1, allCodes(g), o.describe());
            }
            try (Graph g = CompressionTest.threeLayers(new Random(4))) {
                assertEquals(o.describe(), Compression.load(g, file));
                try (Session s = Session.create(g, ctx)) {
                    y2 = s.run(in).get("y").toFloatArray();
                }
            }
            assertArrayEquals(y1, y2, o.describe());
            double e = 0, p = 0;
            for (int j = 0; j < ref.length; j++) {
                e += Math.pow(y1[j] - ref[j], 2);
                p += Math.pow(ref[j], 2);
            }
            err[i++] = e / p;
        }
        // on inputs like the calibration ones (held out), GPTQ's output error is below round to nearest's
        assertTrue(err[1] < err[0] && err[2] < err[0], "relative output error rtn " + err[0] + ", gptq " + err[1] + ", gptq+search " + err[2]);
        assertTrue(err[1] < 0.05, "gptq relative error " + err[1]);
        try (Graph g = CompressionTest.threeLayers(new Random(4))) {
            assertThrows(IllegalArgumentException.class, () -> Compression.apply(g, ctx, gptq, List.of()));
        }
        assertThrows(IllegalArgumentException.class, () -> gptq.withSparsity(0.5));
        assertEquals(Fp4Method.GPTQ, Fp4Method.parse("GPTQ"));
        assertThrows(IllegalArgumentException.class, () -> Fp4Method.parse("awq"));
        assertEquals(k, CompressionTest.K);
    }

    /** The codes and scales bytes of every QLINEAR, concatenated. */
    static byte[] allCodes(Graph g) {
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        for (Node n : g.nodes()) {
            if (n.op() != Op.QLINEAR) continue;
            for (int j = 1; j <= 2; j++) {
                MemorySegment s = n.input(j).constantData().segment();
                b.writeBytes(s.toArray(ValueLayout.JAVA_BYTE));
            }
        }
        return b.toByteArray();
    }

    @Test
    void calibrationSentencesAreDisjointFromTheEvaluation() {
        Set<String> eval = new HashSet<>(CompressionEval.SENTENCES);
        eval.addAll(CompressionEval.QUERIES);
        eval.addAll(CompressionEval.DOCUMENTS);
        assertTrue(Compression.CALIBRATION_SENTENCES.size() >= 50, "calibration sentences: " + Compression.CALIBRATION_SENTENCES.size());
        for (String s : Compression.CALIBRATION_SENTENCES) assertTrue(!eval.contains(s), "calibration sentence also evaluated: " + s);
        assertEquals(Compression.CALIBRATION_SENTENCES.size(), new HashSet<>(Compression.CALIBRATION_SENTENCES).size(), "duplicates");
    }
}
