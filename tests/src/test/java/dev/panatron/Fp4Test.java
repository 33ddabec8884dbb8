package dev.panatron;

import dev.panatron.Fp4.Format;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.EnumSet;
import java.util.Set;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Fp4}: quantize, weight-only and W4A4 matmul against a plain double-precision reference
 * of the same quantized math (codes decoded here from the packed bytes, with their scales),
 * odd sizes and NaN-poisoned outputs; the search on weights built for a known winner; bad input.
 */
class Fp4Test {
    static Context ctx;
    final SplittableRandom rnd = new SplittableRandom(55);

    @BeforeAll
    static void open() { ctx = Context.create(2); }

    @AfterAll
    static void close() { ctx.close(); }

    float[] random(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rnd.nextDouble(-1, 1);
        return a;
    }

    static int code(byte[] codes, long k, int n, int j) {
        int b = codes[(int) (n * (k / 2) + j / 2)] & 0xff;
        return (j & 1) == 0 ? b & 15 : b >> 4;
    }

    @Test
    void levels() {
        assertArrayEquals(new float[] {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0f, -0.5f, -1, -1.5f, -2, -3, -4, -6}, Fp4.levels(Format.E2M1));
        assertArrayEquals(new float[] {0, 0.25f, 0.5f, 1, 2, 4, 8, 16, -0f, -0.25f, -0.5f, -1, -2, -4, -8, -16}, Fp4.levels(Format.E3M0));
        float[] nf4 = Fp4.levels(Format.NF4);
        assertEquals(-1f, nf4[0]);
        assertEquals(0f, nf4[7]);
        assertEquals(1f, nf4[15]);
    }

    static boolean has(int caps) { return (Panatron.cpuCaps() & caps) == caps; }

    /** Weight-only and W4A4 against the double reference, odd sizes, every format. */
    @Test
    void matmulMatchesReference() {
        boolean vnni = has(CpuCaps.AVX512F | CpuCaps.AVX512_VNNI);
        matmulMatchesReference(ctx, vnni ? 2 : has(CpuCaps.AVX512F | CpuCaps.AVX512_BF16) ? 1 : 0);
    }

    /** The same with AVX512_FP16 disabled: the VNNI GEMV looks the levels up with vpshufb, not vpermb (VBMI). */
    @Test
    void matmulVnniPshufbMatchesReference() {
        try (Context c = Context.create(2, true, CpuCaps.AVX512_FP16)) {
            boolean vnni = has(CpuCaps.AVX512F | CpuCaps.AVX512_VNNI);
            matmulMatchesReference(c, vnni ? 2 : has(CpuCaps.AVX512F | CpuCaps.AVX512_BF16) ? 1 : 0);
        }
    }

    /** The same with AVX512_VNNI disabled: the W4A16 GEMV on AVX512_BF16 where present. */
    @Test
    void matmulBf16GemvMatchesReference() {
        try (Context c = Context.create(2, true, CpuCaps.AVX512_VNNI)) {
            matmulMatchesReference(c, has(CpuCaps.AVX512F | CpuCaps.AVX512_BF16) ? 1 : 0);
        }
    }

    /** The same with AVX512_VNNI and AVX512_BF16 disabled: the f32-activation kernels. */
    @Test
    void matmulF32ActivationsMatchesReference() {
        try (Context c = Context.create(2, true, CpuCaps.AVX512_VNNI | CpuCaps.AVX512_BF16)) {
            matmulMatchesReference(c, 0);
        }
    }

    /** gemv: the GEMV kernel the context takes (M = 1, weight-only, not NF4): 0 f32 x, 1 W4A16 (x rounded to bf16), 2 VNNI (x quantized by vnniX). */
    private void matmulMatchesReference(Context ctx, int gemv) {
        int[][] shapes = {{33, 64, 32}, {65, 192, 64}, {7, 256, 128}, {17, 70, 0}, {3, 2, 0}, {9, 480, 32}, {5, 130, 0}}; // N, K, group
        int[] ms = {1, 7, 65};
        int variant = 0;
        for (Format f : Format.values()) {
            for (int[] sh : shapes) {
                for (int m : ms) {
                    boolean w4a4 = variant % 3 == 2 && f != Format.NF4;
                    check(ctx, f, sh[0], sh[1], sh[2], m, variant % 2 == 0 ? DType.F32 : DType.BF16, w4a4, Format.values()[variant % 3],
                            m == 1 && !w4a4 && f != Format.NF4 ? gemv : 0);
                    variant++;
                }
            }
        }
    }

