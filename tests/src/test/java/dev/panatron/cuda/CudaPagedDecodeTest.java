package dev.panatron.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.panatron.DType;
import dev.panatron.Tensor;

import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * Paged KV cache on the GPU through Java: {@link CudaContext#flashDecodePaged} against a
 * double-precision reference and against {@link CudaContext#flashDecode} on the same keys (equal bit
 * for bit), random non-monotonic block tables with blocks shared between sequences, odd lengths,
 * GQA and MHA, NaN-poisoned outputs; {@link CudaDecoderOps#ropeKvAppendPaged} against the contiguous
 * append; argument validation. Skipped (JUnit assumption) where no GPU is present.
 */
class CudaPagedDecodeTest extends GpuTest {
    private static final Random RND = new Random();

    /** 0..n-1 shuffled. */
    private static int[] perm(int n) {
        int[] x = new int[n];
        for (int i = 0; i < n; i++) x[i] = i;
        for (int i = n - 1; i > 0; i--) {
            int j = RND.nextInt(i + 1);
            int t = x[i];
            x[i] = x[j];
            x[j] = t;
        }
        return x;
    }

    @Test
    void pagedDecodeMatchesReferenceAndContiguous() {
        gpu();
        checkPaged(DType.BF16, 8, 2, 128, 16, new int[] {1, 7, 1000}, true);
        checkPaged(DType.F16, 4, 4, 64, 32, new int[] {7, 1, 1000}, false);
        checkPaged(DType.BF16, 6, 2, 80, 1, new int[] {1000, 7, 1}, true);
    }

    private static void checkPaged(DType dt, int hq, int hkv, int d, int bs, int[] lens, boolean shared) {
        int b = lens.length, maxLen = 0;
        for (int l : lens) maxLen = Math.max(maxLen, l);
        int mb = (maxLen + bs - 1) / bs + 1, nb = b * mb + 3, cap = mb * bs;
        int[] ids = perm(nb);
        int[] table = new int[b * mb];
        System.arraycopy(ids, 0, table, 0, b * mb);
        if (shared) {
            for (int z = 1; z < b; z++) System.arraycopy(table, 0, table, z * mb, mb / 2);
        }
        String what = "paged decode " + dt + " Hq" + hq + " Hkv" + hkv + " D" + d + " bs" + bs;
        try (Tensor hq3 = CudaTest.random(dt, 1f, b, hq, d); Tensor hk = CudaTest.random(dt, 1f, nb, hkv, bs, d);
             Tensor hv = CudaTest.random(dt, 1f, nb, hkv, bs, d); Tensor hl = Tensor.ofInts(lens, b); Tensor ht = Tensor.ofInts(table, b, mb);
             DeviceTensor q = ctx.upload(hq3); DeviceTensor kp = ctx.upload(hk); DeviceTensor vp = ctx.upload(hv);
             DeviceTensor sl = ctx.upload(hl); DeviceTensor bt = ctx.upload(ht); DeviceTensor out = ctx.allocate(dt, b, hq, d);
             DeviceTensor out2 = ctx.allocate(dt, b, hq, d)) {
            out.fillBytes(0xff);
            ctx.flashDecodePaged(q, kp, vp, bt, sl, out, 0f, 0);
            float[] got = out.toFloatArray(), Q = hq3.toFloatArray(), K = hk.toFloatArray(), V = hv.toFloatArray();
            double[] ref = new double[got.length];
            double scale = 1 / Math.sqrt(d);
            float[] kc = new float[b * hkv * cap * d], vc = new float[b * hkv * cap * d];
            for (int z = 0; z < b; z++) {
                for (int h = 0; h < hkv; h++) {
                    for (int j = 0; j < lens[z]; j++) {
                        int off = ((table[z * mb + j / bs] * hkv + h) * bs + j % bs) * d;
                        System.arraycopy(K, off, kc, ((z * hkv + h) * cap + j) * d, d);
                        System.arraycopy(V, off, vc, ((z * hkv + h) * cap + j) * d, d);
                    }
                }
                for (int h = 0; h < hq; h++) {
                    int hk2 = h / (hq / hkv), qOff = (z * hq + h) * d;
                    double[] s = new double[lens[z]];
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < lens[z]; j++) {
                        int kOff = ((table[z * mb + j / bs] * hkv + hk2) * bs + j % bs) * d;
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
                        int vOff = ((table[z * mb + j / bs] * hkv + hk2) * bs + j % bs) * d;
                        for (int p = 0; p < d; p++) o[p] += e * V[vOff + p];
                    }
                    for (int p = 0; p < d; p++) ref[qOff + p] = o[p] / sum;
                }
            }
            CudaTest.assertClose(ref, got, dt == DType.BF16 ? 2e-2 : 5e-3, what);
            // the contiguous decode on the same keys, gathered through the table: the same kernel and split
            try (Tensor hkc = Tensor.of(dt, kc, b, hkv, cap, d); Tensor hvc = Tensor.of(dt, vc, b, hkv, cap, d);
                 DeviceTensor k = ctx.upload(hkc); DeviceTensor v = ctx.upload(hvc)) {
                out2.fillBytes(0xff);
                ctx.flashDecode(q, k, v, sl, out2, 0f, 0);
                assertArrayEquals(out2.toFloatArray(), got, what + ": differs from the contiguous decode");
            }
        }
    }

    @Test
    void pagedAppendMatchesContiguousAppend() {
        gpu();
        int b = 3, hq = 8, hkv = 2, d = 64, bs = 16, mb = 4, nb = b * mb + 2, cap = mb * bs, w = (hq + 2 * hkv) * d;
        int[] pos = {5, cap - 1, cap + 2}; // the last is past the capacity: not written
        int[] ids = perm(nb);
        int[] table = new int[b * mb];
        System.arraycopy(ids, 0, table, 0, b * mb);
        float[] inv = new float[d / 2];
        for (int i = 0; i < d / 2; i++) inv[i] = (float) Math.pow(10000, -2.0 * i / d);
        try (Tensor hqkv = CudaTest.random(DType.BF16, 2f, b, w); Tensor hpos = Tensor.ofInts(pos, b); Tensor ht = Tensor.ofInts(table, b, mb);
             Tensor hinv = Tensor.of(inv, d / 2); Tensor ones = Tensor.ofInts(new int[] {1, 1, 1}, b);
             DeviceTensor qkv1 = ctx.upload(hqkv); DeviceTensor qkv2 = ctx.upload(hqkv); DeviceTensor dpos = ctx.upload(hpos);
             DeviceTensor bt = ctx.upload(ht); DeviceTensor dinv = ctx.upload(hinv); DeviceTensor sl1 = ctx.upload(ones);
             DeviceTensor sl2 = ctx.upload(ones); DeviceTensor kp = ctx.allocate(DType.BF16, nb, hkv, bs, d);
             DeviceTensor vp = ctx.allocate(DType.BF16, nb, hkv, bs, d); DeviceTensor kc = ctx.allocate(DType.BF16, b, hkv, cap, d);
             DeviceTensor vc = ctx.allocate(DType.BF16, b, hkv, cap, d)) {
            for (DeviceTensor t : new DeviceTensor[] {kp, vp, kc, vc}) t.fillBytes(0xff);
            CudaDecoderOps.ropeKvAppendPaged(ctx, qkv1, dpos, dinv, hq, kp, vp, bt, sl1);
            CudaDecoderOps.ropeKvAppend(ctx, qkv2, dpos, dinv, hq, kc, vc, sl2);
            assertArrayEquals(qkv2.toFloatArray(), qkv1.toFloatArray(), "q rotated as by the contiguous append");
            try (Tensor l1 = sl1.toHost(); Tensor l2 = sl2.toHost()) {
                assertArrayEquals(new int[] {6, cap, 1}, l1.toIntArray(), "seqlens raised for the rows written");
                assertArrayEquals(l2.toIntArray(), l1.toIntArray());
            }
            float[] kpa = kp.toFloatArray(), vpa = vp.toFloatArray(), kca = kc.toFloatArray(), vca = vc.toFloatArray();
            int finite = 0;
            for (float x : kpa) finite += Float.isNaN(x) ? 0 : 1;
            assertEquals(2 * hkv * d, finite, "exactly the two in-range rows were written into the K pool");
            for (int z = 0; z < 2; z++) {
                int blk = table[z * mb + pos[z] / bs], r = pos[z] % bs;
                for (int h = 0; h < hkv; h++) {
                    for (int j = 0; j < d; j++) {
                        int po = ((blk * hkv + h) * bs + r) * d + j, co = ((z * hkv + h) * cap + pos[z]) * d + j;
                        assertFalse(Float.isNaN(kpa[po]), "written");
                        assertEquals(kca[co], kpa[po], "k row " + z + " head " + h);
                        assertEquals(vca[co], vpa[po], "v row " + z + " head " + h);
                    }
                }
            }
        }
    }

    @Test
    void pagedValidatesInJava() {
        gpu();
        try (DeviceTensor q = ctx.allocate(DType.BF16, 2, 8, 128); DeviceTensor pool = ctx.allocate(DType.BF16, 10, 2, 16, 128);
             DeviceTensor pool12 = ctx.allocate(DType.BF16, 10, 2, 12, 128); DeviceTensor bt = ctx.allocate(DType.I32, 2, 4);
             DeviceTensor bt3 = ctx.allocate(DType.I32, 3, 4); DeviceTensor btf = ctx.allocate(DType.F32, 2, 4);
             DeviceTensor sl = ctx.allocate(DType.I32, 2); DeviceTensor qkv = ctx.allocate(DType.BF16, 2, 12 * 128);
             DeviceTensor pos = ctx.allocate(DType.I32, 2)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ctx.flashDecodePaged(q, pool12, pool12, bt, sl, q, 0f, 0));
            assertTrue(e.getMessage().contains("block size 12"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashDecodePaged(q, pool, pool, bt3, sl, q, 0f, 0));
            assertTrue(e.getMessage().contains("blockTable"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashDecodePaged(q, pool, pool, btf, sl, q, 0f, 0));
            assertTrue(e.getMessage().contains("blockTable"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> ctx.flashDecodePaged(q, pool, pool, bt, sl, q, 0f, 65));
            assertTrue(e.getMessage().contains("capacity"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaDecoderOps.ropeKvAppendPaged(ctx, qkv, pos, null, 8, pool12, pool12, bt, null));
            assertTrue(e.getMessage().contains("block size 12"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaDecoderOps.ropeKvAppendPaged(ctx, qkv, pos, null, 8, pool, pool, bt3, null));
            assertTrue(e.getMessage().contains("blockTable"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> CudaDecoderOps.ropeKvAppendPaged(ctx, qkv, pos, null, 8, pool, pool, btf, null));
            assertTrue(e.getMessage().contains("blockTable"), e.getMessage());
        }
    }
}
