package dev.panatron;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@link Kernels#flashAttention}, {@link Kernels#flashAttentionDecode} and {@link KvCache}
 * against a plain double-precision attention softmax(scale Q Kᵀ + mask) V written here, on
 * fresh random inputs, with outputs poisoned (NaN) before each call.
 */
class AttentionTest {
    static Context ctx;
    static Context portable;
    final Random rnd = new Random(7);

    @BeforeAll
    static void setUp() {
        ctx = Context.create(2);
        portable = Context.create(2, false, CpuCaps.AVX512F | CpuCaps.AVX512_BF16 | CpuCaps.AMX_BF16);
    }

    @AfterAll
    static void tearDown() {
        ctx.close();
        portable.close();
    }

    // ------------------------------------------------------------------ reference

    /** Visibility rule of AttentionOptions for sequence lengths sq, sk. */
    static boolean visible(AttentionOptions o, long i, long j, long sq, long sk) {
        long p = i + sk - sq;
        if (o.causal() && j > p) return false;
        if (o.windowLeft() >= 0 && j < p - o.windowLeft()) return false;
        return o.windowRight() < 0 || j <= p + o.windowRight();
    }

    /**
     * Attention of one sequence: q [sq][H][D], k [sk][Hkv][D], v [sk][Hkv][Dv] (flattened),
     * mask [sk] or null; writes out [sq][H][Dv] and lse [H][sq].
     */
    static void reference(float[] q, float[] k, float[] v, int[] mask, int sq, int sk, int h, int hkv, int d, int dv,
                          AttentionOptions o, double[] out, double[] lse, boolean bf16Naive) {
        int g = h / hkv;
        double scale = o.scale() != 0 ? o.scale() : 1.0 / Math.sqrt(d);
        double[] s = new double[sk];
        for (int hh = 0; hh < h; hh++) {
            for (int i = 0; i < sq; i++) {
                double mx = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < sk; j++) {
                    s[j] = Double.NEGATIVE_INFINITY;
                    if (!visible(o, i, j, sq, sk) || (mask != null && mask[j] == 0)) continue;
                    double acc = 0;
                    if (bf16Naive) {
                        float f = 0;
                        for (int x = 0; x < d; x++) f += q[(i * h + hh) * d + x] * k[(j * hkv + hh / g) * d + x];
                        acc = bf(bf(f) * (float) scale);
                    } else {
                        for (int x = 0; x < d; x++) acc += (double) q[(i * h + hh) * d + x] * k[(j * hkv + hh / g) * d + x];
                        acc *= scale;
                    }
                    s[j] = acc;
                    mx = Math.max(mx, acc);
                }
                double sum = 0;
                for (int j = 0; j < sk; j++) {
                    s[j] = s[j] == Double.NEGATIVE_INFINITY ? 0 : Math.exp(s[j] - mx);
                    sum += s[j];
                }
                if (lse != null) lse[hh * sq + i] = sum > 0 ? mx + Math.log(sum) : Double.NEGATIVE_INFINITY;
                for (int x = 0; x < dv; x++) {
                    double acc = 0;
                    float f = 0;
                    for (int j = 0; j < sk; j++) {
                        if (s[j] == 0) continue;
                        float vv = v[(j * hkv + hh / g) * dv + x];
                        if (bf16Naive) f += bf((float) (s[j] / sum)) * vv;
                        else acc += s[j] / sum * vv;
                    }
                    out[(i * h + hh) * dv + x] = sum == 0 ? 0 : bf16Naive ? bf(f) : acc;
                }
            }
        }
    }

    static float bf(float x) { return Tensor.bf16ToFloat(Tensor.floatToBf16(x)); }

    float[] random(int n, double a, boolean roundBf16) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) ((rnd.nextDouble() * 2 - 1) * a);
            if (roundBf16) x[i] = bf(x[i]);
        }
        return x;
    }

    static double maxErr(float[] got, double[] want, double atol, double rtol) {
        double worst = 0;
        for (int i = 0; i < got.length; i++) {
            double e = Math.abs(got[i] - want[i]) / (atol + rtol * Math.abs(want[i]));
            if (Double.isNaN(e)) return Double.POSITIVE_INFINITY;
            worst = Math.max(worst, e);
        }
        return worst;
    }

    static double maxAbs(float[] got, double[] want) {
        double worst = 0;
        for (int i = 0; i < got.length; i++) {
            double e = Math.abs(got[i] - want[i]);
            if (Double.isNaN(e)) return Double.POSITIVE_INFINITY;
            worst = Math.max(worst, e);
        }
        return worst;
    }

    // ------------------------------------------------------------------ prefill

    /** Padded batch of B equal-length sequences; returns the max normalized error. */
    void checkPadded(Context c, DType dt, int b, int sq, int sk, int h, int hkv, int d, int dv, AttentionOptions o, boolean padMask) {
        boolean bfl = dt == DType.BF16;
        float[] q = random(b * sq * h * d, 2.5, bfl), k = random(b * sk * hkv * d, 2.5, bfl), v = random(b * sk * hkv * dv, 1, bfl);
        int[][] mask = padMask ? new int[b][sk] : null;
        if (padMask) {
            for (int bb = 0; bb < b; bb++) {
                int len = bb == 0 ? sk : rnd.nextInt(sk + 1);
                for (int j = 0; j < sk; j++) mask[bb][j] = j < len && rnd.nextDouble() > 0.1 ? 1 : 0;
            }
        }
        try (Tensor tq = Tensor.of(dt, q, b, sq, h, d); Tensor tk = Tensor.of(dt, k, b, sk, hkv, d); Tensor tv = Tensor.of(dt, v, b, sk, hkv, dv);
             Tensor out = Tensor.allocate(dt, b, sq, h, dv); Tensor lse = Tensor.allocate(DType.F32, b, h, sq);
             Tensor tm = padMask ? Tensor.allocate(DType.U8, b, sk) : null) {
            out.fill(Float.NaN);
            lse.fill(Float.NaN);
            AttentionOptions opts = o.withLse(lse);
            if (padMask) {
                for (int bb = 0; bb < b; bb++) for (int j = 0; j < sk; j++) tm.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, (long) bb * sk + j, (byte) mask[bb][j]);
                opts = opts.withKeyPaddingMask(tm);
            }
            Kernels.flashAttention(c, tq, tk, tv, out, opts);
            float[] got = out.toFloatArray(), gotLse = lse.toFloatArray();
            String what = dt + " B=" + b + " Sq=" + sq + " Sk=" + sk + " H=" + h + " Hkv=" + hkv + " D=" + d + " Dv=" + dv + " " + o + " mask=" + padMask;
            for (int bb = 0; bb < b; bb++) {
                float[] qs = slice(q, bb * sq * h * d, sq * h * d), ks = slice(k, bb * sk * hkv * d, sk * hkv * d), vs = slice(v, bb * sk * hkv * dv, sk * hkv * dv);
                double[] want = new double[sq * h * dv], wantLse = new double[h * sq];
                reference(qs, ks, vs, padMask ? mask[bb] : null, sq, sk, h, hkv, d, dv, o, want, wantLse, false);
                float[] g = slice(got, bb * sq * h * dv, sq * h * dv);
                if (bfl) {
                    double[] naive = new double[sq * h * dv];
                    reference(qs, ks, vs, padMask ? mask[bb] : null, sq, sk, h, hkv, d, dv, o, naive, null, true);
                    float[] nf = new float[naive.length];
                    for (int i = 0; i < nf.length; i++) nf[i] = (float) naive[i];
                    double e = maxAbs(g, want), en = maxAbs(nf, want);
                    assertTrue(e <= 2 * en + 1e-6, what + ": bf16 error " + e + " > 2 x naive bf16 error " + en);
                } else {
                    double e = maxErr(g, want, 2e-5, 2e-5);
                    assertTrue(e <= 1, what + ": error " + e);
                }
                for (int hh = 0; hh < h; hh++) {
                    for (int i = 0; i < sq; i++) {
                        double w = wantLse[hh * sq + i], gl = gotLse[(bb * h + hh) * sq + i];
                        if (w == Double.NEGATIVE_INFINITY) assertEquals(Float.NEGATIVE_INFINITY, (float) gl, what + ": lse of a row with no key");
                        else assertTrue(Math.abs(gl - w) <= (bfl ? 5e-3 : 1e-4) * (1 + Math.abs(w)), what + ": lse " + gl + " vs " + w);
                    }
                }
            }
        }
    }

    static float[] slice(float[] a, int off, int n) {
        float[] r = new float[n];
        System.arraycopy(a, off, r, 0, n);
        return r;
    }

    @Test
    void prefillShapes() {
        for (Context c : new Context[] {ctx, portable}) {
            checkPadded(c, DType.F32, 1, 1, 1, 1, 1, 64, 64, AttentionOptions.DEFAULT, false);               // S = 1
            checkPadded(c, DType.F32, 2, 7, 7, 4, 2, 64, 64, AttentionOptions.CAUSAL, false);                // odd S, GQA
            checkPadded(c, DType.F32, 1, 65, 65, 2, 2, 80, 80, AttentionOptions.DEFAULT, false);             // not a tile multiple
            checkPadded(c, DType.F32, 1, 67, 67, 4, 1, 96, 96, AttentionOptions.CAUSAL, false);              // MQA
            checkPadded(c, DType.F32, 1, 17, 90, 2, 2, 64, 64, AttentionOptions.CAUSAL, false);              // chunked prefill
            checkPadded(c, DType.F32, 1, 10, 4, 2, 1, 64, 64, AttentionOptions.CAUSAL, false);               // rows with no key
            checkPadded(c, DType.F32, 1, 120, 120, 2, 1, 64, 64, AttentionOptions.DEFAULT.withSlidingWindow(31), false);
            checkPadded(c, DType.F32, 1, 50, 50, 2, 2, 32, 32, AttentionOptions.DEFAULT.withWindow(5, 9), false);
            checkPadded(c, DType.F32, 3, 40, 40, 4, 2, 64, 64, AttentionOptions.DEFAULT, true);              // padding mask
            checkPadded(c, DType.F32, 2, 30, 30, 2, 1, 64, 64, AttentionOptions.CAUSAL.withScale(0.3f), true);
            checkPadded(c, DType.F32, 1, 20, 20, 2, 2, 64, 32, AttentionOptions.DEFAULT, false);             // Dv != D
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 32, 40, 64, 72, 80, 96, 128, 160, 192, 255, 256})
    void everyHeadDim(int d) {
        checkPadded(ctx, DType.F32, 1, 21, 21, 2, 1, d, d, AttentionOptions.CAUSAL, false);
        checkPadded(ctx, DType.BF16, 1, 21, 21, 2, 1, d, d, AttentionOptions.DEFAULT, false);
    }

    @Test
    void bf16WithinTwiceTheNaiveBf16Error() {
        checkPadded(ctx, DType.BF16, 2, 70, 70, 4, 2, 128, 128, AttentionOptions.CAUSAL, false);
        checkPadded(ctx, DType.BF16, 1, 33, 33, 8, 2, 64, 64, AttentionOptions.DEFAULT, true);
        checkPadded(portable, DType.BF16, 1, 33, 33, 2, 2, 80, 80, AttentionOptions.CAUSAL, false);
    }

    @Test
    void packedVariableLengthBatch() {
        int[] lq = {5, 0, 70, 1}, lk = {9, 3, 70, 40};
        int h = 4, hkv = 2, d = 64;
        for (boolean cross : new boolean[] {false, true}) {
            int[] kl = cross ? lk : lq;
            int tq = 0, tk = 0;
            for (int i = 0; i < lq.length; i++) { tq += lq[i]; tk += kl[i]; }
            float[] q = random(tq * h * d, 2.5, false), k = random(tk * hkv * d, 2.5, false), v = random(tk * hkv * d, 1, false);
            int[] cq = new int[lq.length + 1], ck = new int[lq.length + 1];
            for (int i = 0; i < lq.length; i++) { cq[i + 1] = cq[i] + lq[i]; ck[i + 1] = ck[i] + kl[i]; }
            AttentionOptions o = cross ? AttentionOptions.DEFAULT : AttentionOptions.CAUSAL;
            try (Tensor tqq = Tensor.of(q, tq, h, d); Tensor tkk = Tensor.of(k, tk, hkv, d); Tensor tvv = Tensor.of(v, tk, hkv, d);
                 Tensor out = Tensor.allocate(DType.F32, tq, h, d); Tensor lse = Tensor.allocate(DType.F32, h, tq);
                 Tensor cuq = Tensor.ofInts(cq, cq.length); Tensor cuk = Tensor.ofInts(ck, ck.length)) {
                out.fill(Float.NaN);
                lse.fill(Float.NaN);
                Kernels.flashAttention(ctx, tqq, tkk, tvv, out, o.withCuSeqlens(cuq, cross ? cuk : null).withLse(lse));
                float[] got = out.toFloatArray(), gl = lse.toFloatArray();
                for (int b = 0; b < lq.length; b++) {
                    double[] want = new double[lq[b] * h * d], wl = new double[h * lq[b]];
                    reference(slice(q, cq[b] * h * d, lq[b] * h * d), slice(k, ck[b] * hkv * d, kl[b] * hkv * d), slice(v, ck[b] * hkv * d, kl[b] * hkv * d),
                            null, lq[b], kl[b], h, hkv, d, d, o, want, wl, false);
                    double e = maxErr(slice(got, cq[b] * h * d, lq[b] * h * d), want, 2e-5, 2e-5);
                    assertTrue(e <= 1, "packed cross=" + cross + " sequence " + b + ": error " + e);
                    for (int hh = 0; hh < h; hh++)
                        for (int i = 0; i < lq[b]; i++) {
                            double w = wl[hh * lq[b] + i], g = gl[hh * tq + cq[b] + i];
                            assertTrue(w == Double.NEGATIVE_INFINITY ? g == Float.NEGATIVE_INFINITY : Math.abs(g - w) < 1e-4 * (1 + Math.abs(w)),
                                    "lse " + g + " vs " + w);
                        }
                }
            }
        }
    }

    @Test
    void stridedViewsOfAFusedQkvBuffer() {
        int s = 45, h = 4, hkv = 2, d = 64, heads = h + 2 * hkv;
        float[] qkv = random(s * heads * d, 2.5, false);
        try (Tensor fused = Tensor.of(qkv, 1, s, heads, d); Tensor out = Tensor.allocate(DType.F32, 1, s, h, d)) {
            Tensor q = fused.slice(2, 0, h), k = fused.slice(2, h, hkv), v = fused.slice(2, h + hkv, hkv);
            out.fill(Float.NaN);
            Kernels.flashAttention(ctx, q, k, v, out, AttentionOptions.CAUSAL);
            float[] qa = q.toFloatArray(), ka = k.toFloatArray(), va = v.toFloatArray();
            double[] want = new double[s * h * d];
            reference(qa, ka, va, null, s, s, h, hkv, d, d, AttentionOptions.CAUSAL, want, null, false);
            assertTrue(maxErr(out.toFloatArray(), want, 2e-5, 2e-5) <= 1, "fused QKV views");
        }
    }

    // ------------------------------------------------------------------ decode

    @ParameterizedTest
    @ValueSource(strings = {"F32", "BF16"})
    void decodeMatchesPrefillAndReference(String dts) {
        DType dt = DType.valueOf(dts);
        boolean bfl = dt == DType.BF16;
        int b = 2, h = 8, hkv = 2, d = 64, tqn = 2, maxSeq = 400;
        int[] lens = {37, 301};
        try (KvCache cache = KvCache.allocate(dt, b, hkv, maxSeq, d); Tensor zero = Tensor.ofInts(new int[] {0}, 1);
             Tensor lensT = Tensor.ofInts(lens, b)) {
            float[][] qs = new float[b][], ks = new float[b][], vs = new float[b][];
            for (int bb = 0; bb < b; bb++) {
                qs[bb] = random(lens[bb] * h * d, 2.5, bfl);
                ks[bb] = random(lens[bb] * hkv * d, 2.5, bfl);
                vs[bb] = random(lens[bb] * hkv * d, 1, bfl);
                // each sequence through a batch-1 view of the cache, from row 0
                try (Tensor tk = Tensor.of(dt, ks[bb], 1, lens[bb], hkv, d); Tensor tv = Tensor.of(dt, vs[bb], 1, lens[bb], hkv, d)) {
                    Kernels.kvCacheAppend(ctx, tk, tv, zero, cache.keys().slice(0, bb, 1), cache.values().slice(0, bb, 1), null);
                }
            }
            float[] q = new float[b * tqn * h * d];
            for (int bb = 0; bb < b; bb++) System.arraycopy(qs[bb], (lens[bb] - tqn) * h * d, q, bb * tqn * h * d, tqn * h * d);
            try (Tensor tq = Tensor.of(dt, q, b, tqn, h, d); Tensor out = Tensor.allocate(dt, b, tqn, h, d);
                 Tensor lse = Tensor.allocate(DType.F32, b, h, tqn)) {
                for (int splits : new int[] {0, 1, 5}) {
                    out.fill(Float.NaN);
                    lse.fill(Float.NaN);
                    Kernels.flashAttentionDecode(ctx, tq, cache.keys(), cache.values(), lensT, out, AttentionOptions.CAUSAL.withLse(lse).withNumSplits(splits));
                    float[] got = out.toFloatArray(), gotLse = lse.toFloatArray();
                    for (int bb = 0; bb < b; bb++) {
                        double[] want = new double[tqn * h * d], wl = new double[h * tqn];
                        float[] qq = slice(q, bb * tqn * h * d, tqn * h * d);
                        reference(qq, ks[bb], vs[bb], null, tqn, lens[bb], h, hkv, d, d, AttentionOptions.CAUSAL, want, wl, false);
                        float[] g = slice(got, bb * tqn * h * d, tqn * h * d);
                        if (bfl) {
                            double[] naive = new double[tqn * h * d];
                            reference(qq, ks[bb], vs[bb], null, tqn, lens[bb], h, hkv, d, d, AttentionOptions.CAUSAL, naive, null, true);
                            float[] nf = new float[naive.length];
                            for (int i = 0; i < nf.length; i++) nf[i] = (float) naive[i];
                            assertTrue(maxAbs(g, want) <= 2 * maxAbs(nf, want) + 1e-6, "decode bf16 splits=" + splits);
                        } else {
                            assertTrue(maxErr(g, want, 2e-5, 2e-5) <= 1, "decode f32 splits=" + splits + " b=" + bb);
                            for (int hh = 0; hh < h; hh++)
                                for (int t = 0; t < tqn; t++)
                                    assertEquals(wl[hh * tqn + t], gotLse[(bb * h + hh) * tqn + t], 1e-4 * (1 + Math.abs(wl[hh * tqn + t])), "decode lse");
                        }
                    }
                }
                if (!bfl) { // the same rows from prefill over each whole sequence
                    float[] g = out.toFloatArray();
                    for (int bb = 0; bb < b; bb++) {
                        int len = lens[bb];
                        try (Tensor pq = Tensor.of(dt, qs[bb], 1, len, h, d); Tensor pk = Tensor.of(dt, ks[bb], 1, len, hkv, d);
                             Tensor pv = Tensor.of(dt, vs[bb], 1, len, hkv, d); Tensor po = Tensor.allocate(dt, 1, len, h, d)) {
                            Kernels.flashAttention(ctx, pq, pk, pv, po, AttentionOptions.CAUSAL);
                            float[] full = po.toFloatArray();
                            for (int i = 0; i < tqn * h * d; i++) {
                                assertEquals(full[(len - tqn) * h * d + i], g[bb * tqn * h * d + i], 2e-5, "decode differs from prefill's last rows (b=" + bb + ")");
                            }
                        }
                    }
                }
            }
        }
    }

    /** The decoder loop: a prompt, then one token at a time, each step against the reference. */
    @Test
    void kvCacheDecodeLoop() {
        int b = 2, h = 4, hkv = 1, d = 32, prompt = 20, steps = 5;
        int total = prompt + steps;
        float[] q = random(b * total * h * d, 2.5, false), k = random(b * total * hkv * d, 2.5, false), v = random(b * total * hkv * d, 1, false);
        try (KvCache cache = KvCache.allocate(DType.F32, b, hkv, 64, d)) {
            for (int step = 0; step <= steps; step++) {
                int from = step == 0 ? 0 : prompt + step - 1, to = step == 0 ? prompt : prompt + step, t = to - from;
                float[] kn = new float[b * t * hkv * d], vn = new float[b * t * hkv * d], qn = new float[b * h * d];
                for (int bb = 0; bb < b; bb++) {
                    System.arraycopy(k, (bb * total + from) * hkv * d, kn, bb * t * hkv * d, t * hkv * d);
                    System.arraycopy(v, (bb * total + from) * hkv * d, vn, bb * t * hkv * d, t * hkv * d);
                    System.arraycopy(q, (bb * total + to - 1) * h * d, qn, bb * h * d, h * d);
                }
                try (Tensor tk = Tensor.of(kn, b, t, hkv, d); Tensor tv = Tensor.of(vn, b, t, hkv, d); Tensor tq = Tensor.of(qn, b, 1, h, d);
                     Tensor out = Tensor.allocate(DType.F32, b, 1, h, d)) {
                    cache.append(ctx, tk, tv, null);
                    out.fill(Float.NaN);
                    cache.attend(ctx, tq, out, AttentionOptions.CAUSAL);
                    float[] got = out.toFloatArray();
                    for (int bb = 0; bb < b; bb++) {
                        double[] want = new double[h * d];
                        reference(slice(qn, bb * h * d, h * d), slice(k, bb * total * hkv * d, to * hkv * d), slice(v, bb * total * hkv * d, to * hkv * d),
                                null, 1, to, h, hkv, d, d, AttentionOptions.CAUSAL, want, null, false);
                        assertTrue(maxErr(slice(got, bb * h * d, h * d), want, 2e-5, 2e-5) <= 1, "step " + step + " b=" + bb);
                    }
                }
            }
            assertEquals(total, cache.length(0));
        }
    }

    @Test
    void appendAppliesRope() {
        int b = 2, t = 3, hkv = 2, d = 32, maxSeq = 10;
        float[] kn = random(b * t * hkv * d, 1, false), vn = random(b * t * hkv * d, 1, false);
        try (KvCache cache = KvCache.allocate(DType.F32, b, hkv, maxSeq, d); Tensor tk = Tensor.of(kn, b, t, hkv, d); Tensor tv = Tensor.of(vn, b, t, hkv, d)) {
            cache.append(ctx, tk, tv, null); // positions 0..2 unrotated
            cache.append(ctx, tk, tv, KvCache.Rope.neox(10000f)); // positions 3..5 rotated
            assertEquals(6, cache.length(1));
            float[] kc = cache.keys().toFloatArray();
            for (int bb = 0; bb < b; bb++)
                for (int g = 0; g < hkv; g++)
                    for (int tt = 0; tt < t; tt++) {
                        int pos = t + tt;
                        for (int i = 0; i < d / 2; i++) {
                            double ang = pos * Math.pow(10000.0, -2.0 * i / d);
                            double x0 = kn[((bb * t + tt) * hkv + g) * d + i], x1 = kn[((bb * t + tt) * hkv + g) * d + i + d / 2];
                            int base = ((bb * hkv + g) * maxSeq + pos) * d;
                            assertEquals(x0 * Math.cos(ang) - x1 * Math.sin(ang), kc[base + i], 1e-5);
                            assertEquals(x0 * Math.sin(ang) + x1 * Math.cos(ang), kc[base + i + d / 2], 1e-5);
                        }
                    }
            float[] vc = cache.values().toFloatArray();
            assertEquals(vn[5], vc[(0 * maxSeq + 3) * d + 5], 0.0, "values are copied as they are");
            Tensor more = Tensor.allocate(DType.F32, b, 5, hkv, d);
            assertThrows(IllegalArgumentException.class, () -> cache.append(ctx, more, more, null), "past S_max");
            more.close();
            cache.reset();
            assertEquals(0, cache.length(0));
        }
    }

    // ------------------------------------------------------------------ validation

    @Test
    void badInputsAreRejectedWithClearMessages() {
        try (Tensor q = Tensor.allocate(DType.F32, 1, 4, 4, 8); Tensor k = Tensor.allocate(DType.F32, 1, 4, 3, 8);
             Tensor k2 = Tensor.allocate(DType.F32, 1, 4, 2, 8); Tensor v2 = Tensor.allocate(DType.F32, 1, 4, 2, 8);
             Tensor out = Tensor.allocate(DType.F32, 1, 4, 4, 8); Tensor big = Tensor.allocate(DType.F32, 1, 1, 1, 300)) {
            var e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k, k, out));
            assertTrue(e.getMessage().contains("multiple of kv heads"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, big, big, big, big.slice(0, 0, 1)));
            assertTrue(e.getMessage().contains("outside 1..256") || e.getMessage().contains("overlaps"), e.getMessage());
            try (Tensor big2 = Tensor.allocate(DType.F32, 1, 1, 1, 300); Tensor big3 = Tensor.allocate(DType.F32, 1, 1, 1, 300);
                 Tensor big4 = Tensor.allocate(DType.F32, 1, 1, 1, 300)) {
                e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, big, big2, big3, big4));
                assertTrue(e.getMessage().contains("outside 1..256"), e.getMessage());
            }
            Kernels.flashAttention(ctx, q, k2, v2, out); // fine
            e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k2, v2, q));
            assertTrue(e.getMessage().contains("overlaps"), e.getMessage());
            try (Tensor mask = Tensor.allocate(DType.U8, 1, 3)) {
                e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k2, v2, out, AttentionOptions.DEFAULT.withKeyPaddingMask(mask)));
                assertTrue(e.getMessage().contains("keyPaddingMask"), e.getMessage());
            }
            try (Tensor maskF = Tensor.allocate(DType.F32, 1, 4)) {
                assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k2, v2, out, AttentionOptions.DEFAULT.withKeyPaddingMask(maskF)));
            }
            assertThrows(IllegalArgumentException.class, () -> AttentionOptions.DEFAULT.withWindow(-2, -1));
            assertThrows(IllegalArgumentException.class, () -> AttentionOptions.DEFAULT.withScale(Float.NaN));
            assertThrows(IllegalArgumentException.class, () -> AttentionOptions.DEFAULT.withSlidingWindow(0));
            try (Tensor bq = Tensor.allocate(DType.BF16, 1, 4, 4, 8)) {
                e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k2, bq.slice(2, 0, 2), out));
                assertTrue(e.getMessage().contains("dtype"), e.getMessage());
            }
            // read-only output, closed tensor, closed context
            MemorySegment ro = out.segment().asReadOnly();
            Tensor roOut = Tensor.wrap(ro, DType.F32, 1, 4, 4, 8);
            assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k2, v2, roOut));
            Tensor closed = Tensor.allocate(DType.F32, 1, 4, 4, 8);
            closed.close();
            assertThrows(IllegalStateException.class, () -> Kernels.flashAttention(ctx, closed, k2, v2, out));
            Context c2 = Context.create(1);
            c2.close();
            assertThrows(IllegalStateException.class, () -> Kernels.flashAttention(c2, q, k2, v2, out));
        }
    }

    @Test
    void badCuSeqlensAndDecodeInputs() {
        try (Tensor q = Tensor.allocate(DType.F32, 4, 4, 8); Tensor k = Tensor.allocate(DType.F32, 4, 2, 8); Tensor v = Tensor.allocate(DType.F32, 4, 2, 8);
             Tensor out = Tensor.allocate(DType.F32, 4, 4, 8)) {
            int[][] bad = {{0, 3, 2}, {0, 2, 3}, {1, 2, 4}};
            String[] words = {"monotone", "token count", "must be 0"};
            for (int i = 0; i < bad.length; i++) {
                try (Tensor cu = Tensor.ofInts(bad[i], 3)) {
                    var e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k, v, out, AttentionOptions.DEFAULT.withCuSeqlens(cu, null)));
                    assertTrue(e.getMessage().contains(words[i]), e.getMessage());
                }
            }
            try (Tensor cu = Tensor.ofInts(new int[] {0, 1, 4}, 3)) {
                out.fill(Float.NaN);
                Kernels.flashAttention(ctx, q, k, v, out, AttentionOptions.DEFAULT.withCuSeqlens(cu, null));
                for (float x : out.toFloatArray()) assertEquals(0f, x, "zero inputs give zero outputs");
            }
            assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttention(ctx, q, k, v, out), "3-D without cuSeqlens");
        }
        try (KvCache cache = KvCache.allocate(DType.BF16, 1, 2, 16, 8); Tensor q = Tensor.allocate(DType.F32, 1, 1, 4, 8);
             Tensor out = Tensor.allocate(DType.F32, 1, 1, 4, 8); Tensor lens = Tensor.ofInts(new int[] {17}, 1)) {
            var e = assertThrows(IllegalArgumentException.class, () -> Kernels.flashAttentionDecode(ctx, q, cache.keys(), cache.values(), lens, out, AttentionOptions.CAUSAL));
            assertTrue(e.getMessage().contains("kvLens"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> cache.attend(ctx, q, out, AttentionOptions.CAUSAL.withKeyPaddingMask(lens)));
            out.fill(Float.NaN);
            cache.attend(ctx, q, out, AttentionOptions.CAUSAL); // empty cache: zeros
            for (float x : out.toFloatArray()) assertEquals(0f, x);
            cache.close();
            assertThrows(IllegalStateException.class, () -> cache.attend(ctx, q, out, AttentionOptions.CAUSAL));
            cache.close(); // twice is harmless
        }
    }

    /**
     * The decode loop allocates nothing on the Java heap per token: append (with RoPE) plus
     * attend, and the raw flashAttentionDecode, 1000 steps after a warm-up, stay under 16 bytes
     * per step on average (the per-call params blocks are cached per thread).
     */
    @Test
    void decodeLoopAllocatesNothingPerToken() {
        java.lang.management.ThreadMXBean mx = java.lang.management.ManagementFactory.getThreadMXBean();
        if (!(mx instanceof com.sun.management.ThreadMXBean tmx) || !tmx.isThreadAllocatedMemorySupported()) return;
        tmx.setThreadAllocatedMemoryEnabled(true);
        int b = 1, h = 8, hkv = 2, d = 16, steps = 1000, warm = 6000;
        try (KvCache cache = KvCache.allocate(DType.BF16, b, hkv, 64, d);
             Tensor kn = Tensor.of(random(b * hkv * d, 1, false), b, 1, hkv, d); Tensor vn = Tensor.of(random(b * hkv * d, 1, false), b, 1, hkv, d);
             Tensor q = Tensor.of(random(b * h * d, 1, false), b, 1, h, d); Tensor out = Tensor.allocate(DType.F32, b, 1, h, d)) {
            KvCache.Rope rope = KvCache.Rope.neox(10000f);
            long tid = Thread.currentThread().threadId();
            long[] used = new long[2];
            for (int phase = 0; phase < 2; phase++) {
                for (int i = 0; i < warm / 2; i++) step(cache, kn, vn, q, out, rope, phase);
                long before = tmx.getThreadAllocatedBytes(tid);
                for (int i = 0; i < steps / 2; i++) step(cache, kn, vn, q, out, rope, phase);
                used[phase] = tmx.getThreadAllocatedBytes(tid) - before;
            }
            assertTrue(used[0] < 16L * steps / 2, "KvCache append+attend allocated " + used[0] + " bytes over " + steps / 2 + " steps");
            assertTrue(used[1] < 16L * steps / 2, "flashAttentionDecode allocated " + used[1] + " bytes over " + steps / 2 + " steps");
            assertTrue(Float.isFinite(out.toFloatArray()[0]));
        }
    }

    private static void step(KvCache cache, Tensor kn, Tensor vn, Tensor q, Tensor out, KvCache.Rope rope, int phase) {
        if (cache.length(0) == cache.maxSeq()) cache.reset(); // keep the attention short: the loop measures the calls
        cache.append(ctx, kn, vn, rope);
        if (phase == 0) cache.attend(ctx, q, out, AttentionOptions.CAUSAL);
        else Kernels.flashAttentionDecode(ctx, q, cache.keys(), cache.values(), cache.lengthsTensor(), out, AttentionOptions.CAUSAL);
    }
}