    private void check(Context ctx, Format f, int n, int k, int group, int m, DType scaleType, boolean w4a4, Format actFormat, int gemv) {
        boolean w4a16 = gemv == 1, vnni = gemv == 2;
        int ng = group == 0 ? 1 : k / group, g = group == 0 ? k : group;
        try (Arena arena = Arena.ofConfined()) {
            float[] w = random(n * k), x = random(m * k), bias = random(n);
            int[] shift = new int[k];
            if (w4a4) for (int j = 1; j < k; j += 7) {
                shift[j] = 1 + j % 2;
                for (int r = 0; r < m; r++) x[r * k + j] *= 1 << shift[j];
            }
            Tensor tw = Tensor.allocate(arena, DType.F32, n, k), tx = Tensor.allocate(arena, DType.F32, m, k);
            Tensor tb = Tensor.allocate(arena, DType.F32, n), ty = Tensor.allocate(arena, DType.F32, m, n);
            Tensor codes = Tensor.allocate(arena, DType.U4, n, k), scales = Tensor.allocate(arena, scaleType, n, ng);
            Tensor tsh = Tensor.allocate(arena, DType.I32, k);
            tsh.segment().copyFrom(java.lang.foreign.MemorySegment.ofArray(shift));
            tw.copyFrom(w); tx.copyFrom(x); tb.copyFrom(bias);
            Fp4.quantize(ctx, tw, f, group, 1f, w4a4 ? tsh : null, codes, scales);
            ty.fill(Float.NaN);
            if (w4a4) Fp4.matmulW4A4(ctx, tx, codes, scales, f, group, actFormat, 1f, tsh, tb, ty);
            else Fp4.matmul(ctx, tx, codes, scales, f, group, tb, ty);
            byte[] cb = codes.segment().toArray(ValueLayout.JAVA_BYTE);
            float[] sc = scales.toFloatArray();
            float[] lv = Fp4.levels(f), la = Fp4.levels(actFormat);
            float[] xq = x.clone();
            if (w4a16) for (int j = 0; j < xq.length; j++) xq[j] = Fp4Mirror.bf16(xq[j]);
            if (vnni) xq = Fp4Mirror.vnniX(x);
            if (w4a4) { // the activations the kernel multiplies, mirrored in float
                float maxl = 0;
                for (float v : la) maxl = Math.max(maxl, Math.abs(v));
                for (int r = 0; r < m; r++) {
                    float amax = 0;
                    for (int j = 0; j < k; j++) { xq[r * k + j] = Math.scalb(x[r * k + j], -shift[j]); amax = Math.max(amax, Math.abs(xq[r * k + j])); }
                    float a = amax * (1f / maxl);
                    for (int j = 0; j < k; j++) {
                        float v = xq[r * k + j] / a;
                        int best = 0;
                        for (int c = 1; c < 16; c++) {
                            float d = Math.abs(v - la[c]), bd = Math.abs(v - la[best]);
                            if (d < bd || (d == bd && Math.abs(la[c]) < Math.abs(la[best]))) best = c;
                        }
                        xq[r * k + j] = a > 0 ? a * la[best] : 0f;
                    }
                }
            }
            float[] y = ty.toFloatArray();
            for (int r = 0; r < m; r++) {
                for (int c = 0; c < n; c++) {
                    double s = bias[c], sa = Math.abs(s);
                    for (int j = 0; j < k; j++) {
                        double t = (double) xq[r * k + j] * ((double) lv[code(cb, k, c, j)] * sc[c * ng + j / g]);
                        s += t;
                        sa += Math.abs(t);
                    }
                    double got = y[r * n + c];
                    // W4A16: exact bf16 x level products, <= 2 roundings per vdpbf16ps lane step (K/32 of them), a scale FMA per
                    // 128-chunk, a 16-lane tree: at most (2 K/32 + K/128 + 8) roundings of 2^-24 relative to sum |terms|
                    // VNNI: exact integer lane sums; per 128-chunk a conversion and an FMA round, then the tree: (2 K/128 + 8) roundings
                    double rel = w4a16 ? (2.0 * ((k + 31) / 32) + (k + 127) / 128 + 8) * 0x1p-24
                            : vnni ? (2.0 * ((k + 127) / 128) + 8) * 0x1p-24 : 2e-6;
                    assertTrue(Math.abs(got - s) <= rel * sa + 1e-6, f + (w4a16 ? " W4A16" : vnni ? " VNNI" : "") + (w4a4 ? " W4A4 " + actFormat : "") + " M=" + m + " N=" + n + " K=" + k
                            + " group " + group + ": y[" + r + "," + c + "] = " + got + ", want " + s);
                }
            }
            // round trip: dequantize equals the decoded codes
            Tensor deq = Tensor.allocate(arena, DType.F32, n, k);
            Fp4.dequantize(ctx, codes, scales, f, group, deq);
            float[] d = deq.toFloatArray();
            for (int c = 0; c < n; c++) for (int j = 0; j < k; j++) assertEquals(lv[code(cb, k, c, j)] * sc[c * ng + j / g], d[c * k + j], 0f);
        }
    }

