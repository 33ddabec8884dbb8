package dev.panatron;

import dev.panatron.ElemTestSupport.Path;
import dev.panatron.Kernels.Unary;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.Random;
import java.util.function.DoubleUnaryOperator;

import static dev.panatron.ElemTestSupport.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * add, the unary activations, swiglu, convert, embedding and meanPool against plain-Java
 * double references on fresh random inputs (the seed is in every failure message), odd
 * sizes, NaN-poisoned outputs, f32 and bf16, strided views, in place, on both native paths.
 */
class ElementwiseTest {
    static final long SEED = System.nanoTime();
    static final DType[] DTS = {DType.F32, DType.BF16};

    static double ref(Unary op, double x) {
        return switch (op) {
            case GELU_ERF -> gelu(x);
            case GELU_TANH -> geluTanh(x);
            case SILU -> silu(x);
            case RELU -> Double.isNaN(x) ? x : Math.max(x, 0);
            case TANH -> Math.tanh(x);
            case SIGMOID -> sigmoid(x);
        };
    }

    /**
     * silu, sigmoid, tanh feed the exact input to exp: 6 ulps. The GELUs round an intermediate
     * argument first, which the function's condition number amplifies: 8 ulps x (1 + cond).
     * Results below FLT_MIN (subnormal) are held to an absolute FLT_MIN.
     */
    static double tolerance(Unary op, double x, double want) {
        double ulp = 0x1p-24, floor = Float.MIN_NORMAL;
        if (op != Unary.GELU_ERF && op != Unary.GELU_TANH) return 6 * ulp * Math.abs(want) + floor;
        double kappa = 0;
        if (x != 0 && Double.isFinite(x) && want != 0) {
            double h = 1e-7 * Math.abs(x);
            kappa = Math.abs((ref(op, x + h) - ref(op, x - h)) / (2 * h) * x / want);
        }
        return 8 * ulp * (1 + kappa) * Math.abs(want) + floor;
    }

