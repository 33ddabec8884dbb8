package dev.panatron.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panatron.DType;
import dev.panatron.Kernels.Activation;
import dev.panatron.Kernels.MatmulOptions;
import dev.panatron.PanatronException;
import dev.panatron.Tensor;

import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The CUDA backend through Java: device enumeration, device tensors and copies, cuBLASLt GEMM and
 * flash attention (prefill, varlen, decode) against double-precision references written plainly
 * here, on fresh random inputs with odd sizes and NaN-poisoned outputs. Every GPU test is skipped
 * (JUnit assumption) where no GPU, driver or libpanatron_cuda is present, as in CI; only the
 * no-GPU behaviour of the entry points runs everywhere.
 */
class CudaTest extends GpuTest {
    private static final Random RND = new Random();

    // ------------------------------------------------------------------ everywhere

    @Test
    void entryPointsNeverThrowWithoutAGpu() {
        List<CudaDevice> devices = Cuda.devices();
        assertNotNull(devices);
        assertEquals(devices.size(), Cuda.deviceCount());
        String status = Cuda.status();
        assertNotNull(status);
        assertFalse(status.isBlank());
        if (devices.isEmpty()) {
            assertFalse(Cuda.isAvailable());
            RuntimeException e = assertThrows(RuntimeException.class, CudaContext::create);
            assertTrue(e instanceof IllegalStateException || e instanceof IllegalArgumentException, e.toString());
            assertThrows(RuntimeException.class, () -> Cuda.device(0));
        } else {
            for (CudaDevice d : devices) {
                assertFalse(d.name().isBlank());
                assertTrue(d.smCount() > 0, d.toString());
                assertTrue(d.totalMemory() > 0, d.toString());
                assertTrue(d.ccMajor() >= 5, d.toString());
            }
            assertThrows(IllegalArgumentException.class, () -> Cuda.device(devices.size()));
        }
    }

    @Test
    void driverDetectionDoesNotThrow() {
        String evidence = CudaLibrary.driverEvidence(); // null or a path
        if (Cuda.isAvailable()) assertNotNull(evidence, "a GPU is visible but no driver was detected");
    }

    // ------------------------------------------------------------------ memory and copies