    /** Fp4.prepareMatmul: each run equals Fp4.matmul (checked against the reference above) on
     *  fresh x (y poisoned), bad shapes refused at preparation, a closed tensor at run time. */
    @Test
    void preparedMatmulEqualsTheOneOffCall() {
        int n = 65, k = 192, group = 64;
        try (Arena arena = Arena.ofConfined()) {
            Tensor tw = Tensor.allocate(arena, DType.F32, n, k), tb = Tensor.allocate(arena, DType.F32, n);
            Tensor codes = Tensor.allocate(arena, DType.U4, n, k), scales = Tensor.allocate(arena, DType.F32, n, k / group);
            tw.copyFrom(random(n * k));
            tb.copyFrom(random(n));
            Fp4.quantize(ctx, tw, Format.E2M1, group, 1f, null, codes, scales);
            for (int m : new int[] {1, 7}) {
                Tensor tx = Tensor.allocate(arena, DType.F32, m, k), ty = Tensor.allocate(arena, DType.F32, m, n), want = Tensor.allocate(arena, DType.F32, m, n);
                Kernels.Call call = Fp4.prepareMatmul(ctx, tx, codes, scales, Format.E2M1, group, tb, ty);
                for (int round = 0; round < 2; round++) {
                    tx.copyFrom(random(m * k));
                    ty.fill(Float.NaN);
                    call.run();
                    Fp4.matmul(ctx, tx, codes, scales, Format.E2M1, group, tb, want);
                    assertArrayEquals(want.toFloatArray(), ty.toFloatArray(), "M=" + m + " round " + round);
                }
            }
            Tensor x = Tensor.allocate(arena, DType.F32, 1, k), y = Tensor.allocate(arena, DType.F32, 1, n);
            expect(IllegalArgumentException.class, "must be [1, " + n + "]",
                    () -> Fp4.prepareMatmul(ctx, x, codes, scales, Format.E2M1, group, null, Tensor.allocate(arena, DType.F32, 1, n + 1)));
            Tensor x2 = Tensor.allocate(DType.F32, 1, k);
            Kernels.Call call = Fp4.prepareMatmul(ctx, x2, codes, scales, Format.E2M1, group, null, y);
            x2.close();
            assertThrows(IllegalStateException.class, call::run);
        }
    }

    @Test
    void searchPicksTheGridFormat() {
        int n = 16, k = 64, m = 8;
        for (Format target : new Format[] {Format.E1M2, Format.E2M1, Format.E3M0}) {
            float[] lv = Fp4.levels(target);
            float[] w = new float[n * k];
            for (int r = 0; r < n; r++) {
                float s = (float) Math.scalb(1.0, r % 4 - 1);
                for (int j = 0; j < k; j++) w[r * k + j] = lv[rnd.nextInt(16)] * s;
                w[r * k + r] = lv[7] * s; // the largest level
            }
            try (Tensor tw = Tensor.of(w, n, k); Tensor tx = Tensor.of(random(m * k), m, k)) {
                Fp4.SearchResult res = Fp4.search(ctx, tw, tx, 32, Set.of(), 0.7f, 1f, 0.85f);
                assertEquals(target, res.format(), "weights on the " + target + " grid");
                assertEquals(1f, res.clip());
                assertTrue(res.relativeError() < 1e-10, "relative error " + res.relativeError());
            }
        }
    }