    @Test
    void referenceErfcIsRight() { // the test's own erfc, against tabulated values
        assertEquals(0.157299207050285, erfc(1), 1e-15);
        assertEquals(2.20904969985854e-05, erfc(3), 1e-18);
        assertEquals(1.53745979442803e-12, erfc(5), 1e-25);
        assertEquals(1.84270079294971, erfc(-1), 1e-14);
        assertEquals(erfc(2.4999999), erfc(2.5000001), 1e-9); // series and fraction agree at the seam
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void addSameShapeAndBias(Path path) {
        Random r = new Random(SEED);
        Context ctx = ctx(path);
        for (int cols : SIZES) {
            for (int k = 0; k < 8; k++) {
                DType ad = DTS[k & 1], bd = DTS[(k >> 1) & 1], od = DTS[k >> 2];
                int rows = 1 + r.nextInt(5);
                boolean bias = (k + cols) % 2 == 0;
                try (Tensor a = tensor(ad, rand(r, rows * cols, -3, 3), rows, cols);
                     Tensor b = bias ? tensor(bd, rand(r, cols, -3, 3), cols) : tensor(bd, rand(r, rows * cols, -3, 3), rows, cols);
                     Tensor out = poisoned(od, rows, cols)) {
                    Kernels.add(ctx, a, b, out);
                    float[] av = a.toFloatArray(), bv = b.toFloatArray();
                    double[] want = new double[rows * cols];
                    for (int i = 0; i < want.length; i++) want[i] = (double) av[i] + bv[bias ? i % cols : i];
                    assertClose(out.toFloatArray(), want, 1e-6, rtol(od, 1e-7), SEED,
                            path + " add " + a + " + " + b + " -> " + out);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void addInPlaceAndStrided(Path path) {
        Random r = new Random(SEED + 1);
        Context ctx = ctx(path);
        int rows = 37, cols = 1001;
        Tensor[] sa = strided(DType.F32, rand(r, rows * cols, -1, 1), rows, cols, 5);
        Tensor[] sb = strided(DType.BF16, rand(r, rows * cols, -1, 1), rows, cols, 3);
        try (Tensor back1 = sa[1]; Tensor back2 = sb[1]) {
            Tensor a = sa[0], b = sb[0];
            float[] av = a.toFloatArray(), bv = b.toFloatArray();
            Kernels.add(ctx, a, b, a); // in place into a strided view
            double[] want = new double[rows * cols];
            for (int i = 0; i < want.length; i++) want[i] = (double) av[i] + bv[i];
            assertClose(a.toFloatArray(), want, 1e-6, 1e-7, SEED, path + " add in place, strided");
            float[] whole = back1.toFloatArray(); // the padding was not written
            for (int row = 0; row < rows; row++) {
                for (int j = cols; j < cols + 5; j++) assertTrue(Float.isNaN(whole[row * (cols + 5) + j]), "padding written");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void unaryOps(Path path) {
        Random r = new Random(SEED + 2);
        Context ctx = ctx(path);
        for (Unary op : Unary.values()) {
            for (int cols : SIZES) {
                for (int k = 0; k < 4; k++) {
                    DType xd = DTS[k & 1], od = DTS[k >> 1];
                    int rows = 1 + r.nextInt(3);
                    try (Tensor x = tensor(xd, rand(r, rows * cols, -8, 8), rows, cols); Tensor out = poisoned(od, rows, cols)) {
                        Kernels.unary(ctx, op, x, out);
                        float[] xv = x.toFloatArray();
                        double[] want = new double[xv.length];
                        for (int i = 0; i < xv.length; i++) want[i] = ref(op, xv[i]);
                        // f32: a few ulps; the GELU tails are checked on a grid below with a looser bound
                        assertClose(out.toFloatArray(), want, 1e-7, rtol(od, 2e-6), SEED, path + " " + op + " " + x + " -> " + out);
                    }
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void unaryGridAndSpecialValues(Path path) {
        Context ctx = ctx(path);
        float[] v = new float[4001 + 12];
        for (int i = 0; i <= 4000; i++) v[i] = -20f + 40f * i / 4000;
        float[] special = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 1e-45f, -1e-45f,
                Float.MAX_VALUE, -Float.MAX_VALUE, 88.5f, -88.5f, 1e-30f};
        System.arraycopy(special, 0, v, 4001, special.length);
        try (Tensor x = Tensor.of(v, v.length); Tensor out = poisoned(DType.F32, v.length)) {
            for (Unary op : Unary.values()) {
                out.fill(Float.NaN);
                Kernels.unary(ctx, op, x, out);
                float[] got = out.toFloatArray();
                for (int i = 0; i < v.length; i++) {
                    double w = ref(op, v[i]), g = got[i];
                    boolean ok = Double.isNaN(w) ? Double.isNaN(g) : Double.isInfinite(w) ? g == w : Math.abs(g - w) <= tolerance(op, v[i], w);
                    if (!ok) throw new AssertionError(path + " " + op + "(" + v[i] + ") = " + g + ", want " + w);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void geluSiluReluTanhSigmoidConveniences(Path path) {
        Context ctx = ctx(path);
        Random r = new Random(SEED + 3);
        float[] v = rand(r, 65, -4, 4);
        record Case(String name, java.util.function.BiConsumer<Tensor, Tensor> call, DoubleUnaryOperator f) {}
        Case[] cases = {
                new Case("gelu", (x, o) -> Kernels.gelu(ctx, x, o), ElemTestSupport::gelu),
                new Case("gelu tanh", (x, o) -> Kernels.gelu(ctx, x, o, true), ElemTestSupport::geluTanh),
                new Case("gelu erf", (x, o) -> Kernels.gelu(ctx, x, o, false), ElemTestSupport::gelu),
                new Case("silu", (x, o) -> Kernels.silu(ctx, x, o), ElemTestSupport::silu),
                new Case("relu", (x, o) -> Kernels.relu(ctx, x, o), d -> Math.max(d, 0)),
                new Case("tanh", (x, o) -> Kernels.tanh(ctx, x, o), Math::tanh),
                new Case("sigmoid", (x, o) -> Kernels.sigmoid(ctx, x, o), ElemTestSupport::sigmoid)};
        for (Case c : cases) {
            try (Tensor x = Tensor.of(v, 5, 13); Tensor out = poisoned(DType.F32, 5, 13)) {
                c.call().accept(x, out);
                double[] want = new double[v.length];
                for (int i = 0; i < v.length; i++) want[i] = c.f().applyAsDouble(v[i]);
                assertClose(out.toFloatArray(), want, 1e-7, 2e-6, SEED, path + " " + c.name());
                c.call().accept(x, x); // in place
                assertClose(x.toFloatArray(), want, 1e-7, 2e-6, SEED, path + " " + c.name() + " in place");
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void swiglu(Path path) {
        Random r = new Random(SEED + 4);
        Context ctx = ctx(path);
        for (int cols : SIZES) {
            for (int k = 0; k < 8; k++) {
                DType gd = DTS[k & 1], ud = DTS[(k >> 1) & 1], od = DTS[k >> 2];
                int rows = 1 + r.nextInt(4);
                try (Tensor g = tensor(gd, rand(r, rows * cols, -6, 6), rows, cols);
                     Tensor u = tensor(ud, rand(r, rows * cols, -2, 2), rows, cols);
                     Tensor out = poisoned(od, rows, cols)) {
                    Kernels.swiglu(ctx, g, u, out);
                    float[] gv = g.toFloatArray(), uv = u.toFloatArray();
                    double[] want = new double[gv.length];
                    for (int i = 0; i < want.length; i++) want[i] = silu(gv[i]) * uv[i];
                    assertClose(out.toFloatArray(), want, 1e-6, rtol(od, 2e-6), SEED, path + " swiglu " + g + " " + u + " -> " + out);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void convertAllPairs(Path path) {
        Random r = new Random(SEED + 5);
        Context ctx = ctx(path);
        DType[] all = {DType.F32, DType.BF16, DType.F16};
        for (DType from : all) {
            for (DType to : all) {
                for (int n : SIZES) {
                    float[] v = rand(r, n, -70000, 70000); // beyond f16's range too
                    for (int i = 0; i < n; i += 3) v[i] *= 1e-6f; // and small values, f16 subnormals
                    try (Tensor x = tensor(from, v, n); Tensor out = poisoned(to, n)) {
                        Kernels.convert(ctx, x, out);
                        float[] xv = x.toFloatArray();
                        double[] want = new double[n];
                        for (int i = 0; i < n; i++) want[i] = round(to, xv[i]);
                        assertClose(out.toFloatArray(), want, 0, 0, SEED, path + " convert " + x + " -> " + out);
                    }
                }
            }
        }
        // specials: NaN stays NaN, f16 overflow is inf, signed zero kept
        float[] sp = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 65520f, -1e9f, -0f, 1f};
        try (Tensor x = Tensor.of(sp, sp.length); Tensor h = poisoned(DType.F16, sp.length); Tensor b = poisoned(DType.BF16, sp.length)) {
            Kernels.convert(ctx, x, h);
            Kernels.convert(ctx, x, b);
            float[] hv = h.toFloatArray(), bv = b.toFloatArray();
            assertTrue(Float.isNaN(hv[0]) && Float.isNaN(bv[0]), "NaN stays NaN");
            assertEquals(Float.POSITIVE_INFINITY, hv[3], "65520 overflows f16");
            assertEquals(Float.NEGATIVE_INFINITY, hv[4], "-1e9 overflows f16");
            assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(hv[5]), "-0 kept");
            assertEquals(-1e9f, bv[4], 1e9 * 4e-3, "bf16 has f32's range");
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void embedding(Path path) {
        Random r = new Random(SEED + 6);
        Context ctx = ctx(path);
        DType[] all = {DType.F32, DType.BF16, DType.F16};
        for (DType td : all) {
            for (DType od : all) {
                int v = 1 + r.nextInt(300), d = SIZES[r.nextInt(SIZES.length)];
                int[] idv = new int[2 * 7];
                for (int i = 0; i < idv.length; i++) idv[i] = r.nextInt(v);
                idv[0] = v - 1;
                try (Tensor table = tensor(td, rand(r, v * d, -2, 2), v, d); Tensor ids = Tensor.ofInts(idv, 2, 7);
                     Tensor out = poisoned(od, 2, 7, d)) {
                    Kernels.embedding(ctx, table, ids, out);
                    float[] tv = table.toFloatArray();
                    double[] want = new double[idv.length * d];
                    for (int t = 0; t < idv.length; t++) {
                        for (int j = 0; j < d; j++) want[t * d + j] = round(od, tv[idv[t] * d + j]);
                    }
                    assertClose(out.toFloatArray(), want, 0, 0, SEED, path + " embedding " + table + " -> " + out);
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("dev.panatron.ElemTestSupport#paths")
    void meanPool(Path path) {
        Random r = new Random(SEED + 7);
        Context ctx = ctx(path);
        for (int d : new int[] {1, 7, 384, 1100}) {
            for (int k = 0; k < 8; k++) {
                DType xd = DTS[k & 1], od = DTS[(k >> 1) & 1];
                boolean normalize = (k & 4) != 0;
                int b = 3, t = 1 + r.nextInt(20);
                int[] m = new int[b * t];
                for (int i = 0; i < m.length; i++) m[i] = r.nextDouble() < 0.7 ? 1 : 0;
                for (int i = 0; i < t; i++) m[t + i] = 0; // row 1: all padding -> zeros
                try (Tensor x = tensor(xd, rand(r, b * t * d, -1, 3), b, t, d); Tensor mask = Tensor.ofInts(m, b, t);
                     Tensor out = poisoned(od, b, d)) {
                    Kernels.meanPool(ctx, x, mask, normalize, out);
                    float[] xv = x.toFloatArray();
                    double[] want = new double[b * d];
                    for (int bi = 0; bi < b; bi++) {
                        int cnt = 0;
                        for (int ti = 0; ti < t; ti++) cnt += m[bi * t + ti] != 0 ? 1 : 0;
                        double nrm = 0;
                        for (int j = 0; j < d; j++) {
                            double s = 0;
                            for (int ti = 0; ti < t; ti++) if (m[bi * t + ti] != 0) s += xv[(bi * t + ti) * d + j];
                            want[bi * d + j] = cnt > 0 ? s / cnt : 0;
                            nrm += want[bi * d + j] * want[bi * d + j];
                        }
                        if (normalize) for (int j = 0; j < d; j++) want[bi * d + j] /= Math.max(Math.sqrt(nrm), 1e-12);
                    }
                    assertClose(out.toFloatArray(), want, 1e-6, rtol(od, 1e-5), SEED, path + " meanPool " + x + " norm=" + normalize + " -> " + out);
                }
            }
        }
    }
}