    @Test
    void copiesRoundTripEveryDtypeAndOddSize() {
        gpu();
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            for (long n : new long[] {1, 7, 65, 4099}) {
                try (Tensor h = random(dt, 1f, n); DeviceTensor d = ctx.upload(h); Tensor back = d.toHost()) {
                    assertArrayEquals(h.toFloatArray(), back.toFloatArray(), dt + " n=" + n);
                    // device to device, then back
                    try (DeviceTensor d2 = ctx.allocate(dt, n)) {
                        d2.fillBytes(0xff);
                        d2.copyFrom(d);
                        assertArrayEquals(h.toFloatArray(), d2.toFloatArray(), dt + " d2d n=" + n);
                    }
                }
            }
        }
        int[] ints = RND.ints(33, -1000, 1000).toArray();
        try (Tensor h = Tensor.ofInts(ints, 3, 11); DeviceTensor d = ctx.upload(h); Tensor back = d.toHost()) {
            assertArrayEquals(ints, back.toIntArray());
        }
    }

    @Test
    void viewsAndMemoryOwnership() {
        gpu();
        long before = ctx.memoryInUse();
        DeviceTensor d;
        try (Tensor h = random(DType.F32, 1f, 4, 6)) {
            d = ctx.upload(h);
            assertTrue(ctx.memoryInUse() >= before + 4 * 6 * 4, "in use " + ctx.memoryInUse());
            float[] all = h.toFloatArray();
            DeviceTensor rows = d.slice(0, 1, 2);
            assertTrue(rows.isContiguous());
            float[] r = rows.toFloatArray();
            for (int i = 0; i < 12; i++) assertEquals(all[6 + i], r[i]);
            DeviceTensor cols = d.slice(1, 2, 3);
            assertFalse(cols.isContiguous());
            assertThrows(IllegalArgumentException.class, cols::toHost);
            DeviceTensor t = d.transpose(0, 1);
            assertArrayEquals(new long[] {6, 4}, t.shape());
            assertArrayEquals(new long[] {4, 24}, t.strides());
            DeviceTensor flat = d.reshape(24);
            assertArrayEquals(all, flat.toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> d.reshape(25));
            d.close();
            assertThrows(IllegalStateException.class, rows::toHost, "a view of a closed tensor");
            assertThrows(IllegalStateException.class, d::toHost);
            d.close(); // twice is harmless
        }
        assertEquals(before, ctx.memoryInUse());
        assertTrue(ctx.memoryCached() > 0);

        // a context frees everything at close; its tensors then refuse use
        CudaContext other = CudaContext.create();
        DeviceTensor x = other.allocate(DType.BF16, 1000);
        other.close();
        other.close();
        assertFalse(x.isOpen());
        assertThrows(IllegalStateException.class, () -> x.fillBytes(0));
        x.close();
        assertThrows(IllegalStateException.class, () -> other.allocate(DType.F32, 4));
    }

    @Test
    void copyValidation() {
        gpu();
        try (Tensor h = random(DType.F32, 1f, 8); DeviceTensor d = ctx.allocate(DType.BF16, 8); DeviceTensor d9 = ctx.allocate(DType.F32, 9)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.copyFrom(h));
            assertTrue(e.getMessage().contains("dtype"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> d9.copyFrom(h));
            assertThrows(IllegalArgumentException.class, () -> d.fillBytes(256));
        }
        assertThrows(IllegalArgumentException.class, () -> ctx.allocate(DType.F32, -1));
        assertThrows(IllegalArgumentException.class, () -> ctx.allocate(DType.U4, 8));
    }

    @Test
    void eventsTimeTheStream() {
        gpu();
        try (CudaEvent a = ctx.newEvent(); CudaEvent b = ctx.newEvent(); DeviceTensor x = ctx.allocate(DType.F32, 1 << 20)) {
            a.record();
            x.fillBytes(1);
            b.record();
            float ms = a.elapsedMs(b);
            assertTrue(ms >= 0 && Float.isFinite(ms), "elapsed " + ms);
        }
        assertTrue(ctx.streamAddress() != 0);
    }

    // ------------------------------------------------------------------ GEMM

    @Test
    void matmulMatchesDoubleReference() {
        gpu();
        long[][] sizes = {{1, 1, 1}, {7, 63, 65}, {127, 65, 7}, {64, 128, 96}, {33, 1, 17}};
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            for (long[] s : sizes) {
                for (boolean transB : new boolean[] {false, true}) {
                    for (Activation act : Activation.values()) {
                        boolean withBias = act != Activation.NONE || transB;
                        DType outDt = (dt != DType.F32 && (s[0] % 2 == 1)) ? dt : DType.F32;
                        checkMatmul(dt, outDt, 0, s[0], s[1], s[2], transB, withBias, act, 0f);
                    }
                }
            }
        }
        // batched a with a 2-D and a 3-D b, and beta accumulating into c
        checkMatmul(DType.BF16, DType.F32, 3, 17, 64, 33, true, true, Activation.NONE, 0f);
        checkMatmul(DType.F16, DType.F16, 2, 5, 40, 24, false, false, Activation.RELU, 0f);
        checkMatmul(DType.F32, DType.F32, 0, 9, 31, 13, false, true, Activation.NONE, 0.5f);
    }

    /** batch 0: 2-D; batch > 0: a [batch, m, k] with a 2-D b (odd batch) or a batched b (even). */
    private static void checkMatmul(DType dt, DType outDt, int batch, long m, long k, long n, boolean transB, boolean withBias,
                                    Activation act, float beta) {
        String what = dt + "->" + outDt + " batch " + batch + " m" + m + " k" + k + " n" + n + " transB " + transB + " bias " + withBias + " " + act + " beta " + beta;
        long[] aShape = batch > 0 ? new long[] {batch, m, k} : new long[] {m, k};
        boolean bBatched = batch > 0 && batch % 2 == 0;
        long[] bCore = transB ? new long[] {n, k} : new long[] {k, n};
        long[] bShape = bBatched ? new long[] {batch, bCore[0], bCore[1]} : bCore;
        long[] cShape = batch > 0 ? new long[] {batch, m, n} : new long[] {m, n};
        try (Tensor ha = random(dt, 1f, aShape); Tensor hb = random(dt, 1f, bShape); Tensor hbias = random(DType.F32, 1f, n);
             Tensor hc0 = random(outDt, 1f, cShape);
             DeviceTensor a = ctx.upload(ha); DeviceTensor b = ctx.upload(hb); DeviceTensor bias = ctx.upload(hbias);
             DeviceTensor c = ctx.allocate(outDt, cShape)) {
            if (beta != 0) c.copyFrom(hc0);
            else c.fillBytes(0xff); // NaN: every element must be written
            ctx.matmul(a, b, withBias ? bias : null, c, new MatmulOptions(transB, act, 1f, beta));
            float[] got = c.toFloatArray();
            float[] A = ha.toFloatArray(), B = hb.toFloatArray(), bi = hbias.toFloatArray(), c0 = hc0.toFloatArray();
            int nb = Math.max(1, batch);
            double[] ref = new double[got.length];
            for (int z = 0; z < nb; z++) {
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        double acc = 0;
                        for (int p = 0; p < k; p++) {
                            double av = A[(int) ((z * m + i) * k + p)];
                            int bz = bBatched ? z : 0;
                            double bv = transB ? B[(int) ((bz * n + j) * k + p)] : B[(int) ((bz * k + p) * n + j)];
                            acc += av * bv;
                        }
                        int o = (int) ((z * m + i) * n + j);
                        if (withBias) acc += bi[j];
                        if (beta != 0) acc += beta * c0[o];
                        // GELU(erf) and SiLU are documented as a second pass over c: they see
                        // the pre-activation rounded to c's dtype (in the negative tail of GELU a
                        // bf16 rounding of x moves GELU(x) by several percent)
                        if (act == Activation.GELU_ERF || act == Activation.SILU) acc = roundTo(outDt, acc);
                        ref[o] = activation(act, acc);
                    }
                }
            }
            double tol = outDt == DType.BF16 ? 1e-2 : outDt == DType.F16 ? 2e-3 : dt == DType.F32 ? 1e-5 : 1e-3;
            // cuBLASLt's fused GELU epilogue is its own approximation of the tanh form (errors of
            // a few 1e-6 absolute seen in f32): an absolute floor besides the relative bound.
            // With a 16-bit output a bias term of magnitude <= 1 may be rounded to that dtype
            // before the add (half an ulp at 1: 2^-9 bf16, 2^-12 f16), which a relative bound
            // cannot cover where a*b and the bias cancel (seen once: 1x1x1 bf16, relative 0.014)
            double absTol = Math.max(act == Activation.GELU_TANH ? 2e-5 : 0,
                    withBias && outDt == DType.BF16 ? 0x1p-8 : withBias && outDt == DType.F16 ? 0x1p-11 : 0);
            assertClose(ref, got, tol, absTol, what);
        }
    }

    private static double roundTo(DType dt, double x) {
        return switch (dt) {
            case BF16 -> Tensor.bf16ToFloat(Tensor.floatToBf16((float) x));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16((float) x));
            default -> x;
        };
    }

    private static double activation(Activation act, double x) {
        return switch (act) {
            case NONE -> x;
            case RELU -> Math.max(0, x);
            case GELU_ERF -> 0.5 * x * (1 + erf(x / Math.sqrt(2)));
            case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
            case SILU -> x / (1 + Math.exp(-x));
        };
    }

    /** erf to ~1e-15 (series for small |x|, continued fraction of erfc for large). */
    private static double erf(double x) {
        double ax = Math.abs(x);
        if (ax < 3) {
            double sum = 0, term = ax;
            for (int n = 0; n < 200; n++) {
                sum += term / (2 * n + 1);
                term *= -ax * ax / (n + 1);
                if (Math.abs(term) < 1e-18) break;
            }
            return Math.signum(x) * 2 / Math.sqrt(Math.PI) * sum;
        }
        double f = 0;
        for (int n = 60; n >= 1; n--) f = n / 2.0 / (ax + f);
        double erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
        return Math.signum(x) * (1 - erfc);
    }

    @Test
    void matmulValidatesInJava() {
        gpu();
        try (DeviceTensor a = ctx.allocate(DType.BF16, 4, 8); DeviceTensor b = ctx.allocate(DType.BF16, 7, 5);
             DeviceTensor c = ctx.allocate(DType.F32, 4, 5); DeviceTensor f = ctx.allocate(DType.F32, 8, 5);
             DeviceTensor bias = ctx.allocate(DType.F32, 6)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.matmul(a, b, c));
            assertTrue(e.getMessage().contains("inner dims"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.matmul(a, f, c));
            assertTrue(e.getMessage().contains("dtype"), e.getMessage());
            try (DeviceTensor b2 = ctx.allocate(DType.BF16, 8, 5)) {
                e = assertThrows(IllegalArgumentException.class, () -> ctx.matmul(a, b2, bias, c, MatmulOptions.DEFAULT));
                assertTrue(e.getMessage().contains("bias"), e.getMessage());
                try (CudaContext other = CudaContext.create(); DeviceTensor o = other.allocate(DType.F32, 4, 5)) {
                    e = assertThrows(IllegalArgumentException.class, () -> ctx.matmul(a, b2, o));
                    assertTrue(e.getMessage().contains("another CUDA context"), e.getMessage());
                }
                b2.close();
                assertThrows(IllegalStateException.class, () -> ctx.matmul(a, b2, c));
            }
        }
    }

    // ------------------------------------------------------------------ flash attention

    @Test
    void flashAttentionMatchesDoubleReference() {
        gpu();
        // {B, Sq, Sk, Hq, Hkv, D, causal}
        int[][] cases = {
            {1, 1, 1, 1, 1, 64, 0}, {2, 7, 65, 4, 2, 64, 1}, {1, 127, 127, 2, 2, 128, 1}, {2, 65, 33, 4, 1, 128, 0},
            {1, 33, 17, 2, 1, 128, 1}, {1, 130, 200, 2, 2, 80, 0}, {1, 63, 63, 2, 1, 96, 1}, {1, 70, 129, 2, 2, 256, 1},
        };
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            for (int[] c : cases) checkAttention(dt, c[0], c[1], c[2], c[3], c[4], c[5], c[6] == 1, false);
        }
        // q, k, v, out given as [B, H, S, D] tensors through transpose(1, 2)
        checkAttention(DType.BF16, 2, 65, 65, 4, 2, 128, true, true);
    }

    private static void checkAttention(DType dt, int b, int sq, int sk, int hq, int hkv, int d, boolean causal, boolean bhsd) {
        String what = dt + " B" + b + " Sq" + sq + " Sk" + sk + " Hq" + hq + " Hkv" + hkv + " D" + d + (causal ? " causal" : "") + (bhsd ? " [B,H,S,D] views" : "");
        long[] qs = bhsd ? new long[] {b, hq, sq, d} : new long[] {b, sq, hq, d};
        long[] ks = bhsd ? new long[] {b, hkv, sk, d} : new long[] {b, sk, hkv, d};
        try (Tensor hqT = random(dt, 1f, qs); Tensor hkT = random(dt, 1f, ks); Tensor hvT = random(dt, 1f, ks);
             DeviceTensor q0 = ctx.upload(hqT); DeviceTensor k0 = ctx.upload(hkT); DeviceTensor v0 = ctx.upload(hvT);
             DeviceTensor out0 = ctx.allocate(dt, qs); DeviceTensor lse = ctx.allocate(DType.F32, b, hq, sq)) {
            out0.fillBytes(0xff);
            lse.fillBytes(0xff);
            DeviceTensor q = bhsd ? q0.transpose(1, 2) : q0, k = bhsd ? k0.transpose(1, 2) : k0, v = bhsd ? v0.transpose(1, 2) : v0;
            DeviceTensor out = bhsd ? out0.transpose(1, 2) : out0;
            float scale = 1f / (float) Math.sqrt(d);
            ctx.flashAttention(q, k, v, out, lse, causal, 0f);
            float[] got = out0.toFloatArray(), gotLse = lse.toFloatArray();
            float[] Q = hqT.toFloatArray(), K = hkT.toFloatArray(), V = hvT.toFloatArray();
            double[] ref = new double[got.length];
            double[] refLse = new double[gotLse.length];
            int group = hq / hkv;
            for (int z = 0; z < b; z++) {
                for (int h = 0; h < hq; h++) {
                    int hk = h / group;
                    for (int i = 0; i < sq; i++) {
                        int qOff = bhsd ? ((z * hq + h) * sq + i) * d : ((z * sq + i) * hq + h) * d;
                        double[] s = new double[sk];
                        double mx = Double.NEGATIVE_INFINITY;
                        int lim = causal ? i + (sk - sq) : sk - 1; // bottom-right aligned
                        for (int j = 0; j <= Math.min(lim, sk - 1); j++) {
                            int kOff = bhsd ? ((z * hkv + hk) * sk + j) * d : ((z * sk + j) * hkv + hk) * d;
                            double acc = 0;
                            for (int p = 0; p < d; p++) acc += (double) Q[qOff + p] * K[kOff + p];
                            s[j] = acc * scale;
                            mx = Math.max(mx, s[j]);
                        }
                        double sum = 0;
                        double[] o = new double[d];
                        for (int j = 0; j <= Math.min(lim, sk - 1); j++) {
                            double e = Math.exp(s[j] - mx);
                            sum += e;
                            int vOff = bhsd ? ((z * hkv + hk) * sk + j) * d : ((z * sk + j) * hkv + hk) * d;
                            for (int p = 0; p < d; p++) o[p] += e * V[vOff + p];
                        }
                        for (int p = 0; p < d; p++) ref[qOff + p] = sum > 0 ? o[p] / sum : 0;
                        refLse[(z * hq + h) * sq + i] = sum > 0 ? mx + Math.log(sum) : Double.NEGATIVE_INFINITY;
                    }
                }
            }
            assertClose(ref, got, dt == DType.BF16 ? 2e-2 : 5e-3, what);
            for (int i = 0; i < refLse.length; i++) {
                if (Double.isInfinite(refLse[i])) {
                    assertTrue(gotLse[i] == Float.NEGATIVE_INFINITY, what + ": lse[" + i + "] = " + gotLse[i] + " for a row with no keys");
                } else {
                    assertTrue(Math.abs(gotLse[i] - refLse[i]) <= 1e-3 * (1 + Math.abs(refLse[i])), what + ": lse[" + i + "] " + gotLse[i] + " vs " + refLse[i]);
                }
            }
        }
    }

    @Test
    void flashAttentionVarlenMatchesPerSequenceReference() {
        gpu();
        int[] lq = {5, 1, 17, 64}, lk = {5, 9, 17, 130};
        int hq = 4, hkv = 2, d = 128;
        int tq = 0, tk = 0;
        int[] cq = new int[lq.length + 1], ck = new int[lk.length + 1];
        for (int i = 0; i < lq.length; i++) {
            cq[i + 1] = cq[i] + lq[i];
            ck[i + 1] = ck[i] + lk[i];
        }
        tq = cq[lq.length];
        tk = ck[lk.length];
        for (boolean causal : new boolean[] {false, true}) {
            try (Tensor hqT = random(DType.BF16, 1f, tq, hq, d); Tensor hkT = random(DType.BF16, 1f, tk, hkv, d);
                 Tensor hvT = random(DType.BF16, 1f, tk, hkv, d); Tensor hcq = Tensor.ofInts(cq, cq.length); Tensor hck = Tensor.ofInts(ck, ck.length);
                 DeviceTensor q = ctx.upload(hqT); DeviceTensor k = ctx.upload(hkT); DeviceTensor v = ctx.upload(hvT);
                 DeviceTensor dcq = ctx.upload(hcq); DeviceTensor dck = ctx.upload(hck); DeviceTensor out = ctx.allocate(DType.BF16, tq, hq, d)) {
                out.fillBytes(0xff);
                ctx.flashAttentionVarlen(q, k, v, out, null, dcq, dck, 64, 130, causal, 0f);
                float[] got = out.toFloatArray(), Q = hqT.toFloatArray(), K = hkT.toFloatArray(), V = hvT.toFloatArray();
                double[] ref = new double[got.length];
                double scale = 1 / Math.sqrt(d);
                for (int sIdx = 0; sIdx < lq.length; sIdx++) {
                    for (int h = 0; h < hq; h++) {
                        int hk = h / (hq / hkv);
                        for (int i = 0; i < lq[sIdx]; i++) {
                            int qOff = ((cq[sIdx] + i) * hq + h) * d;
                            int lim = causal ? Math.min(lk[sIdx] - 1, i + lk[sIdx] - lq[sIdx]) : lk[sIdx] - 1;
                            double mx = Double.NEGATIVE_INFINITY;
                            double[] s = new double[lk[sIdx]];
                            for (int j = 0; j <= lim; j++) {
                                int kOff = ((ck[sIdx] + j) * hkv + hk) * d;
                                double acc = 0;
                                for (int p = 0; p < d; p++) acc += (double) Q[qOff + p] * K[kOff + p];
                                s[j] = acc * scale;
                                mx = Math.max(mx, s[j]);
                            }
                            double sum = 0;
                            double[] o = new double[d];
                            for (int j = 0; j <= lim; j++) {
                                double e = Math.exp(s[j] - mx);
                                sum += e;
                                int vOff = ((ck[sIdx] + j) * hkv + hk) * d;
                                for (int p = 0; p < d; p++) o[p] += e * V[vOff + p];
                            }
                            for (int p = 0; p < d; p++) ref[qOff + p] = sum > 0 ? o[p] / sum : 0;
                        }
                    }
                }
                assertClose(ref, got, 2e-2, "varlen" + (causal ? " causal" : ""));
            }
        }
    }

    @Test
    void flashDecodeMatchesDoubleReference() {
        gpu();
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            for (int d : new int[] {64, 128}) {
                checkDecode(dt, 3, 8, 2, d, 300, new int[] {1, 157, 300});
            }
        }
        checkDecode(DType.BF16, 1, 4, 4, 256, 1025, new int[] {1025});
        checkDecode(DType.BF16, 2, 6, 1, 80, 7, new int[] {7, 3});
    }

    private static void checkDecode(DType dt, int b, int hq, int hkv, int d, int smax, int[] lens) {
        String what = "decode " + dt + " B" + b + " Hq" + hq + " Hkv" + hkv + " D" + d + " Smax" + smax;
        try (Tensor hqT = random(dt, 1f, b, hq, d); Tensor hkT = random(dt, 1f, b, hkv, smax, d); Tensor hvT = random(dt, 1f, b, hkv, smax, d);
             Tensor hl = Tensor.ofInts(lens, b);
             DeviceTensor q = ctx.upload(hqT); DeviceTensor k = ctx.upload(hkT); DeviceTensor v = ctx.upload(hvT);
             DeviceTensor sl = ctx.upload(hl); DeviceTensor out = ctx.allocate(dt, b, hq, d)) {
            out.fillBytes(0xff);
            ctx.flashDecode(q, k, v, sl, out, 0f, 0);
            float[] got = out.toFloatArray(), Q = hqT.toFloatArray(), K = hkT.toFloatArray(), V = hvT.toFloatArray();
            double[] ref = new double[got.length];
            double scale = 1 / Math.sqrt(d);
            for (int z = 0; z < b; z++) {
                for (int h = 0; h < hq; h++) {
                    int hk = h / (hq / hkv);
                    int qOff = (z * hq + h) * d;
                    double mx = Double.NEGATIVE_INFINITY;
                    double[] s = new double[lens[z]];
                    for (int j = 0; j < lens[z]; j++) {
                        int kOff = ((z * hkv + hk) * smax + j) * d;
                        double acc = 0;
                        for (int p = 0; p < d; p++) acc += (double) Q[qOff + p] * K[kOff + p];
                        s[j] = acc * scale;
                        mx = Math.max(mx, s[j]);
                    }
                    double sum = 0;
                    double[] o = new double[d];
                    for (int j = 0; j < lens[z]; j++) {
                        double e = Math.exp(s[j] - mx);
                        sum += e;
                        int vOff = ((z * hkv + hk) * smax + j) * d;
                        for (int p = 0; p < d; p++) o[p] += e * V[vOff + p];
                    }
                    for (int p = 0; p < d; p++) ref[qOff + p] = o[p] / sum;
                }
            }
            assertClose(ref, got, dt == DType.BF16 ? 2e-2 : 5e-3, what);
        }
    }

    @Test
    void attentionValidatesInJava() {
        gpu();
        try (DeviceTensor q = ctx.allocate(DType.BF16, 1, 8, 4, 64); DeviceTensor k = ctx.allocate(DType.BF16, 1, 8, 3, 64);
             DeviceTensor out = ctx.allocate(DType.BF16, 1, 8, 4, 64); DeviceTensor q48 = ctx.allocate(DType.BF16, 1, 8, 4, 48);
             DeviceTensor f = ctx.allocate(DType.F32, 1, 8, 4, 64)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(q, k, k, out, null, false, 0f));
            assertTrue(e.getMessage().contains("multiple of key/value heads"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(q48, q48, q48, q48, null, false, 0f));
            assertTrue(e.getMessage().contains("head dim 48"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(f, f, f, f, null, false, 0f));
            assertTrue(e.getMessage().contains("dtype"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(q, q, q, out, null, false, Float.NaN));
            assertTrue(e.getMessage().contains("scale"), e.getMessage());
            DeviceTensor misaligned = q.slice(3, 1, 63);
            assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(misaligned, misaligned, misaligned, misaligned, null, false, 0f));
            try (DeviceTensor lseBad = ctx.allocate(DType.F32, 1, 4, 7)) {
                e = assertThrows(IllegalArgumentException.class, () -> ctx.flashAttention(q, q, q, out, lseBad, false, 0f));
                assertTrue(e.getMessage().contains("lse"), e.getMessage());
            }
            try (DeviceTensor q3 = ctx.allocate(DType.BF16, 2, 4, 64); DeviceTensor kc = ctx.allocate(DType.BF16, 2, 4, 16, 64);
                 DeviceTensor sl = ctx.allocate(DType.I32, 3)) {
                e = assertThrows(IllegalArgumentException.class, () -> ctx.flashDecode(q3, kc, kc, sl, q3, 0f, 0));
                assertTrue(e.getMessage().contains("seqlensK"), e.getMessage());
            }
        }
    }

    @Test
    void nativeErrorsSurfaceAsPanatronException() {
        gpu();
        // K = 0 is refused in Java; an absurd allocation reaches the allocator and fails there
        PanatronException e = assertThrows(PanatronException.class, () -> ctx.allocate(DType.F32, 1L << 46));
        assertFalse(e.getMessage().isBlank());
    }

    // ------------------------------------------------------------------ LayerNorm and the encoder

    @Test
    void layerNormMatchesDoubleReference() {
        gpu();
        for (DType dt : new DType[] {DType.F32, DType.BF16, DType.F16}) {
            for (long[] s : new long[][] {{1, 1}, {7, 33}, {130, 384}, {3, 5, 1025}}) {
                long cols = s[s.length - 1];
                try (Tensor hx = random(dt, 2f, s); Tensor hg = random(DType.F32, 1f, cols); Tensor hb = random(DType.F32, 1f, cols);
                     DeviceTensor x = ctx.upload(hx); DeviceTensor g = ctx.upload(hg); DeviceTensor b = ctx.upload(hb);
                     DeviceTensor out = ctx.allocate(dt, s)) {
                    out.fillBytes(0xff);
                    ctx.layerNorm(x, g, b, 1e-5f, out);
                    float[] X = hx.toFloatArray(), G = hg.toFloatArray(), B = hb.toFloatArray(), got = out.toFloatArray();
                    double[] ref = new double[X.length];
                    for (int r = 0; r < X.length / cols; r++) layerNormRow(X, r * (int) cols, (int) cols, G, B, 1e-5, ref);
                    assertClose(ref, got, dt == DType.F32 ? 1e-5 : dt == DType.F16 ? 2e-3 : 1e-2, "layerNorm " + dt + " " + java.util.Arrays.toString(s));
                }
            }
        }
        try (DeviceTensor x = ctx.allocate(DType.F32, 4, 8); DeviceTensor g = ctx.allocate(DType.F32, 7)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.layerNorm(x, g, null, 1e-5f, x));
            assertTrue(e.getMessage().contains("gamma"), e.getMessage());
        }
    }

    private static void layerNormRow(float[] x, int off, int n, float[] g, float[] b, double eps, double[] out) {
        double mean = 0, var = 0;
        for (int j = 0; j < n; j++) mean += x[off + j];
        mean /= n;
        for (int j = 0; j < n; j++) var += (x[off + j] - mean) * (x[off + j] - mean);
        var /= n;
        for (int j = 0; j < n; j++) out[off + j] = (x[off + j] - mean) / Math.sqrt(var + eps) * g[j] + (b == null ? 0 : b[j]);
    }

    @Test
    void bertEncoderMatchesDoubleReference() {
        gpu();
        int[] lens = {5, 17, 1, 40};
        for (DType dt : new DType[] {DType.BF16, DType.F16}) {
            for (int[] shape : new int[][] {{64, 2, 96}, {128, 2, 80}}) { // hidden, heads, intermediate: head dims 32 (padded) and 64
                CudaBertEncoder.Config cfg = new CudaBertEncoder.Config(shape[0], shape[1], shape[2], 1e-12f);
                checkEncoder(dt, cfg, 2, lens);
            }
        }
    }

    private static void checkEncoder(DType dt, CudaBertEncoder.Config cfg, int nLayers, int[] lens) {
        int h = cfg.hidden(), inter = cfg.intermediate();
        List<float[][]> ws = new java.util.ArrayList<>();
        List<CudaBertEncoder.LayerWeights> layers = new java.util.ArrayList<>();
        List<Tensor> hostTensors = new java.util.ArrayList<>();
        for (int l = 0; l < nLayers; l++) {
            long[][] shapes = {{h, h}, {h}, {h, h}, {h}, {h, h}, {h}, {h, h}, {h}, {h}, {h}, {inter, h}, {inter}, {h, inter}, {h}, {h}, {h}};
            float[][] vals = new float[shapes.length][];
            Tensor[] ts = new Tensor[shapes.length];
            for (int i = 0; i < shapes.length; i++) {
                long fanIn = shapes[i].length == 2 ? shapes[i][1] : 1;
                boolean gamma = i == 8 || i == 14;
                float amp = shapes[i].length == 2 ? (float) Math.sqrt(3.0 / fanIn) : 0.5f;
                float[] v = new float[Math.toIntExact(shapes[i].length == 2 ? shapes[i][0] * shapes[i][1] : shapes[i][0])];
                for (int j = 0; j < v.length; j++) {
                    float r = (RND.nextFloat() * 2 - 1) * amp + (gamma ? 1f : 0f);
                    v[j] = Tensor.bf16ToFloat(Tensor.floatToBf16(r)); // representable in bf16 and f16: the GPU sees the same weights
                }
                vals[i] = v;
                ts[i] = Tensor.of(v, shapes[i]);
                hostTensors.add(ts[i]);
            }
            ws.add(vals);
            layers.add(new CudaBertEncoder.LayerWeights(ts[0], ts[1], ts[2], ts[3], ts[4], ts[5], ts[6], ts[7], ts[8], ts[9],
                    ts[10], ts[11], ts[12], ts[13], ts[14], ts[15]));
        }
        int total = 0, max = 0;
        int[] cu = new int[lens.length + 1];
        for (int i = 0; i < lens.length; i++) {
            cu[i + 1] = cu[i] + lens[i];
            max = Math.max(max, lens[i]);
        }
        total = cu[lens.length];
        String what = "encoder " + dt + " " + cfg + " layers " + nLayers;
        try (CudaBertEncoder enc = new CudaBertEncoder(ctx, cfg, layers, dt); Tensor hx = random(dt, 1f, total, h);
             Tensor hcu = Tensor.ofInts(cu, cu.length); DeviceTensor x = ctx.upload(hx); DeviceTensor dcu = ctx.upload(hcu);
             DeviceTensor y = enc.forward(x, dcu, max)) {
            float[] got = y.toFloatArray();
            assertArrayEquals(hx.toFloatArray(), x.toFloatArray(), "forward must not modify x");
            double[] cur = new double[total * h];
            float[] x0 = hx.toFloatArray();
            for (int i = 0; i < cur.length; i++) cur[i] = x0[i];
            for (float[][] w : ws) cur = refLayer(cur, total, cfg, w, cu);
            assertClose(cur, got, dt == DType.BF16 ? 3e-2 : 1e-2, what);
        } finally {
            for (Tensor t : hostTensors) t.close();
        }
    }

    /** One post-LN BERT layer in double: weights w in LayerWeights order. */
    private static double[] refLayer(double[] x, int total, CudaBertEncoder.Config cfg, float[][] w, int[] cu) {
        int h = cfg.hidden(), nh = cfg.heads(), d = cfg.headDim(), inter = cfg.intermediate();
        double[] q = linear(x, total, h, w[0], w[1], h), k = linear(x, total, h, w[2], w[3], h), v = linear(x, total, h, w[4], w[5], h);
        double[] attn = new double[total * h];
        double scale = 1 / Math.sqrt(d);
        for (int s = 0; s + 1 < cu.length; s++) {
            for (int head = 0; head < nh; head++) {
                for (int i = cu[s]; i < cu[s + 1]; i++) {
                    double[] sc = new double[cu[s + 1] - cu[s]];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = cu[s]; j < cu[s + 1]; j++) {
                        double acc = 0;
                        for (int p = 0; p < d; p++) acc += q[i * h + head * d + p] * k[j * h + head * d + p];
                        sc[j - cu[s]] = acc * scale;
                        mx = Math.max(mx, sc[j - cu[s]]);
                    }
                    double sum = 0;
                    for (int j = 0; j < sc.length; j++) sum += sc[j] = Math.exp(sc[j] - mx);
                    for (int j = cu[s]; j < cu[s + 1]; j++) {
                        for (int p = 0; p < d; p++) attn[i * h + head * d + p] += sc[j - cu[s]] / sum * v[j * h + head * d + p];
                    }
                }
            }
        }
        double[] o = linear(attn, total, h, w[6], w[7], h);
        for (int i = 0; i < o.length; i++) o[i] += x[i];
        double[] h1 = layerNorm(o, total, h, w[8], w[9], cfg.eps());
        double[] f = linear(h1, total, h, w[10], w[11], inter);
        for (int i = 0; i < f.length; i++) f[i] = 0.5 * f[i] * (1 + erf(f[i] / Math.sqrt(2)));
        double[] f2 = linear(f, total, inter, w[12], w[13], h);
        for (int i = 0; i < f2.length; i++) f2[i] += h1[i];
        return layerNorm(f2, total, h, w[14], w[15], cfg.eps());
    }

    private static double[] linear(double[] x, int rows, int in, float[] w, float[] b, int out) {
        double[] y = new double[rows * out];
        for (int r = 0; r < rows; r++) {
            for (int o = 0; o < out; o++) {
                double acc = b[o];
                for (int i = 0; i < in; i++) acc += x[r * in + i] * w[o * in + i];
                y[r * out + o] = acc;
            }
        }
        return y;
    }

    private static double[] layerNorm(double[] x, int rows, int n, float[] g, float[] b, double eps) {
        double[] y = new double[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < n; j++) mean += x[r * n + j];
            mean /= n;
            for (int j = 0; j < n; j++) var += (x[r * n + j] - mean) * (x[r * n + j] - mean);
            var /= n;
            for (int j = 0; j < n; j++) y[r * n + j] = (x[r * n + j] - mean) / Math.sqrt(var + eps) * g[j] + b[j];
        }
        return y;
    }

    // ------------------------------------------------------------------ helpers

    /** Uniform in [-amp, amp), rounded to dtype (the reference reads the rounded values back). */
    static Tensor random(DType dt, float amp, long... shape) {
        long n = 1;
        for (long s : shape) n *= s;
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = (RND.nextFloat() * 2 - 1) * amp;
        return Tensor.of(dt, v, shape);
    }

    /** Relative L2 error below tol, no NaN anywhere (outputs were poisoned with NaN). */
    static void assertClose(double[] ref, float[] got, double tol, String what) {
        assertClose(ref, got, tol, 0, what);
    }

    /** ||got - ref|| <= tol ||ref|| + absTol sqrt(n), no NaN anywhere. */
    static void assertClose(double[] ref, float[] got, double tol, double absTol, String what) {
        assertEquals(ref.length, got.length, what);
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            assertFalse(Float.isNaN(got[i]), () -> what + ": NaN (unwritten output?)");
            double dlt = got[i] - ref[i];
            num += dlt * dlt;
            den += ref[i] * ref[i];
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30));
        boolean ok = Math.sqrt(num) <= tol * Math.sqrt(den) + absTol * Math.sqrt(ref.length);
        assertTrue(ok, what + ": relative L2 error " + rel + " > " + tol + (absTol > 0 ? " (absolute floor " + absTol + ")" : ""));
    }
}
