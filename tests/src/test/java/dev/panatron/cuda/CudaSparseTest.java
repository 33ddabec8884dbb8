package dev.panatron.cuda;

import static dev.panatron.cuda.CudaTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.panatron.DType;
import dev.panatron.PanatronException;
import dev.panatron.Status;
import dev.panatron.Tensor;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Sparse matmul on the GPU through Java ({@link CudaContext#sparse24}, {@link CudaContext#sparse24Matmul},
 * {@link CudaContext#blockSparse}, {@link CudaContext#blockSparseMatmul}) against double references
 * written here (the 2:4 pruning rule re-implemented on the host), fresh random inputs, odd sizes,
 * NaN-poisoned outputs. Skipped where no GPU, driver or libpanatron_cuda is present (as in CI); the
 * 2:4 tests also where cuSPARSELt cannot be loaded.
 */
class CudaSparseTest extends GpuTest {
    private static final Random RND = new Random();

    private static float[] uniform(long n, float amp) {
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) v[i] = (RND.nextFloat() * 2 - 1) * amp;
        return v;
    }

    /** ref[m, n] = sum_k x[m, k] w[n, k] + bias[n] in doubles (values as rounded to dt on the host). */
    private static double[] reference(float[] x, float[] w, float[] bias, int m, int n, int k) {
        double[] r = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = bias == null ? 0 : bias[j];
                for (int t = 0; t < k; t++) s += (double) x[i * k + t] * w[j * k + t];
                r[i * n + j] = s;
            }
        return r;
    }

    /** The contract's 2:4 pruning: per group of 4 along k keep the 2 largest |w| (ties: lower k). */
    private static float[] prune24(float[] w, int n, int k) {
        float[] p = w.clone();
        for (int r = 0; r < n; r++)
            for (int c0 = 0; c0 < k; c0 += 4) {
                for (int i = 0; i < 4 && c0 + i < k; i++) {
                    float ai = Math.abs(w[r * k + c0 + i]);
                    int beat = 0;
                    for (int j = 0; j < 4; j++) {
                        float aj = c0 + j < k ? Math.abs(w[r * k + c0 + j]) : 0f;
                        if (j != i && (aj > ai || (aj == ai && j < i))) beat++;
                    }
                    if (beat >= 2) p[r * k + c0 + i] = 0f;
                }
            }
        return p;
    }

    @Test
    void blockSparseMatchesDoubleReference() {
        gpu();
        int[][] shapes = {{1, 64, 64}, {7, 65, 63}, {33, 128, 256}, {130, 200, 129}, {300, 192, 320}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            for (DType dt : new DType[] {DType.BF16, DType.F16}) {
                for (DType yt : new DType[] {dt, DType.F32}) {
                    String what = "blockSparse " + dt + "->" + yt + " " + m + "x" + n + "x" + k;
                    float[] wv = uniform((long) n * k, 1f);
                    int nb = (n + 63) / 64, kb = (k + 63) / 64;
                    boolean[] keep = new boolean[nb * kb];
                    long kept = 0;
                    for (int b = 0; b < keep.length; b++) {
                        keep[b] = RND.nextFloat() < 0.5f || b == 0;
                        kept += keep[b] ? 1 : 0;
                    }
                    for (int r = 0; r < n; r++)
                        for (int c = 0; c < k; c++) if (!keep[(r / 64) * kb + c / 64]) wv[r * k + c] = 0f;
                    try (Tensor hw = Tensor.of(dt, wv, n, k); Tensor hx = Tensor.of(dt, uniform((long) m * k, 1f), m, k);
                         Tensor hb = Tensor.of(DType.F32, uniform(n, 2f), n);
                         DeviceTensor w = ctx.upload(hw); DeviceTensor x = ctx.upload(hx); DeviceTensor bias = ctx.upload(hb);
                         DeviceTensor y = ctx.allocate(yt, m, n); BlockSparseWeight bw = ctx.blockSparse(w)) {
                        assertEquals(kept, bw.nonZeroBlocks(), what + " blocks");
                        assertEquals((long) nb * kb, bw.totalBlocks(), what + " total blocks");
                        y.fillBytes(0xff);
                        ctx.blockSparseMatmul(bw, x, bias, y);
                        try (Tensor hy = y.toHost()) {
                            double[] ref = reference(hx.toFloatArray(), hw.toFloatArray(), hb.toFloatArray(), m, n, k);
                            assertClose(ref, hy.toFloatArray(), yt == DType.F32 ? 1e-5 : yt == DType.BF16 ? 8e-3 : 1e-3, what);
                        }
                    }
                }
            }
        }
    }

    @Test
    void sparse24PrunesByTheContractAndMatches() {
        gpu();
        int[][] shapes = {{1, 64, 64}, {7, 65, 63}, {130, 200, 129}, {256, 128, 256}};
        for (int[] s : shapes) {
            int m = s[0], n = s[1], k = s[2];
            DType dt = m % 2 == 0 ? DType.BF16 : DType.F16;
            String what = "sparse24 " + dt + " " + m + "x" + n + "x" + k;
            try (Tensor hw = Tensor.of(dt, uniform((long) n * k, 1f), n, k); Tensor hx = Tensor.of(dt, uniform((long) m * k, 1f), m, k);
                 Tensor hb = Tensor.of(dt, uniform(n, 2f), n);
                 DeviceTensor w = ctx.upload(hw); DeviceTensor x = ctx.upload(hx); DeviceTensor bias = ctx.upload(hb);
                 DeviceTensor wp = ctx.allocate(dt, n, k); DeviceTensor y = ctx.allocate(dt, m, n)) {
                Sparse24Weight sw;
                try {
                    sw = ctx.sparse24(w, true);
                } catch (PanatronException e) {
                    assumeTrue(e.status() != Status.UNSUPPORTED, () -> "cuSPARSELt unavailable: " + e.getMessage());
                    throw e;
                }
                try (sw) {
                    float[] pruned = prune24(hw.toFloatArray(), n, k);
                    wp.fillBytes(0xff);
                    sw.copyPrunedTo(wp);
                    try (Tensor got = wp.toHost()) {
                        float[] g = got.toFloatArray();
                        for (int i = 0; i < g.length; i++) assertEquals(pruned[i], g[i], what + " pruned weight " + i);
                    }
                    double[] ref = reference(hx.toFloatArray(), pruned, hb.toFloatArray(), m, n, k);
                    for (Sparse24Weight.Path p : Sparse24Weight.Path.values()) {
                        y.fillBytes(0xff);
                        ctx.sparse24Matmul(sw, x, bias, y, p);
                        try (Tensor hy = y.toHost()) {
                            assertClose(ref, hy.toFloatArray(), dt == DType.BF16 ? 1e-2 : 2e-3, what + " " + p);
                        }
                    }
                    assertEquals(Sparse24Weight.Path.DENSE, sw.autoPath(1), what);
                    assertEquals(Sparse24Weight.Path.SPARSE, sw.autoPath(4096), what);
                }
                assertFalse(sw.isOpen());
                assertThrows(IllegalStateException.class, () -> ctx.sparse24Matmul(sw, x, bias, y));
            }
        }
    }

    @Test
    void argumentsAreValidated() {
        gpu();
        try (DeviceTensor w = ctx.allocate(DType.BF16, 64, 64); DeviceTensor wf = ctx.allocate(DType.F32, 64, 64);
             DeviceTensor x = ctx.allocate(DType.BF16, 4, 64); DeviceTensor xbad = ctx.allocate(DType.BF16, 4, 60);
             DeviceTensor xh = ctx.allocate(DType.F16, 4, 64); DeviceTensor y = ctx.allocate(DType.BF16, 4, 64);
             DeviceTensor ybad = ctx.allocate(DType.BF16, 4, 63); DeviceTensor b65 = ctx.allocate(DType.F32, 65)) {
            w.fillBytes(0);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.blockSparse(wf));
            assertTrue(e.getMessage().contains("blockSparse w"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> ctx.sparse24(wf, true));
            assertThrows(IllegalArgumentException.class, () -> ctx.sparse24(w, true, -2, true));
            try (BlockSparseWeight bw = ctx.blockSparse(w)) {
                assertEquals(0, bw.nonZeroBlocks());
                e = assertThrows(IllegalArgumentException.class, () -> ctx.blockSparseMatmul(bw, xbad, null, y));
                assertTrue(e.getMessage().contains("K = 64"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> ctx.blockSparseMatmul(bw, x, null, ybad));
                assertTrue(e.getMessage().contains("y "), e.getMessage());
                assertThrows(IllegalArgumentException.class, () -> ctx.blockSparseMatmul(bw, xh, null, y));
                e = assertThrows(IllegalArgumentException.class, () -> ctx.blockSparseMatmul(bw, x, b65, y));
                assertTrue(e.getMessage().contains("bias"), e.getMessage());
                y.fillBytes(0xff);
                ctx.blockSparseMatmul(bw, x, null, y); // no block at all: y = 0
                try (Tensor hy = y.toHost()) {
                    for (float v : hy.toFloatArray()) assertEquals(0f, v);
                }
            }
        }
    }
}
