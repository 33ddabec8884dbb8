package dev.panatron.cuda;

import static dev.panatron.cuda.CudaTest.assertClose;
import static dev.panatron.cuda.CudaTest.random;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panatron.Context;
import dev.panatron.DType;
import dev.panatron.Fp4;
import dev.panatron.Kernels.Activation;
import dev.panatron.QuantKernels;
import dev.panatron.QuantKernels.Int8Mode;
import dev.panatron.QuantKernels.Int8Options;
import dev.panatron.Tensor;

import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Quantized matmul on the GPU through Java ({@link CudaContext#quantizeRows},
 * {@link CudaContext#matmulS8}, {@link CudaContext#matmulInt8}, {@link CudaContext#fp4Matmul})
 * against the CPU path (same quantizer, same formats) and plain double references written here;
 * fresh random inputs, odd sizes, planted outlier columns, NaN-poisoned outputs. Skipped where no
 * GPU, driver or libpanatron_cuda is present (as in CI).
 */
class CudaQuantTest {
    private static CudaContext ctx;
    private static Context cpu;
    private static final Random RND = new Random();

    @BeforeAll
    static void open() {
        if (Cuda.isAvailable()) {
            ctx = CudaContext.create();
            cpu = Context.create(2);
        }
    }

    @AfterAll
    static void close() {
        if (ctx != null) ctx.close();
        if (cpu != null) cpu.close();
    }

    private static void gpu() {
        assumeTrue(ctx != null, () -> "no CUDA device: " + Cuda.status());
    }

    /** x [m, k] uniform in [-2, 2] with a few outlier columns (|x| in [7, 20] in some rows). */
    private static Tensor activations(DType dt, long m, long k, int outlierCols) {
        float[] v = new float[Math.toIntExact(m * k)];
        for (int i = 0; i < v.length; i++) v[i] = RND.nextFloat() * 4 - 2;
        for (int o = 0; o < outlierCols; o++) {
            int j = RND.nextInt((int) k);
            for (int r = 0; r < m; r += 1 + r % 3) v[(int) (r * k + j)] = (RND.nextBoolean() ? 1 : -1) * (7 + 13 * RND.nextFloat());
        }
        return Tensor.of(dt, v, m, k);
    }

    @Test
    void quantizeRowsIsTheCpuQuantizer() {
        gpu();
        for (long[] s : new long[][] {{1, 1}, {7, 63}, {65, 130}, {3, 1025}}) {
            for (boolean withOutliers : new boolean[] {false, true}) {
                String what = "quantizeRows " + s[0] + "x" + s[1] + " outliers " + withOutliers;
                try (Tensor hx = activations(DType.BF16, s[0], s[1], withOutliers ? 2 : 0);
                     DeviceTensor x = ctx.upload(hx); DeviceTensor xq = ctx.allocate(DType.I8, s[0], s[1]);
                     DeviceTensor sc = ctx.allocate(DType.F32, s[0]); DeviceTensor fl = ctx.allocate(DType.I32, s[1])) {
                    xq.fillBytes(0x55);
                    sc.fillBytes(0xff);
                    ctx.quantizeRows(x, xq, sc, withOutliers ? fl : null, 6f);
                    float[] xv = hx.toFloatArray();
                    boolean[] out = new boolean[(int) s[1]];
                    for (int j = 0; j < s[1]; j++) {
                        float cm = 0;
                        for (int r = 0; r < s[0]; r++) cm = Math.max(cm, Math.abs(xv[(int) (r * s[1] + j)]));
                        out[j] = withOutliers && cm >= 6f;
                    }
                    Tensor q = xq.toHost(), scale = sc.toHost();
                    float[] sv = scale.toFloatArray();
                    if (withOutliers) {
                        try (Tensor f = fl.toHost()) {
                            for (int j = 0; j < s[1]; j++) assertEquals(out[j] ? 1 : 0, f.segment().get(ValueLayout.JAVA_INT, 4L * j), what + " flag " + j);
                        }
                    }
                    for (int r = 0; r < s[0]; r++) {
                        float amax = 0;
                        for (int j = 0; j < s[1]; j++) if (!out[j]) amax = Math.max(amax, Math.abs(xv[(int) (r * s[1] + j)]));
                        assertEquals(amax / 127f, sv[r], what + " scale " + r);
                        float inv = amax > 0 ? 127f / amax : 0f;
                        for (int j = 0; j < s[1]; j++) {
                            int i = (int) (r * s[1] + j);
                            float want = out[j] ? 0 : Math.max(-127f, Math.min(127f, (float) Math.rint(xv[i] * inv)));
                            assertEquals((byte) want, q.segment().get(ValueLayout.JAVA_BYTE, i), what + " code " + r + "," + j);
                        }
                    }
                    q.close();
                    scale.close();
                }
            }
        }
    }

    @Test
    void matmulS8ExactAndDequantized() {
        gpu();
        for (long[] s : new long[][] {{1, 1, 1}, {7, 5, 3}, {33, 65, 127}, {64, 96, 256}}) {
            long m = s[0], n = s[1], k = s[2];
            byte[] a = randomBytes(m * k), b = randomBytes(n * k);
            try (Tensor ha = bytes(a, m, k); Tensor hb = bytes(b, n, k); Tensor has = random(DType.F32, 0.01f, m);
                 Tensor hbs = random(DType.F32, 0.01f, n); Tensor hbias = random(DType.F32, 1f, n);
                 DeviceTensor da = ctx.upload(ha); DeviceTensor db = ctx.upload(hb); DeviceTensor as = ctx.upload(has);
                 DeviceTensor bs = ctx.upload(hbs); DeviceTensor bias = ctx.upload(hbias);
                 DeviceTensor ci = ctx.allocate(DType.I32, m, n); DeviceTensor cf = ctx.allocate(DType.BF16, m, n)) {
                ci.fillBytes(0xff);
                cf.fillBytes(0xff);
                ctx.matmulS8(da, db, null, null, null, ci, Activation.NONE);
                ctx.matmulS8(da, db, as, bs, bias, cf, Activation.RELU);
                Tensor hc = ci.toHost();
                float[] asv = has.toFloatArray(), bsv = hbs.toFloatArray(), biv = hbias.toFloatArray();
                double[] ref = new double[(int) (m * n)];
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        long acc = 0;
                        for (int p = 0; p < k; p++) acc += (long) a[(int) (i * k + p)] * b[(int) (j * k + p)];
                        int o = (int) (i * n + j);
                        assertEquals((int) acc, hc.segment().get(ValueLayout.JAVA_INT, 4L * o), "matmulS8 i32 " + m + "x" + n + "x" + k);
                        ref[o] = Math.max(0, acc * (double) asv[i] * bsv[j] + biv[j]);
                    }
                }
                hc.close();
                assertClose(ref, cf.toFloatArray(), 8e-3, 1e-6, "matmulS8 bf16 relu " + m + "x" + n + "x" + k);
            }
        }
    }

    @Test
    void matmulInt8MatchesCpuPath() {
        gpu();
        for (Int8Mode mode : new Int8Mode[] {Int8Mode.LLM, Int8Mode.W8A8}) {
            for (long[] s : new long[][] {{1, 7, 9}, {9, 65, 63}, {33, 128, 256}}) {
                long m = s[0], n = s[1], k = s[2];
                String what = "matmulInt8 " + mode + " " + m + "x" + n + "x" + k;
                Int8Options opts = new Int8Options(mode, Activation.GELU_TANH, 6f);
                try (Tensor hx = activations(DType.F32, m, k, mode == Int8Mode.LLM ? 2 : 0); Tensor hw = random(DType.F32, 0.1f, n, k);
                     Tensor hwq = Tensor.allocate(DType.I8, n, k); Tensor hws = Tensor.allocate(DType.F32, n);
                     Tensor hbias = random(DType.F32, 1f, n); Tensor hy = Tensor.allocate(DType.F32, m, n)) {
                    QuantKernels.quantizeInt8Weight(cpu, hw, hwq, hws);
                    QuantKernels.matmulInt8(cpu, hx, hwq, hws, hw, hbias, hy, opts);
                    try (DeviceTensor x = ctx.upload(hx); DeviceTensor wq = ctx.upload(hwq); DeviceTensor ws = ctx.upload(hws);
                         DeviceTensor wo = ctx.upload(hw); DeviceTensor bias = ctx.upload(hbias); DeviceTensor y = ctx.allocate(DType.F32, m, n)) {
                        y.fillBytes(0xff);
                        ctx.matmulInt8(x, wq, ws, wo, bias, y, opts);
                        float[] cpuY = hy.toFloatArray();
                        double[] ref = new double[cpuY.length];
                        for (int i = 0; i < ref.length; i++) ref[i] = cpuY[i];
                        assertClose(ref, y.toFloatArray(), 2e-5, 1e-6, what + " vs the CPU path");
                        // and the unquantized layer in doubles: int8 error only
                        float[] xv = hx.toFloatArray(), wv = hw.toFloatArray(), bv = hbias.toFloatArray();
                        double[] exact = new double[ref.length];
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double acc = bv[j];
                                for (int p = 0; p < k; p++) acc += (double) xv[(int) (i * k + p)] * wv[(int) (j * k + p)];
                                exact[(int) (i * n + j)] = 0.5 * acc * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (acc + 0.044715 * acc * acc * acc)));
                            }
                        }
                        assertClose(exact, y.toFloatArray(), mode == Int8Mode.LLM ? 3e-2 : 6e-2, 1e-3, what + " vs the f64 layer");
                    }
                }
            }
        }
    }

    @Test
    void fp4MatmulMatchesCpuPath() {
        gpu();
        for (Fp4.Format fmt : new Fp4.Format[] {Fp4.Format.E2M1, Fp4.Format.NF4}) {
            for (long[] s : new long[][] {{1, 65, 256}, {3, 7, 128}, {9, 130, 512}}) {
                long m = s[0], n = s[1], k = s[2];
                int group = 32;
                String what = "fp4Matmul " + fmt + " " + m + "x" + n + "x" + k;
                try (Tensor hw = random(DType.F32, 1f, n, k); Tensor codes = Tensor.allocate(DType.U4, n, k);
                     Tensor scales = Tensor.allocate(DType.F32, n, k / group); Tensor deq = Tensor.allocate(DType.F32, n, k);
                     Tensor hx = random(DType.BF16, 1f, m, k); Tensor hbias = random(DType.F32, 1f, n)) {
                    Fp4.quantize(cpu, hw, fmt, group, 1f, null, codes, scales);
                    Fp4.dequantize(cpu, codes, scales, fmt, group, deq);
                    Tensor codeBytes = Tensor.wrap(codes.segment(), DType.U8, n, k / 2);
                    try (DeviceTensor x = ctx.upload(hx); DeviceTensor c = ctx.upload(codeBytes); DeviceTensor sc = ctx.upload(scales);
                         DeviceTensor bias = ctx.upload(hbias); DeviceTensor y = ctx.allocate(DType.F32, m, n)) {
                        y.fillBytes(0xff);
                        ctx.fp4Matmul(x, c, sc, fmt, group, bias, y);
                        float[] xv = hx.toFloatArray(), wv = deq.toFloatArray(), bv = hbias.toFloatArray();
                        double[] ref = new double[(int) (m * n)];
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double acc = bv[j];
                                for (int p = 0; p < k; p++) acc += (double) xv[(int) (i * k + p)] * wv[(int) (j * k + p)];
                                ref[(int) (i * n + j)] = acc;
                            }
                        }
                        // M <= 4: f32 GEMV; M > 4: the weight rounded to x's bf16 before cuBLASLt
                        assertClose(ref, y.toFloatArray(), m <= 4 ? 1e-5 : 1e-2, 1e-6, what);
                    }
                }
            }
        }
    }

    @Test
    void argumentsAreValidated() {
        gpu();
        try (DeviceTensor x = ctx.allocate(DType.F32, 4, 64); DeviceTensor xq = ctx.allocate(DType.I8, 4, 64);
             DeviceTensor s4 = ctx.allocate(DType.F32, 4); DeviceTensor s5 = ctx.allocate(DType.F32, 5);
             DeviceTensor w = ctx.allocate(DType.I8, 8, 64); DeviceTensor ws = ctx.allocate(DType.F32, 8);
             DeviceTensor y = ctx.allocate(DType.F32, 4, 8); DeviceTensor yi = ctx.allocate(DType.I32, 4, 8);
             DeviceTensor codes = ctx.allocate(DType.U8, 8, 32); DeviceTensor sc = ctx.allocate(DType.F32, 8, 2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.quantizeRows(x, xq, s5, null, 6f));
            assertTrue(e.getMessage().contains("scale"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ctx.quantizeRows(x, x, s4, null, 6f));
            assertThrows(IllegalArgumentException.class, () -> ctx.matmulS8(xq, w, s4, null, null, yi, Activation.NONE));
            e = assertThrows(IllegalArgumentException.class, () -> ctx.matmulS8(xq, xq, null, null, null, y, Activation.NONE));
            assertTrue(e.getMessage().contains("c "), e.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> ctx.matmulInt8(x, w, ws, null, null, y, new Int8Options(Int8Mode.WEIGHT_ONLY, Activation.NONE, 6f)));
            e = assertThrows(IllegalArgumentException.class, () -> ctx.matmulInt8(x, w, s4, null, null, y, Int8Options.W8A8));
            assertTrue(e.getMessage().contains("wScale"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.fp4Matmul(x, codes, sc, Fp4.Format.E2M1, 48, null, y));
            assertTrue(e.getMessage().contains("group"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.fp4Matmul(x, codes, sc, Fp4.Format.E2M1, 64, null, y));
            assertTrue(e.getMessage().contains("scales"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.fp4Matmul(x, sc, sc, Fp4.Format.E2M1, 32, null, y));
            assertTrue(e.getMessage().contains("codes"), e.getMessage());
            ctx.fp4Matmul(x, codes, sc, Fp4.Format.E2M1, 32, null, y); // a valid call
        }
    }

    private static byte[] randomBytes(long n) {
        byte[] b = new byte[Math.toIntExact(n)];
        for (int i = 0; i < b.length; i++) b[i] = (byte) (RND.nextInt(255) - 127);
        return b;
    }

    private static Tensor bytes(byte[] v, long rows, long cols) {
        Tensor t = Tensor.allocate(DType.I8, rows, cols);
        for (int i = 0; i < v.length; i++) t.segment().set(ValueLayout.JAVA_BYTE, i, v[i]);
        return t;
    }
}