    static <T extends Throwable> void expect(Class<T> type, String needle, Executable call) {
        T e = assertThrows(type, call);
        assertTrue(e.getMessage() != null && e.getMessage().contains(needle), "message '" + e.getMessage() + "' should mention '" + needle + "'");
    }

    @Test
    void badInputs() {
        try (Arena a = Arena.ofConfined()) {
            Tensor w = Tensor.allocate(a, DType.F32, 8, 64), x = Tensor.allocate(a, DType.F32, 2, 64), y = Tensor.allocate(a, DType.F32, 2, 8);
            Tensor codes = Tensor.allocate(a, DType.U4, 8, 64), scales = Tensor.allocate(a, DType.F32, 8, 2);
            w.copyFrom(random(8 * 64));
            Fp4.quantize(ctx, w, Format.E2M1, 32, 1f, null, codes, scales);
            expect(IllegalArgumentException.class, "not a multiple of the group size 32",
                    () -> Fp4.quantize(ctx, Tensor.allocate(a, DType.F32, 8, 48), Format.E2M1, 32, 1f, null, Tensor.allocate(a, DType.U4, 8, 48), scales));
            expect(IllegalArgumentException.class, "even innermost dim",
                    () -> Fp4.matmul(ctx, x, Tensor.allocate(a, DType.U4, 8, 63), Tensor.allocate(a, DType.F32, 8, 1), Format.E2M1, 0, null, y));
            expect(IllegalArgumentException.class, "expected [8, 2]",
                    () -> Fp4.matmul(ctx, x, codes, Tensor.allocate(a, DType.F32, 8, 3), Format.E2M1, 32, null, y));
            expect(IllegalArgumentException.class, "codes: dtype F32",
                    () -> Fp4.matmul(ctx, x, Tensor.allocate(a, DType.F32, 8, 64), scales, Format.E2M1, 32, null, y));
            expect(IllegalArgumentException.class, "scales: dtype I32",
                    () -> Fp4.matmul(ctx, x, codes, Tensor.allocate(a, DType.I32, 8, 2), Format.E2M1, 32, null, y));
            expect(IllegalArgumentException.class, "x: dtype I8",
                    () -> Fp4.matmul(ctx, Tensor.allocate(a, DType.I8, 2, 64), codes, scales, Format.E2M1, 32, null, y));
            expect(IllegalArgumentException.class, "must be [2, 8]",
                    () -> Fp4.matmul(ctx, x, codes, scales, Format.E2M1, 32, null, Tensor.allocate(a, DType.F32, 2, 7)));
            expect(IllegalArgumentException.class, "group 48", () -> Fp4.matmul(ctx, x, codes, scales, Format.E2M1, 48, null, y));
            expect(IllegalArgumentException.class, "clip 1.5", () -> Fp4.quantize(ctx, w, Format.E2M1, 32, 1.5f, null, codes, scales));
            expect(IllegalArgumentException.class, "overlaps", () -> Fp4.matmul(ctx, x, codes, scales, Format.E2M1, 32, null,
                    Tensor.wrap(x.segment().asSlice(0, 64), DType.F32, 2, 8)));
            Tensor closed = Tensor.allocate(DType.F32, 2, 64);
            closed.close();
            assertThrows(IllegalStateException.class, () -> Fp4.matmul(ctx, closed, codes, scales, Format.E2M1, 32, null, y));
            // still healthy
            x.copyFrom(random(2 * 64));
            Fp4.matmul(ctx, x, codes, scales, Format.E2M1, 32, null, y);
            for (float v : y.toFloatArray()) assertTrue(Float.isFinite(v));
        }
    }

    @Test
    void searchSetOfOneFormat() {
        try (Tensor tw = Tensor.of(random(4 * 64), 4, 64); Tensor tx = Tensor.of(random(3 * 64), 3, 64)) {
            Fp4.SearchResult r = Fp4.search(ctx, tw, tx, 0, EnumSet.of(Format.NF4));
            assertEquals(Format.NF4, r.format());
            assertTrue(r.mse() > 0 && r.refPower() > 0);
        }
    }
}
